/*
 * Copyright (C) AMonitor authors
 *
 * Panels choose what they receive: target ids and "*" patterns, from the
 * handshake's ?targets= and from subscribe messages.  Each target keeps
 * its subscribers; a pattern is matched once per target, when the panel
 * subscribes or when the target first has something to say.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_subscribe.h"


#define NGX_HTTP_AMONITOR_SUB_BUCKETS 256 /* at first; doubles */


static ngx_http_amonitor_topic_t *ngx_http_amonitor_subscribe_find(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *id);
static ngx_int_t ngx_http_amonitor_subscribe_grow(
    ngx_http_amonitor_subs_t *subs);
static ngx_int_t ngx_http_amonitor_subscribe_link(
    ngx_http_amonitor_sub_t *s, ngx_http_amonitor_topic_t *t);
static void ngx_http_amonitor_subscribe_unlink_all(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s);
static void ngx_http_amonitor_subscribe_drop(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_topic_t *t);
static ngx_int_t ngx_http_amonitor_subscribe_store(
    ngx_http_amonitor_sub_t *s, ngx_str_t *list, ngx_uint_t n);
static ngx_int_t ngx_http_amonitor_subscribe_patterns(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_sub_t *s);
static ngx_int_t ngx_http_amonitor_subscribe_served(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_sub_t *s,
    ngx_http_amonitor_upstream_t *u);
static ngx_uint_t ngx_http_amonitor_subscribe_match_any(
    ngx_http_amonitor_sub_t *s, ngx_str_t *id, ngx_uint_t patterns_only);
static int ngx_libc_cdecl ngx_http_amonitor_subscribe_id_cmp(
    const void *one, const void *two);


ngx_int_t
ngx_http_amonitor_subscribe_init_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_subs_t *subs;

    subs = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_amonitor_subs_t));
    if (subs == NULL) {
        return NGX_ERROR;
    }

    subs->nbuckets = NGX_HTTP_AMONITOR_SUB_BUCKETS;
    subs->buckets = ngx_calloc(
        subs->nbuckets * sizeof(ngx_http_amonitor_topic_t *), w->cycle->log);
    if (subs->buckets == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&subs->all);
    ngx_queue_init(&subs->glob_list);

    if (ngx_array_init(&subs->matched, w->cycle->pool, 64,
            sizeof(ngx_http_amonitor_sub_t *))
        != NGX_OK) {
        return NGX_ERROR;
    }

    w->subs = subs;

    return NGX_OK;
}


/* after the panels and upstreams are gone: the topics left */
void
ngx_http_amonitor_subscribe_exit_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_subs_t  *subs;
    ngx_http_amonitor_topic_t *t, *next;

    subs = w->subs;
    if (subs == NULL) {
        return;
    }

    for (i = 0; i < subs->nbuckets; i++) {
        for (t = subs->buckets[i]; t; t = next) {
            next = t->next;

            /* the upstreams are freed already (worker.c stops them first) */
            ngx_free(t);
        }
    }

    ngx_free(subs->buckets);
    ngx_http_amonitor_glob_free(subs);
    ngx_http_amonitor_index_free(subs);
    w->subs = NULL;
}


/*
 * NULL, or why the list is refused: its entries, or what matching its
 * patterns would cost ("cost": the pattern x target matches, for the
 * panel's budget; 0 when refused for another reason)
 */
const char *
ngx_http_amonitor_subscribe_check(ngx_http_amonitor_worker_t *w,
    ngx_str_t *list, ngx_uint_t n, ngx_uint_t *cost)
{
    size_t                    j;
    ngx_uint_t                i;
    ngx_http_amonitor_subs_t *subs;

    *cost = 0;

    if (n > NGX_HTTP_AMONITOR_SUB_MAX) {
        return "too many targets (at most 256 ids and patterns)";
    }

    for (i = 0; i < n; i++) {
        if (list[i].len == 0) {
            return "an empty target id or pattern";
        }

        if (list[i].len > AMON_MAX_ID_LEN) {
            return "a target id or pattern longer than 256 bytes";
        }

        for (j = 0; j < list[i].len; j++) {
            if (list[i].data[j] < 0x20 || list[i].data[j] == 0x7f) {
                return "control characters in a target id or pattern";
            }
        }
    }

    *cost = ngx_http_amonitor_index_cost(w, list, n);

    if (*cost > NGX_HTTP_AMONITOR_SUB_MATCH_BURST) {
        return NGX_HTTP_AMONITOR_SUB_TOO_COSTLY;
    }

    subs = w->subs;

    if (subs
        && subs->nglobs + ngx_http_amonitor_glob_new(subs, list, n)
            > NGX_HTTP_AMONITOR_SUB_GLOBS) {
        *cost = 0;
        return NGX_HTTP_AMONITOR_SUB_TOO_MANY_GLOBS;
    }

    return NULL;
}


/*
 * Replace the panel's subscription with "list" (checked already): unlink
 * it everywhere, then link it to the topic of every id it names and of
 * every served target one of its patterns matches.
 */
ngx_int_t
ngx_http_amonitor_subscribe_set(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_str_t *list, ngx_uint_t n)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_sub_t   *s;
    ngx_http_amonitor_subs_t  *subs;
    ngx_http_amonitor_topic_t *t;

    subs = w->subs;
    s = wc->sub;

    if (s == NULL) {
        s = ngx_calloc(sizeof(ngx_http_amonitor_sub_t), wc->connection->log);
        if (s == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&s->links);
        s->wc = wc;
        s->credit = NGX_HTTP_AMONITOR_SUB_MATCH_BURST;
        s->credit_time = ngx_current_msec;
        wc->sub = s;

    } else {
        ngx_http_amonitor_subscribe_unlink_all(subs, s);
    }

    if (ngx_http_amonitor_subscribe_store(s, list, n) != NGX_OK) {
        return NGX_ERROR;
    }

    if (s->all) {
        ngx_queue_insert_tail(&subs->all, &s->queue);
        s->listed = 1;
        return NGX_OK;
    }

    subs->stamp++;

    for (i = 0; i < s->nids; i++) {
        t = ngx_http_amonitor_subscribe_find(subs, &s->ids[i]);
        if (t == NULL) {
            return NGX_ERROR;
        }

        if (t->stamp != subs->stamp) {
            t->stamp = subs->stamp;

            if (ngx_http_amonitor_subscribe_link(s, t) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    if (s->npatterns == 0) {
        return NGX_OK;
    }

    return ngx_http_amonitor_subscribe_patterns(w, s);
}


/*
 * The served targets the panel's patterns match, then the pattern list;
 * the matches made are taken from the panel's budget.  Patterns that
 * start with text are matched only against the ids that start with it.
 */
static ngx_int_t
ngx_http_amonitor_subscribe_patterns(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_sub_t *s)
{
    ngx_uint_t                       i, j, lo, hi, n;
    ngx_queue_t                     *q;
    ngx_http_amonitor_index_t       *ix;
    ngx_http_amonitor_upstream_t    *u;
    ngx_http_amonitor_index_entry_t *e;

    ix = ngx_http_amonitor_index_usable(s) ? ngx_http_amonitor_index_served(w)
                                           : NULL;
    n = 0;

    if (ix) {
        for (i = 0; i < s->nglobs; i++) {
            ngx_http_amonitor_index_range(
                ix, s->globs[i].data, s->compiled[i].head, &lo, &hi);
            n += hi - lo;

            for (j = lo; j < hi; j++) {
                e = &ix->e[j];

                if (amon_glob_match_compiled(
                        &s->compiled[i], e->id.data, e->id.len)
                    && ngx_http_amonitor_subscribe_served(w, s, e->data)
                        != NGX_OK) {
                    return NGX_ERROR;
                }
            }
        }

    } else {
        for (q = ngx_queue_head(&w->upstreams);
             q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
            u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);
            n += s->nglobs;

            if (ngx_http_amonitor_subscribe_match_any(s, &u->id, 1)
                && ngx_http_amonitor_subscribe_served(w, s, u) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    s->credit -= (ngx_int_t) n;

    /* from now on, new targets are matched against its patterns too */
    return ngx_http_amonitor_glob_add(w->subs, s, s->wc->connection->log);
}


/* a served target the panel's patterns match: linked, once per set */
static ngx_int_t
ngx_http_amonitor_subscribe_served(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_sub_t *s, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_subs_t  *subs;
    ngx_http_amonitor_topic_t *t;

    subs = w->subs;

    /* a new topic matches the other pattern panels, not this one yet */
    t = ngx_http_amonitor_subscribe_topic(w, u);
    if (t == NULL) {
        return NGX_ERROR;
    }

    if (t->stamp != subs->stamp) {
        t->stamp = subs->stamp;

        if (ngx_http_amonitor_subscribe_link(s, t) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A copy of the list in one block; "*" alone means everything.  Besides
 * the entries as given (the "subscribed" answer repeats them), the block
 * holds them once more split by kind, ids then globs, so that matching a
 * target never looks for the "*" in an entry again.
 */
static ngx_int_t
ngx_http_amonitor_subscribe_store(
    ngx_http_amonitor_sub_t *s, ngx_str_t *list, ngx_uint_t n)
{
    u_char    *p;
    size_t     size;
    ngx_str_t *e;
    ngx_uint_t i;

    if (s->entries) {
        ngx_free(s->entries);
        s->entries = NULL;
    }

    s->nentries = 0;
    s->ids = NULL;
    s->nids = 0;
    s->globs = NULL;
    s->compiled = NULL;
    s->nglobs = 0;
    s->npatterns = 0;
    s->all = 0;

    /* the entries, ids and globs, the globs compiled, then the bytes */
    size = 2 * n * sizeof(ngx_str_t) + n * sizeof(amon_glob_t);

    for (i = 0; i < n; i++) {
        size += list[i].len;
    }

    if (size == 0) {
        return NGX_OK;
    }

    s->entries = ngx_alloc(size, s->wc->connection->log);
    if (s->entries == NULL) {
        return NGX_ERROR;
    }

    s->compiled = (amon_glob_t *) &s->entries[2 * n];
    p = (u_char *) &s->compiled[n];

    for (i = 0; i < n; i++) {
        s->entries[i].data = p;
        s->entries[i].len = list[i].len;
        p = ngx_cpymem(p, list[i].data, list[i].len);

        if (ngx_strlchr(list[i].data, list[i].data + list[i].len, '*')) {
            s->nglobs++;
        }
    }

    s->nentries = n;
    s->ids = &s->entries[n];
    s->globs = &s->entries[2 * n - s->nglobs];

    for (i = 0, e = s->globs; i < n; i++) {
        if (ngx_strlchr(s->entries[i].data,
                s->entries[i].data + s->entries[i].len, '*')) {
            amon_glob_compile(&s->compiled[e - s->globs], s->entries[i].data,
                s->entries[i].len);
            *e++ = s->entries[i];

            if (s->entries[i].len == 1) {
                s->all = 1;

            } else {
                s->npatterns++;
            }

        } else {
            s->ids[s->nids++] = s->entries[i];
        }
    }

    /* sorted, each once: looked up by halves, walked without repeats */
    if (s->nids > 1) {
        ngx_qsort(s->ids, s->nids, sizeof(ngx_str_t),
            ngx_http_amonitor_subscribe_id_cmp);

        for (i = 1, e = s->ids; i < s->nids; i++) {
            if (ngx_http_amonitor_subscribe_id_cmp(e, &s->ids[i]) != 0) {
                *++e = s->ids[i];
            }
        }

        s->nids = e - s->ids + 1;
    }

    return NGX_OK;
}


/* ids in byte order, a prefix first */
static int ngx_libc_cdecl
ngx_http_amonitor_subscribe_id_cmp(const void *one, const void *two)
{
    int              rc;
    const ngx_str_t *a = one, *b = two;

    rc = ngx_memcmp(a->data, b->data, ngx_min(a->len, b->len));

    if (rc != 0 || a->len == b->len) {
        return rc;
    }

    return a->len < b->len ? -1 : 1;
}


/*
 * A learned target is forgotten: its topic is served no more.  Panels
 * linked to it by a pattern only are unlinked (a target learned again
 * under the same id links them again, once); panels that name the id
 * keep their link, and the topic goes when nobody names it.
 */
void
ngx_http_amonitor_subscribe_upstream_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t               *q, *next;
    ngx_http_amonitor_link_t  *l;
    ngx_http_amonitor_topic_t *t;

    t = u->topic;

    if (t == NULL || w->subs == NULL) {
        return;
    }

    u->topic = NULL;
    t->upstream = NULL;

    for (q = ngx_queue_head(&t->links); q != ngx_queue_sentinel(&t->links);
         q = next) {
        next = ngx_queue_next(q);
        l = ngx_queue_data(q, ngx_http_amonitor_link_t, target);

        if (!ngx_http_amonitor_subscribe_match_any(l->wc->sub, &t->id, 0)) {
            ngx_queue_remove(&l->target);
            ngx_queue_remove(&l->panel);
            ngx_free(l);
        }
    }

    ngx_http_amonitor_subscribe_drop(w->subs, t);
}


/*
 * The topic of a served target, made when the target first has something
 * to say (or a pattern panel looks for it): then the worker's patterns
 * are matched against it, each once, and the panels of those that match
 * are linked to it.
 */
ngx_http_amonitor_topic_t *
ngx_http_amonitor_subscribe_topic(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_sub_t   *s, **matched;
    ngx_http_amonitor_subs_t  *subs;
    ngx_http_amonitor_topic_t *t;

    if (u->topic) {
        return u->topic;
    }

    subs = w->subs;

    t = ngx_http_amonitor_subscribe_find(subs, &u->id);
    if (t == NULL) {
        return NULL;
    }

    t->upstream = u;
    u->topic = t;

    if (subs->nglobs == 0
        || ngx_http_amonitor_glob_match(subs, &u->id) != NGX_OK) {
        return t;
    }

    matched = subs->matched.elts;

    for (i = 0; i < subs->matched.nelts; i++) {
        s = matched[i];

        /* a panel that names the id is linked already */
        if (!ngx_http_amonitor_subscribe_match_any(s, &u->id, 0)) {
            (void) ngx_http_amonitor_subscribe_link(s, t);
        }
    }

    return t;
}


/* does the panel want frames about this target (its snapshot too) */
ngx_uint_t
ngx_http_amonitor_subscribe_wants(ngx_http_amonitor_conn_t *wc, ngx_str_t *id)
{
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;

    if (s == NULL || s->all) {
        return 1;
    }

    return ngx_http_amonitor_subscribe_match_any(s, id, 0)
        || ngx_http_amonitor_subscribe_match_any(s, id, 1);
}


/*
 * NGX_OK when the panel's set names ids only (no pattern, not
 * everything): "ids" and "n" are then those ids, sorted and each once,
 * so that a snapshot looks each up instead of reading every record.
 */
ngx_int_t
ngx_http_amonitor_subscribe_ids(
    ngx_http_amonitor_conn_t *wc, ngx_str_t **ids, ngx_uint_t *n)
{
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;

    if (s == NULL || s->all || s->nglobs) {
        return NGX_DECLINED;
    }

    *ids = s->ids;
    *n = s->nids;

    return NGX_OK;
}


void
ngx_http_amonitor_subscribe_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;
    if (s == NULL || w->subs == NULL) {
        return;
    }

    ngx_http_amonitor_subscribe_unlink_all(w->subs, s);

    if (s->entries) {
        ngx_free(s->entries);
    }

    ngx_free(s);
    wc->sub = NULL;
}


/* "patterns": does a pattern match; else: does an id equal it */
static ngx_uint_t
ngx_http_amonitor_subscribe_match_any(
    ngx_http_amonitor_sub_t *s, ngx_str_t *id, ngx_uint_t patterns)
{
    ngx_int_t  rc;
    ngx_uint_t i, lo, hi;

    if (patterns) {
        for (i = 0; i < s->nglobs; i++) {
            if (amon_glob_match_compiled(&s->compiled[i], id->data, id->len)) {
                return 1;
            }
        }

        return 0;
    }

    lo = 0;
    hi = s->nids;

    while (lo < hi) {
        i = lo + (hi - lo) / 2;
        rc = ngx_http_amonitor_subscribe_id_cmp(&s->ids[i], id);

        if (rc == 0) {
            return 1;
        }

        if (rc < 0) {
            lo = i + 1;

        } else {
            hi = i;
        }
    }

    return 0;
}


/* the topic of an id, made if there is none yet */
static ngx_http_amonitor_topic_t *
ngx_http_amonitor_subscribe_find(ngx_http_amonitor_subs_t *subs, ngx_str_t *id)
{
    uint32_t                   hash;
    ngx_http_amonitor_topic_t *t, **b;

    hash = ngx_http_amonitor_hash(id->data, id->len);
    b = &subs->buckets[hash & (subs->nbuckets - 1)];

    for (t = *b; t; t = t->next) {
        if (t->hash == hash && t->id.len == id->len
            && ngx_memcmp(t->id.data, id->data, id->len) == 0) {
            return t;
        }
    }

    if (subs->ntopics >= subs->nbuckets * 2
        && ngx_http_amonitor_subscribe_grow(subs) == NGX_OK) {
        b = &subs->buckets[hash & (subs->nbuckets - 1)];
    }

    t = ngx_alloc(sizeof(ngx_http_amonitor_topic_t) + id->len, ngx_cycle->log);
    if (t == NULL) {
        return NULL;
    }

    ngx_queue_init(&t->links);
    t->upstream = NULL;
    t->stamp = 0;
    t->hash = hash;
    t->id.data = (u_char *) &t[1];
    t->id.len = id->len;
    ngx_memcpy(t->id.data, id->data, id->len);

    t->next = *b;
    *b = t;
    subs->ntopics++;

    return t;
}


/* twice the buckets; on failure the chains just get longer */
static ngx_int_t
ngx_http_amonitor_subscribe_grow(ngx_http_amonitor_subs_t *subs)
{
    ngx_uint_t                  i, n;
    ngx_http_amonitor_topic_t **b, *t, *next;

    n = subs->nbuckets * 2;

    b = ngx_calloc(n * sizeof(ngx_http_amonitor_topic_t *), ngx_cycle->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < subs->nbuckets; i++) {
        for (t = subs->buckets[i]; t; t = next) {
            next = t->next;
            t->next = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }

    ngx_free(subs->buckets);
    subs->buckets = b;
    subs->nbuckets = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_subscribe_link(
    ngx_http_amonitor_sub_t *s, ngx_http_amonitor_topic_t *t)
{
    ngx_http_amonitor_link_t *l;

    l = ngx_alloc(sizeof(ngx_http_amonitor_link_t), s->wc->connection->log);
    if (l == NULL) {
        return NGX_ERROR;
    }

    l->wc = s->wc;
    l->topic = t;
    ngx_queue_insert_tail(&t->links, &l->target);
    ngx_queue_insert_tail(&s->links, &l->panel);

    return NGX_OK;
}


static void
ngx_http_amonitor_subscribe_unlink_all(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s)
{
    ngx_queue_t              *q;
    ngx_http_amonitor_link_t *l;

    while (!ngx_queue_empty(&s->links)) {
        q = ngx_queue_head(&s->links);
        l = ngx_queue_data(q, ngx_http_amonitor_link_t, panel);

        ngx_queue_remove(&l->panel);
        ngx_queue_remove(&l->target);
        ngx_http_amonitor_subscribe_drop(subs, l->topic);
        ngx_free(l);
    }

    if (s->listed) {
        ngx_queue_remove(&s->queue);
        s->listed = 0;
    }

    ngx_http_amonitor_glob_remove(subs, s);
}


/* a topic nobody names and no target serves is freed */
static void
ngx_http_amonitor_subscribe_drop(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_topic_t *t)
{
    ngx_http_amonitor_topic_t **b;

    if (t->upstream || !ngx_queue_empty(&t->links)) {
        return;
    }

    for (b = &subs->buckets[t->hash & (subs->nbuckets - 1)]; *b;
         b = &(*b)->next) {
        if (*b == t) {
            *b = t->next;
            subs->ntopics--;
            ngx_free(t);
            return;
        }
    }
}

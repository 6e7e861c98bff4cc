/*
 * Copyright (C) AMonitor authors
 *
 * The worker's patterns, each kept once however many panels use it: a
 * target seen for the first time is matched against every different
 * pattern once, not against every pattern of every panel.  At most
 * NGX_HTTP_AMONITOR_SUB_GLOBS different patterns are kept per worker,
 * which bounds what a new target costs (a pattern is matched in one pass
 * over the id).  The patterns are also hashed by their text before the
 * first "*" (their head), so that a new target is matched only against
 * the patterns whose head begins its id: one lookup per length of head
 * the patterns have.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_subscribe.h"


#define NGX_HTTP_AMONITOR_GLOB_BUCKETS 4096 /* a power of two */


static ngx_http_amonitor_glob_t **ngx_http_amonitor_glob_bucket(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *pattern, uint32_t *hash);
static ngx_int_t ngx_http_amonitor_glob_users(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_glob_t *g);


/* how many of the list's patterns the worker does not keep yet */
ngx_uint_t
ngx_http_amonitor_glob_new(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *list, ngx_uint_t n)
{
    uint32_t                   hash;
    ngx_uint_t                 i, k;
    ngx_http_amonitor_glob_t **b;

    k = 0;

    for (i = 0; i < n; i++) {
        if (list[i].len == 1 && list[i].data[0] == '*') {
            /* everything: no pattern is kept */
            return 0;
        }

        if (ngx_strlchr(list[i].data, list[i].data + list[i].len, '*')
            == NULL) {
            continue;
        }

        b = ngx_http_amonitor_glob_bucket(subs, &list[i], &hash);

        if (b == NULL || *b == NULL) {
            k++;
        }
    }

    return k;
}


/*
 * The panel's patterns join the worker's (s->globs, "*" alone not among
 * them): one use of each, in the pattern's list of users.
 */
ngx_int_t
ngx_http_amonitor_glob_add(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s, ngx_log_t *log)
{
    uint32_t                      hash;
    ngx_uint_t                    i;
    ngx_http_amonitor_glob_t     *g, **b;
    ngx_http_amonitor_glob_use_t *use;

    if (subs->gbuckets == NULL) {
        subs->gbuckets = ngx_calloc(2 * NGX_HTTP_AMONITOR_GLOB_BUCKETS
                    * sizeof(ngx_http_amonitor_glob_t *)
                + (AMON_MAX_ID_LEN + 1) * sizeof(ngx_uint_t),
            log);
        if (subs->gbuckets == NULL) {
            return NGX_ERROR;
        }

        subs->hbuckets = &subs->gbuckets[NGX_HTTP_AMONITOR_GLOB_BUCKETS];
        subs->heads =
            (ngx_uint_t *) &subs->hbuckets[NGX_HTTP_AMONITOR_GLOB_BUCKETS];
    }

    s->uses = ngx_alloc(s->nglobs * sizeof(ngx_http_amonitor_glob_use_t), log);
    if (s->uses == NULL) {
        return NGX_ERROR;
    }

    s->nuses = 0;

    for (i = 0; i < s->nglobs; i++) {
        b = ngx_http_amonitor_glob_bucket(subs, &s->globs[i], &hash);
        g = *b;

        if (g == NULL) {
            g = ngx_alloc(
                sizeof(ngx_http_amonitor_glob_t) + s->globs[i].len, log);
            if (g == NULL) {
                return NGX_ERROR;
            }

            g->next = NULL;
            g->hash = hash;
            g->pattern.len = s->globs[i].len;
            g->pattern.data = (u_char *) &g[1];
            ngx_memcpy(g->pattern.data, s->globs[i].data, s->globs[i].len);
            amon_glob_compile(&g->compiled, g->pattern.data, g->pattern.len);
            ngx_queue_init(&g->uses);
            ngx_queue_insert_tail(&subs->glob_list, &g->queue);

            *b = g;
            subs->nglobs++;

            g->hhash =
                ngx_http_amonitor_hash(g->pattern.data, g->compiled.head);
            b = &subs->hbuckets[g->hhash
                & (NGX_HTTP_AMONITOR_GLOB_BUCKETS - 1)];
            g->hnext = *b;
            *b = g;
            subs->heads[g->compiled.head]++;
        }

        use = &s->uses[s->nuses++];
        use->sub = s;
        use->glob = g;
        ngx_queue_insert_tail(&g->uses, &use->queue);
    }

    return NGX_OK;
}


/* the panel's patterns leave; a pattern no panel uses any more goes */
void
ngx_http_amonitor_glob_remove(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s)
{
    ngx_uint_t                i;
    ngx_http_amonitor_glob_t *g, **b;

    if (s->uses == NULL) {
        return;
    }

    for (i = 0; i < s->nuses; i++) {
        g = s->uses[i].glob;
        ngx_queue_remove(&s->uses[i].queue);

        if (!ngx_queue_empty(&g->uses)) {
            continue;
        }

        for (b = &subs->gbuckets[g->hash
                 & (NGX_HTTP_AMONITOR_GLOB_BUCKETS - 1)];
             *b; b = &(*b)->next) {
            if (*b == g) {
                *b = g->next;
                break;
            }
        }

        for (b = &subs->hbuckets[g->hhash
                 & (NGX_HTTP_AMONITOR_GLOB_BUCKETS - 1)];
             *b; b = &(*b)->hnext) {
            if (*b == g) {
                *b = g->hnext;
                break;
            }
        }

        subs->heads[g->compiled.head]--;
        ngx_queue_remove(&g->queue);
        subs->nglobs--;
        ngx_free(g);
    }

    ngx_free(s->uses);
    s->uses = NULL;
    s->nuses = 0;
}


/*
 * The panels one of whose patterns matches "id", each once, into
 * subs->matched (emptied first): every different pattern whose head
 * begins the id is matched once.
 */
ngx_int_t
ngx_http_amonitor_glob_match(ngx_http_amonitor_subs_t *subs, ngx_str_t *id)
{
    size_t                    len;
    uint32_t                  hash;
    ngx_http_amonitor_glob_t *g;

    subs->matched.nelts = 0;
    subs->visit++;

    if (subs->gbuckets == NULL) {
        return NGX_OK;
    }

    for (len = 0; len <= id->len && len <= AMON_MAX_ID_LEN; len++) {
        if (subs->heads[len] == 0) {
            continue;
        }

        hash = ngx_http_amonitor_hash(id->data, len);

        for (g = subs->hbuckets[hash & (NGX_HTTP_AMONITOR_GLOB_BUCKETS - 1)]; g;
             g = g->hnext) {
            if (g->hhash != hash || g->compiled.head != len
                || ngx_memcmp(g->pattern.data, id->data, len) != 0
                || !amon_glob_match_compiled(&g->compiled, id->data, id->len)) {
                continue;
            }

            if (ngx_http_amonitor_glob_users(subs, g) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* the panels that use a pattern that matched, those not found yet */
static ngx_int_t
ngx_http_amonitor_glob_users(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_glob_t *g)
{
    ngx_queue_t                  *uq;
    ngx_http_amonitor_sub_t     **m;
    ngx_http_amonitor_glob_use_t *use;

    for (uq = ngx_queue_head(&g->uses); uq != ngx_queue_sentinel(&g->uses);
         uq = ngx_queue_next(uq)) {
        use = ngx_queue_data(uq, ngx_http_amonitor_glob_use_t, queue);

        if (use->sub->visit == subs->visit) {
            continue;
        }

        use->sub->visit = subs->visit;

        m = ngx_array_push(&subs->matched);
        if (m == NULL) {
            return NGX_ERROR;
        }

        *m = use->sub;
    }

    return NGX_OK;
}


/* a worker that exits: what is left of the table */
void
ngx_http_amonitor_glob_free(ngx_http_amonitor_subs_t *subs)
{
    ngx_queue_t              *q;
    ngx_http_amonitor_glob_t *g;

    while (!ngx_queue_empty(&subs->glob_list)) {
        q = ngx_queue_head(&subs->glob_list);
        g = ngx_queue_data(q, ngx_http_amonitor_glob_t, queue);
        ngx_queue_remove(q);
        ngx_free(g);
    }

    subs->nglobs = 0;

    if (subs->gbuckets) {
        ngx_free(subs->gbuckets);
        subs->gbuckets = NULL;
        subs->hbuckets = NULL;
        subs->heads = NULL;
    }
}


/* where the pattern is in the table, or would be (NULL: no table yet) */
static ngx_http_amonitor_glob_t **
ngx_http_amonitor_glob_bucket(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *pattern, uint32_t *hash)
{
    ngx_http_amonitor_glob_t **b;

    *hash = ngx_http_amonitor_hash(pattern->data, pattern->len);

    if (subs->gbuckets == NULL) {
        return NULL;
    }

    for (b = &subs->gbuckets[*hash & (NGX_HTTP_AMONITOR_GLOB_BUCKETS - 1)]; *b;
         b = &(*b)->next) {
        if ((*b)->hash == *hash
            && ngx_memn2cmp((*b)->pattern.data, pattern->data,
                   (*b)->pattern.len, pattern->len)
                == 0) {
            break;
        }
    }

    return b;
}

/*
 * Copyright (C) AMonitor authors
 *
 * Target ids in byte order, so that a pattern that starts with text
 * ("web-*") is matched only against the ids that start with that text:
 * the targets the worker serves (to make a panel's set) and the records
 * of the zone (to tell a panel its snapshot).  Both are kept per worker
 * and brought up to date when asked for: the served ones sorted again
 * after the worker's list changed, the records (never removed, never
 * moved, their ids never changed) merged with those added since.  A set
 * with a pattern that starts with "*" is matched against every target,
 * as without an index.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_subscribe.h"


static ngx_int_t ngx_http_amonitor_index_reserve(
    ngx_http_amonitor_index_t *ix, ngx_uint_t n, ngx_log_t *log);
static void ngx_http_amonitor_index_merge(ngx_http_amonitor_index_t *ix,
    ngx_http_amonitor_index_entry_t *add, ngx_uint_t n);
static int ngx_libc_cdecl ngx_http_amonitor_index_cmp(
    const void *one, const void *two);
static int ngx_libc_cdecl ngx_http_amonitor_index_place_cmp(
    const void *one, const void *two);
static ngx_int_t ngx_http_amonitor_index_prefix_cmp(
    ngx_str_t *id, u_char *prefix, size_t len);
static ngx_uint_t ngx_http_amonitor_index_bound(
    ngx_http_amonitor_index_t *ix, u_char *prefix, size_t len, ngx_int_t above);


/* the served targets in the order of their ids; NULL without memory */
ngx_http_amonitor_index_t *
ngx_http_amonitor_index_served(ngx_http_amonitor_worker_t *w)
{
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_http_amonitor_index_t    *ix;
    ngx_http_amonitor_upstream_t *u;

    ix = &((ngx_http_amonitor_subs_t *) w->subs)->served;

    if (ix->valid && ix->gen == w->upstreams_gen) {
        return ix;
    }

    ix->valid = 0;
    n = 0;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        n++;
    }

    if (ngx_http_amonitor_index_reserve(ix, n, w->cycle->log) != NGX_OK) {
        return NULL;
    }

    n = 0;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);
        ix->e[n].id = u->id;
        ix->e[n].data = u;
        n++;
    }

    ix->n = n;

    if (n > 1) {
        ngx_qsort(ix->e, n, sizeof(ngx_http_amonitor_index_entry_t),
            ngx_http_amonitor_index_cmp);
    }

    ix->gen = w->upstreams_gen;
    ix->valid = 1;

    return ix;
}


/*
 * The zone's records in the order of their ids (each entry's data: the
 * record's place); NULL without a zone or without memory.  The ids are
 * read without the mutex: a record's id is written before it is counted.
 */
ngx_http_amonitor_index_t *
ngx_http_amonitor_index_records(ngx_http_amonitor_worker_t *w)
{
    ngx_str_t                        id;
    ngx_uint_t                       i, k;
    ngx_http_amonitor_index_t       *ix;
    ngx_http_amonitor_index_entry_t *add;

    if (w->store == NULL || w->store->zone == NULL) {
        return NULL;
    }

    ix = &((ngx_http_amonitor_subs_t *) w->subs)->records;

    for (k = 0;
         ngx_http_amonitor_store_target_id(w->store, ix->n + k, &id) == NGX_OK;
         k++) {
        /* counted first */
    }

    if (k == 0) {
        return ix;
    }

    if (ngx_http_amonitor_index_reserve(ix, ix->n + k, w->cycle->log)
        != NGX_OK) {
        return NULL;
    }

    add = ngx_alloc(k * sizeof(ngx_http_amonitor_index_entry_t), w->cycle->log);
    if (add == NULL) {
        return NULL;
    }

    for (i = 0; i < k; i++) {
        (void) ngx_http_amonitor_store_target_id(w->store, ix->n + i, &id);
        add[i].id = id;
        add[i].data = (void *) (uintptr_t) (ix->n + i);
    }

    ngx_qsort(add, k, sizeof(ngx_http_amonitor_index_entry_t),
        ngx_http_amonitor_index_cmp);

    ngx_http_amonitor_index_merge(ix, add, k);
    ngx_free(add);

    return ix;
}


/* the entries [*lo, *hi) whose ids start with the "len" bytes of "prefix" */
void
ngx_http_amonitor_index_range(ngx_http_amonitor_index_t *ix, u_char *prefix,
    size_t len, ngx_uint_t *lo, ngx_uint_t *hi)
{
    *lo = ngx_http_amonitor_index_bound(ix, prefix, len, 0);
    *hi = ngx_http_amonitor_index_bound(ix, prefix, len, 1);
}


/*
 * The pattern x target matches that making the set "list" costs: each of
 * its patterns (not "*" alone, which takes everything unseen) times the
 * served targets it is matched against: those whose ids start with its
 * text before the first "*", every one when it starts with "*" (or
 * without the index).
 */
ngx_uint_t
ngx_http_amonitor_index_cost(
    ngx_http_amonitor_worker_t *w, ngx_str_t *list, ngx_uint_t n)
{
    u_char                    *star;
    ngx_uint_t                 i, cost, lo, hi, ntargets;
    ngx_queue_t               *q;
    ngx_http_amonitor_index_t *ix;

    for (i = 0; i < n; i++) {
        if (list[i].len == 1 && list[i].data[0] == '*') {
            return 0;
        }
    }

    ix = w->subs ? ngx_http_amonitor_index_served(w) : NULL;
    ntargets = 0;

    if (ix) {
        ntargets = ix->n;

    } else {
        for (q = ngx_queue_head(&w->upstreams);
             q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
            ntargets++;
        }
    }

    cost = 0;

    for (i = 0; i < n; i++) {
        star = ngx_strlchr(list[i].data, list[i].data + list[i].len, '*');

        if (star == NULL) {
            continue;
        }

        if (star == list[i].data || ix == NULL) {
            cost += ntargets;
            continue;
        }

        ngx_http_amonitor_index_range(
            ix, list[i].data, star - list[i].data, &lo, &hi);
        cost += hi - lo;
    }

    return cost;
}


/* can the panel's patterns be looked up by their text before the "*" */
ngx_uint_t
ngx_http_amonitor_index_usable(ngx_http_amonitor_sub_t *s)
{
    ngx_uint_t i;

    if (s == NULL || s->all) {
        return 0;
    }

    for (i = 0; i < s->nglobs; i++) {
        if (s->compiled[i].head == 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * The places of the records a panel of patterns wants, in the order of
 * the places (the order the agent learned them), each once; "examined":
 * the ids compared.  NGX_DECLINED when a pattern starts with "*" (or
 * without memory): then every record is read.  The caller frees *places.
 */
ngx_int_t
ngx_http_amonitor_index_places(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_sub_t *s, ngx_uint_t **places, ngx_uint_t *n,
    ngx_uint_t *examined)
{
    ngx_uint_t                       i, j, lo, hi, total, *p;
    ngx_http_amonitor_index_t       *ix;
    ngx_http_amonitor_index_entry_t *e;

    if (!ngx_http_amonitor_index_usable(s)) {
        return NGX_DECLINED;
    }

    ix = ngx_http_amonitor_index_records(w);
    if (ix == NULL) {
        return NGX_DECLINED;
    }

    total = 0;

    for (i = 0; i < s->nids; i++) {
        ngx_http_amonitor_index_range(
            ix, s->ids[i].data, s->ids[i].len, &lo, &hi);
        total += hi - lo;
    }

    for (i = 0; i < s->nglobs; i++) {
        ngx_http_amonitor_index_range(
            ix, s->globs[i].data, s->compiled[i].head, &lo, &hi);
        total += hi - lo;
    }

    p = ngx_alloc((total ? total : 1) * sizeof(ngx_uint_t), w->cycle->log);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    *places = p;
    *examined = total;
    *n = 0;

    for (i = 0; i < s->nids; i++) {
        ngx_http_amonitor_index_range(
            ix, s->ids[i].data, s->ids[i].len, &lo, &hi);

        for (j = lo; j < hi; j++) {
            if (ix->e[j].id.len == s->ids[i].len) {
                p[(*n)++] = (uintptr_t) ix->e[j].data;
            }
        }
    }

    for (i = 0; i < s->nglobs; i++) {
        ngx_http_amonitor_index_range(
            ix, s->globs[i].data, s->compiled[i].head, &lo, &hi);

        for (j = lo; j < hi; j++) {
            e = &ix->e[j];

            if (amon_glob_match_compiled(
                    &s->compiled[i], e->id.data, e->id.len)) {
                p[(*n)++] = (uintptr_t) e->data;
            }
        }
    }

    if (*n > 1) {
        ngx_qsort(p, *n, sizeof(ngx_uint_t), ngx_http_amonitor_index_place_cmp);

        for (i = 1, j = 0; i < *n; i++) {
            if (p[i] != p[j]) {
                p[++j] = p[i];
            }
        }

        *n = j + 1;
    }

    return NGX_OK;
}


void
ngx_http_amonitor_index_free(ngx_http_amonitor_subs_t *subs)
{
    if (subs->served.e) {
        ngx_free(subs->served.e);
        subs->served.e = NULL;
    }

    if (subs->records.e) {
        ngx_free(subs->records.e);
        subs->records.e = NULL;
    }
}


/* room for "n" entries, what is there kept */
static ngx_int_t
ngx_http_amonitor_index_reserve(
    ngx_http_amonitor_index_t *ix, ngx_uint_t n, ngx_log_t *log)
{
    ngx_uint_t                       cap;
    ngx_http_amonitor_index_entry_t *e;

    if (n <= ix->cap) {
        return NGX_OK;
    }

    cap = ngx_max(n, 2 * ix->cap);
    cap = ngx_max(cap, 64);

    e = ngx_alloc(cap * sizeof(ngx_http_amonitor_index_entry_t), log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    if (ix->e) {
        ngx_memcpy(e, ix->e, ix->n * sizeof(ngx_http_amonitor_index_entry_t));
        ngx_free(ix->e);
    }

    ix->e = e;
    ix->cap = cap;

    return NGX_OK;
}


/* the sorted "add" into the sorted index, from the end (room is reserved) */
static void
ngx_http_amonitor_index_merge(ngx_http_amonitor_index_t *ix,
    ngx_http_amonitor_index_entry_t *add, ngx_uint_t n)
{
    ngx_uint_t i, j, k;

    i = ix->n;
    j = n;
    k = ix->n + n;

    while (j > 0) {
        if (i > 0
            && ngx_http_amonitor_index_cmp(&ix->e[i - 1], &add[j - 1]) > 0) {
            ix->e[--k] = ix->e[--i];

        } else {
            ix->e[--k] = add[--j];
        }
    }

    ix->n += n;
}


/* ids in byte order, a prefix first */
static int ngx_libc_cdecl
ngx_http_amonitor_index_cmp(const void *one, const void *two)
{
    int                                    rc;
    const ngx_http_amonitor_index_entry_t *a = one, *b = two;

    rc = ngx_memcmp(a->id.data, b->id.data, ngx_min(a->id.len, b->id.len));

    if (rc != 0 || a->id.len == b->id.len) {
        return rc;
    }

    return a->id.len < b->id.len ? -1 : 1;
}


static int ngx_libc_cdecl
ngx_http_amonitor_index_place_cmp(const void *one, const void *two)
{
    ngx_uint_t a = *(const ngx_uint_t *) one, b = *(const ngx_uint_t *) two;

    return (a > b) - (a < b);
}


/* below (-1), starting with (0) or above (1) the prefix, in byte order */
static ngx_int_t
ngx_http_amonitor_index_prefix_cmp(ngx_str_t *id, u_char *prefix, size_t len)
{
    int rc;

    rc = ngx_memcmp(id->data, prefix, ngx_min(id->len, len));

    if (rc != 0) {
        return rc < 0 ? -1 : 1;
    }

    return id->len < len ? -1 : 0;
}


/* the first entry not below the prefix, or ("above") above it */
static ngx_uint_t
ngx_http_amonitor_index_bound(
    ngx_http_amonitor_index_t *ix, u_char *prefix, size_t len, ngx_int_t above)
{
    ngx_int_t  rc;
    ngx_uint_t lo, hi, i;

    lo = 0;
    hi = ix->n;

    while (lo < hi) {
        i = lo + (hi - lo) / 2;
        rc = ngx_http_amonitor_index_prefix_cmp(&ix->e[i].id, prefix, len);

        if (rc < 0 || (above && rc == 0)) {
            lo = i + 1;

        } else {
            hi = i;
        }
    }

    return lo;
}

/*
 * Copyright (C) AMonitor authors
 *
 * What new panels' snapshots tell about each target, built once for all
 * of them: the target_state envelope of each record of the zone and the
 * upstream that serves it.  Hundreds of panels opening at once (a
 * reconnect storm) each read every record; they now share one envelope
 * per record rather than building it again (its JSON and its msg_id) and
 * looking its id up again.  An envelope is used again while what it
 * tells of the record is what the record says now (state, since, URL and
 * reason, compared whole) and for at most NGX_HTTP_AMONITOR_TOLD_AGE; the
 * upstream while the worker's list of upstreams has not changed.  The whole cache is freed once it is that
 * old.  Heartbeats are not kept here: each snapshot copies the last one
 * from the zone, as it did.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_fanout_told.h"


#define NGX_HTTP_AMONITOR_TOLD_AGE 1000 /* ms */


typedef struct {
    ngx_http_amonitor_upstream_t *u;
    u_char                       *text; /* NULL: not built */
    size_t                        len;
    size_t                        cap;
    uint64_t                      since; /* what the text tells: */
    ngx_uint_t                    up;
    ngx_str_t                     url; /* in the text's block */
    ngx_str_t                     reason;
    unsigned                      found : 1; /* "u" was looked up */
} ngx_http_amonitor_told_t;


typedef struct {
    ngx_pool_t               *pool;
    ngx_http_amonitor_told_t *told; /* one per record counted at start */
    ngx_uint_t                n;
    ngx_uint_t                upstreams_gen;
    ngx_event_t               expire;
} ngx_http_amonitor_told_cache_t;


static ngx_http_amonitor_told_cache_t *ngx_http_amonitor_told_cache(
    ngx_http_amonitor_worker_t *w);
static void       ngx_http_amonitor_told_expire(ngx_event_t *ev);
static ngx_uint_t ngx_http_amonitor_told_same(
    ngx_http_amonitor_told_t *t, ngx_http_amonitor_tsnap_t *snap);
static void ngx_http_amonitor_told_keep(ngx_http_amonitor_told_cache_t *c,
    ngx_http_amonitor_told_t *t, ngx_http_amonitor_tsnap_t *snap,
    ngx_str_t *out);


/*
 * Record "i" (copied in "snap"): the upstream that serves it (NULL: none,
 * the record is of an older configuration or a forgotten target) and,
 * when "out" is given, its target_state envelope.  NGX_ERROR: the
 * envelope could not be built.
 */
ngx_int_t
ngx_http_amonitor_told(ngx_http_amonitor_worker_t *w, ngx_uint_t i,
    ngx_http_amonitor_tsnap_t *snap, ngx_http_amonitor_upstream_t **u,
    ngx_str_t *out)
{
    ngx_http_amonitor_told_t       *t;
    ngx_http_amonitor_told_cache_t *c;

    c = ngx_http_amonitor_told_cache(w);
    t = (c && i < c->n) ? &c->told[i] : NULL;

    if (t && t->found) {
        *u = t->u;

    } else {
        *u = ngx_http_amonitor_target_find(w, &snap->id);

        if (t) {
            t->u = *u;
            t->found = 1;
        }
    }

    if (out == NULL) {
        return NGX_OK;
    }

    if (t && t->text && ngx_http_amonitor_told_same(t, snap)) {
        out->data = t->text;
        out->len = t->len;
        return NGX_OK;
    }

    if (ngx_http_amonitor_reply_target_state(w, &snap->id, &snap->url, snap->up,
            (int64_t) snap->since, snap->reason.len ? &snap->reason : NULL, out)
        != NGX_OK) {
        return NGX_ERROR;
    }

    if (t) {
        ngx_http_amonitor_told_keep(c, t, snap, out);
    }

    return NGX_OK;
}


/* does the text tell what the record says now */
static ngx_uint_t
ngx_http_amonitor_told_same(
    ngx_http_amonitor_told_t *t, ngx_http_amonitor_tsnap_t *snap)
{
    return t->up == snap->up && t->since == snap->since
        && ngx_memn2cmp(t->url.data, snap->url.data, t->url.len, snap->url.len)
        == 0
        && ngx_memn2cmp(t->reason.data, snap->reason.data, t->reason.len,
               snap->reason.len)
        == 0;
}


/*
 * The envelope "out" kept for the next panels, with what it tells, in one
 * block of the cache's pool (a larger one replaces it; the old block
 * stays in the pool until the cache goes).  Without memory, nothing is
 * kept.
 */
static void
ngx_http_amonitor_told_keep(ngx_http_amonitor_told_cache_t *c,
    ngx_http_amonitor_told_t *t, ngx_http_amonitor_tsnap_t *snap,
    ngx_str_t *out)
{
    u_char *p;
    size_t  size;

    size = out->len + snap->url.len + snap->reason.len;

    if (t->text == NULL || t->cap < size) {
        p = ngx_pnalloc(c->pool, size);
        if (p == NULL) {
            t->text = NULL;
            return;
        }

        t->text = p;
        t->cap = size;
    }

    p = ngx_cpymem(t->text, out->data, out->len);
    t->len = out->len;

    t->url.data = p;
    t->url.len = snap->url.len;
    p = ngx_cpymem(p, snap->url.data, snap->url.len);

    t->reason.data = p;
    t->reason.len = snap->reason.len;
    ngx_memcpy(p, snap->reason.data, snap->reason.len);

    t->up = snap->up;
    t->since = snap->since;

    out->data = t->text;
}


/* the cache, made when there is none or the upstreams changed */
static ngx_http_amonitor_told_cache_t *
ngx_http_amonitor_told_cache(ngx_http_amonitor_worker_t *w)
{
    ngx_uint_t                      n;
    ngx_pool_t                     *pool;
    ngx_http_amonitor_told_cache_t *c;

    c = w->told;

    if (c && c->upstreams_gen == w->upstreams_gen) {
        return c;
    }

    ngx_http_amonitor_told_free(w);

    n = ngx_http_amonitor_store_target_count(w->store);
    if (n == 0) {
        return NULL;
    }

    pool = ngx_create_pool(16384, w->cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    c = ngx_pcalloc(pool, sizeof(ngx_http_amonitor_told_cache_t));
    if (c == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    c->told = ngx_pcalloc(pool, n * sizeof(ngx_http_amonitor_told_t));
    if (c->told == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    c->pool = pool;
    c->n = n;
    c->upstreams_gen = w->upstreams_gen;

    c->expire.handler = ngx_http_amonitor_told_expire;
    c->expire.data = w;
    c->expire.log = w->cycle->log;
    c->expire.cancelable = 1;
    ngx_add_timer(&c->expire, NGX_HTTP_AMONITOR_TOLD_AGE);

    w->told = c;

    return c;
}


static void
ngx_http_amonitor_told_expire(ngx_event_t *ev)
{
    ngx_http_amonitor_told_free(ev->data);
}


void
ngx_http_amonitor_told_free(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_told_cache_t *c;

    c = w->told;
    if (c == NULL) {
        return;
    }

    if (c->expire.timer_set) {
        ngx_del_timer(&c->expire);
    }

    w->told = NULL;
    ngx_destroy_pool(c->pool);
}

/*
 * Copyright (C) AMonitor authors
 *
 * Targets of this worker: finding one by id or by URL, and learning a new
 * one (an action's payload.target_url, an SDK's register message) in one
 * place: allow check, cap, dial, then the shared registry through the
 * store, so that the other workers dial it too.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


static ngx_uint_t ngx_http_amonitor_target_path_allowed(
    ngx_http_amonitor_allow_t *a, amon_str_t *path);

/*
 * The worker's target "id": its index by id, not a walk over all.  The
 * tree orders nodes of one hash by their strings, so ids made to collide
 * cost a comparison each, never a longer walk: the quick unkeyed
 * amon_hash() will do (upstream.c inserts with it).
 */
ngx_http_amonitor_upstream_t *
ngx_http_amonitor_target_find(ngx_http_amonitor_worker_t *w, ngx_str_t *id)
{
    ngx_str_node_t *sn;

    sn = ngx_str_rbtree_lookup(
        &w->upstream_ids, id, amon_hash(id->data, id->len));

    return sn ? ngx_queue_data(sn, ngx_http_amonitor_upstream_t, by_id) : NULL;
}


/*
 * The worker's target at the normalised URL "norm": its index by URL.
 * Two targets may share a URL (a reload that configures the URL of a
 * target learned before): the one added first wins, as it did when this
 * walked the list, so the search goes on to the left after a match (equal
 * strings are inserted to the right, and rotations keep that order).
 */
ngx_http_amonitor_upstream_t *
ngx_http_amonitor_target_find_url(
    ngx_http_amonitor_worker_t *w, ngx_str_t *norm)
{
    uint32_t           hash;
    ngx_int_t          rc;
    ngx_str_node_t    *n, *found;
    ngx_rbtree_node_t *node, *sentinel;

    hash = ngx_http_amonitor_hash(norm->data, norm->len);
    node = w->upstream_urls.root;
    sentinel = w->upstream_urls.sentinel;
    found = NULL;

    while (node != sentinel) {
        n = (ngx_str_node_t *) node;

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        /* ngx_str_rbtree_insert_value's order: length, then bytes */
        if (norm->len != n->str.len) {
            node = (norm->len < n->str.len) ? node->left : node->right;
            continue;
        }

        rc = ngx_memcmp(norm->data, n->str.data, norm->len);

        if (rc == 0) {
            found = n;
        }

        node = (rc <= 0) ? node->left : node->right;
    }

    return found ? ngx_queue_data(found, ngx_http_amonitor_upstream_t, by_url)
                 : NULL;
}


/*
 * Parse a ws:// URL and normalise it into "norm" (whose data points to a
 * buffer of at least AMON_MAX_URL_LEN + 16 bytes).
 */
ngx_int_t
ngx_http_amonitor_target_url(
    u_char *data, size_t len, amon_ws_url_t *wu, ngx_str_t *norm)
{
    if (amon_ws_url_parse(data, len, wu) != AMON_OK) {
        return NGX_ERROR;
    }

    norm->len = amon_ws_url_normalize(wu, norm->data, AMON_MAX_URL_LEN + 16);

    return NGX_OK;
}


/*
 * The name a target an action names gets when it is dialed on demand:
 * its target_id, else its URL normalised into "name" (whose data points
 * to a buffer of at least AMON_MAX_URL_LEN + 16 bytes).  NGX_ERROR for a
 * URL that is not ws:// or wss://.
 */
ngx_int_t
ngx_http_amonitor_target_name(ngx_str_t *id, ngx_str_t *url, ngx_str_t *name)
{
    amon_ws_url_t wu;

    if (id->len) {
        *name = *id;
        return NGX_OK;
    }

    return ngx_http_amonitor_target_url(url->data, url->len, &wu, name);
}


/*
 * Learn a target the worker does not know yet (the caller looked): it
 * must be allowed by amonitor_allow_url, the limits must leave room (a
 * dial: amonitor_dial_limit in the zone, amonitor_dial_limit_per_panel
 * for the panel numbered "dialer"), the registry must not give the id to
 * a registered SDK, and the host must be an IP address (a worker never
 * does blocking DNS).  "id" empty: the target is named by its URL.
 */
ngx_http_amonitor_learn_e
ngx_http_amonitor_target_learn(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    amon_ws_url_t *wu, ngx_str_t *norm, ngx_uint_t kind, ngx_uint_t dialer,
    ngx_http_amonitor_upstream_t **up)
{
    size_t                        i;
    ngx_int_t                     rc;
    ngx_str_t                    *name;
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;

    /*
     * A target's name shows in logs and panels: no control characters, and
     * what a message can carry (UTF-8, AMON_MAX_ID_LEN bytes): a route
     * from Redis is not checked by the envelope decoder as a register is.
     */
    if (id->len > AMON_MAX_ID_LEN
        || amon_utf8_validate(id->data, id->len) != AMON_OK) {
        return NGX_HTTP_AMONITOR_LEARN_BAD_ID;
    }

    /* the registry keeps a URL of NGX_HTTP_AMONITOR_REG_URL_MAX bytes, and
     * a target without an id is named by its URL */
    if (norm->len > (id->len ? NGX_HTTP_AMONITOR_REG_URL_MAX
                             : NGX_HTTP_AMONITOR_REG_ID_MAX)) {
        return NGX_HTTP_AMONITOR_LEARN_TOO_LONG;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] < 0x20 || id->data[i] == 0x7f) {
            return NGX_HTTP_AMONITOR_LEARN_BAD_ID;
        }
    }

    if (!ngx_http_amonitor_target_allowed(w, wu)) {
        return NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED;
    }

    if (kind == NGX_HTTP_AMONITOR_DIALED && dialer) {
        n = 0;

        /* the targets dialed on demand only: at most amonitor_dial_limit */
        for (q = ngx_queue_head(&w->dialed);
             q != ngx_queue_sentinel(&w->dialed); q = ngx_queue_next(q)) {
            u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, dialed);
            n += (u->dialer == dialer);
        }

        if (n >= w->amcf->dial_limit_panel) {
            return NGX_HTTP_AMONITOR_LEARN_PANEL_LIMIT;
        }
    }

    name = id->len ? id : norm;

    rc = w->store->learn(w->store, name, norm, kind, w->amcf->dial_limit,
        w->amcf->learned_limit);

    switch (rc) {
    case NGX_OK: break;
    case NGX_BUSY: return NGX_HTTP_AMONITOR_LEARN_DIAL_LIMIT;
    case NGX_ABORT: return NGX_HTTP_AMONITOR_LEARN_TAKEN;
    case NGX_ERROR: return NGX_HTTP_AMONITOR_LEARN_NO_ROOM;
    default: return NGX_HTTP_AMONITOR_LEARN_FULL;
    }

    u = w->dial(w, name, wu);
    if (u == NULL) {
        (void) w->store->forget(w->store, name, norm, 1);
        return NGX_HTTP_AMONITOR_LEARN_NO_ADDR;
    }

    u->registered = (kind == NGX_HTTP_AMONITOR_REGISTERED);
    u->dialer = u->registered ? 0 : dialer;

    if (u->dialer) {
        ngx_queue_insert_tail(&w->dialed, &u->dialed);
    }

    *up = u;

    return NGX_HTTP_AMONITOR_LEARN_OK;
}


/*
 * The target an action names: a known target_id wins, else a known URL,
 * else an allowed URL, learned and dialed now when "dial" is set (for the
 * panel numbered "dialer").  NGX_OK with *up (NULL only without "dial":
 * allowed, not known yet), or NGX_DECLINED with the error code and
 * message to answer.
 */
ngx_int_t
ngx_http_amonitor_target_resolve(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t dial, ngx_uint_t dialer,
    ngx_http_amonitor_upstream_t **up, const char **code, const char **message)
{
    u_char        norm[AMON_MAX_URL_LEN + 16];
    ngx_str_t     n;
    amon_ws_url_t wu;

    *up = id->len ? ngx_http_amonitor_target_find(w, id) : NULL;

    if (*up) {
        return NGX_OK;
    }

    if (url->len == 0) {
        *code = "UNKNOWN_TARGET";
        *message = "no such target";
        return NGX_DECLINED;
    }

    n.data = norm;

    if (ngx_http_amonitor_target_url(url->data, url->len, &wu, &n) != NGX_OK) {
        *code = "INVALID_MESSAGE";
        *message = "payload.target_url is not a ws:// or wss:// URL";
        return NGX_DECLINED;
    }

    *up = ngx_http_amonitor_target_find_url(w, &n);

    if (*up || (!dial && ngx_http_amonitor_target_allowed(w, &wu))) {
        return NGX_OK;
    }

    *code = "TARGET_UNAVAILABLE";

    switch (dial ? ngx_http_amonitor_target_learn(
                w, id, &wu, &n, NGX_HTTP_AMONITOR_DIALED, dialer, up)
                 : NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED) {

    case NGX_HTTP_AMONITOR_LEARN_OK:
        /* amonitor_cluster: a shared route */
        ngx_http_amonitor_cluster_route(w, &(*up)->id, &n, "dial");
        return NGX_OK;

    case NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED:
        *code = "TARGET_URL_NOT_ALLOWED";
        *message = "payload.target_url is not allowed by amonitor_allow_url";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_FULL:
        *message = "too many learned targets (amonitor_learned_limit)";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_NO_ROOM:
        *message = "no memory left in amonitor_zone for a learned target";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_DIAL_LIMIT:
        *message = "too many targets dialed on demand (amonitor_dial_limit)";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_PANEL_LIMIT:
        *message = "this panel dialed too many targets on demand "
                   "(amonitor_dial_limit_per_panel)";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_TAKEN:
        *message = "target_id is a learned target at another URL (a "
                   "registered SDK keeps its id)";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_BAD_ID:
        *code = "INVALID_MESSAGE";
        *message = "target_id has control characters";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_TOO_LONG:
        *message = id->len ? "payload.target_url is too long to be learned "
                             "(at most 512 bytes)"
                           : "payload.target_url is too long to name a "
                             "target (at most 256 bytes without a "
                             "target_id)";
        return NGX_DECLINED;

    default:
        *message = "cannot dial payload.target_url (an IP address is needed)";
        return NGX_DECLINED;
    }
}


/*
 * A failed attempt: a dial on demand that never connected is not tried
 * again after amonitor_dial_attempts (upstream.c forgets it within a
 * second, at its next look at the registry).
 */
void
ngx_http_amonitor_target_failed(ngx_http_amonitor_upstream_t *u)
{
    if (u->dynamic && !u->registered && !u->held && u->opened == 0
        && u->failures >= u->worker->amcf->dial_attempts) {
        u->stopped = 1;
    }
}


/* an action is a reason to try now rather than after the backoff delay */
void
ngx_http_amonitor_target_kick(ngx_http_amonitor_upstream_t *u)
{
    if (u->state == NGX_HTTP_AMONITOR_UP_BACKOFF) {
        u->worker->kick(u);
    }
}


/* does an amonitor_allow_url pattern allow dialing this URL? */
ngx_uint_t
ngx_http_amonitor_target_allowed(
    ngx_http_amonitor_worker_t *w, amon_ws_url_t *u)
{
    ngx_uint_t                     i;
    ngx_http_amonitor_allow_t     *a;
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = w->amcf;

    a = amcf->allow.elts;

    for (i = 0; i < amcf->allow.nelts; i++) {

        /* a ws:// pattern never allows wss://, nor the other way */
        if (a[i].tls != u->tls) {
            continue;
        }

        if (a[i].host.len != u->host.len
            || ngx_strncasecmp(
                   a[i].host.data, (u_char *) u->host.data, u->host.len)
                != 0) {
            continue;
        }

        if (a[i].port && a[i].port != u->port) {
            continue;
        }

        if (ngx_http_amonitor_target_path_allowed(&a[i], &u->path)) {
            return 1;
        }
    }

    return 0;
}


/*
 * The path and query of a URL against a pattern's: equal, or, for a
 * pattern ending with "*", starting with it and without a way back up
 * (no "..", no encoded dot or slash): a pattern whose path is "/sdk/"
 * and a star stays under /sdk/.
 */
static ngx_uint_t
ngx_http_amonitor_target_path_allowed(
    ngx_http_amonitor_allow_t *a, amon_str_t *path)
{
    u_char *p, *last;

    if (!a->prefix) {
        return a->path.len == path->len
            && ngx_strncmp(a->path.data, path->data, path->len) == 0;
    }

    if (path->len < a->path.len
        || ngx_strncmp(a->path.data, path->data, a->path.len) != 0) {
        return 0;
    }

    last = (u_char *) path->data + path->len;

    for (p = (u_char *) path->data; p < last; p++) {
        if (*p == '?') {
            break;
        }

        if ((*p == '.' && p + 1 < last && p[1] == '.')
            || (*p == '%' && p + 2 < last && p[1] == '2'
                && (p[2] == 'e' || p[2] == 'E' || p[2] == 'f' || p[2] == 'F'))
            || *p == '\\') {
            return 0;
        }
    }

    return 1;
}

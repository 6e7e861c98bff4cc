/*
 * Copyright (C) AMonitor authors
 *
 * The snapshot filter of a panel: what its snapshot told that a live
 * frame of this worker may repeat, matched (and used up) by the first
 * live heartbeat or state of each target.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_fanout_seen.h"


static ngx_int_t ngx_http_amonitor_seen_grow(
    ngx_http_amonitor_seen_tab_t *tab, ngx_log_t *log);
static void ngx_http_amonitor_seen_expire(ngx_event_t *ev);


/*
 * The first live heartbeat (or state) of a target after the snapshot:
 * 1 when the snapshot sent the same one, so it is not sent again.  Either
 * way the entry is used up: what follows is new.  The last entry used up
 * ends the filter.
 */
ngx_uint_t
ngx_http_amonitor_seen_match(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live)
{
    ngx_uint_t                    i, same;
    ngx_http_amonitor_seen_t     *seen;
    ngx_http_amonitor_seen_tab_t *tab;

    if (live->target_hash == 0) {
        live->target_hash =
            ngx_http_amonitor_hash(live->target->data, live->target->len) | 1;
    }

    tab = wc->seen;

    for (i = live->target_hash & tab->mask; tab->slot[i].target;
         i = (i + 1) & tab->mask) {
        seen = &tab->slot[i];

        if (seen->target != live->target_hash) {
            continue;
        }

        if (live->heartbeat && seen->hb_pending) {
            seen->hb_pending = 0;
            same = (seen->hb == live->value);

        } else if (!live->heartbeat && seen->state_pending) {
            seen->state_pending = 0;
            same = (seen->up == live->value);

        } else {
            continue;
        }

        if (--tab->unseen == 0) {
            ngx_http_amonitor_seen_end(wc);
        }

        return same;
    }

    return 0;
}


/* the snapshot filter ends: all matched, its time is up, or the panel gone */
void
ngx_http_amonitor_seen_end(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_seen_tab_t *tab;

    tab = wc->seen;

    if (tab == NULL) {
        return;
    }

    if (tab->ev.timer_set) {
        ngx_del_timer(&tab->ev);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
        "amonitor panel #%ui snapshot filter ends, %ui unmatched", wc->id,
        tab->unseen);

    ngx_free(tab->slot);
    ngx_free(tab);
    wc->seen = NULL;
}


static void
ngx_http_amonitor_seen_expire(ngx_event_t *ev)
{
    ngx_http_amonitor_seen_end(ev->data);
}


/*
 * A free slot for "target" in the panel's filter, made (with its timer)
 * on the first one; NULL when memory is short.
 */
ngx_http_amonitor_seen_t *
ngx_http_amonitor_seen_add(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, uint32_t target)
{
    ngx_uint_t                    i;
    ngx_http_amonitor_seen_tab_t *tab;

    tab = wc->seen;

    if (tab == NULL) {
        tab = ngx_calloc(
            sizeof(ngx_http_amonitor_seen_tab_t), wc->connection->log);
        if (tab == NULL) {
            return NULL;
        }

        if (ngx_http_amonitor_seen_grow(tab, wc->connection->log) != NGX_OK) {
            ngx_free(tab);
            return NULL;
        }

        tab->ev.handler = ngx_http_amonitor_seen_expire;
        tab->ev.data = wc;
        tab->ev.log = wc->connection->log;
        tab->ev.cancelable = 1;

        ngx_add_timer(
            &tab->ev, w->amcf->reconnect_max + w->amcf->connect_timeout);

        wc->seen = tab;

    } else if ((tab->used + 1) * 2 > tab->mask + 1
        && ngx_http_amonitor_seen_grow(tab, wc->connection->log) != NGX_OK) {
        return NULL;
    }

    for (i = target & tab->mask; tab->slot[i].target; i = (i + 1) & tab->mask) {
        /* void */
    }

    tab->used++;
    tab->slot[i].target = target;

    return &tab->slot[i];
}


/* twice the slots (16 at first), the entries placed again */
static ngx_int_t
ngx_http_amonitor_seen_grow(ngx_http_amonitor_seen_tab_t *tab, ngx_log_t *log)
{
    ngx_uint_t                i, j, size, mask;
    ngx_http_amonitor_seen_t *slot;

    size = tab->slot ? (tab->mask + 1) * 2 : 16;
    mask = size - 1;

    slot = ngx_calloc(size * sizeof(ngx_http_amonitor_seen_t), log);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    if (tab->slot) {
        for (i = 0; i <= tab->mask; i++) {
            if (tab->slot[i].target == 0) {
                continue;
            }

            for (j = tab->slot[i].target & mask; slot[j].target;
                 j = (j + 1) & mask) {
                /* void */
            }

            slot[j] = tab->slot[i];
        }

        ngx_free(tab->slot);
    }

    tab->slot = slot;
    tab->mask = mask;

    return NGX_OK;
}

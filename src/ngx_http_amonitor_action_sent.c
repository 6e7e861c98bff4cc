/*
 * Copyright (C) AMonitor authors
 *
 * The worker's actions on their way by msg_id, from the panel's message
 * on (being claimed, waiting for their target's connection, sent), the
 * first of each msg_id: for acks (sent ones only) and for repeats on the
 * connection that sent it (any state).  Chains in a table
 * that doubles when it holds more actions than slots, so that an ack
 * reads one slot and the action it finds (a tree of them took a walk of
 * cache misses per ack).  The key is the msg_id's hash, already in the
 * action (sn.node.key).  And the records of actions: those with room
 * for the usual ids and URL are kept for use again, up to
 * NGX_HTTP_AMONITOR_FREE_ACTIONS, so that an action costs no malloc and
 * free.  Calls nothing of the actions.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_action.h"


#define NGX_HTTP_AMONITOR_SENT_SLOTS   256 /* the first table */
#define NGX_HTTP_AMONITOR_ACTION_ROOM  256 /* a kept record's, for strings */
#define NGX_HTTP_AMONITOR_FREE_ACTIONS 256


static void ngx_http_amonitor_sent_resize(
    ngx_http_amonitor_actions_t *as, ngx_uint_t n);


ngx_http_amonitor_action_t *
ngx_http_amonitor_sent_find(
    ngx_http_amonitor_actions_t *as, ngx_str_t *msg_id, uint32_t hash)
{
    ngx_http_amonitor_action_t *a;

    if (as->slots == NULL) {
        return NULL;
    }

    for (a = as->slots[hash & as->mask]; a; a = a->next_sent) {
        if ((uint32_t) a->sn.node.key == hash && a->sn.str.len == msg_id->len
            && ngx_memcmp(a->sn.str.data, msg_id->data, msg_id->len) == 0) {
            return a;
        }
    }

    return NULL;
}


/* the action an ack can be for: one written, not waiting for its target */
ngx_http_amonitor_action_t *
ngx_http_amonitor_sent_written(
    ngx_http_amonitor_actions_t *as, ngx_str_t *msg_id, uint32_t hash)
{
    ngx_http_amonitor_action_t *a;

    a = ngx_http_amonitor_sent_find(as, msg_id, hash);

    return (a
               && (a->state == NGX_HTTP_AMONITOR_ACTION_SENT
                   || a->state == NGX_HTTP_AMONITOR_ACTION_LATE))
        ? a
        : NULL;
}


/*
 * A repeat "a" of a msg_id whose first attempt came from the same panel
 * connection and is still on its way (being claimed, waiting for the
 * target, or sent):
 * that attempt's own final answer is still to come to the panel.
 */
ngx_uint_t
ngx_http_amonitor_sent_first(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a)
{
    ngx_http_amonitor_action_t *first;

    if (a->panel == NULL) {
        return 0;
    }

    first =
        ngx_http_amonitor_sent_find(as, &a->sn.str, (uint32_t) a->sn.node.key);

    return first != NULL && first != a && first->panel == a->panel;
}


/* NGX_DECLINED: an action of this msg_id is in already; "a" is not added */
ngx_int_t
ngx_http_amonitor_sent_add(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a)
{
    uint32_t                     hash;
    ngx_http_amonitor_action_t **slot;

    if (a->in_sent) {
        return NGX_OK;
    }

    hash = (uint32_t) a->sn.node.key;

    if (ngx_http_amonitor_sent_find(as, &a->sn.str, hash) != NULL) {
        return NGX_DECLINED;
    }

    if (as->nsent >= as->mask + 1 || as->slots == NULL) {
        /* without memory for more slots, the chains grow longer */
        ngx_http_amonitor_sent_resize(
            as, as->slots ? 2 * (as->mask + 1) : NGX_HTTP_AMONITOR_SENT_SLOTS);

        if (as->slots == NULL) {
            return NGX_ERROR;
        }
    }

    slot = &as->slots[hash & as->mask];
    a->next_sent = *slot;
    *slot = a;
    a->in_sent = 1;
    as->nsent++;

    return NGX_OK;
}


void
ngx_http_amonitor_sent_del(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a)
{
    ngx_http_amonitor_action_t **pp;

    for (pp = &as->slots[(uint32_t) a->sn.node.key & as->mask]; *pp;
         pp = &(*pp)->next_sent) {
        if (*pp == a) {
            *pp = a->next_sent;
            as->nsent--;
            break;
        }
    }

    a->next_sent = NULL;
    a->in_sent = 0;

    /*
     * A table grown in a burst is made smaller again once it is mostly
     * empty (an eighth; a quarter of its slots after): an ack's slot in a
     * sparse table of 64k slots was a cache miss every time.
     */
    if (as->mask + 1 > NGX_HTTP_AMONITOR_SENT_SLOTS
        && as->nsent < (as->mask + 1) / 8) {
        ngx_http_amonitor_sent_resize(as, (as->mask + 1) / 4);
    }
}


/* the table with "n" slots (a power of two), or as it was without memory */
static void
ngx_http_amonitor_sent_resize(ngx_http_amonitor_actions_t *as, ngx_uint_t n)
{
    ngx_uint_t                  i, mask;
    ngx_http_amonitor_action_t *a, *next, **slots;

    slots = ngx_alloc(n * sizeof(ngx_http_amonitor_action_t *), as->log);
    if (slots == NULL) {
        return;
    }

    ngx_memzero(slots, n * sizeof(ngx_http_amonitor_action_t *));
    mask = n - 1;

    if (as->slots) {
        for (i = 0; i <= as->mask; i++) {
            for (a = as->slots[i]; a; a = next) {
                next = a->next_sent;
                a->next_sent = slots[(uint32_t) a->sn.node.key & mask];
                slots[(uint32_t) a->sn.node.key & mask] = a;
            }
        }

        ngx_free(as->slots);
    }

    as->slots = slots;
    as->mask = mask;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, as->log, 0,
        "amonitor sent actions: %ui, table of %ui slots", as->nsent, n);
}


/* the worker exits: nothing is kept any more */
void
ngx_http_amonitor_sent_exit(ngx_http_amonitor_actions_t *as)
{
    ngx_http_amonitor_kept_exit(&as->kept);

    if (as->slots) {
        ngx_free(as->slots);
        as->slots = NULL;
        as->mask = 0;
        as->nsent = 0;
    }
}


/* a zeroed record with "size" bytes after it for the action's strings */
ngx_http_amonitor_action_t *
ngx_http_amonitor_action_alloc(ngx_http_amonitor_actions_t *as, size_t size)
{
    ngx_uint_t                  kept;
    ngx_http_amonitor_action_t *a;

    kept = (size <= NGX_HTTP_AMONITOR_ACTION_ROOM);
    a = kept ? ngx_http_amonitor_kept_get(&as->kept) : NULL;

    if (a == NULL) {
        a = ngx_alloc(sizeof(ngx_http_amonitor_action_t)
                + (kept ? NGX_HTTP_AMONITOR_ACTION_ROOM : size),
            as->log);
        if (a == NULL) {
            return NULL;
        }
    }

    ngx_memzero(a, sizeof(ngx_http_amonitor_action_t));
    a->kept = kept;

    return a;
}


void
ngx_http_amonitor_action_dealloc(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a)
{
    if (a->kept) {
        ngx_http_amonitor_kept_put(
            &as->kept, a, NGX_HTTP_AMONITOR_FREE_ACTIONS);
        return;
    }

    ngx_free(a);
}

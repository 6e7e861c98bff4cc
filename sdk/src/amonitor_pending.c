/*
 * Copyright (C) AMonitor authors
 *
 * The table of actions waiting for an answer, and the handles the program
 * holds on them: added by the dispatcher before a handler runs, taken by
 * whichever answers first (the handler's return, an ack from any thread,
 * a cancel, the timeout, a stop).  Everything here is under the SDK's lock.
 */

#include <stdlib.h>
#include <string.h>

#include "amonitor_sdk_int.h"


static void amonitor_pending_free(amonitor_pending_t *p);
static void amonitor_unlist(amonitor_sdk_priv_t *priv, amonitor_pending_t *p);
static amonitor_waiter_t *amonitor_waiter_new(
    amonitor_conn_t *c, const amonitor_action_t *action);
static int  amonitor_conn_is_open(amonitor_sdk_priv_t *priv, uint64_t id);
static void amonitor_waiters_gone(
    amonitor_sdk_priv_t *priv, const char *msg_id, unsigned gone);
static void amonitor_release(
    amonitor_sdk_priv_t *priv, int p_last, amonitor_pending_t *p);


static amonitor_waiter_t *
amonitor_waiter_new(amonitor_conn_t *c, const amonitor_action_t *action)
{
    amonitor_waiter_t *w;

    w = calloc(1, sizeof(amonitor_waiter_t));
    if (w == NULL) {
        return NULL;
    }

    w->conn_id = c->id;
    w->binary = action->binary;
    w->trace_id = amonitor_strdup(action->trace_id);

    if (w->trace_id == NULL) {
        free(w);
        return NULL;
    }

    return w;
}


/*
 * The same msg_id is already pending (another agent connection, or the
 * same one again): this connection waits for that answer too (once), and
 * the handler does not run a second time.  AMONITOR_ERR_NOTFOUND when it
 * is not pending, else AMONITOR_OK (also when no memory was left to wait).
 */
int
amonitor_pending_join(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action)
{
    unsigned            gone;
    amonitor_pending_t *p;
    amonitor_waiter_t  *w, **wp;

    w = NULL;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        if (strcmp(p->msg_id, action->msg_id) == 0) {
            break;
        }
    }

    if (p == NULL) {
        pthread_mutex_unlock(&priv->lock);
        return AMONITOR_ERR_NOTFOUND;
    }

    /*
     * One waiter per open connection: a connection that repeats the msg_id
     * gets the one answer, and waiters whose connection closed (their ack
     * could only be dropped) leave, the first one excepted, so repeats over
     * new connections cannot grow the list either.
     */
    gone = 0;

    for (wp = &p->waiters; *wp; /* void */) {
        w = *wp;

        if (w->conn_id == c->id) {
            pthread_mutex_unlock(&priv->lock);
            amonitor_stat_inc(priv, duplicates);
            amonitor_waiters_gone(priv, action->msg_id, gone);
            return AMONITOR_OK;
        }

        if (w != p->waiters && !amonitor_conn_is_open(priv, w->conn_id)) {
            *wp = w->next;
            p->nwaiters--;
            gone++;
            free(w->trace_id);
            free(w);
            continue;
        }

        wp = &w->next;
    }

    w = amonitor_waiter_new(c, action);
    if (w == NULL) {
        /* pending all the same: it must not run a second time */
        pthread_mutex_unlock(&priv->lock);
        amonitor_waiters_gone(priv, action->msg_id, gone);
        amonitor_log(priv, AMONITOR_LOG_ERROR,
            "connection %llu: no memory to wait for the answer to action "
            "%s, which is pending: this repeat is dropped",
            (unsigned long long) c->id, action->msg_id);
        return AMONITOR_OK;
    }

    *wp = w;
    p->nwaiters++;

    pthread_mutex_unlock(&priv->lock);

    amonitor_stat_inc(priv, duplicates);
    amonitor_waiters_gone(priv, action->msg_id, gone);

    return AMONITOR_OK;
}


/* On the loop's thread, which owns the connections. */
static int
amonitor_conn_is_open(amonitor_sdk_priv_t *priv, uint64_t id)
{
    amonitor_conn_t *c;

    for (c = priv->conns; c; c = c->next) {
        if (c->id == id) {
            return c->state == AMONITOR_CONN_OPEN;
        }
    }

    return 0;
}


/* Acks that waiters of closed connections will not get; without the lock. */
static void
amonitor_waiters_gone(
    amonitor_sdk_priv_t *priv, const char *msg_id, unsigned gone)
{
    if (gone == 0) {
        return;
    }

    __atomic_fetch_add(&priv->stats.acks_dropped, gone, __ATOMIC_RELAXED);

    amonitor_log(priv, AMONITOR_LOG_INFO,
        "action %s: %u connections that waited for its answer are gone, "
        "their acks dropped",
        msg_id, gone);
}


/*
 * A new pending action with three kinds of reference: the table's, the
 * caller's (the dispatcher, while the handler runs) and, when "owned",
 * the program's.
 */
int
amonitor_pending_add(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action, int owned, amonitor_pending_t **out)
{
    amonitor_pending_t *p;

    p = calloc(1, sizeof(amonitor_pending_t));
    if (p == NULL) {
        return AMONITOR_ERR_NOMEM;
    }

    p->priv = priv;
    p->msg_id = amonitor_strdup(action->msg_id);
    p->name = amonitor_strdup(action->name);
    p->waiters = amonitor_waiter_new(c, action);
    p->nwaiters = 1;
    p->created = amon_posix_now_ms();

    if (p->msg_id == NULL || p->name == NULL || p->waiters == NULL) {
        amonitor_pending_free(p);
        return AMONITOR_ERR_NOMEM;
    }

    pthread_mutex_lock(&priv->lock);

    if (priv->npending >= priv->max_pending) {
        pthread_mutex_unlock(&priv->lock);
        amonitor_pending_free(p);
        return AMONITOR_ERR_FULL;
    }

    p->id = ++priv->next_pending_id;
    p->refs = 2 + (owned ? 1 : 0);
    p->owned = owned ? 1 : 0;
    p->listed = 1;
    p->deadline =
        priv->pending_timeout ? p->created + priv->pending_timeout : 0;
    p->next = priv->pending;
    priv->pending = p;
    priv->npending++;
    priv->refs++;

    pthread_mutex_unlock(&priv->lock);

    amonitor_stat_inc(priv, pending);

    *out = p;

    return AMONITOR_OK;
}


/* With the lock held: out of the table, the table's reference to the caller */
static void
amonitor_unlist(amonitor_sdk_priv_t *priv, amonitor_pending_t *p)
{
    amonitor_pending_t **pp;

    for (pp = &priv->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }

    p->next = NULL;
    p->listed = 0;
    priv->npending--;
    priv->answering++;

    amonitor_stat_dec(priv, pending);
}


amonitor_pending_t *
amonitor_pending_take(amonitor_sdk_priv_t *priv, const char *msg_id)
{
    amonitor_pending_t *p;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        if (strcmp(p->msg_id, msg_id) == 0) {
            amonitor_unlist(priv, p);
            break;
        }
    }

    pthread_mutex_unlock(&priv->lock);

    return p;
}


amonitor_pending_t *
amonitor_pending_take_id(amonitor_sdk_priv_t *priv, uint64_t id)
{
    amonitor_pending_t *p;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        if (p->id == id) {
            amonitor_unlist(priv, p);
            break;
        }
    }

    pthread_mutex_unlock(&priv->lock);

    return p;
}


amonitor_pending_t *
amonitor_pending_take_expired(amonitor_sdk_priv_t *priv, int64_t now)
{
    amonitor_pending_t *p;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        if (p->deadline && now >= p->deadline) {
            amonitor_unlist(priv, p);
            break;
        }
    }

    pthread_mutex_unlock(&priv->lock);

    return p;
}


amonitor_pending_t *
amonitor_pending_take_any(amonitor_sdk_priv_t *priv)
{
    amonitor_pending_t *p;

    pthread_mutex_lock(&priv->lock);

    p = priv->pending;
    if (p) {
        amonitor_unlist(priv, p);
    }

    pthread_mutex_unlock(&priv->lock);

    return p;
}


/*
 * Take the action a handle names, if still listed; "disown" also drops
 * the program's reference (amonitor_pending_ack, or a handler that did
 * not return LATER).  Returns AMONITOR_OK (taken), AMONITOR_ERR_NOTFOUND
 * (already answered) or AMONITOR_ERR_STATE (the context was freed).
 */
int
amonitor_pending_take_handle(amonitor_pending_t *p, int disown)
{
    int                  rc, last;
    amonitor_sdk_priv_t *priv;

    priv = p->priv;
    last = 0;

    pthread_mutex_lock(&priv->lock);

    if (disown && p->owned) {
        p->owned = 0;
        last = (--p->refs == 0);
    }

    if (priv->freed) {
        rc = AMONITOR_ERR_STATE;

    } else if (p->listed) {
        amonitor_unlist(priv, p);
        rc = AMONITOR_OK;

    } else {
        rc = AMONITOR_ERR_NOTFOUND;
    }

    amonitor_release(priv, last, p); /* unlocks */

    return rc;
}


/* The answer went out: drop the taken reference, wake a waiting free. */
void
amonitor_pending_finish(amonitor_pending_t *p)
{
    amonitor_sdk_priv_t *priv;

    priv = p->priv;

    pthread_mutex_lock(&priv->lock);

    if (--priv->answering == 0) {
        pthread_cond_broadcast(&priv->idle);
    }

    amonitor_release(priv, --p->refs == 0, p);
}


void
amonitor_pending_unref(amonitor_pending_t *p)
{
    amonitor_sdk_priv_t *priv;

    priv = p->priv;

    pthread_mutex_lock(&priv->lock);
    amonitor_release(priv, --p->refs == 0, p);
}


/*
 * Called with the lock held, releases it.  The last pending action of a
 * freed context frees what is left of the context: the lock itself.
 */
static void
amonitor_release(amonitor_sdk_priv_t *priv, int p_last, amonitor_pending_t *p)
{
    int priv_last;

    priv_last = p_last && --priv->refs == 0;

    pthread_mutex_unlock(&priv->lock);

    if (p_last) {
        amonitor_pending_free(p);
    }

    if (priv_last) {
        pthread_cond_destroy(&priv->idle);
        pthread_mutex_destroy(&priv->lock);
        free(priv);
    }
}


/*
 * amonitor_sdk_free(): no more answers (handles then get
 * AMONITOR_ERR_STATE), wait for those under way.  The table is empty:
 * the stop failed every pending action.
 */
void
amonitor_pending_close(amonitor_sdk_priv_t *priv)
{
    pthread_mutex_lock(&priv->lock);

    priv->freed = 1;

    while (priv->answering) {
        pthread_cond_wait(&priv->idle, &priv->lock);
    }

    pthread_mutex_unlock(&priv->lock);
}


/* The context's own reference, dropped last by amonitor_sdk_free(). */
void
amonitor_pending_unref_priv(amonitor_sdk_priv_t *priv)
{
    int last;

    pthread_mutex_lock(&priv->lock);

    last = (--priv->refs == 0);

    pthread_mutex_unlock(&priv->lock);

    if (last) {
        pthread_cond_destroy(&priv->idle);
        pthread_mutex_destroy(&priv->lock);
        free(priv);
    }
}


int64_t
amonitor_pending_next_deadline(amonitor_sdk_priv_t *priv)
{
    int64_t             best;
    amonitor_pending_t *p;

    best = 0;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        if (p->deadline && (best == 0 || p->deadline < best)) {
            best = p->deadline;
        }
    }

    pthread_mutex_unlock(&priv->lock);

    return best;
}


int
amonitor_sdk_pending_list(
    amonitor_sdk_t *ctx, amonitor_pending_fn fn, void *data)
{
    int                     n;
    int64_t                 now;
    amonitor_pending_t     *p;
    amonitor_sdk_priv_t    *priv;
    amonitor_pending_info_t info;

    if (ctx == NULL || !ctx->priv->configured) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;
    now = amon_posix_now_ms();
    n = 0;

    pthread_mutex_lock(&priv->lock);

    for (p = priv->pending; p; p = p->next) {
        n++;

        if (fn == NULL) {
            continue;
        }

        memset(&info, 0, sizeof(info));
        info.id = p->id;
        info.msg_id = p->msg_id;
        info.name = p->name;
        info.conn_id = p->waiters->conn_id;
        info.waiters = p->nwaiters;
        info.age_ms = now - p->created;

        fn(&info, data);
    }

    pthread_mutex_unlock(&priv->lock);

    return n;
}


uint64_t
amonitor_pending_id(const amonitor_pending_t *p)
{
    return p ? p->id : 0;
}


const char *
amonitor_pending_msg_id(const amonitor_pending_t *p)
{
    return p ? p->msg_id : NULL;
}


static void
amonitor_pending_free(amonitor_pending_t *p)
{
    amonitor_waiter_t *w;

    while (p->waiters) {
        w = p->waiters;
        p->waiters = w->next;
        free(w->trace_id);
        free(w);
    }

    free(p->msg_id);
    free(p->name);
    free(p);
}

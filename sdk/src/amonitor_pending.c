/*
 * Copyright (C) AMonitor authors
 *
 * The table of actions waiting for an answer: added by the dispatcher
 * before a handler runs, taken by whichever answers first (the handler's
 * return or amonitor_sdk_ack() from any thread).  Under the SDK's lock.
 */

#include <stdlib.h>
#include <string.h>

#include "amonitor_sdk_int.h"


int
amonitor_pending_add(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action)
{
    amonitor_pending_t *p;

    p = calloc(1, sizeof(amonitor_pending_t));
    if (p == NULL) {
        return AMONITOR_ERR_NOMEM;
    }

    p->conn_id = c->id;
    p->binary = action->binary;
    p->msg_id = amonitor_strdup(action->msg_id);
    p->trace_id = amonitor_strdup(action->trace_id);

    if (p->msg_id == NULL || p->trace_id == NULL) {
        amonitor_pending_free(p);
        return AMONITOR_ERR_NOMEM;
    }

    pthread_mutex_lock(&priv->lock);

    if (priv->npending >= priv->max_pending) {
        pthread_mutex_unlock(&priv->lock);
        amonitor_pending_free(p);
        return AMONITOR_ERR_FULL;
    }

    p->next = priv->pending;
    priv->pending = p;
    priv->npending++;

    pthread_mutex_unlock(&priv->lock);

    return AMONITOR_OK;
}


int
amonitor_pending_take(
    amonitor_sdk_priv_t *priv, const char *msg_id, amonitor_pending_t **out)
{
    amonitor_pending_t *p, **pp;

    pthread_mutex_lock(&priv->lock);

    for (pp = &priv->pending; *pp; pp = &(*pp)->next) {
        p = *pp;

        if (strcmp(p->msg_id, msg_id) == 0) {
            *pp = p->next;
            priv->npending--;
            pthread_mutex_unlock(&priv->lock);
            p->next = NULL;
            *out = p;
            return AMONITOR_OK;
        }
    }

    pthread_mutex_unlock(&priv->lock);

    return AMONITOR_ERR_NOTFOUND;
}


void
amonitor_pending_free(amonitor_pending_t *p)
{
    free(p->msg_id);
    free(p->trace_id);
    free(p);
}

/*
 * Copyright (C) AMonitor authors
 *
 * The SDK's cross-thread job queue: events and async acks built by any
 * thread (through amonitor_msg.c's builders), sent by the I/O thread after
 * a wakeup through a pipe.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amonitor_sdk_int.h"


static int amonitor_enqueue(amonitor_sdk_priv_t *priv, amonitor_job_t *job);
static amonitor_job_t *amonitor_job_from_buf(
    unsigned kind, unsigned opcode, const amon_buf_t *b);
static int amonitor_emit(amonitor_sdk_t *ctx, uint64_t conn_id,
    const char *name, const char *json_data);


/* Take the whole queue under the lock, then send without it. */
void
amonitor_run_jobs(amonitor_sdk_priv_t *priv)
{
    amonitor_job_t  *job, *next;
    amonitor_conn_t *c;

    pthread_mutex_lock(&priv->lock);
    job = priv->jobs;
    priv->jobs = NULL;
    priv->jobs_tail = NULL;
    priv->queued_events = 0;
    priv->wake_pending = 0;
    pthread_mutex_unlock(&priv->lock);

    for (/* void */; job; job = next) {
        next = job->next;

        switch (job->kind) {

        case AMONITOR_JOB_BROADCAST:
            for (c = priv->conns; c; c = c->next) {
                if (c->state == AMONITOR_CONN_OPEN
                    && amonitor_conn_send_frame(
                           priv, c, job->opcode, job->data, job->len, 1)
                        == AMONITOR_OK) {
                    amonitor_stat_inc(priv, events);
                }
            }
            break;

        case AMONITOR_JOB_CONN:
        case AMONITOR_JOB_EVENT_CONN:
            amonitor_msg_send(priv, job->conn_id, job->opcode, job->data,
                job->len, job->kind == AMONITOR_JOB_CONN);
            break;

        default: /* AMONITOR_JOB_STOP */
            amonitor_flag_set(&priv->leave_loop, 1);
            break;
        }

        free(job);
    }
}


void
amonitor_free_jobs(amonitor_sdk_priv_t *priv)
{
    amonitor_job_t *job;

    pthread_mutex_lock(&priv->lock);

    while (priv->jobs) {
        job = priv->jobs;
        priv->jobs = job->next;
        free(job);
    }

    priv->jobs_tail = NULL;
    priv->queued_events = 0;

    pthread_mutex_unlock(&priv->lock);
}


/* Called with the lock held. */
void
amonitor_wake(amonitor_sdk_priv_t *priv)
{
    if (priv->wake_pending || priv->wake_fd[1] == -1) {
        return;
    }

    priv->wake_pending = 1;

    if (write(priv->wake_fd[1], "w", 1) == -1) {
        /* EAGAIN: the pipe is full, so the loop will wake anyway */
    }
}


/* Queue a ready frame for the I/O thread; takes ownership of "job". */
static int
amonitor_enqueue(amonitor_sdk_priv_t *priv, amonitor_job_t *job)
{
    pthread_mutex_lock(&priv->lock);

    if (job->kind == AMONITOR_JOB_BROADCAST
        || job->kind == AMONITOR_JOB_EVENT_CONN) {
        if (priv->queued_events >= priv->max_queued_events) {
            pthread_mutex_unlock(&priv->lock);
            free(job);
            amonitor_stat_inc(priv, dropped);
            return AMONITOR_ERR_FULL;
        }

        priv->queued_events++;
    }

    if (priv->jobs_tail) {
        priv->jobs_tail->next = job;

    } else {
        priv->jobs = job;
    }

    priv->jobs_tail = job;

    amonitor_wake(priv);

    pthread_mutex_unlock(&priv->lock);

    return AMONITOR_OK;
}


static amonitor_job_t *
amonitor_job_from_buf(unsigned kind, unsigned opcode, const amon_buf_t *b)
{
    amonitor_job_t *job;

    job = malloc(sizeof(amonitor_job_t) + b->len);
    if (job == NULL) {
        return NULL;
    }

    job->next = NULL;
    job->kind = kind;
    job->conn_id = 0;
    job->opcode = opcode;
    job->len = b->len;
    memcpy(job->data, b->data, b->len);

    return job;
}


int
amonitor_sdk_emit_event(
    amonitor_sdk_t *ctx, const char *name, const char *json_data)
{
    return amonitor_emit(ctx, 0, name, json_data);
}


int
amonitor_sdk_emit_event_to(amonitor_sdk_t *ctx, uint64_t conn_id,
    const char *name, const char *json_data)
{
    if (conn_id == 0) {
        return AMONITOR_ERR_INVAL;
    }

    return amonitor_emit(ctx, conn_id, name, json_data);
}


static int
amonitor_emit(amonitor_sdk_t *ctx, uint64_t conn_id, const char *name,
    const char *json_data)
{
    int                  rc;
    amon_buf_t           b;
    amonitor_job_t      *job;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured || name == NULL || name[0] == '\0'
        || !amonitor_valid_text(name, AMON_MAX_ID_LEN)) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (amonitor_foreign(priv)) {
        return AMONITOR_ERR_STATE; /* the agents are another process's */
    }

    memset(&b, 0, sizeof(b));

    rc = amonitor_msg_build_event(priv, &b, name, json_data);
    if (rc != AMONITOR_OK) {
        amon_buf_free(&b, NULL);
        return rc;
    }

    job = amonitor_job_from_buf(
        conn_id ? AMONITOR_JOB_EVENT_CONN : AMONITOR_JOB_BROADCAST,
        priv->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, &b);
    amon_buf_free(&b, NULL);

    if (job == NULL) {
        return AMONITOR_ERR_NOMEM;
    }

    job->conn_id = conn_id;

    return amonitor_enqueue(priv, job);
}


/*
 * Answer a taken pending action: one ack per waiting connection, in the
 * encoding and with the trace_id of the action each sent.  "direct": we
 * are on the loop's thread and send at once; otherwise the acks are
 * queued for it.  The message rule is amonitor_ack_text()'s.
 */
int
amonitor_queue_answer(amonitor_sdk_priv_t *priv, amonitor_pending_t *p,
    int success, const char *message, int direct)
{
    int                rc, err;
    unsigned           opcode;
    amon_buf_t         b;
    amonitor_job_t    *job;
    amonitor_waiter_t *w;
    char               text[AMONITOR_MESSAGE_MAX];

    if (direct) {
        return amonitor_msg_answer(priv, p, success, message);
    }

    if (amonitor_ack_text(message ? message : "", text, sizeof(text))
        != AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "action %s: ack message is not UTF-8, replaced", p->msg_id);
    }

    memset(&b, 0, sizeof(b));
    err = AMONITOR_OK;

    for (w = p->waiters; w; w = w->next) {
        rc = amonitor_msg_build_ack(
            priv, &b, p->msg_id, w->trace_id, success, text, w->binary);
        if (rc != AMONITOR_OK) {
            err = rc;
            continue;
        }

        opcode = w->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT;

        job = amonitor_job_from_buf(AMONITOR_JOB_CONN, opcode, &b);
        if (job == NULL) {
            err = AMONITOR_ERR_NOMEM;
            continue;
        }

        job->conn_id = w->conn_id;
        (void) amonitor_enqueue(priv, job);
    }

    amon_buf_free(&b, NULL);

    return err;
}


/* On the loop's thread: fail pending actions past their deadline. */
void
amonitor_queue_expire(amonitor_sdk_priv_t *priv, int64_t now)
{
    amonitor_pending_t *p;

    while ((p = amonitor_pending_take_expired(priv, now)) != NULL) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "action \"%s\" (%s) not answered within %lld ms: failed", p->name,
            p->msg_id, (long long) priv->pending_timeout);
        amonitor_stat_inc(priv, pending_timeouts);
        (void) amonitor_queue_answer(
            priv, p, 0, "action timed out in the monitored program", 1);
        amonitor_pending_finish(p);
    }
}


/* On the loop's thread, at stop: every pending action gets its answer. */
void
amonitor_queue_fail_all(amonitor_sdk_priv_t *priv, const char *message)
{
    amonitor_pending_t *p;

    while ((p = amonitor_pending_take_any(priv)) != NULL) {
        amonitor_log(priv, AMONITOR_LOG_WARN, "action \"%s\" (%s) failed: %s",
            p->name, p->msg_id, message);
        amonitor_stat_inc(priv, pending_cancelled);
        (void) amonitor_queue_answer(priv, p, 0, message, 1);
        amonitor_pending_finish(p);
    }
}


int
amonitor_sdk_ack(
    amonitor_sdk_t *ctx, const char *msg_id, int success, const char *message)
{
    int                 rc;
    amonitor_pending_t *p;

    if (ctx == NULL || msg_id == NULL || !ctx->priv->configured) {
        return AMONITOR_ERR_INVAL;
    }

    p = amonitor_pending_take(ctx->priv, msg_id);
    if (p == NULL) {
        return AMONITOR_ERR_NOTFOUND;
    }

    rc = amonitor_queue_answer(ctx->priv, p, success, message, 0);
    amonitor_pending_finish(p);

    return rc;
}


int
amonitor_pending_ack(amonitor_pending_t *p, int success, const char *message)
{
    int                  rc;
    amonitor_sdk_priv_t *priv;

    if (p == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    priv = p->priv;

    /* p may be gone after this unless it was taken */
    rc = amonitor_pending_take_handle(p, 1);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    rc = amonitor_queue_answer(priv, p, success, message, 0);
    amonitor_pending_finish(p);

    return rc;
}


int
amonitor_sdk_pending_cancel(
    amonitor_sdk_t *ctx, uint64_t id, const char *message)
{
    int                 rc;
    amonitor_pending_t *p;

    if (ctx == NULL || !ctx->priv->configured) {
        return AMONITOR_ERR_INVAL;
    }

    p = amonitor_pending_take_id(ctx->priv, id);
    if (p == NULL) {
        return AMONITOR_ERR_NOTFOUND;
    }

    amonitor_stat_inc(ctx->priv, pending_cancelled);
    rc = amonitor_queue_answer(
        ctx->priv, p, 0, message ? message : "cancelled", 0);
    amonitor_pending_finish(p);

    return rc;
}

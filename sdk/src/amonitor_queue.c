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
            for (c = priv->conns; c; c = c->next) {
                if (c->id == job->conn_id) {
                    break;
                }
            }

            if (c && c->state == AMONITOR_CONN_OPEN
                && amonitor_conn_send_frame(
                       priv, c, job->opcode, job->data, job->len, 0)
                    == AMONITOR_OK) {
                amonitor_stat_inc(priv, acks);

            } else {
                amonitor_stat_inc(priv, acks_dropped);
                amonitor_log(priv, AMONITOR_LOG_WARN,
                    "async ack dropped: agent connection %llu is gone",
                    (unsigned long long) job->conn_id);
            }
            break;

        default: /* AMONITOR_JOB_STOP */ priv->leave_loop = 1; break;
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

    if (job->kind == AMONITOR_JOB_BROADCAST) {
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
    int                  rc;
    amon_buf_t           b;
    amonitor_job_t      *job;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured || name == NULL || name[0] == '\0'
        || !amonitor_valid_text(name, AMON_MAX_ID_LEN)) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    memset(&b, 0, sizeof(b));

    rc = amonitor_msg_build_event(priv, &b, name, json_data);
    if (rc != AMONITOR_OK) {
        amon_buf_free(&b, NULL);
        return rc;
    }

    job = amonitor_job_from_buf(AMONITOR_JOB_BROADCAST,
        priv->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, &b);
    amon_buf_free(&b, NULL);

    if (job == NULL) {
        return AMONITOR_ERR_NOMEM;
    }

    return amonitor_enqueue(priv, job);
}


int
amonitor_sdk_ack(
    amonitor_sdk_t *ctx, const char *msg_id, int success, const char *message)
{
    int                  rc;
    amon_buf_t           b;
    amonitor_job_t      *job;
    amonitor_pending_t  *p;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || msg_id == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    rc = amonitor_pending_take(priv, msg_id, &p);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    memset(&b, 0, sizeof(b));

    rc = amonitor_msg_build_ack(priv, &b, p->msg_id, p->trace_id, success,
        message ? message : "", p->binary);

    if (rc != AMONITOR_OK) {
        amon_buf_free(&b, NULL);

        /* still answer the agent, with a message we know is valid */
        rc = amonitor_msg_build_ack(priv, &b, p->msg_id, p->trace_id, 0,
            "invalid ack message", p->binary);
        if (rc != AMONITOR_OK) {
            amon_buf_free(&b, NULL);
            amonitor_pending_free(p);
            return rc;
        }
    }

    job = amonitor_job_from_buf(
        AMONITOR_JOB_CONN, p->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, &b);
    amon_buf_free(&b, NULL);

    if (job == NULL) {
        amonitor_pending_free(p);
        return AMONITOR_ERR_NOMEM;
    }

    job->conn_id = p->conn_id;
    amonitor_pending_free(p);

    return amonitor_enqueue(priv, job);
}

/*
 * Copyright (C) AMonitor authors
 *
 * The bottom of the SDK: logging through the host's callback, status
 * texts, small string and buffer helpers, the ack text rule, reading the
 * counters.
 * Every other SDK file may call these; they call nothing of the SDK.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amonitor_sdk_int.h"


const char *
amonitor_strerror(int err)
{
    switch (err) {
    case AMONITOR_OK: return "ok";
    case AMONITOR_ERR_INVAL: return "invalid argument";
    case AMONITOR_ERR_NOMEM: return "out of memory";
    case AMONITOR_ERR_IO: return "system call failed";
    case AMONITOR_ERR_STATE: return "not allowed in this state";
    case AMONITOR_ERR_FULL: return "queue full, message dropped";
    case AMONITOR_ERR_NOTFOUND: return "no pending action with that msg_id";
    case AMONITOR_ERR_TOOBIG: return "message too big";
    default: return "unknown error";
    }
}


/*
 * The context whose log sink this thread is running, if any: the sink is
 * a callback (stop, step and free refuse it), and what the calls it makes
 * log does not reach it again.
 */
static __thread const amonitor_sdk_priv_t *amonitor_log_owner;


void
amonitor_log(amonitor_sdk_priv_t *priv, int level, const char *fmt, ...)
{
    char                       buf[512], line[512 * AMON_ESC_MAX_PER_BYTE];
    va_list                    ap;
    const amonitor_sdk_priv_t *prev;

    if (priv->log_fn == NULL || level > priv->log_level
        || amonitor_log_owner == priv) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    /*
     * A log line may quote what a peer sent (an action's name, a msg_id):
     * one line the host can print to a terminal or a log file as it is.
     */
    (void) amon_escape_text(
        (const unsigned char *) buf, strlen(buf), line, sizeof(line), 0);

    prev = amonitor_log_owner;
    amonitor_log_owner = priv;

    priv->log_fn(level, line, priv->log_data);

    amonitor_log_owner = prev;
}


/*
 * Lines that a peer can cause at will are logged once per
 * AMONITOR_LOG_INTERVAL: 1 when this one is due, else it is counted in
 * "suppressed" for the next line to say.
 */
int
amonitor_log_due(int64_t *logged, unsigned *suppressed)
{
    int64_t now;

    now = amon_posix_now_ms();

    if (*logged != 0 && now - *logged < AMONITOR_LOG_INTERVAL) {
        (*suppressed)++;
        return 0;
    }

    *logged = now;

    return 1;
}


int
amonitor_in_log(const amonitor_sdk_priv_t *priv)
{
    return amonitor_log_owner == priv;
}


char *
amonitor_strdup(const char *s)
{
    size_t len;
    char  *p;

    len = strlen(s) + 1;

    p = malloc(len);
    if (p) {
        memcpy(p, s, len);
    }

    return p;
}


/* Valid UTF-8, no control characters, at most "max" bytes. */
int
amonitor_valid_text(const char *s, size_t max)
{
    size_t len;

    len = strlen(s);

    if (len > max
        || amon_utf8_validate((const unsigned char *) s, len) != AMON_OK) {
        return 0;
    }

    for (/* void */; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * The one ack message rule, for handlers and for acks from any thread: at
 * most "size" - 1 bytes are kept, cut at the last whole character (a text
 * that reaches the limit may end in a partial character: a handler's
 * snprintf() cuts bytes, not characters); what is then not UTF-8 becomes
 * "invalid ack message".  Returns AMONITOR_OK, or AMONITOR_ERR_INVAL when
 * the text was replaced.
 */
int
amonitor_ack_text(const char *in, char *out, size_t size)
{
    size_t        len, i, need;
    unsigned char b;

    len = strnlen(in, size);

    if (len >= size - 1) {
        len = size - 1;

        /* the last character that starts before the limit ... */
        i = len;
        while (i && ((unsigned char) in[i - 1] & 0xc0) == 0x80 && len - i < 3) {
            i--;
        }

        if (i) {
            b = (unsigned char) in[i - 1];
            need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;

            /* ... is dropped unless it ends before it */
            if (b >= 0x80 && len - (i - 1) < need) {
                len = i - 1;
            }
        }
    }

    if (amon_utf8_validate((const unsigned char *) in, len) != AMON_OK) {
        snprintf(out, size, "invalid ack message");
        return AMONITOR_ERR_INVAL;
    }

    memcpy(out, in, len);
    out[len] = '\0';

    return AMONITOR_OK;
}


void
amonitor_sdk_stats(amonitor_sdk_t *ctx, amonitor_stats_t *st)
{
    /* 1.0 programs have room for the counters up to protocol_errors */
    (void) amonitor_sdk_stats_get(ctx, st, offsetof(amonitor_stats_t, pending));
}


int
amonitor_sdk_stats_get(amonitor_sdk_t *ctx, amonitor_stats_t *out, size_t size)
{
    amonitor_counters_t *s;
    amonitor_stats_t     all, *st;

    if (out == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    st = &all;
    memset(st, 0, sizeof(*st));

    if (ctx == NULL) {
        memset(out, 0, size);
        return AMONITOR_ERR_INVAL;
    }

    s = &ctx->priv->stats;

#define amonitor_stat_read(f) st->f = __atomic_load_n(&s->f, __ATOMIC_RELAXED)

    amonitor_stat_read(connections);
    amonitor_stat_read(connections_total);
    amonitor_stat_read(rejected);
    amonitor_stat_read(actions);
    amonitor_stat_read(acks);
    amonitor_stat_read(acks_dropped);
    amonitor_stat_read(heartbeats);
    amonitor_stat_read(events);
    amonitor_stat_read(dropped);
    amonitor_stat_read(invalid);
    amonitor_stat_read(protocol_errors);
    amonitor_stat_read(pending);
    amonitor_stat_read(duplicates);
    amonitor_stat_read(pending_timeouts);
    amonitor_stat_read(pending_cancelled);
    amonitor_stat_read(accept_errors);

#undef amonitor_stat_read

    /* a program built with a larger struct gets zeros in what we lack */
    if (size > sizeof(all)) {
        memset(out, 0, size);
        size = sizeof(all);
    }

    memcpy(out, &all, size);

    return AMONITOR_OK;
}


/* record an API error in the context (ctx->err, ctx->errstr) and log it */
int
amonitor_set_error(amonitor_sdk_t *ctx, int err, const char *fmt, ...)
{
    va_list ap;

    ctx->err = err;

    va_start(ap, fmt);
    vsnprintf(ctx->errstr, sizeof(ctx->errstr), fmt, ap);
    va_end(ap);

    amonitor_log(ctx->priv, AMONITOR_LOG_ERROR, "%s", ctx->errstr);

    return err;
}


/*
 * Does another process listen with this context (or is this a forked copy
 * left unusable by amonitor_loop_forget())?  A child of fork() shares the
 * parent's open files: the epoll instance and its interest list, the
 * listening socket, the agents' sockets, the wake pipe.  It must change
 * none of them, and it has no I/O thread.
 */
int
amonitor_foreign(amonitor_sdk_priv_t *priv)
{
    pid_t pid;

    pid = amonitor_flag_get(&priv->pid);

    return priv->abandoned || (pid != 0 && pid != getpid());
}


amon_str_t
amonitor_cstr(const char *s)
{
    amon_str_t r;

    r.data = (const unsigned char *) s;
    r.len = strlen(s);

    return r;
}


int
amonitor_buf_add(amon_buf_t *b, size_t max, const char *p, size_t len)
{
    int rc;

    rc = amon_buf_reserve(b, len, max, NULL);
    if (rc != AMON_OK) {
        return rc;
    }

    memcpy(b->data + b->len, p, len);
    b->len += len;

    return AMON_OK;
}

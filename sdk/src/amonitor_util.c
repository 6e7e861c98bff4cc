/*
 * Copyright (C) AMonitor authors
 *
 * The bottom of the SDK: logging through the host's callback, status
 * texts, small string helpers, the ack text rule, reading the counters.
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


/*
 * A log line may quote what a peer sent (an action's name, a msg_id, an
 * address): control characters (C0, DEL, C1) are written as \u00HH and
 * bytes that are not UTF-8 as \xHH, so that a line the host prints to a
 * terminal or a log file cannot carry escape sequences or forge a line.
 */
static void
amonitor_log_escape(const char *in, char *out, size_t size)
{
    size_t               i, k, n, len, o;
    const unsigned char *p;

    p = (const unsigned char *) in;
    len = strlen(in);
    o = 0;

    for (i = 0; i < len && o + 7 < size; i += k) {
        k = 1;
        n = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 1;

        if (p[i] < 0x20 || p[i] == 0x7f) {
            o += (size_t) snprintf(out + o, size - o, "\\u%04x", p[i]);

        } else if (p[i] < 0x80) {
            out[o++] = (char) p[i];

        } else if (n == 1 || n > len - i
            || amon_utf8_validate(p + i, n) != AMON_OK) {
            o += (size_t) snprintf(out + o, size - o, "\\x%02x", p[i]);

        } else if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            o += (size_t) snprintf(out + o, size - o, "\\u%04x", p[i + 1]);
            k = 2;

        } else {
            memcpy(out + o, p + i, n);
            o += n;
            k = n;
        }
    }

    out[o] = '\0';
}


void
amonitor_log(amonitor_sdk_priv_t *priv, int level, const char *fmt, ...)
{
    char                       buf[512], line[512 * 6];
    va_list                    ap;
    const amonitor_sdk_priv_t *prev;

    if (priv->log_fn == NULL || level > priv->log_level
        || amonitor_log_owner == priv) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    amonitor_log_escape(buf, line, sizeof(line));

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

/*
 * Copyright (C) AMonitor authors
 *
 * SDK safety tests (cmocka, TAP output): free and stop while a handler
 * runs, free from a handler, pending handles (duplicates on two
 * connections, timeout, cancel, list, failed at free, ack after free),
 * the one ack text rule, handler result codes, teardown once per data,
 * connection callbacks, the params view, the non-blocking stop, the
 * EMFILE back-off, growable stats.  A raw WebSocket client in-process.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "amonitor.h"


typedef struct {
    pthread_mutex_t     lock;
    pthread_cond_t      cond;
    int                 entered;
    int                 finished;
    int                 calls;
    int                 teardowns;
    int                 sleep_ms;
    int                 result;
    const char         *text;
    amonitor_pending_t *pending;
    amonitor_sdk_t     *ctx;
    int                 free_rc;
} probe_t;


static const char upgrade[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";


static void
probe_init(probe_t *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
}


static void
probe_done(probe_t *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}


static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* time limits stretch under valgrind (the plain and ASan runs are strict) */
static int64_t
slow(void)
{
    return getenv("AMON_TEST_VALGRIND") ? 10 : 1;
}


static amonitor_sdk_t *
new_ctx(void)
{
    amonitor_sdk_config_t cfg;
    amonitor_sdk_t       *ctx;

    amonitor_sdk_config_init(&cfg);
    cfg.port = 0;
    cfg.heartbeat_ms = 0;
    cfg.target_id = "safety";

    ctx = amonitor_sdk_new(&cfg);
    assert_non_null(ctx);
    assert_int_equal(ctx->err, AMONITOR_OK);

    return ctx;
}


static int
raw_connect(int port)
{
    int                fd;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    assert_int_equal(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);

    return fd;
}


/*
 * Read from "fd" until "needle" shows up: stepping "ctx" (host loop) or,
 * with ctx NULL, just waiting (the I/O thread runs).  NULs become spaces.
 */
static size_t
raw_read_until(
    amonitor_sdk_t *ctx, int fd, char *buf, size_t cap, const char *needle)
{
    size_t        len, k;
    ssize_t       n;
    int           i;
    struct pollfd pfd;

    len = 0;
    buf[0] = '\0';

    for (i = 0; i < 300 && strstr(buf, needle) == NULL; i++) {
        if (ctx) {
            assert_true(amonitor_sdk_step(ctx, 10) >= AMONITOR_OK);
        }

        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, ctx ? 0 : 20) == 1) {
            n = recv(fd, buf + len, cap - 1 - len, 0);
            if (n <= 0) {
                break;
            }
            len += (size_t) n;
            buf[len] = '\0';

            for (k = 0; k < len; k++) {
                if (buf[k] == '\0') {
                    buf[k] = ' ';
                }
            }
        }
    }

    return strstr(buf, needle) ? len : 0;
}


static void
raw_send_text(int fd, const char *text)
{
    size_t         len, i, h;
    unsigned char *frame;
    unsigned char  mask[4] = {1, 2, 3, 4};

    len = strlen(text);
    assert_true(len < 65536);

    frame = malloc(len + 8);
    assert_non_null(frame);

    frame[0] = 0x81;
    if (len < 126) {
        frame[1] = (unsigned char) (0x80 | len);
        h = 2;

    } else {
        frame[1] = 0x80 | 126;
        frame[2] = (unsigned char) (len >> 8);
        frame[3] = (unsigned char) len;
        h = 4;
    }

    memcpy(frame + h, mask, 4);
    for (i = 0; i < len; i++) {
        frame[h + 4 + i] = (unsigned char) text[i] ^ mask[i % 4];
    }

    assert_int_equal(send(fd, frame, h + 4 + len, 0), (ssize_t) (h + 4 + len));
    free(frame);
}


/* A connected agent: handshake done (101 read). */
static int
agent(amonitor_sdk_t *ctx, int port)
{
    int  fd;
    char buf[4096];

    fd = raw_connect(port);
    assert_int_equal(send(fd, upgrade, sizeof(upgrade) - 1, 0),
        (ssize_t) sizeof(upgrade) - 1);
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "\r\n\r\n") > 0);
    assert_non_null(strstr(buf, "101"));

    return fd;
}


static void
send_action(int fd, const char *msg_id, const char *name)
{
    char text[512];

    snprintf(text, sizeof(text),
        "{\"msg_id\":\"%s\",\"type\":\"action\",\"payload\":{\"action\":"
        "\"%s\",\"params\":{\"n\":5}}}",
        msg_id, name);
    raw_send_text(fd, text);
}


/* The length of the last "message" in "buf" (no escapes used). */
static size_t
ack_message_len(const char *buf)
{
    const char *p, *q;

    p = NULL;
    for (q = strstr(buf, "\"message\":\""); q;
         q = strstr(q + 1, "\"message\":\"")) {
        p = q;
    }
    assert_non_null(p);
    p += 11;
    q = strchr(p, '"');
    assert_non_null(q);

    return (size_t) (q - p);
}


/* --- handlers ------------------------------------------------------- */

static int
slow_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    probe_t *p = data;

    pthread_mutex_lock(&p->lock);
    p->entered = 1;
    p->calls++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);

    usleep((useconds_t) p->sleep_ms * 1000);

    pthread_mutex_lock(&p->lock);
    p->finished = 1;
    pthread_mutex_unlock(&p->lock);

    snprintf(message, size, "slow done");

    return AMONITOR_REPLY_SUCCESS;
}


static int
later_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    probe_t *p = data;

    assert_non_null(a->pending);
    assert_string_equal(amonitor_pending_msg_id(a->pending), a->msg_id);
    assert_true(amonitor_pending_id(a->pending) > 0);

    pthread_mutex_lock(&p->lock);
    p->calls++;
    p->pending = a->pending;
    p->entered = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);

    return AMONITOR_REPLY_LATER;
}


static int
text_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    probe_t *p = data;

    assert_int_equal(size, AMONITOR_MESSAGE_MAX);
    snprintf(message, size, "%s", p->text);
    p->calls++;

    return p->result;
}


static void
probe_teardown(void *data)
{
    probe_t *p = data;

    p->teardowns++;
}


static int
old_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    probe_t *p = data;

    if (a == NULL) {
        p->teardowns++;
        return AMONITOR_ACTION_OK;
    }

    assert_null(a->pending);
    p->calls++;

    return AMONITOR_ACTION_OK;
}


/* Replaces itself (allowed on the loop's thread), with a 1.0 filler. */
static int
swap_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    probe_t *p = data;

    assert_int_equal(
        amonitor_sdk_handle(ctx, a->name, text_handler, probe_teardown, p),
        AMONITOR_OK);
    assert_int_equal(
        amonitor_sdk_on_action(ctx, "filler", old_handler, p), AMONITOR_OK);
    snprintf(message, size, "swapped");
    p->calls++;

    return AMONITOR_REPLY_SUCCESS;
}


static void
wait_entered(probe_t *p)
{
    pthread_mutex_lock(&p->lock);
    while (!p->entered) {
        pthread_cond_wait(&p->cond, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
}


/* --- crash 1: free and stop while a handler runs ------------------ */

static void
test_free_while_handler_runs(void **state)
{
    int             fd;
    int64_t         t0;
    char            buf[8192];
    probe_t         p;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    p.sleep_ms = 300;

    ctx = new_ctx();
    assert_int_equal(
        amonitor_sdk_handle(ctx, "slow", slow_handler, probe_teardown, &p),
        AMONITOR_OK);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);

    fd = agent(NULL, amonitor_sdk_port(ctx));
    send_action(fd, "s-1", "slow");
    wait_entered(&p);

    /* stop from the owning thread is not refused: it waits */
    t0 = now_ms();
    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    assert_int_equal(p.finished, 1);
    assert_true(now_ms() - t0 >= 200);

    /* the handler's answer went out before the close */
    assert_true(raw_read_until(NULL, fd, buf, sizeof(buf), "slow done") > 0);
    assert_non_null(strstr(buf, "\"success\":true"));
    close(fd);

    /* and again with free itself */
    p.entered = 0;
    p.finished = 0;
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    fd = agent(NULL, amonitor_sdk_port(ctx));
    send_action(fd, "s-2", "slow");
    wait_entered(&p);

    amonitor_sdk_free(ctx);
    assert_int_equal(p.finished, 1);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.teardowns, 1);

    close(fd);
    probe_done(&p);
}


static int
reentrant_handler(amonitor_sdk_t *ctx, const amonitor_action_t *a,
    char *message, size_t size, void *data)
{
    probe_t *p = data;

    amonitor_sdk_free(ctx); /* ignored and logged */
    p->free_rc = amonitor_sdk_stop(ctx);
    p->result = amonitor_sdk_step(ctx, 0);
    p->calls++;
    snprintf(message, size, "still here");

    return AMONITOR_REPLY_SUCCESS;
}


static void
count_log(int level, const char *msg, void *data)
{
    probe_t *p = data;

    if (msg && strstr(msg, "from a callback")) {
        p->teardowns++;
    }

    if (msg && strstr(msg, "accept4()")) {
        p->entered++;
    }
}


static void
test_free_from_handler(void **state)
{
    int             fd;
    char            buf[8192];
    probe_t         p, logp;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    probe_init(&logp);

    ctx = new_ctx();
    amonitor_sdk_set_log(ctx, AMONITOR_LOG_ERROR, count_log, &logp);
    amonitor_sdk_handle(ctx, "x", reentrant_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    fd = agent(ctx, amonitor_sdk_port(ctx));
    send_action(fd, "r-1", "x");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "still here") > 0);

    assert_int_equal(p.calls, 1);
    assert_int_equal(p.free_rc, AMONITOR_ERR_STATE);
    assert_int_equal(p.result, AMONITOR_ERR_STATE);
    assert_true(logp.teardowns >= 2); /* free and step logged */

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&p);
    probe_done(&logp);
}


/* The log sink is a callback too: it may run deep inside a step. */
static void
reentrant_log(int level, const char *msg, void *data)
{
    probe_t *p = data;

    if (msg == NULL || strstr(msg, "agent connected") == NULL) {
        return;
    }

    p->calls++;
    p->result = amonitor_sdk_stop(p->ctx);
    p->free_rc = amonitor_sdk_step(p->ctx, 0);
    p->teardowns = amonitor_sdk_stop_begin(p->ctx);
    amonitor_sdk_free(p->ctx); /* ignored */
}


static void
test_stop_from_log_sink(void **state)
{
    int             fd;
    char            buf[8192];
    probe_t         p, logp;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    probe_init(&logp);

    ctx = new_ctx();
    logp.ctx = ctx;
    amonitor_sdk_set_log(ctx, AMONITOR_LOG_INFO, reentrant_log, &logp);
    amonitor_sdk_handle(ctx, "text", text_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    fd = agent(ctx, amonitor_sdk_port(ctx));
    p.text = "served";
    p.result = AMONITOR_REPLY_SUCCESS;
    send_action(fd, "l-1", "text");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "served") > 0);

    assert_int_equal(logp.calls, 1);
    assert_int_equal(logp.result, AMONITOR_ERR_STATE);
    assert_int_equal(logp.free_rc, AMONITOR_ERR_STATE);
    assert_int_equal(logp.teardowns, AMONITOR_ERR_STATE);

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&p);
    probe_done(&logp);
}


static void
probe_metrics(amonitor_sdk_t *ctx, amonitor_metrics_t *m, void *data)
{
    probe_t *p = data;

    if (m == NULL) {
        p->teardowns++;
        return;
    }

    p->calls++;
    amonitor_metrics_add_int(m, "calls", p->calls);
}


/* Another thread may not swap the callbacks the I/O thread calls. */
static void
test_callbacks_set_while_running(void **state)
{
    probe_t         p, logp;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    probe_init(&logp);

    ctx = new_ctx();
    assert_int_equal(
        amonitor_sdk_set_metrics(ctx, probe_metrics, &p), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);

    assert_int_equal(
        amonitor_sdk_set_metrics(ctx, NULL, NULL), AMONITOR_ERR_STATE);
    assert_int_equal(
        amonitor_sdk_set_log(ctx, AMONITOR_LOG_DEBUG, count_log, &logp),
        AMONITOR_ERR_STATE);
    assert_int_equal(p.teardowns, 0); /* the provider is still in use */

    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_set_metrics(ctx, NULL, NULL), AMONITOR_OK);
    assert_int_equal(p.teardowns, 1);

    amonitor_sdk_free(ctx);
    probe_done(&p);
    probe_done(&logp);
}


/* --- crash 4: the same pending msg_id on two connections ----------- */

static void
count_pending(const amonitor_pending_info_t *info, void *data)
{
    probe_t *p = data;

    assert_string_equal(info->msg_id, "dup-1");
    assert_string_equal(info->name, "later");
    p->result = (int) info->waiters;
}


static void
test_duplicates_answered_once(void **state)
{
    int              a, b;
    char             buf[8192];
    probe_t          p, l;
    amonitor_sdk_t  *ctx;
    amonitor_stats_t st;

    probe_init(&p);
    probe_init(&l);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "later", later_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    a = agent(ctx, amonitor_sdk_port(ctx));
    b = agent(ctx, amonitor_sdk_port(ctx));

    send_action(a, "dup-1", "later");
    send_action(b, "dup-1", "later");

    while (amonitor_sdk_stats_get(ctx, &st, sizeof(st)) == AMONITOR_OK
        && st.duplicates == 0) {
        assert_int_equal(amonitor_sdk_step(ctx, 10), AMONITOR_OK);
    }

    assert_int_equal(p.calls, 1);
    assert_int_equal(amonitor_sdk_pending_list(ctx, count_pending, &l), 1);
    assert_int_equal(l.result, 2);

    assert_int_equal(amonitor_pending_ack(p.pending, 1, "both"), AMONITOR_OK);

    assert_true(raw_read_until(ctx, a, buf, sizeof(buf), "both") > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"dup-1\""));
    assert_true(raw_read_until(ctx, b, buf, sizeof(buf), "both") > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"dup-1\""));

    amonitor_sdk_stats_get(ctx, &st, sizeof(st));
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.acks, 2);
    assert_int_equal(st.pending, 0);
    assert_int_equal(amonitor_sdk_pending_list(ctx, NULL, NULL), 0);

    close(a);
    close(b);
    amonitor_sdk_free(ctx);
    probe_done(&p);
    probe_done(&l);
}


/* --- crash 5: one ack text rule ---------------------------------- */

static void
test_ack_text_rule(void **state)
{
    int             fd;
    size_t          sync_len, async_len;
    char           *big;
    char            buf[65536];
    probe_t         p, q;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    probe_init(&q);

    big = malloc(5001);
    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    big[1022] = '\xc3'; /* a 2-byte character across the limit */
    big[1023] = '\xa9';

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "text", text_handler, NULL, &p);
    amonitor_sdk_handle(ctx, "later", later_handler, NULL, &q);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    fd = agent(ctx, amonitor_sdk_port(ctx));

    /* invalid UTF-8: replaced, success kept, both ways */
    p.text = "bad \xff text";
    p.result = AMONITOR_REPLY_SUCCESS;
    send_action(fd, "t-1", "text");
    assert_true(
        raw_read_until(ctx, fd, buf, sizeof(buf), "invalid ack message") > 0);
    assert_non_null(strstr(buf, "\"success\":true"));

    send_action(fd, "t-2", "later");
    while (q.pending == NULL) {
        amonitor_sdk_step(ctx, 10);
    }
    assert_int_equal(
        amonitor_pending_ack(q.pending, 1, "bad \xff text"), AMONITOR_OK);
    assert_true(
        raw_read_until(ctx, fd, buf, sizeof(buf), "invalid ack message") > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"t-2\""));
    assert_non_null(strstr(buf, "\"success\":true"));

    /* long text: both cut at the same whole character */
    p.text = big;
    send_action(fd, "t-3", "text");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "xxxx\"") > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"t-3\""));
    sync_len = ack_message_len(buf);

    q.pending = NULL;
    send_action(fd, "t-4", "later");
    while (q.pending == NULL) {
        amonitor_sdk_step(ctx, 10);
    }
    assert_int_equal(amonitor_pending_ack(q.pending, 1, big), AMONITOR_OK);
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "xxxx\"") > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"t-4\""));
    async_len = ack_message_len(buf);

    assert_int_equal(sync_len, 1022);
    assert_int_equal(async_len, sync_len);

    close(fd);
    amonitor_sdk_free(ctx);
    free(big);
    probe_done(&p);
    probe_done(&q);
}


/* --- handler results, teardown once ----------------------------- */

static void
test_reply_codes(void **state)
{
    int             fd;
    char            buf[8192];
    probe_t         p;
    amonitor_sdk_t *ctx;

    probe_init(&p);

    assert_true(AMONITOR_REPLY_SUCCESS != AMONITOR_OK);
    assert_true(AMONITOR_REPLY_FAILURE != AMONITOR_OK);
    assert_true(AMONITOR_REPLY_LATER != AMONITOR_OK);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "text", text_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    fd = agent(ctx, amonitor_sdk_port(ctx));

    p.text = "fine";
    p.result = AMONITOR_OK; /* the classic mistake */
    send_action(fd, "c-1", "text");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf),
                    "handler returned an invalid result")
        > 0);
    assert_non_null(strstr(buf, "\"success\":false"));

    p.result = AMONITOR_REPLY_FAILURE;
    send_action(fd, "c-2", "text");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "fine") > 0);
    assert_non_null(strstr(buf, "\"success\":false"));

    p.result = AMONITOR_REPLY_SUCCESS;
    send_action(fd, "c-3", "text");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "fine") > 0);
    assert_non_null(strstr(buf, "\"success\":true"));

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&p);
}


/* A handler that replaces its own registration while it runs. */
static void
test_handler_replaces_itself(void **state)
{
    int             fd;
    char            buf[8192];
    probe_t         p;
    amonitor_sdk_t *ctx;

    probe_init(&p);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "swap", swap_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    fd = agent(ctx, amonitor_sdk_port(ctx));

    send_action(fd, "s-1", "swap");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "swapped") > 0);
    assert_non_null(strstr(buf, "\"success\":true"));

    p.text = "replaced";
    p.result = AMONITOR_REPLY_SUCCESS;
    send_action(fd, "s-2", "swap");
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "replaced") > 0);
    assert_non_null(strstr(buf, "\"success\":true"));
    assert_int_equal(p.calls, 2);

    close(fd);
    amonitor_sdk_free(ctx);
    /* (text_handler, probe_teardown, &p) and the filler (old_handler, &p) */
    assert_int_equal(p.teardowns, 2);
    probe_done(&p);
}


static void
test_teardown_once_per_data(void **state)
{
    probe_t         p, q;
    amonitor_sdk_t *ctx;

    probe_init(&p);
    probe_init(&q);

    ctx = new_ctx();
    amonitor_sdk_on_action(ctx, "a", old_handler, &p);
    amonitor_sdk_on_action(ctx, "b", old_handler, &p);
    amonitor_sdk_on_action(ctx, NULL, old_handler, &p);
    amonitor_sdk_handle(ctx, "c", text_handler, probe_teardown, &q);
    amonitor_sdk_handle(ctx, "d", text_handler, probe_teardown, &q);

    /* "a" replaced: "b" still uses (old_handler, &p) */
    amonitor_sdk_on_action(ctx, "a", old_handler, &q);
    assert_int_equal(p.teardowns, 0);

    amonitor_sdk_free(ctx);
    assert_int_equal(p.teardowns, 1);
    /* (old_handler, &q) and (probe_teardown, &q): two pairs */
    assert_int_equal(q.teardowns, 2);

    probe_done(&p);
    probe_done(&q);
}


/* --- pending: timeout, cancel, failed at free, ack after free ------ */

static void
test_pending_timeout_and_cancel(void **state)
{
    int              fd;
    uint64_t         id;
    char             buf[8192];
    probe_t          p;
    amonitor_sdk_t  *ctx;
    amonitor_stats_t st;

    probe_init(&p);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "later", later_handler, NULL, &p);
    assert_int_equal(
        amonitor_sdk_set_option(ctx, 12345, 1), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_set_option(ctx, AMONITOR_OPT_PENDING_TIMEOUT_MS, -1),
        AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_set_option(ctx, AMONITOR_OPT_PENDING_TIMEOUT_MS, 200),
        AMONITOR_OK);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    assert_int_equal(
        amonitor_sdk_set_option(ctx, AMONITOR_OPT_PENDING_TIMEOUT_MS, 100),
        AMONITOR_ERR_STATE);
    fd = agent(ctx, amonitor_sdk_port(ctx));

    send_action(fd, "p-1", "later");
    while (p.pending == NULL) {
        amonitor_sdk_step(ctx, 10);
    }

    /* the timer is part of amonitor_sdk_timeout() */
    assert_true(amonitor_sdk_timeout(ctx) > 0);
    assert_true(amonitor_sdk_timeout(ctx) <= 200);

    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf),
                    "action timed out in the monitored program")
        > 0);
    assert_non_null(strstr(buf, "\"success\":false"));
    assert_int_equal(
        amonitor_pending_ack(p.pending, 1, "late"), AMONITOR_ERR_NOTFOUND);

    p.pending = NULL;
    send_action(fd, "p-2", "later");
    while (p.pending == NULL) {
        amonitor_sdk_step(ctx, 10);
    }

    id = amonitor_pending_id(p.pending);
    assert_int_equal(amonitor_sdk_pending_list(ctx, NULL, NULL), 1);
    assert_int_equal(amonitor_sdk_pending_cancel(ctx, id + 100, NULL),
        AMONITOR_ERR_NOTFOUND);
    assert_int_equal(
        amonitor_sdk_pending_cancel(ctx, id, "operator said no"), AMONITOR_OK);
    assert_true(
        raw_read_until(ctx, fd, buf, sizeof(buf), "operator said no") > 0);
    assert_int_equal(amonitor_sdk_pending_list(ctx, NULL, NULL), 0);
    assert_int_equal(
        amonitor_pending_ack(p.pending, 1, "late"), AMONITOR_ERR_NOTFOUND);

    amonitor_sdk_stats_get(ctx, &st, sizeof(st));
    assert_int_equal(st.pending_timeouts, 1);
    assert_int_equal(st.pending_cancelled, 1);

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&p);
}


typedef struct {
    amonitor_pending_t *pending;
    int                 rc;
} late_ack_t;


static void *
late_ack_thread(void *arg)
{
    late_ack_t *la = arg;

    usleep(100 * 1000);
    la->rc = amonitor_pending_ack(la->pending, 1, "too late");

    return NULL;
}


static void
test_pending_failed_at_free(void **state)
{
    int             fd;
    char            buf[8192];
    probe_t         p;
    pthread_t       t;
    late_ack_t      la;
    amonitor_sdk_t *ctx;

    probe_init(&p);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "later", later_handler, NULL, &p);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    fd = agent(NULL, amonitor_sdk_port(ctx));

    send_action(fd, "f-1", "later");
    wait_entered(&p);

    /* the program's thread answers after the context is gone */
    la.pending = p.pending;
    la.rc = 0;
    amonitor_sdk_free(ctx);
    pthread_create(&t, NULL, late_ack_thread, &la);
    pthread_join(t, NULL);
    assert_int_equal(la.rc, AMONITOR_ERR_STATE);

    assert_true(raw_read_until(NULL, fd, buf, sizeof(buf),
                    "monitored program stopped before answering")
        > 0);
    assert_non_null(strstr(buf, "\"action_msg_id\":\"f-1\""));
    assert_non_null(strstr(buf, "\"success\":false"));

    close(fd);
    probe_done(&p);
}


/* --- connection callbacks ---------------------------------------- */

typedef struct {
    int      up;
    int      down;
    int      teardowns;
    uint64_t last;
    char     peer[64];
} conns_t;


static void
on_conn(amonitor_sdk_t *ctx, uint64_t id, const char *peer, int connected,
    void *data)
{
    conns_t *c = data;

    if (connected) {
        c->up++;
        c->last = id;
        snprintf(c->peer, sizeof(c->peer), "%s", peer);
        /* push state to the new agent only */
        assert_int_equal(amonitor_sdk_emit_event_to(
                             ctx, id, "hello", "{\"state\":\"ready\"}"),
            AMONITOR_OK);

    } else {
        c->down++;
    }
}


static void
conns_teardown(void *data)
{
    ((conns_t *) data)->teardowns++;
}


static void
test_connection_callbacks(void **state)
{
    int             a, b, i;
    char            buf[8192];
    conns_t         c;
    amonitor_sdk_t *ctx;

    memset(&c, 0, sizeof(c));

    ctx = new_ctx();
    assert_int_equal(
        amonitor_sdk_on_connection(ctx, on_conn, conns_teardown, &c),
        AMONITOR_OK);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    a = agent(ctx, amonitor_sdk_port(ctx));
    assert_true(
        raw_read_until(ctx, a, buf, sizeof(buf), "\"state\":\"ready\"") > 0);
    assert_int_equal(c.up, 1);
    assert_non_null(strstr(c.peer, "127.0.0.1:"));

    b = agent(ctx, amonitor_sdk_port(ctx));
    assert_true(
        raw_read_until(ctx, b, buf, sizeof(buf), "\"state\":\"ready\"") > 0);
    assert_int_equal(c.up, 2);

    /* "a" got no second hello */
    assert_int_equal(raw_read_until(ctx, a, buf, sizeof(buf), "hello"), 0);

    close(a);
    for (i = 0; i < 100 && c.down == 0; i++) {
        amonitor_sdk_step(ctx, 10);
    }
    assert_int_equal(c.down, 1);

    assert_int_equal(
        amonitor_sdk_emit_event_to(ctx, 0, "x", NULL), AMONITOR_ERR_INVAL);

    close(b);
    amonitor_sdk_free(ctx);
    assert_int_equal(c.teardowns, 1);
}


/* --- params view ------------------------------------------------- */

static void
test_params_view(void **state)
{
    int               b;
    long long         n;
    char              s[16];
    amonitor_action_t a;
    static const char json[] = "{\"name\":\"caf\\u00e9\",\"n\":-42,"
                               "\"f\":1.5,\"on\":true,\"off\":false,"
                               "\"long\":\"0123456789abcdef\"}";

    memset(&a, 0, sizeof(a));
    a.params = json;
    a.params_len = sizeof(json) - 1;

    assert_int_equal(
        amonitor_action_param_string(&a, "name", s, sizeof(s)), AMONITOR_OK);
    assert_string_equal(s, "caf\xc3\xa9");
    assert_int_equal(amonitor_action_param_int(&a, "n", &n), AMONITOR_OK);
    assert_int_equal(n, -42);
    assert_int_equal(
        amonitor_action_param_int(&a, "f", &n), AMONITOR_ERR_INVAL);
    assert_int_equal(amonitor_action_param_bool(&a, "on", &b), AMONITOR_OK);
    assert_int_equal(b, 1);
    assert_int_equal(amonitor_action_param_bool(&a, "off", &b), AMONITOR_OK);
    assert_int_equal(b, 0);
    assert_int_equal(
        amonitor_action_param_bool(&a, "n", &b), AMONITOR_ERR_INVAL);
    assert_int_equal(amonitor_action_param_string(&a, "long", s, sizeof(s)),
        AMONITOR_ERR_TOOBIG);
    assert_int_equal(
        amonitor_action_param_int(&a, "missing", &n), AMONITOR_ERR_NOTFOUND);

    /* a NUL would cut the C string: "/srv/a" of "/srv/a\0/../b" */
    a.params = "{\"path\":\"/srv/a\\u0000/../b\"}";
    a.params_len = strlen(a.params);
    s[0] = 'x';
    assert_int_equal(amonitor_action_param_string(&a, "path", s, sizeof(s)),
        AMONITOR_ERR_INVAL);
    assert_string_equal(s, "");

    /* a member given twice: JSON libraries differ on which one counts */
    a.params = "{\"mode\":\"soft\",\"n\":1,\"mode\":\"hard\"}";
    a.params_len = strlen(a.params);
    assert_int_equal(amonitor_action_param_string(&a, "mode", s, sizeof(s)),
        AMONITOR_ERR_INVAL);
    assert_int_equal(amonitor_action_param_int(&a, "n", &n), AMONITOR_OK);
    assert_int_equal(n, 1);
    a.params = "{\"on\":true,\"in\":{\"on\":false}}";
    a.params_len = strlen(a.params);
    assert_int_equal(amonitor_action_param_bool(&a, "on", &b), AMONITOR_OK);
    assert_int_equal(b, 1);

    a.params = "[1,2]";
    a.params_len = 5;
    assert_int_equal(
        amonitor_action_param_int(&a, "n", &n), AMONITOR_ERR_NOTFOUND);
}


/* --- the non-blocking stop --------------------------------------- */

static void
test_stop_begin(void **state)
{
    int             fd, rc, i, epfd;
    int64_t         t0;
    char            buf[8192];
    probe_t         p;
    amonitor_sdk_t *ctx;

    static const unsigned char close_reply[] = {
        0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9};

    probe_init(&p);

    ctx = new_ctx();
    amonitor_sdk_handle(ctx, "later", later_handler, NULL, &p);
    epfd = amonitor_sdk_fd(ctx);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    fd = agent(ctx, amonitor_sdk_port(ctx));

    send_action(fd, "b-1", "later");
    while (p.pending == NULL) {
        amonitor_sdk_step(ctx, 10);
    }

    t0 = now_ms();
    assert_int_equal(amonitor_sdk_stop_begin(ctx), AMONITOR_OK);
    assert_true(now_ms() - t0 < 100 * slow());

    /* the pending action failed, then close 1001 */
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf),
                    "monitored program stopped before answering")
        > 0);
    assert_int_equal(send(fd, close_reply, sizeof(close_reply), 0),
        (ssize_t) sizeof(close_reply));

    rc = AMONITOR_OK;
    for (i = 0; i < 200 && rc == AMONITOR_OK; i++) {
        rc = amonitor_sdk_step(ctx, 10);
    }
    assert_int_equal(rc, AMONITOR_STOPPED);
    /* the peer answered: no 1 s wait */
    assert_true(now_ms() - t0 < 900 * slow());
    assert_int_equal(amonitor_sdk_port(ctx), -1);
    assert_int_equal(
        amonitor_pending_ack(p.pending, 1, "x"), AMONITOR_ERR_NOTFOUND);

    /* same descriptor after listening again */
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_fd(ctx), epfd);

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&p);
}


/* --- crash 3: EMFILE on accept ----------------------------------- */

static void
test_emfile_backoff(void **state)
{
    int              fd, i, n, rc, spare[4096];
    int64_t          t0;
    char             buf[4096];
    probe_t          logp;
    struct rlimit    rl, low;
    struct rusage    r0, r1;
    amonitor_sdk_t  *ctx;
    amonitor_stats_t st;
    long             cpu_ms;

    probe_init(&logp);

    ctx = new_ctx();
    amonitor_sdk_set_log(ctx, AMONITOR_LOG_ERROR, count_log, &logp);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    /* the client's socket first, then no descriptor left for accept */
    fd = raw_connect(amonitor_sdk_port(ctx));
    assert_int_equal(send(fd, upgrade, sizeof(upgrade) - 1, 0),
        (ssize_t) sizeof(upgrade) - 1);

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = rl;
    low.rlim_cur = (rlim_t) fd + 16;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    for (n = 0; n < 4096; n++) {
        spare[n] = open("/dev/null", O_RDONLY);
        if (spare[n] == -1) {
            break;
        }
    }
    assert_int_equal(errno, EMFILE);

    getrusage(RUSAGE_SELF, &r0);
    t0 = now_ms();
    while (now_ms() - t0 < 1000) {
        rc = amonitor_sdk_step(ctx, 50);
        assert_int_equal(rc, AMONITOR_OK);
    }
    getrusage(RUSAGE_SELF, &r1);

    cpu_ms = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000
        + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1000
        + (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000
        + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1000;

    amonitor_sdk_stats_get(ctx, &st, sizeof(st));
    print_message("# EMFILE for 1 s: %ld ms CPU, %llu accept errors, %d log "
                  "lines\n",
        cpu_ms, (unsigned long long) st.accept_errors, logp.entered);

    assert_true(st.accept_errors >= 2); /* it retried ... */
    assert_true(st.accept_errors <= 20); /* ... after a pause each time */
    assert_int_equal(logp.entered, 1); /* one line per 10 s */
    assert_true(cpu_ms < 300);

    for (i = 0; i < n; i++) {
        close(spare[i]);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);

    /* descriptors again: the waiting agent is served */
    assert_true(raw_read_until(ctx, fd, buf, sizeof(buf), "\r\n\r\n") > 0);
    assert_non_null(strstr(buf, "101"));

    close(fd);
    amonitor_sdk_free(ctx);
    probe_done(&logp);
}


/* --- stats that can grow ----------------------------------------- */

static void
test_stats_sizes(void **state)
{
    unsigned char    big[sizeof(amonitor_stats_t) + 16];
    amonitor_stats_t st;
    amonitor_sdk_t  *ctx;

    ctx = new_ctx();

    /* a 1.0 program: the first eleven fields only, nothing after them */
    memset(&st, 0xee, sizeof(st));
    amonitor_sdk_stats(ctx, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.protocol_errors, 0);
    assert_int_equal(
        ((unsigned char *) &st)[offsetof(amonitor_stats_t, pending)], 0xee);

    /* a later program with a larger struct: zeros beyond ours */
    memset(big, 0xee, sizeof(big));
    assert_int_equal(amonitor_sdk_stats_get(
                         ctx, (amonitor_stats_t *) (void *) big, sizeof(big)),
        AMONITOR_OK);
    assert_int_equal(big[sizeof(big) - 1], 0);

    amonitor_sdk_free(ctx);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_while_handler_runs),
        cmocka_unit_test(test_free_from_handler),
        cmocka_unit_test(test_stop_from_log_sink),
        cmocka_unit_test(test_callbacks_set_while_running),
        cmocka_unit_test(test_duplicates_answered_once),
        cmocka_unit_test(test_ack_text_rule),
        cmocka_unit_test(test_reply_codes),
        cmocka_unit_test(test_handler_replaces_itself),
        cmocka_unit_test(test_teardown_once_per_data),
        cmocka_unit_test(test_pending_timeout_and_cancel),
        cmocka_unit_test(test_pending_failed_at_free),
        cmocka_unit_test(test_connection_callbacks),
        cmocka_unit_test(test_params_view), cmocka_unit_test(test_stop_begin),
        cmocka_unit_test(test_stats_sizes),
        cmocka_unit_test(test_emfile_backoff), /* last: see below */
    };

    /*
     * valgrind emulates the descriptor limit after the system call: the
     * kernel accepts, valgrind closes the new socket and reports EMFILE,
     * so the agent is gone.  Not run there; the plain and ASan runs are.
     */
    if (getenv("AMON_TEST_VALGRIND")) {
        printf("# test_emfile_backoff is not run under valgrind\n");
        return _cmocka_run_group_tests(
            "tests", tests, sizeof(tests) / sizeof(tests[0]) - 1, NULL, NULL);
    }

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Copyright (C) AMonitor authors
 *
 * SDK API unit tests (cmocka, TAP output): configuration checks, error
 * texts, callback teardown, state errors, bounded queues, the host-loop
 * functions and a whole exchange over a raw socket driven by
 * amonitor_sdk_step(), a forked child releasing its copy of a running
 * context, and the log of a connection refused while stopping.
 */

#include <arpa/inet.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "amonitor.h"


typedef struct {
    int teardowns;
    int calls;
} counter_t;


static int
count_action(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    counter_t *c = data;

    if (a == NULL) {
        assert_null(message);
        c->teardowns++;
        return AMONITOR_ACTION_OK;
    }

    c->calls++;
    snprintf(message, size, "done %s", a->name);

    return AMONITOR_ACTION_OK;
}


static void
count_metrics(amonitor_sdk_t *ctx, amonitor_metrics_t *m, void *data)
{
    counter_t *c = data;

    if (m == NULL) {
        c->teardowns++;
        return;
    }

    c->calls++;
    assert_int_equal(amonitor_metrics_add(m, "k", "v"), AMONITOR_OK);
    assert_int_equal(amonitor_metrics_add(m, "k", "w"), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_metrics_add(m, "bad", "\xc3"), AMONITOR_ERR_INVAL);
    assert_int_equal(amonitor_metrics_add_int(m, "n", -42), AMONITOR_OK);
}


static void
count_log(int level, const char *msg, void *data)
{
    counter_t *c = data;

    if (msg == NULL) {
        c->teardowns++;
        return;
    }

    c->calls++;
}


static amonitor_sdk_t *
new_ctx(void (*tweak)(amonitor_sdk_config_t *cfg))
{
    amonitor_sdk_config_t cfg;

    amonitor_sdk_config_init(&cfg);
    cfg.port = 0;
    if (tweak) {
        tweak(&cfg);
    }

    return amonitor_sdk_new(&cfg);
}


static void
bad_host(amonitor_sdk_config_t *cfg)
{
    cfg->host = "localhost";
}

static void
bad_port(amonitor_sdk_config_t *cfg)
{
    cfg->port = 70000;
}

static void
empty_target(amonitor_sdk_config_t *cfg)
{
    cfg->target_id = "";
}

static void
ctl_target(amonitor_sdk_config_t *cfg)
{
    cfg->target_id = "a\nb";
}

static void
space_token(amonitor_sdk_config_t *cfg)
{
    cfg->token = "a b";
}

static void
bad_metadata(amonitor_sdk_config_t *cfg)
{
    cfg->metadata_json = "[1,2]";
}

static void
bad_register(amonitor_sdk_config_t *cfg)
{
    cfg->register_url = "http://x/";
}

static void
bad_path(amonitor_sdk_config_t *cfg)
{
    cfg->path = "ws";
}

static void
tiny_message(amonitor_sdk_config_t *cfg)
{
    cfg->max_message = 10;
}


static void
test_config_errors(void **state)
{
    size_t          i;
    amonitor_sdk_t *ctx;

    void (*bad[])(amonitor_sdk_config_t *) = {bad_host, bad_port, empty_target,
        ctl_target, space_token, bad_metadata, bad_register, bad_path,
        tiny_message};

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctx = new_ctx(bad[i]);
        assert_non_null(ctx);
        assert_int_equal(ctx->err, AMONITOR_ERR_INVAL);
        assert_true(strlen(ctx->errstr) > 0);

        /* a rejected context refuses everything but free */
        assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_ERR_INVAL);
        assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_ERR_INVAL);
        assert_int_equal(
            amonitor_sdk_emit_event(ctx, "e", "{}"), AMONITOR_ERR_INVAL);
        assert_int_equal(amonitor_sdk_port(ctx), -1);
        amonitor_sdk_free(ctx);
    }

    ctx = new_ctx(NULL);
    assert_int_equal(ctx->err, AMONITOR_OK);
    amonitor_sdk_free(ctx);

    /* NULL configuration: the defaults */
    ctx = amonitor_sdk_new(NULL);
    assert_int_equal(ctx->err, AMONITOR_OK);
    amonitor_sdk_free(ctx);

    amonitor_sdk_free(NULL);
    amonitor_sdk_config_init(NULL); /* NULL-safe like every other call */
}


static void
test_strerror(void **state)
{
    int    codes[] = {AMONITOR_OK, AMONITOR_ERR_INVAL, AMONITOR_ERR_NOMEM,
           AMONITOR_ERR_IO, AMONITOR_ERR_STATE, AMONITOR_ERR_FULL,
           AMONITOR_ERR_NOTFOUND, AMONITOR_ERR_TOOBIG};
    size_t i, j;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        for (j = 0; j < i; j++) {
            assert_string_not_equal(
                amonitor_strerror(codes[i]), amonitor_strerror(codes[j]));
        }
    }

    assert_string_equal(amonitor_strerror(12345), "unknown error");
}


static void
test_teardown_calls(void **state)
{
    counter_t       a, b, fb, m, l;
    amonitor_sdk_t *ctx;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&fb, 0, sizeof(fb));
    memset(&m, 0, sizeof(m));
    memset(&l, 0, sizeof(l));

    ctx = new_ctx(NULL);
    assert_int_equal(
        amonitor_sdk_on_action(ctx, "x", count_action, &a), AMONITOR_OK);
    assert_int_equal(
        amonitor_sdk_on_action(ctx, NULL, count_action, &fb), AMONITOR_OK);

    /* replacing "x" tears the first registration down at once */
    assert_int_equal(
        amonitor_sdk_on_action(ctx, "x", count_action, &b), AMONITOR_OK);
    assert_int_equal(a.teardowns, 1);
    assert_int_equal(b.teardowns, 0);

    assert_int_equal(
        amonitor_sdk_on_action(ctx, "y", NULL, NULL), AMONITOR_ERR_INVAL);
    assert_int_equal(amonitor_sdk_on_action(ctx, "bad\x01", count_action, &b),
        AMONITOR_ERR_INVAL);

    amonitor_sdk_set_metrics(ctx, count_metrics, &m);
    amonitor_sdk_set_log(ctx, AMONITOR_LOG_DEBUG, count_log, &l);

    amonitor_sdk_free(ctx);

    assert_int_equal(a.teardowns, 1);
    assert_int_equal(b.teardowns, 1);
    assert_int_equal(fb.teardowns, 1);
    assert_int_equal(m.teardowns, 1);
    assert_int_equal(l.teardowns, 1);
    assert_int_equal(a.calls + b.calls + fb.calls, 0);
}


static void
test_state_errors(void **state)
{
    int             fd;
    amonitor_sdk_t *ctx;

    ctx = new_ctx(NULL);

    /* one descriptor for the context's whole life */
    fd = amonitor_sdk_fd(ctx);
    assert_true(fd >= 0);
    assert_int_equal(amonitor_sdk_step(ctx, 0), AMONITOR_ERR_STATE);
    assert_int_equal(ctx->err, AMONITOR_ERR_STATE);

    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    assert_int_equal(ctx->err, AMONITOR_OK);
    assert_true(amonitor_sdk_port(ctx) > 0);
    assert_true(amonitor_sdk_fd(ctx) >= 0);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK); /* idempotent */

    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_ERR_STATE);

    /* the I/O thread owns the sockets: a second loop is refused */
    assert_int_equal(amonitor_sdk_step(ctx, 0), AMONITOR_ERR_STATE);
    assert_int_equal(ctx->err, AMONITOR_ERR_STATE);
    assert_int_equal(amonitor_sdk_timeout(ctx), 0);
    assert_int_equal(amonitor_sdk_stop_begin(ctx), AMONITOR_ERR_STATE);

    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_port(ctx), -1);

    /* and again after a stop, on the same descriptor */
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    assert_true(amonitor_sdk_port(ctx) > 0);
    assert_int_equal(amonitor_sdk_fd(ctx), fd);

    amonitor_sdk_free(ctx);
}


static void
test_bind_conflict(void **state)
{
    amonitor_sdk_t       *a, *b;
    amonitor_sdk_config_t cfg;

    a = new_ctx(NULL);
    assert_int_equal(amonitor_sdk_listen(a), AMONITOR_OK);

    amonitor_sdk_config_init(&cfg);
    cfg.port = (unsigned) amonitor_sdk_port(a);
    b = amonitor_sdk_new(&cfg);

    assert_int_equal(amonitor_sdk_start(b), AMONITOR_ERR_IO);
    assert_int_equal(b->err, AMONITOR_ERR_IO);
    assert_non_null(strstr(b->errstr, "bind"));

    amonitor_sdk_free(b);
    amonitor_sdk_free(a);
}


static void
limit_events(amonitor_sdk_config_t *cfg)
{
    cfg->max_queued_events = 3;
    cfg->max_message = 4096;
}


static void
test_emit_validation(void **state)
{
    char             big[8192];
    amonitor_sdk_t  *ctx;
    amonitor_stats_t st;

    ctx = new_ctx(limit_events);

    assert_int_equal(
        amonitor_sdk_emit_event(ctx, NULL, "{}"), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "", "{}"), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "e", "{\"a\":"), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "e", "{} {}"), AMONITOR_ERR_INVAL);
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "e", "\"\xff\""), AMONITOR_ERR_INVAL);

    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "e", big), AMONITOR_ERR_TOOBIG);

    /* nothing drains the queue before listening: it fills up */
    assert_int_equal(amonitor_sdk_emit_event(ctx, "e", NULL), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_emit_event(ctx, "e", "[1,2]"), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_emit_event(ctx, "e", "3"), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_emit_event(ctx, "e", "4"), AMONITOR_ERR_FULL);

    amonitor_sdk_stats(ctx, &st);
    assert_int_equal(st.dropped, 1);

    /* emitting never touches ctx->err */
    assert_int_equal(ctx->err, AMONITOR_OK);

    /* listening and stepping drains it */
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_step(ctx, 100), AMONITOR_OK);
    assert_int_equal(amonitor_sdk_emit_event(ctx, "e", "5"), AMONITOR_OK);

    assert_int_equal(
        amonitor_sdk_ack(ctx, "nope", 1, "x"), AMONITOR_ERR_NOTFOUND);
    assert_int_equal(amonitor_sdk_ack(ctx, NULL, 1, "x"), AMONITOR_ERR_INVAL);

    amonitor_sdk_free(ctx);
}


/* --- a raw client against amonitor_sdk_step() ------------------------- */


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


/* Step the SDK until "fd" has "want" bytes containing "needle". */
static size_t
raw_read_until(
    amonitor_sdk_t *ctx, int fd, char *buf, size_t cap, const char *needle)
{
    size_t        len;
    ssize_t       n;
    int           i;
    struct pollfd pfd;

    len = 0;
    buf[0] = '\0';

    for (i = 0; i < 200 && strstr(buf, needle) == NULL; i++) {
        /* ctx NULL: the I/O thread serves, just wait */
        if (ctx) {
            assert_int_equal(amonitor_sdk_step(ctx, 10), AMONITOR_OK);
        }

        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, ctx ? 0 : 10) == 1) {
            n = recv(fd, buf + len, cap - 1 - len, 0);
            if (n <= 0) {
                break;
            }
            len += (size_t) n;
            buf[len] = '\0';

            /* frames may hold NUL-free JSON only in these tests */
            for (size_t k = 0; k < len; k++) {
                if (buf[k] == '\0') {
                    buf[k] = ' ';
                }
            }
        }
    }

    return len;
}


static void
raw_send_text(int fd, const char *text)
{
    size_t        len, i;
    unsigned char frame[1024];
    unsigned char mask[4] = {1, 2, 3, 4};

    len = strlen(text);
    assert_true(len < 126);

    frame[0] = 0x81;
    frame[1] = (unsigned char) (0x80 | len);
    memcpy(frame + 2, mask, 4);
    for (i = 0; i < len; i++) {
        frame[6 + i] = (unsigned char) text[i] ^ mask[i % 4];
    }

    assert_int_equal(send(fd, frame, 6 + len, 0), (ssize_t) (6 + len));
}


static const char handshake[] =
    "GET / HTTP/1.1\r\nHost: x\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";


/* An agent whose handshake is done and first heartbeat read. */
static int
agent_open(amonitor_sdk_t *ctx, int port)
{
    int  fd;
    char buf[4096];

    fd = raw_connect(port);
    assert_int_equal(send(fd, handshake, sizeof(handshake) - 1, 0),
        (ssize_t) sizeof(handshake) - 1);
    raw_read_until(ctx, fd, buf, sizeof(buf), "\"heartbeat\"");
    assert_non_null(strstr(buf, "HTTP/1.1 101"));

    return fd;
}


static void
test_host_loop_exchange(void **state)
{
    int             fd;
    size_t          len;
    char            buf[65536];
    counter_t       h, m;
    amonitor_sdk_t *ctx;

    memset(&h, 0, sizeof(h));
    memset(&m, 0, sizeof(m));

    ctx = new_ctx(NULL);
    amonitor_sdk_on_action(ctx, "restart", count_action, &h);
    amonitor_sdk_set_metrics(ctx, count_metrics, &m);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);

    /* no connection: no timer */
    assert_int_equal(amonitor_sdk_timeout(ctx), -1);

    fd = raw_connect(amonitor_sdk_port(ctx));

    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

    assert_int_equal(
        send(fd, req, sizeof(req) - 1, 0), (ssize_t) sizeof(req) - 1);

    /* the RFC 6455 sample key and its accept value */
    len = raw_read_until(ctx, fd, buf, sizeof(buf), "\"heartbeat\"");
    assert_true(len > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 101"));
    assert_non_null(
        strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_non_null(strstr(buf, "\"metrics\":{\"k\":\"v\",\"n\":\"-42\"}"));
    assert_int_equal(m.calls, 1);

    /* the next heartbeat is a timer now */
    assert_true(amonitor_sdk_timeout(ctx) > 0);

    raw_send_text(fd,
        "{\"msg_id\":\"m-1\",\"type\":\"action\","
        "\"payload\":{\"action\":\"restart\"}}");
    len = raw_read_until(ctx, fd, buf, sizeof(buf), "done restart");
    assert_non_null(strstr(buf, "\"action_msg_id\":\"m-1\""));
    assert_non_null(strstr(buf, "\"success\":true"));
    assert_int_equal(h.calls, 1);

    raw_send_text(fd,
        "{\"msg_id\":\"m-2\",\"type\":\"action\","
        "\"payload\":{\"action\":\"other\"}}");
    len = raw_read_until(ctx, fd, buf, sizeof(buf), "unsupported");
    assert_non_null(strstr(buf,
        "\"success\":false,\"message\":\"unsupported action: "
        "other\""));

    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "ev", "{\"z\":1}"), AMONITOR_OK);
    len = raw_read_until(ctx, fd, buf, sizeof(buf), "\"event_name\":\"ev\"");
    assert_non_null(strstr(buf, "\"data\":{\"z\":1}"));

    /* stop in host-loop mode closes with 1001 */
    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    len = recv(fd, buf, sizeof(buf), 0);
    assert_true(len >= 4);
    assert_int_equal((unsigned char) buf[0], 0x88);
    assert_int_equal(
        ((unsigned char) buf[2] << 8) | (unsigned char) buf[3], 1001);

    close(fd);
    amonitor_sdk_free(ctx);
}


/*
 * In a child of fork(): the inherited context refuses to serve, and
 * amonitor_sdk_stop()/_free() release the child's copy only.  Exits with
 * the number of the first check that failed (no cmocka in the child).
 */
static void
fork_and_free(amonitor_sdk_t *ctx, int free_it)
{
    int   status;
    pid_t pid;

    pid = fork();
    assert_true(pid >= 0);

    if (pid == 0) {
        if (amonitor_sdk_step(ctx, 0) != AMONITOR_ERR_STATE) {
            _exit(2);
        }
        if (amonitor_sdk_emit_event(ctx, "child", "{}") != AMONITOR_ERR_STATE) {
            _exit(3);
        }
        if (amonitor_sdk_start(ctx) != AMONITOR_ERR_STATE) {
            _exit(4);
        }
        if (amonitor_sdk_stop(ctx) != AMONITOR_OK) {
            _exit(5);
        }
        if (amonitor_sdk_port(ctx) != -1) {
            _exit(6);
        }
        if (free_it) {
            amonitor_sdk_free(ctx);
        }
        _exit(0);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}


static void
test_fork_thread(void **state)
{
    int             fd, fd2, port;
    char            buf[4096];
    size_t          len;
    amonitor_sdk_t *ctx;

    ctx = new_ctx(NULL);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    port = amonitor_sdk_port(ctx);
    fd = agent_open(NULL, port);

    fork_and_free(ctx, 1);

    /* the parent's epoll still has the wake pipe and the listener */
    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "after", "{\"n\":1}"), AMONITOR_OK);
    raw_read_until(NULL, fd, buf, sizeof(buf), "\"event_name\":\"after\"");
    assert_non_null(strstr(buf, "\"event_name\":\"after\""));

    fd2 = agent_open(NULL, port);

    /* and its I/O thread is joined, each agent told 1001 */
    assert_int_equal(amonitor_sdk_stop(ctx), AMONITOR_OK);
    len = raw_read_until(NULL, fd2, buf, sizeof(buf), "\x88");
    assert_non_null(memchr(buf, 0x88, len));

    close(fd);
    close(fd2);
    amonitor_sdk_free(ctx);
}


static void
test_fork_host_loop(void **state)
{
    int             fd, fd2;
    char            buf[4096];
    ssize_t         n;
    amonitor_sdk_t *ctx;

    ctx = new_ctx(NULL);
    assert_int_equal(amonitor_sdk_listen(ctx), AMONITOR_OK);
    fd = agent_open(ctx, amonitor_sdk_port(ctx));

    /* the child's stop sends no close frame on the parent's agent */
    fork_and_free(ctx, 0);
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    assert_int_equal(n, -1);

    assert_int_equal(
        amonitor_sdk_emit_event(ctx, "after", "{\"n\":2}"), AMONITOR_OK);
    raw_read_until(ctx, fd, buf, sizeof(buf), "\"event_name\":\"after\"");
    assert_non_null(strstr(buf, "\"event_name\":\"after\""));

    fd2 = agent_open(ctx, amonitor_sdk_port(ctx));

    close(fd);
    close(fd2);
    amonitor_sdk_free(ctx);
}


typedef struct {
    pthread_mutex_t lock;
    char            text[4096];
} log_text_t;


static void
keep_log(int level, const char *msg, void *data)
{
    log_text_t *l = data;

    if (msg == NULL) {
        return;
    }

    pthread_mutex_lock(&l->lock);
    if (strlen(l->text) + strlen(msg) + 2 < sizeof(l->text)) {
        strcat(l->text, msg);
        strcat(l->text, "\n");
    }
    pthread_mutex_unlock(&l->lock);
}


static void *
stop_thread(void *arg)
{
    amonitor_sdk_stop(arg);

    return NULL;
}


/* An agent that does not answer the close keeps the stop going a while. */
static void
test_refused_while_stopping(void **state)
{
    int             fd, fd2, port;
    char            buf[4096];
    pthread_t       t;
    log_text_t      l;
    amonitor_sdk_t *ctx;

    memset(&l, 0, sizeof(l));
    pthread_mutex_init(&l.lock, NULL);

    ctx = new_ctx(NULL);
    amonitor_sdk_set_log(ctx, AMONITOR_LOG_WARN, keep_log, &l);
    assert_int_equal(amonitor_sdk_start(ctx), AMONITOR_OK);
    port = amonitor_sdk_port(ctx);
    fd = agent_open(NULL, port);

    pthread_create(&t, NULL, stop_thread, ctx);
    raw_read_until(NULL, fd, buf, sizeof(buf), "\x88"); /* close sent */
    fd2 = raw_connect(port);
    pthread_join(t, NULL);

    pthread_mutex_lock(&l.lock);
    assert_non_null(strstr(l.text, "connection refused: the SDK is stopping"));
    assert_null(strstr(l.text, "connections open"));
    pthread_mutex_unlock(&l.lock);

    close(fd);
    close(fd2);
    amonitor_sdk_free(ctx);
    pthread_mutex_destroy(&l.lock);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_teardown_calls),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_bind_conflict),
        cmocka_unit_test(test_emit_validation),
        cmocka_unit_test(test_host_loop_exchange),
        cmocka_unit_test(test_fork_thread),
        cmocka_unit_test(test_fork_host_loop),
        cmocka_unit_test(test_refused_while_stopping),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Copyright (C) AMonitor authors
 *
 * The SDK under threads, for helgrind and drd (test_threads.py): the I/O
 * thread runs handlers; worker threads ack pending handles later; other
 * threads emit events, read counters and list pending actions; agents on
 * their own threads send actions; the program frees the context while a
 * handler still runs.  Prints TAP.
 */

#define _GNU_SOURCE /* memmem */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amonitor.h"


#define AGENTS  2
#define ACTIONS 40
#define WORKERS 2


typedef struct {
    pthread_mutex_t     lock;
    pthread_cond_t      cond;
    amonitor_pending_t *queue[AGENTS * ACTIONS + 8];
    int                 head;
    int                 tail;
    int                 done;
    int                 slow_entered;
    int                 slow_finished;
} work_t;


typedef struct {
    int  port;
    int  acks;
    char prefix[16];
} agent_t;


static work_t          work;
static amonitor_sdk_t *ctx;
static int             failures, tests;


static void
ok(int cond, const char *name)
{
    tests++;
    if (!cond) {
        failures++;
    }
    printf("%s %d - %s\n", cond ? "ok" : "not ok", tests, name);
    fflush(stdout);
}


static int
on_sync(amonitor_sdk_t *c, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    long long n;

    if (amonitor_action_param_int(a, "n", &n) != AMONITOR_OK) {
        return AMONITOR_REPLY_FAILURE;
    }

    snprintf(message, size, "sync %lld", n);

    return AMONITOR_REPLY_SUCCESS;
}


static int
on_later(amonitor_sdk_t *c, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    pthread_mutex_lock(&work.lock);
    work.queue[work.tail++] = a->pending;
    pthread_cond_signal(&work.cond);
    pthread_mutex_unlock(&work.lock);

    return AMONITOR_REPLY_LATER;
}


static int
on_slow(amonitor_sdk_t *c, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    pthread_mutex_lock(&work.lock);
    work.slow_entered = 1;
    pthread_cond_broadcast(&work.cond);
    pthread_mutex_unlock(&work.lock);

    usleep(200 * 1000);

    pthread_mutex_lock(&work.lock);
    work.slow_finished = 1;
    pthread_mutex_unlock(&work.lock);

    return AMONITOR_REPLY_SUCCESS;
}


static void *
worker(void *arg)
{
    amonitor_pending_t *p;

    for (;;) {
        pthread_mutex_lock(&work.lock);
        while (work.head == work.tail && !work.done) {
            pthread_cond_wait(&work.cond, &work.lock);
        }
        if (work.head == work.tail) {
            pthread_mutex_unlock(&work.lock);
            return NULL;
        }
        p = work.queue[work.head++];
        pthread_mutex_unlock(&work.lock);

        usleep(1000);
        if (amonitor_pending_ack(p, 1, "later done") != AMONITOR_OK) {
            fprintf(stderr, "ack failed\n");
        }
    }
}


static void *
side_thread(void *arg)
{
    int              i;
    amonitor_stats_t st;

    for (i = 0; i < 50; i++) {
        (void) amonitor_sdk_emit_event(ctx, "tick", "{\"i\":1}");
        (void) amonitor_sdk_stats_get(ctx, &st, sizeof(st));
        (void) amonitor_sdk_pending_list(ctx, NULL, NULL);
        usleep(2000);
    }

    return NULL;
}


static int
agent_connect(int port)
{
    int                fd;
    char               buf[1024];
    ssize_t            n;
    size_t             len;
    struct sockaddr_in sin;

    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || send(fd, req, sizeof(req) - 1, 0) != (ssize_t) sizeof(req) - 1) {
        close(fd);
        return -1;
    }

    /* the 101 response, byte by byte up to its end */
    len = 0;
    while (len < sizeof(buf) - 1) {
        n = recv(fd, buf + len, 1, 0);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        len++;
        buf[len] = '\0';
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }

    return strstr(buf, " 101 ") ? fd : -1;
}


static void
agent_send(int fd, const char *text)
{
    size_t        len, i;
    unsigned char frame[256];

    len = strlen(text);
    frame[0] = 0x81;
    frame[1] = (unsigned char) (0x80 | len);
    memset(frame + 2, 0, 4); /* a zero mask */
    for (i = 0; i < len; i++) {
        frame[6 + i] = (unsigned char) text[i];
    }

    if (send(fd, frame, 6 + len, 0) != (ssize_t) (6 + len)) {
        fprintf(stderr, "send failed\n");
    }
}


/* Count acks in the server's (unmasked) frames until "want" or 20 s. */
static int
agent_count_acks(int fd, int want)
{
    int            acks, rounds;
    size_t         len, hlen, plen;
    ssize_t        n;
    struct pollfd  pfd;
    unsigned char *buf;

    buf = malloc(1 << 20);
    len = 0;
    acks = 0;

    for (rounds = 0; rounds < 2000 && acks < want; rounds++) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 10) != 1) {
            continue;
        }

        n = recv(fd, buf + len, (1 << 20) - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t) n;

        for (;;) {
            if (len < 2) {
                break;
            }
            plen = buf[1] & 0x7f;
            hlen = 2;
            if (plen == 126) {
                if (len < 4) {
                    break;
                }
                plen = ((size_t) buf[2] << 8) | buf[3];
                hlen = 4;
            }
            if (len < hlen + plen) {
                break;
            }
            if (memmem(buf + hlen, plen, "\"action_ack\"", 12)) {
                acks++;
            }
            memmove(buf, buf + hlen + plen, len - hlen - plen);
            len -= hlen + plen;
        }
    }

    free(buf);

    return acks;
}


static void *
agent_thread(void *arg)
{
    int      fd, i;
    char     text[200];
    agent_t *ag = arg;

    fd = agent_connect(ag->port);
    if (fd == -1) {
        return NULL;
    }

    for (i = 0; i < ACTIONS; i++) {
        snprintf(text, sizeof(text),
            "{\"msg_id\":\"%s-%d\",\"type\":\"action\",\"payload\":"
            "{\"action\":\"%s\",\"params\":{\"n\":%d}}}",
            ag->prefix, i, i % 2 ? "later" : "sync", i);
        agent_send(fd, text);
    }

    ag->acks = agent_count_acks(fd, ACTIONS);
    close(fd);

    return NULL;
}


int
main(void)
{
    int                   i, fd, total;
    pthread_t             workers[WORKERS], side, agents[AGENTS];
    agent_t               ag[AGENTS];
    amonitor_sdk_config_t cfg;
    amonitor_stats_t      st;

    pthread_mutex_init(&work.lock, NULL);
    pthread_cond_init(&work.cond, NULL);

    amonitor_sdk_config_init(&cfg);
    cfg.port = 0;
    cfg.heartbeat_ms = 50;
    cfg.target_id = "threads";

    ctx = amonitor_sdk_new(&cfg);
    amonitor_sdk_handle(ctx, "sync", on_sync, NULL, NULL);
    amonitor_sdk_handle(ctx, "later", on_later, NULL, NULL);
    amonitor_sdk_handle(ctx, "slow", on_slow, NULL, NULL);

    ok(amonitor_sdk_start(ctx) == AMONITOR_OK, "the I/O thread starts");
    ok(amonitor_sdk_step(ctx, 0) == AMONITOR_ERR_STATE,
        "step is refused while the I/O thread runs");

    for (i = 0; i < WORKERS; i++) {
        pthread_create(&workers[i], NULL, worker, NULL);
    }
    pthread_create(&side, NULL, side_thread, NULL);

    for (i = 0; i < AGENTS; i++) {
        ag[i].port = amonitor_sdk_port(ctx);
        ag[i].acks = 0;
        /* the same msg_ids on both: duplicates are answered too */
        snprintf(ag[i].prefix, sizeof(ag[i].prefix), "m");
        pthread_create(&agents[i], NULL, agent_thread, &ag[i]);
    }

    total = 0;
    for (i = 0; i < AGENTS; i++) {
        pthread_join(agents[i], NULL);
        total += ag[i].acks;
    }
    pthread_join(side, NULL);

    ok(total == AGENTS * ACTIONS, "every action of every agent was acked");
    if (total != AGENTS * ACTIONS) {
        printf("# %d acks of %d\n", total, AGENTS * ACTIONS);
    }

    amonitor_sdk_stats_get(ctx, &st, sizeof(st));
    ok(st.actions == AGENTS * ACTIONS, "the SDK counted every action");

    /* free while a handler runs on the I/O thread */
    fd = agent_connect(amonitor_sdk_port(ctx));
    agent_send(fd,
        "{\"msg_id\":\"slow-1\",\"type\":\"action\",\"payload\":"
        "{\"action\":\"slow\"}}");

    pthread_mutex_lock(&work.lock);
    while (!work.slow_entered) {
        pthread_cond_wait(&work.cond, &work.lock);
    }
    pthread_mutex_unlock(&work.lock);

    amonitor_sdk_free(ctx);

    pthread_mutex_lock(&work.lock);
    ok(work.slow_finished == 1, "free waited for the running handler");
    work.done = 1;
    pthread_cond_broadcast(&work.cond);
    pthread_mutex_unlock(&work.lock);

    for (i = 0; i < WORKERS; i++) {
        pthread_join(workers[i], NULL);
    }
    close(fd);

    pthread_mutex_destroy(&work.lock);
    pthread_cond_destroy(&work.cond);

    printf("1..%d\n", tests);

    return failures ? 1 : 0;
}

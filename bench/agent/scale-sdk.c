/*
 * Copyright (C) AMonitor authors
 *
 * scale-load: the SDK players.  Each process listens on a port of its
 * own, answers the agent's handshakes and sends every connection of each
 * of its targets (i % K == k) the same heartbeat once per interval, the
 * targets spread evenly over it.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amon_json_write.h"
#include "amon_ws_frame.h"
#include "amon_posix.h"
#include "scale-load.h"


/* --- SDK side ------------------------------------------------------------ */

static scale_target_t *scale_targets; /* indexed by target / sdk_procs */


static int
scale_target_of(amon_str_t path)
{
    size_t               plen;
    int                  i;
    const unsigned char *p, *end;

    /* "/<prefix><number>" */
    plen = strlen(scale_opt.prefix);
    if (path.len < plen + 2 || path.data[0] != '/'
        || memcmp(path.data + 1, scale_opt.prefix, plen) != 0) {
        return -1;
    }

    i = 0;
    end = path.data + path.len;

    for (p = path.data + 1 + plen; p < end; p++) {
        if (*p < '0' || *p > '9' || i > 100000000) {
            return -1;
        }

        i = i * 10 + (*p - '0');
    }

    if (i >= scale_opt.targets || i % scale_opt.sdk_procs != scale_k) {
        return -1;
    }

    return i;
}


static void
scale_sdk_attach(scale_conn_t *c)
{
    scale_target_t *t = &scale_targets[c->id / scale_opt.sdk_procs];

    if (t->n == SCALE_MAX_CONNS) {
        scale_me->bad++;
        return;
    }

    t->c[t->n++] = c;
}


static void
scale_sdk_detach(scale_conn_t *c)
{
    int             i;
    scale_target_t *t = &scale_targets[c->id / scale_opt.sdk_procs];

    for (i = 0; i < t->n; i++) {
        if (t->c[i] == c) {
            t->c[i] = t->c[--t->n];
            return;
        }
    }
}


/* 1: open, 0: more bytes needed, -1: refused */
static int
scale_sdk_handshake(scale_conn_t *c)
{
    int           rc;
    size_t        n;
    scale_hs_t   *hs = c->hs;
    unsigned char resp[256];

    rc = amon_ws_request_feed(&hs->request, hs->buf, hs->len);
    if (rc == AMON_AGAIN) {
        return hs->len < SCALE_HS ? 0 : -1;
    }

    if (rc != AMON_OK) {
        return -1;
    }

    c->id = scale_target_of(hs->request.target);
    if (c->id < 0) {
        return -1;
    }

    n = amon_ws_server_response(resp, sizeof(resp), hs->request.req.key);
    if (n == 0) {
        return -1;
    }

    scale_send(c, resp, n);
    if (c->fd < 0) {
        return -1;
    }

    c->state = SCALE_OPEN;
    scale_me->open++;
    scale_sdk_attach(c);
    scale_hist_add(scale_me->conn, (bench_now_ns() - c->started) / 1000);

    /* the agent sends nothing before our answer; anything more is dropped */
    free(c->hs);
    c->hs = NULL;

    return 1;
}


static void
scale_sdk_accept(scale_conn_t *l)
{
    int           fd, one = 1;
    scale_conn_t *c;

    for (;;) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "scale-load: accept: %s\n", strerror(errno));
            }

            return;
        }

        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = scale_add(fd, SCALE_SDK, EPOLLIN);
        c->state = SCALE_HANDSHAKE;
        c->hs = bench_alloc(sizeof(scale_hs_t));
        amon_ws_request_init(&c->hs->request, SCALE_HS);
        amon_ws_session_init(
            &c->session, 0, SCALE_MAX_MESSAGE, NULL, NULL, NULL);
        scale_me->accepted++;
        c->started = scale_me->last_accept = bench_now_ns();
    }
}


/* one heartbeat of target "i", the same bytes on each of its connections */
static void
scale_sdk_beat(
    int i, uint64_t cycle, amon_buf_t *json, unsigned char *frame, size_t cap)
{
    int             j;
    char            id[64], msg[96];
    size_t          n;
    uint64_t        now, ws, we;
    amon_json_w_t   w;
    scale_target_t *t = &scale_targets[i / scale_opt.sdk_procs];

    now = bench_now_ns();
    ws = scale_sh->win_start;
    we = scale_sh->win_end;

    if (ws && now >= ws && (we == 0 || now < we)) {
        if (t->n == 0) {
            scale_me->missed++;

        } else {
            scale_ticks[i]++;
            scale_me->ticks++;
            scale_me->frames += (uint64_t) t->n;
            scale_me->partial += t->n < scale_opt.workers;
        }
    }

    if (t->n == 0) {
        return;
    }

    snprintf(id, sizeof(id), "%s%d", scale_opt.prefix, i);
    snprintf(msg, sizeof(msg), "hb-%s-%llu", id, (unsigned long long) cycle);

    json->len = 0;
    amon_json_w_init(&w, json, 4096, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "msg_id");
    amon_json_w_cstring(&w, msg);
    amon_json_w_key(&w, "type");
    amon_json_w_cstring(&w, "heartbeat");
    amon_json_w_key(&w, "target_id");
    amon_json_w_cstring(&w, id);
    amon_json_w_key(&w, "timestamp");
    amon_json_w_int64(&w, amon_posix_wall_ms());
    amon_json_w_key(&w, "payload");
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "target_id");
    amon_json_w_cstring(&w, id);
    amon_json_w_key(&w, "status");
    amon_json_w_cstring(&w, "up");
    amon_json_w_key(&w, "sent_ns");
    amon_json_w_int64(&w, (int64_t) now);
    amon_json_w_key(&w, "metrics");
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "cpu_pct");
    amon_json_w_int64(&w, (int64_t) (cycle % 100));
    amon_json_w_key(&w, "rss_kib");
    amon_json_w_int64(&w, 52000 + i);
    amon_json_w_key(&w, "seq");
    amon_json_w_int64(&w, (int64_t) cycle);
    amon_json_w_object_end(&w);
    amon_json_w_object_end(&w);
    amon_json_w_object_end(&w);

    if (amon_json_w_finish(&w) != AMON_OK) {
        scale_me->bad++;
        return;
    }

    n = amon_ws_write_frame(
        frame, cap, 1, AMON_WS_OP_TEXT, json->data, json->len, NULL);

    /* scale_send may close (and detach) a connection: walk backwards */
    for (j = t->n - 1; j >= 0; j--) {
        if (j < t->n) {
            scale_send(t->c[j], frame, n);
        }
    }
}


/*
 * Target i is due at t0 + interval * (cycle + i / targets): every target
 * once per interval, all of them spread evenly over it.  Returns the ms
 * until the next one is due.
 */
static int
scale_sdk_schedule(uint64_t *cycle, int *next, amon_buf_t *json,
    unsigned char *frame, size_t cap)
{
    uint64_t due, now, interval;

    interval = (uint64_t) (scale_opt.interval * 1e9);

    for (;;) {
        if (*next >= scale_opt.targets) {
            (*cycle)++;
            *next = scale_k;
        }

        due = scale_sh->t0 + *cycle * interval
            + interval * (uint64_t) *next / (uint64_t) scale_opt.targets;
        now = bench_now_ns();

        if (due > now) {
            return (int) ((due - now) / 1000000) + 1;
        }

        scale_sdk_beat(*next, *cycle, json, frame, cap);
        *next += scale_opt.sdk_procs;
    }
}


/* the agent's upgrade request, gathered until it is whole */
static int
scale_sdk_request(
    scale_conn_t *c, const unsigned char *p, size_t len, size_t *used)
{
    size_t n;

    n = len < SCALE_HS - c->hs->len ? len : SCALE_HS - c->hs->len;
    memcpy(c->hs->buf + c->hs->len, p, n);
    c->hs->len += n;
    *used = len;

    return scale_sdk_handshake(c);
}


static const scale_role_t scale_sdk_role = {
    scale_sdk_accept, NULL, scale_sdk_request, NULL, scale_sdk_detach, NULL};


void
scale_sdk_run(int lfd)
{
    int           next, ms;
    uint64_t      cycle;
    amon_buf_t    json = {NULL, 0, 0};
    unsigned char frame[4096 + AMON_MAX_FRAME_HEADER];

    scale_child_init(&scale_sdk_role);
    scale_targets = bench_alloc(sizeof(scale_target_t)
        * (size_t) (scale_opt.targets / scale_opt.sdk_procs + 1));
    scale_add(lfd, SCALE_LISTEN, EPOLLIN);

    cycle = 0;
    next = scale_k;

    while (scale_sh->phase != SCALE_PHASE_DONE) {
        ms = scale_sdk_schedule(&cycle, &next, &json, frame, sizeof(frame));
        scale_poll(ms < 50 ? ms : 50);
    }

    exit(0);
}

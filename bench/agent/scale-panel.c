/*
 * Copyright (C) AMonitor authors
 *
 * scale-load: the panel players.  Each process connects its panels a
 * batch at a time (?targets= of random targets, or everything), reads
 * their frames and counts every heartbeat made in the window with its
 * latency.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amon_posix.h"
#include "scale-load.h"


/* --- panel side ---------------------------------------------------------- */

static scale_conn_t **scale_panels; /* this process's panels */
static int            scale_npanels;
static int            scale_pnext; /* next panel to connect */
static int           *scale_retry; /* panels to connect again */
static int            scale_nretry;
static int            scale_connecting;


static void
scale_panel_mask(void *data, unsigned char *key, size_t len)
{
    amon_posix_random(key, len);
}


static void
scale_panel_start(int p)
{
    int                fd, one = 1;
    scale_conn_t      *c;
    struct epoll_event ee;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        bench_die("socket");
    }

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) scale_opt.panel_port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c = scale_panels[p / scale_opt.panel_procs];
    c->fd = fd;
    c->state = SCALE_CONNECTING;
    c->started = bench_now_ns();
    scale_fds[fd] = c;
    scale_connecting++;

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        && errno != EINPROGRESS) {
        bench_die("connect to nginx");
    }

    ee.events = EPOLLOUT;
    ee.data.ptr = c;
    if (epoll_ctl(scale_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        bench_die("epoll_ctl");
    }
}


/* "/ws/panel?targets=t1,t2,..." or the path alone for an 'all' panel */
static size_t
scale_panel_path(int p, char *dst, size_t cap)
{
    int    j;
    size_t n;

    n = (size_t) snprintf(dst, cap, "%s", scale_opt.path);
    if (p >= scale_opt.panels) {
        return n;
    }

    for (j = 0; j < scale_opt.per_panel && n < cap; j++) {
        n += (size_t) snprintf(dst + n, cap - n, "%s%s%d",
            j ? "," : "?targets=", scale_opt.prefix,
            scale_subs[p * scale_opt.per_panel + j]);
    }

    return n < cap ? n : 0;
}


static void
scale_panel_connected(scale_conn_t *c)
{
    int           err = 0;
    char          path[2048];
    size_t        n;
    socklen_t     len = sizeof(err);
    amon_str_t    host, target, none = amon_null_string;
    unsigned char rnd[16], req[4096];
    char          hp[64];

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err) {
        scale_fail(c);
        return;
    }

    amon_posix_random(rnd, sizeof(rnd));
    amon_ws_make_key(rnd, c->key);

    snprintf(hp, sizeof(hp), "127.0.0.1:%d", scale_opt.panel_port);
    host.data = (unsigned char *) hp;
    host.len = strlen(hp);
    target.data = (unsigned char *) path;
    target.len = scale_panel_path(c->id, path, sizeof(path));

    n = amon_ws_client_request(req, sizeof(req), host, target, c->key, none);
    if (n == 0 || target.len == 0) {
        fprintf(stderr, "scale-load: panel request too long\n");
        exit(2);
    }

    c->state = SCALE_HANDSHAKE;
    c->hs = bench_alloc(sizeof(scale_hs_t));
    amon_ws_session_init(
        &c->session, 1, SCALE_MAX_MESSAGE, NULL, scale_panel_mask, c);
    scale_events(c, EPOLLIN);
    scale_send(c, req, n); /* a failure puts the panel back in the queue */
}


static int scale_panel_message(void *data, unsigned level,
    const amon_json_value_t *key, const amon_json_value_t *value);


typedef struct {
    int      heartbeat;
    int      target;
    uint64_t sent;
} scale_msg_t;


static int
scale_panel_message(void *data, unsigned level, const amon_json_value_t *key,
    const amon_json_value_t *value)
{
    int64_t      v;
    size_t       plen;
    amon_str_t   s;
    scale_msg_t *m = data;

    if (level == 1) {
        if (amon_json_str_eq(key, "sent_ns", 7)
            && amon_json_int64(value, &v) == AMON_OK) {
            m->sent = (uint64_t) v;
        }

        return 0;
    }

    if (value->type != AMON_JSON_STRING || value->escaped) {
        return 0;
    }

    s = amon_json_raw_string(value);

    if (amon_json_str_eq(key, "type", 4)) {
        m->heartbeat = s.len == 9 && memcmp(s.data, "heartbeat", 9) == 0;

    } else if (amon_json_str_eq(key, "target_id", 9)) {
        plen = strlen(scale_opt.prefix);
        if (s.len > plen && memcmp(s.data, scale_opt.prefix, plen) == 0) {
            m->target = atoi((const char *) s.data + plen);
        }
    }

    return 0;
}


static void
scale_panel_read_message(scale_conn_t *c, const unsigned char *p, size_t len)
{
    int         j, mine;
    uint64_t    now, ws, we;
    scale_msg_t m = {0, -1, 0};
    amon_str_t  payload = amon_string("payload");

    if (amon_json_scan(
            p, len, AMON_MAX_JSON_DEPTH, payload, scale_panel_message, &m, NULL)
        != AMON_OK) {
        scale_me->bad++;
        return;
    }

    if (!m.heartbeat) {
        scale_me->other++;
        return;
    }

    if (m.sent == 0 || m.target < 0) {
        scale_me->bad++;
        return;
    }

    if (c->id < scale_opt.panels) {
        mine = 0;
        for (j = 0; j < scale_opt.per_panel; j++) {
            if (scale_subs[c->id * scale_opt.per_panel + j] == m.target) {
                mine = 1;
            }
        }

        if (!mine) {
            scale_me->wrong++;
        }
    }

    ws = scale_sh->win_start;
    we = scale_sh->win_end;

    if (ws && m.sent >= ws && (we == 0 || m.sent < we)) {
        now = bench_now_ns();
        scale_me->delivered++;
        scale_me->last_read = now;
        scale_hist_add(
            c->id < scale_opt.panels ? scale_me->lat : scale_me->lat_all,
            now > m.sent ? (now - m.sent) / 1000 : 0);
    }
}


/* 1: open, 0: more bytes needed, -1: refused */
static int
scale_panel_handshake(
    scale_conn_t *c, const unsigned char *p, size_t len, size_t *used)
{
    int         rc, status;
    size_t      hlen, n, old;
    const char *reason;
    scale_hs_t *hs = c->hs;

    old = hs->len;
    n = len < SCALE_HS - hs->len ? len : SCALE_HS - hs->len;
    memcpy(hs->buf + hs->len, p, n);
    hs->len += n;

    rc = amon_ws_client_response(
        hs->buf, hs->len, c->key, &hlen, &status, &reason);
    if (rc == AMON_AGAIN) {
        *used = n;
        return hs->len < SCALE_HS ? 0 : -1;
    }

    if (rc != AMON_OK) {
        fprintf(stderr, "scale-load: panel handshake refused: %d %s\n", status,
            reason);
        return -1;
    }

    /* frames after the header block are in "p" from here */
    *used = hlen - old;
    free(c->hs);
    c->hs = NULL;
    c->state = SCALE_OPEN;
    scale_me->open++;
    scale_connecting--;
    scale_hist_add(scale_me->conn, (bench_now_ns() - c->started) / 1000);

    return 1;
}


/* a panel that failed before its 101: connect it again */
static void
scale_panel_lost(scale_conn_t *c)
{
    scale_connecting--;
    scale_retry[scale_nretry++] = c->id;
}


static const scale_role_t scale_panel_role = {NULL, scale_panel_connected,
    scale_panel_handshake, scale_panel_read_message, NULL, scale_panel_lost};


void
scale_panel_run(void)
{
    int i, p;

    scale_child_init(&scale_panel_role);

    scale_npanels = 0;
    for (p = scale_k; p < scale_opt.panels + scale_opt.all;
         p += scale_opt.panel_procs) {
        scale_npanels++;
    }

    scale_panels = bench_alloc(sizeof(scale_conn_t *) * (size_t) scale_npanels);
    scale_retry = bench_alloc(sizeof(int) * (size_t) scale_npanels);

    for (i = 0; i < scale_npanels; i++) {
        scale_panels[i] = bench_alloc(sizeof(scale_conn_t));
        scale_panels[i]->fd = -1;
        scale_panels[i]->kind = SCALE_PANEL;
        scale_panels[i]->id = scale_k + i * scale_opt.panel_procs;
    }

    while (scale_sh->phase == SCALE_PHASE_START) {
        scale_sleep_ms(10);
    }

    scale_pnext = 0;

    while (scale_sh->phase != SCALE_PHASE_DONE) {
        /* at most --batch handshakes in flight: no SYN flood at nginx */
        while (scale_connecting < scale_opt.batch
            && (scale_nretry || scale_pnext < scale_npanels)) {
            if (scale_nretry) {
                scale_panel_start(scale_retry[--scale_nretry]);

            } else {
                scale_panel_start(scale_panels[scale_pnext++]->id);
            }
        }

        scale_poll(20);
    }

    exit(0);
}

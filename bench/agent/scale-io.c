/*
 * Copyright (C) AMonitor authors
 *
 * scale-load: clocks, histograms, and the connections of both kinds of
 * player: buffered sends, reads through the core's session layer, the
 * epoll loop.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scale-load.h"


static const scale_role_t *scale_role; /* this child's */


void
scale_sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}


/* --- histograms: 64 sub-buckets per power of two (1.6 % resolution) --- */

void
scale_hist_add(uint64_t *h, uint64_t us)
{
    unsigned e;
    size_t   i;

    if (us < 2 * SCALE_SUB) {
        h[us]++;
        return;
    }

    e = 63 - (unsigned) __builtin_clzll(us) - 6; /* us >> e in 64..127 */
    i = 2 * SCALE_SUB + (size_t) (e - 1) * SCALE_SUB
        + (size_t) ((us >> e) - SCALE_SUB);

    h[i < SCALE_BUCKETS ? i : SCALE_BUCKETS - 1]++;
}


/* the middle of bucket "i", in microseconds */
static double
scale_hist_value(size_t i)
{
    unsigned e;
    uint64_t sub;

    if (i < 2 * SCALE_SUB) {
        return (double) i;
    }

    e = (unsigned) ((i - 2 * SCALE_SUB) / SCALE_SUB) + 1;
    sub = (i - 2 * SCALE_SUB) % SCALE_SUB + SCALE_SUB;

    return (double) (sub << e) + (double) (1ull << e) / 2;
}


static uint64_t
scale_hist_count(const uint64_t *h)
{
    size_t   i;
    uint64_t n = 0;

    for (i = 0; i < SCALE_BUCKETS; i++) {
        n += h[i];
    }

    return n;
}


/* the value below which "p" per cent of the samples are, ms; -1: none */
double
scale_hist_pct(const uint64_t *h, double p)
{
    size_t   i;
    uint64_t n, rank, seen;

    n = scale_hist_count(h);
    if (n == 0) {
        return -1;
    }

    rank = (uint64_t) (p / 100.0 * (double) n);
    if (rank >= n) {
        rank = n - 1;
    }

    seen = 0;

    for (i = 0; i < SCALE_BUCKETS; i++) {
        seen += h[i];
        if (seen > rank) {
            return scale_hist_value(i) / 1000.0;
        }
    }

    return -1;
}


double
scale_hist_max(const uint64_t *h)
{
    size_t i;

    for (i = SCALE_BUCKETS; i > 0; i--) {
        if (h[i - 1]) {
            return scale_hist_value(i - 1) / 1000.0;
        }
    }

    return -1;
}


/* --- connections --------------------------------------------------------- */

void
scale_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        bench_die("getrlimit");
    }

    scale_nfds = rl.rlim_cur > 1048576 ? 1048576 : (int) rl.rlim_cur;
}


scale_conn_t *
scale_add(int fd, scale_kind_e kind, uint32_t events)
{
    scale_conn_t      *c;
    struct epoll_event ee;

    if (fd >= scale_nfds) {
        fprintf(stderr, "scale-load: descriptor %d over the limit\n", fd);
        exit(2);
    }

    c = bench_alloc(sizeof(scale_conn_t));
    c->fd = fd;
    c->kind = kind;
    scale_fds[fd] = c;

    ee.events = events;
    ee.data.ptr = c;

    if (epoll_ctl(scale_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        bench_die("epoll_ctl");
    }

    return c;
}


void
scale_events(scale_conn_t *c, uint32_t events)
{
    struct epoll_event ee;

    ee.events = events;
    ee.data.ptr = c;
    (void) epoll_ctl(scale_ep, EPOLL_CTL_MOD, c->fd, &ee);
}


/* write what is queued; on EAGAIN wait for EPOLLOUT */
void
scale_flush(scale_conn_t *c)
{
    ssize_t n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
            MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->writing) {
                c->writing = 1;
                scale_events(c, EPOLLIN | EPOLLOUT);
            }

            return;
        }

        scale_fail(c);
        return;
    }

    c->out_pos = c->out_len = 0;

    if (c->writing) {
        c->writing = 0;
        scale_events(c, EPOLLIN);
    }
}


/* send now if nothing waits, else queue behind what waits */
void
scale_send(scale_conn_t *c, const unsigned char *p, size_t len)
{
    ssize_t n;

    if (c->out_len == 0) {
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t) len) {
            return;
        }

        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            scale_fail(c);
            return;
        }

        if (n > 0) {
            p += n;
            len -= (size_t) n;
        }

        scale_me->buffered++;
    }

    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL) {
            bench_die("realloc");
        }
    }

    memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
    scale_flush(c);
}


void
scale_close(scale_conn_t *c)
{
    if (c->fd < 0) {
        return;
    }

    if (c->state == SCALE_OPEN) {
        scale_me->open--;
        scale_me->closed++;

        if (scale_role->detach) {
            scale_role->detach(c);
        }
    }

    (void) epoll_ctl(scale_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    scale_fds[c->fd] = NULL;
    c->fd = -1;
    c->state = SCALE_CONNECTING;
    free(c->hs);
    c->hs = NULL;
    free(c->out);
    c->out = NULL;
    c->out_pos = c->out_len = c->out_cap = 0;
    amon_ws_session_free(&c->session);
}


/* --- both sides: reading ------------------------------------------------- */

/* feed frames; -1: close the connection */
static int
scale_frames(scale_conn_t *c, unsigned char *p, size_t len)
{
    int                     rc;
    size_t                  pos, used;
    amon_ws_session_event_t ev;

    pos = 0;

    for (;;) {
        rc = amon_ws_session_feed(&c->session, p + pos, len - pos, &used, &ev);
        pos += used;

        if (ev.reply_len) {
            scale_send(c, ev.reply, ev.reply_len);
            if (c->fd < 0) {
                return -1;
            }
        }

        if (rc == AMON_AGAIN) {
            return 0;
        }

        if (rc != AMON_OK || ev.type == AMON_WS_SESSION_CLOSE) {
            return -1;
        }

        if (ev.type == AMON_WS_SESSION_MESSAGE && scale_role->message) {
            scale_role->message(c, ev.data, ev.len);
        }
    }
}


void
scale_fail(scale_conn_t *c)
{
    int panel = c->kind == SCALE_PANEL && c->state != SCALE_OPEN;

    if (c->fd < 0) {
        return;
    }

    if (c->state != SCALE_OPEN) {
        scale_me->refused++;
    }

    scale_close(c);

    if (panel && scale_role->lost) {
        scale_role->lost(c);
    }
}


static void
scale_read(scale_conn_t *c)
{
    int     rc;
    size_t  used;
    ssize_t n;

    for (;;) {
        n = recv(c->fd, scale_rbuf, SCALE_READ, MSG_DONTWAIT);

        if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN)) {
            scale_fail(c);
            return;
        }

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return;
        }

        used = 0;

        if (c->state == SCALE_HANDSHAKE) {
            rc = scale_role->handshake(c, scale_rbuf, (size_t) n, &used);

            if (rc < 0) {
                scale_fail(c);
                return;
            }

            if (rc == 0) {
                continue;
            }
        }

        if (scale_frames(c, scale_rbuf + used, (size_t) n - used) != 0) {
            scale_fail(c);
            return;
        }

        if (n < SCALE_READ) {
            return;
        }
    }
}


void
scale_poll(int ms)
{
    int                i, n;
    scale_conn_t      *c;
    struct epoll_event ev[512];

    n = epoll_wait(scale_ep, ev, 512, ms);

    for (i = 0; i < n; i++) {
        c = ev[i].data.ptr;
        if (c->fd < 0) {
            continue;
        }

        if (c->kind == SCALE_LISTEN) {
            scale_role->accept(c);
            continue;
        }

        if (c->state == SCALE_CONNECTING) {
            scale_role->connected(c);
            continue;
        }

        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            scale_read(c);
        }

        if (c->fd >= 0 && (ev[i].events & EPOLLOUT)) {
            scale_flush(c);
        }
    }
}


/* --- the children -------------------------------------------------------- */

void
scale_child_init(const scale_role_t *role)
{
    scale_role = role;

    scale_raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    scale_fds = bench_alloc(sizeof(scale_conn_t *) * (size_t) scale_nfds);
    scale_rbuf = bench_alloc(SCALE_READ);

    scale_ep = epoll_create1(EPOLL_CLOEXEC);
    if (scale_ep == -1) {
        bench_die("epoll_create1");
    }
}

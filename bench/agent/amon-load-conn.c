/*
 * Copyright (C) AMonitor authors
 *
 * The load generator's sockets: connections, their buffers and writes,
 * the SDK listeners, and the latency samples.
 */

#define _GNU_SOURCE

#include "amon-load.h"


void
load_sample(load_samples_t *s, uint64_t us)
{
    size_t i;

    if (us > UINT32_MAX) {
        us = UINT32_MAX;
    }

    s->seen++;

    if (s->n < LOAD_SAMPLES) {
        s->v[s->n++] = (uint32_t) us;
        return;
    }

    /* reservoir sampling keeps a uniform sample of everything seen */
    i = (size_t) (((uint64_t) rand() << 16 ^ (uint64_t) rand()) % s->seen);
    if (i < LOAD_SAMPLES) {
        s->v[i] = (uint32_t) us;
    }
}


int
load_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


double
load_pct(load_samples_t *s, double p)
{
    size_t i;

    if (s->n == 0) {
        return -1;
    }

    i = (size_t) (p / 100.0 * (double) (s->n - 1) + 0.5);
    return s->v[i];
}


void
load_set_nonblock(int fd)
{
    int one = 1;

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        bench_die("fcntl");
    }

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}


load_conn_t *
load_add(int fd, load_kind_e kind)
{
    load_conn_t       *c;
    struct epoll_event ee;

    if (fd >= LOAD_MAX_CONNS) {
        fprintf(stderr, "amon-load: too many connections\n");
        exit(2);
    }

    c = bench_alloc(sizeof(load_conn_t));
    c->fd = fd;
    c->kind = kind;
    c->in = bench_alloc(LOAD_READ);
    load_conns[fd] = c;

    ee.events = EPOLLIN;
    ee.data.ptr = c;

    if (epoll_ctl(load_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        bench_die("epoll_ctl");
    }

    return c;
}


static void
load_reserve(load_conn_t *c, size_t n)
{
    if (c->out_pos && c->out_pos == c->out_len) {
        c->out_pos = c->out_len = 0;
    }

    if (c->out_len + n <= c->out_cap) {
        return;
    }

    if (c->out_pos) {
        memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
        c->out_len -= c->out_pos;
        c->out_pos = 0;
    }

    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL) {
            bench_die("realloc");
        }
    }
}


static void
load_mark(load_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        load_dirty[load_ndirty++] = c;
    }
}


void
load_send_raw(load_conn_t *c, const void *data, size_t len)
{
    load_reserve(c, len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    load_mark(c);
}


/* a text frame: masked from panels (clients), plain from SDKs */
void
load_send_text(load_conn_t *c, const unsigned char *data, size_t len)
{
    size_t n;

    load_reserve(c, len + AMON_MAX_FRAME_HEADER);
    n = amon_ws_session_frame(&c->session, c->out + c->out_len,
        c->out_cap - c->out_len, AMON_WS_OP_TEXT, data, len);
    c->out_len += n;
    load_mark(c);
}


/* the session's masking keys: a panel's one key, as a plain client would */
void
load_mask(void *data, unsigned char *key, size_t len)
{
    load_conn_t *c = data;

    memcpy(key, c->mask, len);
}


void
load_close(load_conn_t *c, const char *why)
{
    int i;

    if (!load_opt.quiet) {
        fprintf(stderr, "amon-load: %s connection closed: %s\n",
            c->kind == LOAD_PANEL ? "panel" : "sdk", why);
    }

    if (c->kind == LOAD_PANEL && c->open) {
        load_panels_open--;
    }

    if (c->kind == LOAD_SDK && c->open) {
        load_sdk_open[c->sdk]--;

        for (i = 0; i < load_nsdk_conns; i++) {
            if (load_sdks[i] == c) {
                load_sdks[i] = load_sdks[--load_nsdk_conns];
                break;
            }
        }
    }

    (void) epoll_ctl(load_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    load_conns[c->fd] = NULL;
    c->fd = -1;
    c->open = 0;
}


void
load_flush(load_conn_t *c)
{
    ssize_t            n;
    struct epoll_event ee;

    while (c->fd >= 0 && c->out_pos < c->out_len) {
        n = write(c->fd, c->out + c->out_pos, c->out_len - c->out_pos);

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
                ee.events = EPOLLIN | EPOLLOUT;
                ee.data.ptr = c;
                (void) epoll_ctl(load_ep, EPOLL_CTL_MOD, c->fd, &ee);
            }
            return;
        }

        load_close(c, "write failed");
        return;
    }

    if (c->fd >= 0 && c->writing) {
        c->writing = 0;
        ee.events = EPOLLIN;
        ee.data.ptr = c;
        (void) epoll_ctl(load_ep, EPOLL_CTL_MOD, c->fd, &ee);
    }

    if (c->out_pos == c->out_len) {
        c->out_pos = c->out_len = 0;
    }
}


void
load_listen(int sdk, int port)
{
    int                fd, one = 1;
    load_conn_t       *c;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        bench_die("socket");
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 1024) == -1) {
        bench_die("bind/listen for a fake SDK");
    }

    load_set_nonblock(fd);
    c = load_add(fd, LOAD_LISTEN);
    c->sdk = sdk;
}


void
load_accept(load_conn_t *l)
{
    int          fd;
    load_conn_t *c;

    for (;;) {
        fd = accept(l->fd, NULL, NULL);
        if (fd == -1) {
            return;
        }

        load_set_nonblock(fd);
        c = load_add(fd, LOAD_SDK);
        c->sdk = l->sdk;
        amon_ws_request_init(&c->request, 0);
        amon_ws_session_init(
            &c->session, 0, LOAD_MAX_MESSAGE, NULL, NULL, NULL);
    }
}


/* --- the loop --------------------------------------------------------------- */

void
load_flush_dirty(void)
{
    int i;

    for (i = 0; i < load_ndirty; i++) {
        load_dirty[i]->dirty = 0;
        if (load_dirty[i]->fd >= 0) {
            load_flush(load_dirty[i]);
        }
    }

    load_ndirty = 0;
}

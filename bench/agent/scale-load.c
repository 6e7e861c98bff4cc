/*
 * Copyright (C) AMonitor authors
 *
 * Load generator for the scale case: K processes play N SDKs (target i
 * listens on the port of process i % K, answers every agent connection in
 * an epoll loop and sends each a heartbeat every interval, the targets'
 * heartbeats spread evenly over it), Q processes play M panels subscribed
 * to random targets (?targets=) plus panels that take everything.  The
 * parent coordinates them through shared memory, samples the nginx
 * workers in /proc and prints latency, deliveries against what the
 * subscriptions promise, connect times and costs.
 */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "amon_core.h"
#include "amon_json.h"
#include "amon_json_write.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_ws_session.h"
#include "amon_posix.h"


#define SCALE_MAX_PROCS     64
#define SCALE_MAX_PER_PANEL 64
#define SCALE_MAX_CONNS     16 /* agent connections kept per target */
#define SCALE_BUCKETS       2048
#define SCALE_SUB           64 /* histogram sub-buckets per power of two */
#define SCALE_READ          (256 * 1024)
#define SCALE_HS            4096 /* handshake bytes kept per connection */
#define SCALE_MAX_MESSAGE   (1024 * 1024)
#define SCALE_MAX_WORKERS   16

#define SCALE_PHASE_START  0
#define SCALE_PHASE_PANELS 1
#define SCALE_PHASE_DONE   2


typedef enum { SCALE_LISTEN = 0, SCALE_SDK, SCALE_PANEL } scale_kind_e;


typedef enum {
    SCALE_CONNECTING = 0, /* panel: TCP connect in progress */
    SCALE_HANDSHAKE,
    SCALE_OPEN
} scale_state_e;


/* what one child reports; the parent reads it while it runs and after */
typedef struct {
    pid_t    pid;
    int      role; /* SCALE_SDK or SCALE_PANEL */
    int      open; /* connections (SDK) or panels open now */
    uint64_t accepted; /* SDK: connections accepted */
    uint64_t closed; /* open connections that closed */
    uint64_t refused; /* handshakes that failed (and panel retries) */
    uint64_t ticks; /* SDK: heartbeats made in the window */
    uint64_t partial; /* ... on fewer connections than workers */
    uint64_t missed; /* ... due with no connection at all */
    uint64_t frames; /* SDK: heartbeat frames sent in the window */
    uint64_t buffered; /* SDK: sends that did not go out at once */
    uint64_t delivered; /* panel: window heartbeats read */
    uint64_t wrong; /* panel: heartbeats of a target not subscribed */
    uint64_t other; /* panel: other messages */
    uint64_t bad; /* messages that are not what was expected */
    uint64_t last_read; /* ns of the last window heartbeat read */
    uint64_t lat[SCALE_BUCKETS]; /* made -> read, microseconds */
    uint64_t last_accept; /* SDK: ns of the last connection accepted */
    uint64_t lat_all[SCALE_BUCKETS]; /* the same, panels taking all */
    uint64_t conn[SCALE_BUCKETS]; /* panel: connect -> 101; SDK: accept ->
                                     upgrade request read, microseconds */
} scale_child_t;


typedef struct {
    volatile int      phase;
    volatile uint64_t win_start; /* ns, CLOCK_MONOTONIC; 0: not yet */
    volatile uint64_t win_end;
    uint64_t          t0; /* heartbeat schedule origin */
    scale_child_t     child[SCALE_MAX_PROCS];
} scale_shared_t;


typedef struct {
    amon_ws_request_parser_t request; /* SDK side */
    size_t                   len;
    unsigned char            buf[SCALE_HS];
} scale_hs_t;


typedef struct {
    int               fd;
    scale_kind_e      kind;
    scale_state_e     state;
    int               id; /* target (SDK) or panel number */
    int               writing;
    scale_hs_t       *hs;
    unsigned char    *out;
    size_t            out_pos;
    size_t            out_len;
    size_t            out_cap;
    uint64_t          started; /* panel: connect() */
    unsigned char     key[AMON_WS_KEY_LEN];
    unsigned char     mask[4];
    amon_ws_session_t session;
} scale_conn_t;


typedef struct {
    scale_conn_t *c[SCALE_MAX_CONNS];
    int           n;
} scale_target_t;


static struct {
    int         targets;
    int         panels;
    int         per_panel;
    int         all;
    int         workers;
    int         sdk_procs;
    int         panel_procs;
    int         panel_port;
    int         batch;
    double      interval;
    double      duration;
    double      settle;
    double      drain;
    double      ready_timeout;
    unsigned    seed;
    const char *prefix;
    const char *path;
    const char *pid_file;
    int         hold;
} scale_opt = {2000, 2000, 10, 10, 2, 0, 0, 0, 64, 10.0, 30.0, -1.0, 5.0, 180.0,
    1, "t", "/ws/panel", NULL, 0};


static volatile sig_atomic_t scale_quit;
static uint64_t              scale_nginx_seen; /* ns: pid file appeared */
static scale_shared_t       *scale_sh;
static scale_child_t        *scale_me;
static int                   scale_ep;
static int                   scale_k; /* this child's number within its role */
static int                  *scale_subs; /* panel p: per_panel target numbers */
static unsigned             *scale_nsubs; /* per target: subscribed panels */
static uint32_t             *scale_ticks; /* shared, per target: window ticks */
static unsigned char        *scale_rbuf;
static scale_conn_t        **scale_fds;
static int                   scale_nfds;


static uint64_t
scale_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


static void
scale_die(const char *what)
{
    fprintf(stderr, "scale-load: %s: %s\n", what, strerror(errno));
    exit(2);
}


static void *
scale_alloc(size_t n)
{
    void *p = calloc(1, n);

    if (p == NULL) {
        scale_die("calloc");
    }

    return p;
}


static void
scale_sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}


/* --- histograms: 64 sub-buckets per power of two (1.6 % resolution) --- */

static void
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
static double
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


static double
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

static void
scale_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        scale_die("getrlimit");
    }

    scale_nfds = rl.rlim_cur > 1048576 ? 1048576 : (int) rl.rlim_cur;
}


static scale_conn_t *
scale_add(int fd, scale_kind_e kind, uint32_t events)
{
    scale_conn_t      *c;
    struct epoll_event ee;

    if (fd >= scale_nfds) {
        fprintf(stderr, "scale-load: descriptor %d over the limit\n", fd);
        exit(2);
    }

    c = scale_alloc(sizeof(scale_conn_t));
    c->fd = fd;
    c->kind = kind;
    scale_fds[fd] = c;

    ee.events = events;
    ee.data.ptr = c;

    if (epoll_ctl(scale_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        scale_die("epoll_ctl");
    }

    return c;
}


static void
scale_events(scale_conn_t *c, uint32_t events)
{
    struct epoll_event ee;

    ee.events = events;
    ee.data.ptr = c;
    (void) epoll_ctl(scale_ep, EPOLL_CTL_MOD, c->fd, &ee);
}


static void scale_fail(scale_conn_t *c);


/* write what is queued; on EAGAIN wait for EPOLLOUT */
static void
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
static void
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
            scale_die("realloc");
        }
    }

    memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
    scale_flush(c);
}


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


static void
scale_close(scale_conn_t *c)
{
    if (c->fd < 0) {
        return;
    }

    if (c->state == SCALE_OPEN) {
        scale_me->open--;
        scale_me->closed++;

        if (c->kind == SCALE_SDK) {
            scale_sdk_detach(c);
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
    scale_hist_add(scale_me->conn, (scale_now() - c->started) / 1000);

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
        c->hs = scale_alloc(sizeof(scale_hs_t));
        amon_ws_request_init(&c->hs->request, SCALE_HS);
        amon_ws_session_init(
            &c->session, 0, SCALE_MAX_MESSAGE, NULL, NULL, NULL);
        scale_me->accepted++;
        c->started = scale_me->last_accept = scale_now();
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

    now = scale_now();
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
        now = scale_now();

        if (due > now) {
            return (int) ((due - now) / 1000000) + 1;
        }

        scale_sdk_beat(*next, *cycle, json, frame, cap);
        *next += scale_opt.sdk_procs;
    }
}


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
        scale_die("socket");
    }

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) scale_opt.panel_port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c = scale_panels[p / scale_opt.panel_procs];
    c->fd = fd;
    c->state = SCALE_CONNECTING;
    c->started = scale_now();
    scale_fds[fd] = c;
    scale_connecting++;

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        && errno != EINPROGRESS) {
        scale_die("connect to nginx");
    }

    ee.events = EPOLLOUT;
    ee.data.ptr = c;
    if (epoll_ctl(scale_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        scale_die("epoll_ctl");
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
    c->hs = scale_alloc(sizeof(scale_hs_t));
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
        now = scale_now();
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
    scale_hist_add(scale_me->conn, (scale_now() - c->started) / 1000);

    return 1;
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

        if (ev.type == AMON_WS_SESSION_MESSAGE && c->kind == SCALE_PANEL) {
            scale_panel_read_message(c, ev.data, ev.len);
        }
    }
}


static void
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

    if (panel) {
        scale_connecting--;
        scale_retry[scale_nretry++] = c->id;
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
            if (c->kind == SCALE_PANEL) {
                rc = scale_panel_handshake(c, scale_rbuf, (size_t) n, &used);

            } else {
                used = (size_t) n < SCALE_HS - c->hs->len
                    ? (size_t) n
                    : SCALE_HS - c->hs->len;
                memcpy(c->hs->buf + c->hs->len, scale_rbuf, used);
                c->hs->len += used;
                rc = scale_sdk_handshake(c);
                used = (size_t) n;
            }

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


static void
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
            scale_sdk_accept(c);
            continue;
        }

        if (c->kind == SCALE_PANEL && c->state == SCALE_CONNECTING) {
            scale_panel_connected(c);
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

static void
scale_child_init(void)
{
    scale_raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    scale_fds = scale_alloc(sizeof(scale_conn_t *) * (size_t) scale_nfds);
    scale_rbuf = scale_alloc(SCALE_READ);

    scale_ep = epoll_create1(EPOLL_CLOEXEC);
    if (scale_ep == -1) {
        scale_die("epoll_create1");
    }
}


static void
scale_sdk_run(int lfd)
{
    int           next, ms;
    uint64_t      cycle;
    amon_buf_t    json = {NULL, 0, 0};
    unsigned char frame[4096 + AMON_MAX_FRAME_HEADER];

    scale_child_init();
    scale_targets = scale_alloc(sizeof(scale_target_t)
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


static void
scale_panel_run(void)
{
    int i, p;

    scale_child_init();

    scale_npanels = 0;
    for (p = scale_k; p < scale_opt.panels + scale_opt.all;
         p += scale_opt.panel_procs) {
        scale_npanels++;
    }

    scale_panels = scale_alloc(sizeof(scale_conn_t *) * (size_t) scale_npanels);
    scale_retry = scale_alloc(sizeof(int) * (size_t) scale_npanels);

    for (i = 0; i < scale_npanels; i++) {
        scale_panels[i] = scale_alloc(sizeof(scale_conn_t));
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


/* --- the parent ---------------------------------------------------------- */

typedef struct {
    pid_t    pid;
    uint64_t cpu; /* utime + stime, clock ticks */
    uint64_t rss; /* bytes */
    uint64_t pss;
    int      fds;
} scale_proc_t;


static void
scale_proc_read(pid_t pid, scale_proc_t *p)
{
    char               path[64], line[256], buf[1024], *q;
    FILE              *f;
    DIR               *d;
    size_t             n;
    unsigned long long ut, st, kb;

    p->pid = pid;
    p->cpu = p->rss = p->pss = 0;
    p->fds = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';

    /* after "(comm)": state ppid ... utime (14th field) stime (15th) */
    q = strrchr(buf, ')');
    if (q
        && sscanf(q + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
               &st)
            == 2) {
        p->cpu = ut + st;
    }

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
                p->rss = kb * 1024;

            } else if (sscanf(line, "Pss: %llu kB", &kb) == 1) {
                p->pss = kb * 1024;
            }
        }

        fclose(f);
    }

    snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
    d = opendir(path);
    if (d) {
        while (readdir(d)) {
            p->fds++;
        }

        closedir(d);
        p->fds -= 2; /* "." and ".." */
    }
}


/* the children of the nginx master: its workers */
static int
scale_workers(pid_t master, pid_t *out, int max)
{
    int            n, ppid;
    char           path[300], buf[512], *q;
    FILE          *f;
    DIR           *d;
    size_t         len;
    struct dirent *e;

    n = 0;
    d = opendir("/proc");
    if (d == NULL) {
        scale_die("opendir /proc");
    }

    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';

        q = strrchr(buf, ')');
        if (q && sscanf(q + 2, "%*c %d", &ppid) == 1 && ppid == master) {
            out[n++] = (pid_t) atoi(e->d_name);
        }
    }

    closedir(d);
    return n;
}


static void
scale_usage(void)
{
    fprintf(stderr,
        "usage: scale-load --panel-port P --pid-file FILE [--targets N]\n"
        "         [--panels M] [--per-panel 10] [--all 10] [--workers 2]\n"
        "         [--sdk-procs K] [--panel-procs Q] [--interval 10]\n"
        "         [--duration 30] [--settle S] [--drain 5] [--batch 64]\n"
        "         [--ready-timeout 180] [--seed 1] [--target-prefix t]\n"
        "         [--path /ws/panel] [--hold]\n"
        "  Prints \"listening P0,P1,...\": target i is ws://127.0.0.1:\n"
        "  P(i %% K)/<prefix>i; start nginx then (it writes --pid-file).\n"
        "  --hold: after the report print \"end\" and keep every\n"
        "  connection open until SIGTERM.\n");
    exit(2);
}


static void
scale_options(int argc, char **argv)
{
    int o;

    static const struct option opts[] = {
        {"targets", required_argument, NULL, 'n'},
        {"panels", required_argument, NULL, 'm'},
        {"per-panel", required_argument, NULL, 'e'},
        {"all", required_argument, NULL, 'a'},
        {"workers", required_argument, NULL, 'w'},
        {"sdk-procs", required_argument, NULL, 'k'},
        {"panel-procs", required_argument, NULL, 'q'},
        {"panel-port", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'},
        {"interval", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'd'},
        {"settle", required_argument, NULL, 's'},
        {"drain", required_argument, NULL, 'r'},
        {"ready-timeout", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 'S'},
        {"target-prefix", required_argument, NULL, 't'},
        {"path", required_argument, NULL, 'P'},
        {"pid-file", required_argument, NULL, 'f'},
        {"hold", no_argument, NULL, 'H'}, {NULL, 0, NULL, 0}};

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': scale_opt.targets = atoi(optarg); break;
        case 'm': scale_opt.panels = atoi(optarg); break;
        case 'e': scale_opt.per_panel = atoi(optarg); break;
        case 'a': scale_opt.all = atoi(optarg); break;
        case 'w': scale_opt.workers = atoi(optarg); break;
        case 'k': scale_opt.sdk_procs = atoi(optarg); break;
        case 'q': scale_opt.panel_procs = atoi(optarg); break;
        case 'p': scale_opt.panel_port = atoi(optarg); break;
        case 'b': scale_opt.batch = atoi(optarg); break;
        case 'i': scale_opt.interval = atof(optarg); break;
        case 'd': scale_opt.duration = atof(optarg); break;
        case 's': scale_opt.settle = atof(optarg); break;
        case 'r': scale_opt.drain = atof(optarg); break;
        case 'T': scale_opt.ready_timeout = atof(optarg); break;
        case 'S': scale_opt.seed = (unsigned) atoi(optarg); break;
        case 't': scale_opt.prefix = optarg; break;
        case 'P': scale_opt.path = optarg; break;
        case 'f': scale_opt.pid_file = optarg; break;
        case 'H': scale_opt.hold = 1; break;
        default: scale_usage();
        }
    }

    /*
     * One listening socket per SDK process, each dialed by at most ~2,000
     * agent connections: a worker dials every target at once when it
     * starts, and an accept queue (net.core.somaxconn, 4096 here) that
     * overflows drops SYNs, which the agent sees as connect timeouts.
     */
    if (scale_opt.sdk_procs == 0) {
        scale_opt.sdk_procs =
            (scale_opt.targets * scale_opt.workers + 1999) / 2000;
        scale_opt.sdk_procs += scale_opt.sdk_procs < 2;
    }

    if (scale_opt.panel_procs == 0) {
        scale_opt.panel_procs =
            (scale_opt.panels + scale_opt.all + 4999) / 5000;
    }

    if (scale_opt.pid_file == NULL || scale_opt.panel_port <= 0
        || scale_opt.targets < 1 || scale_opt.panels < 0 || scale_opt.all < 0
        || scale_opt.panels + scale_opt.all < 1 || scale_opt.per_panel < 1
        || scale_opt.per_panel > SCALE_MAX_PER_PANEL
        || scale_opt.per_panel > scale_opt.targets || scale_opt.workers < 1
        || scale_opt.workers > SCALE_MAX_WORKERS || scale_opt.batch < 1
        || scale_opt.sdk_procs > scale_opt.targets
        || scale_opt.sdk_procs + scale_opt.panel_procs > SCALE_MAX_PROCS
        || scale_opt.interval <= 0 || scale_opt.duration <= 0) {
        scale_usage();
    }

    if (scale_opt.settle < 0) {
        scale_opt.settle = scale_opt.interval + 1;
    }
}


/* each panel: per_panel distinct random targets */
static void
scale_subscribe(void)
{
    int p, j, i, t, dup;

    scale_subs = scale_alloc(
        sizeof(int) * (size_t) (scale_opt.panels + 1) * scale_opt.per_panel);
    scale_nsubs = scale_alloc(sizeof(unsigned) * (size_t) scale_opt.targets);
    srand(scale_opt.seed);

    for (p = 0; p < scale_opt.panels; p++) {
        for (j = 0; j < scale_opt.per_panel; j++) {
            do {
                t = (int) (((unsigned) rand() << 15 ^ (unsigned) rand())
                    % (unsigned) scale_opt.targets);
                dup = 0;
                for (i = 0; i < j; i++) {
                    dup |= scale_subs[p * scale_opt.per_panel + i] == t;
                }
            } while (dup);

            scale_subs[p * scale_opt.per_panel + j] = t;
            scale_nsubs[t]++;
        }
    }
}


static int
scale_listen(int *port)
{
    int                fd, one = 1;
    socklen_t          len;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        scale_die("socket");
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    /* the kernel caps the backlog at net.core.somaxconn */
    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 65535) == -1
        || getsockname(fd, (struct sockaddr *) &sin, &len) == -1) {
        scale_die("listen for the SDKs");
    }

    *port = ntohs(sin.sin_port);
    return fd;
}


static int
scale_sum_open(int role)
{
    int i, n = 0;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        if (scale_sh->child[i].role == role) {
            n += scale_sh->child[i].open;
        }
    }

    return n;
}


/* wait until "want" of "role" are open; returns the seconds it took */
static double
scale_wait_open(int role, int want, const char *what)
{
    uint64_t start, report;
    double   s;

    start = report = scale_now();

    while (scale_sum_open(role) < want) {
        s = (double) (scale_now() - start) / 1e9;
        if (s > scale_opt.ready_timeout) {
            printf("not_ready=%s open=%d want=%d after_s=%.0f\n", what,
                scale_sum_open(role), want, s);
            return -1;
        }

        if (scale_now() - report > 5000000000ull) {
            report = scale_now();
            fprintf(stderr, "scale-load: %s: %d of %d open after %.0f s\n",
                what, scale_sum_open(role), want, s);
        }

        scale_sleep_ms(20);
    }

    return (double) (scale_now() - start) / 1e9;
}


static pid_t
scale_wait_nginx(void)
{
    int   pid;
    FILE *f;
    int   i;

    for (i = 0; i < 3000; i++) {
        f = fopen(scale_opt.pid_file, "r");
        if (f) {
            pid = 0;
            if (fscanf(f, "%d", &pid) == 1 && pid > 0) {
                fclose(f);
                return (pid_t) pid;
            }

            fclose(f);
        }

        scale_sleep_ms(20);
    }

    fprintf(
        stderr, "scale-load: no pid in %s after 60 s\n", scale_opt.pid_file);
    exit(1);
}


static void
scale_fork(int *lfd)
{
    int            i, k, role;
    pid_t          pid;
    scale_child_t *ch;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        role = i < scale_opt.sdk_procs ? SCALE_SDK : SCALE_PANEL;
        k = role == SCALE_SDK ? i : i - scale_opt.sdk_procs;
        ch = &scale_sh->child[i];
        ch->role = role;

        pid = fork();
        if (pid == -1) {
            scale_die("fork");
        }

        if (pid) {
            ch->pid = pid;
            continue;
        }

        /* a driver that is interrupted leaves no player behind */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        scale_me = ch;
        scale_k = k;

        if (role == SCALE_SDK) {
            scale_sdk_run(lfd[k]);
        }

        scale_panel_run();
    }

    for (i = 0; i < scale_opt.sdk_procs; i++) {
        close(lfd[i]);
    }
}


static void
scale_on_term(int signo)
{
    scale_quit = 1;
}


static void
scale_sample(pid_t *pids, int n, scale_proc_t *out)
{
    int i;

    for (i = 0; i < n; i++) {
        scale_proc_read(pids[i], &out[i]);
    }
}


/* the window is closed: wait until what was made in it stops arriving */
static void
scale_drain(void)
{
    int      i;
    uint64_t last, end;

    end = scale_sh->win_end + (uint64_t) (scale_opt.drain * 1e9);

    while (scale_now() < end) {
        last = scale_sh->win_end;
        for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
            if (scale_sh->child[i].last_read > last) {
                last = scale_sh->child[i].last_read;
            }
        }

        if (scale_now() - last > 1000000000ull) {
            break;
        }

        scale_sleep_ms(50);
    }
}


static void
scale_stop(void)
{
    int   i, status;
    pid_t pid;

    scale_sh->phase = SCALE_PHASE_DONE;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        pid = scale_sh->child[i].pid;
        if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status)
            || WEXITSTATUS(status) != 0) {
            printf("child_failed=%d\n", (int) pid);
        }
    }
}


static void
scale_report_window(void)
{
    int           i;
    size_t        b;
    double        expected;
    uint64_t      lat[SCALE_BUCKETS], sub[SCALE_BUCKETS], all[SCALE_BUCKETS];
    scale_child_t t;

    memset(&t, 0, sizeof(t));
    memset(lat, 0, sizeof(lat));
    memset(sub, 0, sizeof(sub));
    memset(all, 0, sizeof(all));

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        t.ticks += scale_sh->child[i].ticks;
        t.partial += scale_sh->child[i].partial;
        t.missed += scale_sh->child[i].missed;
        t.frames += scale_sh->child[i].frames;
        t.buffered += scale_sh->child[i].buffered;
        t.delivered += scale_sh->child[i].delivered;
        t.wrong += scale_sh->child[i].wrong;
        t.other += scale_sh->child[i].other;
        t.bad += scale_sh->child[i].bad;
        t.closed += scale_sh->child[i].closed;
        t.refused += scale_sh->child[i].refused;
    }

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        for (b = 0; b < SCALE_BUCKETS; b++) {
            sub[b] += scale_sh->child[i].lat[b];
            all[b] += scale_sh->child[i].lat_all[b];
            lat[b] += scale_sh->child[i].lat[b] + scale_sh->child[i].lat_all[b];
        }
    }

    /* every heartbeat made reaches its subscribers and the 'all' panels */
    expected = 0;
    for (i = 0; i < scale_opt.targets; i++) {
        expected += (double) scale_ticks[i]
            * (double) (scale_nsubs[i] + (unsigned) scale_opt.all);
    }

    printf("window_s=%.1f heartbeats=%llu partial=%llu missed=%llu "
           "frames_sent=%llu buffered_sends=%llu\n",
        (double) (scale_sh->win_end - scale_sh->win_start) / 1e9,
        (unsigned long long) t.ticks, (unsigned long long) t.partial,
        (unsigned long long) t.missed, (unsigned long long) t.frames,
        (unsigned long long) t.buffered);
    printf("deliveries=%llu expected=%.0f loss_pct=%.3f wrong=%llu "
           "other=%llu bad=%llu lat_p50_ms=%.2f lat_p99_ms=%.2f "
           "lat_p999_ms=%.2f lat_max_ms=%.2f\n",
        (unsigned long long) t.delivered, expected,
        expected > 0 ? 100.0 * (expected - (double) t.delivered) / expected
                     : 0.0,
        (unsigned long long) t.wrong, (unsigned long long) t.other,
        (unsigned long long) t.bad, scale_hist_pct(lat, 50),
        scale_hist_pct(lat, 99), scale_hist_pct(lat, 99.9),
        scale_hist_max(lat));
    printf("subscribed_panels_p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
           "all_panels_p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
        scale_hist_pct(sub, 50), scale_hist_pct(sub, 99), scale_hist_max(sub),
        scale_hist_pct(all, 50), scale_hist_pct(all, 99), scale_hist_max(all));
    printf("connections_closed=%llu handshakes_failed=%llu\n",
        (unsigned long long) t.closed, (unsigned long long) t.refused);
}


static void
scale_report_connect(double sdk_s, double panel_s)
{
    int      i;
    size_t   b;
    uint64_t conn[SCALE_BUCKETS], req[SCALE_BUCKETS], last = 0;
    uint64_t accepted = 0, refused = 0;

    memset(conn, 0, sizeof(conn));
    memset(req, 0, sizeof(req));

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        if (scale_sh->child[i].role == SCALE_SDK) {
            accepted += scale_sh->child[i].accepted;
            refused += scale_sh->child[i].refused;
            if (scale_sh->child[i].last_accept > last) {
                last = scale_sh->child[i].last_accept;
            }

            for (b = 0; b < SCALE_BUCKETS; b++) {
                req[b] += scale_sh->child[i].conn[b];
            }

            continue;
        }

        for (b = 0; b < SCALE_BUCKETS; b++) {
            conn[b] += scale_sh->child[i].conn[b];
        }
    }

    printf("sdks=%d workers=%d sdk_procs=%d sdk_conns_up_s=%.2f "
           "sdk_accepted=%llu sdk_handshakes_failed=%llu\n",
        scale_opt.targets, scale_opt.workers, scale_opt.sdk_procs, sdk_s,
        (unsigned long long) accepted, (unsigned long long) refused);
    printf("sdk_last_accept_s=%.2f sdk_accept_to_request_p50_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
        last > scale_nginx_seen ? (double) (last - scale_nginx_seen) / 1e9
                                : 0.0,
        scale_hist_pct(req, 50), scale_hist_pct(req, 99), scale_hist_max(req));
    printf("panels=%d+%d per_panel=%d panel_procs=%d panels_up_s=%.2f "
           "connect_p50_ms=%.2f connect_p99_ms=%.2f connect_max_ms=%.2f\n",
        scale_opt.panels, scale_opt.all, scale_opt.per_panel,
        scale_opt.panel_procs, panel_s, scale_hist_pct(conn, 50),
        scale_hist_pct(conn, 99), scale_hist_max(conn));
}


static void
scale_report_procs(int nw, scale_proc_t *sdk, scale_proc_t *pan,
    scale_proc_t *c0, scale_proc_t *c1, scale_proc_t *l0, scale_proc_t *l1)
{
    int    i, nl;
    double hz, window, cpu, lsdk, lpan;

    hz = (double) sysconf(_SC_CLK_TCK);
    window = (double) (scale_sh->win_end - scale_sh->win_start) / 1e9;
    cpu = 0;

    for (i = 0; i < nw; i++) {
        printf("worker pid=%d fds=%d rss_mib=%.1f pss_mib=%.1f "
               "rss_after_sdks_mib=%.1f rss_after_panels_mib=%.1f "
               "cpu_s=%.2f\n",
            (int) c1[i].pid, c1[i].fds, (double) c1[i].rss / 1048576.0,
            (double) c1[i].pss / 1048576.0, (double) sdk[i].rss / 1048576.0,
            (double) pan[i].rss / 1048576.0,
            (double) (c1[i].cpu - c0[i].cpu) / hz);
        cpu += (double) (c1[i].cpu - c0[i].cpu) / hz;
    }

    lsdk = lpan = 0;
    nl = scale_opt.sdk_procs + scale_opt.panel_procs;

    for (i = 0; i < nl; i++) {
        if (i < scale_opt.sdk_procs) {
            lsdk += (double) (l1[i].cpu - l0[i].cpu) / hz;

        } else {
            lpan += (double) (l1[i].cpu - l0[i].cpu) / hz;
        }
    }

    printf("workers_cpu_s=%.2f window_s=%.1f workers_cpu_pct_of_one_core=%.1f "
           "loadgen_sdk_cpu_pct=%.1f loadgen_panel_cpu_pct=%.1f\n",
        cpu, window, 100.0 * cpu / window, 100.0 * lsdk / window,
        100.0 * lpan / window);
}


int
main(int argc, char **argv)
{
    int          i, nw, nl, lfd[SCALE_MAX_PROCS], port[SCALE_MAX_PROCS];
    pid_t        master, w[SCALE_MAX_WORKERS * 4], kids[SCALE_MAX_PROCS];
    double       sdk_s, panel_s;
    scale_proc_t sdk[SCALE_MAX_WORKERS * 4], pan[SCALE_MAX_WORKERS * 4];
    scale_proc_t c0[SCALE_MAX_WORKERS * 4], c1[SCALE_MAX_WORKERS * 4];
    scale_proc_t l0[SCALE_MAX_PROCS], l1[SCALE_MAX_PROCS];

    scale_options(argc, argv);
    scale_raise_nofile();
    scale_subscribe();
    signal(SIGTERM, scale_on_term);

    scale_sh = mmap(NULL,
        sizeof(scale_shared_t) + sizeof(uint32_t) * (size_t) scale_opt.targets,
        PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (scale_sh == MAP_FAILED) {
        scale_die("mmap");
    }

    scale_ticks = (uint32_t *) (scale_sh + 1);

    printf("listening ");
    for (i = 0; i < scale_opt.sdk_procs; i++) {
        lfd[i] = scale_listen(&port[i]);
        printf("%s%d", i ? "," : "", port[i]);
    }

    printf("\n");
    fflush(stdout);

    scale_sh->t0 = scale_now();
    scale_fork(lfd);

    nl = scale_opt.sdk_procs + scale_opt.panel_procs;
    for (i = 0; i < nl; i++) {
        kids[i] = scale_sh->child[i].pid;
    }

    master = scale_wait_nginx();
    scale_nginx_seen = scale_now();
    sdk_s = scale_wait_open(
        SCALE_SDK, scale_opt.targets * scale_opt.workers, "SDK connections");
    nw = scale_workers(master, w, SCALE_MAX_WORKERS * 4);
    scale_sample(w, nw, sdk);

    scale_sh->phase = SCALE_PHASE_PANELS;
    panel_s = scale_wait_open(
        SCALE_PANEL, scale_opt.panels + scale_opt.all, "panels");
    scale_sample(w, nw, pan);
    scale_report_connect(sdk_s, panel_s);
    fflush(stdout);

    scale_sleep_ms((int) (scale_opt.settle * 1000));

    scale_sample(w, nw, c0);
    scale_sample(kids, nl, l0);
    scale_sh->win_start = scale_now();
    scale_sleep_ms((int) (scale_opt.duration * 1000));
    scale_sh->win_end = scale_now();
    scale_sample(w, nw, c1);
    scale_sample(kids, nl, l1);

    scale_drain();

    /* the players stay connected while the report is read */
    scale_report_window();
    scale_report_procs(nw, sdk, pan, c0, c1, l0, l1);

    if (scale_opt.hold) {
        printf("end\n");
        fflush(stdout);

        while (!scale_quit) {
            pause();
        }
    }

    scale_stop();

    return 0;
}

/*
 * Copyright (C) AMonitor authors
 *
 * Load generator for the agent: M fake SDK servers and N panels in one
 * epoll loop, on the protocol core.  "fanout" measures heartbeats
 * delivered to panels per second and their latency; "actions" measures
 * action round trips (panel -> agent -> SDK -> ack -> panel), either with a
 * fixed number in flight per panel (closed loop) or at a fixed offered
 * rate on a schedule that does not wait for acks (open loop, --action-rate:
 * latency from the scheduled send time).  The same program measures
 * nginx's own WebSocket proxying as the ceiling.
 */

#define _GNU_SOURCE

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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_ws_session.h"
#include "amon_posix.h"


#define LOAD_MAX_SDKS    64
#define LOAD_MAX_CONNS   65536
#define LOAD_READ        (256 * 1024)
#define LOAD_RING        8192 /* action send times per panel */
#define LOAD_SDK_LOW     (64 * 1024) /* refill an SDK's buffer below this */
#define LOAD_BATCH       16 /* heartbeats per refill */
#define LOAD_SAMPLES     (1 << 21)
#define LOAD_MAX_MESSAGE (16 * 1024 * 1024)
#define LOAD_SPIN_NS     20000 /* default --spin */


typedef enum { LOAD_LISTEN = 0, LOAD_SDK, LOAD_PANEL } load_kind_e;


typedef struct {
    int                      fd;
    load_kind_e              kind;
    int                      open;
    int                      dirty;
    int                      writing;
    int                      sdk; /* index of the SDK (LOAD_LISTEN, LOAD_SDK) */
    int                      id; /* panel number */
    unsigned char            key[AMON_WS_KEY_LEN];
    unsigned char            mask[4]; /* a panel masks every frame with it */
    amon_ws_session_t        session;
    amon_ws_request_parser_t request; /* the SDK side's handshake */
    unsigned char           *in;
    size_t                   in_len;
    unsigned char           *out;
    size_t                   out_pos;
    size_t                   out_len;
    size_t                   out_cap;
    uint64_t                 seq;
    unsigned                 inflight;
    uint64_t                *sent_at;
} load_conn_t;


typedef struct {
    uint32_t *v;
    size_t    n;
    uint64_t  seen;
} load_samples_t;


static struct {
    const char *mode;
    const char *panel_url;
    int         panels;
    int         sdk_ports[LOAD_MAX_SDKS];
    int         nsdks;
    int         sdk_conns;
    double      duration;
    double      warmup;
    size_t      size;
    double      rate;
    unsigned    inflight;
    const char *prefix;
    int         quiet;
    double      action_rate; /* > 0: open loop, actions/s on all panels */
    double      ack_timeout; /* seconds: an ack later than this is late */
    uint64_t    max_actions; /* > 0: the closed loop ends after so many */
    const char *timeline; /* open loop: one line per action */
    uint64_t    spin; /* ns: the open loop sleeps only longer gaps */
} load_opt = {"fanout", NULL, 1, {0}, 0, 1, 5.0, 1.0, 200, 0.0, 1, "bench-", 0,
    0.0, 1.0, 0, NULL, LOAD_SPIN_NS};


static int            load_ep;
static load_conn_t   *load_conns[LOAD_MAX_CONNS];
static load_conn_t   *load_dirty[LOAD_MAX_CONNS];
static load_conn_t   *load_sdks[LOAD_MAX_CONNS]; /* open SDK connections */
static int            load_nsdk_conns;
static int            load_ndirty;
static int            load_sdk_open[LOAD_MAX_SDKS];
static int            load_panels_open;
static int            load_measuring;
static uint64_t       load_win_start; /* ns: heartbeats sent in the */
static uint64_t       load_win_end; /* window are the ones counted */
static uint64_t       load_run;
static amon_ws_url_t  load_url;
static unsigned char *load_pad;

/* counters, reset when the measurement starts */
static uint64_t       load_emitted; /* heartbeats an SDK sent, per conn */
static uint64_t       load_delivered; /* heartbeats panels received */
static uint64_t       load_acks;
static uint64_t       load_actions_sent;
static uint64_t       load_other; /* target_status and such */
static uint64_t       load_errors; /* error envelopes */
static uint64_t       load_bytes_in;
static load_samples_t load_lat; /* fan-out latency, microseconds */
static load_samples_t load_rtt; /* action round trip, microseconds */

/* final errors by code and message, the first LOAD_CODES kinds seen */

#define load_min(a, b) ((a) < (b) ? (a) : (b))
#define LOAD_CODES     8
static struct {
    char     code[96];
    uint64_t n;
} load_codes[LOAD_CODES + 1]; /* the last one: every other code */


/*
 * The open loop: action k (over all panels, panel k % panels) is due at
 * start + k / rate, whatever has been answered; its round trip is counted
 * from that time, so a stall of the agent (or of this loop) shows in the
 * latency of every action that should have been sent meanwhile.
 */
static struct {
    uint64_t       start; /* ns */
    uint64_t       n; /* actions in the schedule */
    uint64_t       sent;
    uint64_t       first; /* the measured actions: first <= k < last */
    uint64_t       last;
    uint64_t       win_start; /* ns: the measured window */
    uint64_t       win_end;
    uint64_t      *due; /* ns: when action k was due; 0 once answered */
    uint64_t      *sent_at; /* ns: when it was written */
    uint64_t       open; /* measured actions not answered yet */
    uint64_t       acks; /* final acks of measured actions */
    uint64_t       errors; /* final errors of measured actions */
    uint64_t       late; /* acks later than --ack-timeout */
    uint64_t       notices; /* replies with "final":false */
    uint64_t       stray; /* replies to no action in flight */
    uint64_t       in_window; /* answers read during the window */
    load_samples_t svc; /* round trip from the write, microseconds */
    uint32_t      *rtt_of; /* --timeline: round trip of action k, us */
    unsigned char *err_of; /* --timeline: action k was answered an error */
} load_ol;


static uint64_t
load_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


static void
load_die(const char *what)
{
    fprintf(stderr, "amon-load: %s: %s\n", what, strerror(errno));
    exit(2);
}


static void *
load_xalloc(size_t n)
{
    void *p = calloc(1, n);

    if (p == NULL) {
        load_die("calloc");
    }

    return p;
}


static void
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


static int
load_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


static double
load_pct(load_samples_t *s, double p)
{
    size_t i;

    if (s->n == 0) {
        return -1;
    }

    i = (size_t) (p / 100.0 * (double) (s->n - 1) + 0.5);
    return s->v[i];
}


static void
load_set_nonblock(int fd)
{
    int one = 1;

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        load_die("fcntl");
    }

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}


static load_conn_t *
load_add(int fd, load_kind_e kind)
{
    load_conn_t       *c;
    struct epoll_event ee;

    if (fd >= LOAD_MAX_CONNS) {
        fprintf(stderr, "amon-load: too many connections\n");
        exit(2);
    }

    c = load_xalloc(sizeof(load_conn_t));
    c->fd = fd;
    c->kind = kind;
    c->in = load_xalloc(LOAD_READ);
    load_conns[fd] = c;

    ee.events = EPOLLIN;
    ee.data.ptr = c;

    if (epoll_ctl(load_ep, EPOLL_CTL_ADD, fd, &ee) == -1) {
        load_die("epoll_ctl");
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
            load_die("realloc");
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


static void
load_send_raw(load_conn_t *c, const void *data, size_t len)
{
    load_reserve(c, len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    load_mark(c);
}


/* a text frame: masked from panels (clients), plain from SDKs */
static void
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
static void
load_mask(void *data, unsigned char *key, size_t len)
{
    load_conn_t *c = data;

    memcpy(key, c->mask, len);
}


static void
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


static void
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


static const unsigned char *
load_find(const unsigned char *h, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle);

    if (hlen < nlen) {
        return NULL;
    }

    return memmem(h, hlen, needle, nlen);
}


/* the value of a string field "name" in m, or n = 0 */
static const unsigned char *
load_field(const unsigned char *m, size_t len, const char *name, size_t *n)
{
    const unsigned char *p, *q, *end;

    end = m + len;
    *n = 0;
    p = load_find(m, len, name);

    if (p == NULL) {
        return NULL;
    }

    p += strlen(name);
    for (q = p; q < end && *q != '"'; q++) { /* void */
    }

    *n = (size_t) (q - p);
    return p;
}


/* count a final error by its code and message ("CODE(message)") */
static void
load_error_code(const unsigned char *m, size_t len)
{
    int                  i;
    char                 key[sizeof(load_codes[0].code)];
    size_t               cn, mn;
    const unsigned char *c, *t;

    c = load_field(m, len, "\"code\":\"", &cn);
    t = load_field(m, len, "\"message\":\"", &mn);

    /* a space would split the report's fields */
    snprintf(key, sizeof(key), "%.*s(%.*s)", (int) (cn ? cn : 1),
        cn ? (const char *) c : "?", (int) load_min(mn, 60),
        mn ? (const char *) t : "");

    for (i = 0; key[i]; i++) {
        if (key[i] == ' ' || key[i] == ',') {
            key[i] = '_';
        }
    }

    for (i = 0; i < LOAD_CODES; i++) {
        if (load_codes[i].n == 0) {
            strcpy(load_codes[i].code, key);
            break;
        }

        if (strcmp(load_codes[i].code, key) == 0) {
            break;
        }
    }

    if (i == LOAD_CODES) {
        strcpy(load_codes[i].code, "other");
    }

    load_codes[i].n++;
}


/* " error_codes=CODE:n,CODE:n" ("-" for none) */
static void
load_print_codes(void)
{
    int i;

    printf(" error_codes=");

    if (load_codes[0].n == 0) {
        printf("-");
    }

    for (i = 0; i <= LOAD_CODES && load_codes[i].n; i++) {
        printf("%s%s:%llu", i ? "," : "", load_codes[i].code,
            (unsigned long long) load_codes[i].n);
    }
}


static uint64_t
load_number(const unsigned char *p, const unsigned char *end)
{
    uint64_t v = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t) (*p++ - '0');
    }

    return v;
}


/* --- SDK side ------------------------------------------------------------- */

static void
load_sdk_heartbeat(load_conn_t *c, uint64_t seq)
{
    int  n;
    char head[256];

    n = snprintf(head, sizeof(head),
        "{\"msg_id\":\"hb-%llu-%llu\",\"type\":\"heartbeat\","
        "\"target_id\":\"%s%d\",\"timestamp\":%llu,\"payload\":{"
        "\"target_id\":\"%s%d\",\"status\":\"up\",\"metrics\":{\"t\":"
        "\"%llu\",\"pad\":\"",
        (unsigned long long) load_run, (unsigned long long) seq,
        load_opt.prefix, c->sdk, (unsigned long long) amon_posix_wall_ms(),
        load_opt.prefix, c->sdk, (unsigned long long) load_now_ns());

    /* the padding brings the message to about --size bytes */
    memcpy(load_pad, head, (size_t) n);
    memcpy(load_pad + n + load_opt.size, "\"}}}", 4);
    load_pad[n + load_opt.size + 4] = '\0';
    memset(load_pad + n, 'x', load_opt.size);

    load_send_text(c, load_pad, (size_t) n + load_opt.size + 4);

    if (load_measuring && load_win_end == 0) {
        load_emitted++;
    }
}


static void
load_sdk_message(load_conn_t *c, const unsigned char *m, size_t len)
{
    int                  n;
    char                 ack[512];
    const unsigned char *id, *end;

    if (load_find(m, len, "\"type\":\"action\"") == NULL) {
        return;
    }

    id = load_find(m, len, "\"msg_id\":\"");
    if (id == NULL) {
        return;
    }

    id += sizeof("\"msg_id\":\"") - 1;
    end = memchr(id, '"', len - (size_t) (id - m));
    if (end == NULL || end - id > 200) {
        return;
    }

    n = snprintf(ack, sizeof(ack),
        "{\"msg_id\":\"k-%.*s\",\"type\":\"action_ack\",\"target_id\":"
        "\"%s%d\",\"timestamp\":%llu,\"payload\":{\"action_msg_id\":"
        "\"%.*s\",\"success\":true,\"message\":\"ok\"}}",
        (int) (end - id), (const char *) id, load_opt.prefix, c->sdk,
        (unsigned long long) amon_posix_wall_ms(), (int) (end - id),
        (const char *) id);

    load_send_text(c, (unsigned char *) ack, (size_t) n);
}


static int
load_sdk_handshake(load_conn_t *c)
{
    int           rc;
    size_t        n;
    unsigned char resp[256];

    rc = amon_ws_request_feed(&c->request, c->in, c->in_len);

    if (rc == AMON_AGAIN) {
        return 0;
    }

    if (rc != AMON_OK) {
        fprintf(stderr, "amon-load: sdk handshake refused: %d %s\n",
            c->request.status, c->request.reason);
        return -1;
    }

    n = amon_ws_server_response(resp, sizeof(resp), c->request.req.key);
    if (n == 0) {
        return -1;
    }

    load_send_raw(c, resp, n);

    c->open = 1;
    load_sdk_open[c->sdk]++;
    load_sdks[load_nsdk_conns++] = c;

    /* bytes after the request are frames */
    n = c->request.header_len;
    c->in_len -= n;
    memmove(c->in, c->in + n, c->in_len);

    return 1;
}


/* --- panel side ----------------------------------------------------------- */

/* "a<run>-<panel>-<seq>": the ack names it, the seq finds its send time */
static void
load_panel_send_action(load_conn_t *c, uint64_t seq)
{
    int  n;
    char a[512];

    n = snprintf(a, sizeof(a),
        "{\"msg_id\":\"a%llu-%d-%llu\",\"type\":\"action\",\"target_id\":"
        "\"%s%d\",\"timestamp\":%llu,\"payload\":{\"action\":\"restart\","
        "\"params\":{\"from\":\"amon-load\"}}}",
        (unsigned long long) load_run, c->id, (unsigned long long) seq,
        load_opt.prefix, c->id % load_opt.nsdks,
        (unsigned long long) amon_posix_wall_ms());

    load_send_text(c, (unsigned char *) a, (size_t) n);
}


static void
load_panel_action(load_conn_t *c)
{
    c->sent_at[c->seq % LOAD_RING] = load_now_ns();
    load_panel_send_action(c, c->seq);
    c->seq++;
    c->inflight++;

    if (load_measuring) {
        load_actions_sent++;
    }
}


/* a reply about action k of the open loop */
static void
load_open_answer(const unsigned char *m, size_t len, uint64_t k)
{
    int      measured;
    uint64_t now, rtt, svc;

    if (load_find(m, len, "\"final\":false")) {
        load_ol.notices++; /* ACK_TIMEOUT as a notice: the action runs on */
        return;
    }

    if (k >= load_ol.n || load_ol.due[k] == 0) {
        load_ol.stray++;
        return;
    }

    now = load_now_ns();
    rtt = now > load_ol.due[k] ? (now - load_ol.due[k]) / 1000 : 0;
    svc = now > load_ol.sent_at[k] ? (now - load_ol.sent_at[k]) / 1000 : 0;
    load_ol.due[k] = 0;
    measured = k >= load_ol.first && k < load_ol.last;

    if (now >= load_ol.win_start && now < load_ol.win_end) {
        load_ol.in_window++;
    }

    if (!measured) {
        return;
    }

    load_ol.open--;

    if (load_ol.rtt_of != NULL) {
        load_ol.rtt_of[k] =
            rtt > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t) rtt;
    }

    if (load_find(m, len, "\"type\":\"error\"")) {
        load_ol.errors++;
        load_error_code(m, len);
        if (load_ol.err_of != NULL) {
            load_ol.err_of[k] = 1;
        }

        if (!load_opt.quiet && load_ol.errors < 5) {
            fprintf(stderr, "amon-load: error: %.*s\n", (int) len,
                (const char *) m);
        }
        return;
    }

    load_ol.acks++;
    load_sample(&load_rtt, rtt);
    load_sample(&load_ol.svc, svc);

    if ((double) rtt > load_opt.ack_timeout * 1e6) {
        load_ol.late++;
    }
}


static void
load_panel_message(load_conn_t *c, const unsigned char *m, size_t len)
{
    uint64_t             t, seq;
    const unsigned char *p, *end, *q;

    end = m + len;

    if (len > 14 && memcmp(m, "{\"msg_id\":\"hb-", 14) == 0) {
        /* counted by when it was sent: what was sent in the window */
        p = load_find(m, len, "\"t\":\"");
        if (p == NULL) {
            return;
        }

        t = load_number(p + 5, end);
        if (load_win_start && t >= load_win_start
            && (load_win_end == 0 || t < load_win_end)) {
            load_delivered++;
            load_sample(&load_lat, (load_now_ns() - t) / 1000);
        }

        return;
    }

    p = load_find(m, len, "\"action_msg_id\":\"");
    if (p) {
        /* "a<run>-<panel>-<seq>" */
        p += sizeof("\"action_msg_id\":\"") - 1;
        q = memchr(p, '"', (size_t) (end - p));
        if (q == NULL) {
            return;
        }

        while (q > p && q[-1] != '-') {
            q--;
        }

        seq = load_number(q, end);

        if (load_opt.action_rate > 0) {
            load_open_answer(m, len, seq);
            return;
        }

        if (c->inflight) {
            c->inflight--;
        }

        if (load_measuring) {
            load_acks++;
            load_sample(&load_rtt,
                (load_now_ns() - c->sent_at[seq % LOAD_RING]) / 1000);
        }

        if (strcmp(load_opt.mode, "actions") == 0) {
            while (c->inflight < load_opt.inflight) {
                load_panel_action(c);
            }
        }

        return;
    }

    if (load_find(m, len, "\"type\":\"error\"")) {
        load_errors++;
        load_error_code(m, len);
        if (!load_opt.quiet && load_errors < 5) {
            fprintf(stderr, "amon-load: error: %.*s\n", (int) len,
                (const char *) m);
        }

        /* the action is answered: keep the window full */
        if (c->inflight) {
            c->inflight--;
        }

        if (strcmp(load_opt.mode, "actions") == 0) {
            while (c->inflight < load_opt.inflight) {
                load_panel_action(c);
            }
        }

        return;
    }

    load_other++;
}


static int
load_panel_handshake(load_conn_t *c)
{
    int         rc, status;
    size_t      hlen;
    const char *reason;

    rc = amon_ws_client_response(
        c->in, c->in_len, c->key, &hlen, &status, &reason);

    if (rc == AMON_AGAIN) {
        return 0;
    }

    if (rc != AMON_OK) {
        fprintf(stderr, "amon-load: panel handshake refused: %d %s\n", status,
            reason);
        return -1;
    }

    c->open = 1;
    load_panels_open++;

    c->in_len -= hlen;
    memmove(c->in, c->in + hlen, c->in_len);

    return 1;
}


static void
load_panel_connect(int id)
{
    int           fd;
    char          h[256], err[256];
    size_t        n;
    load_conn_t  *c;
    unsigned char rnd[16], req[1024];
    amon_str_t    host, none = amon_null_string;

    /* "[::1]" stays bracketed in the URL; the resolver wants "::1" */
    host = load_url.host;
    if (host.len > 2 && host.data[0] == '[') {
        host.data++;
        host.len -= 2;
    }

    snprintf(h, sizeof(h), "%.*s", (int) host.len, (const char *) host.data);

    fd = amon_posix_dial(h, load_url.port, 10000, NULL, err, sizeof(err));
    if (fd == -1) {
        fprintf(stderr, "amon-load: panel URL: %s\n", err);
        exit(2);
    }

    load_set_nonblock(fd);

    c = load_add(fd, LOAD_PANEL);
    c->id = id;
    c->sent_at = load_xalloc(sizeof(uint64_t) * LOAD_RING);
    amon_ws_session_init(&c->session, 1, LOAD_MAX_MESSAGE, NULL, load_mask, c);

    amon_posix_random(rnd, sizeof(rnd));
    amon_ws_make_key(rnd, c->key);
    memcpy(c->mask, rnd, 4);

    host = load_url.host_port;
    n = amon_ws_client_request(
        req, sizeof(req), host, load_url.path, c->key, none);
    load_send_raw(c, req, n);
}


/* --- frames ----------------------------------------------------------------- */

static void
load_message(load_conn_t *c, const unsigned char *m, size_t len)
{
    if (c->kind == LOAD_PANEL) {
        load_panel_message(c, m, len);

    } else {
        load_sdk_message(c, m, len);
    }
}


/* 0: all input used; -1: close the connection (its last reply is queued) */
static int
load_frames(load_conn_t *c)
{
    int                     rc;
    size_t                  pos, consumed;
    amon_ws_session_event_t ev;

    pos = 0;

    for (;;) {
        rc = amon_ws_session_feed(
            &c->session, c->in + pos, c->in_len - pos, &consumed, &ev);
        pos += consumed;

        if (ev.reply_len) {
            /* a pong, a close echo, the close of a fault */
            load_send_raw(c, ev.reply, ev.reply_len);
        }

        if (rc == AMON_AGAIN) {
            break;
        }

        if (rc != AMON_OK) {
            return -1;
        }

        if (ev.type == AMON_WS_SESSION_MESSAGE) {
            load_message(c, ev.data, ev.len);

        } else if (ev.type == AMON_WS_SESSION_CLOSE) {
            return -1;
        }
    }

    c->in_len = 0;
    return 0;
}


static void
load_read(load_conn_t *c)
{
    int     rc;
    ssize_t n;

    for (;;) {
        n = read(c->fd, c->in + c->in_len, LOAD_READ - c->in_len);

        if (n == 0) {
            load_close(c, "closed by the peer");
            return;
        }

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                load_close(c, "read failed");
            }

            return;
        }

        c->in_len += (size_t) n;
        if (load_measuring && load_win_end == 0) {
            load_bytes_in += (uint64_t) n;
        }

        if (!c->open) {
            rc = c->kind == LOAD_PANEL ? load_panel_handshake(c)
                                       : load_sdk_handshake(c);
            if (rc < 0) {
                load_close(c, "bad handshake");
                return;
            }

            if (rc == 0) {
                continue;
            }
        }

        if (load_frames(c) != 0) {
            load_flush(c);
            if (c->fd >= 0) {
                load_close(c, "protocol error or close frame");
            }
            return;
        }

        if ((size_t) n < LOAD_READ / 2) {
            return;
        }
    }
}


static void
load_listen(int sdk, int port)
{
    int                fd, one = 1;
    load_conn_t       *c;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        load_die("socket");
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 1024) == -1) {
        load_die("bind/listen for a fake SDK");
    }

    load_set_nonblock(fd);
    c = load_add(fd, LOAD_LISTEN);
    c->sdk = sdk;
}


static void
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

static void
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


/* one pass of the loop; waits at most ns nanoseconds */
static void
load_poll_ns(uint64_t ns)
{
    int                i, n;
    load_conn_t       *c;
    struct timespec    ts;
    struct epoll_event ev[256];

    /* what was queued since the last pass goes out before we wait */
    load_flush_dirty();

    ts.tv_sec = (time_t) (ns / 1000000000u);
    ts.tv_nsec = (long) (ns % 1000000000u);
    n = epoll_pwait2(load_ep, ev, 256, &ts, NULL);

    for (i = 0; i < n; i++) {
        c = ev[i].data.ptr;
        if (c->fd < 0) {
            continue;
        }

        if (c->kind == LOAD_LISTEN) {
            load_accept(c);
            continue;
        }

        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            load_read(c);
        }

        if (c->fd >= 0 && (ev[i].events & EPOLLOUT)) {
            load_flush(c);
        }
    }

    load_flush_dirty();
}


static void
load_poll(int ms)
{
    load_poll_ns((uint64_t) ms * 1000000u);
}


/* "panels" panels open and every SDK dialed by every worker */
static int
load_ready(int panels)
{
    int i;

    if (load_panels_open < panels) {
        return 0;
    }

    for (i = 0; i < load_opt.nsdks; i++) {
        if (load_sdk_open[i] < load_opt.sdk_conns) {
            return 0;
        }
    }

    return 1;
}


/* wait until load_ready(panels); -1 (said on stderr) after 20 s */
static int
load_wait_ready(int panels)
{
    int      i;
    uint64_t t0;

    t0 = load_now_ns();

    while (!load_ready(panels)) {
        load_poll(10);
        if (load_now_ns() - t0 > 20000000000ull) {
            fprintf(stderr,
                "amon-load: not ready after 20 s: %d/%d panels open\n",
                load_panels_open, panels);
            for (i = 0; i < load_opt.nsdks; i++) {
                fprintf(stderr, "  sdk %d: %d/%d connections\n", i,
                    load_sdk_open[i], load_opt.sdk_conns);
            }
            return -1;
        }
    }

    return 0;
}


/* run the loop for "s" seconds */
static void
load_quiet(double s)
{
    uint64_t t0;

    t0 = load_now_ns();
    while ((double) (load_now_ns() - t0) / 1e9 < s) {
        load_poll(10);
    }
}


/* heartbeats from every SDK connection, at --rate or as fast as it drains */
static void
load_emit(double elapsed, uint64_t *emissions)
{
    int          i, k;
    uint64_t     want;
    load_conn_t *c;

    if (load_opt.rate > 0) {
        want = (uint64_t) (elapsed * load_opt.rate);

    } else {
        want = *emissions + LOAD_BATCH;

        /* as fast as the agent reads: wait while a buffer is full */
        for (i = 0; i < load_nsdk_conns; i++) {
            c = load_sdks[i];
            if (c->out_len - c->out_pos > LOAD_SDK_LOW) {
                return;
            }
        }
    }

    for (k = 0; *emissions < want && k < 4 * LOAD_BATCH; k++) {
        for (i = 0; i < load_nsdk_conns; i++) {
            load_sdk_heartbeat(load_sdks[i], *emissions);
        }

        (*emissions)++;
    }
}


/* --- the open loop ------------------------------------------------------- */

static uint64_t
load_open_due(uint64_t k)
{
    return load_ol.start + (uint64_t) ((double) k * 1e9 / load_opt.action_rate);
}


/* every action due by "upto" goes out now, on its panel, with its own id */
static void
load_open_send(uint64_t upto, uint64_t now, load_conn_t **panels)
{
    uint64_t k;

    while (load_ol.sent < load_ol.n && load_open_due(load_ol.sent) <= upto) {
        k = load_ol.sent++;
        load_ol.due[k] = load_open_due(k);
        load_ol.sent_at[k] = now;

        if (k >= load_ol.first && k < load_ol.last) {
            load_ol.open++;
            load_sample(&load_lat, (now - load_ol.due[k]) / 1000);
        }

        load_panel_send_action(panels[k % (uint64_t) load_opt.panels], k);
    }
}


static void
load_open_run(void)
{
    int          i, np;
    uint64_t     now, end, deadline;
    load_conn_t *panels[LOAD_MAX_CONNS];

    np = 0;
    for (i = 0; i < LOAD_MAX_CONNS; i++) {
        if (load_conns[i] && load_conns[i]->kind == LOAD_PANEL) {
            panels[np++] = load_conns[i];
        }
    }

    /* wake-ups on time: the default timer slack is 50 us */
    (void) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

    load_ol.n = (uint64_t) ((load_opt.warmup + load_opt.duration)
                    * load_opt.action_rate)
        + 1;
    load_ol.first = (uint64_t) (load_opt.warmup * load_opt.action_rate);
    load_ol.last = load_ol.n - 1;
    load_ol.due = load_xalloc(sizeof(uint64_t) * load_ol.n);
    load_ol.sent_at = load_xalloc(sizeof(uint64_t) * load_ol.n);
    load_ol.svc.v = load_xalloc(sizeof(uint32_t) * LOAD_SAMPLES);

    if (load_opt.timeline != NULL) {
        load_ol.rtt_of = load_xalloc(sizeof(uint32_t) * load_ol.n);
        load_ol.err_of = load_xalloc(load_ol.n);
        memset(load_ol.rtt_of, 0xff, sizeof(uint32_t) * load_ol.n);
        memset(load_ol.err_of, 0, load_ol.n);
    }

    load_ol.start = load_now_ns();
    load_ol.win_start = load_open_due(load_ol.first);
    load_ol.win_end = load_open_due(load_ol.last);
    end = load_ol.win_end;

    for (;;) {
        now = load_now_ns();

        /* the last pass still sends everything due before the end */
        load_open_send(now < end ? now : end - 1, now, panels);
        if (now >= end) {
            break;
        }

        now = load_now_ns();

        /* a short gap is cheaper to spin through than to sleep */
        if (load_ol.sent < load_ol.n
            && load_open_due(load_ol.sent) > now + load_opt.spin) {
            load_poll_ns(load_open_due(load_ol.sent) - now - load_opt.spin);

        } else {
            load_poll_ns(0);
        }
    }

    /* the answers still on their way, up to the ack timeout */
    deadline = end + (uint64_t) (load_opt.ack_timeout * 1e9) + 100000000u;

    while (load_ol.open && load_now_ns() < deadline) {
        load_poll(1);
    }
}


/* --timeline: one line per measured action, for finding stalls */
static void
load_write_timeline(void)
{
    FILE    *f;
    uint64_t k, due, lag;

    f = fopen(load_opt.timeline, "w");
    if (f == NULL) {
        load_die(load_opt.timeline);
    }

    fprintf(f,
        "# k due_us rtt_us error lag_us (rtt 4294967295: never "
        "answered; lag: how late this program wrote it)\n");

    for (k = load_ol.first; k < load_ol.last; k++) {
        due = load_open_due(k);
        lag = load_ol.sent_at[k] > due ? (load_ol.sent_at[k] - due) / 1000 : 0;
        fprintf(f, "%llu %llu %u %d %llu\n", (unsigned long long) k,
            (unsigned long long) (due - load_ol.start) / 1000,
            load_ol.rtt_of[k], load_ol.err_of[k], (unsigned long long) lag);
    }

    if (fclose(f) != 0) {
        load_die(load_opt.timeline);
    }
}


static void
load_open_report(void)
{
    uint64_t i;
    double   secs;

    /* an action never answered counts as an endless round trip */
    for (i = 0; i < load_ol.open; i++) {
        load_sample(&load_rtt, UINT32_MAX);
    }

    qsort(load_rtt.v, load_rtt.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_lat.v, load_lat.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_ol.svc.v, load_ol.svc.n, sizeof(uint32_t), load_cmp_u32);

    secs = (double) (load_ol.win_end - load_ol.win_start) / 1e9;

    printf("mode=open panels=%d sdks=%d action_rate=%.0f seconds=%.2f "
           "sent_per_s=%.0f acks_per_s=%.0f measured=%llu acks=%llu "
           "errors=%llu late=%llu missing=%llu notices=%llu stray=%llu "
           "rtt_p50_us=%.0f rtt_p99_us=%.0f rtt_p999_us=%.0f "
           "rtt_max_us=%.0f lag_p50_us=%.0f lag_p99_us=%.0f lag_max_us=%.0f "
           "sent_rtt_p50_us=%.0f sent_rtt_p99_us=%.0f",
        load_opt.panels, load_opt.nsdks, load_opt.action_rate, secs,
        (double) (load_ol.last - load_ol.first) / secs,
        (double) load_ol.in_window / secs,
        (unsigned long long) (load_ol.last - load_ol.first),
        (unsigned long long) load_ol.acks, (unsigned long long) load_ol.errors,
        (unsigned long long) load_ol.late, (unsigned long long) load_ol.open,
        (unsigned long long) load_ol.notices,
        (unsigned long long) load_ol.stray, load_pct(&load_rtt, 50),
        load_pct(&load_rtt, 99), load_pct(&load_rtt, 99.9),
        load_pct(&load_rtt, 100), load_pct(&load_lat, 50),
        load_pct(&load_lat, 99), load_pct(&load_lat, 100),
        load_pct(&load_ol.svc, 50), load_pct(&load_ol.svc, 99));

    load_print_codes();
    printf("\n");

    if (load_opt.timeline != NULL) {
        load_write_timeline();
    }
}


static void
load_usage(void)
{
    fprintf(stderr,
        "usage: amon-load --panel-url ws://IP:PORT/path --sdk-port P[,P...]\n"
        "         [--mode fanout|actions|idle] [--panels N] [--sdk-conns K]\n"
        "         [--duration S] [--warmup S] [--size BYTES] [--rate R]\n"
        "         [--inflight W] [--action-rate R] [--ack-timeout S]\n"
        "         [--max-actions N] [--target-prefix S] [--quiet]\n"
        "         [--timeline FILE] [--spin US]\n"
        "  --sdk-conns: connections each fake SDK waits for before the\n"
        "    run (the agent's worker count; the panel count behind a\n"
        "    plain proxy); --rate: heartbeats/s per SDK (0: as fast as\n"
        "    the agent reads); --size: heartbeat padding in bytes;\n"
        "    --action-rate: actions mode as an open loop, R actions/s over\n"
        "    all panels on a fixed schedule, round trips counted from the\n"
        "    scheduled time; --ack-timeout: an ack later than S seconds\n"
        "    (default 1) is late, and the run waits that long for the\n"
        "    last ones; --max-actions N: the closed loop ends after N\n"
        "    answers in the window (or at --duration); --timeline FILE:\n"
        "    the open loop writes each measured action's due time, round\n"
        "    trip (us) and whether it was an error; every run prints its\n"
        "    final errors by code (error_codes=); --spin US: the open\n"
        "    loop spins through gaps shorter than this (default 20) and\n"
        "    sleeps longer ones; 0 under a real-time policy, whose\n"
        "    throttling would stop a spinning loop for 50 ms a second;\n"
        "  --mode idle: wait for the SDK connections, print\n"
        "    \"sdks_ready\", wait --warmup seconds, open half of the\n"
        "    panels, print \"half_ready\", wait --warmup seconds, open the\n"
        "    rest, print \"ready\", keep everything open and silent for\n"
        "    --duration seconds, then print how many stayed open (for\n"
        "    memory per idle connection, measured by the caller)\n");
    exit(2);
}


static void
load_options(int argc, char **argv)
{
    int         o;
    char       *p, *s;
    const char *url;

    static const struct option opts[] = {{"mode", required_argument, NULL, 'm'},
        {"panel-url", required_argument, NULL, 'u'},
        {"panels", required_argument, NULL, 'n'},
        {"sdk-port", required_argument, NULL, 'p'},
        {"sdk-conns", required_argument, NULL, 'k'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"inflight", required_argument, NULL, 'i'},
        {"target-prefix", required_argument, NULL, 't'},
        {"action-rate", required_argument, NULL, 'a'},
        {"ack-timeout", required_argument, NULL, 'T'},
        {"max-actions", required_argument, NULL, 'M'},
        {"timeline", required_argument, NULL, 'L'},
        {"spin", required_argument, NULL, 'S'},
        {"quiet", no_argument, NULL, 'q'}, {NULL, 0, NULL, 0}};

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': load_opt.mode = optarg; break;
        case 'u': load_opt.panel_url = optarg; break;
        case 'n': load_opt.panels = atoi(optarg); break;
        case 'k': load_opt.sdk_conns = atoi(optarg); break;
        case 'd': load_opt.duration = atof(optarg); break;
        case 'w': load_opt.warmup = atof(optarg); break;
        case 's': load_opt.size = (size_t) atol(optarg); break;
        case 'r': load_opt.rate = atof(optarg); break;
        case 'i': load_opt.inflight = (unsigned) atoi(optarg); break;
        case 't': load_opt.prefix = optarg; break;
        case 'q': load_opt.quiet = 1; break;
        case 'a': load_opt.action_rate = atof(optarg); break;
        case 'T': load_opt.ack_timeout = atof(optarg); break;
        case 'M': load_opt.max_actions = strtoull(optarg, NULL, 10); break;
        case 'L': load_opt.timeline = optarg; break;
        case 'S': load_opt.spin = strtoull(optarg, NULL, 10) * 1000; break;
        case 'p':
            for (s = strtok_r(optarg, ",", &p); s != NULL;
                 s = strtok_r(NULL, ",", &p)) {
                if (load_opt.nsdks == LOAD_MAX_SDKS) {
                    load_usage();
                }

                load_opt.sdk_ports[load_opt.nsdks++] = atoi(s);
            }

            break;
        default: load_usage();
        }
    }

    url = load_opt.panel_url;

    if (url == NULL || load_opt.nsdks == 0 || load_opt.panels < 1
        || load_opt.inflight < 1 || load_opt.inflight > LOAD_RING / 2
        || load_opt.size > 4 * 1024 * 1024 || load_opt.action_rate < 0
        || load_opt.ack_timeout <= 0
        || (load_opt.action_rate > 0 && strcmp(load_opt.mode, "actions") != 0)
        || (strcmp(load_opt.mode, "fanout") != 0
            && strcmp(load_opt.mode, "actions") != 0
            && strcmp(load_opt.mode, "idle") != 0)
        || amon_ws_url_parse(
               (const unsigned char *) url, strlen(url), &load_url)
            != AMON_OK) {
        load_usage();
    }
}


/* --mode idle: say how far it got, for the caller to read the memory */
static void
load_idle_say(const char *what)
{
    printf("%s panels=%d sdk_conns=%d\n", what, load_panels_open,
        load_sdk_open[0]);
    fflush(stdout);
}


/*
 * --mode idle, before the rest of the panels: the SDK connections, then
 * half of the panels, each step said ("sdks_ready", "half_ready") and
 * followed by --warmup seconds of quiet.  Returns how many panels it
 * connected, -1 when they did not open.
 */
static int
load_idle_open(void)
{
    int i, half;

    if (load_wait_ready(0) != 0) {
        return -1;
    }

    load_idle_say("sdks_ready");
    load_quiet(load_opt.warmup);

    half = load_opt.panels / 2;
    for (i = 0; i < half; i++) {
        load_panel_connect(i);
    }

    if (load_wait_ready(half) != 0) {
        return -1;
    }

    load_idle_say("half_ready");
    load_quiet(load_opt.warmup);

    return half;
}


/*
 * --mode idle: every connection is open; say so, keep them silent for
 * --duration seconds, then say how many are still open.
 */
static int
load_idle_run(void)
{
    int i, sdks;

    load_idle_say("ready");
    load_quiet(load_opt.duration);

    sdks = 0;
    for (i = 0; i < load_opt.nsdks; i++) {
        sdks += load_sdk_open[i];
    }

    printf("mode=idle panels=%d panels_open=%d sdk_conns=%d sdk_open=%d "
           "other=%llu errors=%llu\n",
        load_opt.panels, load_panels_open, load_opt.sdk_conns * load_opt.nsdks,
        sdks, (unsigned long long) load_other,
        (unsigned long long) load_errors);

    /* behind a proxy the panels' upstreams come after --sdk-conns 0 */
    return load_panels_open == load_opt.panels
            && sdks >= load_opt.sdk_conns * load_opt.nsdks
        ? 0
        : 1;
}


int
main(int argc, char **argv)
{
    int      i, fanout;
    double   t, start, measured, expected;
    uint64_t emissions, t0, last, quiet;

    load_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    fanout = strcmp(load_opt.mode, "fanout") == 0;
    load_pad = load_xalloc(load_opt.size + 512);
    load_lat.v = load_xalloc(sizeof(uint32_t) * LOAD_SAMPLES);
    load_rtt.v = load_xalloc(sizeof(uint32_t) * LOAD_SAMPLES);

    amon_posix_random((unsigned char *) &load_run, sizeof(load_run));

    load_run %= 1000000000u;
    srand((unsigned) load_run);

    load_ep = epoll_create1(0);
    if (load_ep == -1) {
        load_die("epoll_create1");
    }

    for (i = 0; i < load_opt.nsdks; i++) {
        load_listen(i, load_opt.sdk_ports[i]);
    }

    i = 0;

    if (strcmp(load_opt.mode, "idle") == 0) {
        i = load_idle_open();
        if (i < 0) {
            return 1;
        }
    }

    for (; i < load_opt.panels; i++) {
        load_panel_connect(i);
    }

    /* every panel open, every SDK dialed by every worker, then settle */
    if (load_wait_ready(load_opt.panels) != 0) {
        return 1;
    }

    load_quiet(0.3);

    if (load_opt.action_rate > 0) {
        load_open_run();
        load_open_report();
        return 0;
    }

    if (strcmp(load_opt.mode, "idle") == 0) {
        return load_idle_run();
    }

    if (!fanout) {
        for (i = 0; i < LOAD_MAX_CONNS; i++) {
            if (load_conns[i] && load_conns[i]->kind == LOAD_PANEL) {
                while (load_conns[i]->inflight < load_opt.inflight) {
                    load_panel_action(load_conns[i]);
                }
            }
        }
    }

    emissions = 0;
    start = (double) load_now_ns() / 1e9;
    measured = 0;

    for (;;) {
        t = (double) load_now_ns() / 1e9 - start;

        if (!load_measuring && t >= load_opt.warmup) {
            load_measuring = 1;
            load_win_start = load_now_ns();
            measured = t;
        }

        if (t >= load_opt.warmup + load_opt.duration) {
            break;
        }

        if (load_opt.max_actions && load_acks >= load_opt.max_actions) {
            break; /* the measured window ends here */
        }

        if (fanout) {
            load_emit(t, &emissions);
        }

        load_poll(fanout && load_opt.rate <= 0 ? 0 : 1);
    }

    measured = (t < load_opt.warmup + load_opt.duration
                       ? t
                       : load_opt.warmup + load_opt.duration)
        - measured;

    if (fanout) {
        /* the window is closed: collect what is still on its way */
        load_win_end = load_now_ns();
        last = load_delivered;
        t0 = load_now_ns();
        quiet = t0;

        while (load_now_ns() - t0 < 3000000000ull
            && load_now_ns() - quiet < 300000000ull) {
            load_poll(10);
            if (load_delivered != last) {
                last = load_delivered;
                quiet = load_now_ns();
            }
        }
    }

    qsort(load_lat.v, load_lat.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_rtt.v, load_rtt.n, sizeof(uint32_t), load_cmp_u32);

    /* every SDK connection sent each heartbeat; every panel gets it once
       from each SDK (one copy per worker's panels) */
    expected = (double) load_emitted / load_opt.sdk_conns * load_opt.panels;

    if (fanout) {
        printf("mode=fanout panels=%d sdks=%d sdk_conns=%d size=%zu "
               "rate=%.0f seconds=%.2f emitted_per_s=%.0f "
               "delivered_per_s=%.0f expected_per_s=%.0f loss_pct=%.2f "
               "mb_in_per_s=%.1f lat_p50_us=%.0f lat_p99_us=%.0f "
               "errors=%llu other=%llu\n",
            load_opt.panels, load_opt.nsdks, load_opt.sdk_conns, load_opt.size,
            load_opt.rate, measured, (double) load_emitted / measured,
            (double) load_delivered / measured, expected / measured,
            expected > 0
                ? 100.0 * (expected - (double) load_delivered) / expected
                : 0.0,
            (double) load_bytes_in / measured / 1e6, load_pct(&load_lat, 50),
            load_pct(&load_lat, 99), (unsigned long long) load_errors,
            (unsigned long long) load_other);

    } else {
        printf("mode=actions panels=%d sdks=%d inflight=%u seconds=%.2f "
               "actions_per_s=%.0f acks=%llu rtt_p50_us=%.0f "
               "rtt_p99_us=%.0f errors=%llu",
            load_opt.panels, load_opt.nsdks, load_opt.inflight, measured,
            (double) load_acks / measured, (unsigned long long) load_acks,
            load_pct(&load_rtt, 50), load_pct(&load_rtt, 99),
            (unsigned long long) load_errors);

        load_print_codes();
        printf("\n");
    }

    return 0;
}

/*
 * Copyright (C) AMonitor authors
 *
 * What the load generator's SDKs and panels say: heartbeats, handshakes,
 * actions and their answers, read frame by frame from a connection.
 */

#define _GNU_SOURCE

#include "amon-load.h"


/* final errors by code and message, the first LOAD_CODES kinds seen */

#define load_min(a, b) ((a) < (b) ? (a) : (b))
#define LOAD_CODES     8
static struct {
    char     code[96];
    uint64_t n;
} load_codes[LOAD_CODES + 1]; /* the last one: every other code */


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
void
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

void
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
        load_opt.prefix, c->sdk, (unsigned long long) bench_now_ns());

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
void
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


void
load_panel_action(load_conn_t *c)
{
    c->sent_at[c->seq % LOAD_RING] = bench_now_ns();
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

    now = bench_now_ns();
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
            load_sample(&load_lat, (bench_now_ns() - t) / 1000);
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
                (bench_now_ns() - c->sent_at[seq % LOAD_RING]) / 1000);
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


void
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
    c->sent_at = bench_alloc(sizeof(uint64_t) * LOAD_RING);
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


void
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

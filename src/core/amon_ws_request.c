/*
 * Copyright (C) AMonitor authors
 *
 * Server side of the opening handshake for endpoints without an HTTP
 * server of their own: an incremental parser of the upgrade request that
 * ends in amon_ws_server_check(), and the 101 response.
 */

#include <stdio.h>
#include <string.h>

#include "amon_ws_handshake.h"


/* header fields that must not come twice (and Host, that must come) */
#define AMON_WS_SEEN_KEY     0x01
#define AMON_WS_SEEN_VERSION 0x02
#define AMON_WS_SEEN_HOST    0x04
#define AMON_WS_SEEN_AUTH    0x08


static size_t amon_ws_request_end(
    amon_ws_request_parser_t *rp, const unsigned char *buf, size_t len);
static int amon_ws_request_line(
    amon_ws_request_parser_t *rp, const unsigned char *p, size_t len);
static const char *amon_ws_request_header(amon_ws_request_parser_t *rp,
    const unsigned char *p, size_t len, unsigned *seen);
static int         amon_ws_request_token(const unsigned char *p, size_t len);
static int         amon_ws_request_refuse(
            amon_ws_request_parser_t *rp, int status, const char *reason);


void
amon_ws_request_init(amon_ws_request_parser_t *rp, size_t max)
{
    memset(rp, 0, sizeof(amon_ws_request_parser_t));

    rp->max = max ? max : AMON_WS_MAX_REQUEST;
}


int
amon_ws_request_feed(
    amon_ws_request_parser_t *rp, const unsigned char *buf, size_t len)
{
    int                  status;
    size_t               end, n;
    unsigned             seen;
    const char          *reason;
    const unsigned char *p, *last, *eol;

    end = amon_ws_request_end(rp, buf, len);

    if (end == 0) {
        if (len >= rp->max) {
            return amon_ws_request_refuse(rp, 431, "request header too large");
        }

        return AMON_AGAIN;
    }

    p = buf;
    last = buf + end;

    eol = memchr(p, '\n', (size_t) (last - p));
    n = (size_t) (eol - p);

    if (amon_ws_request_line(rp, p, n) != AMON_OK) {
        return amon_ws_request_refuse(rp, 400, "bad request line");
    }

    seen = 0;

    for (p = eol + 1; /* void */; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (last - p));
        n = (size_t) (eol - p);

        if (n && p[n - 1] == '\r') {
            n--;
        }

        if (n == 0) {
            break; /* the empty line that ends the block */
        }

        reason = amon_ws_request_header(rp, p, n, &seen);
        if (reason) {
            return amon_ws_request_refuse(rp, 400, reason);
        }
    }

    status = amon_ws_server_check(&rp->req, &reason);
    if (status != 0) {
        return amon_ws_request_refuse(rp, status, reason);
    }

    if (!(seen & AMON_WS_SEEN_HOST)) {
        /* RFC 6455 4.2.1, RFC 9112 3.2 */
        return amon_ws_request_refuse(rp, 400, "no Host header");
    }

    rp->header_len = end;
    rp->status = 101;
    rp->reason = reason;

    return AMON_OK;
}


/*
 * The size of the block up to and including its empty line, or 0.  Bytes
 * already looked at are not looked at again: the scan resumes two bytes
 * before where it stopped, which covers a CRLF split between two feeds.
 */
static size_t
amon_ws_request_end(
    amon_ws_request_parser_t *rp, const unsigned char *buf, size_t len)
{
    size_t i, limit;

    limit = len < rp->max ? len : rp->max;
    i = rp->scanned > 2 ? rp->scanned - 2 : 1;

    for (/* void */; i < limit; i++) {
        if (buf[i] == '\n'
            && (buf[i - 1] == '\n'
                || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))) {
            return i + 1;
        }
    }

    rp->scanned = limit;

    return 0;
}


/* "METHOD SP request-target SP HTTP/1.x" */
static int
amon_ws_request_line(
    amon_ws_request_parser_t *rp, const unsigned char *p, size_t len)
{
    const unsigned char *sp, *end;

    if (len && p[len - 1] == '\r') {
        len--;
    }

    end = p + len;

    sp = memchr(p, ' ', len);
    if (sp == NULL || sp == p) {
        return AMON_EHANDSHAKE;
    }

    rp->req.method.data = p;
    rp->req.method.len = (size_t) (sp - p);

    p = sp + 1;
    sp = memchr(p, ' ', (size_t) (end - p));
    if (sp == NULL || sp == p || end - sp != 9
        || memcmp(sp + 1, "HTTP/1.", 7) != 0 || sp[8] < '0' || sp[8] > '9') {
        return AMON_EHANDSHAKE;
    }

    rp->target.data = p;
    rp->target.len = (size_t) (sp - p);
    rp->req.http_version = 1000 + (unsigned) (sp[8] - '0');

    return AMON_OK;
}


/*
 * "name: value"; the fields the check needs are kept, others skipped.
 * NULL, or why the line is refused: a name that is not a token (a blank
 * before the colon), a control character in the value, a field that must
 * come once given twice.
 */
static const char *
amon_ws_request_header(amon_ws_request_parser_t *rp, const unsigned char *p,
    size_t len, unsigned *seen)
{
    size_t               i;
    unsigned             bit;
    amon_str_t           name, value;
    const unsigned char *colon;

    colon = memchr(p, ':', len);
    if (colon == NULL || !amon_ws_request_token(p, (size_t) (colon - p))) {
        return "bad header line";
    }

    name.data = p;
    name.len = (size_t) (colon - p);
    value = amon_str_trim(colon + 1, len - name.len - 1);

    for (i = 0; i < value.len; i++) {
        if ((value.data[i] < 0x20 && value.data[i] != '\t')
            || value.data[i] == 0x7f) {
            return "control character in a header value";
        }
    }

    bit = 0;

    if (amon_str_eq_ci(name, "upgrade")) {
        rp->req.upgrade = value;

    } else if (amon_str_eq_ci(name, "connection")) {
        /* one list over several lines: the one with "upgrade" counts */
        if (rp->req.connection.data == NULL
            || !amon_http_token_list_has(
                rp->req.connection.data, rp->req.connection.len, "upgrade")) {
            rp->req.connection = value;
        }

    } else if (amon_str_eq_ci(name, "sec-websocket-key")) {
        rp->req.key = value;
        bit = AMON_WS_SEEN_KEY;

    } else if (amon_str_eq_ci(name, "sec-websocket-version")) {
        rp->req.version = value;
        bit = AMON_WS_SEEN_VERSION;

    } else if (amon_str_eq_ci(name, "host")) {
        bit = AMON_WS_SEEN_HOST;

    } else if (amon_str_eq_ci(name, "authorization")) {
        rp->authorization = value;
        bit = AMON_WS_SEEN_AUTH;
    }

    if (*seen & bit) {
        switch (bit) {
        case AMON_WS_SEEN_KEY: return "duplicate Sec-WebSocket-Key";
        case AMON_WS_SEEN_VERSION: return "duplicate Sec-WebSocket-Version";
        case AMON_WS_SEEN_HOST: return "duplicate Host";
        default: return "duplicate Authorization";
        }
    }

    *seen |= bit;

    return NULL;
}


/* an RFC 9110 token: visible ASCII but for the delimiters, not empty */
static int
amon_ws_request_token(const unsigned char *p, size_t len)
{
    size_t i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] <= 0x20 || p[i] >= 0x7f
            || strchr("\"(),/:;<=>?@[\\]{}", p[i]) != NULL) {
            return 0;
        }
    }

    return 1;
}


static int
amon_ws_request_refuse(
    amon_ws_request_parser_t *rp, int status, const char *reason)
{
    rp->status = status;
    rp->reason = reason;

    return AMON_EHANDSHAKE;
}


size_t
amon_ws_server_response(unsigned char *dst, size_t cap, amon_str_t key)
{
    int           n;
    unsigned char accept[AMON_WS_ACCEPT_LEN];

    if (amon_ws_accept(key.data, key.len, accept) != AMON_OK) {
        return 0;
    }

    n = snprintf((char *) dst, cap,
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %.*s\r\n\r\n",
        AMON_WS_ACCEPT_LEN, (const char *) accept);

    if (n < 0 || (size_t) n >= cap) {
        return 0;
    }

    return (size_t) n;
}

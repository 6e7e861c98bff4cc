/*
 * Copyright (C) AMonitor authors
 *
 * RFC 6455 section 4 opening handshake: key and accept values (SHA-1 and
 * base64 from libcrypto), server-side request checks, the client request
 * writer and response parser, and ws:// / wss:// URL parsing.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "amon_ws_handshake.h"


#define AMON_WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define AMON_WS_GUID_LEN (sizeof(AMON_WS_GUID) - 1)
#define AMON_WS_MAX_KEY  256

#define amon_lc(c) \
    (((c) >= 'A' && (c) <= 'Z') ? (unsigned char) ((c) | 0x20) : (c))
#define amon_is_ws(c)    ((c) == ' ' || (c) == '\t')
#define amon_is_digit(c) ((c) >= '0' && (c) <= '9')
#define amon_is_alpha(c) \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define amon_is_b64(c) \
    (amon_is_alpha(c) || amon_is_digit(c) || (c) == '+' || (c) == '/')
#define amon_is_hex(c) \
    (amon_is_digit(c) || ((c) >= 'a' && (c) <= 'f') \
        || ((c) >= 'A' && (c) <= 'F'))


/* Sec-WebSocket-* and friends seen in a response, across folded lines. */
typedef enum {
    AMON_HDR_UPGRADE = 0,
    AMON_HDR_CONNECTION,
    AMON_HDR_ACCEPT,
    AMON_HDR_EXTENSIONS,
    AMON_HDR_PROTOCOL,
    AMON_HDR_OTHER
} amon_ws_hdr_e;


typedef struct {
    unsigned upgrade : 1;
    unsigned connection : 1;
    unsigned accept_seen : 1;
    unsigned accept_ok : 1;
    unsigned accept_dup : 1;
    unsigned extra : 1;
} amon_ws_resp_t;


static int amon_ws_is_tchar(unsigned char c);
static int amon_ws_field_ok(amon_str_t s, int is_path);
static int amon_ws_list_next(
    const unsigned char **pp, const unsigned char *end, amon_str_t *el);
static int amon_ws_status_line(
    const unsigned char *p, size_t len, int *status, unsigned *minor);
static int amon_ws_header_line(const unsigned char *p, size_t len,
    amon_ws_hdr_e *cur, amon_ws_resp_t *rs,
    const unsigned char expected[AMON_WS_ACCEPT_LEN]);
static int amon_ws_url_host(
    const unsigned char *p, size_t len, amon_ws_url_t *u);
static size_t amon_ws_find_end(const unsigned char *buf, size_t len);


/* indexed by amon_ws_hdr_e */
static const char *const amon_ws_hdr_names[] = {"upgrade", "connection",
    "sec-websocket-accept", "sec-websocket-extensions",
    "sec-websocket-protocol", NULL};


int
amon_ws_accept(const unsigned char *key, size_t key_len,
    unsigned char out[AMON_WS_ACCEPT_LEN])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    unsigned char b64[AMON_WS_ACCEPT_LEN + 1];
    unsigned char buf[AMON_WS_MAX_KEY + AMON_WS_GUID_LEN];

    if (key == NULL || key_len == 0 || key_len > AMON_WS_MAX_KEY) {
        return AMON_EINVAL;
    }

    memcpy(buf, key, key_len);
    memcpy(buf + key_len, AMON_WS_GUID, AMON_WS_GUID_LEN);

    SHA1(buf, key_len + AMON_WS_GUID_LEN, md);

    /* EVP_EncodeBlock NUL-terminates: 28 characters + 1 */
    EVP_EncodeBlock(b64, md, SHA_DIGEST_LENGTH);
    memcpy(out, b64, AMON_WS_ACCEPT_LEN);

    return AMON_OK;
}


void
amon_ws_make_key(
    const unsigned char random16[16], unsigned char out[AMON_WS_KEY_LEN])
{
    unsigned char b64[AMON_WS_KEY_LEN + 1];

    EVP_EncodeBlock(b64, random16, 16);
    memcpy(out, b64, AMON_WS_KEY_LEN);
}


int
amon_ws_key_valid(const unsigned char *key, size_t len)
{
    size_t i;

    if (key == NULL || len != AMON_WS_KEY_LEN) {
        return 0;
    }

    for (i = 0; i < 21; i++) {
        if (!amon_is_b64(key[i])) {
            return 0;
        }
    }

    /*
     * 16 bytes leave 2 bits for the 22nd character; its other 4 bits must
     * be zero in a canonical encoding, which leaves A, Q, g and w.
     */
    if (key[21] != 'A' && key[21] != 'Q' && key[21] != 'g' && key[21] != 'w') {
        return 0;
    }

    return key[22] == '=' && key[23] == '=';
}


int
amon_http_token_list_has(
    const unsigned char *value, size_t len, const char *token)
{
    amon_str_t           el;
    const unsigned char *p;

    if (value == NULL || token == NULL) {
        return 0;
    }

    p = value;

    while (amon_ws_list_next(&p, value + len, &el)) {
        if (amon_str_eq_ci(el, token)) {
            return 1;
        }
    }

    return 0;
}


int
amon_ws_server_check(const amon_ws_request_t *req, const char **reason)
{
    amon_str_t v;

    if (req->method.data == NULL || req->method.len != 3
        || memcmp(req->method.data, "GET", 3) != 0) {
        *reason = "websocket needs a GET request";
        return 405;
    }

    if (req->http_version < 1001) {
        *reason = "websocket needs HTTP/1.1";
        return 400;
    }

    if (req->upgrade.data == NULL) {
        *reason = "upgrade required";
        return 426;
    }

    if (!amon_http_token_list_has(
            req->upgrade.data, req->upgrade.len, "websocket")) {
        *reason = "upgrade is not websocket";
        return 400;
    }

    if (!amon_http_token_list_has(
            req->connection.data, req->connection.len, "upgrade")) {
        *reason = "connection header lacks upgrade";
        return 400;
    }

    if (req->key.data == NULL) {
        *reason = "missing websocket key";
        return 400;
    }

    v = amon_str_trim(req->key.data, req->key.len);

    if (!amon_ws_key_valid(v.data, v.len)) {
        *reason = "invalid websocket key";
        return 400;
    }

    v = amon_str_trim(req->version.data, req->version.len);

    if (v.len != 2 || memcmp(v.data, "13", 2) != 0) {
        *reason = "unsupported websocket version";
        return 426;
    }

    *reason = "ok";

    return 0;
}


int
amon_ws_select_subprotocol(
    const unsigned char *offered, size_t len, const char *const *supported)
{
    int                  i;
    amon_str_t           el;
    const unsigned char *p;

    if (offered == NULL || supported == NULL) {
        return -1;
    }

    p = offered;

    while (amon_ws_list_next(&p, offered + len, &el)) {

        /* subprotocol names are compared exactly, case included */
        for (i = 0; el.len && supported[i]; i++) {
            if (strlen(supported[i]) == el.len
                && memcmp(supported[i], el.data, el.len) == 0) {
                return i;
            }
        }
    }

    return -1;
}


static int
amon_ws_field_ok(amon_str_t s, int is_path)
{
    size_t i;

    /* CR and LF would split the header; a space ends a request target */
    for (i = 0; i < s.len; i++) {
        if (s.data[i] == '\r' || s.data[i] == '\n' || s.data[i] == '\0'
            || (is_path && s.data[i] == ' ')) {
            return 0;
        }
    }

    return 1;
}


size_t
amon_ws_client_request(unsigned char *dst, size_t cap, amon_str_t host_port,
    amon_str_t path, const unsigned char key[AMON_WS_KEY_LEN],
    amon_str_t bearer_token)
{
    size_t i, n;

    if (host_port.data == NULL || host_port.len == 0 || key == NULL) {
        return 0;
    }

    if (path.data == NULL || path.len == 0) {
        path.data = (const unsigned char *) "/";
        path.len = 1;
    }

    if (bearer_token.data == NULL) {
        bearer_token.len = 0;
    }

    if (!amon_ws_field_ok(host_port, 1) || !amon_ws_field_ok(path, 1)
        || !amon_ws_field_ok(bearer_token, 0)) {
        return 0;
    }

    {
        amon_str_t parts[] = {amon_string("GET "), path,
            amon_string(" HTTP/1.1\r\nHost: "), host_port,
            amon_string("\r\nUpgrade: websocket\r\nConnection: Upgrade"
                        "\r\nSec-WebSocket-Key: "),
            {key, AMON_WS_KEY_LEN},
            amon_string("\r\nSec-WebSocket-Version: 13\r\n"),
            amon_string("Authorization: Bearer "), bearer_token,
            amon_string("\r\n"), amon_string("\r\n")};

        if (bearer_token.len == 0) {
            parts[7].len = 0;
            parts[9].len = 0;
        }

        /* the total first: nothing is written when it does not fit */
        for (i = 0, n = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            n += parts[i].len;
        }

        if (n > cap) {
            return 0;
        }

        for (i = 0, n = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            if (parts[i].len) {
                memcpy(dst + n, parts[i].data, parts[i].len);
                n += parts[i].len;
            }
        }
    }

    return n;
}


int
amon_ws_client_response(const unsigned char *buf, size_t len,
    const unsigned char key[AMON_WS_KEY_LEN], size_t *header_len, int *status,
    const char **reason)
{
    int                  st, rc;
    size_t               end;
    unsigned             minor;
    amon_ws_hdr_e        cur;
    amon_ws_resp_t       rs;
    const unsigned char *p, *last, *eol;
    unsigned char        expected[AMON_WS_ACCEPT_LEN];

    *status = 0;
    *header_len = 0;

    end = amon_ws_find_end(buf, len);

    if (end == 0) {
        if (len >= AMON_WS_MAX_RESPONSE) {
            *reason = "response header too large";
            return AMON_ETOOBIG;
        }

        *reason = "response incomplete";
        return AMON_AGAIN;
    }

    if (end > AMON_WS_MAX_RESPONSE) {
        *reason = "response header too large";
        return AMON_ETOOBIG;
    }

    if (amon_ws_accept(key, AMON_WS_KEY_LEN, expected) != AMON_OK) {
        *reason = "invalid key";
        return AMON_EINVAL;
    }

    p = buf;
    last = buf + end;

    eol = memchr(p, '\n', (size_t) (last - p));

    if (amon_ws_status_line(p, (size_t) (eol - p), &st, &minor) != AMON_OK) {
        *reason = "invalid http status line";
        return AMON_EHANDSHAKE;
    }

    *status = st;

    if (st != 101) {
        *reason = "server did not switch protocols";
        return AMON_EHANDSHAKE;
    }

    if (minor != 1) {
        *reason = "websocket needs HTTP/1.1";
        return AMON_EHANDSHAKE;
    }

    memset(&rs, 0, sizeof(amon_ws_resp_t));
    cur = AMON_HDR_OTHER;
    p = eol + 1;

    for (;;) {
        eol = memchr(p, '\n', (size_t) (last - p));

        /* the empty line that ends the block */
        if (eol == p || (eol == p + 1 && *p == '\r')) {
            break;
        }

        rc = amon_ws_header_line(p, (size_t) (eol - p), &cur, &rs, expected);
        if (rc != AMON_OK) {
            *reason = "malformed response header";
            return AMON_EHANDSHAKE;
        }

        p = eol + 1;
    }

    /* no extension or subprotocol was offered, so none may be chosen */
    *reason = !rs.upgrade ? "response upgrade is not websocket"
        : !rs.connection  ? "response connection is not upgrade"
        : !rs.accept_seen ? "missing websocket accept"
        : rs.accept_dup   ? "duplicate websocket accept"
        : !rs.accept_ok   ? "websocket accept mismatch"
        : rs.extra        ? "unrequested extension or subprotocol"
                          : NULL;

    if (*reason) {
        return AMON_EHANDSHAKE;
    }

    *reason = "ok";
    *header_len = end;

    return AMON_OK;
}


/*
 * The size of the header block up to and including its empty line, or 0
 * when the block is not complete.  Bare LF line ends are tolerated.
 */
static size_t
amon_ws_find_end(const unsigned char *buf, size_t len)
{
    size_t i, limit;

    limit = len < AMON_WS_MAX_RESPONSE + 1 ? len : AMON_WS_MAX_RESPONSE + 1;

    /* "\n\n" or "\n\r\n" ends the block */
    for (i = 1; i < limit; i++) {
        if (buf[i] == '\n'
            && (buf[i - 1] == '\n'
                || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))) {
            return i + 1;
        }
    }

    return 0;
}


/* "HTTP/1.x SP 3DIGIT [SP reason]" */
static int
amon_ws_status_line(
    const unsigned char *p, size_t len, int *status, unsigned *minor)
{
    if (len && p[len - 1] == '\r') {
        len--;
    }

    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !amon_is_digit(p[7])
        || p[8] != ' ' || !amon_is_digit(p[9]) || !amon_is_digit(p[10])
        || !amon_is_digit(p[11])) {
        return AMON_EHANDSHAKE;
    }

    if (len > 12 && p[12] != ' ') {
        return AMON_EHANDSHAKE;
    }

    *minor = p[7] - '0';
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    return AMON_OK;
}


static int
amon_ws_header_line(const unsigned char *p, size_t len, amon_ws_hdr_e *cur,
    amon_ws_resp_t *rs, const unsigned char expected[AMON_WS_ACCEPT_LEN])
{
    size_t     i;
    amon_str_t name, v;

    if (len && p[len - 1] == '\r') {
        len--;
    }

    if (len && amon_is_ws(p[0])) {
        /* obsolete line folding: more of the previous header's value */
        v = amon_str_trim(p, len);

    } else {
        for (i = 0; i < len && amon_ws_is_tchar(p[i]); i++) {
            /* void */
        }

        if (i == 0 || i == len || p[i] != ':') {
            return AMON_EHANDSHAKE;
        }

        name.data = p;
        name.len = i;
        v = amon_str_trim(p + i + 1, len - i - 1);

        for (*cur = AMON_HDR_UPGRADE; amon_ws_hdr_names[*cur]; (*cur)++) {
            if (amon_str_eq_ci(name, amon_ws_hdr_names[*cur])) {
                break;
            }
        }
    }

    switch (*cur) {

    case AMON_HDR_UPGRADE:
        if (amon_http_token_list_has(v.data, v.len, "websocket")) {
            rs->upgrade = 1;
        }
        break;

    case AMON_HDR_CONNECTION:
        if (amon_http_token_list_has(v.data, v.len, "upgrade")) {
            rs->connection = 1;
        }
        break;

    case AMON_HDR_ACCEPT:
        if (v.len == 0) {
            break;
        }

        if (rs->accept_seen) {
            /* a second value: refuse the ambiguity */
            rs->accept_dup = 1;
            break;
        }

        rs->accept_seen = 1;
        rs->accept_ok = (v.len == AMON_WS_ACCEPT_LEN
            && memcmp(v.data, expected, AMON_WS_ACCEPT_LEN) == 0);
        break;

    case AMON_HDR_EXTENSIONS:
    case AMON_HDR_PROTOCOL:
        if (v.len) {
            rs->extra = 1;
        }
        break;

    default: break;
    }

    return AMON_OK;
}


int
amon_ws_url_parse(const unsigned char *url, size_t len, amon_ws_url_t *u)
{
    size_t               i;
    const unsigned char *p, *end, *auth;

    memset(u, 0, sizeof(amon_ws_url_t));

    if (url == NULL || len > AMON_MAX_URL_LEN) {
        return AMON_EINVAL;
    }

    /* no spaces, controls, fragments or raw non-ASCII anywhere */
    for (i = 0; i < len; i++) {
        if (url[i] <= 0x20 || url[i] >= 0x7f || url[i] == '#') {
            return AMON_EINVAL;
        }
    }

    end = url + len;

    if (len < 5 || amon_lc(url[0]) != 'w' || amon_lc(url[1]) != 's') {
        return AMON_EINVAL;
    }

    u->tls = amon_lc(url[2]) == 's';
    u->port = u->tls ? 443 : 80;
    p = url + 2 + u->tls;

    if (end - p < 3 || memcmp(p, "://", 3) != 0) {
        return AMON_EINVAL;
    }

    p += 3;
    auth = p;

    while (p < end && *p != '/' && *p != '?') {
        p++;
    }

    u->host_port.data = auth;
    u->host_port.len = (size_t) (p - auth);

    if (amon_ws_url_host(auth, u->host_port.len, u) != AMON_OK) {
        return AMON_EINVAL;
    }

    if (p == end) {
        u->path.data = (const unsigned char *) "/";
        u->path.len = 1;
        return AMON_OK;
    }

    /*
     * "ws://h?q" would need a "/" inserted before the query; the URL is
     * refused rather than stored in a second buffer.
     */
    if (*p != '/') {
        return AMON_EINVAL;
    }

    u->path.data = p;
    u->path.len = (size_t) (end - p);

    return AMON_OK;
}


/* Split "host[:port]" or "[v6]:port"; no userinfo. */
static int
amon_ws_url_host(const unsigned char *p, size_t len, amon_ws_url_t *u)
{
    size_t   i, hlen;
    unsigned port;

    if (len == 0) {
        return AMON_EINVAL;
    }

    if (p[0] == '[') {
        for (i = 1; i < len && p[i] != ']'; i++) {
            if (!amon_is_hex(p[i]) && p[i] != ':' && p[i] != '.') {
                return AMON_EINVAL;
            }
        }

        /* "[]" and a literal without a colon are not IPv6 */
        if (i == len || i < 3 || memchr(p + 1, ':', i - 1) == NULL) {
            return AMON_EINVAL;
        }

        hlen = i + 1;

    } else {
        for (i = 0; i < len && p[i] != ':'; i++) {
            if (!amon_is_alpha(p[i]) && !amon_is_digit(p[i]) && p[i] != '-'
                && p[i] != '.' && p[i] != '_') {
                return AMON_EINVAL;
            }
        }

        if (i == 0) {
            return AMON_EINVAL;
        }

        hlen = i;
    }

    u->host.data = p;
    u->host.len = hlen;

    if (hlen == len) {
        return AMON_OK;
    }

    if (p[hlen] != ':' || hlen + 1 == len || len - hlen - 1 > 5) {
        return AMON_EINVAL;
    }

    port = 0;

    for (i = hlen + 1; i < len; i++) {
        if (!amon_is_digit(p[i])) {
            return AMON_EINVAL;
        }
        port = port * 10 + (p[i] - '0');
    }

    if (port == 0 || port > 65535) {
        return AMON_EINVAL;
    }

    u->port = port;

    return AMON_OK;
}


size_t
amon_ws_url_normalize(const amon_ws_url_t *u, unsigned char *dst, size_t cap)
{
    int        plen;
    size_t     n, i;
    amon_str_t path;
    char       port[8];

    path = u->path;

    if (path.data == NULL || path.len == 0) {
        path.data = (const unsigned char *) "/";
        path.len = 1;
    }

    if (u->host.len == 0 || u->port == 0 || u->port > 65535) {
        return 0;
    }

    plen = snprintf(port, sizeof(port), ":%u", u->port);
    n = (u->tls ? 6 : 5) + u->host.len + (size_t) plen + path.len;

    if (n > cap) {
        return 0;
    }

    n = u->tls ? 6 : 5;
    memcpy(dst, u->tls ? "wss://" : "ws://", n);

    for (i = 0; i < u->host.len; i++) {
        dst[n++] = amon_lc(u->host.data[i]);
    }

    memcpy(dst + n, port, (size_t) plen);
    n += (size_t) plen;
    memcpy(dst + n, path.data, path.len);

    return n + path.len;
}


amon_str_t
amon_ws_url_hostname(const amon_ws_url_t *u)
{
    amon_str_t host;

    host = u->host;

    /* the parser keeps a literal whole: "[", at least "x:y", "]" */
    if (host.len > 2 && host.data[0] == '[') {
        host.data++;
        host.len -= 2;
    }

    return host;
}


/* RFC 7230 tchar */
static int
amon_ws_is_tchar(unsigned char c)
{
    if (amon_is_alpha(c) || amon_is_digit(c)) {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


/* The next element of a comma-separated list, trimmed; 0 at the end. */
static int
amon_ws_list_next(
    const unsigned char **pp, const unsigned char *end, amon_str_t *el)
{
    const unsigned char *p, *comma;

    p = *pp;

    if (p >= end) {
        return 0;
    }

    comma = memchr(p, ',', (size_t) (end - p));
    if (comma == NULL) {
        comma = end;
    }

    *el = amon_str_trim(p, (size_t) (comma - p));
    *pp = (comma == end) ? end : comma + 1;

    return 1;
}

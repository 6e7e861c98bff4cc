/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the opening handshake helpers: accept values, key checks,
 * token lists, the server-side checks and upgrade request parser, the
 * client request and response (split at every byte), subprotocols and
 * ws:// URLs.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_ws_handshake.h"


#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define S(s) ((amon_str_t){(const unsigned char *) (s), sizeof(s) - 1})
#define NONE ((amon_str_t){NULL, 0})


static void
test_accept(void **state)
{
    unsigned char out[AMON_WS_ACCEPT_LEN], key[257];

    /* RFC 6455 section 1.3 */
    assert_int_equal(
        amon_ws_accept((unsigned char *) RFC_KEY, strlen(RFC_KEY), out),
        AMON_OK);
    assert_memory_equal(out, RFC_ACCEPT, AMON_WS_ACCEPT_LEN);

    /* a different key, a different value */
    assert_int_equal(
        amon_ws_accept((unsigned char *) "x3JJHMbDL1EzLkh9GBhXDw==", 24, out),
        AMON_OK);
    assert_memory_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", 28);

    memset(key, 'k', sizeof(key));
    assert_int_equal(amon_ws_accept(key, 0, out), AMON_EINVAL);
    assert_int_equal(amon_ws_accept(key, 256, out), AMON_OK);
    assert_int_equal(amon_ws_accept(key, 257, out), AMON_EINVAL);
    assert_int_equal(amon_ws_accept(NULL, 24, out), AMON_EINVAL);
}


static void
test_make_key(void **state)
{
    int           i;
    unsigned char out[AMON_WS_KEY_LEN], rnd[16];

    amon_ws_make_key((const unsigned char *) "the sample nonce", out);
    assert_memory_equal(out, RFC_KEY, AMON_WS_KEY_LEN);

    for (i = 0; i < 256; i++) {
        memset(rnd, i, sizeof(rnd));
        rnd[i & 15] ^= 0x5a;
        amon_ws_make_key(rnd, out);
        assert_true(amon_ws_key_valid(out, AMON_WS_KEY_LEN));
    }
}


static void
test_key_valid(void **state)
{
    assert_true(amon_ws_key_valid((unsigned char *) RFC_KEY, 24));
    assert_true(
        amon_ws_key_valid((unsigned char *) "AAAAAAAAAAAAAAAAAAAAAA==", 24));
    assert_true(
        amon_ws_key_valid((unsigned char *) "/+/+/+/+/+/+/+/+/+/+/w==", 24));

    assert_false(amon_ws_key_valid((unsigned char *) RFC_KEY, 23));
    assert_false(amon_ws_key_valid(NULL, 24));
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25jZQ=", 23));
    /* 17 or 15 bytes encoded */
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25jZQ==AA", 26));
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25jZQ=A", 24));
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25jZ===", 24));
    /* characters outside the alphabet */
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25j-Q==", 24));
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25j Q==", 24));
    /* trailing bits set: not the encoding of any 16 bytes */
    assert_false(
        amon_ws_key_valid((unsigned char *) "dGhlIHNhbXBsZSBub25jZR==", 24));
}


static void
test_token_list(void **state)
{
    static const struct {
        const char *value;
        int         has;
    } cases[] = {
        {"Upgrade", 1},
        {"upgrade", 1},
        {"UPGRADE", 1},
        {"keep-alive, Upgrade", 1},
        {"keep-alive,Upgrade", 1},
        {" keep-alive ,\t upgrade\t", 1},
        {"upgrade, keep-alive", 1},
        {",,upgrade,,", 1},
        {"upgrade2", 0},
        {"xupgrade", 0},
        {"up grade", 0},
        {"keep-alive", 0},
        {"", 0},
        {" , ", 0},
        {"\"upgrade\"", 0},
    };

    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(
            amon_http_token_list_has((const unsigned char *) cases[i].value,
                strlen(cases[i].value), "upgrade"),
            cases[i].has);
    }

    /* the length bounds the value: no NUL needed */
    assert_false(amon_http_token_list_has(
        (const unsigned char *) "upgradeX", 6, "upgrade"));
    assert_true(amon_http_token_list_has(
        (const unsigned char *) "upgradeX", 7, "upgrade"));
    assert_false(amon_http_token_list_has(NULL, 0, "upgrade"));
    assert_true(amon_http_token_list_has(
        (const unsigned char *) "h2c, WebSocket", 14, "websocket"));
}


static amon_ws_request_t
good_request(void)
{
    amon_ws_request_t req;

    req.method = S("GET");
    req.http_version = 1001;
    req.upgrade = S("websocket");
    req.connection = S("keep-alive, Upgrade");
    req.key = S(RFC_KEY);
    req.version = S("13");

    return req;
}


static void
check_server(amon_ws_request_t req, int status, const char *reason)
{
    const char *r;

    r = "unset";
    assert_int_equal(amon_ws_server_check(&req, &r), status);

    if (reason) {
        assert_string_equal(r, reason);

    } else {
        /* never NULL, so that it can always be logged */
        assert_non_null(r);
        assert_true(strlen(r) > 0);
    }
}


static void
test_server_check(void **state)
{
    amon_ws_request_t req;

    check_server(good_request(), 0, NULL);

    req = good_request();
    req.upgrade = S("WebSocket");
    req.connection = S("Upgrade");
    req.version = S(" 13 ");
    req.http_version = 2000;
    check_server(req, 0, NULL);

    req = good_request();
    req.method = S("POST");
    check_server(req, 405, NULL);

    req.method = S("get");
    check_server(req, 405, NULL);

    req.method = NONE;
    check_server(req, 405, NULL);

    req = good_request();
    req.http_version = 1000;
    check_server(req, 400, "websocket needs HTTP/1.1");

    req = good_request();
    req.upgrade = NONE;
    check_server(req, 426, "upgrade required");

    req.upgrade = S("h2c");
    check_server(req, 400, NULL);

    req.upgrade = S("websockets");
    check_server(req, 400, NULL);

    req = good_request();
    req.connection = NONE;
    check_server(req, 400, NULL);

    req.connection = S("keep-alive");
    check_server(req, 400, NULL);

    req = good_request();
    req.key = NONE;
    check_server(req, 400, NULL);

    req.key = S("dGhlIHNhbXBsZSBub25jZQ");
    check_server(req, 400, NULL);

    req.key = S("");
    check_server(req, 400, NULL);

    req = good_request();
    req.version = NONE;
    check_server(req, 426, "unsupported websocket version");

    req.version = S("8");
    check_server(req, 426, "unsupported websocket version");

    req.version = S("13, 8");
    check_server(req, 426, "unsupported websocket version");

    req.version = S("130");
    check_server(req, 426, "unsupported websocket version");
}


static void
test_reasons_lowercase(void **state)
{
    size_t            i;
    const char       *r;
    amon_ws_request_t req;

    req = good_request();
    req.connection = S("close");
    assert_int_equal(amon_ws_server_check(&req, &r), 400);

    /* short, lowercase apart from the protocol's own name */
    for (i = 0; r[i]; i++) {
        assert_false(r[i] >= 'A' && r[i] <= 'Z');
    }

    assert_true(i < 64);
}


static void
test_subprotocol(void **state)
{
    static const char *const supported[] = {"amonitor.v1", "json", NULL};
    static const char *const none[] = {NULL};

    assert_int_equal(
        amon_ws_select_subprotocol((unsigned char *) "json", 4, supported), 1);
    assert_int_equal(
        amon_ws_select_subprotocol(
            (unsigned char *) "chat, amonitor.v1 , json", 24, supported),
        0);
    assert_int_equal(
        amon_ws_select_subprotocol(
            (unsigned char *) "x, json,amonitor.v1", 19, supported),
        1);
    assert_int_equal(
        amon_ws_select_subprotocol((unsigned char *) "JSON", 4, supported), -1);
    assert_int_equal(
        amon_ws_select_subprotocol((unsigned char *) "jso", 3, supported), -1);
    assert_int_equal(
        amon_ws_select_subprotocol((unsigned char *) "", 0, supported), -1);
    assert_int_equal(amon_ws_select_subprotocol(NULL, 0, supported), -1);
    assert_int_equal(
        amon_ws_select_subprotocol((unsigned char *) "json", 4, none), -1);
}


static void
test_client_request(void **state)
{
    size_t        n;
    unsigned char out[512];

    static const char want[] = "GET /agent?x=1 HTTP/1.1\r\n"
                               "Host: 127.0.0.1:8765\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n";

    static const char want_auth[] = "GET / HTTP/1.1\r\n"
                                    "Host: [::1]\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                    "Sec-WebSocket-Version: 13\r\n"
                                    "Authorization: Bearer s3cr3t\r\n"
                                    "\r\n";

    n = amon_ws_client_request(out, sizeof(out), S("127.0.0.1:8765"),
        S("/agent?x=1"), (unsigned char *) RFC_KEY, NONE);
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);

    /* an empty path is "/" */
    n = amon_ws_client_request(out, sizeof(out), S("[::1]"), S(""),
        (unsigned char *) RFC_KEY, S("s3cr3t"));
    assert_int_equal(n, sizeof(want_auth) - 1);
    assert_memory_equal(out, want_auth, n);

    /* exactly enough room, then one byte less */
    memset(out, 0, sizeof(out));
    n = amon_ws_client_request(out, sizeof(want_auth) - 1, S("[::1]"), NONE,
        (unsigned char *) RFC_KEY, S("s3cr3t"));
    assert_int_equal(n, sizeof(want_auth) - 1);

    memset(out, 0, sizeof(out));
    n = amon_ws_client_request(out, sizeof(want_auth) - 2, S("[::1]"), NONE,
        (unsigned char *) RFC_KEY, S("s3cr3t"));
    assert_int_equal(n, 0);
    assert_int_equal(out[0], 0);

    /* header injection */
    assert_int_equal(amon_ws_client_request(out, sizeof(out), S("h\r\nX: y"),
                         S("/"), (unsigned char *) RFC_KEY, NONE),
        0);
    assert_int_equal(amon_ws_client_request(out, sizeof(out), S("h"),
                         S("/a\nb"), (unsigned char *) RFC_KEY, NONE),
        0);
    assert_int_equal(amon_ws_client_request(out, sizeof(out), S("h"), S("/a b"),
                         (unsigned char *) RFC_KEY, NONE),
        0);
    assert_int_equal(amon_ws_client_request(out, sizeof(out), S("h"), S("/"),
                         (unsigned char *) RFC_KEY, S("t\r\nX: y")),
        0);
    assert_int_equal(amon_ws_client_request(out, sizeof(out), S("h"), S("/"),
                         (unsigned char *) RFC_KEY, S("t\0u")),
        0);
    assert_int_equal(amon_ws_client_request(out, sizeof(out), NONE, S("/"),
                         (unsigned char *) RFC_KEY, NONE),
        0);
}


static const char rfc_response[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                   "\r\n";


static int
response(const char *text, int *status, const char **reason)
{
    size_t hl;
    int    rc;

    hl = 12345;
    rc = amon_ws_client_response((const unsigned char *) text, strlen(text),
        (const unsigned char *) RFC_KEY, &hl, status, reason);

    if (rc == AMON_OK) {
        assert_int_equal(hl, strlen(text));
        assert_int_equal(*status, 101);
    }

    return rc;
}


static void
test_client_response_split(void **state)
{
    int            rc, status;
    size_t         k, len, hl;
    const char    *reason;
    unsigned char *buf;

    len = sizeof(rfc_response) - 1;

    /* the frames that follow are not part of the header block */
    buf = malloc(len + 2);
    assert_non_null(buf);
    memcpy(buf, rfc_response, len);
    buf[len] = 0x81;
    buf[len + 1] = 0x00;

    for (k = 0; k <= len + 2; k++) {
        hl = 0;
        rc = amon_ws_client_response(
            buf, k, (const unsigned char *) RFC_KEY, &hl, &status, &reason);

        if (k < len) {
            assert_int_equal(rc, AMON_AGAIN);

        } else {
            assert_int_equal(rc, AMON_OK);
            assert_int_equal(hl, len);
            assert_int_equal(status, 101);
        }
    }

    free(buf);
}


static void
test_client_response_tolerant(void **state)
{
    int         status;
    const char *reason;

    /* case-insensitive names and values, optional whitespace */
    assert_int_equal(response("HTTP/1.1 101 OK\r\n"
                              "upgrade:WebSocket\r\n"
                              "CONNECTION:  keep-alive, Upgrade  \r\n"
                              "sec-websocket-accept: \t" RFC_ACCEPT "\t\r\n"
                              "Server: test\r\n"
                              "\r\n",
                         &status, &reason),
        AMON_OK);

    /* no reason phrase; bare LF line ends */
    assert_int_equal(response("HTTP/1.1 101\n"
                              "Upgrade: websocket\n"
                              "Connection: upgrade\n"
                              "Sec-WebSocket-Accept: " RFC_ACCEPT "\n"
                              "\n",
                         &status, &reason),
        AMON_OK);

    /* a folded header value */
    assert_int_equal(response("HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: keep-alive,\r\n"
                              "  Upgrade\r\n"
                              "Sec-WebSocket-Accept:\r\n"
                              " " RFC_ACCEPT "\r\n"
                              "\r\n",
                         &status, &reason),
        AMON_OK);

    /* an empty extensions header selects nothing */
    assert_int_equal(response("HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Extensions: \r\n"
                              "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                              "\r\n",
                         &status, &reason),
        AMON_OK);
}


static void
check_refused(const char *text, int want_status)
{
    int         status;
    const char *reason;

    status = -1;
    reason = NULL;
    assert_int_equal(response(text, &status, &reason), AMON_EHANDSHAKE);
    assert_int_equal(status, want_status);
    assert_non_null(reason);
}


/* rfc_response with an "X-Pad" header making it "total" bytes long */
static void
pad_response(unsigned char *dst, size_t total)
{
    size_t len, head;

    len = sizeof(rfc_response) - 1;
    head = len - 2; /* without the final empty line */

    memcpy(dst, rfc_response, head);
    memcpy(dst + head, "X-Pad: ", 7);
    memset(dst + head + 7, 'p', total - head - 7 - 4);
    memcpy(dst + total - 4, "\r\n\r\n", 4);
}


static void
test_client_response_refused(void **state)
{
    int           rc, status;
    size_t        hl;
    const char   *reason;
    unsigned char big[AMON_WS_MAX_RESPONSE + 64];

    /* other statuses are reported so callers can log them */
    check_refused(
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 401);
    check_refused("HTTP/1.1 403 Forbidden\r\n\r\n", 403);
    check_refused("HTTP/1.1 404 Not Found\r\n\r\n", 404);
    check_refused("HTTP/1.1 200 OK\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        200);
    check_refused("HTTP/1.0 400 Bad Request\r\n\r\n", 400);

    /* unparseable status lines */
    check_refused("HTTP/2 101\r\n\r\n", 0);
    check_refused("SSH-2.0-OpenSSH\r\n\r\n", 0);
    check_refused("HTTP/1.1 1O1 x\r\n\r\n", 0);
    check_refused("HTTP/1.1 1010\r\n\r\n", 0);
    check_refused("\r\n\r\n", 0);

    /* 101 but the wrong headers */
    check_refused("HTTP/1.0 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: h2c\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: keep-alive\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "x\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);

    /* nothing was offered, so nothing may be selected */
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Protocol: chat\r\n"
                  "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        101);

    /* malformed header lines */
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade websocket\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade : websocket\r\n\r\n",
        101);
    check_refused("HTTP/1.1 101 Switching Protocols\r\n"
                  ": websocket\r\n\r\n",
        101);

    /* the header block is bounded */
    memcpy(big, "HTTP/1.1 101 OK\r\nX: ", 20);
    memset(big + 20, 'a', sizeof(big) - 20);
    rc = amon_ws_client_response(big, AMON_WS_MAX_RESPONSE - 1,
        (const unsigned char *) RFC_KEY, &hl, &status, &reason);
    assert_int_equal(rc, AMON_AGAIN);
    rc = amon_ws_client_response(big, sizeof(big),
        (const unsigned char *) RFC_KEY, &hl, &status, &reason);
    assert_int_equal(rc, AMON_ETOOBIG);

    /* a valid response of exactly the limit passes, one byte more not */
    pad_response(big, AMON_WS_MAX_RESPONSE);
    rc = amon_ws_client_response(big, AMON_WS_MAX_RESPONSE,
        (const unsigned char *) RFC_KEY, &hl, &status, &reason);
    assert_int_equal(rc, AMON_OK);
    assert_int_equal(hl, AMON_WS_MAX_RESPONSE);

    pad_response(big, AMON_WS_MAX_RESPONSE + 1);
    rc = amon_ws_client_response(big, AMON_WS_MAX_RESPONSE + 1,
        (const unsigned char *) RFC_KEY, &hl, &status, &reason);
    assert_int_equal(rc, AMON_ETOOBIG);

    /* ... even when its end arrives late */
    memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
    rc = amon_ws_client_response(big, sizeof(big),
        (const unsigned char *) RFC_KEY, &hl, &status, &reason);
    assert_int_equal(rc, AMON_ETOOBIG);
}


typedef struct {
    const char *url;
    unsigned    tls;
    const char *host;
    unsigned    port;
    const char *host_port;
    const char *path;
    const char *normal;
} url_case_t;


static void
test_url_parse(void **state)
{
    size_t        i, n;
    amon_ws_url_t u;
    unsigned char out[256];

    static const url_case_t good[] = {
        {"ws://127.0.0.1:8765", 0, "127.0.0.1", 8765, "127.0.0.1:8765", "/",
            "ws://127.0.0.1:8765/"},
        {"ws://127.0.0.1:8765/", 0, "127.0.0.1", 8765, "127.0.0.1:8765", "/",
            "ws://127.0.0.1:8765/"},
        {"ws://H:8765", 0, "H", 8765, "H:8765", "/", "ws://h:8765/"},
        {"WSS://Example.COM/Agent?Q=A", 1, "Example.COM", 443, "Example.COM",
            "/Agent?Q=A", "wss://example.com:443/Agent?Q=A"},
        {"ws://localhost", 0, "localhost", 80, "localhost", "/",
            "ws://localhost:80/"},
        {"ws://[::1]:9000/p", 0, "[::1]", 9000, "[::1]:9000", "/p",
            "ws://[::1]:9000/p"},
        {"wss://[2001:DB8::1]", 1, "[2001:DB8::1]", 443, "[2001:DB8::1]", "/",
            "wss://[2001:db8::1]:443/"},
        {"ws://[::ffff:10.0.0.1]:1/", 0, "[::ffff:10.0.0.1]", 1,
            "[::ffff:10.0.0.1]:1", "/", "ws://[::ffff:10.0.0.1]:1/"},
        {"ws://my_host-1.example:65535/a/b", 0, "my_host-1.example", 65535,
            "my_host-1.example:65535", "/a/b",
            "ws://my_host-1.example:65535/a/b"},
        {"ws://h:08080", 0, "h", 8080, "h:08080", "/", "ws://h:8080/"},
    };

    static const char *const bad[] = {
        "",
        "ws:",
        "ws://",
        "ws:///path",
        "http://h/",
        "wx://h/",
        "ws:/h",
        "wsss://h",
        "ws://:80",
        "ws://user@h",
        "ws://user:pw@h:80/",
        "ws://h/#frag",
        "ws://h#",
        "ws://h:0",
        "ws://h:65536",
        "ws://h:99999",
        "ws://h:123456",
        "ws://h:",
        "ws://h:-1",
        "ws://h:8a",
        "ws://h h/",
        "ws://h/a b",
        "ws://h/\x01",
        "ws://h\t/",
        "ws://h/\x7f",
        "ws://h/\xc3\xa9",
        "ws://[::1",
        "ws://[]",
        "ws://[:]",
        "ws://[1.2.3.4]",
        "ws://[::1]x",
        "ws://[::g]",
        "ws://::1",
        "ws://h?q=1",
        "ws://h%41",
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&u, 0xff, sizeof(u));
        assert_int_equal(amon_ws_url_parse((unsigned char *) good[i].url,
                             strlen(good[i].url), &u),
            AMON_OK);
        assert_int_equal(u.tls, good[i].tls);
        assert_int_equal(u.port, good[i].port);
        assert_int_equal(u.host.len, strlen(good[i].host));
        assert_memory_equal(u.host.data, good[i].host, u.host.len);
        assert_int_equal(u.host_port.len, strlen(good[i].host_port));
        assert_memory_equal(
            u.host_port.data, good[i].host_port, u.host_port.len);
        assert_int_equal(u.path.len, strlen(good[i].path));
        assert_memory_equal(u.path.data, good[i].path, u.path.len);

        n = amon_ws_url_normalize(&u, out, sizeof(out));
        assert_int_equal(n, strlen(good[i].normal));
        assert_memory_equal(out, good[i].normal, n);

        /* exact room, one byte less */
        assert_int_equal(amon_ws_url_normalize(&u, out, n), n);
        assert_int_equal(amon_ws_url_normalize(&u, out, n - 1), 0);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (amon_ws_url_parse((unsigned char *) bad[i], strlen(bad[i]), &u)
            != AMON_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }

    /* NUL inside the counted string */
    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "ws://h\0/", 8, &u), AMON_EINVAL);
}


static void
test_url_hostname(void **state)
{
    size_t        i;
    amon_str_t    h;
    amon_ws_url_t u;

    static const char *const cases[][2] = {
        {"ws://[::1]:9000/p", "::1"},
        {"wss://[2001:DB8::1]", "2001:DB8::1"},
        {"ws://[::ffff:10.0.0.1]:1/", "::ffff:10.0.0.1"},
        {"ws://127.0.0.1:8765", "127.0.0.1"},
        {"ws://Example.COM/a", "Example.COM"},
        {"ws://h", "h"},
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(amon_ws_url_parse((unsigned char *) cases[i][0],
                             strlen(cases[i][0]), &u),
            AMON_OK);

        h = amon_ws_url_hostname(&u);
        assert_int_equal(h.len, strlen(cases[i][1]));
        assert_memory_equal(h.data, cases[i][1], h.len);

        /* a view into the URL, not a copy */
        assert_true(h.data >= u.host.data
            && h.data + h.len <= u.host.data + u.host.len);
    }
}


static void
test_url_same_target(void **state)
{
    size_t        n1, n2;
    amon_ws_url_t u1, u2;
    unsigned char o1[64], o2[64];

    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "ws://H:8765", 11, &u1), AMON_OK);
    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "ws://h:8765/", 12, &u2), AMON_OK);

    n1 = amon_ws_url_normalize(&u1, o1, sizeof(o1));
    n2 = amon_ws_url_normalize(&u2, o2, sizeof(o2));
    assert_true(n1 > 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(o1, o2, n1);

    /* the default port written or not */
    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "wss://a", 7, &u1), AMON_OK);
    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "wss://a:443/", 12, &u2), AMON_OK);
    n1 = amon_ws_url_normalize(&u1, o1, sizeof(o1));
    n2 = amon_ws_url_normalize(&u2, o2, sizeof(o2));
    assert_int_equal(n1, n2);
    assert_memory_equal(o1, o2, n1);

    /* ws and wss are different targets */
    assert_int_equal(
        amon_ws_url_parse((unsigned char *) "ws://a:443/", 11, &u2), AMON_OK);
    n2 = amon_ws_url_normalize(&u2, o2, sizeof(o2));
    assert_true(n1 != n2 || memcmp(o1, o2, n1) != 0);
}


#define REQ_HEAD \
    "GET /ws/agent?x=1 HTTP/1.1\r\n" \
    "Host: 127.0.0.1:9000\r\n" \
    "Upgrade: websocket\r\n" \
    "Connection: keep-alive, Upgrade\r\n" \
    "Sec-WebSocket-Key:  " RFC_KEY " \r\n" \
    "Sec-WebSocket-Version: 13\r\n" \
    "Authorization: Bearer s3cret\r\n" \
    "\r\n"


static void
request_str(amon_str_t got, const char *want)
{
    assert_non_null(got.data);
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.data, want, got.len);
}


/* the whole request, fed as it grows one byte at a time */
static int
request_grow(amon_ws_request_parser_t *rp, const char *in, size_t len)
{
    int    rc;
    size_t i;

    amon_ws_request_init(rp, 0);
    rc = AMON_AGAIN;

    for (i = 0; i <= len && rc == AMON_AGAIN; i++) {
        rc = amon_ws_request_feed(rp, (const unsigned char *) in, i);
    }

    /* the same answer for the whole input at once */
    {
        amon_ws_request_parser_t whole;

        amon_ws_request_init(&whole, 0);
        assert_int_equal(
            amon_ws_request_feed(&whole, (const unsigned char *) in, len), rc);
        assert_int_equal(whole.status, rp->status);
    }

    return rc;
}


static void
test_request_valid(void **state)
{
    size_t                   head, i;
    amon_ws_request_parser_t rp;
    static const char        in[] = REQ_HEAD "\x81\x80\x01\x02\x03\x04";
    static const char        lf[] = "GET / HTTP/1.1\nupgrade: WebSocket\n"
                                    "host: x\nconnection: upgrade\n"
                                    "sec-websocket-key: " RFC_KEY "\n"
                                    "sec-websocket-version: 13\n\n";

    head = sizeof(REQ_HEAD) - 1;

    /* every prefix of the head is incomplete */
    amon_ws_request_init(&rp, 0);

    for (i = 0; i < head; i++) {
        assert_int_equal(
            amon_ws_request_feed(&rp, (const unsigned char *) in, i),
            AMON_AGAIN);
    }

    for (i = head; i < sizeof(in) - 1; i++) {
        amon_ws_request_init(&rp, 0);
        assert_int_equal(
            amon_ws_request_feed(&rp, (const unsigned char *) in, i), AMON_OK);
        assert_int_equal(rp.header_len, head);
    }

    assert_int_equal(request_grow(&rp, in, sizeof(in) - 1), AMON_OK);
    assert_int_equal(rp.header_len, head);
    assert_int_equal(rp.status, 101);
    request_str(rp.req.method, "GET");
    assert_int_equal(rp.req.http_version, 1001);
    request_str(rp.target, "/ws/agent?x=1");
    request_str(rp.req.upgrade, "websocket");
    request_str(rp.req.key, RFC_KEY);
    request_str(rp.req.version, "13");
    request_str(rp.authorization, "Bearer s3cret");

    /* bare LF line ends, no Authorization */
    assert_int_equal(request_grow(&rp, lf, sizeof(lf) - 1), AMON_OK);
    assert_int_equal(rp.header_len, sizeof(lf) - 1);
    assert_null(rp.authorization.data);
}


/* REQ_HEAD with its line "line" replaced by "with" (a static buffer) */
static const char *
request_with(const char *line, const char *with)
{
    char              *at;
    static char        buf[1024];
    static const char *head = REQ_HEAD;

    at = strstr(head, line);
    assert_non_null(at);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (at - head), head, with,
        at + strlen(line));

    return buf;
}


static void
request_refused(const char *in, int status)
{
    amon_ws_request_parser_t rp;

    assert_int_equal(request_grow(&rp, in, strlen(in)), AMON_EHANDSHAKE);
    assert_int_equal(rp.status, status);
    assert_non_null(rp.reason);
}


static void
test_request_refused(void **state)
{
    char                    *big;
    const char              *in;
    amon_ws_request_parser_t rp;

    request_refused("POST / HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        405);
    request_refused("GET / HTTP/1.0\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        400);
    request_refused("GET / HTTP/2.0\r\n\r\n", 400);
    request_refused("GET /\r\n\r\n", 400);
    request_refused("\r\n\r\n", 400);
    request_refused("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
        400);
    request_refused("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        400);
    request_refused("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Version: 8\r\n\r\n",
        426);
    request_refused("GET / HTTP/1.1\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        426);
    request_refused("GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400);
    request_refused("GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400);

    /* RFC 6455 4.2.1 and RFC 9110/9112: Host once, tokens, no controls */
    request_refused(request_with("Host: 127.0.0.1:9000\r\n", ""), 400);
    request_refused(
        request_with("Host: 127.0.0.1:9000\r\n", "Host: a\r\nHost: b\r\n"),
        400);
    request_refused(
        request_with("Host: 127.0.0.1:9000\r\n", "Host : x\r\n"), 400);
    request_refused(
        request_with("Host: 127.0.0.1:9000\r\n", "Host: x\r\nX Y: z\r\n"), 400);
    request_refused(
        request_with("Host: 127.0.0.1:9000\r\n", "Host: x\r\nX: a\x01b\r\n"),
        400);
    request_refused(request_with("Sec-WebSocket-Version: 13\r\n",
                        "Sec-WebSocket-Version: 8\r\n"
                        "Sec-WebSocket-Version: 13\r\n"),
        400);
    request_refused(request_with("Authorization: Bearer s3cret\r\n",
                        "Authorization: Bearer a\r\n"
                        "Authorization: Bearer b\r\n"),
        400);

    /* Connection in two lines is one list */
    in = request_with("Connection: keep-alive, Upgrade\r\n",
        "Connection: Upgrade\r\nConnection: keep-alive\r\n");
    assert_int_equal(request_grow(&rp, in, strlen(in)), AMON_OK);
    in = request_with("Connection: keep-alive, Upgrade\r\n",
        "Connection: keep-alive\r\nConnection: Upgrade\r\n");
    assert_int_equal(request_grow(&rp, in, strlen(in)), AMON_OK);

    /* no end of the head within the limit */
    big = malloc(AMON_WS_MAX_REQUEST + 1);
    assert_non_null(big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', AMON_WS_MAX_REQUEST - 19);
    big[AMON_WS_MAX_REQUEST] = '\0';
    request_refused(big, 431);
    free(big);

    amon_ws_request_init(&rp, 32);
    assert_int_equal(amon_ws_request_feed(&rp, (const unsigned char *) REQ_HEAD,
                         sizeof(REQ_HEAD) - 1),
        AMON_EHANDSHAKE);
    assert_int_equal(rp.status, 431);
}


static void
test_server_response(void **state)
{
    size_t            n;
    unsigned char     out[256];
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n";

    n = amon_ws_server_response(out, sizeof(out), S(RFC_KEY));
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);

    assert_int_equal(amon_ws_server_response(out, n, S(RFC_KEY)), 0);
    assert_int_equal(amon_ws_server_response(out, sizeof(out), S("")), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_make_key),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_token_list),
        cmocka_unit_test(test_server_check),
        cmocka_unit_test(test_reasons_lowercase),
        cmocka_unit_test(test_subprotocol),
        cmocka_unit_test(test_client_request),
        cmocka_unit_test(test_client_response_split),
        cmocka_unit_test(test_client_response_tolerant),
        cmocka_unit_test(test_client_response_refused),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_url_hostname),
        cmocka_unit_test(test_url_same_target),
        cmocka_unit_test(test_request_valid),
        cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_server_response),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

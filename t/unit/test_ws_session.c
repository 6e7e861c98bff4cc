/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the WebSocket session layer, the rules every endpoint
 * shares: reassembly, the message limit, automatic pong, close echo, the
 * close code of each fault.  Input is fed split at every byte.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_ws_session.h"


#define FIN       0x80
#define MAX_EV    16
#define MAX_BYTES 4096


typedef struct {
    int           type;
    unsigned      opcode;
    unsigned      close_code;
    unsigned char data[MAX_BYTES];
    size_t        len;
} ev_copy_t;


/* Everything a session reported for one input. */
typedef struct {
    ev_copy_t     ev[MAX_EV];
    int           n;
    int           rc; /* AMON_AGAIN or the error */
    unsigned char out[MAX_BYTES]; /* the replies, in order */
    size_t        out_len;
} run_t;


static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
static unsigned            mask_calls;


static void
test_mask(void *data, unsigned char *k, size_t len)
{
    assert_int_equal(len, 4);
    memcpy(k, data, 4);
    mask_calls++;
}


/* a frame as a peer sends it: masked when "mask" is set */
static size_t
frame(unsigned char *dst, unsigned b0, const unsigned char *mask,
    const void *payload, size_t len)
{
    size_t               n, i;
    const unsigned char *pl = payload;

    dst[0] = (unsigned char) b0;
    dst[1] = mask ? 0x80 : 0;

    if (len < 126) {
        dst[1] |= (unsigned char) len;
        n = 2;

    } else {
        dst[1] |= 126;
        dst[2] = (unsigned char) (len >> 8);
        dst[3] = (unsigned char) len;
        n = 4;
    }

    if (mask) {
        memcpy(dst + n, mask, 4);
        n += 4;
    }

    for (i = 0; i < len; i++) {
        dst[n + i] = pl[i] ^ (mask ? mask[i & 3] : 0);
    }

    return n + len;
}


static void
reply(run_t *r, const amon_ws_session_event_t *ev)
{
    if (ev->reply_len) {
        assert_non_null(ev->reply);
        assert_true(r->out_len + ev->reply_len <= MAX_BYTES);
        memcpy(r->out + r->out_len, ev->reply, ev->reply_len);
        r->out_len += ev->reply_len;
    }
}


/* feed one chunk; returns 0 when the session is finished (error, close) */
static int
feed(amon_ws_session_t *s, run_t *r, unsigned char *p, size_t len)
{
    int                     rc;
    size_t                  consumed;
    ev_copy_t              *e;
    amon_ws_session_event_t ev;

    for (;;) {
        rc = amon_ws_session_feed(s, p, len, &consumed, &ev);
        assert_true(consumed <= len);
        reply(r, &ev);

        if (rc != AMON_OK) {
            r->rc = rc;
            if (rc == AMON_AGAIN) {
                assert_int_equal(consumed, len);
                return 1;
            }
            return 0;
        }

        assert_true(r->n < MAX_EV);
        e = &r->ev[r->n++];
        e->type = ev.type;
        e->opcode = ev.opcode;
        e->close_code = ev.close_code;
        e->len = ev.len;
        assert_non_null(ev.data);
        memcpy(e->data, ev.data, ev.len);

        p += consumed;
        len -= consumed;

        if (ev.type == AMON_WS_SESSION_CLOSE) {
            r->rc = AMON_OK;
            return 0;
        }
    }
}


/* the whole input in two pieces split at "at" */
static void
run_split(run_t *r, int client, size_t max, const unsigned char *in, size_t len,
    size_t at)
{
    unsigned char    *buf;
    amon_ws_session_t s;

    memset(r, 0, sizeof(run_t));
    amon_ws_session_init(&s, client, max, NULL, test_mask, (void *) key);

    buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, in, len);

    if (feed(&s, r, buf, at)) {
        (void) feed(&s, r, buf + at, len - at);
    }

    amon_ws_session_free(&s);
    free(buf);
}


/* one byte per call */
static void
run_bytes(run_t *r, int client, size_t max, const unsigned char *in, size_t len)
{
    size_t            i;
    unsigned char    *buf;
    amon_ws_session_t s;

    memset(r, 0, sizeof(run_t));
    amon_ws_session_init(&s, client, max, NULL, test_mask, (void *) key);

    buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, in, len);

    for (i = 0; i < len; i++) {
        if (!feed(&s, r, buf + i, 1)) {
            break;
        }
    }

    amon_ws_session_free(&s);
    free(buf);
}


static void
same(const run_t *a, const run_t *b)
{
    int i;

    assert_int_equal(a->rc, b->rc);
    assert_int_equal(a->n, b->n);

    for (i = 0; i < a->n; i++) {
        assert_int_equal(a->ev[i].type, b->ev[i].type);
        assert_int_equal(a->ev[i].opcode, b->ev[i].opcode);
        assert_int_equal(a->ev[i].close_code, b->ev[i].close_code);
        assert_int_equal(a->ev[i].len, b->ev[i].len);
        assert_memory_equal(a->ev[i].data, b->ev[i].data, a->ev[i].len);
    }

    assert_int_equal(a->out_len, b->out_len);
    assert_memory_equal(a->out, b->out, a->out_len);
}


/* the same result for every split and for one byte at a time */
static void
run_all(run_t *r, int client, size_t max, const unsigned char *in, size_t len)
{
    size_t at;
    run_t *other;

    other = malloc(sizeof(run_t));
    assert_non_null(other);

    run_split(r, client, max, in, len, len);

    for (at = 0; at < len; at++) {
        run_split(other, client, max, in, len, at);
        same(r, other);
    }

    run_bytes(other, client, max, in, len);
    same(r, other);

    free(other);
}


static void
test_unfragmented_no_copy(void **state)
{
    size_t                  n, consumed;
    unsigned char           in[64];
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "Hello", 5);

    amon_ws_session_init(&s, 0, 0, NULL, NULL, NULL);

    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, n);
    assert_int_equal(ev.type, AMON_WS_SESSION_MESSAGE);
    assert_int_equal(ev.opcode, AMON_WS_OP_TEXT);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);

    /* the caller's own bytes, unmasked in place */
    assert_ptr_equal(ev.data, in + n - 5);
    assert_int_equal(ev.reply_len, 0);
    assert_null(s.message.data);

    /* an empty message is not NULL either */
    n = frame(in, FIN | AMON_WS_OP_BINARY, key, "", 0);
    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_MESSAGE);
    assert_int_equal(ev.len, 0);
    assert_non_null(ev.data);

    amon_ws_session_free(&s);
}


static void
test_reassembly(void **state)
{
    size_t        n;
    run_t        *r;
    unsigned char in[256];

    r = malloc(sizeof(run_t));
    assert_non_null(r);

    /* "Hel" + ping + "lo" + empty final fragment, then a binary */
    n = frame(in, AMON_WS_OP_TEXT, key, "Hel", 3);
    n += frame(in + n, FIN | AMON_WS_OP_PING, key, "p", 1);
    n += frame(in + n, AMON_WS_OP_CONT, key, "lo", 2);
    n += frame(in + n, FIN | AMON_WS_OP_CONT, key, "", 0);
    n += frame(in + n, FIN | AMON_WS_OP_BINARY, key, "\x00\xff", 2);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->rc, AMON_AGAIN);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->ev[0].type, AMON_WS_SESSION_PING);
    assert_int_equal(r->ev[1].type, AMON_WS_SESSION_MESSAGE);
    assert_int_equal(r->ev[1].opcode, AMON_WS_OP_TEXT);
    assert_int_equal(r->ev[1].len, 5);
    assert_memory_equal(r->ev[1].data, "Hello", 5);
    assert_int_equal(r->ev[2].opcode, AMON_WS_OP_BINARY);
    assert_int_equal(r->ev[2].len, 2);

    /* the pong echoes the ping's payload, unmasked from a server */
    assert_int_equal(r->out_len, 3);
    assert_memory_equal(r->out, "\x8a\x01p", 3);

    free(r);
}


static void
test_limit(void **state)
{
    size_t        n;
    run_t        *r;
    unsigned char in[256], expect[160];

    r = malloc(sizeof(run_t));
    assert_non_null(r);

    /* 6 + 6 bytes against a limit of 10: refused, never truncated */
    n = frame(in, AMON_WS_OP_TEXT, key, "abcdef", 6);
    n += frame(in + n, FIN | AMON_WS_OP_CONT, key, "ghijkl", 6);

    run_all(r, 0, 10, in, n);

    assert_int_equal(r->rc, AMON_ETOOBIG);
    assert_int_equal(r->n, 0);

    assert_int_equal(amon_close_code(AMON_ETOOBIG), AMON_WS_CLOSE_TOO_BIG);
    assert_int_equal(r->out_len,
        amon_ws_write_close(expect, sizeof(expect), AMON_WS_CLOSE_TOO_BIG,
            amon_strerror(AMON_ETOOBIG), NULL));
    assert_memory_equal(r->out, expect, r->out_len);

    /* exactly the limit passes */
    n = frame(in, AMON_WS_OP_TEXT, key, "abcde", 5);
    n += frame(in + n, FIN | AMON_WS_OP_CONT, key, "fghij", 5);

    run_all(r, 0, 10, in, n);

    assert_int_equal(r->rc, AMON_AGAIN);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->ev[0].len, 10);

    free(r);
}


static void
test_buffer_released(void **state)
{
    size_t                  n, consumed, big;
    unsigned char          *in, *p;
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    big = AMON_WS_MESSAGE_KEEP + 1;
    in = malloc(2 * big + 64);
    p = calloc(1, big);
    assert_non_null(in);
    assert_non_null(p);

    amon_ws_session_init(&s, 1, 4 * big, NULL, test_mask, (void *) key);

    /* a fragmented message larger than the buffer that is kept */
    in[0] = AMON_WS_OP_BINARY;
    in[1] = 127;
    memset(in + 2, 0, 8);
    in[7] = (unsigned char) (big >> 16);
    in[8] = (unsigned char) (big >> 8);
    in[9] = (unsigned char) big;
    memcpy(in + 10, p, big);
    n = 10 + big;
    n += frame(in + n, FIN | AMON_WS_OP_CONT, NULL, "x", 1);

    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_MESSAGE);
    assert_int_equal(ev.len, big + 1);
    assert_non_null(s.message.data);

    /* the next call frees it; a small fragmented message keeps its own */
    n = frame(in, AMON_WS_OP_TEXT, NULL, "a", 1);
    assert_int_equal(
        amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_AGAIN);
    assert_true(s.message.cap <= AMON_WS_MESSAGE_KEEP);

    n = frame(in, FIN | AMON_WS_OP_CONT, NULL, "b", 1);
    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_memory_equal(ev.data, "ab", 2);
    assert_ptr_equal(ev.data, s.message.data);

    assert_int_equal(
        amon_ws_session_feed(&s, in, 0, &consumed, &ev), AMON_AGAIN);
    assert_non_null(s.message.data);

    amon_ws_session_free(&s);
    free(in);
    free(p);
}


static void
test_close_echo(void **state)
{
    size_t        n;
    run_t        *r;
    unsigned char in[256];

    r = malloc(sizeof(run_t));
    assert_non_null(r);

    /* the code is echoed without the reason; later bytes are ignored */
    n = frame(in, FIN | AMON_WS_OP_CLOSE, key,
        "\x03\xe9"
        "bye",
        5);
    n += frame(in + n, FIN | AMON_WS_OP_TEXT, key, "late", 4);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->rc, AMON_OK);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->ev[0].type, AMON_WS_SESSION_CLOSE);
    assert_int_equal(r->ev[0].close_code, 1001);
    assert_int_equal(r->ev[0].len, 3);
    assert_memory_equal(r->ev[0].data, "bye", 3);
    assert_int_equal(r->out_len, 4);
    assert_memory_equal(r->out, "\x88\x02\x03\xe9", 4);

    /* a close without a status code is answered with 1000 */
    n = frame(in, FIN | AMON_WS_OP_CLOSE, key, "", 0);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->ev[0].close_code, AMON_WS_CLOSE_NO_STATUS);
    assert_int_equal(r->out_len, 4);
    assert_memory_equal(r->out, "\x88\x02\x03\xe8", 4);
    assert_int_equal(amon_ws_close_reply_code(1005), 1000);
    assert_int_equal(amon_ws_close_reply_code(4401), 4401);

    /* a client's echo is masked with a key from the caller */
    n = frame(in, FIN | AMON_WS_OP_CLOSE, NULL, "", 0);
    mask_calls = 0;

    run_split(r, 1, 0, in, n, n);

    assert_int_equal(mask_calls, 1);
    assert_int_equal(r->out_len, 8);
    assert_memory_equal(r->out, "\x88\x82\x37\xfa\x21\x3d", 6);
    assert_int_equal(r->out[6] ^ key[0], 0x03);
    assert_int_equal(r->out[7] ^ key[1], 0xe8);

    free(r);
}


static void
test_our_close_first(void **state)
{
    size_t                  n, consumed;
    unsigned char           in[256], out[160];
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    amon_ws_session_init(&s, 0, 0, NULL, NULL, NULL);

    /* 0 and codes a peer may not send become 1000 */
    n = amon_ws_session_close(&s, out, sizeof(out), 0, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x88\x02\x03\xe8", 4);
    assert_int_equal(
        amon_ws_session_close(&s, out, sizeof(out), 1000, NULL), 0);
    assert_int_equal(amon_ws_session_frame(&s, out, sizeof(out),
                         AMON_WS_OP_TEXT, (const unsigned char *) "x", 1),
        0);

    /* after our close: data dropped, pings unanswered, no close reply */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "data", 4);
    n += frame(in + n, FIN | AMON_WS_OP_PING, key, "", 0);
    n += frame(in + n, FIN | AMON_WS_OP_CLOSE, key, "\x03\xe8", 2);

    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_PING);
    assert_int_equal(ev.reply_len, 0);

    assert_int_equal(
        amon_ws_session_feed(&s, in + consumed, n - consumed, &consumed, &ev),
        AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_CLOSE);
    assert_int_equal(ev.close_code, 1000);
    assert_int_equal(ev.reply_len, 0);

    amon_ws_session_free(&s);

    amon_ws_session_init(&s, 0, 0, NULL, NULL, NULL);
    n = amon_ws_session_close(&s, out, sizeof(out), 1005, "x");
    assert_int_equal(n, 5);
    assert_memory_equal(out, "\x88\x03\x03\xe8x", 5);
    amon_ws_session_free(&s);
}


static void
test_bad_utf8(void **state)
{
    size_t        n;
    run_t        *r;
    unsigned char in[256], expect[160];

    r = malloc(sizeof(run_t));
    assert_non_null(r);

    /* invalid inside a fragmented text message */
    n = frame(in, AMON_WS_OP_TEXT, key, "ok", 2);
    n += frame(in + n, FIN | AMON_WS_OP_CONT, key, "\xc0\xaf", 2);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->rc, AMON_EUTF8);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->out_len,
        amon_ws_write_close(expect, sizeof(expect), AMON_WS_CLOSE_INVALID_DATA,
            amon_strerror(AMON_EUTF8), NULL));
    assert_memory_equal(r->out, expect, r->out_len);
    assert_int_equal(r->out[2] << 8 | r->out[3], 1007);

    /* a message that ends inside a character */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "\xe2\x82", 2);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->rc, AMON_EUTF8);
    assert_int_equal(r->out[2] << 8 | r->out[3], 1007);

    /* binary is not checked */
    n = frame(in, FIN | AMON_WS_OP_BINARY, key, "\xc0\xaf", 2);

    run_all(r, 0, 0, in, n);

    assert_int_equal(r->rc, AMON_AGAIN);
    assert_int_equal(r->n, 1);

    free(r);
}


/*
 * amon_ws_session_utf8_later(): a text message that is one whole frame in
 * one call is handed out unchecked and flagged; anything else (a frame
 * split over calls, fragments) is checked as before; the caller's
 * amon_ws_session_reject() closes with 1007.
 */
static void
test_utf8_later(void **state)
{
    int                     rc;
    size_t                  n, consumed, i;
    unsigned char           in[256], expect[160];
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    static const char bad[] = "{\"a\":\"\xc0\xaf\"}";

    /* whole in one call: delivered, flagged, not checked */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, bad, sizeof(bad) - 1);
    amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);
    amon_ws_session_utf8_later(&s);

    rc = amon_ws_session_feed(&s, in, n, &consumed, &ev);
    assert_int_equal(rc, AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_MESSAGE);
    assert_int_equal(ev.utf8_unchecked, 1);
    assert_int_equal(ev.len, sizeof(bad) - 1);
    assert_memory_equal(ev.data, bad, sizeof(bad) - 1);

    /* the caller found it invalid: a close with 1007, and it sticks */
    rc = amon_ws_session_reject(&s, AMON_EUTF8, &ev);
    assert_int_equal(rc, AMON_EUTF8);
    assert_int_equal(ev.reply_len,
        amon_ws_write_close(expect, sizeof(expect), AMON_WS_CLOSE_INVALID_DATA,
            amon_strerror(AMON_EUTF8), NULL));
    assert_memory_equal(ev.reply, expect, ev.reply_len);

    rc = amon_ws_session_reject(&s, AMON_EUTF8, &ev);
    assert_int_equal(rc, AMON_EUTF8);
    assert_int_equal(ev.reply_len, 0);

    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "{}", 2);
    rc = amon_ws_session_feed(&s, in, n, &consumed, &ev);
    assert_int_equal(rc, AMON_EUTF8);
    amon_ws_session_free(&s);

    /* valid text and binary: binary is never flagged */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "caf\xc3\xa9", 5);
    n += frame(in + n, FIN | AMON_WS_OP_BINARY, key, "\xc0\xaf", 2);
    amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);
    amon_ws_session_utf8_later(&s);

    rc = amon_ws_session_feed(&s, in, n, &consumed, &ev);
    assert_int_equal(rc, AMON_OK);
    assert_int_equal(ev.utf8_unchecked, 1);
    rc = amon_ws_session_feed(&s, in + consumed, n - consumed, &i, &ev);
    assert_int_equal(rc, AMON_OK);
    assert_int_equal(ev.opcode, AMON_WS_OP_BINARY);
    assert_int_equal(ev.utf8_unchecked, 0);
    amon_ws_session_free(&s);

    /* the header in one call, the whole payload in the next: unchecked */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, bad, sizeof(bad) - 1);
    amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);
    amon_ws_session_utf8_later(&s);

    i = n - (sizeof(bad) - 1);
    rc = amon_ws_session_feed(&s, in, i, &consumed, &ev);
    assert_int_equal(rc, AMON_AGAIN);
    rc = amon_ws_session_feed(&s, in + i, n - i, &consumed, &ev);
    assert_int_equal(rc, AMON_OK);
    assert_int_equal(ev.utf8_unchecked, 1);
    amon_ws_session_free(&s);

    /* split over two calls anywhere inside its payload: checked, 1007 */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, bad, sizeof(bad) - 1);

    for (i = n - (sizeof(bad) - 1) + 1; i < n; i++) {
        amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);
        amon_ws_session_utf8_later(&s);

        rc = amon_ws_session_feed(&s, in, i, &consumed, &ev);
        if (rc == AMON_AGAIN) {
            rc = amon_ws_session_feed(&s, in + i, n - i, &consumed, &ev);
        }

        assert_int_equal(rc, AMON_EUTF8);
        assert_int_equal(ev.reply[2] << 8 | ev.reply[3], 1007);
        amon_ws_session_free(&s);

        /* the frame again, after a split on a copy: still masked input */
        n = frame(in, FIN | AMON_WS_OP_TEXT, key, bad, sizeof(bad) - 1);
    }

    /* fragments: checked, 1007 */
    n = frame(in, AMON_WS_OP_TEXT, key, "{\"a\":\"", 6);
    n += frame(in + n, FIN | AMON_WS_OP_CONT, key, "\xc0\xaf\"}", 4);
    amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);
    amon_ws_session_utf8_later(&s);

    rc = amon_ws_session_feed(&s, in, n, &consumed, &ev);
    assert_int_equal(rc, AMON_EUTF8);
    amon_ws_session_free(&s);

    /* without utf8_later the whole frame is checked by the session */
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, bad, sizeof(bad) - 1);
    amon_ws_session_init(&s, 0, 0, NULL, test_mask, (void *) key);

    rc = amon_ws_session_feed(&s, in, n, &consumed, &ev);
    assert_int_equal(rc, AMON_EUTF8);
    amon_ws_session_free(&s);
}


static void
check_fault(const unsigned char *in, size_t len, int client, int rc)
{
    run_t *r;

    r = malloc(sizeof(run_t));
    assert_non_null(r);

    run_all(r, client, 0, in, len);

    assert_int_equal(r->rc, rc);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->out[0], 0x88);

    if (client) {
        /* masked with the caller's key */
        assert_true(r->out_len >= 8);
        assert_int_equal((r->out[6] ^ key[0]) << 8 | (r->out[7] ^ key[1]),
            AMON_WS_CLOSE_PROTOCOL);

    } else {
        assert_true(r->out_len >= 4);
        assert_int_equal(r->out[2] << 8 | r->out[3], AMON_WS_CLOSE_PROTOCOL);
    }

    free(r);
}


static void
test_control_rules(void **state)
{
    size_t        n;
    unsigned char in[256], big[126];

    memset(big, 'x', sizeof(big));

    /* a fragmented ping */
    n = frame(in, AMON_WS_OP_PING, key, "", 0);
    check_fault(in, n, 0, AMON_ECTRL_FRAG);

    /* a control payload over 125 bytes */
    n = frame(in, FIN | AMON_WS_OP_PING, key, big, sizeof(big));
    check_fault(in, n, 0, AMON_ECTRL_LEN);

    /* a close with one byte, with a code never sent */
    n = frame(in, FIN | AMON_WS_OP_CLOSE, key, "\x03", 1);
    check_fault(in, n, 0, AMON_ECLOSE_LEN);
    n = frame(in, FIN | AMON_WS_OP_CLOSE, key, "\x03\xed", 2);
    check_fault(in, n, 0, AMON_ECLOSE_CODE);

    /* continuation without a start, a new message inside one */
    n = frame(in, FIN | AMON_WS_OP_CONT, key, "x", 1);
    check_fault(in, n, 0, AMON_ECONT);
    n = frame(in, AMON_WS_OP_TEXT, key, "x", 1);
    n += frame(in + n, FIN | AMON_WS_OP_TEXT, key, "y", 1);
    check_fault(in, n, 0, AMON_EFRAG);

    /* masking: a client must mask, a server must not */
    n = frame(in, FIN | AMON_WS_OP_TEXT, NULL, "x", 1);
    check_fault(in, n, 0, AMON_EMASK);
    n = frame(in, FIN | AMON_WS_OP_TEXT, key, "x", 1);
    check_fault(in, n, 1, AMON_EMASK);

    /* reserved bits and opcodes */
    n = frame(in, FIN | 0x40 | AMON_WS_OP_TEXT, key, "x", 1);
    check_fault(in, n, 0, AMON_ERSV);
    n = frame(in, FIN | 0x3, key, "x", 1);
    check_fault(in, n, 0, AMON_EOPCODE);
}


static void
test_fault_sticks(void **state)
{
    size_t                  n, consumed;
    unsigned char           in[64];
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    amon_ws_session_init(&s, 0, 0, NULL, NULL, NULL);

    n = frame(in, FIN | 0x3, key, "x", 1);
    assert_int_equal(
        amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_EOPCODE);
    assert_true(ev.reply_len > 0);

    /* the same code again, and the close frame only once */
    assert_int_equal(
        amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_EOPCODE);
    assert_int_equal(ev.reply_len, 0);

    amon_ws_session_free(&s);
}


static void
test_client_frames(void **state)
{
    size_t                  n, consumed;
    unsigned char           in[64], out[64];
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    amon_ws_session_init(&s, 1, 0, NULL, test_mask, (void *) key);

    /* our frames are masked with the caller's key */
    n = amon_ws_session_frame(&s, out, sizeof(out), AMON_WS_OP_TEXT,
        (const unsigned char *) "Hello", 5);
    assert_int_equal(n, 11);
    assert_memory_equal(
        out, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    assert_int_equal(amon_ws_session_frame(&s, out, 10, AMON_WS_OP_TEXT,
                         (const unsigned char *) "Hello", 5),
        0);

    /* a ping from the server: the pong is masked */
    n = frame(in, FIN | AMON_WS_OP_PING, NULL, "Hello", 5);
    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_PING);
    assert_int_equal(ev.reply_len, 11);
    assert_memory_equal(
        ev.reply, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);

    n = frame(in, FIN | AMON_WS_OP_PONG, NULL, "", 0);
    assert_int_equal(amon_ws_session_feed(&s, in, n, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.type, AMON_WS_SESSION_PONG);
    assert_int_equal(ev.reply_len, 0);

    amon_ws_session_free(&s);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unfragmented_no_copy),
        cmocka_unit_test(test_reassembly),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_buffer_released),
        cmocka_unit_test(test_close_echo),
        cmocka_unit_test(test_our_close_first),
        cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_utf8_later),
        cmocka_unit_test(test_control_rules),
        cmocka_unit_test(test_fault_sticks),
        cmocka_unit_test(test_client_frames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

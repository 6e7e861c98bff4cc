/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the RFC 6455 frame codec: the section 5.7 samples, every
 * error path, input split at every byte, writers and masking.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_ws_frame.h"
#include "test_util.h"


#define REC_MAX_EVENTS 64
#define FIN            0x80
#define MASKED         0x80


/* What a parser reported for a whole input: complete events only. */
typedef struct {
    int            type;
    unsigned       opcode;
    unsigned       close_code;
    unsigned char *data;
    size_t         len;
} rec_event_t;


typedef struct {
    rec_event_t    ev[REC_MAX_EVENTS];
    int            n;
    int            rc; /* status of the last call: AMON_AGAIN or an error */
    unsigned char *msg; /* message being assembled from DATA chunks */
    size_t         msg_len;
    int            in_msg;
    unsigned       msg_op;
    uint64_t       max_message;
} rec_t;


static const unsigned char rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* run(): the parser leaves a whole text frame's UTF-8 to the caller */
static int run_utf8_later;


/*
 * Test-side frame builder, independent of the writers under test.
 * "b0" is the whole first byte; "form" forces a length form (7, 16, 64)
 * or picks the minimal one (0).  The payload is masked byte by byte.
 */
static size_t
put_frame(unsigned char *dst, unsigned b0, const unsigned char *mask, int form,
    const void *payload, size_t len)
{
    size_t               n, i;
    const unsigned char *pl;

    pl = payload;
    dst[0] = (unsigned char) b0;
    dst[1] = mask ? MASKED : 0;

    if (form == 0) {
        form = len < 126 ? 7 : (len <= 0xffff ? 16 : 64);
    }

    if (form == 7) {
        dst[1] |= (unsigned char) len;
        n = 2;

    } else if (form == 16) {
        dst[1] |= 126;
        dst[2] = (unsigned char) (len >> 8);
        dst[3] = (unsigned char) len;
        n = 4;

    } else {
        dst[1] |= 127;
        for (i = 0; i < 8; i++) {
            dst[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
        }
        n = 10;
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
rec_push(rec_t *r, int type, unsigned opcode, unsigned code,
    const unsigned char *data, size_t len)
{
    rec_event_t *e;

    assert_true(r->n < REC_MAX_EVENTS);

    e = &r->ev[r->n++];
    e->type = type;
    e->opcode = opcode;
    e->close_code = code;
    e->len = len;
    e->data = malloc(len + 1);
    assert_non_null(e->data);

    if (len) {
        memcpy(e->data, data, len);
    }
}


/* Record one event, checking the DATA chunk invariants on the way. */
static void
rec_event(rec_t *r, const amon_ws_event_t *ev)
{
    switch (ev->type) {

    case AMON_WS_EV_DATA:
        assert_true(
            ev->opcode == AMON_WS_OP_TEXT || ev->opcode == AMON_WS_OP_BINARY);

        if (ev->first) {
            assert_false(r->in_msg);
            r->in_msg = 1;
            r->msg_op = ev->opcode;
            r->msg_len = 0;

        } else {
            assert_true(r->in_msg);
            assert_int_equal(ev->opcode, r->msg_op);
        }

        r->msg = realloc(r->msg, r->msg_len + ev->len + 1);
        assert_non_null(r->msg);

        if (ev->len) {
            memcpy(r->msg + r->msg_len, ev->data, ev->len);
        }

        r->msg_len += ev->len;
        assert_int_equal(ev->message_len, r->msg_len);

        /* no byte of an oversized message is ever handed out */
        assert_true(r->msg_len <= r->max_message);

        if (ev->last) {
            rec_push(r, ev->type, r->msg_op, 0, r->msg, r->msg_len);
            r->in_msg = 0;
        }
        break;

    case AMON_WS_EV_PING:
    case AMON_WS_EV_PONG:
    case AMON_WS_EV_CLOSE:
        assert_true(ev->len <= AMON_MAX_CONTROL_PAYLOAD);
        rec_push(r, ev->type, ev->opcode, ev->close_code, ev->data, ev->len);
        break;

    default: fail_msg("unexpected event type %d", ev->type);
    }
}


static void
rec_feed(amon_ws_parser_t *p, rec_t *r, unsigned char *data, size_t len)
{
    int             rc;
    size_t          consumed;
    amon_ws_event_t ev;

    for (;;) {
        consumed = (size_t) -1;
        rc = amon_ws_parse(p, data, len, &consumed, &ev);
        assert_true(consumed <= len);

        if (rc != AMON_OK) {
            assert_int_equal(ev.type, AMON_WS_EV_NONE);

            if (rc == AMON_AGAIN) {
                assert_int_equal(consumed, len);
            }

            r->rc = rc;
            return;
        }

        /* every event is the end of a frame or of input: progress */
        assert_true(consumed > 0);
        rec_event(r, &ev);

        data += consumed;
        len -= consumed;
    }
}


static void
rec_free(rec_t *r)
{
    int i;

    for (i = 0; i < r->n; i++) {
        free(r->ev[i].data);
    }

    free(r->msg);
    memset(r, 0, sizeof(rec_t));
}


/*
 * Parse "in" fed as [0, split) and then the rest in pieces of "step"
 * bytes (0: all at once).  The input is copied: the parser writes to it.
 */
static void
run(rec_t *r, int server, uint64_t max, const unsigned char *in, size_t len,
    size_t split, size_t step)
{
    size_t           off, n;
    unsigned char   *buf;
    amon_ws_parser_t p;

    memset(r, 0, sizeof(rec_t));
    amon_ws_parser_init(&p, server, max);
    p.utf8_later = run_utf8_later;
    r->max_message = p.max_message;

    buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, in, len);

    rec_feed(&p, r, buf, split);
    off = split;

    while (r->rc == AMON_AGAIN && off < len) {
        n = (step == 0 || len - off < step) ? len - off : step;
        rec_feed(&p, r, buf + off, n);
        off += n;
    }

    if (r->rc < 0) {
        /* the error is sticky and consumes nothing more */
        amon_ws_event_t ev;
        size_t          consumed;

        assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), r->rc);
        assert_int_equal(consumed, 0);
        assert_int_equal(ev.type, AMON_WS_EV_NONE);
    }

    free(buf);
}


static void
rec_assert_equal(const rec_t *a, const rec_t *b)
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
}


/*
 * Parse whole, one byte at a time, and split in two at every position
 * (a sample of positions for long inputs); all must agree.  The whole
 * run is left in *r for the caller's assertions.
 */
static void
check_all(
    rec_t *r, int server, uint64_t max, const unsigned char *in, size_t len)
{
    size_t k;
    rec_t  o;

    run(r, server, max, in, len, len, 0);

    run(&o, server, max, in, len, 0, 1);
    rec_assert_equal(r, &o);
    rec_free(&o);

    run(&o, server, max, in, len, 0, 7);
    rec_assert_equal(r, &o);
    rec_free(&o);

    for (k = 0; k <= len; k++) {
        if (len > 4096 && k > 64 && k < len - 64 && k % 4093 != 0) {
            continue;
        }

        run(&o, server, max, in, len, k, 0);
        rec_assert_equal(r, &o);
        rec_free(&o);
    }
}


/* A stream that must end in error "rc", with its close code. */
static void
check_error(int server, uint64_t max, const unsigned char *in, size_t len,
    int rc, unsigned close_code)
{
    rec_t r;

    check_all(&r, server, max, in, len);
    assert_int_equal(r.rc, rc);
    assert_int_equal(amon_close_code(rc), close_code);
    assert_true(amon_is_proto_error(rc) || rc == AMON_ETOOBIG);
    rec_free(&r);
}


static void
check_error_hex(int server, const char *h, int rc, unsigned close_code)
{
    size_t        len;
    unsigned char buf[512];

    len = hex(h, buf);
    check_error(server, 0, buf, len, rc, close_code);
}


static void
assert_event(const rec_t *r, int i, int type, unsigned opcode, const char *data,
    size_t len)
{
    assert_true(i < r->n);
    assert_int_equal(r->ev[i].type, type);
    assert_int_equal(r->ev[i].opcode, opcode);
    assert_int_equal(r->ev[i].len, len);
    assert_memory_equal(r->ev[i].data, data, len);
}


/* --- RFC 6455 section 5.7 ------------------------------------------- */

static void
test_rfc_unmasked_text(void **state)
{
    size_t           len, consumed;
    rec_t            r;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[16];

    len = hex("81 05 48 65 6c 6c 6f", buf);

    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "Hello", 5);
    rec_free(&r);

    /* the event's fields, and "data" pointing into the input */
    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, 7);
    assert_int_equal(ev.type, AMON_WS_EV_DATA);
    assert_ptr_equal(ev.data, buf + 2);
    assert_int_equal(ev.len, 5);
    assert_int_equal(ev.opcode, AMON_WS_OP_TEXT);
    assert_true(ev.first);
    assert_true(ev.last);
    assert_int_equal(ev.message_len, 5);

    assert_int_equal(amon_ws_parse(&p, buf + 7, 0, &consumed, &ev), AMON_AGAIN);
    assert_int_equal(consumed, 0);
    assert_int_equal(ev.type, AMON_WS_EV_NONE);

    /* a client's parser refuses what a server must not send masked */
    check_error_hex(1, "81 05 48 65 6c 6c 6f", AMON_EMASK, 1002);
}


static void
test_rfc_masked_text(void **state)
{
    size_t           len, consumed;
    rec_t            r;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[16];

    len = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", buf);

    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "Hello", 5);
    rec_free(&r);

    /* unmasked in place */
    amon_ws_parser_init(&p, 1, 0);
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, len);
    assert_ptr_equal(ev.data, buf + 6);
    assert_memory_equal(buf + 6, "Hello", 5);

    len = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", buf);
    check_error(0, 0, buf, len, AMON_EMASK, 1002);
}


static void
test_rfc_fragmented(void **state)
{
    size_t           len, consumed;
    rec_t            r;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[16];

    len = hex("01 03 48 65 6c 80 02 6c 6f", buf);

    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "Hello", 5);
    rec_free(&r);

    amon_ws_parser_init(&p, 0, 0);

    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, 5);
    assert_int_equal(ev.len, 3);
    assert_memory_equal(ev.data, "Hel", 3);
    assert_true(ev.first);
    assert_false(ev.last);
    assert_int_equal(ev.opcode, AMON_WS_OP_TEXT);
    assert_int_equal(ev.message_len, 3);

    assert_int_equal(
        amon_ws_parse(&p, buf + 5, len - 5, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, 4);
    assert_memory_equal(ev.data, "lo", 2);
    assert_false(ev.first);
    assert_true(ev.last);
    assert_int_equal(ev.opcode, AMON_WS_OP_TEXT);
    assert_int_equal(ev.message_len, 5);
}


static void
test_rfc_ping_pong(void **state)
{
    size_t        len;
    rec_t         r;
    unsigned char buf[32];

    len = hex("89 05 48 65 6c 6c 6f", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_PING, AMON_WS_OP_PING, "Hello", 5);
    rec_free(&r);

    len = hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58", buf);
    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_PONG, AMON_WS_OP_PONG, "Hello", 5);
    rec_free(&r);

    /* empty ping */
    len = hex("89 80 01 02 03 04", buf);
    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_PING, AMON_WS_OP_PING, "", 0);
    rec_free(&r);
}


static void
test_rfc_binary_lengths(void **state)
{
    size_t         i, len;
    rec_t          r;
    unsigned char *buf, *payload;

    payload = malloc(65536);
    buf = malloc(65536 + 14);
    assert_non_null(payload);
    assert_non_null(buf);

    for (i = 0; i < 65536; i++) {
        payload[i] = (unsigned char) (i * 7 + 3);
    }

    /* 256 bytes: 0x82 0x7E 0x0100 */
    len = put_frame(buf, FIN | 2, NULL, 0, payload, 256);
    assert_int_equal(len, 4 + 256);
    assert_memory_equal(buf, "\x82\x7e\x01\x00", 4);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(
        &r, 0, AMON_WS_EV_DATA, AMON_WS_OP_BINARY, (char *) payload, 256);
    rec_free(&r);

    /* 64 KiB: 0x82 0x7F 0x0000000000010000 */
    len = put_frame(buf, FIN | 2, NULL, 0, payload, 65536);
    assert_int_equal(len, 10 + 65536);
    assert_memory_equal(buf, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(
        &r, 0, AMON_WS_EV_DATA, AMON_WS_OP_BINARY, (char *) payload, 65536);
    rec_free(&r);

    /* the same, masked, from a client */
    len = put_frame(buf, FIN | 2, rfc_mask, 0, payload, 65536);
    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(
        &r, 0, AMON_WS_EV_DATA, AMON_WS_OP_BINARY, (char *) payload, 65536);
    rec_free(&r);

    free(payload);
    free(buf);
}


/*
 * Whole frames at the edges of the one-step read (amon_ws_parse_whole):
 * 1, 125, 126 and 65,535 bytes, text and binary, from a client and from a
 * server, two in one input, with and without utf8_later: each parsed
 * whole gives what one byte at a time and every split give.  A text frame
 * read whole under utf8_later is flagged unchecked, and only then.
 */
static void
test_whole_frames(void **state)
{
    int              later, server, text, k;
    size_t           i, len, n, consumed;
    unsigned char   *buf, *payload;
    rec_t            r;
    amon_ws_event_t  ev;
    amon_ws_parser_t p;

    static const size_t lens[] = {1, 125, 126, 65535};

    payload = malloc(65535);
    buf = malloc(2 * (65535 + 8));
    assert_non_null(payload);
    assert_non_null(buf);

    /* valid UTF-8 either way: ASCII */
    for (i = 0; i < 65535; i++) {
        payload[i] = (unsigned char) ('a' + i % 26);
    }

    for (later = 0; later < 2; later++) {
        for (server = 0; server < 2; server++) {
            for (text = 0; text < 2; text++) {
                for (k = 0; k < 4; k++) {
                    len = lens[k];
                    n = put_frame(buf, FIN | (text ? 1 : 2),
                        server ? rfc_mask : NULL, 0, payload, len);
                    n += put_frame(buf + n, FIN | 2, server ? rfc_mask : NULL,
                        0, payload, 3);

                    run_utf8_later = later;
                    check_all(&r, server, 0, buf, n);
                    run_utf8_later = 0;

                    assert_int_equal(r.rc, AMON_AGAIN);
                    assert_int_equal(r.n, 2);
                    assert_event(&r, 0, AMON_WS_EV_DATA,
                        text ? AMON_WS_OP_TEXT : AMON_WS_OP_BINARY,
                        (char *) payload, len);
                    assert_event(&r, 1, AMON_WS_EV_DATA, AMON_WS_OP_BINARY,
                        (char *) payload, 3);
                    rec_free(&r);

                    /* the first frame in one call: one event, the flag */
                    n = put_frame(buf, FIN | (text ? 1 : 2),
                        server ? rfc_mask : NULL, 0, payload, len);
                    amon_ws_parser_init(&p, server, 0);
                    p.utf8_later = later;

                    assert_int_equal(
                        amon_ws_parse(&p, buf, n, &consumed, &ev), AMON_OK);
                    assert_int_equal(consumed, n);
                    assert_int_equal(ev.len, len);
                    assert_true(ev.first && ev.last);
                    assert_int_equal(ev.unchecked, later && text);
                }
            }
        }
    }

    free(payload);
    free(buf);
}


/* --- error paths ------------------------------------------------------ */

static void
test_err_rsv(void **state)
{
    check_error_hex(1, "c1 80 00 00 00 00", AMON_ERSV, 1002);
    check_error_hex(1, "a1 80 00 00 00 00", AMON_ERSV, 1002);
    check_error_hex(0, "91 00", AMON_ERSV, 1002);
    check_error_hex(0, "f2 00", AMON_ERSV, 1002);
}


static void
test_err_opcode(void **state)
{
    unsigned      op;
    unsigned char buf[2];

    for (op = 0; op < 16; op++) {
        if (op <= 2 || (op >= 8 && op <= 10)) {
            continue;
        }

        buf[0] = (unsigned char) (FIN | op);
        buf[1] = 0;
        check_error(0, 0, buf, 2, AMON_EOPCODE, 1002);
    }
}


static void
test_err_mask(void **state)
{
    check_error_hex(1, "82 00", AMON_EMASK, 1002);
    check_error_hex(1, "89 00", AMON_EMASK, 1002);
    check_error_hex(0, "82 80 00 00 00 00", AMON_EMASK, 1002);
    check_error_hex(0, "88 80 00 00 00 00", AMON_EMASK, 1002);
}


static void
test_err_control(void **state)
{
    size_t        len;
    unsigned char buf[256], payload[126];

    /* more than 125 bytes, in either extended form */
    check_error_hex(0, "89 7e 00 7e", AMON_ECTRL_LEN, 1002);
    check_error_hex(0, "8a 7f 00 00 00 00 00 00 00 7e", AMON_ECTRL_LEN, 1002);
    check_error_hex(1, "88 fe 00 7e", AMON_ECTRL_LEN, 1002);

    /* 125 is the most a control frame carries */
    memset(payload, 'x', sizeof(payload));
    len = put_frame(buf, FIN | 9, NULL, 0, payload, 125);
    {
        rec_t r;

        check_all(&r, 0, 0, buf, len);
        assert_int_equal(r.rc, AMON_AGAIN);
        assert_event(
            &r, 0, AMON_WS_EV_PING, AMON_WS_OP_PING, (char *) payload, 125);
        rec_free(&r);
    }

    /* fragmented control frames */
    check_error_hex(0, "09 00", AMON_ECTRL_FRAG, 1002);
    check_error_hex(0, "0a 00", AMON_ECTRL_FRAG, 1002);
    check_error_hex(1, "08 80 00 00 00 00", AMON_ECTRL_FRAG, 1002);
}


static void
test_err_continuation(void **state)
{
    /* continuation without a message */
    check_error_hex(0, "80 00", AMON_ECONT, 1002);
    check_error_hex(0, "00 01 41", AMON_ECONT, 1002);
    check_error_hex(0, "81 01 41 80 01 41", AMON_ECONT, 1002);

    /* a new data message inside a fragmented one */
    check_error_hex(0, "01 01 41 81 01 41", AMON_EFRAG, 1002);
    check_error_hex(0, "01 01 41 02 00", AMON_EFRAG, 1002);
    check_error_hex(0, "02 00 89 00 82 00", AMON_EFRAG, 1002);
}


static void
test_err_length(void **state)
{
    rec_t         r;
    size_t        len;
    unsigned char buf[32];

    /* non-minimal encodings */
    check_error_hex(0, "82 7e 00 00", AMON_ELEN, 1002);
    check_error_hex(0, "82 7e 00 7d", AMON_ELEN, 1002);
    check_error_hex(0, "82 7f 00 00 00 00 00 00 00 05", AMON_ELEN, 1002);
    check_error_hex(0, "82 7f 00 00 00 00 00 00 ff ff", AMON_ELEN, 1002);
    check_error_hex(1, "82 fe 00 10 00 00 00 00", AMON_ELEN, 1002);

    /* the most significant bit of a 64-bit length */
    check_error_hex(0, "82 7f 80 00 00 00 00 00 00 00", AMON_ELEN, 1002);
    check_error_hex(0, "82 7f ff ff ff ff ff ff ff ff", AMON_ELEN, 1002);

    /* the smallest lengths of each form are fine (header only here) */
    len = hex("82 7e 00 7e", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 0);
    rec_free(&r);

    len = hex("82 7f 00 00 00 00 00 01 00 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    rec_free(&r);
}


static void
test_err_close(void **state)
{
    size_t        i, len;
    unsigned char buf[64];

    static const unsigned bad[] = {
        0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};

    check_error_hex(0, "88 01 03", AMON_ECLOSE_LEN, 1002);
    check_error_hex(1, "88 81 00 00 00 00 03", AMON_ECLOSE_LEN, 1002);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf[0] = FIN | 8;
        buf[1] = 2;
        buf[2] = (unsigned char) (bad[i] >> 8);
        buf[3] = (unsigned char) bad[i];
        check_error(0, 0, buf, 4, AMON_ECLOSE_CODE, 1002);
    }

    /* the reason must be UTF-8 */
    check_error_hex(0, "88 04 03 e8 c0 80", AMON_EUTF8, 1007);
    check_error_hex(0, "88 05 03 e8 41 e2 82", AMON_EUTF8, 1007);

    len = hex("88 84 00 00 00 00 03 e8 ed a0", buf);
    check_error(1, 0, buf, len, AMON_EUTF8, 1007);
}


static void
test_err_sticky(void **state)
{
    size_t           consumed;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    bad[2] = {0xc1, 0x00};
    unsigned char    good[7] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};

    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, bad, 2, &consumed, &ev), AMON_ERSV);
    assert_int_equal(consumed, 1);

    assert_int_equal(amon_ws_parse(&p, good, 7, &consumed, &ev), AMON_ERSV);
    assert_int_equal(consumed, 0);
    assert_int_equal(ev.type, AMON_WS_EV_NONE);
    assert_int_equal(amon_ws_parse(&p, good, 0, &consumed, &ev), AMON_ERSV);
}


static void
test_empty_input(void **state)
{
    size_t           consumed;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[8] = {0x82, 0x03, 'a', 'b', 'c'};

    /* no input at all, before a frame and inside one */
    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, NULL, 0, &consumed, &ev), AMON_AGAIN);
    assert_int_equal(consumed, 0);

    assert_int_equal(amon_ws_parse(&p, buf, 2, &consumed, &ev), AMON_AGAIN);
    assert_int_equal(consumed, 2);
    assert_int_equal(amon_ws_parse(&p, NULL, 0, &consumed, &ev), AMON_AGAIN);
    assert_int_equal(ev.type, AMON_WS_EV_NONE);

    assert_int_equal(amon_ws_parse(&p, buf + 2, 3, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, 3);
    assert_int_equal(ev.len, 3);
    assert_true(ev.first);
    assert_true(ev.last);
}


static void
test_events_before_error(void **state)
{
    rec_t         r;
    size_t        len;
    unsigned char buf[32];

    len = hex("81 01 41 89 01 42 c1 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_ERSV);
    assert_int_equal(r.n, 2);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "A", 1);
    assert_event(&r, 1, AMON_WS_EV_PING, AMON_WS_OP_PING, "B", 1);
    rec_free(&r);
}


/* --- message size ----------------------------------------------------- */

static void
test_too_big(void **state)
{
    rec_t         r;
    size_t        len;
    unsigned char buf[128], payload[64];

    memset(payload, 'a', sizeof(payload));

    /* one frame over the limit: refused from its header, nothing given */
    len = put_frame(buf, FIN | 1, NULL, 0, payload, 11);
    check_error(0, 10, buf, len, AMON_ETOOBIG, 1009);
    check_error(0, 10, buf, 2, AMON_ETOOBIG, 1009);

    /* exactly the limit passes */
    len = put_frame(buf, FIN | 1, NULL, 0, payload, 10);
    check_all(&r, 0, 10, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    rec_free(&r);

    /* over several fragments: 4 + 4 + 4 > 10, a ping in between */
    len = put_frame(buf, 1, rfc_mask, 0, payload, 4);
    len += put_frame(buf + len, FIN | 9, rfc_mask, 0, payload, 20);
    len += put_frame(buf + len, 0, rfc_mask, 0, payload, 4);
    len += put_frame(buf + len, FIN | 0, rfc_mask, 0, payload, 4);
    check_all(&r, 1, 10, buf, len);
    assert_int_equal(r.rc, AMON_ETOOBIG);
    assert_int_equal(r.n, 1); /* the ping, which does not count */
    assert_int_equal(r.ev[0].type, AMON_WS_EV_PING);
    rec_free(&r);

    /* 4 + 4 + 2 == 10 */
    len = put_frame(buf, 2, rfc_mask, 0, payload, 4);
    len += put_frame(buf + len, 0, rfc_mask, 0, payload, 4);
    len += put_frame(buf + len, FIN | 0, rfc_mask, 0, payload, 2);
    check_all(&r, 1, 10, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].len, 10);
    rec_free(&r);

    /* the count restarts with each message */
    len = put_frame(buf, FIN | 2, NULL, 0, payload, 8);
    len += put_frame(buf + len, FIN | 2, NULL, 0, payload, 8);
    check_all(&r, 0, 10, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 2);
    rec_free(&r);

    /* a huge 64-bit length does not overflow the check */
    check_error_hex(0, "82 7f 7f ff ff ff ff ff ff ff", AMON_ETOOBIG, 1009);
    len = hex("02 01 41 00 7f 7f ff ff ff ff ff ff ff", buf);
    check_error(0, 0, buf, len, AMON_ETOOBIG, 1009);
}


static void
test_default_max(void **state)
{
    rec_t            r;
    size_t           len;
    amon_ws_parser_t p;
    unsigned char    buf[16];

    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(p.max_message, AMON_DEFAULT_MAX_MESSAGE);

    /* 1 MiB announced: accepted, waiting for payload */
    len = hex("82 7f 00 00 00 00 00 10 00 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    rec_free(&r);

    len = hex("82 7f 00 00 00 00 00 10 00 01", buf);
    check_error(0, 0, buf, len, AMON_ETOOBIG, 1009);
}


/* --- zero-length frames, interleaving --------------------------------- */

static void
test_zero_length(void **state)
{
    size_t           len, consumed;
    rec_t            r;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[32];

    /* a zero-length final frame still reports the end of a message */
    len = hex("81 00", buf);
    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, 2);
    assert_int_equal(ev.type, AMON_WS_EV_DATA);
    assert_int_equal(ev.len, 0);
    assert_true(ev.first);
    assert_true(ev.last);
    assert_int_equal(ev.message_len, 0);

    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "", 0);
    rec_free(&r);

    /* masked, from a client */
    len = hex("82 80 11 22 33 44", buf);
    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, AMON_WS_OP_BINARY, "", 0);
    rec_free(&r);

    /* empty fragments, a ping in between, then the end */
    len = hex("01 00 89 00 00 00 80 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.n, 2);
    assert_event(&r, 0, AMON_WS_EV_PING, AMON_WS_OP_PING, "", 0);
    assert_event(&r, 1, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "", 0);
    rec_free(&r);

    /* an empty first fragment: "first" goes with the first real chunk */
    len = hex("02 00 80 02 41 42", buf);
    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(consumed, len);
    assert_true(ev.first);
    assert_true(ev.last);
    assert_int_equal(ev.opcode, AMON_WS_OP_BINARY);
    assert_int_equal(ev.len, 2);

    /* two empty messages back to back */
    len = hex("81 00 82 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].opcode, AMON_WS_OP_TEXT);
    assert_int_equal(r.ev[1].opcode, AMON_WS_OP_BINARY);
    rec_free(&r);
}


static void
test_control_between_fragments(void **state)
{
    rec_t         r;
    size_t        len;
    unsigned char buf[128];

    len = put_frame(buf, 1, rfc_mask, 0, "Hel", 3);
    len += put_frame(buf + len, FIN | 9, rfc_mask, 0, "p1", 2);
    len += put_frame(buf + len, 0, rfc_mask, 0, "l", 1);
    len += put_frame(buf + len, FIN | 10, rfc_mask, 0, "p2", 2);
    len += put_frame(buf + len, FIN | 0, rfc_mask, 0, "o", 1);
    len += put_frame(buf + len, FIN | 8, rfc_mask, 0,
        "\x03\xe8"
        "bye",
        5);

    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 4);
    assert_event(&r, 0, AMON_WS_EV_PING, AMON_WS_OP_PING, "p1", 2);
    assert_event(&r, 1, AMON_WS_EV_PONG, AMON_WS_OP_PONG, "p2", 2);
    assert_event(&r, 2, AMON_WS_EV_DATA, AMON_WS_OP_TEXT, "Hello", 5);
    assert_event(&r, 3, AMON_WS_EV_CLOSE, AMON_WS_OP_CLOSE, "bye", 3);
    assert_int_equal(r.ev[3].close_code, 1000);
    rec_free(&r);
}


/* --- close frames ----------------------------------------------------- */

static void
test_close(void **state)
{
    rec_t         r;
    size_t        i, len;
    unsigned char buf[256], payload[125];

    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
        1010, 1011, 1012, 1013, 1014, 3000, 4000, 4401, 4999};

    /* empty: 1005 is reported, never sent */
    len = hex("88 00", buf);
    check_all(&r, 0, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_CLOSE, AMON_WS_OP_CLOSE, "", 0);
    assert_int_equal(r.ev[0].close_code, AMON_WS_CLOSE_NO_STATUS);
    rec_free(&r);

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        buf[0] = FIN | 8;
        buf[1] = 2;
        buf[2] = (unsigned char) (good[i] >> 8);
        buf[3] = (unsigned char) good[i];
        check_all(&r, 0, 0, buf, 4);
        assert_int_equal(r.rc, AMON_AGAIN);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.ev[0].close_code, good[i]);
        assert_int_equal(r.ev[0].len, 0);
        rec_free(&r);
    }

    /* a 123-byte UTF-8 reason, 2-byte characters, masked */
    payload[0] = 0x0f;
    payload[1] = 0xa0; /* 4000 */
    for (i = 2; i + 1 < 125; i += 2) {
        payload[i] = 0xc3;
        payload[i + 1] = 0xa9;
    }
    payload[124] = 'x';

    len = put_frame(buf, FIN | 8, rfc_mask, 0, payload, 125);
    check_all(&r, 1, 0, buf, len);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].close_code, 4000);
    assert_event(
        &r, 0, AMON_WS_EV_CLOSE, AMON_WS_OP_CLOSE, (char *) payload + 2, 123);
    rec_free(&r);
}


/* --- UTF-8 of text messages ------------------------------------------- */

static void
check_text(int server, const char *h1, const char *h2, int rc)
{
    rec_t         r;
    size_t        len, n1, n2;
    unsigned char buf[256], p1[64], p2[64];

    n1 = hex(h1, p1);

    if (h2 == NULL) {
        len = put_frame(buf, FIN | 1, server ? rfc_mask : NULL, 0, p1, n1);

    } else {
        n2 = hex(h2, p2);
        len = put_frame(buf, 1, server ? rfc_mask : NULL, 0, p1, n1);
        len +=
            put_frame(buf + len, FIN | 9, server ? rfc_mask : NULL, 0, "", 0);
        len +=
            put_frame(buf + len, FIN | 0, server ? rfc_mask : NULL, 0, p2, n2);
    }

    check_all(&r, server, 0, buf, len);
    assert_int_equal(r.rc, rc);

    if (rc == AMON_AGAIN) {
        assert_int_equal(r.ev[r.n - 1].type, AMON_WS_EV_DATA);

    } else {
        assert_int_equal(amon_close_code(rc), 1007);
    }

    rec_free(&r);

    /* the same bytes in a binary message are never checked */
    if (h2 == NULL) {
        len = put_frame(buf, FIN | 2, server ? rfc_mask : NULL, 0, p1, n1);
        check_all(&r, server, 0, buf, len);
        assert_int_equal(r.rc, AMON_AGAIN);
        assert_int_equal(r.n, 1);
        rec_free(&r);
    }
}


static void
test_utf8_text(void **state)
{
    int server;

    for (server = 0; server <= 1; server++) {
        /* valid: 1 to 4 byte characters, the boundaries */
        check_text(server, "48 c3 a9 e2 82 ac f0 9f 98 80", NULL, AMON_AGAIN);
        check_text(
            server, "7f c2 80 df bf e0 a0 80 ef bf bf", NULL, AMON_AGAIN);
        check_text(server, "ed 9f bf ee 80 80 f0 90 80 80 f4 8f bf bf", NULL,
            AMON_AGAIN);

        /* overlong forms */
        check_text(server, "c0 80", NULL, AMON_EUTF8);
        check_text(server, "c1 bf", NULL, AMON_EUTF8);
        check_text(server, "e0 80 80", NULL, AMON_EUTF8);
        check_text(server, "e0 9f bf", NULL, AMON_EUTF8);
        check_text(server, "f0 80 80 80", NULL, AMON_EUTF8);
        check_text(server, "f0 8f bf bf", NULL, AMON_EUTF8);

        /* surrogates, beyond U+10FFFF, stray bytes */
        check_text(server, "ed a0 80", NULL, AMON_EUTF8);
        check_text(server, "ed bf bf", NULL, AMON_EUTF8);
        check_text(server, "f4 90 80 80", NULL, AMON_EUTF8);
        check_text(server, "f5 80 80 80", NULL, AMON_EUTF8);
        check_text(server, "41 80 41", NULL, AMON_EUTF8);
        check_text(server, "ff", NULL, AMON_EUTF8);

        /* truncated at the end of the message */
        check_text(server, "41 e2 82", NULL, AMON_EUTF8);
        check_text(server, "f0 9f 98", NULL, AMON_EUTF8);
        check_text(server, "c3", NULL, AMON_EUTF8);

        /* a character split across fragments is fine */
        check_text(server, "41 f0 9f", "98 80 42", AMON_AGAIN);
        check_text(server, "f0", "9f 98 80", AMON_AGAIN);
        check_text(server, "e2 82", "ac", AMON_AGAIN);

        /* but not a sequence broken across fragments */
        check_text(server, "e2 82", "41", AMON_EUTF8);
        check_text(server, "41 ed", "a0 80", AMON_EUTF8);
        check_text(server, "f0 9f", "98", AMON_EUTF8);
        check_text(server, "41", "c0 80", AMON_EUTF8);
    }
}


static void
test_utf8_fail_fast(void **state)
{
    size_t           len, consumed;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;
    unsigned char    buf[32];

    /* the header announces 6 bytes; the error shows before they all came */
    len = hex("81 06 41 42 c0", buf);
    amon_ws_parser_init(&p, 0, 0);
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_EUTF8);
    assert_int_equal(ev.type, AMON_WS_EV_NONE);

    /* no validation when the caller turns it off */
    len = hex("81 02 c0 80", buf);
    amon_ws_parser_init(&p, 0, 0);
    p.validate_utf8 = 0;
    assert_int_equal(amon_ws_parse(&p, buf, len, &consumed, &ev), AMON_OK);
    assert_int_equal(ev.len, 2);
    assert_true(ev.last);
}


/* --- writers ---------------------------------------------------------- */

static void
test_header_size(void **state)
{
    assert_int_equal(amon_ws_header_size(0, 0), 2);
    assert_int_equal(amon_ws_header_size(125, 0), 2);
    assert_int_equal(amon_ws_header_size(126, 0), 4);
    assert_int_equal(amon_ws_header_size(65535, 0), 4);
    assert_int_equal(amon_ws_header_size(65536, 0), 10);
    assert_int_equal(amon_ws_header_size(UINT64_C(1) << 40, 0), 10);
    assert_int_equal(amon_ws_header_size(0, 1), 6);
    assert_int_equal(amon_ws_header_size(126, 1), 8);
    assert_int_equal(amon_ws_header_size(65536, 1), 14);
}


static void
test_write_rfc(void **state)
{
    size_t        n;
    unsigned char out[32], want[32];

    n = amon_ws_write_frame(
        out, sizeof(out), 1, AMON_WS_OP_TEXT, (void *) "Hello", 5, NULL);
    assert_int_equal(n, hex("81 05 48 65 6c 6c 6f", want));
    assert_memory_equal(out, want, n);

    n = amon_ws_write_frame(
        out, sizeof(out), 1, AMON_WS_OP_TEXT, (void *) "Hello", 5, rfc_mask);
    assert_int_equal(n, hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", want));
    assert_memory_equal(out, want, n);

    n = amon_ws_write_frame(
        out, sizeof(out), 0, AMON_WS_OP_TEXT, (void *) "Hel", 3, NULL);
    n += amon_ws_write_frame(
        out + n, sizeof(out) - n, 1, AMON_WS_OP_CONT, (void *) "lo", 2, NULL);
    assert_int_equal(n, hex("01 03 48 65 6c 80 02 6c 6f", want));
    assert_memory_equal(out, want, n);

    n = amon_ws_write_frame(
        out, sizeof(out), 1, AMON_WS_OP_PING, (void *) "Hello", 5, NULL);
    assert_int_equal(n, hex("89 05 48 65 6c 6c 6f", want));
    assert_memory_equal(out, want, n);

    n = amon_ws_write_frame(
        out, sizeof(out), 1, AMON_WS_OP_PONG, (void *) "Hello", 5, rfc_mask);
    assert_int_equal(n, hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58", want));
    assert_memory_equal(out, want, n);

    n = amon_ws_write_header(out, 1, AMON_WS_OP_BINARY, 256, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x82\x7e\x01\x00", 4);

    n = amon_ws_write_header(out, 1, AMON_WS_OP_BINARY, 65536, NULL);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);

    n = amon_ws_write_header(out, 0, AMON_WS_OP_CONT, 126, rfc_mask);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "\x00\xfe\x00\x7e\x37\xfa\x21\x3d", 8);
}


static void
test_write_invalid(void **state)
{
    unsigned char out[256], payload[126];

    memset(payload, 'p', sizeof(payload));

    /* control frames: at most 125 bytes, never fragmented */
    assert_int_equal(amon_ws_write_frame(out, sizeof(out), 1, AMON_WS_OP_PING,
                         payload, 126, NULL),
        0);
    assert_int_equal(amon_ws_write_frame(out, sizeof(out), 1, AMON_WS_OP_PING,
                         payload, 125, NULL),
        127);
    assert_int_equal(amon_ws_write_frame(out, sizeof(out), 0, AMON_WS_OP_PONG,
                         payload, 1, NULL),
        0);

    /* reserved opcodes */
    assert_int_equal(
        amon_ws_write_frame(out, sizeof(out), 1, 3, payload, 1, NULL), 0);
    assert_int_equal(
        amon_ws_write_frame(out, sizeof(out), 1, 0xb, payload, 1, NULL), 0);

    /* capacity: exact fits, one byte less does not */
    assert_int_equal(amon_ws_write_frame(out, 2 + 2 + 4 + 126, 1,
                         AMON_WS_OP_BINARY, payload, 126, rfc_mask),
        134);
    assert_int_equal(amon_ws_write_frame(out, 133, 1, AMON_WS_OP_BINARY,
                         payload, 126, rfc_mask),
        0);
    assert_int_equal(
        amon_ws_write_frame(out, 1, 1, AMON_WS_OP_TEXT, NULL, 0, NULL), 0);
    assert_int_equal(
        amon_ws_write_frame(out, 2, 1, AMON_WS_OP_TEXT, NULL, 0, NULL), 2);
}


static void
roundtrip(size_t len, int masked, unsigned opcode)
{
    size_t         n, i;
    rec_t          r;
    unsigned char *payload, *out;

    payload = malloc(len + 1);
    out = malloc(len + 14);
    assert_non_null(payload);
    assert_non_null(out);

    for (i = 0; i < len; i++) {
        /* printable ASCII, so that text is valid too */
        payload[i] = (unsigned char) (' ' + (i * 31 + len) % 95);
    }

    n = amon_ws_write_frame(
        out, len + 14, 1, opcode, payload, len, masked ? rfc_mask : NULL);
    assert_int_equal(n, amon_ws_header_size(len, masked) + len);

    /* the length form on the wire */
    if (len < 126) {
        assert_int_equal(out[1] & 0x7f, len);

    } else if (len <= 0xffff) {
        assert_int_equal(out[1] & 0x7f, 126);

    } else {
        assert_int_equal(out[1] & 0x7f, 127);
    }

    assert_int_equal((out[1] & 0x80) != 0, masked);

    if (len <= 300) {
        check_all(&r, masked, len + 1, out, n);

    } else {
        run(&r, masked, len + 1, out, n, n, 0);
    }

    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, AMON_WS_EV_DATA, opcode, (char *) payload, len);
    rec_free(&r);

    if (len > 300) {
        run(&r, masked, len + 1, out, n, 0, 4099);
        assert_int_equal(r.n, 1);
        assert_event(&r, 0, AMON_WS_EV_DATA, opcode, (char *) payload, len);
        rec_free(&r);
    }

    free(payload);
    free(out);
}


static void
test_write_roundtrip(void **state)
{
    size_t i;
    int    masked;

    static const size_t lens[] = {
        0, 1, 5, 125, 126, 127, 300, 65535, 65536, 65537, 100003};

    for (masked = 0; masked <= 1; masked++) {
        for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            roundtrip(lens[i], masked, AMON_WS_OP_BINARY);
            roundtrip(lens[i], masked, AMON_WS_OP_TEXT);
        }
    }
}


static void
test_write_close(void **state)
{
    rec_t         r;
    size_t        n, i;
    unsigned char out[256];
    char          reason[300];

    n = amon_ws_write_close(out, sizeof(out), 1000, "bye", NULL);
    assert_int_equal(n, 7);
    assert_memory_equal(out,
        "\x88\x05\x03\xe8"
        "bye",
        7);

    n = amon_ws_write_close(out, sizeof(out), 0, NULL, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x88\x00", 2);

    n = amon_ws_write_close(out, sizeof(out), 0, "", rfc_mask);
    assert_int_equal(n, 6);

    /* round trip, masked, 4401 with no reason */
    n = amon_ws_write_close(out, sizeof(out), 4401, NULL, rfc_mask);
    assert_int_equal(n, 8);
    check_all(&r, 1, 0, out, n);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, AMON_WS_EV_CLOSE);
    assert_int_equal(r.ev[0].close_code, 4401);
    assert_int_equal(r.ev[0].len, 0);
    rec_free(&r);

    /* a long reason of 2-byte characters is cut at a boundary: 122 */
    for (i = 0; i + 1 < 200; i += 2) {
        reason[i] = (char) 0xc3;
        reason[i + 1] = (char) 0xa9;
    }
    reason[200] = '\0';

    n = amon_ws_write_close(out, sizeof(out), 1001, reason, NULL);
    assert_int_equal(n, 2 + 2 + 122);
    run(&r, 0, 0, out, n, n, 0);
    assert_int_equal(r.rc, AMON_AGAIN);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].close_code, 1001);
    assert_int_equal(r.ev[0].len, 122);
    rec_free(&r);

    /* ASCII fills all 123 bytes */
    memset(reason, 'r', 200);
    n = amon_ws_write_close(out, sizeof(out), 1001, reason, NULL);
    assert_int_equal(n, 2 + 125);

    /* invalid: codes that are never sent, a reason without a code */
    assert_int_equal(amon_ws_write_close(out, sizeof(out), 1005, "", NULL), 0);
    assert_int_equal(amon_ws_write_close(out, sizeof(out), 1006, "", NULL), 0);
    assert_int_equal(amon_ws_write_close(out, sizeof(out), 999, "", NULL), 0);
    assert_int_equal(amon_ws_write_close(out, sizeof(out), 0, "x", NULL), 0);
    assert_int_equal(
        amon_ws_write_close(out, sizeof(out), 1000, "\xc0\x80", NULL), 0);
    assert_int_equal(amon_ws_write_close(out, 6, 1000, "bye", NULL), 0);
}


static void
test_close_code_valid(void **state)
{
    unsigned code;
    int      want;

    for (code = 0; code < 70000; code++) {
        want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
            || (code >= 3000 && code <= 4999);
        assert_int_equal(amon_ws_close_code_valid(code), want);
    }

    assert_false(amon_ws_close_code_valid(1004));
    assert_false(amon_ws_close_code_valid(1005));
    assert_false(amon_ws_close_code_valid(1006));
    assert_false(amon_ws_close_code_valid(1015));
    assert_true(amon_ws_close_code_valid(1012));
    assert_true(amon_ws_close_code_valid(4401));
}


/* --- masking ---------------------------------------------------------- */

static void
mask_ref(unsigned char *d, size_t len, const unsigned char m[4], unsigned off)
{
    size_t i;

    for (i = 0; i < len; i++) {
        d[i] ^= m[(off + i) & 3];
    }
}


static void
test_mask(void **state)
{
    size_t        len, align, cut;
    unsigned      off, next;
    unsigned char src[300], a[310], b[310], c[310];

    static const unsigned char m[4] = {0xa1, 0x5b, 0x07, 0xee};

    for (len = 0; len < sizeof(src); len++) {
        src[len] = (unsigned char) (len * 13 + 5);
    }

    for (off = 0; off < 4; off++) {
        for (len = 0; len <= 260; len += (len < 70 ? 1 : 37)) {
            for (align = 0; align < 8; align++) {
                memcpy(a + align, src, len);
                memcpy(b, src, len);
                mask_ref(b, len, m, off);

                next = amon_ws_mask(a + align, len, m, off);
                assert_int_equal(next, (off + len) & 3);
                assert_memory_equal(a + align, b, len);

                memset(c, 0, sizeof(c));
                next = amon_ws_mask_copy(c + align, src, len, m, off);
                assert_int_equal(next, (off + len) & 3);
                assert_memory_equal(c + align, b, len);

                /* no byte around the area is touched */
                assert_int_equal(c[align + len], 0);
                if (align) {
                    assert_int_equal(c[align - 1], 0);
                }
            }

            /* in two pieces, carrying the offset */
            for (cut = 0; cut <= len; cut += 3) {
                memcpy(a, src, len);
                next = amon_ws_mask(a, cut, m, off);
                amon_ws_mask(a + cut, len - cut, m, next);
                assert_memory_equal(a, b, len);
            }
        }
    }

    /* masking twice is the identity */
    memcpy(a, src, 300);
    amon_ws_mask(a, 300, m, 2);
    amon_ws_mask(a, 300, m, 2);
    assert_memory_equal(a, src, 300);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_unmasked_text),
        cmocka_unit_test(test_rfc_masked_text),
        cmocka_unit_test(test_rfc_fragmented),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_binary_lengths),
        cmocka_unit_test(test_whole_frames),
        cmocka_unit_test(test_err_rsv),
        cmocka_unit_test(test_err_opcode),
        cmocka_unit_test(test_err_mask),
        cmocka_unit_test(test_err_control),
        cmocka_unit_test(test_err_continuation),
        cmocka_unit_test(test_err_length),
        cmocka_unit_test(test_err_close),
        cmocka_unit_test(test_err_sticky),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_events_before_error),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_default_max),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_control_between_fragments),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_utf8_text),
        cmocka_unit_test(test_utf8_fail_fast),
        cmocka_unit_test(test_header_size),
        cmocka_unit_test(test_write_rfc),
        cmocka_unit_test(test_write_invalid),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_write_close),
        cmocka_unit_test(test_close_code_valid),
        cmocka_unit_test(test_mask),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

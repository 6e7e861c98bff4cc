/*
 * Copyright (C) AMonitor authors
 *
 * libFuzzer target for the frame codec.  The input is parsed by a server
 * and a client parser, whole and in chunks sized from the input, and the
 * two runs must agree; then the writers' output is parsed back.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"


#define FUZZ_MAX_MESSAGE 300


/* What one run reported, folded into a hash so that runs can be compared. */
typedef struct {
    uint64_t hash;
    uint64_t msg_hash; /* the message being received */
    int      rc;
    int      events;
    size_t   text_len;
    int      in_text;
    uint8_t  text[FUZZ_MAX_MESSAGE];
} fuzz_run_t;


static uint64_t
fuzz_mix(uint64_t h, const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }

    return h;
}


static void
fuzz_event(fuzz_run_t *r, const amon_ws_parser_t *p, const amon_ws_event_t *ev,
    const uint8_t *buf, size_t size)
{
    uint8_t tag[4];

    tag[0] = (uint8_t) ev->type;
    tag[1] = (uint8_t) ev->opcode;
    tag[2] = (uint8_t) (ev->close_code >> 8);
    tag[3] = (uint8_t) ev->close_code;

    r->events++;

    switch (ev->type) {

    case AMON_WS_EV_DATA:
        /* in place, inside the input, never beyond the limit */
        if (ev->len && (ev->data < buf || ev->data + ev->len > buf + size)) {
            abort();
        }

        if (ev->message_len > p->max_message) {
            abort();
        }

        if (ev->opcode == AMON_WS_OP_TEXT) {
            if (ev->first) {
                r->text_len = 0;
            }

            if (r->text_len + ev->len > sizeof(r->text)) {
                abort();
            }

            if (ev->len) {
                memcpy(r->text + r->text_len, ev->data, ev->len);
            }
            r->text_len += ev->len;

            /* a complete text message is valid UTF-8 */
            if (ev->last
                && amon_utf8_validate(r->text, r->text_len) != AMON_OK) {
                abort();
            }
        }

        /*
         * Runs chunk differently, and may fail at different points of a
         * bad frame: only whole messages count.
         */
        if (ev->first) {
            r->msg_hash = 0xcbf29ce484222325ULL;
        }

        r->msg_hash = fuzz_mix(r->msg_hash, ev->data, ev->len);

        if (!ev->last) {
            return;
        }

        r->hash = fuzz_mix(r->hash, (uint8_t *) &r->msg_hash, 8);
        break;

    case AMON_WS_EV_CLOSE:
        if (ev->close_code != AMON_WS_CLOSE_NO_STATUS
            && !amon_ws_close_code_valid(ev->close_code)) {
            abort();
        }

        if (amon_utf8_validate(ev->data, ev->len) != AMON_OK) {
            abort();
        }

        /* fall through */

    default:
        if (ev->len > AMON_MAX_CONTROL_PAYLOAD) {
            abort();
        }

        r->hash = fuzz_mix(r->hash, ev->data, ev->len);
        break;
    }

    r->hash = fuzz_mix(r->hash, tag, sizeof(tag));
}


/*
 * Parse a copy of the input with chunks of 1..max_chunk bytes chosen by a
 * generator seeded from the input ("max_chunk" 0: all at once).
 */
static void
fuzz_parse(fuzz_run_t *r, int server, int later, const uint8_t *in, size_t size,
    uint32_t seed, unsigned max_chunk)
{
    int              rc, verdict;
    size_t           off, n, consumed;
    uint8_t         *buf;
    amon_ws_event_t  ev;
    amon_ws_parser_t p;

    memset(r, 0, sizeof(fuzz_run_t));
    verdict = 0;
    r->hash = 0xcbf29ce484222325ULL;

    buf = malloc(size + 1);
    if (buf == NULL) {
        return;
    }

    if (size) {
        memcpy(buf, in, size);
    }

    amon_ws_parser_init(&p, server, FUZZ_MAX_MESSAGE);
    p.utf8_later = later ? 1 : 0;

    off = 0;
    rc = AMON_AGAIN;

    while (off < size) {
        n = size - off;

        if (max_chunk) {
            seed = seed * 1103515245 + 12345;
            if (n > 1 + (seed >> 16) % max_chunk) {
                n = 1 + (seed >> 16) % max_chunk;
            }
        }

        for (;;) {
            rc = amon_ws_parse(&p, buf + off, n, &consumed, &ev);

            if (consumed > n) {
                abort();
            }

            off += consumed;
            n -= consumed;

            if (rc != AMON_OK) {
                break;
            }

            if (consumed == 0) {
                abort();
            }

            /*
             * Only a whole text message is left unchecked, only when asked;
             * the caller checks it, as the module does (conn_decode()).
             */
            if (ev.unchecked
                && (!later || ev.type != AMON_WS_EV_DATA
                    || ev.opcode != AMON_WS_OP_TEXT || !ev.first || !ev.last)) {
                abort();
            }

            if (ev.unchecked
                && amon_utf8_validate(ev.data, ev.len) != AMON_OK) {
                rc = AMON_EUTF8;
                verdict = 1;
                break;
            }

            fuzz_event(r, &p, &ev, buf, size);
        }

        if (verdict) {
            /* the caller's verdict on an unchecked message: not sticky */
            break;
        }

        if (rc < 0) {
            /* sticky: the same code, nothing consumed */
            if (amon_ws_parse(&p, buf, size, &consumed, &ev) != rc
                || consumed != 0 || ev.type != AMON_WS_EV_NONE) {
                abort();
            }
            break;
        }

        if (n != 0) {
            abort();
        }
    }

    r->rc = rc;

    free(buf);
}


static void
fuzz_compare(const uint8_t *data, size_t size, int server, uint32_t seed,
    unsigned max_chunk)
{
    int        later;
    fuzz_run_t whole, split;

    fuzz_parse(&whole, server, 0, data, size, 0, 0);
    fuzz_parse(&split, server, 0, data, size, seed, max_chunk);

    if (whole.rc != split.rc || whole.hash != split.hash) {
        abort();
    }

    /* the UTF-8 check left to the caller: the same messages and verdict */
    for (later = 0; later < 2; later++) {
        fuzz_parse(&split, server, 1, data, size, seed, later ? max_chunk : 0);

        if (whole.rc != split.rc || whole.hash != split.hash) {
            abort();
        }
    }

    if (whole.rc < 0 && amon_close_code(whole.rc) == 1011) {
        /* the parser only fails with protocol or size errors */
        abort();
    }
}


/* Parse writer output back; it must give exactly what was written. */
static void
fuzz_roundtrip(const uint8_t *data, size_t size)
{
    int              rc, text, masked;
    size_t           n, len, cut, consumed, off, got;
    uint8_t          out[2 * 1024];
    uint8_t          msg[1024];
    uint8_t          mask[4];
    unsigned         opcode;
    amon_ws_event_t  ev;
    amon_ws_parser_t p;

    if (size < 6) {
        return;
    }

    masked = data[0] & 1;
    text = (data[0] >> 1) & 1;
    memcpy(mask, data + 1, 4);
    data += 5;
    size -= 5;

    len = size < 1000 ? size : 1000;
    cut = len ? data[0] % (len + 1) : 0;
    opcode = text ? AMON_WS_OP_TEXT : AMON_WS_OP_BINARY;

    /* two fragments with a ping between them, then a close */
    n = amon_ws_write_frame(
        out, sizeof(out), 0, opcode, data, cut, masked ? mask : NULL);
    n += amon_ws_write_frame(out + n, sizeof(out) - n, 1, AMON_WS_OP_PING, data,
        cut < 125 ? cut : 125, masked ? mask : NULL);
    n += amon_ws_write_frame(out + n, sizeof(out) - n, 1, AMON_WS_OP_CONT,
        data + cut, len - cut, masked ? mask : NULL);
    n += amon_ws_write_close(
        out + n, sizeof(out) - n, 1000, "done", masked ? mask : NULL);

    amon_ws_parser_init(&p, masked, sizeof(msg));

    off = 0;
    got = 0;

    for (;;) {
        rc = amon_ws_parse(&p, out + off, n - off, &consumed, &ev);
        off += consumed;

        if (rc == AMON_AGAIN) {
            break;
        }

        if (rc < 0) {
            /* only invalid text may fail */
            if (rc != AMON_EUTF8 || !text
                || amon_utf8_validate(data, len) == AMON_OK) {
                abort();
            }
            return;
        }

        if (ev.type == AMON_WS_EV_DATA) {
            memcpy(msg + got, ev.data, ev.len);
            got += ev.len;

            if (ev.last && (got != len || memcmp(msg, data, len) != 0)) {
                abort();
            }

        } else if (ev.type == AMON_WS_EV_CLOSE) {
            if (ev.close_code != 1000 || ev.len != 4 || got != len) {
                abort();
            }
        }
    }

    if (off != n || (text && amon_utf8_validate(data, len) != AMON_OK)) {
        abort();
    }
}


/* Word-wise masking against the byte-wise definition. */
static void
fuzz_mask(const uint8_t *data, size_t size)
{
    size_t   i, len;
    uint8_t  a[256], b[256], c[256];
    unsigned off;

    if (size < 5) {
        return;
    }

    off = data[0] & 3;
    len = size - 5 < sizeof(a) ? size - 5 : sizeof(a);

    memset(b, 0, sizeof(b));
    memcpy(a, data + 5, len);

    for (i = 0; i < len; i++) {
        b[i] = data[5 + i] ^ data[1 + ((off + i) & 3)];
    }

    if (amon_ws_mask(a, len, data + 1, off) != ((off + len) & 3)
        || amon_ws_mask_copy(c, data + 5, len, data + 1, off)
            != ((off + len) & 3)
        || memcmp(a, b, len) != 0 || memcmp(c, b, len) != 0) {
        abort();
    }
}


/*
 * The handshake parsers see the same bytes: the response parser must not
 * read out of bounds, and a normalised URL must parse to itself.
 */
static void
fuzz_handshake(const uint8_t *data, size_t size)
{
    int           rc, status;
    size_t        hl, n1, n2;
    const char   *reason;
    amon_ws_url_t u;
    uint8_t       o1[AMON_MAX_URL_LEN + 32], o2[AMON_MAX_URL_LEN + 32];

    static const uint8_t key[] = "dGhlIHNhbXBsZSBub25jZQ==";

    rc = amon_ws_client_response(data, size, key, &hl, &status, &reason);

    if ((rc == AMON_OK && (hl == 0 || hl > size || status != 101))
        || (rc != AMON_OK && rc != AMON_AGAIN && reason == NULL)) {
        abort();
    }

    if (amon_ws_url_parse(data, size, &u) != AMON_OK) {
        return;
    }

    n1 = amon_ws_url_normalize(&u, o1, sizeof(o1));

    if (n1 == 0) {
        abort();
    }

    /* an explicit port may take a URL near the limit over it */
    if (n1 > AMON_MAX_URL_LEN) {
        return;
    }

    if (amon_ws_url_parse(o1, n1, &u) != AMON_OK) {
        abort();
    }

    n2 = amon_ws_url_normalize(&u, o2, sizeof(o2));

    if (n1 != n2 || memcmp(o1, o2, n1) != 0) {
        abort();
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed;
    unsigned max_chunk;

    if (size < 3) {
        return 0;
    }

    /* two bytes choose the chunking, the rest is the stream */
    seed = data[0] | ((uint32_t) data[1] << 8);
    max_chunk = 1 + data[0] % 16;

    fuzz_compare(data + 2, size - 2, 1, seed, max_chunk);
    fuzz_compare(data + 2, size - 2, 0, seed, max_chunk);
    fuzz_compare(data + 2, size - 2, 1, seed, 1);

    fuzz_roundtrip(data, size);
    fuzz_mask(data, size);
    fuzz_handshake(data, size);

    return 0;
}

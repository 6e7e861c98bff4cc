/*
 * Copyright (C) AMonitor authors
 *
 * libFuzzer target for the session layer and the upgrade request parser.
 * The input goes through a server and a client session, whole and in
 * chunks sized from the input; both runs must report the same messages
 * and write the same replies.  The request parser must agree with itself
 * whether the request arrives whole or growing.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amon_ws_session.h"
#include "amon_ws_handshake.h"


#define FUZZ_MAX_MESSAGE 300


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
fuzz_mask(void *data, unsigned char *key, size_t len)
{
    memset(key, 0x5a, len);
}


/* feed "size" bytes in chunks of "step" (0: whole); returns a hash */
static uint64_t
fuzz_session(const uint8_t *in, size_t size, int client, size_t step)
{
    int                     rc;
    size_t                  pos, n, consumed;
    uint8_t                *buf, tag[4];
    uint64_t                h;
    amon_ws_session_t       s;
    amon_ws_session_event_t ev;

    buf = malloc(size + 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, in, size);
    amon_ws_session_init(&s, client, FUZZ_MAX_MESSAGE, NULL, fuzz_mask, NULL);

    h = 0xcbf29ce484222325ULL;
    rc = AMON_AGAIN;

    for (pos = 0; /* void */; pos += n) {
        n = step ? step : size;
        if (n > size - pos) {
            n = size - pos;
        }

        for (;;) {
            rc = amon_ws_session_feed(&s, buf + pos, n, &consumed, &ev);
            h = fuzz_mix(h, ev.reply, ev.reply_len);

            if (rc != AMON_OK) {
                break;
            }

            if (ev.type == AMON_WS_SESSION_MESSAGE) {
                if (ev.data == NULL || ev.len > FUZZ_MAX_MESSAGE) {
                    abort();
                }

                if (ev.opcode == AMON_WS_OP_TEXT
                    && amon_utf8_validate(ev.data, ev.len) != AMON_OK) {
                    abort();
                }
            }

            tag[0] = (uint8_t) ev.type;
            tag[1] = (uint8_t) ev.opcode;
            tag[2] = (uint8_t) (ev.close_code >> 8);
            tag[3] = (uint8_t) ev.close_code;
            h = fuzz_mix(h, tag, sizeof(tag));
            h = fuzz_mix(h, ev.data, ev.len);

            pos += consumed;
            n -= consumed;
        }

        if (rc < 0 || pos + n >= size) {
            break;
        }
    }

    tag[0] = (uint8_t) rc;
    h = fuzz_mix(h, tag, 1);

    amon_ws_session_free(&s);
    free(buf);

    return h;
}


static void
fuzz_request(const uint8_t *in, size_t size)
{
    int                      whole, grown;
    size_t                   i;
    amon_ws_request_parser_t a, b;

    amon_ws_request_init(&a, 1024);
    whole = amon_ws_request_feed(&a, in, size);

    amon_ws_request_init(&b, 1024);
    grown = AMON_AGAIN;

    for (i = 0; i <= size && grown == AMON_AGAIN; i++) {
        grown = amon_ws_request_feed(&b, in, i);
    }

    if (whole != grown || a.status != b.status
        || (whole == AMON_OK && a.header_len != b.header_len)
        || (whole == AMON_OK && a.header_len > size)) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step;
    int    client;

    step = size ? (size_t) (data[0] % 7) + 1 : 1;

    for (client = 0; client < 2; client++) {
        if (fuzz_session(data, size, client, 0)
            != fuzz_session(data, size, client, step)) {
            abort();
        }
    }

    fuzz_request(data, size);

    return 0;
}

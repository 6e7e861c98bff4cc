/*
 * Copyright (C) AMonitor authors
 *
 * WebSocket session layer: turns the frame decoder's events into whole
 * messages and the replies the protocol asks for (pong, close echo, close
 * on a fault).  No I/O: replies are bytes for the caller to write.
 */

#include <string.h>

#include "amon_ws_session.h"


static int  amon_ws_session_data(amon_ws_session_t *s,
     const amon_ws_event_t *fev, amon_ws_session_event_t *ev);
static void amon_ws_session_control(amon_ws_session_t *s,
    const amon_ws_event_t *fev, amon_ws_session_event_t *ev);
static int  amon_ws_session_fail(
     amon_ws_session_t *s, int rc, amon_ws_session_event_t *ev);
static const unsigned char *amon_ws_session_mask(
    amon_ws_session_t *s, unsigned char key[4]);


void
amon_ws_session_init(amon_ws_session_t *s, int client, size_t max_message,
    const amon_allocator_t *a, amon_ws_mask_fn mask_fn, void *mask_data)
{
    memset(s, 0, sizeof(amon_ws_session_t));

    s->max_message = max_message ? max_message : AMON_DEFAULT_MAX_MESSAGE;
    s->allocator = a;
    s->client = client ? 1 : 0;
    s->mask_fn = mask_fn;
    s->mask_data = mask_data;

    amon_ws_parser_init(&s->parser, !client, s->max_message);
    s->parser.validate_utf8 = 1;
}


void
amon_ws_session_utf8_later(amon_ws_session_t *s)
{
    s->parser.utf8_later = 1;
}


int
amon_ws_session_reject(
    amon_ws_session_t *s, int rc, amon_ws_session_event_t *ev)
{
    if (s->failed) {
        memset(ev, 0, sizeof(amon_ws_session_event_t));
        return s->error;
    }

    return amon_ws_session_fail(s, rc, ev);
}


void
amon_ws_session_free(amon_ws_session_t *s)
{
    amon_buf_free(&s->message, s->allocator);
    s->delivered = 0;
}


int
amon_ws_session_feed(amon_ws_session_t *s, unsigned char *data, size_t len,
    size_t *consumed, amon_ws_session_event_t *ev)
{
    int             rc;
    size_t          pos, n;
    amon_ws_event_t fev;

    memset(ev, 0, sizeof(amon_ws_session_event_t));
    *consumed = 0;

    if (s->delivered) {
        /* the caller is done with the last reassembled message */
        s->delivered = 0;
        s->message.len = 0;

        if (s->message.cap > AMON_WS_MESSAGE_KEEP) {
            amon_buf_free(&s->message, s->allocator);
        }
    }

    if (s->failed) {
        return s->error;
    }

    if (s->close_received) {
        /* nothing after a close frame is processed */
        *consumed = len;
        return AMON_AGAIN;
    }

    pos = 0;

    for (;;) {
        rc = amon_ws_parse(
            &s->parser, data ? data + pos : NULL, len - pos, &n, &fev);
        pos += n;
        *consumed = pos;

        if (rc == AMON_AGAIN) {
            return AMON_AGAIN;
        }

        if (rc != AMON_OK) {
            return amon_ws_session_fail(s, rc, ev);
        }

        if (fev.type != AMON_WS_EV_DATA) {
            amon_ws_session_control(s, &fev, ev);

            if (ev->type == AMON_WS_SESSION_NONE) {
                continue;
            }

            return AMON_OK;
        }

        rc = amon_ws_session_data(s, &fev, ev);

        if (rc == AMON_AGAIN) {
            continue;
        }

        if (rc != AMON_OK) {
            return amon_ws_session_fail(s, rc, ev);
        }

        return AMON_OK;
    }
}


/* AMON_OK: a whole message in *ev; AMON_AGAIN: more fragments to come */
static int
amon_ws_session_data(amon_ws_session_t *s, const amon_ws_event_t *fev,
    amon_ws_session_event_t *ev)
{
    int rc;

    if (s->close_sent) {
        /* our close is out: what the peer still sends is dropped */
        s->message.len = 0;
        return AMON_AGAIN;
    }

    if (fev->first && fev->last) {
        /* unfragmented: hand out the caller's own bytes, no copy */
        ev->type = AMON_WS_SESSION_MESSAGE;
        ev->opcode = fev->opcode;
        ev->data = fev->data ? (unsigned char *) fev->data : s->reply;
        ev->len = fev->len;
        ev->utf8_unchecked = fev->unchecked;
        return AMON_OK;
    }

    if (fev->first) {
        s->message.len = 0;
    }

    if (fev->len) {
        rc = amon_buf_reserve(
            &s->message, fev->len, s->max_message, s->allocator);
        if (rc != AMON_OK) {
            return rc;
        }

        memcpy(s->message.data + s->message.len, fev->data, fev->len);
        s->message.len += fev->len;
    }

    if (!fev->last) {
        return AMON_AGAIN;
    }

    s->delivered = 1;

    ev->type = AMON_WS_SESSION_MESSAGE;
    ev->opcode = fev->opcode;
    ev->data = s->message.data ? s->message.data : s->reply;
    ev->len = s->message.len;

    return AMON_OK;
}


static void
amon_ws_session_control(amon_ws_session_t *s, const amon_ws_event_t *fev,
    amon_ws_session_event_t *ev)
{
    unsigned char key[4];

    ev->data = (unsigned char *) fev->data;
    ev->len = fev->len;
    ev->opcode = fev->opcode;

    switch (fev->type) {

    case AMON_WS_EV_PING:
        ev->type = AMON_WS_SESSION_PING;

        if (s->close_sent) {
            break;
        }

        ev->reply = s->reply;
        ev->reply_len = amon_ws_write_frame(s->reply, sizeof(s->reply), 1,
            AMON_WS_OP_PONG, fev->data, fev->len, amon_ws_session_mask(s, key));
        break;

    case AMON_WS_EV_PONG: ev->type = AMON_WS_SESSION_PONG; break;

    case AMON_WS_EV_CLOSE:
        ev->type = AMON_WS_SESSION_CLOSE;
        ev->close_code = fev->close_code;
        s->close_received = 1;

        if (s->close_sent) {
            /* the answer to our close: the handshake is complete */
            break;
        }

        s->close_sent = 1;
        ev->reply = s->reply;
        ev->reply_len = amon_ws_write_close(s->reply, sizeof(s->reply),
            amon_ws_close_reply_code(fev->close_code), NULL,
            amon_ws_session_mask(s, key));
        break;

    default: ev->type = AMON_WS_SESSION_NONE; break;
    }
}


static int
amon_ws_session_fail(amon_ws_session_t *s, int rc, amon_ws_session_event_t *ev)
{
    unsigned char key[4];

    s->failed = 1;
    s->error = rc;

    memset(ev, 0, sizeof(amon_ws_session_event_t));

    if (!s->close_sent) {
        s->close_sent = 1;
        ev->reply = s->reply;
        ev->reply_len =
            amon_ws_write_close(s->reply, sizeof(s->reply), amon_close_code(rc),
                amon_strerror(rc), amon_ws_session_mask(s, key));
    }

    return rc;
}


size_t
amon_ws_session_frame(amon_ws_session_t *s, unsigned char *dst, size_t cap,
    unsigned opcode, const unsigned char *data, size_t len)
{
    unsigned char key[4];

    if (s->close_sent) {
        return 0;
    }

    return amon_ws_write_frame(
        dst, cap, 1, opcode, data, len, amon_ws_session_mask(s, key));
}


size_t
amon_ws_session_close(amon_ws_session_t *s, unsigned char *dst, size_t cap,
    uint16_t code, const char *reason)
{
    size_t        n;
    unsigned char key[4];

    if (s->close_sent) {
        return 0;
    }

    if (!amon_ws_close_code_valid(code)) {
        code = AMON_WS_CLOSE_NORMAL;
    }

    n = amon_ws_write_close(
        dst, cap, code, reason, amon_ws_session_mask(s, key));

    if (n) {
        s->close_sent = 1;
    }

    return n;
}


uint16_t
amon_ws_close_reply_code(uint16_t peer_code)
{
    return peer_code == AMON_WS_CLOSE_NO_STATUS ? AMON_WS_CLOSE_NORMAL
                                                : peer_code;
}


/* a fresh key for a client frame, NULL (no mask) for a server */
static const unsigned char *
amon_ws_session_mask(amon_ws_session_t *s, unsigned char key[4])
{
    if (!s->client) {
        return NULL;
    }

    if (s->mask_fn) {
        s->mask_fn(s->mask_data, key, 4);

    } else {
        memset(key, 0, 4);
    }

    return key;
}

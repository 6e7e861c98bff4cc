/*
 * Copyright (C) AMonitor authors
 *
 * RFC 6455 frame codec.  The decoder is a byte-driven state machine: it
 * collects a frame header (possibly one byte per call), validates it, then
 * hands data payload back in place and buffers control payload itself.
 * The encoders write into caller buffers; masking is amon_ws_mask.c.
 */

#include <string.h>

#include "amon_ws_frame.h"


#define AMON_WS_ST_HEADER  0
#define AMON_WS_ST_PAYLOAD 1
#define AMON_WS_ST_ERROR   2

#define amon_ws_is_control(op) ((op) >= AMON_WS_OP_CLOSE)


static int amon_ws_header_start(
    amon_ws_parser_t *p, const unsigned char *d, size_t n);
static int amon_ws_check_byte0(amon_ws_parser_t *p, unsigned char b);
static int amon_ws_check_byte1(amon_ws_parser_t *p, unsigned char b);
static int amon_ws_header_done(amon_ws_parser_t *p);
static int amon_ws_control_done(amon_ws_parser_t *p, amon_ws_event_t *ev);
static int amon_ws_fail(
    amon_ws_parser_t *p, int rc, size_t pos, size_t *consumed);
static void amon_ws_next_frame(amon_ws_parser_t *p);
static int  amon_ws_parse_whole(amon_ws_parser_t *p, unsigned char *data,
     size_t len, size_t *consumed, amon_ws_event_t *ev);


void
amon_ws_parser_init(amon_ws_parser_t *p, int server, uint64_t max_message)
{
    memset(p, 0, sizeof(amon_ws_parser_t));

    p->max_message = max_message ? max_message : AMON_DEFAULT_MAX_MESSAGE;
    p->server = server ? 1 : 0;
    p->validate_utf8 = 1;

    amon_ws_next_frame(p);
}


int
amon_ws_parse(amon_ws_parser_t *p, unsigned char *data, size_t len,
    size_t *consumed, amon_ws_event_t *ev)
{
    int            rc;
    size_t         pos, n;
    unsigned char *payload;

    memset(ev, 0, sizeof(amon_ws_event_t));
    pos = 0;

    if (p->state == AMON_WS_ST_ERROR) {
        *consumed = 0;
        return p->error;
    }

    if (p->hdr_have == 0 && p->state == AMON_WS_ST_HEADER && len >= 2
        && amon_ws_parse_whole(p, data, len, consumed, ev) == AMON_OK) {
        return AMON_OK;
    }

    for (;;) {

        if (p->state == AMON_WS_ST_HEADER) {

            if (p->hdr_have == 0 && len - pos >= 2) {
                /* the usual case: the first two bytes, or all, at once */
                rc = amon_ws_header_start(p, data + pos, len - pos);
                pos += p->hdr_have;

                if (rc != AMON_OK) {
                    return amon_ws_fail(p, rc, pos, consumed);
                }
            }

            while (p->hdr_have < p->hdr_need) {
                if (pos == len) {
                    *consumed = len;
                    return AMON_AGAIN;
                }

                p->hdr[p->hdr_have++] = data[pos++];

                /* fail as early as the offending byte allows */
                if (p->hdr_have == 1) {
                    rc = amon_ws_check_byte0(p, p->hdr[0]);

                } else if (p->hdr_have == 2) {
                    rc = amon_ws_check_byte1(p, p->hdr[1]);

                } else {
                    rc = AMON_OK;
                }

                if (rc != AMON_OK) {
                    return amon_ws_fail(p, rc, pos, consumed);
                }
            }

            rc = amon_ws_header_done(p);
            if (rc != AMON_OK) {
                return amon_ws_fail(p, rc, pos, consumed);
            }

            p->state = AMON_WS_ST_PAYLOAD;
        }

        n = len - pos;
        if (n > p->frame_len - p->frame_done) {
            n = (size_t) (p->frame_len - p->frame_done);
        }

        if (amon_ws_is_control(p->frame_opcode)) {
            if (n && p->masked) {
                amon_ws_mask_copy(p->ctrl + p->frame_done, data + pos, n,
                    p->mask, (unsigned) (p->frame_done & 3));

            } else if (n) {
                memcpy(p->ctrl + p->frame_done, data + pos, n);
            }

            pos += n;
            p->frame_done += n;

            if (p->frame_done < p->frame_len) {
                *consumed = len;
                return AMON_AGAIN;
            }

            rc = amon_ws_control_done(p, ev);
            if (rc != AMON_OK) {
                memset(ev, 0, sizeof(amon_ws_event_t));
                return amon_ws_fail(p, rc, pos, consumed);
            }

            amon_ws_next_frame(p);

            *consumed = pos;
            return AMON_OK;
        }

        /* a data frame: hand its payload back in place */

        if (n == 0 && p->frame_done < p->frame_len) {
            *consumed = len;
            return AMON_AGAIN;
        }

        /* "data" may be NULL when "len" is 0: no arithmetic on it then */
        payload = data ? data + pos : NULL;

        if (p->masked && n) {
            amon_ws_mask(payload, n, p->mask, (unsigned) (p->frame_done & 3));
        }

        if (n && p->message_opcode == AMON_WS_OP_TEXT && p->validate_utf8) {
            if (p->utf8_later && p->first_pending && p->fin
                && p->frame_done == 0 && n == p->frame_len) {
                ev->unchecked = 1;

            } else {
                rc = amon_utf8_feed(&p->utf8_state, payload, n);
                if (rc != AMON_OK) {
                    return amon_ws_fail(p, rc, pos, consumed);
                }
            }
        }

        pos += n;
        p->frame_done += n;
        p->message_len += n;

        ev->last = (p->fin && p->frame_done == p->frame_len) ? 1 : 0;

        if (ev->last && p->message_opcode == AMON_WS_OP_TEXT && p->validate_utf8
            && p->utf8_state != 0) {
            /* the message ends inside a character */
            ev->last = 0;
            return amon_ws_fail(p, AMON_EUTF8, pos, consumed);
        }

        if (p->frame_done == p->frame_len) {
            if (p->fin) {
                p->in_message = 0;
            }

            amon_ws_next_frame(p);
        }

        if (n == 0 && !ev->last) {
            /* an empty non-final fragment: nothing to report */
            continue;
        }

        ev->type = AMON_WS_EV_DATA;
        ev->data = payload;
        ev->len = n;
        ev->opcode = p->message_opcode;
        ev->first = p->first_pending;
        ev->message_len = p->message_len;

        p->first_pending = 0;

        *consumed = pos;
        return AMON_OK;
    }
}


/*
 * The usual input, in one step: a whole unfragmented text or binary frame
 * with a payload of 1 to 65535 bytes, all of it at "data", that starts a
 * message and passes every check.  Anything else (an error included) is
 * AMON_AGAIN, "not taken", with the parser untouched: the general path
 * takes it byte by byte and yields the same event for the same frame.
 */
static int
amon_ws_parse_whole(amon_ws_parser_t *p, unsigned char *data, size_t len,
    size_t *consumed, amon_ws_event_t *ev)
{
    size_t   h, n;
    unsigned op, len7, masked;

    op = data[0] & 0x0f;
    len7 = data[1] & 0x7f;
    masked = data[1] >> 7;

    /* FIN, no RSV bit, TEXT or BINARY outside a message, masked as due */
    if ((data[0] & 0xf0) != 0x80
        || (op != AMON_WS_OP_TEXT && op != AMON_WS_OP_BINARY) || p->in_message
        || masked != p->server || len7 == 127 || len7 == 0
        || (op == AMON_WS_OP_TEXT && p->validate_utf8 && !p->utf8_later)) {
        return AMON_AGAIN;
    }

    h = 2;
    n = len7;

    if (len7 == 126) {
        if (len < 4) {
            return AMON_AGAIN;
        }

        n = ((size_t) data[2] << 8) | data[3];
        h = 4;

        if (n < 126) {
            return AMON_AGAIN;
        }
    }

    h += masked ? 4 : 0;

    if (len < h || len - h < n || n > p->max_message) {
        return AMON_AGAIN;
    }

    if (masked) {
        memcpy(p->mask, data + h - 4, 4);
        amon_ws_mask(data + h, n, p->mask, 0);
    }

    p->fin = 1;
    p->masked = masked;
    p->frame_opcode = op;
    p->message_opcode = op;
    p->message_len = n;
    p->utf8_state = 0;
    p->first_pending = 0;

    ev->type = AMON_WS_EV_DATA;
    ev->data = data + h;
    ev->len = n;
    ev->opcode = op;
    ev->first = 1;
    ev->last = 1;
    ev->unchecked = (op == AMON_WS_OP_TEXT && p->validate_utf8);
    ev->message_len = n;

    *consumed = h + n;

    return AMON_OK;
}


/*
 * A header from its first byte with at least two at hand: checked as the
 * byte by byte loop checks it (hdr_have says how many were taken, up to
 * the offending one), and taken whole when it is all there.
 */
static int
amon_ws_header_start(amon_ws_parser_t *p, const unsigned char *d, size_t n)
{
    int rc;

    p->hdr[0] = d[0];
    p->hdr_have = 1;

    rc = amon_ws_check_byte0(p, d[0]);
    if (rc != AMON_OK) {
        return rc;
    }

    p->hdr[1] = d[1];
    p->hdr_have = 2;

    rc = amon_ws_check_byte1(p, d[1]);
    if (rc != AMON_OK) {
        return rc;
    }

    if (n >= p->hdr_need) {
        memcpy(p->hdr + 2, d + 2, p->hdr_need - 2);
        p->hdr_have = p->hdr_need;
    }

    return AMON_OK;
}


static int
amon_ws_check_byte0(amon_ws_parser_t *p, unsigned char b)
{
    unsigned op;

    if (b & 0x70) {
        return AMON_ERSV;
    }

    op = b & 0x0f;

    switch (op) {

    case AMON_WS_OP_CLOSE:
    case AMON_WS_OP_PING:
    case AMON_WS_OP_PONG:
        if (!(b & 0x80)) {
            return AMON_ECTRL_FRAG;
        }
        break;

    case AMON_WS_OP_CONT:
        if (!p->in_message) {
            return AMON_ECONT;
        }
        break;

    case AMON_WS_OP_TEXT:
    case AMON_WS_OP_BINARY:
        if (p->in_message) {
            return AMON_EFRAG;
        }
        break;

    default: return AMON_EOPCODE;
    }

    p->fin = (b & 0x80) ? 1 : 0;
    p->frame_opcode = op;

    return AMON_OK;
}


static int
amon_ws_check_byte1(amon_ws_parser_t *p, unsigned char b)
{
    unsigned len7;

    p->masked = (b & 0x80) ? 1 : 0;

    if (p->masked != p->server) {
        return AMON_EMASK;
    }

    len7 = b & 0x7f;

    if (amon_ws_is_control(p->frame_opcode)) {
        if (len7 > AMON_MAX_CONTROL_PAYLOAD) {
            return AMON_ECTRL_LEN;
        }

        if (p->frame_opcode == AMON_WS_OP_CLOSE && len7 == 1) {
            return AMON_ECLOSE_LEN;
        }
    }

    p->hdr_need = 2 + (p->masked ? 4 : 0);

    if (len7 == 126) {
        p->hdr_need += 2;

    } else if (len7 == 127) {
        p->hdr_need += 8;
    }

    return AMON_OK;
}


static int
amon_ws_header_done(amon_ws_parser_t *p)
{
    unsigned       i, len7;
    uint64_t       v;
    unsigned char *q;

    len7 = p->hdr[1] & 0x7f;
    q = p->hdr + 2;

    if (len7 == 126) {
        v = ((uint64_t) q[0] << 8) | q[1];
        q += 2;

        if (v < 126) {
            return AMON_ELEN;
        }

    } else if (len7 == 127) {
        v = 0;
        for (i = 0; i < 8; i++) {
            v = (v << 8) | q[i];
        }
        q += 8;

        if (v >> 63) {
            return AMON_ELEN;
        }

        if (v <= 0xffff) {
            return AMON_ELEN;
        }

    } else {
        v = len7;
    }

    if (p->masked) {
        memcpy(p->mask, q, 4);
    }

    p->frame_len = v;
    p->frame_done = 0;

    if (amon_ws_is_control(p->frame_opcode)) {
        return AMON_OK;
    }

    if (p->frame_opcode != AMON_WS_OP_CONT) {
        p->in_message = 1;
        p->first_pending = 1;
        p->message_opcode = p->frame_opcode;
        p->message_len = 0;
        p->utf8_state = 0;
    }

    /* refuse before any byte of the payload is delivered */
    if (v > p->max_message || p->message_len > p->max_message - v) {
        return AMON_ETOOBIG;
    }

    return AMON_OK;
}


static int
amon_ws_control_done(amon_ws_parser_t *p, amon_ws_event_t *ev)
{
    size_t len;

    len = (size_t) p->frame_len;

    ev->opcode = p->frame_opcode;
    ev->data = p->ctrl;
    ev->len = len;
    ev->first = 1;
    ev->last = 1;

    switch (p->frame_opcode) {

    case AMON_WS_OP_PING: ev->type = AMON_WS_EV_PING; return AMON_OK;

    case AMON_WS_OP_PONG: ev->type = AMON_WS_EV_PONG; return AMON_OK;

    default: /* AMON_WS_OP_CLOSE */ break;
    }

    ev->type = AMON_WS_EV_CLOSE;

    if (len == 0) {
        ev->close_code = AMON_WS_CLOSE_NO_STATUS;
        return AMON_OK;
    }

    /* len == 1 was refused with the header */

    ev->close_code = (uint16_t) ((p->ctrl[0] << 8) | p->ctrl[1]);

    if (!amon_ws_close_code_valid(ev->close_code)) {
        return AMON_ECLOSE_CODE;
    }

    ev->data = p->ctrl + 2;
    ev->len = len - 2;

    return amon_utf8_validate(ev->data, ev->len);
}


static int
amon_ws_fail(amon_ws_parser_t *p, int rc, size_t pos, size_t *consumed)
{
    p->state = AMON_WS_ST_ERROR;
    p->error = rc;

    *consumed = pos;

    return rc;
}


static void
amon_ws_next_frame(amon_ws_parser_t *p)
{
    p->state = AMON_WS_ST_HEADER;
    p->hdr_have = 0;
    p->hdr_need = 2;
    p->frame_len = 0;
    p->frame_done = 0;
}


int
amon_ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999) {
        return 1;
    }

    /* 1004 is reserved, 1005, 1006 and 1015 must never be sent */
    if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)) {
        return 1;
    }

    return 0;
}


size_t
amon_ws_header_size(uint64_t len, int masked)
{
    size_t n;

    n = 2;

    if (len > 0xffff) {
        n += 8;

    } else if (len >= 126) {
        n += 2;
    }

    return masked ? n + 4 : n;
}


size_t
amon_ws_write_header(unsigned char *dst, int fin, unsigned opcode, uint64_t len,
    const unsigned char *mask)
{
    size_t   n;
    unsigned i;

    dst[0] = (unsigned char) ((fin ? 0x80 : 0) | (opcode & 0x0f));
    dst[1] = mask ? 0x80 : 0;

    if (len > 0xffff) {
        dst[1] |= 127;
        for (i = 0; i < 8; i++) {
            dst[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        }
        n = 10;

    } else if (len >= 126) {
        dst[1] |= 126;
        dst[2] = (unsigned char) (len >> 8);
        dst[3] = (unsigned char) len;
        n = 4;

    } else {
        dst[1] |= (unsigned char) len;
        n = 2;
    }

    if (mask) {
        memcpy(dst + n, mask, 4);
        n += 4;
    }

    return n;
}


size_t
amon_ws_write_frame(unsigned char *dst, size_t cap, int fin, unsigned opcode,
    const unsigned char *payload, size_t len, const unsigned char *mask)
{
    size_t n;

    switch (opcode) {

    case AMON_WS_OP_CONT:
    case AMON_WS_OP_TEXT:
    case AMON_WS_OP_BINARY: break;

    case AMON_WS_OP_CLOSE:
    case AMON_WS_OP_PING:
    case AMON_WS_OP_PONG:
        if (len > AMON_MAX_CONTROL_PAYLOAD || !fin) {
            return 0;
        }
        break;

    default: return 0;
    }

    if ((uint64_t) len >> 63) {
        return 0;
    }

    n = amon_ws_header_size(len, mask != NULL);

    if (cap < n || len > cap - n) {
        return 0;
    }

    n = amon_ws_write_header(dst, fin, opcode, len, mask);

    if (len == 0) {
        return n;
    }

    if (mask) {
        amon_ws_mask_copy(dst + n, payload, len, mask, 0);

    } else {
        memcpy(dst + n, payload, len);
    }

    return n + len;
}


size_t
amon_ws_write_close(unsigned char *dst, size_t cap, uint16_t code,
    const char *reason, const unsigned char *mask)
{
    size_t        len;
    unsigned char payload[AMON_MAX_CONTROL_PAYLOAD];

    len = reason ? strlen(reason) : 0;

    if (code == 0) {
        if (len) {
            return 0;
        }

        return amon_ws_write_frame(
            dst, cap, 1, AMON_WS_OP_CLOSE, NULL, 0, mask);
    }

    if (!amon_ws_close_code_valid(code)) {
        return 0;
    }

    if (len > AMON_MAX_CONTROL_PAYLOAD - 2) {
        len = AMON_MAX_CONTROL_PAYLOAD - 2;

        /* do not cut a character: back up over continuation bytes */
        while (len && ((unsigned char) reason[len] & 0xc0) == 0x80) {
            len--;
        }
    }

    if (len
        && amon_utf8_validate((const unsigned char *) reason, len) != AMON_OK) {
        return 0;
    }

    payload[0] = (unsigned char) (code >> 8);
    payload[1] = (unsigned char) code;

    if (len) {
        memcpy(payload + 2, reason, len);
    }

    return amon_ws_write_frame(
        dst, cap, 1, AMON_WS_OP_CLOSE, payload, len + 2, mask);
}

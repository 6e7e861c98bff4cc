/*
 * Copyright (C) AMonitor authors
 *
 * RFC 6455 frame codec: an incremental, sans-I/O decoder that validates
 * every rule of section 5 (and UTF-8 of text messages and close reasons),
 * and encoders that write into caller buffers.
 */

#ifndef AMON_WS_FRAME_H
#define AMON_WS_FRAME_H


#include "amon_core.h"

#ifdef __cplusplus
extern "C" {
#endif


#define AMON_WS_OP_CONT   0x0
#define AMON_WS_OP_TEXT   0x1
#define AMON_WS_OP_BINARY 0x2
#define AMON_WS_OP_CLOSE  0x8
#define AMON_WS_OP_PING   0x9
#define AMON_WS_OP_PONG   0xa

#define AMON_WS_CLOSE_NORMAL       1000
#define AMON_WS_CLOSE_GOING_AWAY   1001
#define AMON_WS_CLOSE_PROTOCOL     1002
#define AMON_WS_CLOSE_UNSUPPORTED  1003
#define AMON_WS_CLOSE_NO_STATUS    1005 /* never sent on the wire */
#define AMON_WS_CLOSE_ABNORMAL     1006 /* never sent on the wire */
#define AMON_WS_CLOSE_INVALID_DATA 1007
#define AMON_WS_CLOSE_POLICY       1008
#define AMON_WS_CLOSE_TOO_BIG      1009
#define AMON_WS_CLOSE_INTERNAL     1011
#define AMON_WS_CLOSE_RESTART      1012 /* service restart (IANA registry) */
#define AMON_WS_CLOSE_UNAUTHORIZED 4401


/* What amon_ws_parse() reports. */
typedef enum {
    AMON_WS_EV_NONE = 0,
    AMON_WS_EV_DATA, /* a chunk of a text/binary message */
    AMON_WS_EV_PING, /* a complete ping; payload in ev->data */
    AMON_WS_EV_PONG, /* a complete pong */
    AMON_WS_EV_CLOSE /* a complete, validated close frame */
} amon_ws_event_e;


typedef struct {
    amon_ws_event_e type;

    /*
     * AMON_WS_EV_DATA: "data" points into the caller's input buffer, already
     * unmasked in place; "len" may be 0.  "opcode" is the message's opcode
     * (TEXT or BINARY) on every chunk of it, "first" is set on its first
     * chunk and "last" on its final chunk; "message_len" is the total
     * length of the message so far, this chunk included.  "unchecked":
     * a whole text message in this one chunk whose UTF-8 was not checked
     * (the parser's "utf8_later"); the caller must check it.
     *
     * Control events: "data"/"len" is the payload, held in the parser (valid
     * until the next call).  For CLOSE, "close_code" is the status code
     * (1005 when the payload was empty) and "data"/"len" the reason.
     */
    const unsigned char *data;
    size_t               len;
    unsigned             opcode;
    unsigned             first : 1;
    unsigned             last : 1;
    unsigned             unchecked : 1;
    uint64_t             message_len;
    uint16_t             close_code;
} amon_ws_event_t;


typedef struct {
    /* set by the caller before the first call (amon_ws_parser_init) */
    uint64_t max_message; /* whole message, all fragments */
    unsigned server : 1; /* input from a client: masked */
    unsigned validate_utf8 : 1;
    /*
     * A text message that is one whole frame in one call is left to the
     * caller (ev->unchecked), who reads all of it anyway: a strict JSON
     * decoder that accepts it has checked its UTF-8 (RFC 8259 strings).
     * Fragments and frames split over calls are checked here as before.
     */
    unsigned utf8_later : 1;

    /* decoder state; private */
    unsigned      state;
    unsigned char hdr[AMON_MAX_FRAME_HEADER];
    unsigned      hdr_have;
    unsigned      hdr_need;
    unsigned      fin : 1;
    unsigned      masked : 1;
    unsigned      in_message : 1;
    unsigned      first_pending : 1;
    unsigned      frame_opcode;
    unsigned      message_opcode;
    unsigned char mask[4];
    uint64_t      frame_len;
    uint64_t      frame_done;
    uint64_t      message_len;
    uint32_t      utf8_state;
    unsigned char ctrl[AMON_MAX_CONTROL_PAYLOAD];
    int           error;
} amon_ws_parser_t;


/*
 * Prepare a parser.  "server" != 0: frames come from a client and must be
 * masked; 0: frames come from a server and must not be.  "max_message"
 * bounds the payload of a whole message (0 selects the default 1 MiB).
 */
void amon_ws_parser_init(amon_ws_parser_t *p, int server, uint64_t max_message);

/*
 * Feed "len" bytes.  Payload bytes are unmasked in place, so "data" must be
 * writable.  Consumes input until one event is ready and reports it:
 *
 *   AMON_OK     an event is in *ev; *consumed bytes were used, call again
 *               with the rest (which may be empty: a zero-length frame);
 *   AMON_AGAIN  all input consumed (*consumed == len), no event;
 *   < 0         a protocol or limit error; the connection must be closed
 *               with amon_close_code(rc).  The parser stays in error state
 *               and returns the same code on every later call.
 *
 * A message larger than max_message fails with AMON_ETOOBIG as soon as a
 * frame header announces it, before any of its payload is delivered.
 */
int amon_ws_parse(amon_ws_parser_t *p, unsigned char *data, size_t len,
    size_t *consumed, amon_ws_event_t *ev);


/*
 * Encoding.  "mask" == NULL writes a server frame (unmasked); otherwise the
 * 4-byte key is put in the header and the payload is masked while copied.
 */

/* Size of a frame header for a payload of "len" bytes. */
size_t amon_ws_header_size(uint64_t len, int masked);

/* Write a header; returns its size.  "dst" must hold 14 bytes. */
size_t amon_ws_write_header(unsigned char *dst, int fin, unsigned opcode,
    uint64_t len, const unsigned char *mask);

/*
 * Write a whole frame: header plus payload (masked when "mask" is set).
 * Returns the number of bytes written, or 0 when "cap" is too small or
 * the arguments are invalid (control frame > 125 bytes, bad opcode).
 */
size_t amon_ws_write_frame(unsigned char *dst, size_t cap, int fin,
    unsigned opcode, const unsigned char *payload, size_t len,
    const unsigned char *mask);

/*
 * Write a close frame with "code" and an optional UTF-8 "reason" (cut at a
 * character boundary to fit 123 bytes).  code 0 writes an empty close.
 * Returns bytes written (at most 2 + 4 + 125), 0 on invalid arguments.
 */
size_t amon_ws_write_close(unsigned char *dst, size_t cap, uint16_t code,
    const char *reason, const unsigned char *mask);

/*
 * XOR "len" bytes with the mask key, starting at key offset "offset"
 * (0..3), a machine word at a time.  Returns the offset for the next byte,
 * so a payload can be (un)masked in pieces.
 */
unsigned amon_ws_mask(unsigned char *data, size_t len,
    const unsigned char mask[4], unsigned offset);

/* Same, copying from "src" into "dst": the same buffer, or not overlapping. */
unsigned amon_ws_mask_copy(unsigned char *dst, const unsigned char *src,
    size_t len, const unsigned char mask[4], unsigned offset);

/* Is "code" a status code a peer may send in a close frame? */
int amon_ws_close_code_valid(unsigned code);


#ifdef __cplusplus
}
#endif

#endif /* AMON_WS_FRAME_H */

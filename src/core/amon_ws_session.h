/*
 * Copyright (C) AMonitor authors
 *
 * WebSocket session layer above the frame codec, sans-I/O: whole messages
 * (continuation frames reassembled within the message limit), automatic
 * pong, close echo, and the close code for every protocol fault.  Every
 * endpoint (module, SDK, CLI, load generator) follows these rules.
 */

#ifndef AMON_WS_SESSION_H
#define AMON_WS_SESSION_H


#include "amon_core.h"
#include "amon_ws_frame.h"

#ifdef __cplusplus
extern "C" {
#endif


/*
 * After a fragmented message the reassembly buffer is kept for the next
 * one unless it grew beyond this: a rare huge message does not pin its
 * memory for the life of the connection.
 */
#define AMON_WS_MESSAGE_KEEP (256 * 1024)

/* The largest control frame: header with mask key plus 125 bytes. */
#define AMON_WS_CONTROL_FRAME_MAX (2 + 4 + AMON_MAX_CONTROL_PAYLOAD)


/* What amon_ws_session_feed() reports. */
typedef enum {
    AMON_WS_SESSION_NONE = 0,
    AMON_WS_SESSION_MESSAGE, /* a whole text or binary message */
    AMON_WS_SESSION_PING, /* a ping; the pong is in "reply" */
    AMON_WS_SESSION_PONG, /* a pong */
    AMON_WS_SESSION_CLOSE /* the peer closed; see amon_ws_session_feed() */
} amon_ws_session_event_e;


typedef struct {
    amon_ws_session_event_e type;

    /*
     * MESSAGE: "opcode" is AMON_WS_OP_TEXT (valid UTF-8) or _BINARY and
     * "data"/"len" the payload, never NULL.  An unfragmented message
     * points into the caller's input (unmasked in place); a fragmented
     * one into the session's reassembly buffer.  Valid until the next
     * call for the session.
     *
     * "utf8_unchecked": a text message whose UTF-8 the session left to
     * the caller (amon_ws_session_utf8_later()).
     *
     * PING, PONG: "data"/"len" is the control payload.  CLOSE: the peer's
     * "close_code" (1005 when it sent none) and reason in "data"/"len".
     */
    unsigned       opcode;
    unsigned char *data;
    size_t         len;
    uint16_t       close_code;
    unsigned       utf8_unchecked;

    /*
     * Bytes the caller must write to the peer, in order with its other
     * output (a pong, a close reply); "reply_len" 0: nothing.  Valid until
     * the next call for the session.
     */
    const unsigned char *reply;
    size_t               reply_len;
} amon_ws_session_event_t;


/*
 * Fills "len" bytes with a fresh masking key; client sessions only.  The
 * caller decides where randomness comes from (ngx_random, getrandom).
 */
typedef void (*amon_ws_mask_fn)(void *data, unsigned char *key, size_t len);


typedef struct {
    amon_ws_parser_t        parser;
    amon_buf_t              message; /* fragments of the current message */
    const amon_allocator_t *allocator;
    amon_ws_mask_fn         mask_fn;
    void                   *mask_data;
    size_t                  max_message;

    unsigned client : 1;
    unsigned close_sent : 1; /* our close frame was produced */
    unsigned close_received : 1;
    unsigned failed : 1; /* a protocol or limit error */
    unsigned delivered : 1; /* "message" was handed out: reset it */

    int           error;
    unsigned char reply[AMON_WS_CONTROL_FRAME_MAX];
} amon_ws_session_t;


/*
 * Prepare a session.  "client" != 0: we are the client, so our frames are
 * masked with keys from "mask_fn" and input must not be masked; 0: the
 * server side.  "max_message" bounds a whole message (0: 1 MiB); beyond
 * it the session fails with AMON_ETOOBIG (close 1009), never truncates.
 * "a" (NULL: malloc) allocates the reassembly buffer.
 */
void amon_ws_session_init(amon_ws_session_t *s, int client, size_t max_message,
    const amon_allocator_t *a, amon_ws_mask_fn mask_fn, void *mask_data);

/*
 * Leave the UTF-8 check of a text message that arrives whole in one read
 * to the caller (ev->utf8_unchecked), for a caller that decodes every
 * message strictly as JSON: text it decodes is valid UTF-8.  The caller
 * must check any such message it does not decode (amon_utf8_validate())
 * and, when that fails, end the session with amon_ws_session_reject().
 * Fragmented messages and frames split over reads are checked as before.
 */
void amon_ws_session_utf8_later(amon_ws_session_t *s);

/*
 * Fail the session for a fault the caller found in a message ("rc", e.g.
 * AMON_EUTF8): as amon_ws_session_feed() does for its own faults, with
 * the close frame in ev->reply.  Returns "rc".
 */
int amon_ws_session_reject(
    amon_ws_session_t *s, int rc, amon_ws_session_event_t *ev);

/* Release the reassembly buffer.  The session may be initialised again. */
void amon_ws_session_free(amon_ws_session_t *s);

/*
 * Feed "len" bytes read from the peer ("data" must be writable: payload is
 * unmasked in place).  Returns:
 *
 *   AMON_OK     one event in *ev; *consumed bytes were used, call again
 *               with the rest;
 *   AMON_AGAIN  all input consumed, no event (write ev->reply if set);
 *   < 0         a protocol or limit error: write ev->reply (a close frame
 *               with amon_close_code(rc) and amon_strerror(rc) as reason)
 *               and close the connection.  Later calls return the same.
 *
 * CLOSE: when the peer started the close, ev->reply echoes its code (a
 * close without a code is answered with 1000, no reason); when we had
 * started it, there is no reply.  Either way, close the connection once
 * the reply is written; later input is ignored.  After our own close
 * (amon_ws_session_close) messages are dropped and pings not answered.
 */
int amon_ws_session_feed(amon_ws_session_t *s, unsigned char *data, size_t len,
    size_t *consumed, amon_ws_session_event_t *ev);

/*
 * Write a frame of ours: masked on a client session.  Returns bytes
 * written into "dst", or 0 when "cap" is too small (at most
 * amon_ws_header_size(len, client) + len bytes are needed), the opcode is
 * invalid or our close was sent.
 */
size_t amon_ws_session_frame(amon_ws_session_t *s, unsigned char *dst,
    size_t cap, unsigned opcode, const unsigned char *data, size_t len);

/*
 * Start the close handshake: write our close frame (at most
 * AMON_WS_CONTROL_FRAME_MAX bytes) with "code" (not a code a peer may
 * send, 0 included: 1000) and an optional "reason".  Returns its size, or
 * 0 when a close was already sent or "cap" is too small.
 */
size_t amon_ws_session_close(amon_ws_session_t *s, unsigned char *dst,
    size_t cap, uint16_t code, const char *reason);

/* The code to echo for a peer's close code: 1005 (none) -> 1000. */
uint16_t amon_ws_close_reply_code(uint16_t peer_code);


#ifdef __cplusplus
}
#endif

#endif /* AMON_WS_SESSION_H */

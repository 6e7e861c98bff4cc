/*
 * Copyright (C) AMonitor authors
 *
 * Envelope codec.  Decoding validates a whole JSON text (or protobuf
 * Envelope) and extracts the routing fields without re-serialising, so the
 * bytes that are forwarded stay the bytes that arrived.  Encoding builds
 * the envelopes the agent, the SDK and the CLI make themselves.
 */

#ifndef AMON_ENVELOPE_H
#define AMON_ENVELOPE_H


#include "amon_core.h"
#include "amon_json_write.h"

#ifdef __cplusplus
extern "C" {
#endif


typedef enum {
    AMON_MSG_UNKNOWN = 0, /* a type we do not know: allowed */
    AMON_MSG_REGISTER,
    AMON_MSG_HEARTBEAT,
    AMON_MSG_EVENT,
    AMON_MSG_ACTION,
    AMON_MSG_ACTION_ACK,
    AMON_MSG_ERROR,
    AMON_MSG_TARGET_STATUS, /* agent -> panel: target up/down */
    AMON_MSG_ACTION_STATUS, /* panel -> agent -> panel: an action's outcome */
    AMON_MSG_SUBSCRIBE, /* panel -> agent: the targets it wants */
    AMON_MSG_SUBSCRIBED /* agent -> panel: the resulting set */
} amon_msg_type_e;


/* whether a reply about an action is its last one ("final") */
#define AMON_FINAL_ABSENT 0
#define AMON_FINAL_NO     1
#define AMON_FINAL_YES    2


/* Room for unescaped copies of string fields that contained escapes. */
#define AMON_ENVELOPE_SCRATCH (8 * AMON_MAX_ID_LEN + 2 * AMON_MAX_URL_LEN)


typedef struct {
    amon_msg_type_e type;
    unsigned        binary : 1; /* decoded from protobuf */
    unsigned        has_timestamp : 1;
    unsigned        has_payload : 1;
    unsigned        has_success : 1;
    unsigned        has_final : 1; /* action_ack, error: "final" given */
    unsigned        final : 1;
    /* members only the agent sets, found in the message */
    unsigned has_source : 1; /* "source" (protobuf: a non-empty one) */
    unsigned final_member : 1; /* JSON: payload "final", null too */

    /*
     * String fields are unescaped UTF-8.  They point into the input when it
     * held them verbatim, else into "scratch" (or into protobuf-c memory
     * for a binary envelope); valid until amon_envelope_release() and as
     * long as the input.  An absent field has data == NULL, len == 0.
     */
    amon_str_t type_name;
    amon_str_t msg_id;
    amon_str_t trace_id;
    amon_str_t target_id;
    int64_t    timestamp;

    /* JSON: the raw text of "payload"; protobuf: its serialized bytes */
    amon_str_t payload;

    /* payload fields, by type */
    amon_str_t action; /* action */
    amon_str_t params; /* action: raw JSON / bytes */
    amon_str_t target_url; /* action */
    amon_str_t action_msg_id; /* action_ack, action_status */
    int        success; /* action_ack */
    amon_str_t message; /* action_ack, error */
    amon_str_t code; /* error */
    amon_str_t sdk_url; /* register */
    amon_str_t event_name; /* event */
    amon_str_t payload_target_id;

    /* private */
    void                   *pb_envelope;
    void                   *pb_payload;
    const amon_allocator_t *allocator;
    size_t                  scratch_used;
    unsigned char           scratch[AMON_ENVELOPE_SCRATCH];
} amon_envelope_t;


/*
 * Decode a JSON text envelope.  The input need not be NUL-terminated and is
 * not modified.  Validates the whole text (RFC 8259 grammar, UTF-8,
 * nesting at most AMON_MAX_JSON_DEPTH), then the envelope rules:
 *   AMON_EJSON        not JSON (or trailing garbage)
 *   AMON_ENOTOBJ      JSON, but not an object
 *   AMON_ENO_MSG_ID   msg_id absent, null or empty
 *   AMON_ENO_TYPE     type absent, null or empty
 *   AMON_EFIELD_TYPE  a known field has the wrong JSON type
 *   AMON_EFIELD_LONG  an id over AMON_MAX_ID_LEN or a URL over
 *                     AMON_MAX_URL_LEN bytes
 *   AMON_EDEPTH       nesting too deep
 * No memory is allocated.
 */
int amon_envelope_decode_json(
    amon_envelope_t *env, const unsigned char *p, size_t len);

/*
 * Decode a protobuf Envelope and the payload message its type names.
 * Allocates through "a" (NULL: malloc); call amon_envelope_release().
 * Returns AMON_OK, AMON_EPROTOBUF, AMON_ENOMEM or the field errors above.
 */
int amon_envelope_decode_pb(amon_envelope_t *env, const unsigned char *p,
    size_t len, const amon_allocator_t *a);

/* Free what a decode allocated; safe to call on any decoded envelope. */
void amon_envelope_release(amon_envelope_t *env);

amon_msg_type_e amon_msg_type(amon_str_t name);
const char     *amon_msg_type_name(amon_msg_type_e type);


/*
 * Encoding.  Every builder appends to "out" (growing it through "a", at
 * most to "max" bytes) and returns AMON_OK, AMON_ETOOBIG or AMON_ENOMEM.
 * String arguments are counted UTF-8 and are escaped as JSON needs;
 * absent ones (data == NULL) are left out.  "payload_json" must be valid
 * JSON text; it is copied verbatim.
 */
/* an envelope's timestamp that is left out (any other int64 is written) */
#define AMON_TIMESTAMP_NONE INT64_MIN

typedef struct {
    amon_str_t msg_id;
    amon_str_t trace_id;
    amon_str_t type;
    amon_str_t target_id;
    int64_t    timestamp; /* ms; AMON_TIMESTAMP_NONE: left out */
    amon_str_t payload_json;
} amon_envelope_out_t;

int amon_envelope_build_json(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *e);

/* The same envelope as a protobuf Envelope ("payload" holds bytes). */
int amon_envelope_build_pb(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *e);

/*
 * An action_ack.  For the agent's duplicate answer pass
 * message "duplicate ignored" and duplicate = 1; "original" (may be an
 * absent string) is the stored result, a JSON object text that is copied
 * as "original" in the payload.
 */
typedef struct {
    amon_str_t msg_id; /* the ack's own id */
    amon_str_t trace_id;
    amon_str_t target_id;
    int64_t    timestamp;
    amon_str_t action_msg_id;
    int        success;
    amon_str_t message;
    int        duplicate; /* adds "duplicate":true */
    amon_str_t state; /* a duplicate's: done, pending, failed (or absent) */
    amon_str_t original; /* JSON object text or absent */
    int        final; /* AMON_FINAL_* */
} amon_ack_out_t;

int amon_envelope_build_ack(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_ack_out_t *ack, int binary);


/*
 * An error envelope: msg_id is the offending message's id (may be absent:
 * the error then gets a random one); "code" a NUL-terminated code such as
 * "UNKNOWN_TARGET" (NULL: left out).
 */
int amon_envelope_build_error(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t msg_id, amon_str_t target_id,
    int64_t timestamp, const char *code, amon_str_t message, int binary);

/*
 * An error about a message: its msg_id and trace_id (either may be absent;
 * an absent msg_id gets a fresh one), the target it concerns, and for an
 * action "action_msg_id" (then "success":false too, so that errors and acks
 * share one shape) and "final".
 */
typedef struct {
    amon_str_t  msg_id;
    amon_str_t  trace_id;
    amon_str_t  target_id;
    int64_t     timestamp;
    const char *code;
    amon_str_t  message;
    amon_str_t  action_msg_id;
    int         final; /* AMON_FINAL_* */
} amon_error_out_t;

int amon_envelope_build_error_out(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_error_out_t *err, int binary);

/*
 * The answer to an action_status query: msg_id and trace_id are the
 * query's; "state" unknown, pending, done or failed; "result" the stored
 * result (JSON object text) or absent.
 */
int amon_envelope_build_action_status(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *head,
    amon_str_t action_msg_id, const char *state, amon_str_t result, int binary);

/*
 * The answer to a subscribe: "subscribed" with the panel's set of target
 * ids and patterns ("n" counted strings) as payload.targets.  In protobuf
 * the payload holds that JSON text (there is no message in the schema).
 */
int amon_envelope_build_subscribed(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *head,
    const amon_str_t *targets, size_t n, int binary);


/*
 * A target_status envelope (JSON only; the agent tells panels that a
 * target is "up" or "down"), with what the agent knows of that state:
 *   {"msg_id":M,"type":"target_status","target_id":T,"timestamp":N,
 *    "payload":{"target_id":T,"state":S,"url":U,"since":N,"reason":R}}
 * An absent target_id is left out of the head and written as "" in the
 * payload; a "timestamp" of AMON_TIMESTAMP_NONE is left out; "since" (ms
 * since the epoch of the last change) is left out when < 0, "reason" when
 * reason.data is NULL.
 */
int amon_envelope_build_target_state(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t msg_id, amon_str_t target_id,
    int64_t timestamp, const char *state, amon_str_t url, int64_t since,
    amon_str_t reason);

/*
 * The result of an action as the dedupe store keeps it, a JSON object:
 *   {"success":B[,"code":C][,"message":M]}
 * "code" NULL and "message" NULL are left out; a message pointing to an
 * absent string is written as "".
 */
int amon_envelope_build_result(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, int success, const char *code,
    const amon_str_t *message);

/* The same, led by "action_msg_id" when it is present (an ack's gist). */
int amon_envelope_build_action_result(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t action_msg_id, int success,
    const char *code, const amon_str_t *message);

/*
 * The decoded envelope "env" in the other encoding: to_binary, a protobuf
 * Envelope from a JSON one; else JSON text from a protobuf one (its
 * payload message written by type, bytes holding JSON kept as JSON).
 * "source" (may be absent) becomes the first JSON member or Envelope field
 * 7.  Fields outside the schema are not carried.  Appends to "out";
 * AMON_OK, AMON_ETOOBIG, AMON_ENOMEM, AMON_EINVAL (wrong direction).
 */
int amon_envelope_convert(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_t *env, amon_str_t source,
    int to_binary);

/*
 * Encode a payload for the protobuf form from its JSON text, as PROTOCOL.md
 * maps it ("params" and "data" become JSON text bytes, metrics values are
 * strings).  Used when a JSON peer's message must reach a binary peer.
 */
int amon_payload_json_to_pb(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_msg_type_e type, amon_str_t json);

/*
 * A random (version 4) UUID as AMON_UUID_LEN lowercase characters, not
 * terminated.
 */
void amon_uuid4(
    const unsigned char random16[16], unsigned char out[AMON_UUID_LEN]);


#ifdef __cplusplus
}
#endif

#endif /* AMON_ENVELOPE_H */

/*
 * Copyright (C) AMonitor authors
 *
 * Private to the envelope codec: the protobuf encoder shared by the
 * builders.  Not an API for the module, the SDK or the CLI.
 */

#ifndef AMON_ENVELOPE_PB_H
#define AMON_ENVELOPE_PB_H


#include "amon_envelope.h"


typedef enum {
    AMON_PB_PAYLOAD_JSON = 0, /* head.payload_json, converted by type */
    AMON_PB_PAYLOAD_ACK, /* an ActionAckPayload from "ack" */
    AMON_PB_PAYLOAD_ERROR, /* an ErrorPayload from "code" and "message" */
    AMON_PB_PAYLOAD_STATUS /* an ActionStatusPayload: code = state,
                              message = result, action_msg_id */
} amon_pb_payload_e;


typedef struct {
    amon_envelope_out_t     head;
    amon_pb_payload_e       kind;
    amon_msg_type_e         payload_type;
    const amon_ack_out_t   *ack;
    amon_str_t              code;
    amon_str_t              message;
    amon_str_t              action_msg_id;
    const amon_error_out_t *error; /* ERROR: the rest of the payload */
} amon_pb_env_t;


/*
 * amon_buf_reserve() that also keeps an existing, larger buffer's used
 * length within "max": the builders never leave more than "max" bytes.
 */
static inline int
amon_pb_reserve(
    amon_buf_t *out, size_t need, size_t max, const amon_allocator_t *a)
{
    if (need > max || out->len > max - need) {
        return AMON_ETOOBIG;
    }

    return amon_buf_reserve(out, need, max, a);
}


/*
 * Append a protobuf Envelope.  Returns AMON_OK, AMON_ETOOBIG, AMON_ENOMEM,
 * AMON_EINVAL (a string is not UTF-8) or, for a JSON payload, the error
 * amon_payload_json_to_pb() gives.  Appends nothing on error.
 */
int amon_pb_envelope(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_pb_env_t *pe);


#endif /* AMON_ENVELOPE_PB_H */

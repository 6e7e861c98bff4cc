/*
 * Copyright (C) AMonitor authors
 *
 * What the two halves of envelope decoding share: amon_envelope.c (JSON)
 * and amon_envelope_unpack.c (protobuf, whose JSON payload members are
 * scanned by the JSON half).  Not part of the core's interface.
 */

#ifndef AMON_ENVELOPE_INT_H
#define AMON_ENVELOPE_INT_H

#include "amon_envelope.h"
#include "amon_json.h"


/* no string limit beyond the scratch space ("message") */
#define AMON_ENVELOPE_NO_LIMIT ((size_t) -1)


int amon_envelope_pb_json_payload(amon_envelope_t *env);


/* root members we look at */
enum {
    AMON_ENVELOPE_F_MSG_ID = 0,
    AMON_ENVELOPE_F_TRACE_ID,
    AMON_ENVELOPE_F_TYPE,
    AMON_ENVELOPE_F_TARGET_ID,
    AMON_ENVELOPE_F_TIMESTAMP,
    AMON_ENVELOPE_F_PAYLOAD,
    AMON_ENVELOPE_F_SOURCE,
    AMON_ENVELOPE_F_N
};

/* payload members we look at (which ones matter depends on the type) */
enum {
    AMON_ENVELOPE_P_ACTION = 0,
    AMON_ENVELOPE_P_PARAMS,
    AMON_ENVELOPE_P_TARGET_URL,
    AMON_ENVELOPE_P_ACTION_MSG_ID,
    AMON_ENVELOPE_P_SUCCESS,
    AMON_ENVELOPE_P_MESSAGE,
    AMON_ENVELOPE_P_CODE,
    AMON_ENVELOPE_P_SDK_URL,
    AMON_ENVELOPE_P_EVENT_NAME,
    AMON_ENVELOPE_P_TARGET_ID,
    AMON_ENVELOPE_P_FINAL,
    AMON_ENVELOPE_P_DUPLICATE,
    AMON_ENVELOPE_P_STATE,
    AMON_ENVELOPE_P_N
};


/* the members found by one scan; type AMON_JSON_NONE: not seen */
typedef struct {
    amon_json_value_t root[AMON_ENVELOPE_F_N];
    amon_json_value_t pay[AMON_ENVELOPE_P_N];
    unsigned          payload_only; /* the text is a payload by itself */
    unsigned          dup; /* a member the agent reads was given twice */
    unsigned          dup_root; /* bit 1 << F_*: which root ones */
} amon_envelope_scan_t;


/*
 * Only the types need a start value: a member is read only once its type
 * says it was seen.  Setting them one by one is cheaper than clearing the
 * whole table (a decode runs twice per action).
 */
static inline void
amon_envelope_scan_init(amon_envelope_scan_t *sc, unsigned payload_only)
{
    unsigned i;

    /* a store each, no loop */
#pragma GCC unroll 16
    for (i = 0; i < AMON_ENVELOPE_F_N; i++) {
        sc->root[i].type = AMON_JSON_NONE;
    }

#pragma GCC unroll 16
    for (i = 0; i < AMON_ENVELOPE_P_N; i++) {
        sc->pay[i].type = AMON_JSON_NONE;
    }

    sc->payload_only = payload_only;
    sc->dup = 0;
    sc->dup_root = 0;
}


/* Root and payload member names: AMON_ENVELOPE_F_* / _P_*, or -1. */
int amon_envelope_root_index(const unsigned char *k, size_t len);
int amon_envelope_payload_index(const unsigned char *k, size_t len);

/*
 * The usual envelope text (amon_envelope_fast.c): an object whose keys
 * have no escapes and whose members the agent reads are given once, read
 * into "sc" as amon_json_scan() with amon_envelope_member() would, in one
 * walk.  AMON_AGAIN for any other text, valid or not (then "sc" holds
 * part of it); the scan with the member callback then says what it is.
 */
int amon_envelope_scan_fast(const unsigned char *p, size_t len,
    amon_envelope_scan_t *sc, amon_json_value_t *root);

/*
 * The members of a JSON envelope text into "sc" (root: the root value):
 * by the walk above when "fast" and it takes the text, else by the
 * scanner, whose result (AMON_OK or why not) is returned.  Both ways give
 * the same "sc" for a text the walk takes (the tests compare them).
 */
int amon_envelope_scan_json(const unsigned char *p, size_t len,
    amon_envelope_scan_t *sc, amon_json_value_t *root, unsigned fast);

/* Did two scans find the same members and root value?  (For the tests.) */
int amon_envelope_scan_same(const amon_envelope_scan_t *a,
    const amon_json_value_t *ar, const amon_envelope_scan_t *b,
    const amon_json_value_t *br);


#endif /* AMON_ENVELOPE_INT_H */

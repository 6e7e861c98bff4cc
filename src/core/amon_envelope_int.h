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


/* no string limit beyond the scratch space ("message") */
#define AMON_ENVELOPE_NO_LIMIT ((size_t) -1)


int amon_envelope_pb_json_payload(amon_envelope_t *env);


#endif /* AMON_ENVELOPE_INT_H */

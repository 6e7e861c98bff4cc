/*
 * Copyright (C) AMonitor authors
 *
 * The answer to a panel's subscribe: "subscribed" with the set of target
 * ids and patterns the panel now receives.
 */

#include <string.h>

#include "amon_envelope.h"


int
amon_envelope_build_subscribed(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *head,
    const amon_str_t *targets, size_t n, int binary)
{
    int                 rc;
    size_t              i;
    amon_buf_t          payload;
    amon_json_w_t       w;
    amon_envelope_out_t e;
    static const char   type[] = "subscribed";

    memset(&payload, 0, sizeof(payload));

    amon_json_w_init(&w, &payload, max, a);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "targets");
    amon_json_w_array_begin(&w);

    for (i = 0; i < n; i++) {
        amon_json_w_string(&w, targets[i]);
    }

    amon_json_w_array_end(&w);
    amon_json_w_object_end(&w);

    rc = amon_json_w_finish(&w);

    if (rc == AMON_OK) {
        e = *head;
        e.type.data = (const unsigned char *) type;
        e.type.len = sizeof(type) - 1;
        e.payload_json.data = payload.data;
        e.payload_json.len = payload.len;

        rc = binary ? amon_envelope_build_pb(out, max, a, &e)
                    : amon_envelope_build_json(out, max, a, &e);
    }

    amon_buf_free(&payload, a);

    return rc;
}

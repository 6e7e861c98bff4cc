/*
 * Copyright (C) AMonitor authors
 *
 * Protocol core micro-benchmark: frame parsing with unmasking (server
 * side), raw masking, and envelope decoding.  Each case runs for at least
 * BENCH_SECONDS (default 1.5, never under 1) of measured time on one core.
 * "--strict" makes a missed target an exit status of 1.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amon_core.h"
#include "amon_envelope.h"
#include "amon_ws_frame.h"


/* 1 MiB stays in the L2 cache; 64 MiB does not */
#define BENCH_BUF     (1024 * 1024)
#define BENCH_BUF_BIG (64 * 1024 * 1024)


typedef struct {
    double seconds;
    double bytes;
    double ops;
} bench_result_t;


static double bench_seconds = 1.5;
static int    bench_missed;

static const unsigned char bench_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* a panel's action, 250 bytes */
static const char bench_action[] =
    "{\"msg_id\":\"6f1c2a9e-0d4b-4c5e-9a51-3b7f0e2d8c11\","
    "\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\",\"type\":\"action\","
    "\"target_id\":\"demo-target-a\",\"timestamp\":1764120000000,"
    "\"payload\":{\"action\":\"restart\",\"params\":{\"from\":\"panel\"},"
    "\"target_url\":\"ws://127.0.0.1:8765/\"}}";

/* an SDK's heartbeat with metrics */
static const char bench_heartbeat[] =
    "{\"msg_id\":\"0b8e4c1f-7a2d-4e9b-8c3f-5d6a7b8c9d0e\",\"type\":"
    "\"heartbeat\","
    "\"target_id\":\"demo-target-a\",\"timestamp\":1764120005000,"
    "\"payload\":{\"target_id\":\"demo-target-a\",\"status\":\"up\","
    "\"metrics\":{\"cpu_percent\":\"12.5\",\"rss_bytes\":\"73400320\","
    "\"open_fds\":\"42\",\"uptime_s\":\"86400\",\"queue_depth\":\"0\","
    "\"requests_total\":\"1234567\"}}}";


static double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void
bench_report(
    const char *name, bench_result_t *r, double target, const char *unit)
{
    double mbs, ops, value;

    mbs = r->bytes / r->seconds / 1e6;
    ops = r->ops / r->seconds;
    value = (unit[0] == 'M') ? mbs : ops;

    printf(
        "%-46s %10.1f MB/s %12.0f ops/s  (%.2f s)", name, mbs, ops, r->seconds);

    if (target > 0) {
        printf("  target >= %.0f %s: %s", target, unit,
            value >= target ? "met" : "MISSED");
        if (value < target) {
            bench_missed = 1;
        }
    }

    printf("\n");
}


/* Back-to-back masked frames of "size" payload bytes filling "buf". */
static size_t
bench_frames(unsigned char *buf, size_t cap, size_t size, unsigned opcode,
    size_t *nframes)
{
    size_t         i, n, len;
    unsigned char *payload;

    payload = malloc(size);
    if (payload == NULL) {
        exit(2);
    }

    /* printable ASCII, so that text frames pass UTF-8 validation */
    for (i = 0; i < size; i++) {
        payload[i] = (unsigned char) ('a' + i % 26);
    }

    len = 0;
    *nframes = 0;

    for (;;) {
        n = amon_ws_write_frame(
            buf + len, cap - len, 1, opcode, payload, size, bench_mask);
        if (n == 0) {
            break;
        }
        len += n;
        (*nframes)++;
    }

    free(payload);

    return len;
}


/*
 * Parse (and so unmask in place) a buffer of frames again and again.  The
 * masked bytes are restored before each pass, outside the measured time.
 */
static void
bench_parse(
    const char *name, size_t size, unsigned opcode, size_t total, double target)
{
    int              rc;
    size_t           len, off, consumed, nframes;
    double           t0;
    unsigned char   *pristine, *work;
    bench_result_t   r;
    amon_ws_parser_t p;
    amon_ws_event_t  ev;

    pristine = malloc(total);
    work = malloc(total);
    if (pristine == NULL || work == NULL) {
        exit(2);
    }

    len = bench_frames(pristine, total, size, opcode, &nframes);
    memset(&r, 0, sizeof(r));

    while (r.seconds < bench_seconds) {
        memcpy(work, pristine, len);
        amon_ws_parser_init(&p, 1, 0);
        off = 0;

        t0 = bench_now();

        while (off < len) {
            rc = amon_ws_parse(&p, work + off, len - off, &consumed, &ev);
            off += consumed;

            if (rc == AMON_AGAIN) {
                break;
            }

            if (rc != AMON_OK) {
                fprintf(stderr, "%s: parse error %d\n", name, rc);
                exit(2);
            }

            if (ev.type == AMON_WS_EV_DATA) {
                r.bytes += (double) ev.len;
            }
        }

        r.seconds += bench_now() - t0;
        r.ops += (double) nframes;

        /* the unmasked payload must be what was masked */
        if (work[len - 1] != (unsigned char) ('a' + (size - 1) % 26)) {
            fprintf(stderr, "%s: payload not unmasked\n", name);
            exit(2);
        }
    }

    bench_report(name, &r, target, "MB/s");

    free(pristine);
    free(work);
}


static void
bench_mask_raw(const char *name, size_t misalign, size_t total, double target)
{
    unsigned       off;
    long           i, n;
    double         t0;
    unsigned char *buf;
    bench_result_t r;

    buf = malloc(total + 8);
    if (buf == NULL) {
        exit(2);
    }

    memset(buf, 0x5a, total + 8);
    memset(&r, 0, sizeof(r));
    off = 0;
    n = (total > BENCH_BUF) ? 2 : 64;

    while (r.seconds < bench_seconds) {
        t0 = bench_now();

        for (i = 0; i < n; i++) {
            off = amon_ws_mask(buf + misalign, total, bench_mask, off);
        }

        r.seconds += bench_now() - t0;
        r.bytes += (double) n * (double) total;
        r.ops += (double) n;
    }

    /* an even count of XORs per pass leaves the buffer as it was */
    if (buf[misalign] != 0x5a || buf[misalign + total - 1] != 0x5a) {
        fprintf(stderr, "%s: masking is not an involution\n", name);
        exit(2);
    }

    bench_report(name, &r, target, "MB/s");

    free(buf);
}


static void
bench_decode(const char *name, const char *json, double target)
{
    int              rc;
    long             i, n;
    size_t           len;
    double           t0;
    bench_result_t   r;
    amon_envelope_t *env;

    env = malloc(sizeof(amon_envelope_t));
    if (env == NULL) {
        exit(2);
    }

    len = strlen(json);
    memset(&r, 0, sizeof(r));
    rc = AMON_OK;

    while (r.seconds < bench_seconds) {
        n = 100000;
        t0 = bench_now();

        for (i = 0; i < n; i++) {
            rc |= amon_envelope_decode_json(
                env, (const unsigned char *) json, len);
        }

        r.seconds += bench_now() - t0;
        r.bytes += (double) n * (double) len;
        r.ops += (double) n;
    }

    if (rc != AMON_OK || env->msg_id.len == 0) {
        fprintf(stderr, "%s: decode failed: %d\n", name, rc);
        exit(2);
    }

    printf("%-46s %zu-byte envelope\n", "", len);
    bench_report(name, &r, target, "ops/s");

    free(env);
}


static void
bench_decode_pb(const char *name, const char *json)
{
    int                 rc;
    long                i, n;
    double              t0;
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t e;
    bench_result_t      r;
    amon_envelope_t    *env, *env2;

    env = malloc(sizeof(amon_envelope_t));
    env2 = malloc(sizeof(amon_envelope_t));
    if (env == NULL || env2 == NULL) {
        exit(2);
    }

    /* the same envelope in its protobuf form */

    rc = amon_envelope_decode_json(
        env, (const unsigned char *) json, strlen(json));
    if (rc == AMON_OK) {
        memset(&e, 0, sizeof(e));
        e.msg_id = env->msg_id;
        e.trace_id = env->trace_id;
        e.type = env->type_name;
        e.target_id = env->target_id;
        e.timestamp = env->timestamp;
        e.payload_json = env->payload;
        rc = amon_envelope_build_pb(&out, BENCH_BUF, NULL, &e);
    }

    if (rc != AMON_OK) {
        fprintf(stderr, "%s: cannot build: %d\n", name, rc);
        exit(2);
    }

    memset(&r, 0, sizeof(r));

    while (r.seconds < bench_seconds) {
        n = 100000;
        t0 = bench_now();

        for (i = 0; i < n; i++) {
            rc |= amon_envelope_decode_pb(env2, out.data, out.len, NULL);
            amon_envelope_release(env2);
        }

        r.seconds += bench_now() - t0;
        r.bytes += (double) n * (double) out.len;
        r.ops += (double) n;
    }

    if (rc != AMON_OK) {
        fprintf(stderr, "%s: decode failed: %d\n", name, rc);
        exit(2);
    }

    printf("%-46s %zu-byte envelope\n", "", out.len);
    bench_report(name, &r, 0, "ops/s");

    amon_buf_free(&out, NULL);
    free(env);
    free(env2);
}


int
main(int argc, char **argv)
{
    int         i, strict;
    const char *s;

    strict = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            strict = 1;

        } else {
            fprintf(stderr, "usage: %s [--strict]\n", argv[0]);
            return 2;
        }
    }

    s = getenv("BENCH_SECONDS");
    if (s && atof(s) > 0) {
        bench_seconds = atof(s);
    }

    if (bench_seconds < 1.0) {
        bench_seconds = 1.0;
    }

    printf("%-46s %15s %18s\n", "case", "throughput", "rate");

    bench_parse("ws_parse server, masked binary, 100 B frames", 100,
        AMON_WS_OP_BINARY, BENCH_BUF, 0);
    bench_parse("ws_parse server, masked text+UTF-8, 100 B", 100,
        AMON_WS_OP_TEXT, BENCH_BUF, 0);
    bench_parse("ws_parse server, masked binary, 64 KiB frames", 65536,
        AMON_WS_OP_BINARY, BENCH_BUF, 1000);
    bench_parse("ws_parse server, masked text+UTF-8, 64 KiB", 65536,
        AMON_WS_OP_TEXT, BENCH_BUF, 0);
    bench_parse("ws_parse, binary 64 KiB, 64 MiB of frames", 65536,
        AMON_WS_OP_BINARY, BENCH_BUF_BIG, 1000);
    bench_mask_raw("amon_ws_mask, 1 MiB, aligned", 0, BENCH_BUF, 1000);
    bench_mask_raw("amon_ws_mask, 1 MiB, start + 1 byte", 1, BENCH_BUF, 1000);
    bench_mask_raw("amon_ws_mask, 64 MiB", 0, BENCH_BUF_BIG, 1000);
    bench_decode("envelope_decode_json, action", bench_action, 1000000);
    bench_decode(
        "envelope_decode_json, heartbeat + metrics", bench_heartbeat, 1000000);
    bench_decode_pb("envelope_decode_pb, action", bench_action);

    if (bench_missed) {
        printf("some targets were missed\n");
        return strict ? 1 : 0;
    }

    printf("all targets met\n");

    return 0;
}

/*
 * Copyright (C) AMonitor authors
 *
 * amonitor: a command-line panel for the AMonitor agent.  Parses the
 * command line, dispatches to the subcommands and holds the helpers they
 * share: ids, clocks, action envelopes, message decoding and printing.
 */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "amoncli.h"
#include "amonitor.pb-c.h"


volatile sig_atomic_t amoncli_interrupted;


/* which options a subcommand accepts */
#define OPT_TARGETS  0x0001
#define OPT_ACTION   0x0002
#define OPT_PARAMS   0x0004
#define OPT_MSG_ID   0x0008
#define OPT_DURATION 0x0010
#define OPT_RATE     0x0020
#define OPT_ONCE     0x0040
#define OPT_STALE    0x0080
#define OPT_BINARY   0x0100
#define OPT_INFLIGHT 0x0200
#define OPT_STATUS   0x0400

/* the version of the agent (NGX_HTTP_AMONITOR_VERSION), from the Makefile */
#ifndef AMONCLI_VERSION
#define AMONCLI_VERSION "unknown"
#endif


typedef struct {
    const char *name;
    int (*run)(amoncli_opts_t *o);
    unsigned    allowed;
    const char *args;
    const char *help;
} amoncli_cmd_t;


static const amoncli_cmd_t amoncli_cmds[] = {
    {"sim", amoncli_cmd_sim,
        OPT_TARGETS | OPT_ACTION | OPT_PARAMS | OPT_DURATION | OPT_BINARY,
        "[--target-id T[,T..]] [--target-url U[,U..]] [--duration S]",
        "panel simulator: one action per target, then print everything"},
    {"send", amoncli_cmd_send,
        OPT_TARGETS | OPT_ACTION | OPT_PARAMS | OPT_MSG_ID | OPT_BINARY,
        "--target-id T [--target-url U] [--action A] [--params JSON] "
        "[--msg-id ID]",
        "send one action and wait for its ack"},
    {"dedupe-check", amoncli_cmd_dedupe,
        OPT_TARGETS | OPT_ACTION | OPT_MSG_ID | OPT_BINARY,
        "[--target-id T] [--target-url U] [--action A] [--msg-id ID]",
        "send an action twice with one msg_id, expect \"duplicate ignored\""},
    {"watch", amoncli_cmd_watch,
        OPT_TARGETS | OPT_ONCE | OPT_STALE | OPT_STATUS,
        "[--once] [--stale S] [--target-id T[,T..]] [--status-url URL|none]",
        "live view of targets: state, heartbeat age, events/s, acks"},
    {"bench", amoncli_cmd_bench,
        OPT_TARGETS | OPT_ACTION | OPT_RATE | OPT_DURATION | OPT_BINARY
            | OPT_INFLIGHT,
        "[--rate N] [--duration S] [--max-inflight N] [--target-id ..]",
        "send N actions/s; print acks/s, p50/p99 latency, events/s"},
    {"stress", amoncli_cmd_bench,
        OPT_TARGETS | OPT_ACTION | OPT_RATE | OPT_DURATION | OPT_BINARY
            | OPT_INFLIGHT,
        "(same as bench)", "alias of bench"},
    {NULL, NULL, 0, NULL, NULL}};


static void   amoncli_usage(FILE *f, const amoncli_cmd_t *cmd);
static int    amoncli_split(char *arg, const char **list, unsigned *n);
static int    amoncli_number(const char *s, double *v, double min, double max);
static void   amoncli_on_signal(int signo);
static cJSON *amoncli_message_json(
    unsigned opcode, const unsigned char *p, size_t len);


int
main(int argc, char **argv)
{
    int                   opt, idx;
    unsigned              bit;
    double                v;
    static amoncli_opts_t o; /* large: target lists */
    struct sigaction      sa;
    const amoncli_cmd_t  *cmd;

    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'C'},
        {"timeout", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'}, {"verbose", no_argument, NULL, 'v'},
        {"target-id", required_argument, NULL, 't'},
        {"target-url", required_argument, NULL, 'U'},
        {"action", required_argument, NULL, 'a'},
        {"params", required_argument, NULL, 'p'},
        {"msg-id", required_argument, NULL, 'm'},
        {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},
        {"max-inflight", required_argument, NULL, 'I'},
        {"once", no_argument, NULL, 'o'},
        {"stale", required_argument, NULL, 's'},
        {"binary", no_argument, NULL, 'b'},
        {"status-url", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

    setvbuf(stdout, NULL, _IOLBF, 0);

    if (argc < 2) {
        amoncli_usage(stderr, NULL);
        return AMONCLI_EXIT_USAGE;
    }

    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0) {
        amoncli_usage(stdout, NULL);
        return AMONCLI_EXIT_OK;
    }

    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("amonitor %s\n", AMONCLI_VERSION);
        return AMONCLI_EXIT_OK;
    }

    for (cmd = amoncli_cmds; cmd->name; cmd++) {
        if (strcmp(cmd->name, argv[1]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        fprintf(stderr, "amonitor: unknown command \"%s\"\n", argv[1]);
        amoncli_usage(stderr, NULL);
        return AMONCLI_EXIT_USAGE;
    }

    memset(&o, 0, sizeof(o));
    o.url = AMONCLI_DEFAULT_URL;
    o.timeout = -1;
    o.rate = 100;
    o.max_inflight = 10000;
    o.stale = 30;

    argv++;
    argc--;
    optind = 1;

    while ((opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        bit = 0;

        switch (opt) {
        case 'u': o.url = optarg; break;
        case 'k': o.token = optarg; break;
        case 'C': o.ca = optarg; break;
        case 'w':
            if (amoncli_number(optarg, &o.timeout, 0.001, 86400) != 0) {
                fprintf(stderr, "amonitor: invalid --timeout \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'j': o.json = 1; break;
        case 'v': o.verbose = 1; break;
        case 't':
            bit = OPT_TARGETS;
            if (amoncli_split(optarg, o.target_ids, &o.ntarget_ids) != 0) {
                fprintf(
                    stderr, "amonitor: invalid --target-id \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'U':
            bit = OPT_TARGETS;
            if (amoncli_split(optarg, o.target_urls, &o.ntarget_urls) != 0) {
                fprintf(
                    stderr, "amonitor: invalid --target-url \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'a':
            bit = OPT_ACTION;
            o.action = optarg;
            break;
        case 'p':
            bit = OPT_PARAMS;
            o.params = optarg;
            break;
        case 'm':
            bit = OPT_MSG_ID;
            o.msg_id = optarg;
            break;
        case 'd':
            bit = OPT_DURATION;
            if (amoncli_number(optarg, &o.duration, 0, 1e7) != 0) {
                fprintf(
                    stderr, "amonitor: invalid --duration \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'r':
            bit = OPT_RATE;
            if (amoncli_number(optarg, &o.rate, 0.01, 1e6) != 0) {
                fprintf(stderr, "amonitor: invalid --rate \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'I':
            bit = OPT_INFLIGHT;
            if (amoncli_number(optarg, &v, 1, 1e6) != 0) {
                fprintf(stderr, "amonitor: invalid --max-inflight \"%s\"\n",
                    optarg);
                return AMONCLI_EXIT_USAGE;
            }
            o.max_inflight = (unsigned) v;
            break;
        case 'o':
            bit = OPT_ONCE;
            o.once = 1;
            break;
        case 's':
            bit = OPT_STALE;
            if (amoncli_number(optarg, &o.stale, 0.1, 86400) != 0) {
                fprintf(stderr, "amonitor: invalid --stale \"%s\"\n", optarg);
                return AMONCLI_EXIT_USAGE;
            }
            break;
        case 'b':
            bit = OPT_BINARY;
            o.binary = 1;
            break;
        case 'S':
            bit = OPT_STATUS;
            o.status_url = optarg;
            break;
        case 'h': amoncli_usage(stdout, cmd); return AMONCLI_EXIT_OK;
        default: amoncli_usage(stderr, cmd); return AMONCLI_EXIT_USAGE;
        }

        if (bit && !(cmd->allowed & bit)) {
            fprintf(stderr, "amonitor %s: option \"%s\" does not apply\n",
                cmd->name, argv[optind - 1]);
            return AMONCLI_EXIT_USAGE;
        }
    }

    if (optind != argc) {
        fprintf(stderr, "amonitor %s: unexpected argument \"%s\"\n", cmd->name,
            argv[optind]);
        return AMONCLI_EXIT_USAGE;
    }

    if (o.params) {
        cJSON *j = cJSON_ParseWithLength(o.params, strlen(o.params));

        if (j == NULL) {
            fprintf(stderr, "amonitor %s: --params is not JSON\n", cmd->name);
            return AMONCLI_EXIT_USAGE;
        }
        cJSON_Delete(j);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = amoncli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    return cmd->run(&o);
}


static void
amoncli_usage(FILE *f, const amoncli_cmd_t *only)
{
    const amoncli_cmd_t *cmd;

    fprintf(f,
        "usage: amonitor COMMAND [options]\n"
        "       amonitor --version\n\ncommands:\n");

    for (cmd = amoncli_cmds; cmd->name; cmd++) {
        if (only && only != cmd) {
            continue;
        }
        fprintf(
            f, "  %-13s %s\n  %-13s %s\n", cmd->name, cmd->help, "", cmd->args);
    }

    fprintf(f,
        "\ncommon options:\n"
        "  --url URL       agent panel endpoint (%s)\n"
        "  --token TOKEN   sent as Authorization: Bearer TOKEN\n"
        "  --ca FILE       wss://: trust the agent's certificate from these "
        "CAs (PEM;\n"
        "                  default: the system's)\n"
        "  --timeout SEC   how long to wait (send/dedupe-check: 20, "
        "watch --once: 6,\n"
        "                  connecting: 5)\n"
        "  --json          one JSON object per output line\n"
        "  --binary        send protobuf frames instead of JSON\n"
        "  --verbose       print every message received\n"
        "\nexit status: 0 ok, 1 runtime failure, 2 usage error\n",
        AMONCLI_DEFAULT_URL);
}


/*
 * "a,b,c" appended to "list"; empty elements are an error.  The argument
 * is split in place: argv strings are writable and live until exit.
 */
static int
amoncli_split(char *arg, const char **list, unsigned *n)
{
    char  *p, *save;
    size_t len;

    len = strlen(arg);

    if (len == 0 || arg[0] == ',' || arg[len - 1] == ',' || strstr(arg, ",,")) {
        return -1;
    }

    for (p = strtok_r(arg, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (*n >= AMONCLI_MAX_TARGETS) {
            return -1;
        }
        list[(*n)++] = p;
    }

    return 0;
}


static int
amoncli_number(const char *s, double *v, double min, double max)
{
    char *end;

    errno = 0;
    *v = strtod(s, &end);

    if (errno || end == s || *end || !isfinite(*v) || *v < min || *v > max) {
        return -1;
    }

    return 0;
}


static void
amoncli_on_signal(int signo)
{
    amoncli_interrupted = 1;
}


void
amoncli_sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000;

    /* a signal ends the sleep early, which is what the callers want */
    nanosleep(&ts, NULL);
}


void
amoncli_clock(char *buf, size_t size)
{
    struct timespec ts;
    struct tm       tm;
    char            hms[16];

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03ld", hms, ts.tv_nsec / 1000000);
}


int
amoncli_str_eq(amon_str_t s, const char *cstr)
{
    return s.data && strlen(cstr) == s.len && memcmp(s.data, cstr, s.len) == 0;
}


static amon_str_t
amoncli_cstr(const char *s)
{
    amon_str_t r;

    r.data = (const unsigned char *) s;
    r.len = s ? strlen(s) : 0;

    return r;
}


/* An action envelope, JSON or protobuf, into "out" (reset first). */
int
amoncli_build_action(amon_buf_t *out, const char *msg_id, const char *target_id,
    const char *target_url, const char *action, const char *params, int binary)
{
    int                 rc;
    amon_buf_t          payload;
    amon_json_w_t       w;
    amon_envelope_out_t e;

    memset(&payload, 0, sizeof(payload));

    /* "params" was checked to be JSON when the options were read */
    amon_json_w_init(&w, &payload, AMONCLI_MAX_MESSAGE, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "action");
    amon_json_w_cstring(&w, action);
    amon_json_w_key(&w, "params");
    amon_json_w_raw(&w, params, strlen(params));

    if (target_url) {
        amon_json_w_key(&w, "target_url");
        amon_json_w_cstring(&w, target_url);
    }

    amon_json_w_object_end(&w);

    rc = amon_json_w_finish(&w);
    if (rc != AMON_OK) {
        amon_buf_free(&payload, NULL);
        return rc;
    }

    memset(&e, 0, sizeof(e));
    e.msg_id = amoncli_cstr(msg_id);
    e.type = amoncli_cstr("action");
    if (target_id) {
        e.target_id = amoncli_cstr(target_id);
    }
    e.timestamp = amon_posix_wall_ms();
    e.payload_json.data = payload.data;
    e.payload_json.len = payload.len;

    out->len = 0;

    if (binary) {
        rc = amon_envelope_build_pb(out, AMONCLI_MAX_MESSAGE, NULL, &e);

    } else {
        rc = amon_envelope_build_json(out, AMONCLI_MAX_MESSAGE, NULL, &e);
    }

    amon_buf_free(&payload, NULL);

    return rc;
}


int
amoncli_connect(amoncli_ws_t *ws, const amoncli_opts_t *o, int timeout_ms)
{
    char err[256];

    if (amoncli_ws_connect(
            ws, o->url, o->token, o->ca, timeout_ms, err, sizeof(err))
        != 0) {
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            char  *s;

            cJSON_AddStringToObject(j, "event", "connect_failed");
            cJSON_AddStringToObject(j, "url", o->url);
            cJSON_AddStringToObject(j, "error", err);
            s = cJSON_PrintUnformatted(j);
            if (s) {
                printf("%s\n", s);
            }
            cJSON_free(s);
            cJSON_Delete(j);
        }

        fprintf(stderr, "amonitor: %s: %s\n", o->url, err);
        return -1;
    }

    return 0;
}


int
amoncli_decode(
    amon_envelope_t *env, unsigned opcode, const unsigned char *p, size_t len)
{
    if (opcode == AMON_WS_OP_BINARY) {
        return amon_envelope_decode_pb(env, p, len, NULL);
    }

    return amon_envelope_decode_json(env, p, len);
}


static void
amoncli_add_str(cJSON *obj, const char *name, amon_str_t s)
{
    char *c;

    if (s.data == NULL) {
        return;
    }

    c = strndup((const char *) s.data, s.len);
    if (c) {
        cJSON_AddStringToObject(obj, name, c);
        free(c);
    }
}


/* JSON text bytes as a cJSON value, or a string when they are not JSON. */
static cJSON *
amoncli_json_or_string(const unsigned char *p, size_t len)
{
    cJSON *j;
    char  *c;

    j = cJSON_ParseWithLength((const char *) p, len);
    if (j) {
        return j;
    }

    c = strndup((const char *) p, len);
    j = cJSON_CreateString(c ? c : "");
    free(c);

    return j;
}


/*
 * A message as a JSON object: JSON text as it is, a protobuf envelope
 * rebuilt field by field (payload included) so that both print alike.
 */
static cJSON *
amoncli_message_json(unsigned opcode, const unsigned char *p, size_t len)
{
    size_t                                   i;
    cJSON                                   *j, *pl, *m;
    amon_envelope_t                         *env;
    Amonitor__Control__V1__HeartbeatPayload *hb;
    Amonitor__Control__V1__RegisterPayload  *reg;
    Amonitor__Control__V1__EventPayload     *ev;

    if (opcode != AMON_WS_OP_BINARY) {
        return cJSON_ParseWithLength((const char *) p, len);
    }

    env = malloc(sizeof(amon_envelope_t));
    if (env == NULL) {
        return NULL;
    }

    if (amon_envelope_decode_pb(env, p, len, NULL) != AMON_OK) {
        amon_envelope_release(env);
        free(env);
        return NULL;
    }

    j = cJSON_CreateObject();
    amoncli_add_str(j, "msg_id", env->msg_id);
    amoncli_add_str(j, "trace_id", env->trace_id);
    amoncli_add_str(j, "type", env->type_name);
    amoncli_add_str(j, "target_id", env->target_id);
    if (env->has_timestamp) {
        cJSON_AddNumberToObject(j, "timestamp", (double) env->timestamp);
    }

    pl = cJSON_AddObjectToObject(j, "payload");

    switch (env->type) {

    case AMON_MSG_ACTION:
        amoncli_add_str(pl, "action", env->action);
        if (env->params.len) {
            cJSON_AddItemToObject(pl, "params",
                amoncli_json_or_string(env->params.data, env->params.len));
        }
        amoncli_add_str(pl, "target_url", env->target_url);
        break;

    case AMON_MSG_ACTION_ACK:
        amoncli_add_str(pl, "action_msg_id", env->action_msg_id);
        cJSON_AddBoolToObject(pl, "success", env->success);
        amoncli_add_str(pl, "message", env->message);
        break;

    case AMON_MSG_ERROR:
        amoncli_add_str(pl, "code", env->code);
        amoncli_add_str(pl, "message", env->message);
        break;

    case AMON_MSG_EVENT:
        ev = amonitor__control__v1__event_payload__unpack(
            NULL, env->payload.len, env->payload.data);
        if (ev) {
            cJSON_AddStringToObject(pl, "target_id", ev->target_id);
            cJSON_AddStringToObject(pl, "event_name", ev->event_name);
            cJSON_AddItemToObject(pl, "data",
                ev->data.len
                    ? amoncli_json_or_string(ev->data.data, ev->data.len)
                    : cJSON_CreateNull());
            amonitor__control__v1__event_payload__free_unpacked(ev, NULL);
        }
        break;

    case AMON_MSG_HEARTBEAT:
        hb = amonitor__control__v1__heartbeat_payload__unpack(
            NULL, env->payload.len, env->payload.data);
        if (hb) {
            cJSON_AddStringToObject(pl, "target_id", hb->target_id);
            cJSON_AddStringToObject(pl, "status", "up");
            m = cJSON_AddObjectToObject(pl, "metrics");
            for (i = 0; i < hb->n_metrics; i++) {
                cJSON_AddStringToObject(
                    m, hb->metrics[i]->key, hb->metrics[i]->value);
            }
            amonitor__control__v1__heartbeat_payload__free_unpacked(hb, NULL);
        }
        break;

    case AMON_MSG_REGISTER:
        reg = amonitor__control__v1__register_payload__unpack(
            NULL, env->payload.len, env->payload.data);
        if (reg) {
            cJSON_AddStringToObject(pl, "target_id", reg->target_id);
            cJSON_AddStringToObject(pl, "sdk_url", reg->sdk_url);
            m = cJSON_AddObjectToObject(pl, "metadata");
            for (i = 0; i < reg->n_metadata; i++) {
                cJSON_AddStringToObject(
                    m, reg->metadata[i]->key, reg->metadata[i]->value);
            }
            amonitor__control__v1__register_payload__free_unpacked(reg, NULL);
        }
        break;

    default:
        /* a type without a schema message: its bytes, JSON if they are */
        if (env->payload.len) {
            cJSON_ReplaceItemInObject(j, "payload",
                amoncli_json_or_string(env->payload.data, env->payload.len));
        }
        break;
    }

    amon_envelope_release(env);
    free(env);

    return j;
}


/* {"event":E,"time":ms,KEY:<message as JSON>} on one line. */
void
amoncli_print_json_line(const char *event, const char *key,
    const unsigned char *p, size_t len, int binary)
{
    cJSON *j, *m;
    char  *s;

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event", event);
    cJSON_AddNumberToObject(j, "time", (double) amon_posix_wall_ms());

    m = amoncli_message_json(
        binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, p, len);
    if (m == NULL) {
        char *raw = strndup((const char *) p, binary ? 0 : len);

        cJSON_AddStringToObject(j, "raw", raw ? raw : "");
        free(raw);

    } else {
        cJSON_AddItemToObject(j, key, m);
    }

    s = cJSON_PrintUnformatted(j);
    if (s) {
        printf("%s\n", s);
    }

    cJSON_free(s);
    cJSON_Delete(j);
}


static const char *
amoncli_get_str(const cJSON *obj, const char *name)
{
    const cJSON *v;

    v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}


static void
amoncli_print_compact(const char *label, const cJSON *v)
{
    char *s;

    if (v == NULL) {
        return;
    }

    s = cJSON_PrintUnformatted(v);
    if (s) {
        printf(" %s=%s", label, s);
    }
    cJSON_free(s);
}


/*
 * Print a received (or sent) message: with --json as one JSON line, else
 * as "time type target key=value...".
 */
void
amoncli_print_message(const amoncli_opts_t *o, const char *event,
    unsigned opcode, const unsigned char *p, size_t len)
{
    cJSON      *j, *pl, *v;
    const char *type, *target, *s;
    char        ts[32];

    if (o->json) {
        amoncli_print_json_line(
            event, "message", p, len, opcode == AMON_WS_OP_BINARY);
        return;
    }

    amoncli_clock(ts, sizeof(ts));

    j = amoncli_message_json(opcode, p, len);
    if (j == NULL || !cJSON_IsObject(j)) {
        printf("%s %-5s %-13s (%zu bytes, not an envelope)\n", ts, event,
            opcode == AMON_WS_OP_BINARY ? "binary" : "text", len);
        cJSON_Delete(j);
        return;
    }

    pl = cJSON_GetObjectItemCaseSensitive(j, "payload");
    type = amoncli_get_str(j, "type");
    target = amoncli_get_str(j, "target_id");
    if (target == NULL || target[0] == '\0') {
        target = amoncli_get_str(pl, "target_id");
    }

    printf("%s %-5s %-13s %-16s", ts, event, type ? type : "?",
        target && target[0] ? target : "-");

    if (type && strcmp(type, "heartbeat") == 0) {
        s = amoncli_get_str(pl, "status");
        printf(" status=%s", s ? s : "?");
        amoncli_print_compact(
            "metrics", cJSON_GetObjectItemCaseSensitive(pl, "metrics"));

    } else if (type && strcmp(type, "event") == 0) {
        s = amoncli_get_str(pl, "event_name");
        printf(" event_name=%s", s ? s : "?");
        amoncli_print_compact(
            "data", cJSON_GetObjectItemCaseSensitive(pl, "data"));

    } else if (type && strcmp(type, "action_ack") == 0) {
        s = amoncli_get_str(pl, "action_msg_id");
        printf(" action_msg_id=%s", s ? s : "?");
        v = cJSON_GetObjectItemCaseSensitive(pl, "success");
        printf(" success=%s", cJSON_IsTrue(v) ? "true" : "false");
        amoncli_print_compact(
            "message", cJSON_GetObjectItemCaseSensitive(pl, "message"));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pl, "duplicate"))) {
            printf(" duplicate=true");
        }

    } else if (type && strcmp(type, "action") == 0) {
        s = amoncli_get_str(j, "msg_id");
        printf(" msg_id=%s", s ? s : "?");
        s = amoncli_get_str(pl, "action");
        printf(" action=%s", s ? s : "?");
        amoncli_print_compact(
            "params", cJSON_GetObjectItemCaseSensitive(pl, "params"));
        s = amoncli_get_str(pl, "target_url");
        if (s) {
            printf(" target_url=%s", s);
        }

    } else if (type && strcmp(type, "error") == 0) {
        s = amoncli_get_str(j, "msg_id");
        printf(" msg_id=%s", s ? s : "-");
        s = amoncli_get_str(pl, "code");
        printf(" code=%s", s ? s : "?");
        amoncli_print_compact(
            "message", cJSON_GetObjectItemCaseSensitive(pl, "message"));

    } else {
        amoncli_print_compact("payload", pl);
    }

    putchar('\n');

    cJSON_Delete(j);
}

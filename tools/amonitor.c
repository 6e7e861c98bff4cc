/*
 * Copyright (C) AMonitor authors
 *
 * amonitor: a command-line panel for the AMonitor agent.  Parses the
 * command line, dispatches to the subcommands and holds the helpers they
 * share: clocks, action envelopes, connecting, message decoding.
 */

#include <ctype.h>
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
#define OPT_SUBSCRIB 0x0800

/* the version of the agent (NGX_HTTP_AMONITOR_VERSION), from the Makefile */
#ifndef AMONCLI_VERSION
#define AMONCLI_VERSION "unknown"
#endif

/* not an exit code: the command line so far is fine, go on */
#define AMONCLI_GO_ON (-1)


typedef struct {
    const char *name;
    int (*run)(amoncli_opts_t *o);
    unsigned    allowed;
    const char *args;
    const char *help;
} amoncli_cmd_t;


static const amoncli_cmd_t amoncli_cmds[] = {
    {"sim", amoncli_cmd_sim,
        OPT_TARGETS | OPT_ACTION | OPT_PARAMS | OPT_DURATION | OPT_BINARY
            | OPT_SUBSCRIB,
        "[--target-id T[,T..]] [--target-url U[,U..]] [--action A] "
        "[--params JSON] [--duration S] [--subscribe T[,T..]] [--binary]",
        "panel simulator: one action per target, then print everything"},
    {"send", amoncli_cmd_send,
        OPT_TARGETS | OPT_ACTION | OPT_PARAMS | OPT_MSG_ID | OPT_BINARY,
        "--target-id T [--target-url U] [--action A] [--params JSON] "
        "[--msg-id ID] [--binary]",
        "send one action and wait for its ack"},
    {"dedupe-check", amoncli_cmd_dedupe,
        OPT_TARGETS | OPT_ACTION | OPT_MSG_ID | OPT_BINARY,
        "[--target-id T] [--target-url U] [--action A] [--msg-id ID] "
        "[--binary]",
        "send an action twice with one msg_id, expect \"duplicate ignored\""},
    {"watch", amoncli_cmd_watch,
        OPT_TARGETS | OPT_ONCE | OPT_STALE | OPT_STATUS | OPT_SUBSCRIB,
        "[--once] [--stale S] [--target-id T[,T..]] [--status-url URL|none] "
        "[--subscribe T[,T..]]",
        "live view of targets: state, heartbeat age, events/s, acks"},
    {"bench", amoncli_cmd_bench,
        OPT_TARGETS | OPT_ACTION | OPT_RATE | OPT_DURATION | OPT_BINARY
            | OPT_INFLIGHT,
        "[--rate N] [--duration S] [--max-inflight N] [--target-id ..] "
        "[--target-url ..] [--action A] [--binary]",
        "send N actions/s; print acks/s, p50/p99 latency, events/s"},
    {"stress", amoncli_cmd_bench,
        OPT_TARGETS | OPT_ACTION | OPT_RATE | OPT_DURATION | OPT_BINARY
            | OPT_INFLIGHT,
        "(same as bench)", "alias of bench"},
    {NULL, NULL, 0, NULL, NULL}};


static const struct option amoncli_long_opts[] = {
    {"url", required_argument, NULL, 'u'},
    {"token", required_argument, NULL, 'k'},
    {"ca", required_argument, NULL, 'C'},
    {"timeout", required_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
    {"verbose", no_argument, NULL, 'v'},
    {"target-id", required_argument, NULL, 't'},
    {"target-url", required_argument, NULL, 'U'},
    {"action", required_argument, NULL, 'a'},
    {"params", required_argument, NULL, 'p'},
    {"msg-id", required_argument, NULL, 'm'},
    {"duration", required_argument, NULL, 'd'},
    {"rate", required_argument, NULL, 'r'},
    {"max-inflight", required_argument, NULL, 'I'},
    {"once", no_argument, NULL, 'o'}, {"stale", required_argument, NULL, 's'},
    {"binary", no_argument, NULL, 'b'},
    {"status-url", required_argument, NULL, 'S'},
    {"subscribe", required_argument, NULL, 'T'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};


static int amoncli_command(int argc, char **argv, const amoncli_cmd_t **cmd);
static int amoncli_options(
    const amoncli_cmd_t *cmd, int argc, char **argv, amoncli_opts_t *o);
static int amoncli_option(
    const amoncli_cmd_t *cmd, int opt, amoncli_opts_t *o, unsigned *bit);
static int  amoncli_number_option(int opt, amoncli_opts_t *o, unsigned *bit);
static void amoncli_signals(void);
static void amoncli_usage(FILE *f, const amoncli_cmd_t *cmd);
static int  amoncli_split(char *arg, const char **list, unsigned *n);
static int  amoncli_number(const char *s, double *v, double min, double max);
static int  amoncli_subscribe_url(amoncli_opts_t *o);

/* the URL --subscribe made, kept until exit */
static char *amoncli_url_kept;
static void  amoncli_on_signal(int signo);


int
main(int argc, char **argv)
{
    int                   rc;
    static amoncli_opts_t o; /* large: target lists */
    const amoncli_cmd_t  *cmd;

    setvbuf(stdout, NULL, _IOLBF, 0);

    rc = amoncli_command(argc, argv, &cmd);
    if (rc != AMONCLI_GO_ON) {
        return rc;
    }

    memset(&o, 0, sizeof(o));
    o.url = AMONCLI_DEFAULT_URL;
    o.timeout = -1;
    o.rate = 100;
    o.max_inflight = 10000;
    o.stale = 30;

    rc = amoncli_options(cmd, argc - 1, argv + 1, &o);
    if (rc != AMONCLI_GO_ON) {
        return rc;
    }

    amoncli_signals();

    return cmd->run(&o);
}


/*
 * The command named by the first argument into *cmd, or an exit code after
 * --help, --version or a name that is not a command.
 */
static int
amoncli_command(int argc, char **argv, const amoncli_cmd_t **cmd)
{
    const amoncli_cmd_t *c;

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

    for (c = amoncli_cmds; c->name; c++) {
        if (strcmp(c->name, argv[1]) == 0) {
            *cmd = c;
            return AMONCLI_GO_ON;
        }
    }

    fprintf(stderr, "amonitor: unknown command \"%s\"\n", argv[1]);
    amoncli_usage(stderr, NULL);

    return AMONCLI_EXIT_USAGE;
}


/*
 * The options after the command name (argv[0] is the command) into "o".
 * Returns AMONCLI_GO_ON, or an exit code after --help or a usage error.
 */
static int
amoncli_options(
    const amoncli_cmd_t *cmd, int argc, char **argv, amoncli_opts_t *o)
{
    int      opt, idx, rc;
    unsigned bit;
    cJSON   *j;

    optind = 1;

    while (
        (opt = getopt_long(argc, argv, "h", amoncli_long_opts, &idx)) != -1) {
        bit = 0;

        rc = amoncli_option(cmd, opt, o, &bit);
        if (rc != AMONCLI_GO_ON) {
            return rc;
        }

        if (bit && !(cmd->allowed & bit)) {
            /* named as known: argv[optind - 1] may be its value */
            fprintf(stderr, "amonitor %s: option \"--%s\" does not apply\n",
                cmd->name, amoncli_long_opts[idx].name);
            return AMONCLI_EXIT_USAGE;
        }
    }

    if (optind != argc) {
        fprintf(stderr, "amonitor %s: unexpected argument \"%s\"\n", cmd->name,
            argv[optind]);
        return AMONCLI_EXIT_USAGE;
    }

    if (o->subscribe && amoncli_subscribe_url(o) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    if (o->params) {
        j = cJSON_ParseWithLength(o->params, strlen(o->params));

        if (j == NULL) {
            fprintf(stderr, "amonitor %s: --params is not JSON\n", cmd->name);
            return AMONCLI_EXIT_USAGE;
        }
        cJSON_Delete(j);
    }

    return AMONCLI_GO_ON;
}


/*
 * One option (getopt_long's "opt", its value in optarg) into "o"; *bit is
 * the OPT_ flag a command must allow for it (0: every command does).
 * Returns AMONCLI_GO_ON, or an exit code after --help or a usage error.
 */
static int
amoncli_option(
    const amoncli_cmd_t *cmd, int opt, amoncli_opts_t *o, unsigned *bit)
{
    switch (opt) {
    case 'u': o->url = optarg; break;
    case 'k': o->token = optarg; break;
    case 'C': o->ca = optarg; break;
    case 'j': o->json = 1; break;
    case 'v': o->verbose = 1; break;
    case 't':
        *bit = OPT_TARGETS;
        if (amoncli_split(optarg, o->target_ids, &o->ntarget_ids) != 0) {
            fprintf(stderr, "amonitor: invalid --target-id \"%s\"\n", optarg);
            return AMONCLI_EXIT_USAGE;
        }
        break;
    case 'U':
        *bit = OPT_TARGETS;
        if (amoncli_split(optarg, o->target_urls, &o->ntarget_urls) != 0) {
            fprintf(stderr, "amonitor: invalid --target-url \"%s\"\n", optarg);
            return AMONCLI_EXIT_USAGE;
        }
        break;
    case 'a':
        *bit = OPT_ACTION;
        o->action = optarg;
        break;
    case 'p':
        *bit = OPT_PARAMS;
        o->params = optarg;
        break;
    case 'm':
        *bit = OPT_MSG_ID;
        o->msg_id = optarg;
        break;
    case 'o':
        *bit = OPT_ONCE;
        o->once = 1;
        break;
    case 'b':
        *bit = OPT_BINARY;
        o->binary = 1;
        break;
    case 'S':
        *bit = OPT_STATUS;
        o->status_url = optarg;
        break;
    case 'T':
        *bit = OPT_SUBSCRIB;
        o->subscribe = optarg;
        if (optarg[0] == '\0' || optarg[0] == ','
            || optarg[strlen(optarg) - 1] == ',' || strstr(optarg, ",,")) {
            fprintf(stderr,
                "amonitor: invalid --subscribe \"%s\": ids and "
                "patterns, comma-separated\n",
                optarg);
            return AMONCLI_EXIT_USAGE;
        }
        break;
    case 'w':
    case 'd':
    case 'r':
    case 'I':
    case 's': return amoncli_number_option(opt, o, bit);
    case 'h': amoncli_usage(stdout, cmd); return AMONCLI_EXIT_OK;
    default: amoncli_usage(stderr, cmd); return AMONCLI_EXIT_USAGE;
    }

    return AMONCLI_GO_ON;
}


/* The options with a number: --timeout, --duration, --rate, ... */
static int
amoncli_number_option(int opt, amoncli_opts_t *o, unsigned *bit)
{
    double      v, min, max;
    const char *name;

    switch (opt) {
    case 'w':
        name = "timeout";
        min = 0.001;
        max = 86400;
        break;
    case 'd':
        *bit = OPT_DURATION;
        name = "duration";
        min = 0;
        max = 1e7;
        break;
    case 'r':
        *bit = OPT_RATE;
        name = "rate";
        min = 0.01;
        max = 1e6;
        break;
    case 'I':
        *bit = OPT_INFLIGHT;
        name = "max-inflight";
        min = 1;
        max = 1e6;
        break;
    default: /* 's' */
        *bit = OPT_STALE;
        name = "stale";
        min = 0.1;
        max = 86400;
        break;
    }

    if (amoncli_number(optarg, &v, min, max) != 0) {
        fprintf(stderr, "amonitor: invalid --%s \"%s\"\n", name, optarg);
        return AMONCLI_EXIT_USAGE;
    }

    switch (opt) {
    case 'w': o->timeout = v; break;
    case 'd': o->duration = v; break;
    case 'r': o->rate = v; break;
    case 'I': o->max_inflight = (unsigned) v; break;
    default: o->stale = v; break;
    }

    return AMONCLI_GO_ON;
}


static void
amoncli_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = amoncli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
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


/*
 * --subscribe: --url gets ?targets= (or &targets=) with the list,
 * escaped for a query, so that the agent sends only those targets'
 * messages.  The new URL lives until exit.
 */
static int
amoncli_subscribe_url(amoncli_opts_t *o)
{
    size_t      n;
    char       *u;
    const char *s;

    u = malloc(strlen(o->url) + 10 + 3 * strlen(o->subscribe) + 1);
    if (u == NULL) {
        fprintf(stderr, "amonitor: out of memory\n");
        return -1;
    }

    n = (size_t) sprintf(
        u, "%s%ctargets=", o->url, strchr(o->url, '?') ? '&' : '?');

    for (s = o->subscribe; *s; s++) {
        if (isalnum((unsigned char) *s) || strchr("-._~*,", *s)) {
            u[n++] = *s;

        } else {
            n += (size_t) sprintf(u + n, "%%%02X", (unsigned char) *s);
        }
    }

    u[n] = '\0';
    o->url = u;
    amoncli_url_kept = u;

    return 0;
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

        amoncli_tprintf(stderr, "amonitor: %s: %s\n", o->url, err);
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

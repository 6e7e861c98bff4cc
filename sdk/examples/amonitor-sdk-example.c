/*
 * Copyright (C) AMonitor authors
 *
 * Example monitored program: an AMonitor SDK target that accepts the
 * "restart" action and refuses every other one, sends heartbeats with a
 * few metrics and, optionally, periodic events.  Stops on SIGINT/SIGTERM.
 */

#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "amonitor.h"


typedef struct {
    const char *target_id;
    time_t      started;
    long        restarts;
    long        refused;
    int         quiet;
} example_state_t;


static void
example_usage(FILE *f)
{
    fprintf(f,
        "usage: amonitor-sdk-example [options]\n"
        "  --host ADDR           listen address (127.0.0.1)\n"
        "  --port N              listen port (8765)\n"
        "  --target-id ID        target id (demo-target)\n"
        "  --interval SEC        heartbeat interval in seconds (5)\n"
        "  --token TOKEN         require Authorization: Bearer TOKEN\n"
        "  --register-url URL    announce URL in a register message\n"
        "  --event-interval SEC  emit a \"tick\" event every SEC seconds\n"
        "  --tls-cert FILE       serve wss:// with this PEM certificate\n"
        "  --tls-key FILE        and this PEM private key\n"
        "  --tls-client-ca FILE  require an agent certificate from this CA\n"
        "  --binary              send protobuf instead of JSON\n"
        "  --loop                drive the SDK from this program's poll loop\n"
        "  --quiet               print only errors\n"
        "  --help                this text\n");
}


static void example_print(const example_state_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
example_print(const example_state_t *st, const char *fmt, ...)
{
    char                 ts[32], line[1024];
    va_list              ap;
    time_t               now;
    struct tm            tm;
    const unsigned char *p;

    if (st->quiet) {
        return;
    }

    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%H:%M:%S", &tm);

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    /* an action's name and msg_id come from the agent: no control
     * character of theirs (C0, DEL, C1) reaches the terminal */
    printf("%s [%s] ", ts, st->target_id);

    for (p = (const unsigned char *) line; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p);

        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0) {
            printf("\\u%04x", p[1]);
            p++;

        } else {
            putchar(*p);
        }
    }

    putchar('\n');
}


static int
example_restart(amonitor_sdk_t *ctx, const amonitor_action_t *action,
    char *message, size_t size, void *data)
{
    example_state_t *st = data;

    if (action == NULL) {
        return AMONITOR_ACTION_OK; /* teardown: nothing to free */
    }

    st->restarts++;
    snprintf(message, size, "restarted");

    example_print(st, "action restart (msg_id %s, params %s) -> restarted",
        action->msg_id, action->params);

    return AMONITOR_ACTION_OK;
}


static int
example_other(amonitor_sdk_t *ctx, const amonitor_action_t *action,
    char *message, size_t size, void *data)
{
    example_state_t *st = data;

    if (action == NULL) {
        return AMONITOR_ACTION_FAIL;
    }

    st->refused++;
    snprintf(message, size, "unsupported action: %s", action->name);

    example_print(st, "action %s (msg_id %s) -> unsupported", action->name,
        action->msg_id);

    return AMONITOR_ACTION_FAIL;
}


static void
example_metrics(amonitor_sdk_t *ctx, amonitor_metrics_t *m, void *data)
{
    example_state_t *st = data;

    if (m == NULL) {
        return;
    }

    amonitor_metrics_add_int(
        m, "uptime_s", (long long) (time(NULL) - st->started));
    amonitor_metrics_add_int(m, "restarts", st->restarts);
    amonitor_metrics_add_int(m, "pid", (long long) getpid());
}


static void
example_log(int level, const char *msg, void *data)
{
    example_state_t *st = data;

    if (msg == NULL) {
        return;
    }

    if (level <= AMONITOR_LOG_WARN) {
        fprintf(stderr, "amonitor-sdk-example: %s\n", msg);
        return;
    }

    example_print(st, "%s", msg);
}


static double
example_seconds(const char *s, const char *name)
{
    char  *end;
    double v;

    errno = 0;
    v = strtod(s, &end);

    if (errno || *end || v < 0 || v > 86400) {
        fprintf(stderr, "amonitor-sdk-example: invalid %s \"%s\"\n", name, s);
        exit(2);
    }

    return v;
}


/* what the command line sets beyond the SDK's own configuration */
typedef struct {
    double      interval;
    double      event_interval;
    int         loop;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
} example_opts_t;


/* returns -1 to go on, else the exit status */
static int
example_options(int argc, char **argv, amonitor_sdk_config_t *cfg,
    example_opts_t *o, example_state_t *st)
{
    int opt;

    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"target-id", required_argument, NULL, 't'},
        {"interval", required_argument, NULL, 'i'},
        {"token", required_argument, NULL, 'T'},
        {"register-url", required_argument, NULL, 'r'},
        {"event-interval", required_argument, NULL, 'e'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-client-ca", required_argument, NULL, 'A'},
        {"binary", no_argument, NULL, 'b'}, {"loop", no_argument, NULL, 'l'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};

    memset(o, 0, sizeof(*o));
    o->interval = 5;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg->host = optarg; break;
        case 'p':
            /* 0 picks a free port, which is then printed */
            cfg->port = (unsigned) atoi(optarg);
            if ((cfg->port == 0 && strcmp(optarg, "0") != 0)
                || cfg->port > 65535) {
                fprintf(stderr, "amonitor-sdk-example: invalid port \"%s\"\n",
                    optarg);
                return 2;
            }
            break;
        case 't': cfg->target_id = optarg; break;
        case 'i': o->interval = example_seconds(optarg, "interval"); break;
        case 'T': cfg->token = optarg; break;
        case 'r': cfg->register_url = optarg; break;
        case 'e':
            o->event_interval = example_seconds(optarg, "event interval");
            break;
        case 'C': o->tls_cert = optarg; break;
        case 'K': o->tls_key = optarg; break;
        case 'A': o->tls_ca = optarg; break;
        case 'b': cfg->binary = 1; break;
        case 'l': o->loop = 1; break;
        case 'q': st->quiet = 1; break;
        case 'h': example_usage(stdout); return 0;
        default: example_usage(stderr); return 2;
        }
    }

    if (optind != argc) {
        example_usage(stderr);
        return 2;
    }

    return -1;
}


static int64_t
example_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);

    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}


/*
 * Waits up to timeout ms, on the SDK's own thread (sigtimedwait) or, in
 * the host-loop mode, in poll() over the signal fd and the SDK's
 * descriptor.  Returns 1 when a stop signal came or the SDK failed.
 */
static int
example_wait(amonitor_sdk_t *ctx, const example_opts_t *o, int sfd,
    const sigset_t *set, int timeout)
{
    int                     n;
    siginfo_t               si;
    struct timespec         ts;
    struct pollfd           pfd[2];
    struct signalfd_siginfo ssi;

    if (!o->loop) {
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long) (timeout % 1000) * 1000000;

        return sigtimedwait(set, &si, &ts) > 0;
    }

    n = amonitor_sdk_timeout(ctx);
    if (n >= 0 && n < timeout) {
        timeout = n;
    }

    pfd[0].fd = sfd;
    pfd[0].events = POLLIN;
    pfd[1].fd = amonitor_sdk_fd(ctx);
    pfd[1].events = POLLIN;

    if (poll(pfd, 2, timeout) == -1 && errno != EINTR) {
        perror("amonitor-sdk-example: poll");
        return 1;
    }

    if ((pfd[0].revents & POLLIN) && read(sfd, &ssi, sizeof(ssi)) > 0) {
        return 1;
    }

    if (amonitor_sdk_step(ctx, 0) != AMONITOR_OK) {
        fprintf(stderr, "amonitor-sdk-example: %s\n", ctx->errstr);
        return 1;
    }

    return 0;
}


/* sends the periodic events until a stop signal */
static void
example_run(amonitor_sdk_t *ctx, const example_opts_t *o, example_state_t *st,
    int sfd, const sigset_t *set)
{
    int     timeout;
    long    seq;
    char    data[128];
    int64_t ms, next_event, every;

    seq = 0;
    every = (int64_t) (o->event_interval * 1000);
    next_event = example_now_ms() + every;

    for (;;) {
        ms = example_now_ms();

        if (o->event_interval > 0 && ms >= next_event) {
            snprintf(data, sizeof(data), "{\"seq\":%ld,\"uptime_s\":%ld}",
                ++seq, (long) (time(NULL) - st->started));
            amonitor_sdk_emit_event(ctx, "tick", data);
            next_event += every;
            if (next_event <= ms) {
                next_event = ms + every;
            }
        }

        timeout = o->event_interval > 0 ? (int) (next_event - ms) : 1000;
        if (timeout < 0) {
            timeout = 0;
        }

        if (example_wait(ctx, o, sfd, set, timeout)) {
            return;
        }
    }
}


int
main(int argc, char **argv)
{
    int                   sfd, rc;
    sigset_t              set;
    amonitor_sdk_t       *ctx;
    example_opts_t        o;
    example_state_t       st;
    amonitor_sdk_config_t cfg;

    setvbuf(stdout, NULL, _IOLBF, 0);

    amonitor_sdk_config_init(&cfg);
    memset(&st, 0, sizeof(st));

    rc = example_options(argc, argv, &cfg, &o, &st);
    if (rc != -1) {
        return rc;
    }

    cfg.heartbeat_ms = (unsigned) (o.interval * 1000);
    st.target_id = cfg.target_id;
    st.started = time(NULL);

    ctx = amonitor_sdk_new(&cfg);
    if (ctx == NULL) {
        fprintf(stderr, "amonitor-sdk-example: out of memory\n");
        return 1;
    }

    if (ctx->err) {
        fprintf(stderr, "amonitor-sdk-example: %s\n", ctx->errstr);
        amonitor_sdk_free(ctx);
        return 2;
    }

    if ((o.tls_cert || o.tls_key || o.tls_ca)
        && amonitor_sdk_set_tls(ctx, o.tls_cert, o.tls_key, o.tls_ca)
            != AMONITOR_OK) {
        fprintf(stderr, "amonitor-sdk-example: %s\n", ctx->errstr);
        amonitor_sdk_free(ctx);
        return 2;
    }

    amonitor_sdk_set_log(ctx, AMONITOR_LOG_INFO, example_log, &st);
    amonitor_sdk_on_action(ctx, "restart", example_restart, &st);
    amonitor_sdk_on_action(ctx, NULL, example_other, &st);
    amonitor_sdk_set_metrics(ctx, example_metrics, &st);

    /* block the signals before any thread exists: all inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rc = o.loop ? amonitor_sdk_listen(ctx) : amonitor_sdk_start(ctx);
    if (rc != AMONITOR_OK) {
        fprintf(stderr, "amonitor-sdk-example: %s\n", ctx->errstr);
        amonitor_sdk_free(ctx);
        return 1;
    }

    example_print(&st,
        "serving %s://%s:%d/ (heartbeat every %.3gs%s%s%s), Ctrl-C to stop",
        o.tls_cert ? "wss" : "ws", cfg.host, amonitor_sdk_port(ctx), o.interval,
        cfg.token ? ", token required" : "",
        o.event_interval > 0 ? ", events" : "", o.loop ? ", host loop" : "");

    sfd = -1;
    if (o.loop) {
        sfd = signalfd(-1, &set, SFD_CLOEXEC);
        if (sfd == -1) {
            perror("amonitor-sdk-example: signalfd");
            amonitor_sdk_free(ctx);
            return 1;
        }
    }

    example_run(ctx, &o, &st, sfd, &set);

    example_print(
        &st, "stopping (%ld restarts, %ld refused)", st.restarts, st.refused);

    amonitor_sdk_stop(ctx);
    amonitor_sdk_free(ctx);

    if (sfd != -1) {
        close(sfd);
    }

    return 0;
}

/*
 * Copyright (C) AMonitor authors
 *
 * Load generator for the agent: M fake SDK servers and N panels in one
 * epoll loop, on the protocol core.  "fanout" measures heartbeats
 * delivered to panels per second and their latency; "actions" measures
 * action round trips (panel -> agent -> SDK -> ack -> panel), either with a
 * fixed number in flight per panel (closed loop) or at a fixed offered
 * rate on a schedule that does not wait for acks (open loop, --action-rate:
 * latency from the scheduled send time).  The same program measures
 * nginx's own WebSocket proxying as the ceiling.
 */

#define _GNU_SOURCE

#include "amon-load.h"


load_opt_t load_opt = {"fanout", NULL, 1, {0}, 0, 1, 5.0, 1.0, 200, 0.0, 1,
    "bench-", 0, 0.0, 1.0, 0, NULL, LOAD_SPIN_NS};
load_ol_t  load_ol;


int            load_ep;
load_conn_t   *load_conns[LOAD_MAX_CONNS];
load_conn_t   *load_dirty[LOAD_MAX_CONNS];
load_conn_t   *load_sdks[LOAD_MAX_CONNS]; /* open SDK connections */
int            load_nsdk_conns;
int            load_ndirty;
int            load_sdk_open[LOAD_MAX_SDKS];
int            load_panels_open;
int            load_measuring;
uint64_t       load_win_start; /* ns: heartbeats sent in the */
uint64_t       load_win_end; /* window are the ones counted */
uint64_t       load_run;
amon_ws_url_t  load_url;
unsigned char *load_pad;

/* counters, reset when the measurement starts */
uint64_t       load_emitted; /* heartbeats an SDK sent, per conn */
uint64_t       load_delivered; /* heartbeats panels received */
uint64_t       load_acks;
uint64_t       load_actions_sent;
uint64_t       load_other; /* target_status and such */
uint64_t       load_errors; /* error envelopes */
uint64_t       load_bytes_in;
load_samples_t load_lat; /* fan-out latency, microseconds */
load_samples_t load_rtt; /* action round trip, microseconds */


/* one pass of the loop; waits at most ns nanoseconds */
static void
load_poll_ns(uint64_t ns)
{
    int                i, n;
    load_conn_t       *c;
    struct timespec    ts;
    struct epoll_event ev[256];

    /* what was queued since the last pass goes out before we wait */
    load_flush_dirty();

    ts.tv_sec = (time_t) (ns / 1000000000u);
    ts.tv_nsec = (long) (ns % 1000000000u);
    n = epoll_pwait2(load_ep, ev, 256, &ts, NULL);

    for (i = 0; i < n; i++) {
        c = ev[i].data.ptr;
        if (c->fd < 0) {
            continue;
        }

        if (c->kind == LOAD_LISTEN) {
            load_accept(c);
            continue;
        }

        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            load_read(c);
        }

        if (c->fd >= 0 && (ev[i].events & EPOLLOUT)) {
            load_flush(c);
        }
    }

    load_flush_dirty();
}


static void
load_poll(int ms)
{
    load_poll_ns((uint64_t) ms * 1000000u);
}


/* "panels" panels open and every SDK dialed by every worker */
static int
load_ready(int panels)
{
    int i;

    if (load_panels_open < panels) {
        return 0;
    }

    for (i = 0; i < load_opt.nsdks; i++) {
        if (load_sdk_open[i] < load_opt.sdk_conns) {
            return 0;
        }
    }

    return 1;
}


/* wait until load_ready(panels); -1 (said on stderr) after 20 s */
static int
load_wait_ready(int panels)
{
    int      i;
    uint64_t t0;

    t0 = bench_now_ns();

    while (!load_ready(panels)) {
        load_poll(10);
        if (bench_now_ns() - t0 > 20000000000ull) {
            fprintf(stderr,
                "amon-load: not ready after 20 s: %d/%d panels open\n",
                load_panels_open, panels);
            for (i = 0; i < load_opt.nsdks; i++) {
                fprintf(stderr, "  sdk %d: %d/%d connections\n", i,
                    load_sdk_open[i], load_opt.sdk_conns);
            }
            return -1;
        }
    }

    return 0;
}


/* run the loop for "s" seconds */
static void
load_quiet(double s)
{
    uint64_t t0;

    t0 = bench_now_ns();
    while ((double) (bench_now_ns() - t0) / 1e9 < s) {
        load_poll(10);
    }
}


/* heartbeats from every SDK connection, at --rate or as fast as it drains */
static void
load_emit(double elapsed, uint64_t *emissions)
{
    int          i, k;
    uint64_t     want;
    load_conn_t *c;

    if (load_opt.rate > 0) {
        want = (uint64_t) (elapsed * load_opt.rate);

    } else {
        want = *emissions + LOAD_BATCH;

        /* as fast as the agent reads: wait while a buffer is full */
        for (i = 0; i < load_nsdk_conns; i++) {
            c = load_sdks[i];
            if (c->out_len - c->out_pos > LOAD_SDK_LOW) {
                return;
            }
        }
    }

    for (k = 0; *emissions < want && k < 4 * LOAD_BATCH; k++) {
        for (i = 0; i < load_nsdk_conns; i++) {
            load_sdk_heartbeat(load_sdks[i], *emissions);
        }

        (*emissions)++;
    }
}


/* --- the open loop ------------------------------------------------------- */

static uint64_t
load_open_due(uint64_t k)
{
    return load_ol.start + (uint64_t) ((double) k * 1e9 / load_opt.action_rate);
}


/* every action due by "upto" goes out now, on its panel, with its own id */
static void
load_open_send(uint64_t upto, uint64_t now, load_conn_t **panels)
{
    uint64_t k;

    while (load_ol.sent < load_ol.n && load_open_due(load_ol.sent) <= upto) {
        k = load_ol.sent++;
        load_ol.due[k] = load_open_due(k);
        load_ol.sent_at[k] = now;

        if (k >= load_ol.first && k < load_ol.last) {
            load_ol.open++;
            load_sample(&load_lat, (now - load_ol.due[k]) / 1000);
        }

        load_panel_send_action(panels[k % (uint64_t) load_opt.panels], k);
    }
}


static void
load_open_run(void)
{
    int          i, np;
    uint64_t     now, end, deadline;
    load_conn_t *panels[LOAD_MAX_CONNS];

    np = 0;
    for (i = 0; i < LOAD_MAX_CONNS; i++) {
        if (load_conns[i] && load_conns[i]->kind == LOAD_PANEL) {
            panels[np++] = load_conns[i];
        }
    }

    /* wake-ups on time: the default timer slack is 50 us */
    (void) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

    load_ol.n = (uint64_t) ((load_opt.warmup + load_opt.duration)
                    * load_opt.action_rate)
        + 1;
    load_ol.first = (uint64_t) (load_opt.warmup * load_opt.action_rate);
    load_ol.last = load_ol.n - 1;
    load_ol.due = bench_alloc(sizeof(uint64_t) * load_ol.n);
    load_ol.sent_at = bench_alloc(sizeof(uint64_t) * load_ol.n);
    load_ol.svc.v = bench_alloc(sizeof(uint32_t) * LOAD_SAMPLES);

    if (load_opt.timeline != NULL) {
        load_ol.rtt_of = bench_alloc(sizeof(uint32_t) * load_ol.n);
        load_ol.err_of = bench_alloc(load_ol.n);
        memset(load_ol.rtt_of, 0xff, sizeof(uint32_t) * load_ol.n);
        memset(load_ol.err_of, 0, load_ol.n);
    }

    load_ol.start = bench_now_ns();
    load_ol.win_start = load_open_due(load_ol.first);
    load_ol.win_end = load_open_due(load_ol.last);
    end = load_ol.win_end;

    for (;;) {
        now = bench_now_ns();

        /* the last pass still sends everything due before the end */
        load_open_send(now < end ? now : end - 1, now, panels);
        if (now >= end) {
            break;
        }

        now = bench_now_ns();

        /* a short gap is cheaper to spin through than to sleep */
        if (load_ol.sent < load_ol.n
            && load_open_due(load_ol.sent) > now + load_opt.spin) {
            load_poll_ns(load_open_due(load_ol.sent) - now - load_opt.spin);

        } else {
            load_poll_ns(0);
        }
    }

    /* the answers still on their way, up to the ack timeout */
    deadline = end + (uint64_t) (load_opt.ack_timeout * 1e9) + 100000000u;

    while (load_ol.open && bench_now_ns() < deadline) {
        load_poll(1);
    }
}


/* --timeline: one line per measured action, for finding stalls */
static void
load_write_timeline(void)
{
    FILE    *f;
    uint64_t k, due, lag;

    f = fopen(load_opt.timeline, "w");
    if (f == NULL) {
        bench_die(load_opt.timeline);
    }

    fprintf(f,
        "# k due_us rtt_us error lag_us (rtt 4294967295: never "
        "answered; lag: how late this program wrote it)\n");

    for (k = load_ol.first; k < load_ol.last; k++) {
        due = load_open_due(k);
        lag = load_ol.sent_at[k] > due ? (load_ol.sent_at[k] - due) / 1000 : 0;
        fprintf(f, "%llu %llu %u %d %llu\n", (unsigned long long) k,
            (unsigned long long) (due - load_ol.start) / 1000,
            load_ol.rtt_of[k], load_ol.err_of[k], (unsigned long long) lag);
    }

    if (fclose(f) != 0) {
        bench_die(load_opt.timeline);
    }
}


static void
load_open_report(void)
{
    uint64_t i;
    double   secs;

    /* an action never answered counts as an endless round trip */
    for (i = 0; i < load_ol.open; i++) {
        load_sample(&load_rtt, UINT32_MAX);
    }

    qsort(load_rtt.v, load_rtt.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_lat.v, load_lat.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_ol.svc.v, load_ol.svc.n, sizeof(uint32_t), load_cmp_u32);

    secs = (double) (load_ol.win_end - load_ol.win_start) / 1e9;

    printf("mode=open panels=%d sdks=%d action_rate=%.0f seconds=%.2f "
           "sent_per_s=%.0f acks_per_s=%.0f measured=%llu acks=%llu "
           "errors=%llu late=%llu missing=%llu notices=%llu stray=%llu "
           "rtt_p50_us=%.0f rtt_p99_us=%.0f rtt_p999_us=%.0f "
           "rtt_max_us=%.0f lag_p50_us=%.0f lag_p99_us=%.0f lag_max_us=%.0f "
           "sent_rtt_p50_us=%.0f sent_rtt_p99_us=%.0f",
        load_opt.panels, load_opt.nsdks, load_opt.action_rate, secs,
        (double) (load_ol.last - load_ol.first) / secs,
        (double) load_ol.in_window / secs,
        (unsigned long long) (load_ol.last - load_ol.first),
        (unsigned long long) load_ol.acks, (unsigned long long) load_ol.errors,
        (unsigned long long) load_ol.late, (unsigned long long) load_ol.open,
        (unsigned long long) load_ol.notices,
        (unsigned long long) load_ol.stray, load_pct(&load_rtt, 50),
        load_pct(&load_rtt, 99), load_pct(&load_rtt, 99.9),
        load_pct(&load_rtt, 100), load_pct(&load_lat, 50),
        load_pct(&load_lat, 99), load_pct(&load_lat, 100),
        load_pct(&load_ol.svc, 50), load_pct(&load_ol.svc, 99));

    load_print_codes();
    printf("\n");

    if (load_opt.timeline != NULL) {
        load_write_timeline();
    }
}


static void
load_usage(void)
{
    fprintf(stderr,
        "usage: amon-load --panel-url ws://IP:PORT/path --sdk-port P[,P...]\n"
        "         [--mode fanout|actions|idle] [--panels N] [--sdk-conns K]\n"
        "         [--duration S] [--warmup S] [--size BYTES] [--rate R]\n"
        "         [--inflight W] [--action-rate R] [--ack-timeout S]\n"
        "         [--max-actions N] [--target-prefix S] [--quiet]\n"
        "         [--timeline FILE] [--spin US]\n"
        "  --sdk-conns: connections each fake SDK waits for before the\n"
        "    run (the agent's worker count; the panel count behind a\n"
        "    plain proxy); --rate: heartbeats/s per SDK (0: as fast as\n"
        "    the agent reads); --size: heartbeat padding in bytes;\n"
        "    --action-rate: actions mode as an open loop, R actions/s over\n"
        "    all panels on a fixed schedule, round trips counted from the\n"
        "    scheduled time; --ack-timeout: an ack later than S seconds\n"
        "    (default 1) is late, and the run waits that long for the\n"
        "    last ones; --max-actions N: the closed loop ends after N\n"
        "    answers in the window (or at --duration); --timeline FILE:\n"
        "    the open loop writes each measured action's due time, round\n"
        "    trip (us) and whether it was an error; every run prints its\n"
        "    final errors by code (error_codes=); --spin US: the open\n"
        "    loop spins through gaps shorter than this (default 20) and\n"
        "    sleeps longer ones; 0 under a real-time policy, whose\n"
        "    throttling would stop a spinning loop for 50 ms a second;\n"
        "  --mode idle: wait for the SDK connections, print\n"
        "    \"sdks_ready\", wait --warmup seconds, open half of the\n"
        "    panels, print \"half_ready\", wait --warmup seconds, open the\n"
        "    rest, print \"ready\", keep everything open and silent for\n"
        "    --duration seconds, then print how many stayed open (for\n"
        "    memory per idle connection, measured by the caller)\n");
    exit(2);
}


static void
load_options(int argc, char **argv)
{
    int         o;
    char       *p, *s;
    const char *url;

    static const struct option opts[] = {{"mode", required_argument, NULL, 'm'},
        {"panel-url", required_argument, NULL, 'u'},
        {"panels", required_argument, NULL, 'n'},
        {"sdk-port", required_argument, NULL, 'p'},
        {"sdk-conns", required_argument, NULL, 'k'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"inflight", required_argument, NULL, 'i'},
        {"target-prefix", required_argument, NULL, 't'},
        {"action-rate", required_argument, NULL, 'a'},
        {"ack-timeout", required_argument, NULL, 'T'},
        {"max-actions", required_argument, NULL, 'M'},
        {"timeline", required_argument, NULL, 'L'},
        {"spin", required_argument, NULL, 'S'},
        {"quiet", no_argument, NULL, 'q'}, {NULL, 0, NULL, 0}};

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': load_opt.mode = optarg; break;
        case 'u': load_opt.panel_url = optarg; break;
        case 'n': load_opt.panels = atoi(optarg); break;
        case 'k': load_opt.sdk_conns = atoi(optarg); break;
        case 'd': load_opt.duration = atof(optarg); break;
        case 'w': load_opt.warmup = atof(optarg); break;
        case 's': load_opt.size = (size_t) atol(optarg); break;
        case 'r': load_opt.rate = atof(optarg); break;
        case 'i': load_opt.inflight = (unsigned) atoi(optarg); break;
        case 't': load_opt.prefix = optarg; break;
        case 'q': load_opt.quiet = 1; break;
        case 'a': load_opt.action_rate = atof(optarg); break;
        case 'T': load_opt.ack_timeout = atof(optarg); break;
        case 'M': load_opt.max_actions = strtoull(optarg, NULL, 10); break;
        case 'L': load_opt.timeline = optarg; break;
        case 'S': load_opt.spin = strtoull(optarg, NULL, 10) * 1000; break;
        case 'p':
            for (s = strtok_r(optarg, ",", &p); s != NULL;
                 s = strtok_r(NULL, ",", &p)) {
                if (load_opt.nsdks == LOAD_MAX_SDKS) {
                    load_usage();
                }

                load_opt.sdk_ports[load_opt.nsdks++] = atoi(s);
            }

            break;
        default: load_usage();
        }
    }

    url = load_opt.panel_url;

    if (url == NULL || load_opt.nsdks == 0 || load_opt.panels < 1
        || load_opt.inflight < 1 || load_opt.inflight > LOAD_RING / 2
        || load_opt.size > 4 * 1024 * 1024 || load_opt.action_rate < 0
        || load_opt.ack_timeout <= 0
        || (load_opt.action_rate > 0 && strcmp(load_opt.mode, "actions") != 0)
        || (strcmp(load_opt.mode, "fanout") != 0
            && strcmp(load_opt.mode, "actions") != 0
            && strcmp(load_opt.mode, "idle") != 0)
        || amon_ws_url_parse(
               (const unsigned char *) url, strlen(url), &load_url)
            != AMON_OK) {
        load_usage();
    }
}


/* --mode idle: say how far it got, for the caller to read the memory */
static void
load_idle_say(const char *what)
{
    printf("%s panels=%d sdk_conns=%d\n", what, load_panels_open,
        load_sdk_open[0]);
    fflush(stdout);
}


/*
 * --mode idle, before the rest of the panels: the SDK connections, then
 * half of the panels, each step said ("sdks_ready", "half_ready") and
 * followed by --warmup seconds of quiet.  Returns how many panels it
 * connected, -1 when they did not open.
 */
static int
load_idle_open(void)
{
    int i, half;

    if (load_wait_ready(0) != 0) {
        return -1;
    }

    load_idle_say("sdks_ready");
    load_quiet(load_opt.warmup);

    half = load_opt.panels / 2;
    for (i = 0; i < half; i++) {
        load_panel_connect(i);
    }

    if (load_wait_ready(half) != 0) {
        return -1;
    }

    load_idle_say("half_ready");
    load_quiet(load_opt.warmup);

    return half;
}


/*
 * --mode idle: every connection is open; say so, keep them silent for
 * --duration seconds, then say how many are still open.
 */
static int
load_idle_run(void)
{
    int i, sdks;

    load_idle_say("ready");
    load_quiet(load_opt.duration);

    sdks = 0;
    for (i = 0; i < load_opt.nsdks; i++) {
        sdks += load_sdk_open[i];
    }

    printf("mode=idle panels=%d panels_open=%d sdk_conns=%d sdk_open=%d "
           "other=%llu errors=%llu\n",
        load_opt.panels, load_panels_open, load_opt.sdk_conns * load_opt.nsdks,
        sdks, (unsigned long long) load_other,
        (unsigned long long) load_errors);

    /* behind a proxy the panels' upstreams come after --sdk-conns 0 */
    return load_panels_open == load_opt.panels
            && sdks >= load_opt.sdk_conns * load_opt.nsdks
        ? 0
        : 1;
}


/*
 * The closed loop (fan-out, or actions with a fixed number in flight per
 * panel) until the window ends; returns the seconds measured.
 */
static double
load_closed_run(int fanout)
{
    int      i;
    double   t, start, measured;
    uint64_t emissions;

    if (!fanout) {
        for (i = 0; i < LOAD_MAX_CONNS; i++) {
            if (load_conns[i] && load_conns[i]->kind == LOAD_PANEL) {
                while (load_conns[i]->inflight < load_opt.inflight) {
                    load_panel_action(load_conns[i]);
                }
            }
        }
    }

    emissions = 0;
    start = (double) bench_now_ns() / 1e9;
    measured = 0;

    for (;;) {
        t = (double) bench_now_ns() / 1e9 - start;

        if (!load_measuring && t >= load_opt.warmup) {
            load_measuring = 1;
            load_win_start = bench_now_ns();
            measured = t;
        }

        if (t >= load_opt.warmup + load_opt.duration) {
            break;
        }

        if (load_opt.max_actions && load_acks >= load_opt.max_actions) {
            break; /* the measured window ends here */
        }

        if (fanout) {
            load_emit(t, &emissions);
        }

        load_poll(fanout && load_opt.rate <= 0 ? 0 : 1);
    }

    return (t < load_opt.warmup + load_opt.duration
                   ? t
                   : load_opt.warmup + load_opt.duration)
        - measured;
}


/* the window is closed: collect the heartbeats still on their way */
static void
load_fanout_drain(void)
{
    uint64_t t0, last, quiet;

    load_win_end = bench_now_ns();
    last = load_delivered;
    t0 = bench_now_ns();
    quiet = t0;

    while (bench_now_ns() - t0 < 3000000000ull
        && bench_now_ns() - quiet < 300000000ull) {
        load_poll(10);
        if (load_delivered != last) {
            last = load_delivered;
            quiet = bench_now_ns();
        }
    }
}


static void
load_closed_report(int fanout, double measured)
{
    double expected;

    qsort(load_lat.v, load_lat.n, sizeof(uint32_t), load_cmp_u32);
    qsort(load_rtt.v, load_rtt.n, sizeof(uint32_t), load_cmp_u32);

    /* every SDK connection sent each heartbeat; every panel gets it once
       from each SDK (one copy per worker's panels) */
    expected = (double) load_emitted / load_opt.sdk_conns * load_opt.panels;

    if (!fanout) {
        printf("mode=actions panels=%d sdks=%d inflight=%u seconds=%.2f "
               "actions_per_s=%.0f acks=%llu rtt_p50_us=%.0f "
               "rtt_p99_us=%.0f errors=%llu",
            load_opt.panels, load_opt.nsdks, load_opt.inflight, measured,
            (double) load_acks / measured, (unsigned long long) load_acks,
            load_pct(&load_rtt, 50), load_pct(&load_rtt, 99),
            (unsigned long long) load_errors);

        load_print_codes();
        printf("\n");
        return;
    }

    printf("mode=fanout panels=%d sdks=%d sdk_conns=%d size=%zu "
           "rate=%.0f seconds=%.2f emitted_per_s=%.0f "
           "delivered_per_s=%.0f expected_per_s=%.0f loss_pct=%.2f "
           "mb_in_per_s=%.1f lat_p50_us=%.0f lat_p99_us=%.0f "
           "errors=%llu other=%llu\n",
        load_opt.panels, load_opt.nsdks, load_opt.sdk_conns, load_opt.size,
        load_opt.rate, measured, (double) load_emitted / measured,
        (double) load_delivered / measured, expected / measured,
        expected > 0 ? 100.0 * (expected - (double) load_delivered) / expected
                     : 0.0,
        (double) load_bytes_in / measured / 1e6, load_pct(&load_lat, 50),
        load_pct(&load_lat, 99), (unsigned long long) load_errors,
        (unsigned long long) load_other);
}


int
main(int argc, char **argv)
{
    int    i, fanout;
    double measured;

    load_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    fanout = strcmp(load_opt.mode, "fanout") == 0;
    load_pad = bench_alloc(load_opt.size + 512);
    load_lat.v = bench_alloc(sizeof(uint32_t) * LOAD_SAMPLES);
    load_rtt.v = bench_alloc(sizeof(uint32_t) * LOAD_SAMPLES);

    amon_posix_random((unsigned char *) &load_run, sizeof(load_run));

    load_run %= 1000000000u;
    srand((unsigned) load_run);

    load_ep = epoll_create1(0);
    if (load_ep == -1) {
        bench_die("epoll_create1");
    }

    for (i = 0; i < load_opt.nsdks; i++) {
        load_listen(i, load_opt.sdk_ports[i]);
    }

    i = 0;

    if (strcmp(load_opt.mode, "idle") == 0) {
        i = load_idle_open();
        if (i < 0) {
            return 1;
        }
    }

    for (; i < load_opt.panels; i++) {
        load_panel_connect(i);
    }

    /* every panel open, every SDK dialed by every worker, then settle */
    if (load_wait_ready(load_opt.panels) != 0) {
        return 1;
    }

    load_quiet(0.3);

    if (load_opt.action_rate > 0) {
        load_open_run();
        load_open_report();
        return 0;
    }

    if (strcmp(load_opt.mode, "idle") == 0) {
        return load_idle_run();
    }

    measured = load_closed_run(fanout);

    if (fanout) {
        load_fanout_drain();
    }

    load_closed_report(fanout, measured);

    return 0;
}

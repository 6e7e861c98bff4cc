/*
 * Copyright (C) AMonitor authors
 *
 * Load generator for the scale case: K processes play N SDKs (target i
 * listens on the port of process i % K, answers every agent connection in
 * an epoll loop and sends each a heartbeat every interval, the targets'
 * heartbeats spread evenly over it), Q processes play M panels subscribed
 * to random targets (?targets=) plus panels that take everything.  The
 * parent coordinates them through shared memory, samples the nginx
 * workers in /proc and prints latency, deliveries against what the
 * subscriptions promise, connect times and costs.
 */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scale-load.h"


scale_opt_t scale_opt = {2000, 2000, 10, 10, 2, 0, 0, 0, 64, 10.0, 30.0, -1.0,
    5.0, 180.0, 1, "t", "/ws/panel", NULL, 0};

scale_shared_t *scale_sh;
scale_child_t  *scale_me;
int             scale_ep;
int             scale_k;
int            *scale_subs;
unsigned       *scale_nsubs;
uint32_t       *scale_ticks;
unsigned char  *scale_rbuf;
scale_conn_t  **scale_fds;
int             scale_nfds;

static volatile sig_atomic_t scale_quit;
static uint64_t              scale_nginx_seen; /* ns: pid file appeared */


/* --- the parent ---------------------------------------------------------- */

typedef struct {
    pid_t    pid;
    uint64_t cpu; /* utime + stime, clock ticks */
    uint64_t rss; /* bytes */
    uint64_t pss;
    int      fds;
} scale_proc_t;


static void
scale_proc_read(pid_t pid, scale_proc_t *p)
{
    char               path[64], line[256], buf[1024], *q;
    FILE              *f;
    DIR               *d;
    size_t             n;
    unsigned long long ut, st, kb;

    p->pid = pid;
    p->cpu = p->rss = p->pss = 0;
    p->fds = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';

    /* after "(comm)": state ppid ... utime (14th field) stime (15th) */
    q = strrchr(buf, ')');
    if (q
        && sscanf(q + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
               &st)
            == 2) {
        p->cpu = ut + st;
    }

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
                p->rss = kb * 1024;

            } else if (sscanf(line, "Pss: %llu kB", &kb) == 1) {
                p->pss = kb * 1024;
            }
        }

        fclose(f);
    }

    snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
    d = opendir(path);
    if (d) {
        while (readdir(d)) {
            p->fds++;
        }

        closedir(d);
        p->fds -= 2; /* "." and ".." */
    }
}


/* the children of the nginx master: its workers */
static int
scale_workers(pid_t master, pid_t *out, int max)
{
    int            n, ppid;
    char           path[300], buf[512], *q;
    FILE          *f;
    DIR           *d;
    size_t         len;
    struct dirent *e;

    n = 0;
    d = opendir("/proc");
    if (d == NULL) {
        bench_die("opendir /proc");
    }

    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';

        q = strrchr(buf, ')');
        if (q && sscanf(q + 2, "%*c %d", &ppid) == 1 && ppid == master) {
            out[n++] = (pid_t) atoi(e->d_name);
        }
    }

    closedir(d);
    return n;
}


static void
scale_usage(void)
{
    fprintf(stderr,
        "usage: scale-load --panel-port P --pid-file FILE [--targets N]\n"
        "         [--panels M] [--per-panel 10] [--all 10] [--workers 2]\n"
        "         [--sdk-procs K] [--panel-procs Q] [--interval 10]\n"
        "         [--duration 30] [--settle S] [--drain 5] [--batch 64]\n"
        "         [--ready-timeout 180] [--seed 1] [--target-prefix t]\n"
        "         [--path /ws/panel] [--hold]\n"
        "  Prints \"listening P0,P1,...\": target i is ws://127.0.0.1:\n"
        "  P(i %% K)/<prefix>i; start nginx then (it writes --pid-file).\n"
        "  --hold: after the report print \"end\" and keep every\n"
        "  connection open until SIGTERM.\n");
    exit(2);
}


static void
scale_options(int argc, char **argv)
{
    int o;

    static const struct option opts[] = {
        {"targets", required_argument, NULL, 'n'},
        {"panels", required_argument, NULL, 'm'},
        {"per-panel", required_argument, NULL, 'e'},
        {"all", required_argument, NULL, 'a'},
        {"workers", required_argument, NULL, 'w'},
        {"sdk-procs", required_argument, NULL, 'k'},
        {"panel-procs", required_argument, NULL, 'q'},
        {"panel-port", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'},
        {"interval", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'd'},
        {"settle", required_argument, NULL, 's'},
        {"drain", required_argument, NULL, 'r'},
        {"ready-timeout", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 'S'},
        {"target-prefix", required_argument, NULL, 't'},
        {"path", required_argument, NULL, 'P'},
        {"pid-file", required_argument, NULL, 'f'},
        {"hold", no_argument, NULL, 'H'}, {NULL, 0, NULL, 0}};

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': scale_opt.targets = atoi(optarg); break;
        case 'm': scale_opt.panels = atoi(optarg); break;
        case 'e': scale_opt.per_panel = atoi(optarg); break;
        case 'a': scale_opt.all = atoi(optarg); break;
        case 'w': scale_opt.workers = atoi(optarg); break;
        case 'k': scale_opt.sdk_procs = atoi(optarg); break;
        case 'q': scale_opt.panel_procs = atoi(optarg); break;
        case 'p': scale_opt.panel_port = atoi(optarg); break;
        case 'b': scale_opt.batch = atoi(optarg); break;
        case 'i': scale_opt.interval = atof(optarg); break;
        case 'd': scale_opt.duration = atof(optarg); break;
        case 's': scale_opt.settle = atof(optarg); break;
        case 'r': scale_opt.drain = atof(optarg); break;
        case 'T': scale_opt.ready_timeout = atof(optarg); break;
        case 'S': scale_opt.seed = (unsigned) atoi(optarg); break;
        case 't': scale_opt.prefix = optarg; break;
        case 'P': scale_opt.path = optarg; break;
        case 'f': scale_opt.pid_file = optarg; break;
        case 'H': scale_opt.hold = 1; break;
        default: scale_usage();
        }
    }

    /*
     * One listening socket per SDK process, each dialed by at most ~2,000
     * agent connections: a worker dials every target at once when it
     * starts, and an accept queue (net.core.somaxconn, 4096 here) that
     * overflows drops SYNs, which the agent sees as connect timeouts.
     */
    if (scale_opt.sdk_procs == 0) {
        scale_opt.sdk_procs =
            (scale_opt.targets * scale_opt.workers + 1999) / 2000;
        scale_opt.sdk_procs += scale_opt.sdk_procs < 2;
    }

    if (scale_opt.panel_procs == 0) {
        scale_opt.panel_procs =
            (scale_opt.panels + scale_opt.all + 4999) / 5000;
    }

    if (scale_opt.pid_file == NULL || scale_opt.panel_port <= 0
        || scale_opt.targets < 1 || scale_opt.panels < 0 || scale_opt.all < 0
        || scale_opt.panels + scale_opt.all < 1 || scale_opt.per_panel < 1
        || scale_opt.per_panel > SCALE_MAX_PER_PANEL
        || scale_opt.per_panel > scale_opt.targets || scale_opt.workers < 1
        || scale_opt.workers > SCALE_MAX_WORKERS || scale_opt.batch < 1
        || scale_opt.sdk_procs > scale_opt.targets
        || scale_opt.sdk_procs + scale_opt.panel_procs > SCALE_MAX_PROCS
        || scale_opt.interval <= 0 || scale_opt.duration <= 0) {
        scale_usage();
    }

    if (scale_opt.settle < 0) {
        scale_opt.settle = scale_opt.interval + 1;
    }
}


/* each panel: per_panel distinct random targets */
static void
scale_subscribe(void)
{
    int p, j, i, t, dup;

    scale_subs = bench_alloc(
        sizeof(int) * (size_t) (scale_opt.panels + 1) * scale_opt.per_panel);
    scale_nsubs = bench_alloc(sizeof(unsigned) * (size_t) scale_opt.targets);
    srand(scale_opt.seed);

    for (p = 0; p < scale_opt.panels; p++) {
        for (j = 0; j < scale_opt.per_panel; j++) {
            do {
                t = (int) (((unsigned) rand() << 15 ^ (unsigned) rand())
                    % (unsigned) scale_opt.targets);
                dup = 0;
                for (i = 0; i < j; i++) {
                    dup |= scale_subs[p * scale_opt.per_panel + i] == t;
                }
            } while (dup);

            scale_subs[p * scale_opt.per_panel + j] = t;
            scale_nsubs[t]++;
        }
    }
}


static int
scale_listen(int *port)
{
    int                fd, one = 1;
    socklen_t          len;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        bench_die("socket");
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    /* the kernel caps the backlog at net.core.somaxconn */
    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 65535) == -1
        || getsockname(fd, (struct sockaddr *) &sin, &len) == -1) {
        bench_die("listen for the SDKs");
    }

    *port = ntohs(sin.sin_port);
    return fd;
}


static int
scale_sum_open(int role)
{
    int i, n = 0;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        if (scale_sh->child[i].role == role) {
            n += scale_sh->child[i].open;
        }
    }

    return n;
}


/* wait until "want" of "role" are open; returns the seconds it took */
static double
scale_wait_open(int role, int want, const char *what)
{
    uint64_t start, report;
    double   s;

    start = report = bench_now_ns();

    while (scale_sum_open(role) < want) {
        s = (double) (bench_now_ns() - start) / 1e9;
        if (s > scale_opt.ready_timeout) {
            printf("not_ready=%s open=%d want=%d after_s=%.0f\n", what,
                scale_sum_open(role), want, s);
            return -1;
        }

        if (bench_now_ns() - report > 5000000000ull) {
            report = bench_now_ns();
            fprintf(stderr, "scale-load: %s: %d of %d open after %.0f s\n",
                what, scale_sum_open(role), want, s);
        }

        scale_sleep_ms(20);
    }

    return (double) (bench_now_ns() - start) / 1e9;
}


static pid_t
scale_wait_nginx(void)
{
    int   pid;
    FILE *f;
    int   i;

    for (i = 0; i < 3000; i++) {
        f = fopen(scale_opt.pid_file, "r");
        if (f) {
            pid = 0;
            if (fscanf(f, "%d", &pid) == 1 && pid > 0) {
                fclose(f);
                return (pid_t) pid;
            }

            fclose(f);
        }

        scale_sleep_ms(20);
    }

    fprintf(
        stderr, "scale-load: no pid in %s after 60 s\n", scale_opt.pid_file);
    exit(1);
}


static void
scale_fork(int *lfd)
{
    int            i, k, role;
    pid_t          pid;
    scale_child_t *ch;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        role = i < scale_opt.sdk_procs ? SCALE_SDK : SCALE_PANEL;
        k = role == SCALE_SDK ? i : i - scale_opt.sdk_procs;
        ch = &scale_sh->child[i];
        ch->role = role;

        pid = fork();
        if (pid == -1) {
            bench_die("fork");
        }

        if (pid) {
            ch->pid = pid;
            continue;
        }

        /* a driver that is interrupted leaves no player behind */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        scale_me = ch;
        scale_k = k;

        if (role == SCALE_SDK) {
            scale_sdk_run(lfd[k]);
        }

        scale_panel_run();
    }

    for (i = 0; i < scale_opt.sdk_procs; i++) {
        close(lfd[i]);
    }
}


static void
scale_on_term(int signo)
{
    scale_quit = 1;
}


static void
scale_sample(pid_t *pids, int n, scale_proc_t *out)
{
    int i;

    for (i = 0; i < n; i++) {
        scale_proc_read(pids[i], &out[i]);
    }
}


/* the window is closed: wait until what was made in it stops arriving */
static void
scale_drain(void)
{
    int      i;
    uint64_t last, end;

    end = scale_sh->win_end + (uint64_t) (scale_opt.drain * 1e9);

    while (bench_now_ns() < end) {
        last = scale_sh->win_end;
        for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
            if (scale_sh->child[i].last_read > last) {
                last = scale_sh->child[i].last_read;
            }
        }

        if (bench_now_ns() - last > 1000000000ull) {
            break;
        }

        scale_sleep_ms(50);
    }
}


static void
scale_stop(void)
{
    int   i, status;
    pid_t pid;

    scale_sh->phase = SCALE_PHASE_DONE;

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        pid = scale_sh->child[i].pid;
        if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status)
            || WEXITSTATUS(status) != 0) {
            printf("child_failed=%d\n", (int) pid);
        }
    }
}


static void
scale_report_window(void)
{
    int           i;
    size_t        b;
    double        expected;
    uint64_t      lat[SCALE_BUCKETS], sub[SCALE_BUCKETS], all[SCALE_BUCKETS];
    scale_child_t t;

    memset(&t, 0, sizeof(t));
    memset(lat, 0, sizeof(lat));
    memset(sub, 0, sizeof(sub));
    memset(all, 0, sizeof(all));

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        t.ticks += scale_sh->child[i].ticks;
        t.partial += scale_sh->child[i].partial;
        t.missed += scale_sh->child[i].missed;
        t.frames += scale_sh->child[i].frames;
        t.buffered += scale_sh->child[i].buffered;
        t.delivered += scale_sh->child[i].delivered;
        t.wrong += scale_sh->child[i].wrong;
        t.other += scale_sh->child[i].other;
        t.bad += scale_sh->child[i].bad;
        t.closed += scale_sh->child[i].closed;
        t.refused += scale_sh->child[i].refused;
    }

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        for (b = 0; b < SCALE_BUCKETS; b++) {
            sub[b] += scale_sh->child[i].lat[b];
            all[b] += scale_sh->child[i].lat_all[b];
            lat[b] += scale_sh->child[i].lat[b] + scale_sh->child[i].lat_all[b];
        }
    }

    /* every heartbeat made reaches its subscribers and the 'all' panels */
    expected = 0;
    for (i = 0; i < scale_opt.targets; i++) {
        expected += (double) scale_ticks[i]
            * (double) (scale_nsubs[i] + (unsigned) scale_opt.all);
    }

    printf("window_s=%.1f heartbeats=%llu partial=%llu missed=%llu "
           "frames_sent=%llu buffered_sends=%llu\n",
        (double) (scale_sh->win_end - scale_sh->win_start) / 1e9,
        (unsigned long long) t.ticks, (unsigned long long) t.partial,
        (unsigned long long) t.missed, (unsigned long long) t.frames,
        (unsigned long long) t.buffered);
    printf("deliveries=%llu expected=%.0f loss_pct=%.3f wrong=%llu "
           "other=%llu bad=%llu lat_p50_ms=%.2f lat_p99_ms=%.2f "
           "lat_p999_ms=%.2f lat_max_ms=%.2f\n",
        (unsigned long long) t.delivered, expected,
        expected > 0 ? 100.0 * (expected - (double) t.delivered) / expected
                     : 0.0,
        (unsigned long long) t.wrong, (unsigned long long) t.other,
        (unsigned long long) t.bad, scale_hist_pct(lat, 50),
        scale_hist_pct(lat, 99), scale_hist_pct(lat, 99.9),
        scale_hist_max(lat));
    printf("subscribed_panels_p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
           "all_panels_p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
        scale_hist_pct(sub, 50), scale_hist_pct(sub, 99), scale_hist_max(sub),
        scale_hist_pct(all, 50), scale_hist_pct(all, 99), scale_hist_max(all));
    printf("connections_closed=%llu handshakes_failed=%llu\n",
        (unsigned long long) t.closed, (unsigned long long) t.refused);
}


static void
scale_report_connect(double sdk_s, double panel_s)
{
    int      i;
    size_t   b;
    uint64_t conn[SCALE_BUCKETS], req[SCALE_BUCKETS], last = 0;
    uint64_t accepted = 0, refused = 0;

    memset(conn, 0, sizeof(conn));
    memset(req, 0, sizeof(req));

    for (i = 0; i < scale_opt.sdk_procs + scale_opt.panel_procs; i++) {
        if (scale_sh->child[i].role == SCALE_SDK) {
            accepted += scale_sh->child[i].accepted;
            refused += scale_sh->child[i].refused;
            if (scale_sh->child[i].last_accept > last) {
                last = scale_sh->child[i].last_accept;
            }

            for (b = 0; b < SCALE_BUCKETS; b++) {
                req[b] += scale_sh->child[i].conn[b];
            }

            continue;
        }

        for (b = 0; b < SCALE_BUCKETS; b++) {
            conn[b] += scale_sh->child[i].conn[b];
        }
    }

    printf("sdks=%d workers=%d sdk_procs=%d sdk_conns_up_s=%.2f "
           "sdk_accepted=%llu sdk_handshakes_failed=%llu\n",
        scale_opt.targets, scale_opt.workers, scale_opt.sdk_procs, sdk_s,
        (unsigned long long) accepted, (unsigned long long) refused);
    printf("sdk_last_accept_s=%.2f sdk_accept_to_request_p50_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
        last > scale_nginx_seen ? (double) (last - scale_nginx_seen) / 1e9
                                : 0.0,
        scale_hist_pct(req, 50), scale_hist_pct(req, 99), scale_hist_max(req));
    printf("panels=%d+%d per_panel=%d panel_procs=%d panels_up_s=%.2f "
           "connect_p50_ms=%.2f connect_p99_ms=%.2f connect_max_ms=%.2f\n",
        scale_opt.panels, scale_opt.all, scale_opt.per_panel,
        scale_opt.panel_procs, panel_s, scale_hist_pct(conn, 50),
        scale_hist_pct(conn, 99), scale_hist_max(conn));
}


static void
scale_report_procs(int nw, scale_proc_t *sdk, scale_proc_t *pan,
    scale_proc_t *c0, scale_proc_t *c1, scale_proc_t *l0, scale_proc_t *l1)
{
    int    i, nl;
    double hz, window, cpu, lsdk, lpan;

    hz = (double) sysconf(_SC_CLK_TCK);
    window = (double) (scale_sh->win_end - scale_sh->win_start) / 1e9;
    cpu = 0;

    for (i = 0; i < nw; i++) {
        printf("worker pid=%d fds=%d rss_mib=%.1f pss_mib=%.1f "
               "rss_after_sdks_mib=%.1f rss_after_panels_mib=%.1f "
               "cpu_s=%.2f\n",
            (int) c1[i].pid, c1[i].fds, (double) c1[i].rss / 1048576.0,
            (double) c1[i].pss / 1048576.0, (double) sdk[i].rss / 1048576.0,
            (double) pan[i].rss / 1048576.0,
            (double) (c1[i].cpu - c0[i].cpu) / hz);
        cpu += (double) (c1[i].cpu - c0[i].cpu) / hz;
    }

    lsdk = lpan = 0;
    nl = scale_opt.sdk_procs + scale_opt.panel_procs;

    for (i = 0; i < nl; i++) {
        if (i < scale_opt.sdk_procs) {
            lsdk += (double) (l1[i].cpu - l0[i].cpu) / hz;

        } else {
            lpan += (double) (l1[i].cpu - l0[i].cpu) / hz;
        }
    }

    printf("workers_cpu_s=%.2f window_s=%.1f workers_cpu_pct_of_one_core=%.1f "
           "loadgen_sdk_cpu_pct=%.1f loadgen_panel_cpu_pct=%.1f\n",
        cpu, window, 100.0 * cpu / window, 100.0 * lsdk / window,
        100.0 * lpan / window);
}


int
main(int argc, char **argv)
{
    int          i, nw, nl, lfd[SCALE_MAX_PROCS], port[SCALE_MAX_PROCS];
    pid_t        master, w[SCALE_MAX_WORKERS * 4], kids[SCALE_MAX_PROCS];
    double       sdk_s, panel_s;
    scale_proc_t sdk[SCALE_MAX_WORKERS * 4], pan[SCALE_MAX_WORKERS * 4];
    scale_proc_t c0[SCALE_MAX_WORKERS * 4], c1[SCALE_MAX_WORKERS * 4];
    scale_proc_t l0[SCALE_MAX_PROCS], l1[SCALE_MAX_PROCS];

    scale_options(argc, argv);
    scale_raise_nofile();
    scale_subscribe();
    signal(SIGTERM, scale_on_term);

    scale_sh = mmap(NULL,
        sizeof(scale_shared_t) + sizeof(uint32_t) * (size_t) scale_opt.targets,
        PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (scale_sh == MAP_FAILED) {
        bench_die("mmap");
    }

    scale_ticks = (uint32_t *) (scale_sh + 1);

    printf("listening ");
    for (i = 0; i < scale_opt.sdk_procs; i++) {
        lfd[i] = scale_listen(&port[i]);
        printf("%s%d", i ? "," : "", port[i]);
    }

    printf("\n");
    fflush(stdout);

    scale_sh->t0 = bench_now_ns();
    scale_fork(lfd);

    nl = scale_opt.sdk_procs + scale_opt.panel_procs;
    for (i = 0; i < nl; i++) {
        kids[i] = scale_sh->child[i].pid;
    }

    master = scale_wait_nginx();
    scale_nginx_seen = bench_now_ns();
    sdk_s = scale_wait_open(
        SCALE_SDK, scale_opt.targets * scale_opt.workers, "SDK connections");
    nw = scale_workers(master, w, SCALE_MAX_WORKERS * 4);
    scale_sample(w, nw, sdk);

    scale_sh->phase = SCALE_PHASE_PANELS;
    panel_s = scale_wait_open(
        SCALE_PANEL, scale_opt.panels + scale_opt.all, "panels");
    scale_sample(w, nw, pan);
    scale_report_connect(sdk_s, panel_s);
    fflush(stdout);

    scale_sleep_ms((int) (scale_opt.settle * 1000));

    scale_sample(w, nw, c0);
    scale_sample(kids, nl, l0);
    scale_sh->win_start = bench_now_ns();
    scale_sleep_ms((int) (scale_opt.duration * 1000));
    scale_sh->win_end = bench_now_ns();
    scale_sample(w, nw, c1);
    scale_sample(kids, nl, l1);

    scale_drain();

    /* the players stay connected while the report is read */
    scale_report_window();
    scale_report_procs(nw, sdk, pan, c0, c1, l0, l1);

    if (scale_opt.hold) {
        printf("end\n");
        fflush(stdout);

        while (!scale_quit) {
            pause();
        }
    }

    scale_stop();

    return 0;
}

/*
 * Copyright (C) AMonitor authors
 *
 * The load generator's shared state: its options, connections, counters
 * and the open loop's schedule, and the functions its files share
 * (amon-load.c: the run and its report; amon-load-conn.c: sockets,
 * buffers and samples; amon-load-msg.c: what the SDKs and panels say).
 */

#ifndef AMON_LOAD_H
#define AMON_LOAD_H


#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_ws_session.h"
#include "amon_posix.h"
#include "bench-util.h"


#define LOAD_MAX_SDKS    64
#define LOAD_MAX_CONNS   65536
#define LOAD_READ        (256 * 1024)
#define LOAD_RING        8192 /* action send times per panel */
#define LOAD_SDK_LOW     (64 * 1024) /* refill an SDK's buffer below this */
#define LOAD_BATCH       16 /* heartbeats per refill */
#define LOAD_SAMPLES     (1 << 21)
#define LOAD_MAX_MESSAGE (16 * 1024 * 1024)
#define LOAD_SPIN_NS     20000 /* default --spin */


typedef enum { LOAD_LISTEN = 0, LOAD_SDK, LOAD_PANEL } load_kind_e;


typedef struct {
    int                      fd;
    load_kind_e              kind;
    int                      open;
    int                      dirty;
    int                      writing;
    int                      sdk; /* index of the SDK (LOAD_LISTEN, LOAD_SDK) */
    int                      id; /* panel number */
    unsigned char            key[AMON_WS_KEY_LEN];
    unsigned char            mask[4]; /* a panel masks every frame with it */
    amon_ws_session_t        session;
    amon_ws_request_parser_t request; /* the SDK side's handshake */
    unsigned char           *in;
    size_t                   in_len;
    unsigned char           *out;
    size_t                   out_pos;
    size_t                   out_len;
    size_t                   out_cap;
    uint64_t                 seq;
    unsigned                 inflight;
    uint64_t                *sent_at;
} load_conn_t;


typedef struct {
    uint32_t *v;
    size_t    n;
    uint64_t  seen;
} load_samples_t;


typedef struct {
    const char *mode;
    const char *panel_url;
    int         panels;
    int         sdk_ports[LOAD_MAX_SDKS];
    int         nsdks;
    int         sdk_conns;
    double      duration;
    double      warmup;
    size_t      size;
    double      rate;
    unsigned    inflight;
    const char *prefix;
    int         quiet;
    double      action_rate; /* > 0: open loop, actions/s on all panels */
    double      ack_timeout; /* seconds: an ack later than this is late */
    uint64_t    max_actions; /* > 0: the closed loop ends after so many */
    const char *timeline; /* open loop: one line per action */
    uint64_t    spin; /* ns: the open loop sleeps only longer gaps */
} load_opt_t;


/*
 * The open loop: action k (over all panels, panel k % panels) is due at
 * start + k / rate, whatever has been answered; its round trip is counted
 * from that time, so a stall of the agent (or of this loop) shows in the
 * latency of every action that should have been sent meanwhile.
 */
typedef struct {
    uint64_t       start; /* ns */
    uint64_t       n; /* actions in the schedule */
    uint64_t       sent;
    uint64_t       first; /* the measured actions: first <= k < last */
    uint64_t       last;
    uint64_t       win_start; /* ns: the measured window */
    uint64_t       win_end;
    uint64_t      *due; /* ns: when action k was due; 0 once answered */
    uint64_t      *sent_at; /* ns: when it was written */
    uint64_t       open; /* measured actions not answered yet */
    uint64_t       acks; /* final acks of measured actions */
    uint64_t       errors; /* final errors of measured actions */
    uint64_t       late; /* acks later than --ack-timeout */
    uint64_t       notices; /* replies with "final":false */
    uint64_t       stray; /* replies to no action in flight */
    uint64_t       in_window; /* answers read during the window */
    load_samples_t svc; /* round trip from the write, microseconds */
    uint32_t      *rtt_of; /* --timeline: round trip of action k, us */
    unsigned char *err_of; /* --timeline: action k was answered an error */
} load_ol_t;


extern load_opt_t load_opt;
extern load_ol_t  load_ol;


extern int            load_ep;
extern load_conn_t   *load_conns[LOAD_MAX_CONNS];
extern load_conn_t   *load_dirty[LOAD_MAX_CONNS];
extern load_conn_t   *load_sdks[LOAD_MAX_CONNS]; /* open SDK connections */
extern int            load_nsdk_conns;
extern int            load_ndirty;
extern int            load_sdk_open[LOAD_MAX_SDKS];
extern int            load_panels_open;
extern int            load_measuring;
extern uint64_t       load_win_start; /* ns: heartbeats sent in the */
extern uint64_t       load_win_end; /* window are the ones counted */
extern uint64_t       load_run;
extern amon_ws_url_t  load_url;
extern unsigned char *load_pad;

/* counters, reset when the measurement starts */
extern uint64_t       load_emitted; /* heartbeats an SDK sent, per conn */
extern uint64_t       load_delivered; /* heartbeats panels received */
extern uint64_t       load_acks;
extern uint64_t       load_actions_sent;
extern uint64_t       load_other; /* target_status and such */
extern uint64_t       load_errors; /* error envelopes */
extern uint64_t       load_bytes_in;
extern load_samples_t load_lat; /* fan-out latency, microseconds */
extern load_samples_t load_rtt; /* action round trip, microseconds */


void         load_sample(load_samples_t *s, uint64_t us);
double       load_pct(load_samples_t *s, double p);
int          load_cmp_u32(const void *a, const void *b);
void         load_mask(void *data, unsigned char *key, size_t len);
void         load_set_nonblock(int fd);
load_conn_t *load_add(int fd, load_kind_e kind);
void         load_send_raw(load_conn_t *c, const void *data, size_t len);
void load_send_text(load_conn_t *c, const unsigned char *data, size_t len);
void load_close(load_conn_t *c, const char *why);
void load_flush(load_conn_t *c);
void load_listen(int sdk, int port);
void load_accept(load_conn_t *l);
void load_flush_dirty(void);

void load_print_codes(void);
void load_sdk_heartbeat(load_conn_t *c, uint64_t seq);
void load_panel_send_action(load_conn_t *c, uint64_t seq);
void load_panel_action(load_conn_t *c);
void load_panel_connect(int id);
void load_read(load_conn_t *c);


#endif /* AMON_LOAD_H */

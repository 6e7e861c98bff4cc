/*
 * Copyright (C) AMonitor authors
 *
 * scale-load: what its files share (bench/agent/scale-load.c has the
 * parent, scale-io.c the connections, scale-sdk.c and scale-panel.c the
 * players).
 */

#ifndef SCALE_LOAD_H
#define SCALE_LOAD_H


#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "amon_core.h"
#include "amon_json.h"
#include "amon_ws_handshake.h"
#include "amon_ws_session.h"
#include "bench-util.h"


#define SCALE_MAX_PROCS     64
#define SCALE_MAX_PER_PANEL 64
#define SCALE_MAX_CONNS     16 /* agent connections kept per target */
#define SCALE_BUCKETS       2048
#define SCALE_SUB           64 /* histogram sub-buckets per power of two */
#define SCALE_READ          (256 * 1024)
#define SCALE_HS            4096 /* handshake bytes kept per connection */
#define SCALE_MAX_MESSAGE   (1024 * 1024)
#define SCALE_MAX_WORKERS   16

#define SCALE_PHASE_START  0
#define SCALE_PHASE_PANELS 1
#define SCALE_PHASE_DONE   2


typedef enum { SCALE_LISTEN = 0, SCALE_SDK, SCALE_PANEL } scale_kind_e;


typedef enum {
    SCALE_CONNECTING = 0, /* panel: TCP connect in progress */
    SCALE_HANDSHAKE,
    SCALE_OPEN
} scale_state_e;


/* what one child reports; the parent reads it while it runs and after */
typedef struct {
    pid_t    pid;
    int      role; /* SCALE_SDK or SCALE_PANEL */
    int      open; /* connections (SDK) or panels open now */
    uint64_t accepted; /* SDK: connections accepted */
    uint64_t closed; /* open connections that closed */
    uint64_t refused; /* handshakes that failed (and panel retries) */
    uint64_t ticks; /* SDK: heartbeats made in the window */
    uint64_t partial; /* ... on fewer connections than workers */
    uint64_t missed; /* ... due with no connection at all */
    uint64_t frames; /* SDK: heartbeat frames sent in the window */
    uint64_t buffered; /* SDK: sends that did not go out at once */
    uint64_t delivered; /* panel: window heartbeats read */
    uint64_t wrong; /* panel: heartbeats of a target not subscribed */
    uint64_t other; /* panel: other messages */
    uint64_t bad; /* messages that are not what was expected */
    uint64_t last_read; /* ns of the last window heartbeat read */
    uint64_t lat[SCALE_BUCKETS]; /* made -> read, microseconds */
    uint64_t last_accept; /* SDK: ns of the last connection accepted */
    uint64_t lat_all[SCALE_BUCKETS]; /* the same, panels taking all */
    uint64_t conn[SCALE_BUCKETS]; /* panel: connect -> 101; SDK: accept ->
                                     upgrade request read, microseconds */
} scale_child_t;


typedef struct {
    volatile int      phase;
    volatile uint64_t win_start; /* ns, CLOCK_MONOTONIC; 0: not yet */
    volatile uint64_t win_end;
    uint64_t          t0; /* heartbeat schedule origin */
    scale_child_t     child[SCALE_MAX_PROCS];
} scale_shared_t;


typedef struct {
    amon_ws_request_parser_t request; /* SDK side */
    size_t                   len;
    unsigned char            buf[SCALE_HS];
} scale_hs_t;


typedef struct {
    int               fd;
    scale_kind_e      kind;
    scale_state_e     state;
    int               id; /* target (SDK) or panel number */
    int               writing;
    scale_hs_t       *hs;
    unsigned char    *out;
    size_t            out_pos;
    size_t            out_len;
    size_t            out_cap;
    uint64_t          started; /* panel: connect() */
    unsigned char     key[AMON_WS_KEY_LEN];
    unsigned char     mask[4];
    amon_ws_session_t session;
} scale_conn_t;


typedef struct {
    scale_conn_t *c[SCALE_MAX_CONNS];
    int           n;
} scale_target_t;


typedef struct {
    int         targets;
    int         panels;
    int         per_panel;
    int         all;
    int         workers;
    int         sdk_procs;
    int         panel_procs;
    int         panel_port;
    int         batch;
    double      interval;
    double      duration;
    double      settle;
    double      drain;
    double      ready_timeout;
    unsigned    seed;
    const char *prefix;
    const char *path;
    const char *pid_file;
    int         hold;
} scale_opt_t;


extern scale_opt_t     scale_opt;
extern scale_shared_t *scale_sh;
extern scale_child_t  *scale_me; /* a child's own report */
extern int             scale_ep;
extern int             scale_k; /* a child's number within its role */
extern int            *scale_subs; /* panel p: per_panel target numbers */
extern unsigned       *scale_nsubs; /* per target: subscribed panels */
extern uint32_t       *scale_ticks; /* shared, per target: window ticks */
extern unsigned char  *scale_rbuf;
extern scale_conn_t  **scale_fds;
extern int             scale_nfds;


/*
 * What a child's role (SDK or panel player) does with its connections;
 * scale-io.c calls these, never the role's files (NULL: nothing to do).
 */
typedef struct {
    void (*accept)(scale_conn_t *l); /* a listener is readable */
    void (*connected)(scale_conn_t *c); /* a connect() ended */
    int (*handshake)(scale_conn_t *c, const unsigned char *p, size_t len,
        size_t *used); /* <0 failed, 0 more, >0 open */
    void (*message)(scale_conn_t *c, const unsigned char *p, size_t len);
    void (*detach)(scale_conn_t *c); /* an open connection closes */
    void (*lost)(scale_conn_t *c); /* one that never opened */
} scale_role_t;


/* scale-io.c */
void          scale_sleep_ms(int ms);
void          scale_hist_add(uint64_t *h, uint64_t us);
double        scale_hist_pct(const uint64_t *h, double p);
double        scale_hist_max(const uint64_t *h);
void          scale_raise_nofile(void);
scale_conn_t *scale_add(int fd, scale_kind_e kind, uint32_t events);
void          scale_events(scale_conn_t *c, uint32_t events);
void          scale_flush(scale_conn_t *c);
void          scale_send(scale_conn_t *c, const unsigned char *p, size_t len);
void          scale_close(scale_conn_t *c);
void          scale_fail(scale_conn_t *c);
void          scale_poll(int ms);
void          scale_child_init(const scale_role_t *role);

/* scale-sdk.c */
void scale_sdk_run(int lfd);

/* scale-panel.c */
void scale_panel_run(void);


#endif /* SCALE_LOAD_H */

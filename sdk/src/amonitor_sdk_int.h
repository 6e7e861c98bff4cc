/*
 * Copyright (C) AMonitor authors
 *
 * SDK internals shared by its source files: the private context, agent
 * connections, the cross-thread job queue and pending async actions.
 */

#ifndef AMONITOR_SDK_INT_H
#define AMONITOR_SDK_INT_H


#include <pthread.h>
#include <sys/types.h>

#include "amonitor.h"
#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_ws_session.h"
#include "amon_envelope.h"
#include "amon_json.h"
#include "amon_posix.h"


#define AMONITOR_READ_CHUNK       16384
#define AMONITOR_HANDSHAKE_MAX    8192
#define AMONITOR_HANDSHAKE_MS     10000
#define AMONITOR_CLOSING_MS       1000
#define AMONITOR_IDLE_AGENT_MS    60000
#define AMONITOR_METRICS_MAX      65536
#define AMONITOR_EVENT_NAME_MAX   AMON_MAX_ID_LEN
#define AMONITOR_CONN_HARD_FACTOR 4 /* acks may exceed the soft queue */
#define AMONITOR_PENDING_TIMEOUT  300000
#define AMONITOR_ACCEPT_BACKOFF   100
#define AMONITOR_LOG_INTERVAL     10000 /* rate-limited messages */


typedef enum {
    AMONITOR_CONN_HANDSHAKE = 0,
    AMONITOR_CONN_OPEN,
    AMONITOR_CONN_CLOSING, /* close frame queued or sent */
    AMONITOR_CONN_DEAD /* to be freed by the loop */
} amonitor_conn_state_e;


typedef struct amonitor_conn_s amonitor_conn_t;

struct amonitor_conn_s {
    amonitor_conn_t *next;
    uint64_t         id;
    int              fd;
    unsigned         state;
    unsigned         want_write : 1;
    unsigned         write_shut : 1;
    unsigned         close_after_flush : 1;
    unsigned         close_received : 1;
    unsigned         counted : 1; /* in stats.connections */
    unsigned         input_error : 1;
    unsigned         http_rejected : 1; /* input is discarded */
    unsigned         announced : 1; /* the connection callback saw it */
    unsigned         tls_done : 1; /* the TLS handshake is over */
    void            *ssl; /* SSL, on a TLS listener */
    int64_t          deadline; /* handshake or closing limit; 0: none */
    int64_t          next_heartbeat; /* 0: none */
    int64_t          last_in; /* when the peer last sent anything */
    amon_buf_t       in; /* handshake request bytes */
    amon_buf_t       out; /* bytes not yet written */
    size_t           out_pos;

    amon_ws_request_parser_t request;
    amon_ws_session_t        session;
    char                     peer[64];
    unsigned char            addr[16]; /* the peer's address, no port */
    unsigned char            addr_len; /* 4, 16, or 0: unknown */
};


typedef enum {
    AMONITOR_JOB_BROADCAST = 0, /* a frame for every open connection */
    AMONITOR_JOB_CONN, /* an ack for one connection */
    AMONITOR_JOB_EVENT_CONN, /* an event for one connection */
    AMONITOR_JOB_STOP /* leave the I/O thread's loop */
} amonitor_job_kind_e;


typedef struct amonitor_job_s amonitor_job_t;

struct amonitor_job_s {
    amonitor_job_t *next;
    unsigned        kind;
    uint64_t        conn_id;
    unsigned        opcode;
    size_t          len;
    unsigned char   data[];
};


/* one agent connection waiting for a pending action's ack */
typedef struct amonitor_waiter_s amonitor_waiter_t;

struct amonitor_waiter_s {
    amonitor_waiter_t *next;
    uint64_t           conn_id;
    int                binary;
    char              *trace_id;
};


/*
 * A pending action.  "refs" (under priv->lock) counts the table's
 * reference (while "listed") and the program's (while "owned"); the last
 * one frees it.  Every pending action holds a reference on priv, so that
 * a handle outlives amonitor_sdk_free().
 */
struct amonitor_pending_s {
    amonitor_pending_t  *next;
    amonitor_sdk_priv_t *priv;
    uint64_t             id;
    unsigned             refs;
    int                  listed; /* in the table: not yet answered */
    int                  owned; /* the program holds the handle */
    int64_t              created;
    int64_t              deadline; /* 0: none */
    char                *msg_id;
    char                *name;
    amonitor_waiter_t   *waiters;
    unsigned             nwaiters;
};


typedef struct amonitor_handler_s amonitor_handler_t;

struct amonitor_handler_s {
    amonitor_handler_t  *next;
    char                *name; /* NULL: the fallback */
    amonitor_action_fn   fn; /* 1.0: teardown is fn(NULL) */
    amonitor_handler_fn  fn2; /* 1.1: REPLY_* codes */
    amonitor_teardown_fn teardown;
    void                *data;
};


struct amonitor_metrics_s {
    amon_buf_t   *buf;
    size_t        start; /* the offset just after the metrics' "{" */
    amon_json_w_t w; /* inside the metrics object, limited to its budget */
};


typedef struct {
    uint64_t connections;
    uint64_t connections_total;
    uint64_t rejected;
    uint64_t actions;
    uint64_t acks;
    uint64_t acks_dropped;
    uint64_t heartbeats;
    uint64_t events;
    uint64_t dropped;
    uint64_t invalid;
    uint64_t protocol_errors;
    uint64_t pending;
    uint64_t duplicates;
    uint64_t pending_timeouts;
    uint64_t pending_cancelled;
    uint64_t accept_errors;
} amonitor_counters_t;


struct amonitor_sdk_priv_s {
    amonitor_sdk_t *ctx;

    /* configuration, owned copies */
    char    *host;
    char    *path;
    char    *target_id;
    char    *token;
    char    *register_url;
    char    *metadata_json;
    unsigned port;
    unsigned heartbeat_ms;
    int      binary;
    size_t   max_message;
    size_t   max_send_queue;
    unsigned max_connections;
    unsigned max_pending;
    unsigned max_queued_events;
    int64_t  pending_timeout;
    int64_t  accept_backoff;
    int64_t  idle_agent; /* a silent agent may yield its place; 0: never */
    int      configured; /* written once, before any thread exists */
    void    *tls_ctx; /* SSL_CTX: amonitor_sdk_set_tls(); NULL: plain */

    /* I/O thread state */
    int              listen_fd;
    int              epfd;
    int              wake_fd[2];
    int              bound_port;
    amonitor_conn_t *conns;
    unsigned         nconns;
    uint64_t         next_conn_id;
    amon_buf_t       scratch; /* envelopes built on the I/O thread */
    amon_buf_t       scratch2;
    amon_envelope_t  env; /* the message being dispatched */
    unsigned char    rbuf[AMONITOR_READ_CHUNK];
    int              listening; /* the listener is in the epoll set */
    int64_t          accept_resume; /* EMFILE back-off until; 0: none */
    int64_t          accept_logged; /* last accept error logged */
    unsigned         accept_suppressed;
    int64_t          room_logged; /* last "not an agent's yet" line */
    unsigned         room_suppressed;
    int64_t          refused_logged; /* last "connection refused" line */
    unsigned         refused_suppressed;
    int              stopping; /* amonitor_sdk_stop_begin() */
    int64_t          stop_deadline;
    int              cb_depth; /* callbacks running on the loop's thread */
    pid_t            epoll_pid; /* the process that made epfd */
    pid_t            pid; /* the process that listens; 0: none (atomic) */
    int              abandoned; /* a forked copy whose memory is left */

    /* how a connection reports to the layers above (amonitor_sdk_new) */
    void (*on_open)(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
    void (*on_message)(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
        unsigned opcode, unsigned char *p, size_t len);
    int (*on_heartbeat)(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);

    amonitor_handler_t    *handlers;
    amonitor_metrics_fn    metrics_fn;
    void                  *metrics_data;
    amonitor_log_fn        log_fn;
    void                  *log_data;
    int                    log_level;
    amonitor_connection_fn conn_fn;
    amonitor_teardown_fn   conn_teardown;
    void                  *conn_data;

    /*
     * Each its own word (no shared bit-fields): "thread_running" is read by
     * any thread (atomically), "leave_loop" set by the I/O thread or, when
     * no job can be allocated, by stop (atomically).
     */
    pthread_t thread;
    int       thread_running;
    int       leave_loop;

    /* shared with other threads, under "lock" */
    pthread_mutex_t     lock;
    amonitor_job_t     *jobs;
    amonitor_job_t     *jobs_tail;
    unsigned            queued_events;
    amonitor_pending_t *pending;
    unsigned            npending;
    uint64_t            next_pending_id;
    int                 wake_pending;
    unsigned            refs; /* the context and every pending action */
    int                 freed; /* amonitor_sdk_free() ran */
    unsigned            answering; /* taken, being answered */
    pthread_cond_t      idle; /* answering dropped to 0 */

    /* atomically updated */
    amonitor_counters_t stats;
};


#define amonitor_stat_inc(priv, field) \
    __atomic_fetch_add(&(priv)->stats.field, 1, __ATOMIC_RELAXED)
#define amonitor_stat_dec(priv, field) \
    __atomic_fetch_sub(&(priv)->stats.field, 1, __ATOMIC_RELAXED)
#define amonitor_flag_get(p)    __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define amonitor_flag_set(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)


/*
 * The files call one way, top to bottom: amonitor_sdk.c (public context)
 * -> _loop.c (the epoll loop, accept, stop) -> _queue.c (cross-thread
 * jobs, answers) -> _msg.c (envelopes, dispatch) -> _conn.c (one agent
 * connection) -> _pending.c (pending actions, handles), _params.c,
 * _util.c.  A connection
 * reaches the layers above only through priv->on_open, _message and
 * _heartbeat.
 */

/* amonitor_tls.c: wss:// */
void    amonitor_tls_free_ctx(amonitor_sdk_priv_t *priv);
int     amonitor_tls_accept(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
int     amonitor_tls_handshake(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
ssize_t amonitor_tls_recv(amonitor_conn_t *c, void *buf, size_t len);
ssize_t amonitor_tls_send(amonitor_conn_t *c, const void *buf, size_t len);
void    amonitor_tls_shutdown(amonitor_conn_t *c);
void    amonitor_tls_free(amonitor_conn_t *c);

/* amonitor_sdk.c */
int amonitor_set_error(amonitor_sdk_t *ctx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* amonitor_loop.c */
void *amonitor_loop_thread(void *arg);
void  amonitor_loop_drain(amonitor_sdk_priv_t *priv);
void  amonitor_loop_close_listener(amonitor_sdk_priv_t *priv);
int   amonitor_loop_own_epoll(amonitor_sdk_t *ctx);
int   amonitor_loop_thread_start(amonitor_sdk_t *ctx);
int   amonitor_loop_forget(amonitor_sdk_priv_t *priv);
int   amonitor_on_loop_thread(amonitor_sdk_priv_t *priv);

/* amonitor_accept.c */
void amonitor_accept(amonitor_sdk_priv_t *priv);
void amonitor_accept_resume(amonitor_sdk_priv_t *priv, int64_t now);

/* amonitor_queue.c */
void amonitor_run_jobs(amonitor_sdk_priv_t *priv);
void amonitor_free_jobs(amonitor_sdk_priv_t *priv);
void amonitor_wake(amonitor_sdk_priv_t *priv); /* with "lock" held */
int  amonitor_queue_answer(amonitor_sdk_priv_t *priv, amonitor_pending_t *p,
     int success, const char *message, int direct);
void amonitor_queue_expire(amonitor_sdk_priv_t *priv, int64_t now);
void amonitor_queue_fail_all(amonitor_sdk_priv_t *priv, const char *message);

/* amonitor_msg.c */
int  amonitor_msg_heartbeat(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
int  amonitor_msg_register(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
void amonitor_msg_dispatch(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned opcode, unsigned char *p, size_t len);
int  amonitor_msg_build_ack(amonitor_sdk_priv_t *priv, amon_buf_t *out,
     const char *action_msg_id, const char *trace_id, int success,
     const char *message, int binary);
int  amonitor_msg_build_event(amonitor_sdk_priv_t *priv, amon_buf_t *out,
     const char *name, const char *json_data);
void amonitor_msg_send(amonitor_sdk_priv_t *priv, uint64_t conn_id,
    unsigned opcode, const unsigned char *p, size_t len, int ack);
int  amonitor_msg_answer(amonitor_sdk_priv_t *priv, amonitor_pending_t *p,
     int success, const char *message);

/* amonitor_conn.c */
amonitor_conn_t *amonitor_conn_new(amonitor_sdk_priv_t *priv, int fd);
void amonitor_conn_free(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
void amonitor_conn_read(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
void amonitor_conn_write(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
void amonitor_conn_timer(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int64_t now);
int  amonitor_conn_send_frame(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     unsigned opcode, const unsigned char *p, size_t len, int droppable);
void amonitor_conn_close(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    uint16_t code, const char *reason);
void amonitor_conn_abort(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);

/* amonitor_pending.c */
int amonitor_pending_join(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action);
int amonitor_pending_add(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action, int owned, amonitor_pending_t **out);
/*
 * The take functions unlist a pending action and hand the table's
 * reference to the caller, who answers it and calls
 * amonitor_pending_finish(); amonitor_sdk_free() waits for those.
 */
amonitor_pending_t *amonitor_pending_take(
    amonitor_sdk_priv_t *priv, const char *msg_id);
int amonitor_pending_take_handle(amonitor_pending_t *p, int disown);
amonitor_pending_t *amonitor_pending_take_id(
    amonitor_sdk_priv_t *priv, uint64_t id);
amonitor_pending_t *amonitor_pending_take_expired(
    amonitor_sdk_priv_t *priv, int64_t now);
amonitor_pending_t *amonitor_pending_take_any(amonitor_sdk_priv_t *priv);
void                amonitor_pending_finish(amonitor_pending_t *p);
void                amonitor_pending_unref(amonitor_pending_t *p);
int64_t             amonitor_pending_next_deadline(amonitor_sdk_priv_t *priv);
void                amonitor_pending_close(amonitor_sdk_priv_t *priv);
void                amonitor_pending_unref_priv(amonitor_sdk_priv_t *priv);

/* amonitor_util.c */
int  amonitor_log_due(int64_t *logged, unsigned *suppressed);
void amonitor_log(amonitor_sdk_priv_t *priv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int        amonitor_in_log(const amonitor_sdk_priv_t *priv);
int        amonitor_valid_text(const char *s, size_t max);
char      *amonitor_strdup(const char *s);
int        amonitor_ack_text(const char *in, char *out, size_t size);
int        amonitor_foreign(amonitor_sdk_priv_t *priv);
amon_str_t amonitor_cstr(const char *s);
int amonitor_buf_add(amon_buf_t *b, size_t max, const char *p, size_t len);


#endif /* AMONITOR_SDK_INT_H */

/*
 * Copyright (C) AMonitor authors
 *
 * AMonitor C SDK: the monitored program's side of the AMonitor protocol.
 * The SDK is a WebSocket server that the agent (nginx with
 * ngx_http_amonitor_module) dials; it sends heartbeats and events and
 * answers actions with acks.  This is the only public header of the SDK.
 */

#ifndef AMONITOR_H
#define AMONITOR_H


#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


/*
 * The SDK's version, written here only: the Makefile reads the three
 * numbers for the library's soname and amonitor_sdk.pc, and
 * AMONITOR_VERSION is made from them ("1.0.0").
 */
#define AMONITOR_VERSION_MAJOR 1
#define AMONITOR_VERSION_MINOR 0
#define AMONITOR_VERSION_PATCH 0

#define AMONITOR_VERSION_STR_(a, b, c)  #a "." #b "." #c
#define AMONITOR_VERSION_XSTR_(a, b, c) AMONITOR_VERSION_STR_(a, b, c)
#define AMONITOR_VERSION \
    AMONITOR_VERSION_XSTR_(AMONITOR_VERSION_MAJOR, AMONITOR_VERSION_MINOR, \
        AMONITOR_VERSION_PATCH)


/*
 * Error codes.  Every function that can fail returns one of these (or -1
 * where a count or a descriptor is returned) and, when it runs on the
 * context's owning thread, also stores it in ctx->err with a description
 * in ctx->errstr.
 */
#define AMONITOR_OK           0
#define AMONITOR_ERR_INVAL    (-1) /* invalid argument or configuration */
#define AMONITOR_ERR_NOMEM    (-2) /* out of memory */
#define AMONITOR_ERR_IO       (-3) /* a system call failed; see errstr */
#define AMONITOR_ERR_STATE    (-4) /* not allowed in the current state */
#define AMONITOR_ERR_FULL     (-5) /* queue full: the message was dropped */
#define AMONITOR_ERR_NOTFOUND (-6) /* no pending action with that msg_id */
#define AMONITOR_ERR_TOOBIG   (-7) /* message over the configured maximum */


/* What an action handler returns. */
#define AMONITOR_ACTION_FAIL    0 /* ack now with success:false */
#define AMONITOR_ACTION_OK      1 /* ack now with success:true */
#define AMONITOR_ACTION_PENDING 2 /* ack later with amonitor_sdk_ack() */


/* Log levels, most severe first. */
#define AMONITOR_LOG_ERROR 0
#define AMONITOR_LOG_WARN  1
#define AMONITOR_LOG_INFO  2
#define AMONITOR_LOG_DEBUG 3


/* Size of the buffer an action handler writes its ack message into. */
#define AMONITOR_MESSAGE_MAX 1024


typedef struct amonitor_sdk_priv_s amonitor_sdk_priv_t;

/*
 * The SDK context.  "err" and "errstr" are public, as in hiredis; all the
 * rest is private.  Create with amonitor_sdk_new(), destroy with
 * amonitor_sdk_free().
 */
typedef struct amonitor_sdk_s {
    int                  err; /* last error, AMONITOR_OK when none */
    char                 errstr[128]; /* its description */
    amonitor_sdk_priv_t *priv;
} amonitor_sdk_t;


/*
 * Configuration.  Fill with amonitor_sdk_config_init(), then change what
 * you need.  Strings are copied by amonitor_sdk_new().
 */
typedef struct {
    const char *host; /* listen address (numeric); "127.0.0.1" */
    unsigned    port; /* 8765; 0 picks a free port (amonitor_sdk_port) */
    const char *path; /* accepted request path; NULL accepts any */
    const char *target_id; /* "demo-target" */
    const char *token; /* bearer token the agent must send; NULL: none */
    unsigned    heartbeat_ms; /* 10000; 0 disables heartbeats */

    /* announce "register_url" in a register message on every connection */
    const char *register_url; /* NULL: no register message */
    const char *metadata_json; /* register metadata, a JSON object */

    int binary; /* send heartbeats, events, register as protobuf */

    size_t   max_message; /* largest accepted message; 1 MiB */
    size_t   max_send_queue; /* per connection, bytes; 1 MiB */
    unsigned max_connections; /* 64 */
    unsigned max_pending; /* actions awaiting amonitor_sdk_ack; 1024 */
    unsigned max_queued_events; /* emitted, not yet sent; 4096 */
} amonitor_sdk_config_t;


/* An action as a handler sees it.  All strings are NUL-terminated. */
typedef struct {
    const char *name; /* "restart"; "" when absent */
    const char *params; /* JSON text; "{}" when absent */
    size_t      params_len;
    const char *msg_id; /* the action's msg_id: the key for an async ack */
    const char *trace_id; /* "" when absent */
    const char *target_id; /* as the envelope names it; "" when absent */
    const char *target_url; /* "" when absent */
    int         binary; /* arrived as protobuf; the ack will be too */
} amonitor_action_t;


/*
 * An action handler.  Runs on the I/O thread.  Writes a NUL-terminated
 * ack message of at most "size" bytes into "message" (it starts empty) and
 * returns AMONITOR_ACTION_OK, AMONITOR_ACTION_FAIL or
 * AMONITOR_ACTION_PENDING; with PENDING the ack is sent when the program
 * calls amonitor_sdk_ack() with action->msg_id, from any thread (even
 * before the handler returns).  The action and its strings are valid only
 * during the call.
 *
 * When the context is freed, every registered handler is called once more
 * with action == NULL and message == NULL so that it can release "data".
 */
typedef int (*amonitor_action_fn)(amonitor_sdk_t *ctx,
    const amonitor_action_t *action, char *message, size_t size, void *data);


/* A heartbeat's metrics, filled by a metrics provider. */
typedef struct amonitor_metrics_s amonitor_metrics_t;

/*
 * A metrics provider, called on the I/O thread before every heartbeat;
 * adds string pairs with amonitor_metrics_add().  Called once with
 * m == NULL when the context is freed.
 */
typedef void (*amonitor_metrics_fn)(
    amonitor_sdk_t *ctx, amonitor_metrics_t *m, void *data);

/*
 * Add "key": "value" to the heartbeat's "metrics" object.  Both are UTF-8
 * strings.  Returns AMONITOR_OK, AMONITOR_ERR_INVAL (NULL, bad UTF-8, a
 * key added twice) or AMONITOR_ERR_TOOBIG (all metrics over 64 KiB).
 */
int amonitor_metrics_add(
    amonitor_metrics_t *m, const char *key, const char *value);

/* Convenience: add a number formatted with "%lld". */
int amonitor_metrics_add_int(
    amonitor_metrics_t *m, const char *key, long long value);


/*
 * A log sink.  Called on the thread that logs (the I/O thread, or the
 * caller of amonitor_sdk_start/stop) for messages at "level" or more
 * severe; "msg" has no trailing newline.  Called once with msg == NULL
 * when the context is freed.
 */
typedef void (*amonitor_log_fn)(int level, const char *msg, void *data);


/* Counters, read with amonitor_sdk_stats() from any thread. */
typedef struct {
    uint64_t connections; /* agent connections open now */
    uint64_t connections_total; /* accepted since start */
    uint64_t rejected; /* failed handshakes and 4401s */
    uint64_t actions; /* actions received */
    uint64_t acks; /* acks sent */
    uint64_t acks_dropped; /* async acks whose connection was gone */
    uint64_t heartbeats; /* heartbeats sent (per connection) */
    uint64_t events; /* events sent (per connection) */
    uint64_t dropped; /* heartbeats/events dropped: slow connection */
    uint64_t invalid; /* well-framed but invalid messages ignored */
    uint64_t protocol_errors; /* connections closed for framing faults */
} amonitor_stats_t;


/* Fill "cfg" with the defaults listed in amonitor_sdk_config_t. */
void amonitor_sdk_config_init(amonitor_sdk_config_t *cfg);

/*
 * Create a context.  Returns NULL only when out of memory; otherwise check
 * ctx->err: an invalid configuration gives a context with err set, which
 * must still be freed.  Nothing is opened until amonitor_sdk_listen() or
 * amonitor_sdk_start().
 */
amonitor_sdk_t *amonitor_sdk_new(const amonitor_sdk_config_t *cfg);

/*
 * Stop (as amonitor_sdk_stop) and free the context, calling every
 * callback's teardown.  Must not be called from a callback.
 */
void amonitor_sdk_free(amonitor_sdk_t *ctx);

/*
 * Register a handler for actions named "name", or the fallback for all
 * actions without their own handler when "name" is NULL.  A second
 * registration for the same name replaces the first (whose teardown is
 * called).  Call before amonitor_sdk_start() or from the I/O thread.
 * Without any handler for an action, the SDK acks success:false with
 * "unsupported action: <name>".
 */
int amonitor_sdk_on_action(
    amonitor_sdk_t *ctx, const char *name, amonitor_action_fn fn, void *data);

/* Set the metrics provider (NULL: none).  Same rules as on_action. */
int amonitor_sdk_set_metrics(
    amonitor_sdk_t *ctx, amonitor_metrics_fn fn, void *data);

/* Set the log sink and its level (NULL: no logging, the default). */
int amonitor_sdk_set_log(
    amonitor_sdk_t *ctx, int level, amonitor_log_fn fn, void *data);

/*
 * Bind and listen.  Idempotent.  amonitor_sdk_start() calls it; a program
 * that drives the SDK from its own loop calls it, then polls
 * amonitor_sdk_fd() and calls amonitor_sdk_step().
 */
int amonitor_sdk_listen(amonitor_sdk_t *ctx);

/* The bound TCP port (useful with port 0), or -1 before listening. */
int amonitor_sdk_port(amonitor_sdk_t *ctx);

/*
 * Listen and run the SDK on its own I/O thread.  Returns AMONITOR_OK or an
 * error (ctx->err).  Handlers and the metrics provider then run on that
 * thread.
 */
int amonitor_sdk_start(amonitor_sdk_t *ctx);

/*
 * Close every agent connection (close frame 1001, "going away"; waits at
 * most about one second for the peers' replies), stop the I/O thread if
 * there is one and close the listening socket.  Call from the thread that
 * called start/listen, not from a callback.  amonitor_sdk_listen() or
 * amonitor_sdk_start() may be called again afterwards.
 */
int amonitor_sdk_stop(amonitor_sdk_t *ctx);


/*
 * Host event loop integration (when amonitor_sdk_start() is not used).
 * amonitor_sdk_fd() is a single descriptor (an epoll instance) that is
 * readable whenever the SDK has work; amonitor_sdk_timeout() is the number
 * of milliseconds until its next timer (-1: none).  amonitor_sdk_step()
 * waits at most "timeout_ms" (0: do not wait, -1: until something
 * happens), does all pending work, and returns AMONITOR_OK or an error.
 * All three run on the host loop's thread.
 */
int amonitor_sdk_fd(amonitor_sdk_t *ctx);
int amonitor_sdk_timeout(amonitor_sdk_t *ctx);
int amonitor_sdk_step(amonitor_sdk_t *ctx, int timeout_ms);


/*
 * Send an event {"target_id","event_name":name,"data":json_data} to every
 * agent connection.  "json_data" must be JSON text (NULL sends null).
 * Safe from any thread; it queues the event and wakes the I/O thread.
 * Returns AMONITOR_OK, AMONITOR_ERR_INVAL (bad name or JSON),
 * AMONITOR_ERR_TOOBIG or AMONITOR_ERR_FULL (max_queued_events reached).
 * Does not set ctx->err.
 */
int amonitor_sdk_emit_event(
    amonitor_sdk_t *ctx, const char *name, const char *json_data);

/*
 * Complete an action whose handler returned AMONITOR_ACTION_PENDING.
 * Safe from any thread.  Returns AMONITOR_OK (the ack is queued; it is
 * dropped and counted if the agent connection closed meanwhile) or
 * AMONITOR_ERR_NOTFOUND (no pending action with that msg_id).  Does not
 * set ctx->err.
 */
int amonitor_sdk_ack(
    amonitor_sdk_t *ctx, const char *msg_id, int success, const char *message);

/* Read the counters; safe from any thread. */
void amonitor_sdk_stats(amonitor_sdk_t *ctx, amonitor_stats_t *st);

/* A static description of an AMONITOR_* error code; never NULL. */
const char *amonitor_strerror(int err);


#ifdef __cplusplus
}
#endif

#endif /* AMONITOR_H */

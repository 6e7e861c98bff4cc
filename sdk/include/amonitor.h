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
#define AMONITOR_VERSION_MINOR 2
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

/*
 * What amonitor_sdk_step() returns (instead of AMONITOR_OK) once a stop
 * begun with amonitor_sdk_stop_begin() has finished.
 */
#define AMONITOR_STOPPED 1


/*
 * What a handler registered with amonitor_sdk_on_action() (1.0) returns.
 * AMONITOR_ACTION_FAIL equals AMONITOR_OK: new code should register with
 * amonitor_sdk_handle() and return the AMONITOR_REPLY_* codes below.
 */
#define AMONITOR_ACTION_FAIL    0 /* ack now with success:false */
#define AMONITOR_ACTION_OK      1 /* ack now with success:true */
#define AMONITOR_ACTION_PENDING 2 /* ack later with amonitor_sdk_ack() */

/*
 * What a handler registered with amonitor_sdk_handle() (1.1) returns.
 * None of them is 0 or an AMONITOR_ERR_* code: any other value (such as
 * AMONITOR_OK) is answered success:false, "handler returned an invalid
 * result", and logged.
 */
#define AMONITOR_REPLY_FAILURE 0x4100 /* ack now with success:false */
#define AMONITOR_REPLY_SUCCESS 0x4101 /* ack now with success:true */
#define AMONITOR_REPLY_LATER   0x4102 /* amonitor_pending_ack() later */


/* Log levels, most severe first. */
#define AMONITOR_LOG_ERROR 0
#define AMONITOR_LOG_WARN  1
#define AMONITOR_LOG_INFO  2
#define AMONITOR_LOG_DEBUG 3


/*
 * The ack message rule, the same for a handler's "message" buffer and for
 * amonitor_sdk_ack() / amonitor_pending_ack(): at most
 * AMONITOR_MESSAGE_MAX - 1 bytes of UTF-8 are sent (a longer text is cut
 * at the last whole character that fits); a text that is not UTF-8 is
 * replaced by "invalid ack message" and "success" is kept as given.
 */
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


/*
 * A pending action: the handle a handler registered with
 * amonitor_sdk_handle() receives in action->pending and owns once it
 * returns AMONITOR_REPLY_LATER.  See amonitor_pending_ack().
 */
typedef struct amonitor_pending_s amonitor_pending_t;


/*
 * An action as a handler sees it.  All strings are NUL-terminated.  The
 * SDK allocates it; fields are only ever appended.
 */
typedef struct {
    const char *name; /* "restart"; "" when absent */
    const char *params; /* JSON text; "{}" when absent */
    size_t      params_len;
    const char *msg_id; /* the action's msg_id: the key for an async ack */
    const char *trace_id; /* "" when absent */
    const char *target_id; /* as the envelope names it; "" when absent */
    const char *target_url; /* "" when absent */
    int         binary; /* arrived as protobuf; the ack will be too */

    /* 1.1 */
    amonitor_pending_t *pending; /* amonitor_sdk_handle() handlers only */
    uint64_t            conn_id; /* the agent connection it came on */
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
 * with action == NULL and message == NULL so that it can release "data";
 * once per distinct (fn, data) pair, however many names share it.
 */
typedef int (*amonitor_action_fn)(amonitor_sdk_t *ctx,
    const amonitor_action_t *action, char *message, size_t size, void *data);

/*
 * A handler registered with amonitor_sdk_handle(): the same call, never
 * with action == NULL, returning an AMONITOR_REPLY_* code.  With
 * AMONITOR_REPLY_LATER the program owns action->pending and must pass it
 * to amonitor_pending_ack() exactly once, from any thread, at any time
 * (also after amonitor_sdk_free()); text written to "message" is then
 * not sent (a warning is logged).  With SUCCESS or FAILURE the handle
 * must not be used after the handler returns.
 */
typedef int (*amonitor_handler_fn)(amonitor_sdk_t *ctx,
    const amonitor_action_t *action, char *message, size_t size, void *data);

/* Releases a handler's or callback's "data"; called once per data. */
typedef void (*amonitor_teardown_fn)(void *data);


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


/*
 * Counters, read with amonitor_sdk_stats_get() from any thread.  Fields
 * are only ever appended; amonitor_sdk_stats() (1.0) fills the first
 * eleven only.
 */
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

    /* 1.1 */
    uint64_t pending; /* actions awaiting an answer now */
    uint64_t duplicates; /* actions joined to a pending one (same msg_id) */
    uint64_t pending_timeouts; /* pending actions failed by the timeout */
    uint64_t pending_cancelled; /* cancelled or failed at stop */
    uint64_t accept_errors; /* accept() failures (EMFILE, ...) */
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
 * Stop (as amonitor_sdk_stop: pending actions are answered success:false,
 * "monitored program stopped") and free the context, calling every
 * callback's teardown.  Waits for a handler running on the I/O thread to
 * return.  From a callback (on the thread running it) it does nothing
 * but log an error.  Pending handles stay valid for amonitor_pending_ack().
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

/*
 * Set the log sink and its level (NULL: no logging, the default).  Same
 * rules as on_action.
 */
int amonitor_sdk_set_log(
    amonitor_sdk_t *ctx, int level, amonitor_log_fn fn, void *data);

/*
 * Bind and listen.  Idempotent.  amonitor_sdk_start() calls it; a program
 * that drives the SDK from its own loop calls it, then polls
 * amonitor_sdk_fd() and calls amonitor_sdk_step().
 */
int amonitor_sdk_listen(amonitor_sdk_t *ctx);

/*
 * Serve wss:// instead of ws://: every agent connection starts with a TLS
 * handshake (TLS 1.2 or later, non-blocking, in the SDK's loop).
 * "cert_file" is the PEM certificate chain, "key_file" its PEM private key.
 * With "client_ca_file" (PEM, may be NULL) the agent must present a client
 * certificate signed by one of those CAs (nginx: amonitor_ssl_certificate);
 * without it none is asked for.  The files are read now.  Call after
 * amonitor_sdk_new() and before listening; a second call replaces the
 * first.  Returns AMONITOR_OK, AMONITOR_ERR_INVAL (a file cannot be
 * loaded or the key does not match the certificate: ctx->errstr says
 * which), AMONITOR_ERR_NOMEM or AMONITOR_ERR_STATE.  Since 1.2.
 */
int amonitor_sdk_set_tls(amonitor_sdk_t *ctx, const char *cert_file,
    const char *key_file, const char *client_ca_file);

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
 * of milliseconds until its next timer (-1: none; never an error code,
 * 0 for a NULL context).  amonitor_sdk_step()
 * waits at most "timeout_ms" (0: do not wait, -1: until something
 * happens), does all pending work, and returns AMONITOR_OK, an error, or
 * AMONITOR_STOPPED (see amonitor_sdk_stop_begin).  All three run on the
 * host loop's thread; while amonitor_sdk_start()'s thread runs, step
 * returns AMONITOR_ERR_STATE and timeout returns 0.  amonitor_sdk_fd()
 * returns -1 only for a NULL or misconfigured context.
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
 * Complete an action whose 1.0 handler returned AMONITOR_ACTION_PENDING.
 * Safe from any thread while the context lives (never after
 * amonitor_sdk_free(): use a handle, amonitor_pending_ack(), for that).
 * The ack goes to every connection waiting for that msg_id, under the
 * message rule of AMONITOR_MESSAGE_MAX.  Returns AMONITOR_OK (the ack is
 * queued; it is dropped and counted if the agent connection closed
 * meanwhile) or AMONITOR_ERR_NOTFOUND (no pending action with that
 * msg_id).  Does not set ctx->err.
 */
int amonitor_sdk_ack(
    amonitor_sdk_t *ctx, const char *msg_id, int success, const char *message);

/* Read the 1.0 counters (the first eleven fields); any thread. */
void amonitor_sdk_stats(amonitor_sdk_t *ctx, amonitor_stats_t *st);

/*
 * Read the counters into "st" of "size" bytes (sizeof(amonitor_stats_t)
 * as the program was compiled): a program built against an older header
 * gets the fields it knows.  Any thread.  Returns AMONITOR_OK or
 * AMONITOR_ERR_INVAL.
 */
int amonitor_sdk_stats_get(
    amonitor_sdk_t *ctx, amonitor_stats_t *st, size_t size);


/* --- 1.1 ------------------------------------------------------------- */

/*
 * Register "fn" for actions named "name" (NULL: the fallback), with
 * AMONITOR_REPLY_* results and the pending handle; "teardown" (may be
 * NULL) is called once per distinct (teardown, data) pair when the last
 * registration using it is replaced or the context is freed.  Same rules
 * as amonitor_sdk_on_action() otherwise; both kinds may be mixed.
 */
int amonitor_sdk_handle(amonitor_sdk_t *ctx, const char *name,
    amonitor_handler_fn fn, amonitor_teardown_fn teardown, void *data);

/*
 * Answer a pending action and release the handle, from any thread, also
 * after amonitor_sdk_free().  The ack goes to every agent connection that
 * sent this action (see "duplicates" in docs/sdk.md), under the message
 * rule of AMONITOR_MESSAGE_MAX.  Returns AMONITOR_OK (queued),
 * AMONITOR_ERR_NOTFOUND (it was already answered: cancelled, timed out,
 * failed at stop), AMONITOR_ERR_STATE (the context was freed) or
 * AMONITOR_ERR_INVAL (p NULL).  The handle is released in every case
 * but the last.
 */
int amonitor_pending_ack(
    amonitor_pending_t *p, int success, const char *message);

/* The handle's id (unique per context, never 0) and msg_id. */
uint64_t    amonitor_pending_id(const amonitor_pending_t *p);
const char *amonitor_pending_msg_id(const amonitor_pending_t *p);

/* One pending action, as amonitor_sdk_pending_list() reports it. */
typedef struct {
    uint64_t    id; /* amonitor_pending_id() */
    const char *msg_id;
    const char *name; /* the action's name */
    uint64_t    conn_id; /* the first connection that sent it */
    unsigned    waiters; /* connections waiting for its ack */
    int64_t     age_ms; /* since it arrived */
} amonitor_pending_info_t;

typedef void (*amonitor_pending_fn)(
    const amonitor_pending_info_t *info, void *data);

/*
 * Call "fn" for every pending action (under the SDK's lock: "fn" must not
 * call the SDK); the info and its strings are valid during the call only.
 * Any thread.  Returns the number of pending actions or an error (< 0).
 */
int amonitor_sdk_pending_list(
    amonitor_sdk_t *ctx, amonitor_pending_fn fn, void *data);

/*
 * Answer the pending action "id" with success:false and "message" (NULL:
 * "cancelled") now.  The program's handle stays valid;
 * amonitor_pending_ack() on it then returns AMONITOR_ERR_NOTFOUND.  Any
 * thread.  Returns AMONITOR_OK or AMONITOR_ERR_NOTFOUND.
 */
int amonitor_sdk_pending_cancel(
    amonitor_sdk_t *ctx, uint64_t id, const char *message);


/*
 * Options that amonitor_sdk_config_t (whose layout is frozen) does not
 * hold.  Set after amonitor_sdk_new(), before listen/start.
 */
#define AMONITOR_OPT_PENDING_TIMEOUT_MS 1 /* 300000; 0: never */
#define AMONITOR_OPT_ACCEPT_BACKOFF_MS  2 /* pause after EMFILE; 100 */
#define AMONITOR_OPT_IDLE_AGENT_MS      3 /* silent agent yields; 60000 */

/* Returns AMONITOR_OK, AMONITOR_ERR_INVAL or AMONITOR_ERR_STATE. */
int amonitor_sdk_set_option(amonitor_sdk_t *ctx, int option, long long value);


/*
 * Agent connections opening and closing.  "connected" is 1 once the
 * WebSocket handshake (and the register message and first heartbeat)
 * went out, 0 when that connection closed; "peer" is "a.b.c.d:port" or
 * "[ipv6]:port" (the address in RFC 5952 form).
 * Called on the I/O thread; at free, "teardown" is called once.
 * amonitor_sdk_emit_event_to() sends state to the new agent only.
 */
typedef void (*amonitor_connection_fn)(amonitor_sdk_t *ctx, uint64_t conn_id,
    const char *peer, int connected, void *data);

int amonitor_sdk_on_connection(amonitor_sdk_t *ctx, amonitor_connection_fn fn,
    amonitor_teardown_fn teardown, void *data);

/* amonitor_sdk_emit_event() to one connection only; any thread. */
int amonitor_sdk_emit_event_to(amonitor_sdk_t *ctx, uint64_t conn_id,
    const char *name, const char *json_data);


/*
 * Non-blocking stop for a host event loop (not with amonitor_sdk_start):
 * fails the pending actions, sends close 1001 to every agent and stops
 * accepting; later amonitor_sdk_step() calls finish the close handshakes
 * and return AMONITOR_STOPPED once every connection is closed (at most
 * about one second), when the listening socket is closed too.
 * amonitor_sdk_fd() stays the same descriptor for the whole life of the
 * context.  Returns AMONITOR_OK or AMONITOR_ERR_STATE.
 */
int amonitor_sdk_stop_begin(amonitor_sdk_t *ctx);


/*
 * A parsed view of action->params, through the protocol core's JSON
 * scanner (no allocation).  "name" is a member of the params object.
 * Returns AMONITOR_OK, AMONITOR_ERR_NOTFOUND (no such member, or params
 * is no object), AMONITOR_ERR_INVAL (the member has another type; a
 * string holding "\u0000", which would end the C string early: "buf" is
 * then ""; a member the object holds twice) or AMONITOR_ERR_TOOBIG
 * (string: "size" too small; nothing written).
 */
int amonitor_action_param_string(
    const amonitor_action_t *action, const char *name, char *buf, size_t size);
int amonitor_action_param_int(
    const amonitor_action_t *action, const char *name, long long *value);
int amonitor_action_param_bool(
    const amonitor_action_t *action, const char *name, int *value);

/* A static description of an AMONITOR_* error code; never NULL. */
const char *amonitor_strerror(int err);


#ifdef __cplusplus
}
#endif

#endif /* AMONITOR_H */

/*
 * Copyright (C) AMonitor authors
 *
 * The amonitor command-line panel: shared declarations of its WebSocket
 * client, its option set and its subcommands.
 */

#ifndef AMONCLI_H
#define AMONCLI_H


#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_session.h"
#include "amon_envelope.h"
#include "amon_posix.h"


#define AMONCLI_DEFAULT_URL "ws://127.0.0.1:8080/ws/panel"
#define AMONCLI_MAX_TARGETS 8192
#define AMONCLI_MAX_MESSAGE (16 * 1024 * 1024)

/* exit codes */
#define AMONCLI_EXIT_OK      0
#define AMONCLI_EXIT_RUNTIME 1
#define AMONCLI_EXIT_USAGE   2


/* A blocking WebSocket client connection with deadlines. */
typedef struct {
    int               fd;
    amon_ws_session_t session;
    unsigned char    *rbuf;
    size_t            rpos;
    size_t            rlen;
    size_t            rcap;
    amon_buf_t        out;
    int               closed;
    uint16_t          close_code;
    char              close_reason[128];
    void             *ssl; /* wss://: SSL */
    void             *ssl_ctx;
    short             tls_events; /* what TLS waits for: POLLIN/POLLOUT */
} amoncli_ws_t;


typedef struct {
    const char *url;
    const char *token;
    const char *ca; /* wss://: trusted CAs (PEM); NULL: the system's */
    double      timeout; /* seconds; < 0: the command's default */
    int         json;
    int         verbose;

    /* targets: ids and URLs, paired by position */
    const char *target_ids[AMONCLI_MAX_TARGETS];
    const char *target_urls[AMONCLI_MAX_TARGETS];
    unsigned    ntarget_ids;
    unsigned    ntarget_urls;

    const char *subscribe; /* watch: ids and patterns, comma-separated */

    const char *action;
    const char *params;
    const char *msg_id;
    double      duration; /* seconds; 0: until SIGINT */
    double      rate; /* bench: actions per second */
    unsigned    max_inflight;
    double      stale; /* watch: heartbeat age that means down */
    int         once;
    int         binary; /* send protobuf frames */
    const char *status_url; /* watch: NULL: beside --url; "none": off */
} amoncli_opts_t;


/* Set by SIGINT/SIGTERM. */
extern volatile sig_atomic_t amoncli_interrupted;


/* amoncli_ws.c */
int amoncli_ws_connect(amoncli_ws_t *ws, const char *url, const char *token,
    const char *ca, int timeout_ms, char *err, size_t errlen);
int amoncli_ws_send(amoncli_ws_t *ws, unsigned opcode, const void *p,
    size_t len, int timeout_ms);

/*
 * Wait at most "timeout_ms" (-1: forever) for one whole message.  Returns
 * 1 with the message in *p and *len (valid until the next call), 0 on timeout
 * or interruption, -1 when the connection is closed or broken (err says
 * why).
 */
int  amoncli_ws_recv(amoncli_ws_t *ws, int timeout_ms, unsigned *opcode,
     const unsigned char **p, size_t *len, char *err, size_t errlen);
void amoncli_ws_close(amoncli_ws_t *ws, uint16_t code);

/*
 * 1 when the agent closed the connection with 1012 (reloading or
 * stopping) or 1001 (going away): a client reconnects at once.
 */
int amoncli_ws_closed_to_reconnect(const amoncli_ws_t *ws);

/* amonitor_tls.c: wss:// */
int     amoncli_tls_connect(amoncli_ws_t *ws, const char *host, const char *ca,
        int64_t deadline, char *err, size_t errlen);
ssize_t amoncli_tls_recv(amoncli_ws_t *ws, void *buf, size_t len);
ssize_t amoncli_tls_send(amoncli_ws_t *ws, const void *buf, size_t len);
void    amoncli_tls_close(amoncli_ws_t *ws);

/* amonitor.c: helpers shared by the commands */
void amoncli_clock(char *buf, size_t size);
int  amoncli_build_action(amon_buf_t *out, const char *msg_id,
     const char *target_id, const char *target_url, const char *action,
     const char *params, int binary);
int  amoncli_connect(amoncli_ws_t *ws, const amoncli_opts_t *o, int timeout_ms);
int  amoncli_decode(
     amon_envelope_t *env, unsigned opcode, const unsigned char *p, size_t len);
int  amoncli_str_eq(amon_str_t s, const char *cstr);
void amoncli_sleep_ms(int ms);

/* amonitor_term.c: printing peer text for people */
void amoncli_tprintf(FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* amonitor_print.c: printing messages */
void amoncli_print_message(const amoncli_opts_t *o, const char *event,
    unsigned opcode, const unsigned char *p, size_t len);
void amoncli_print_json_line(const char *event, const char *key,
    const unsigned char *p, size_t len, int binary);

/* amonitor_status.c: the agent's amonitor_status endpoint */
int           amoncli_status_url(const char *panel_url, char *out, size_t size);
struct cJSON *amoncli_status_fetch(
    const char *url, int timeout_ms, char *err, size_t errlen);

/* subcommands */
int amoncli_cmd_sim(amoncli_opts_t *o);
int amoncli_cmd_send(amoncli_opts_t *o);
int amoncli_cmd_dedupe(amoncli_opts_t *o);
int amoncli_cmd_watch(amoncli_opts_t *o);
int amoncli_cmd_bench(amoncli_opts_t *o);


#endif /* AMONCLI_H */

/*
 * Copyright (C) AMonitor authors
 *
 * RFC 6455 opening handshake helpers: key and accept computation, the
 * server-side checks of an upgrade request, the client request builder and
 * the client-side response parser, subprotocol selection.
 */

#ifndef AMON_WS_HANDSHAKE_H
#define AMON_WS_HANDSHAKE_H


#include "amon_core.h"

#ifdef __cplusplus
extern "C" {
#endif


#define AMON_WS_KEY_LEN      24 /* base64 of 16 bytes */
#define AMON_WS_ACCEPT_LEN   28 /* base64 of a SHA-1 digest */
#define AMON_WS_MAX_RESPONSE 8192 /* client: response header limit */
#define AMON_WS_MAX_REQUEST  8192 /* server: request header limit */


/*
 * Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).  "out" gets
 * 28 bytes, not NUL-terminated.  Returns AMON_OK or AMON_EINVAL (key not
 * 1..256 bytes).
 */
int amon_ws_accept(const unsigned char *key, size_t key_len,
    unsigned char out[AMON_WS_ACCEPT_LEN]);

/* A client key from 16 random bytes (caller supplies the randomness). */
void amon_ws_make_key(
    const unsigned char random16[16], unsigned char out[AMON_WS_KEY_LEN]);

/* Is "key" the base64 encoding of exactly 16 bytes, as RFC 6455 4.1 asks? */
int amon_ws_key_valid(const unsigned char *key, size_t len);

/*
 * Does the comma-separated header value contain "token" as one element
 * (case-insensitive, optional whitespace around elements)?
 */
int amon_http_token_list_has(
    const unsigned char *value, size_t len, const char *token);


/*
 * Server side: the request fields the check needs.  An absent header has
 * data == NULL.  "http_version" is major * 1000 + minor, as nginx keeps it.
 */
typedef struct {
    amon_str_t method;
    unsigned   http_version;
    amon_str_t upgrade;
    amon_str_t connection;
    amon_str_t key;
    amon_str_t version; /* Sec-WebSocket-Version */
} amon_ws_request_t;

/*
 * Validate an upgrade request.  Returns 0 when it is acceptable, otherwise
 * the HTTP status to answer (400, 405 or 426) and a static reason in
 * *reason.  426 means "send Sec-WebSocket-Version: 13".
 */
int amon_ws_server_check(const amon_ws_request_t *req, const char **reason);

/*
 * Server side, incremental: the parser of an upgrade request for endpoints
 * that read the socket themselves (SDK, load generator).  Results point
 * into the caller's buffer and are valid while it is.
 */
typedef struct {
    /* set by amon_ws_request_init() */
    size_t max; /* header block limit */

    /* results of amon_ws_request_feed() */
    amon_ws_request_t req; /* AMON_OK: passed amon_ws_server_check() */
    amon_str_t        target; /* request-target, query included */
    amon_str_t        authorization; /* data == NULL: absent */
    size_t            header_len; /* bytes up to the end of the block */
    int               status; /* AMON_EHANDSHAKE: the HTTP status */
    const char       *reason; /* AMON_EHANDSHAKE: static text */

    /* private */
    size_t scanned;
} amon_ws_request_parser_t;

/* Prepare a parser; "max" 0 selects AMON_WS_MAX_REQUEST. */
void amon_ws_request_init(amon_ws_request_parser_t *rp, size_t max);

/*
 * Feed everything received so far: "buf"/"len" is the whole input from its
 * first byte (the parser remembers how far it looked).  Returns
 *
 *   AMON_AGAIN       the header block is not complete;
 *   AMON_OK          a valid upgrade request: rp->req, target,
 *                    authorization; rp->header_len bytes are the request,
 *                    the rest are frames;
 *   AMON_EHANDSHAKE  answer rp->status with rp->reason and close: 400 (bad
 *                    request line, header line, duplicate key, not
 *                    HTTP/1.1, ...), 405 (not GET), 426 (no upgrade or
 *                    version not 13: send Sec-WebSocket-Version: 13), 431
 *                    (no end of the block within "max" bytes).
 *
 * Line ends are CRLF; a bare LF is tolerated.
 */
int amon_ws_request_feed(
    amon_ws_request_parser_t *rp, const unsigned char *buf, size_t len);

/*
 * Write the 101 response accepting "key" (the request's
 * Sec-WebSocket-Key).  Returns bytes written, or 0 when "cap" is too small
 * or the key is invalid.
 */
size_t amon_ws_server_response(unsigned char *dst, size_t cap, amon_str_t key);


/*
 * Choose a subprotocol: the first element of the client's comma-separated
 * "offered" list that is in the NULL-terminated "supported" array.
 * Returns its index in "supported", or -1 when none matches.
 */
int amon_ws_select_subprotocol(
    const unsigned char *offered, size_t len, const char *const *supported);


/*
 * Client side: write an upgrade request for ws://host[:port]path.
 * "authorization" (may be NULL) is sent as "Authorization: Bearer <it>".
 * Returns bytes written, or 0 when "cap" is too small or an argument
 * contains CR, LF or NUL.
 */
size_t amon_ws_client_request(unsigned char *dst, size_t cap,
    amon_str_t host_port, amon_str_t path,
    const unsigned char key[AMON_WS_KEY_LEN], amon_str_t bearer_token);

/*
 * Parse the server's response to a client request made with "key".
 * Returns AMON_AGAIN until the header block is complete (fails with
 * AMON_ETOOBIG past AMON_WS_MAX_RESPONSE), then AMON_OK with *header_len
 * set to the header block's size (bytes after it are frames), or
 * AMON_EHANDSHAKE with *status (HTTP status, 0 if unparseable) and a
 * static reason in *reason.
 */
int amon_ws_client_response(const unsigned char *buf, size_t len,
    const unsigned char key[AMON_WS_KEY_LEN], size_t *header_len, int *status,
    const char **reason);


/*
 * ws:// and wss:// URLs.  "host" is the authority without port brackets
 * removed ("[::1]" stays as is), "port" defaults to 80/443, "path" to "/".
 */
typedef struct {
    unsigned   tls : 1;
    amon_str_t host;
    unsigned   port;
    amon_str_t host_port; /* as written, for Host: */
    amon_str_t path; /* includes the query, if any */
} amon_ws_url_t;

/* Returns AMON_OK or AMON_EINVAL (not ws/wss, empty host, bad port). */
int amon_ws_url_parse(const unsigned char *url, size_t len, amon_ws_url_t *u);

/*
 * Write the normalised form of a URL: lowercase scheme and host, explicit
 * port, path "/" when empty.  "ws://H:8765" and "ws://h:8765/" normalise to
 * the same bytes.  Returns bytes written or 0 if "cap" is too small.
 */
size_t amon_ws_url_normalize(
    const amon_ws_url_t *u, unsigned char *dst, size_t cap);

/*
 * The host as a name or address to resolve, verify or send in SNI: "host"
 * without the brackets of an IPv6 literal ("[::1]" gives "::1").  Points
 * into the URL; nothing is copied.
 */
amon_str_t amon_ws_url_hostname(const amon_ws_url_t *u);


#ifdef __cplusplus
}
#endif

#endif /* AMON_WS_HANDSHAKE_H */

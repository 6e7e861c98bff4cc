/*
 * Copyright (C) AMonitor authors
 *
 * wss:// for the CLI: an OpenSSL client on the dialed socket, with the
 * same deadlines as the rest of the client.  The agent's certificate is
 * verified, against --ca FILE or the system's trusted CAs, for the URL's
 * host (a name, sent in SNI too, or an IP address).
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "amoncli.h"


static int amoncli_tls_is_ip(const char *host);


int
amoncli_tls_connect(amoncli_ws_t *ws, const char *host, const char *ca,
    int64_t deadline, char *err, size_t errlen)
{
    int      rc, e;
    long     vr;
    SSL     *ssl;
    SSL_CTX *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "TLS: out of memory");
        return -1;
    }

    ws->ssl_ctx = ctx;

    (void) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx,
        SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    if ((ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
            : SSL_CTX_set_default_verify_paths(ctx))
        != 1) {
        snprintf(err, errlen, "TLS: cannot load the CA file \"%s\"",
            ca ? ca : "(system)");
        return -1;
    }

    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, ws->fd) != 1) {
        SSL_free(ssl);
        snprintf(err, errlen, "TLS: out of memory");
        return -1;
    }

    ws->ssl = ssl;

    if (amoncli_tls_is_ip(host)) {
        rc = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);

    } else {
        rc = SSL_set1_host(ssl, host) == 1
            && SSL_set_tlsext_host_name(ssl, host) == 1;
    }

    if (rc != 1) {
        snprintf(err, errlen, "TLS: invalid host \"%s\"", host);
        return -1;
    }

    for (;;) {
        ERR_clear_error();
        rc = SSL_connect(ssl);

        if (rc == 1) {
            return 0;
        }

        e = SSL_get_error(ssl, rc);

        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            vr = SSL_get_verify_result(ssl);

            if (vr != X509_V_OK) {
                snprintf(err, errlen,
                    "TLS: the agent's certificate did not verify: %s",
                    X509_verify_cert_error_string(vr));

            } else {
                snprintf(err, errlen, "TLS handshake failed: %s",
                    ERR_peek_error() ? ERR_reason_error_string(ERR_get_error())
                                     : "connection closed");
            }
            return -1;
        }

        rc =
            amon_posix_wait(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                deadline, &amoncli_interrupted);
        if (rc <= 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            return -1;
        }
    }
}


/* recv() over TLS: -1 with errno EAGAIN to wait for ws->tls_events */
ssize_t
amoncli_tls_recv(amoncli_ws_t *ws, void *buf, size_t len)
{
    int n, e;

    ERR_clear_error();
    n = SSL_read(ws->ssl, buf, (int) len);

    if (n > 0) {
        return n;
    }

    e = SSL_get_error(ws->ssl, n);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ws->tls_events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }

    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
        return 0;
    }

    if (e != SSL_ERROR_SYSCALL) {
        errno = EPROTO;
    }

    return -1;
}


ssize_t
amoncli_tls_send(amoncli_ws_t *ws, const void *buf, size_t len)
{
    int n, e;

    ERR_clear_error();
    n = SSL_write(ws->ssl, buf, (int) (len > 1 << 30 ? 1 << 30 : len));

    if (n > 0) {
        return n;
    }

    e = SSL_get_error(ws->ssl, n);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ws->tls_events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }

    if (e != SSL_ERROR_SYSCALL || errno == 0) {
        errno = EPIPE;
    }

    return -1;
}


/* close_notify (not waited for) and the TLS state; the socket stays */
void
amoncli_tls_close(amoncli_ws_t *ws)
{
    if (ws->ssl) {
        ERR_clear_error();
        (void) SSL_shutdown(ws->ssl);
        SSL_free(ws->ssl);
        ws->ssl = NULL;
    }

    if (ws->ssl_ctx) {
        SSL_CTX_free(ws->ssl_ctx);
        ws->ssl_ctx = NULL;
    }
}


static int
amoncli_tls_is_ip(const char *host)
{
    unsigned char a[16];

    return inet_pton(AF_INET, host, a) == 1
        || inet_pton(AF_INET6, host, a) == 1;
}

/*
 * Copyright (C) AMonitor authors
 *
 * wss:// for the SDK's server side, with OpenSSL: the context made by
 * amonitor_sdk_set_tls(), and per agent connection a non-blocking
 * handshake driven by the loop's readiness events, then reads and writes
 * that stand in for recv() and send() in amonitor_conn.c.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "amonitor_sdk_int.h"


static int amonitor_tls_events(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int want_write);
static void amonitor_tls_error(char *buf, size_t size);
static BIO *amonitor_tls_bio(int fd);
static int  amonitor_bio_write(BIO *b, const char *buf, int len);
static int  amonitor_bio_read(BIO *b, char *buf, int len);
static long amonitor_bio_ctrl(BIO *b, int cmd, long num, void *ptr);
static int  amonitor_bio_create(BIO *b);


/*
 * OpenSSL's socket BIO writes with write(): a peer that closes right after
 * the handshake (an agent that refuses the certificate, say) would raise
 * SIGPIPE and kill the program, which a library must not make ignore it.
 * This BIO sends with MSG_NOSIGNAL, as the plain connections do.
 */
static BIO_METHOD    *amonitor_bio_method;
static pthread_once_t amonitor_bio_once = PTHREAD_ONCE_INIT;


static void
amonitor_bio_init(void)
{
    BIO_METHOD *m;

    m = BIO_meth_new(
        BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
        "amonitor socket");

    if (m == NULL || !BIO_meth_set_write(m, amonitor_bio_write)
        || !BIO_meth_set_read(m, amonitor_bio_read)
        || !BIO_meth_set_ctrl(m, amonitor_bio_ctrl)
        || !BIO_meth_set_create(m, amonitor_bio_create)) {
        BIO_meth_free(m);
        return;
    }

    amonitor_bio_method = m;
}


static BIO *
amonitor_tls_bio(int fd)
{
    BIO *b;

    (void) pthread_once(&amonitor_bio_once, amonitor_bio_init);

    if (amonitor_bio_method == NULL) {
        return NULL;
    }

    b = BIO_new(amonitor_bio_method);
    if (b != NULL) {
        BIO_set_data(b, (void *) (intptr_t) fd);
    }

    return b;
}


static int
amonitor_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}


static int
amonitor_bio_write(BIO *b, const char *buf, int len)
{
    ssize_t n;

    BIO_clear_retry_flags(b);

    n = send((int) (intptr_t) BIO_get_data(b), buf, (size_t) len, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
    }

    return (int) n;
}


static int
amonitor_bio_read(BIO *b, char *buf, int len)
{
    ssize_t n;

    BIO_clear_retry_flags(b);

    n = recv((int) (intptr_t) BIO_get_data(b), buf, (size_t) len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);

    } else if (n == 0) {
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    }

    return (int) n;
}


static long
amonitor_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void) num;

    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
        if (ptr) {
            *(int *) ptr = (int) (intptr_t) BIO_get_data(b);
        }
        return (long) (intptr_t) BIO_get_data(b);
    default: return 0;
    }
}


int
amonitor_sdk_set_tls(amonitor_sdk_t *ctx, const char *cert_file,
    const char *key_file, const char *client_ca_file)
{
    char                 e[160];
    SSL_CTX             *sctx;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured) {
        return ctx ? ctx->err : AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->listen_fd != -1 || amonitor_flag_get(&priv->thread_running)) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "TLS is set up before listening");
    }

    if (cert_file == NULL || key_file == NULL) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "TLS needs a certificate and a key file");
    }

    sctx = SSL_CTX_new(TLS_server_method());
    if (sctx == NULL) {
        return amonitor_set_error(ctx, AMONITOR_ERR_NOMEM, "SSL_CTX_new()");
    }

    (void) SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);

    /* the output buffer may move between retries of a partial write */
    SSL_CTX_set_mode(sctx,
        SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (SSL_CTX_use_certificate_chain_file(sctx, cert_file) != 1) {
        amonitor_tls_error(e, sizeof(e));
        SSL_CTX_free(sctx);
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "cannot load certificate \"%s\": %s", cert_file, e);
    }

    if (SSL_CTX_use_PrivateKey_file(sctx, key_file, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(sctx) != 1) {
        amonitor_tls_error(e, sizeof(e));
        SSL_CTX_free(sctx);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "cannot load key \"%s\": %s", key_file, e);
    }

    if (client_ca_file) {
        if (SSL_CTX_load_verify_locations(sctx, client_ca_file, NULL) != 1) {
            amonitor_tls_error(e, sizeof(e));
            SSL_CTX_free(sctx);
            return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
                "cannot load client CA \"%s\": %s", client_ca_file, e);
        }

        /* the agent must present a certificate these CAs signed */
        SSL_CTX_set_client_CA_list(
            sctx, SSL_load_client_CA_file(client_ca_file));
        SSL_CTX_set_verify(
            sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }

    if (priv->tls_ctx) {
        SSL_CTX_free(priv->tls_ctx);
    }

    priv->tls_ctx = sctx;

    return AMONITOR_OK;
}


void
amonitor_tls_free_ctx(amonitor_sdk_priv_t *priv)
{
    if (priv->tls_ctx) {
        SSL_CTX_free(priv->tls_ctx);
        priv->tls_ctx = NULL;
    }
}


/* a new agent connection on a TLS listener: the handshake comes first */
int
amonitor_tls_accept(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    BIO *bio;
    SSL *ssl;

    ssl = SSL_new(priv->tls_ctx);
    bio = ssl ? amonitor_tls_bio(c->fd) : NULL;

    if (bio == NULL) {
        SSL_free(ssl);
        amonitor_log(priv, AMONITOR_LOG_ERROR, "connection %llu: SSL_new()",
            (unsigned long long) c->id);
        return AMONITOR_ERR_NOMEM;
    }

    SSL_set_bio(ssl, bio, bio); /* the SSL owns it */
    SSL_set_accept_state(ssl);

    c->ssl = ssl;
    c->tls_done = 0;

    return AMONITOR_OK;
}


/*
 * One step of the handshake, on either readiness event.  Returns 1 when
 * it is done, 0 to wait (the epoll interest follows what OpenSSL wants),
 * -1 when it failed (logged; the caller in amonitor_conn.c aborts the
 * connection).
 */
int
amonitor_tls_handshake(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    int         rc, err;
    char        e[160];
    const char *name;

    ERR_clear_error();

    rc = SSL_do_handshake(c->ssl);

    if (rc == 1) {
        c->tls_done = 1;

        name = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);

        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu from %s: %s, server name \"%s\"",
            (unsigned long long) c->id, c->peer, SSL_get_version(c->ssl),
            name ? name : "");

        /* back to what the connection itself wants */
        if (amonitor_tls_events(priv, c, c->want_write) == -1) {
            return -1;
        }

        return 1;
    }

    err = SSL_get_error(c->ssl, rc);

    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (amonitor_tls_events(priv, c, err == SSL_ERROR_WANT_WRITE) == -1) {
            return -1;
        }

        return 0;
    }

    amonitor_tls_error(e, sizeof(e));
    amonitor_stat_inc(priv, rejected);
    amonitor_log(priv, AMONITOR_LOG_INFO,
        "connection %llu from %s: TLS handshake failed: %s",
        (unsigned long long) c->id, c->peer,
        e[0] ? e : (err == SSL_ERROR_SYSCALL ? "connection closed" : "?"));

    return -1;
}


/* recv() over TLS: the same returns, errno EAGAIN to wait */
ssize_t
amonitor_tls_recv(amonitor_conn_t *c, void *buf, size_t len)
{
    int n, err;

    ERR_clear_error();

    n = SSL_read(c->ssl, buf, (int) len);

    if (n > 0) {
        return n;
    }

    err = SSL_get_error(c->ssl, n);

    switch (err) {

    case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify */

    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;

    case SSL_ERROR_SYSCALL:
        if (errno == 0) {
            return 0; /* EOF without close_notify */
        }
        return -1;

    default: errno = EPROTO; return -1;
    }
}


/* send() over TLS: a partial write must be retried with the same bytes */
ssize_t
amonitor_tls_send(amonitor_conn_t *c, const void *buf, size_t len)
{
    int n, err;

    ERR_clear_error();

    n = SSL_write(c->ssl, buf, (int) (len > 1 << 30 ? 1 << 30 : len));

    if (n > 0) {
        return n;
    }

    err = SSL_get_error(c->ssl, n);

    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }

    if (err != SSL_ERROR_SYSCALL || errno == 0) {
        errno = EPIPE;
    }

    return -1;
}


/* our side is done: close_notify before the TCP half-close */
void
amonitor_tls_shutdown(amonitor_conn_t *c)
{
    if (c->ssl && c->tls_done) {
        ERR_clear_error();
        (void) SSL_shutdown(c->ssl);
    }
}


void
amonitor_tls_free(amonitor_conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
}


static int
amonitor_tls_events(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int want_write)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0);
    ev.data.ptr = c;

    return epoll_ctl(priv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}


/* OpenSSL's first queued error in words, "" when there is none */
static void
amonitor_tls_error(char *buf, size_t size)
{
    unsigned long e;

    e = ERR_get_error();
    buf[0] = '\0';

    if (e) {
        ERR_error_string_n(e, buf, size);
    }

    ERR_clear_error();
}

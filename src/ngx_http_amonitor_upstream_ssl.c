/*
 * Copyright (C) AMonitor authors
 *
 * The TLS leg to wss:// targets, with nginx's own SSL: the amonitor_ssl_*
 * context, made once at configuration time when a wss:// target or
 * pattern needs it, and on every attempt the client handshake with SNI,
 * session reuse and the verification of the SDK's certificate, between
 * the TCP connect and the WebSocket handshake of upstream_io.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_upstream.h"


#if !(NGX_HTTP_SSL)
/* the same bits as nginx's SSL code, so the directive parses either way */
#define NGX_SSL_TLSv1   0x0008
#define NGX_SSL_TLSv1_1 0x0010
#define NGX_SSL_TLSv1_2 0x0020
#define NGX_SSL_TLSv1_3 0x0040
#endif


/* a certificate without its key is a mistake, wss:// in use or not */
static char *
ngx_http_amonitor_ssl_pair(ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    if (amcf->ssl_certificate.len && amcf->ssl_certificate_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "no \"amonitor_ssl_certificate_key\" is defined "
            "for certificate \"%V\"",
            &amcf->ssl_certificate);
        return NGX_CONF_ERROR;
    }

    if (amcf->ssl_certificate_key.len && amcf->ssl_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_ssl_certificate_key\" \"%V\" is set but no "
            "\"amonitor_ssl_certificate\"",
            &amcf->ssl_certificate_key);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


#if (NGX_HTTP_SSL)

static void      ngx_http_amonitor_upstream_ssl_handshaked(ngx_connection_t *c);
static ngx_int_t ngx_http_amonitor_upstream_ssl_verify(
    ngx_http_amonitor_upstream_t *u, ngx_connection_t *c, ngx_str_t *name);
static void ngx_http_amonitor_upstream_ssl_refused(
    ngx_http_amonitor_upstream_t *u, const char *fmt, ...);
static ngx_uint_t ngx_http_amonitor_ssl_is_ip(ngx_str_t *name);
static void ngx_http_amonitor_upstream_ssl_save_session(ngx_connection_t *c);
static void ngx_http_amonitor_upstream_ssl_free_session(void *data);
static void ngx_http_amonitor_upstream_ssl_log_writer(
    ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len);
static void ngx_http_amonitor_upstream_ssl_reason(
    ngx_http_amonitor_upstream_t *u, u_char *msg, u_char *last);

#endif


/* clang-format off */
ngx_conf_bitmask_t  ngx_http_amonitor_ssl_protocols[] = {
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};
/* clang-format on */


#if (NGX_HTTP_SSL)

/*
 * Defaults, and the SSL context when a wss:// URL is configured.  Verify
 * is on by default and then needs a trusted CA file: a wss:// target that
 * nobody can verify is a configuration error, not a silent downgrade.
 */
char *
ngx_http_amonitor_ssl_init_conf(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_str_t           ciphers = ngx_string("DEFAULT");
    ngx_ssl_t          *ssl;
    ngx_pool_cleanup_t *cln;

    ngx_conf_init_value(amcf->ssl_verify, 1);
    ngx_conf_init_value(amcf->ssl_server_name, 1);

    if (amcf->ssl_protocols == 0) {
        amcf->ssl_protocols =
            NGX_CONF_BITMASK_SET | NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3;
    }

    if (ngx_http_amonitor_ssl_pair(cf, amcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!amcf->ssl_used) {
        return NGX_CONF_OK;
    }

    if (amcf->ssl_verify && amcf->ssl_trusted_certificate.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
            "\"amonitor_ssl_verify\" is on but no "
            "\"amonitor_ssl_trusted_certificate\" is set to verify "
            "wss:// URLs with in %V:%ui",
            &amcf->ssl_file, amcf->ssl_line);
        return NGX_CONF_ERROR;
    }

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, amcf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (ngx_ssl_ciphers(cf, ssl, &ciphers, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (amcf->ssl_certificate.len
        && ngx_ssl_certificate(cf, ssl, &amcf->ssl_certificate,
               &amcf->ssl_certificate_key, NULL)
            != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (amcf->ssl_verify
        && ngx_ssl_trusted_certificate(
               cf, ssl, &amcf->ssl_trusted_certificate, 1)
            != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    amcf->ssl = ssl;

    return NGX_CONF_OK;
}


/*
 * Start the TLS handshake on the connected socket.  "done" is called
 * once, with NGX_OK when the SDK's certificate passed, NGX_DECLINED when
 * it did not (u->tls_failed is set) or NGX_ERROR; the handshake runs
 * under the connect timer.
 */
void
ngx_http_amonitor_upstream_ssl_start(
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_ssl_done_pt done)
{
    ngx_int_t                      rc;
    ngx_str_t                     *name;
    ngx_connection_t              *c;
    ngx_http_amonitor_main_conf_t *amcf;

    c = u->peer.connection;
    amcf = u->worker->amcf;

    u->ssl_done = done;
    u->ssl_handshaked = 0;
    u->log.action = "TLS handshake with an amonitor SDK";

    /*
     * Until the WebSocket opens, nginx's TLS lines are this attempt's
     * (a log with a writer of its own, syslog, is left alone)
     */
    u->ssl_error_len = 0;

    if (u->log.writer == NULL) {
        u->log.writer = ngx_http_amonitor_upstream_ssl_log_writer;
        u->log.wdata = u;
        u->ssl_log_level = u->log.log_level;
        u->log.log_level = ngx_max(u->log.log_level, NGX_LOG_INFO);
    }

    /* the SSL connection's own memory goes with the attempt */
    c->pool = ngx_create_pool(512, &u->log);
    if (c->pool == NULL) {
        done(u, NGX_ERROR);
        return;
    }

    if (ngx_ssl_create_connection(amcf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        done(u, NGX_ERROR);
        return;
    }

    name = amcf->ssl_name.len ? &amcf->ssl_name : &u->host;

    /* RFC 6066 3: no literal IP addresses in SNI */
    if (amcf->ssl_server_name && !ngx_http_amonitor_ssl_is_ip(name)
        && SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
            == 0) {
        ngx_ssl_error(NGX_LOG_ERR, &u->log, 0,
            "amonitor: SSL_set_tlsext_host_name(\"%s\") failed", name->data);
        done(u, NGX_ERROR);
        return;
    }

    if (u->ssl_session && ngx_ssl_set_session(c, u->ssl_session) != NGX_OK) {
        done(u, NGX_ERROR);
        return;
    }

    c->ssl->save_session = ngx_http_amonitor_upstream_ssl_save_session;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, amcf->connect_timeout);
        }

        c->ssl->handler = ngx_http_amonitor_upstream_ssl_handshaked;
        return;
    }

    ngx_http_amonitor_upstream_ssl_handshaked(c);
}


static void
ngx_http_amonitor_upstream_ssl_handshaked(ngx_connection_t *c)
{
    ngx_str_t                     *name;
    ngx_http_amonitor_upstream_t  *u;
    ngx_http_amonitor_main_conf_t *amcf;

    u = c->data;
    amcf = u->worker->amcf;

    if (c->write->timedout || c->read->timedout) {
        ngx_http_amonitor_upstream_log_failure(u, 0,
            "TLS handshake with the SDK timed out after %M ms",
            amcf->connect_timeout);
        u->ssl_done(u, NGX_ERROR);
        return;
    }

    if (!c->ssl->handshaked) {
        ngx_http_amonitor_upstream_log_failure(u, 0,
            "TLS handshake with the SDK failed%s%*s",
            u->ssl_error_len ? ": " : "", u->ssl_error_len, u->ssl_error);
        u->ssl_done(u, NGX_ERROR);
        return;
    }

    name = amcf->ssl_name.len ? &amcf->ssl_name : &u->host;

    if (amcf->ssl_verify
        && ngx_http_amonitor_upstream_ssl_verify(u, c, name) != NGX_OK) {
        u->ssl_done(u, NGX_DECLINED);
        return;
    }

    u->tls_failed = 0;
    u->ssl_handshaked = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, &u->log, 0,
        "amonitor upstream TLS: %s, reused: %d",
        SSL_get_version(c->ssl->connection),
        SSL_session_reused(c->ssl->connection));

    u->ssl_done(u, NGX_OK);
}


/* the chain to our CA, then the name: a DNS name or an IP address */
static ngx_int_t
ngx_http_amonitor_upstream_ssl_verify(
    ngx_http_amonitor_upstream_t *u, ngx_connection_t *c, ngx_str_t *name)
{
    int   match;
    long  rc;
    X509 *cert;

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_http_amonitor_upstream_ssl_refused(u,
            "certificate verify error: (%l:%s)", rc,
            X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    if (!ngx_http_amonitor_ssl_is_ip(name)) {
        if (ngx_ssl_check_host(c, name) == NGX_OK) {
            return NGX_OK;
        }

        ngx_http_amonitor_upstream_ssl_refused(
            u, "certificate does not match \"%V\"", name);
        return NGX_ERROR;
    }

    /* nginx's check is for host names; an IP needs an IP entry */
    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        ngx_http_amonitor_upstream_ssl_refused(u, "no certificate");
        return NGX_ERROR;
    }

    match = X509_check_ip_asc(cert, (char *) name->data, 0);
    X509_free(cert);

    if (match != 1) {
        ngx_http_amonitor_upstream_ssl_refused(
            u, "certificate does not match \"%V\"", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A certificate that does not pass is said at "error" when it starts,
 * even in an outage already logged (the SDK was down, now it answers
 * with the wrong certificate); the next ones go to the outage summary.
 */
static void
ngx_http_amonitor_upstream_ssl_refused(
    ngx_http_amonitor_upstream_t *u, const char *fmt, ...)
{
    u_char  buf[NGX_HTTP_AMONITOR_REASON_LEN], *p;
    va_list args;

    p = ngx_cpymem(buf, "TLS verification of the SDK failed: ",
        sizeof("TLS verification of the SDK failed: ") - 1);

    va_start(args, fmt);
    p = ngx_vslprintf(p, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (u->down && !u->tls_failed) {
        ngx_log_error(NGX_LOG_ERR, &u->log, 0, "amonitor: %*s", p - buf, buf);
    }

    u->tls_failed = 1;

    /* a session with a peer that did not pass is not worth resuming */
    if (u->ssl_session) {
        ngx_ssl_free_session(u->ssl_session);
        u->ssl_session = NULL;
    }

    ngx_http_amonitor_upstream_log_failure(u, 0, "%*s", p - buf, buf);
}


static ngx_uint_t
ngx_http_amonitor_ssl_is_ip(ngx_str_t *name)
{
    if (ngx_strlchr(name->data, name->data + name->len, ':') != NULL) {
        return 1;
    }

    return ngx_inet_addr(name->data, name->len) != INADDR_NONE;
}


/* the session to resume next time; TLS 1.3 sends it after the handshake */
static void
ngx_http_amonitor_upstream_ssl_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t            *session;
    ngx_pool_cleanup_t           *cln;
    ngx_http_amonitor_upstream_t *u;

    u = c->data;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (!u->ssl_cleanup) {
        cln = ngx_pool_cleanup_add(u->pool, 0);
        if (cln == NULL) {
            ngx_ssl_free_session(session);
            return;
        }

        cln->handler = ngx_http_amonitor_upstream_ssl_free_session;
        cln->data = u;
        u->ssl_cleanup = 1;
    }

    if (u->ssl_session) {
        ngx_ssl_free_session(u->ssl_session);
    }

    u->ssl_session = session;
}


static void
ngx_http_amonitor_upstream_ssl_free_session(void *data)
{
    ngx_http_amonitor_upstream_t *u = data;

    if (u->ssl_session) {
        ngx_ssl_free_session(u->ssl_session);
        u->ssl_session = NULL;
    }
}


/*
 * nginx reports a failed TLS handshake or read ("SSL_do_handshake()
 * failed (SSL: ...)") itself, at crit or info, on every attempt.  Before
 * the WebSocket is open such a line is the reason of a failed attempt,
 * which upstream_log.c reports at error once per outage: the line is kept
 * for that report (whatever error_log's level, ngx_http_amonitor_upstream
 * _ssl_start() lets info lines through to here) and written at info, if
 * error_log wants info.  Other lines, and the module's own, pass as they
 * are.
 */
static void
ngx_http_amonitor_upstream_ssl_log_writer(
    ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    u_char    *p, *q, *msg, *end, *last, line[NGX_MAX_ERROR_STR];
    ngx_uint_t reason;
    ngx_http_amonitor_upstream_t *u;

    u = log->wdata;
    last = buf + len;
    reason = 0;

    /* "TIME [level] PID#TID: [*N ]message[ while ...]\n" */
    p = ngx_strlchr(buf, last, '[');
    q = p ? ngx_strlchr(p, last, ']') : NULL;
    msg = q ? ngx_strlchr(q, last, ':') : NULL;

    if (msg && last - msg > 11 && level >= NGX_LOG_CRIT
        && level <= NGX_LOG_INFO) {
        msg += 2;

        if (*msg == '*') {
            msg = ngx_strlchr(msg, last, ' ');
            msg = msg ? msg + 1 : last;
        }

        reason = (last - msg > 9 && ngx_strncmp(msg, "amonitor:", 9) != 0);
    }

    if (reason) {
        end = (u_char *) ngx_strnstr(msg, " while ", last - msg);
        ngx_http_amonitor_upstream_ssl_reason(u, msg, end ? end : last - 1);

        level = NGX_LOG_INFO;
    }

    if (level > u->ssl_log_level) {
        return;
    }

    if (reason && len + 8 <= sizeof(line)) {
        /* the same line at info */
        msg = ngx_cpymem(line, buf, p - buf);
        msg = ngx_cpymem(msg, "[info", 5);
        msg = ngx_cpymem(msg, q, last - q);

        buf = line;
        len = msg - line;
    }

    (void) ngx_write_fd(log->file->fd, buf, len);
}


/*
 * "SSL_read() failed (SSL: error:0A00045C:SSL routines::tlsv13 alert
 * certificate required:SSL alert number 116)" is kept as "SSL_read()
 * failed: tlsv13 alert certificate required"
 */
static void
ngx_http_amonitor_upstream_ssl_reason(
    ngx_http_amonitor_upstream_t *u, u_char *msg, u_char *last)
{
    u_char *p, *r, *end, *q;

    p = ngx_strnstr(msg, " (SSL: ", last - msg);

    if (p == NULL) {
        r = msg;
        end = last;

    } else {
        r = ngx_strnstr(p, "::", last - p);
        r = r ? r + 2 : p + 7;
        end = ngx_strlchr(r, last, ')');
        end = end ? end : last;
        q = ngx_strnstr(r, ":SSL alert", end - r);
        end = q ? q : end;
    }

    q = u->ssl_error;
    last = u->ssl_error + sizeof(u->ssl_error);

    if (p) {
        q = ngx_cpymem(q, msg, ngx_min(p - msg, last - q));
        q = ngx_cpymem(q, ": ", ngx_min(2, last - q));
    }

    q = ngx_cpymem(q, r, ngx_min(end - r, last - q));

    u->ssl_error_len = q - u->ssl_error;
}


/* the WebSocket is open, or the attempt is over: nginx's lines as they are */
void
ngx_http_amonitor_upstream_ssl_log_done(ngx_http_amonitor_upstream_t *u)
{
    if (u->log.writer == ngx_http_amonitor_upstream_ssl_log_writer) {
        u->log.writer = NULL;
        u->log.wdata = NULL;
        u->log.log_level = u->ssl_log_level;
    }
}


/* before ngx_close_connection(): the SSL object and the attempt's pool */
void
ngx_http_amonitor_upstream_ssl_close(ngx_connection_t *c)
{
    if (c->ssl) {
        /* close_notify if it goes out now; never wait for the peer's */
        c->ssl->no_wait_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }

    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }
}


#else /* !(NGX_HTTP_SSL) */


char *
ngx_http_amonitor_ssl_init_conf(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_conf_init_value(amcf->ssl_verify, 1);
    ngx_conf_init_value(amcf->ssl_server_name, 1);

    return ngx_http_amonitor_ssl_pair(cf, amcf);
}


void
ngx_http_amonitor_upstream_ssl_start(
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_ssl_done_pt done)
{
    /* not reached: wss:// URLs are refused at configuration time */
    done(u, NGX_ERROR);
}


void
ngx_http_amonitor_upstream_ssl_close(ngx_connection_t *c)
{
}


void
ngx_http_amonitor_upstream_ssl_log_done(ngx_http_amonitor_upstream_t *u)
{
}


#endif


char *
ngx_http_amonitor_check_not_empty(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t *s = data;

    ngx_str_t *value;

    if (s->len == 0) {
        value = cf->args->elts;
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "\"%V\" must not be empty", &value[0]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* nginx's bitmask slot ORs a second line in: one line, as for the others */
char *
ngx_http_amonitor_conf_protocols(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_uint_t *np;

    np = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*np) {
        return "is duplicate";
    }

    return ngx_conf_set_bitmask_slot(cf, cmd, conf);
}

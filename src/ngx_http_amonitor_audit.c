/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor_audit_log": one line per action outcome (who, when, which
 * target and action, what came back), buffered per worker like
 * access_log and reopened with the other log files on "nginx -s reopen".
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "amon_json_write.h"


#define NGX_HTTP_AMONITOR_AUDIT_BUFFER 16384
#define NGX_HTTP_AMONITOR_AUDIT_FLUSH  1000 /* ms */
#define NGX_HTTP_AMONITOR_AUDIT_FIELD  512 /* longest field kept */


struct ngx_http_amonitor_audit_s {
    ngx_open_file_t *file;
    ngx_uint_t       json;
    u_char          *start;
    u_char          *pos;
    u_char          *last;
    ngx_event_t      event;
};


static ngx_open_file_t *ngx_http_amonitor_audit_file(
    ngx_conf_t *cf, ngx_str_t *name);
static void ngx_http_amonitor_audit_flush_file(
    ngx_open_file_t *file, ngx_log_t *log);
static void    ngx_http_amonitor_audit_timer(ngx_event_t *ev);
static u_char *ngx_http_amonitor_audit_text(
    u_char *p, ngx_http_amonitor_audit_rec_t *rec);
static u_char   *ngx_http_amonitor_audit_quoted(u_char *p, ngx_str_t *s);
static ngx_int_t ngx_http_amonitor_audit_json(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_audit_rec_t *rec, u_char **p, size_t size);
static void      ngx_http_amonitor_audit_write(
         ngx_http_amonitor_audit_t *al, u_char *line, size_t len);


char *
ngx_http_amonitor_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ngx_str_t                 *value;
    ngx_http_amonitor_audit_t *al;

    if (amcf->audit) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || ngx_strcmp(value[1].data, "off") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_audit_log\" needs a file path (without the "
            "directive there is no audit log)");
        return NGX_CONF_ERROR;
    }

    al = ngx_pcalloc(cf->pool, sizeof(ngx_http_amonitor_audit_t));
    if (al == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "json") == 0) {
            al->json = 1;

        } else if (ngx_strcmp(value[2].data, "text") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid audit log format \"%V\", it must be \"text\" or "
                "\"json\"",
                &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    al->file = ngx_http_amonitor_audit_file(cf, &value[1]);
    if (al->file == NULL) {
        return NGX_CONF_ERROR;
    }

    al->start = ngx_pnalloc(cf->pool, NGX_HTTP_AMONITOR_AUDIT_BUFFER);
    if (al->start == NULL) {
        return NGX_CONF_ERROR;
    }

    al->pos = al->start;
    al->last = al->start + NGX_HTTP_AMONITOR_AUDIT_BUFFER;

    al->event.data = al;
    al->event.handler = ngx_http_amonitor_audit_timer;
    al->event.log = &cf->cycle->new_log;
    al->event.cancelable = 1;

    al->file->flush = ngx_http_amonitor_audit_flush_file;
    al->file->data = al;

    amcf->audit = al;

    return NGX_CONF_OK;
}


/* one action's outcome: a line into the worker's buffer */
void
ngx_http_amonitor_audit(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_audit_rec_t *rec)
{
    u_char                     line[6 * NGX_HTTP_AMONITOR_AUDIT_FIELD + 256];
    u_char                    *p;
    ngx_tm_t                   tm;
    ngx_http_amonitor_audit_t *al;

    al = w->amcf->audit;

    if (al == NULL) {
        return;
    }

    if (al->json) {
        p = line;

        if (ngx_http_amonitor_audit_json(w, rec, &p, sizeof(line)) != NGX_OK) {
            return;
        }

    } else {
        ngx_gmtime(ngx_time(), &tm);
        p = ngx_sprintf(line, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ ",
            tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
            tm.ngx_tm_min, tm.ngx_tm_sec, ngx_timeofday()->msec);
        p = ngx_http_amonitor_audit_text(p, rec);
    }

    *p++ = '\n';

    ngx_http_amonitor_audit_write(al, line, p - line);
}


static u_char *
ngx_http_amonitor_audit_text(u_char *p, ngx_http_amonitor_audit_rec_t *rec)
{
    static ngx_str_t none = ngx_string("-");

    p = ngx_sprintf(p,
        "panel=%V token=%V target=", rec->panel.len ? &rec->panel : &none,
        rec->token.len ? &rec->token : &none);
    p = ngx_http_amonitor_audit_quoted(p, &rec->target);
    p = ngx_sprintf(p, " action=");
    p = ngx_http_amonitor_audit_quoted(p, &rec->action);
    p = ngx_sprintf(p, " msg_id=");
    p = ngx_http_amonitor_audit_quoted(p, &rec->msg_id);
    p = ngx_sprintf(
        p, " outcome=%s code=%s", rec->outcome, rec->code ? rec->code : "-");

    if (rec->rtt >= 0) {
        return ngx_sprintf(p, " rtt_ms=%M", (ngx_msec_t) rec->rtt);
    }

    return ngx_sprintf(p, " rtt_ms=-");
}


#define ngx_http_amonitor_audit_str(s) \
    ((amon_str_t){(const unsigned char *) (s).data, (s).len})


/* one JSON object, written with the core's writer */
static ngx_int_t
ngx_http_amonitor_audit_json(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_audit_rec_t *rec, u_char **p, size_t size)
{
    u_char        when[32];
    int64_t       ms;
    ngx_tm_t      tm;
    ngx_time_t   *tp;
    amon_str_t    s;
    amon_json_w_t jw;

    tp = ngx_timeofday();
    ms = (int64_t) tp->sec * 1000 + tp->msec;
    ngx_gmtime(tp->sec, &tm);

    s.data = when;
    s.len = ngx_sprintf(when, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                tm.ngx_tm_min, tm.ngx_tm_sec, tp->msec)
        - when;

    w->scratch.len = 0;
    amon_json_w_init(&jw, &w->scratch, size - 1, &w->allocator);

    amon_json_w_object_begin(&jw);
    amon_json_w_key(&jw, "time");
    amon_json_w_string(&jw, s);
    amon_json_w_key(&jw, "ts");
    amon_json_w_int64(&jw, ms);
    amon_json_w_key(&jw, "panel");
    amon_json_w_string(&jw, ngx_http_amonitor_audit_str(rec->panel));
    amon_json_w_key(&jw, "token");

    if (rec->token.len) {
        amon_json_w_string(&jw, ngx_http_amonitor_audit_str(rec->token));

    } else {
        amon_json_w_null(&jw);
    }

    amon_json_w_key(&jw, "target");
    amon_json_w_string(&jw, ngx_http_amonitor_audit_str(rec->target));
    amon_json_w_key(&jw, "action");
    amon_json_w_string(&jw, ngx_http_amonitor_audit_str(rec->action));
    amon_json_w_key(&jw, "msg_id");
    amon_json_w_string(&jw, ngx_http_amonitor_audit_str(rec->msg_id));
    amon_json_w_key(&jw, "outcome");
    amon_json_w_cstring(&jw, rec->outcome);
    amon_json_w_key(&jw, "code");

    if (rec->code) {
        amon_json_w_cstring(&jw, rec->code);

    } else {
        amon_json_w_null(&jw);
    }

    amon_json_w_key(&jw, "rtt_ms");

    if (rec->rtt >= 0) {
        amon_json_w_int64(&jw, rec->rtt);

    } else {
        amon_json_w_null(&jw);
    }

    amon_json_w_object_end(&jw);

    if (amon_json_w_finish(&jw) != AMON_OK) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
            "amonitor: audit line for \"%V\" not written: too long or "
            "not UTF-8",
            &rec->msg_id);
        return NGX_ERROR;
    }

    *p = ngx_cpymem(*p, w->scratch.data, w->scratch.len);

    return NGX_OK;
}


/* "value": quotes, backslashes and control bytes escaped, bounded */
static u_char *
ngx_http_amonitor_audit_quoted(u_char *p, ngx_str_t *s)
{
    size_t i, n;

    n = ngx_min(s->len, NGX_HTTP_AMONITOR_AUDIT_FIELD / 4);
    *p++ = '"';

    for (i = 0; i < n; i++) {
        if (s->data[i] == '"' || s->data[i] == '\\') {
            *p++ = '\\';
            *p++ = s->data[i];

        } else if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            p = ngx_sprintf(p, "\\x%02xd", s->data[i]);

        } else {
            *p++ = s->data[i];
        }
    }

    *p++ = '"';

    return p;
}


static void
ngx_http_amonitor_audit_write(
    ngx_http_amonitor_audit_t *al, u_char *line, size_t len)
{
    if ((size_t) (al->last - al->pos) < len) {
        ngx_http_amonitor_audit_flush_file(al->file, ngx_cycle->log);
    }

    al->pos = ngx_cpymem(al->pos, line, len);

    if (!al->event.timer_set && !ngx_exiting) {
        ngx_add_timer(&al->event, NGX_HTTP_AMONITOR_AUDIT_FLUSH);
    }
}


/* called by the timer, when full, at exit, and by nginx before reopen */

/*
 * The audit log's own entry in the cycle's list of files, which nginx
 * opens and "nginx -s reopen" reopens.  Not the one ngx_conf_open_file()
 * shares with every log of that name: the audit log keeps its buffer in
 * the entry's data and flush, where access_log looks for its own buffer
 * (an access_log on the same file wrote its lines into the audit log's
 * buffer, or was refused for "conflicting parameters").  So that no later
 * ngx_conf_open_file() finds it, the entry names the file as DIR/./NAME,
 * the same file by another spelling; both then append to it, each
 * through its own descriptor.
 */
static ngx_open_file_t *
ngx_http_amonitor_audit_file(ngx_conf_t *cf, ngx_str_t *name)
{
    u_char          *slash;
    ngx_str_t        full, own;
    ngx_open_file_t *file;

    full = *name;
    ngx_str_null(&own);

    if (ngx_strcmp(name->data, "stderr") != 0) {
        if (ngx_conf_full_name(cf->cycle, &full, 0) != NGX_OK) {
            return NULL;
        }

        slash = full.data + full.len;
        while (slash > full.data && slash[-1] != '/') {
            slash--;
        }

        own.len = full.len + 2;
        own.data = ngx_pnalloc(cf->pool, own.len + 1);
        if (own.data == NULL) {
            return NULL;
        }

        ngx_sprintf(own.data, "%*s./%*s%Z", slash - full.data, full.data,
            full.data + full.len - slash, slash);
    }

    file = ngx_list_push(&cf->cycle->open_files);
    if (file == NULL) {
        return NULL;
    }

    file->fd = own.len ? NGX_INVALID_FILE : ngx_stderr;
    file->name = own;
    file->flush = NULL;
    file->data = NULL;

    return file;
}


static void
ngx_http_amonitor_audit_flush_file(ngx_open_file_t *file, ngx_log_t *log)
{
    ssize_t                    n;
    size_t                     len;
    ngx_http_amonitor_audit_t *al = file->data;

    len = al->pos - al->start;

    if (len == 0) {
        return;
    }

    n = ngx_write_fd(file->fd, al->start, len);

    if (n == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
            ngx_write_fd_n " to amonitor audit log \"%s\" failed",
            file->name.data);

    } else if ((size_t) n != len) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
            ngx_write_fd_n " to amonitor audit log \"%s\" was incomplete: "
                           "%z of %uz",
            file->name.data, n, len);
    }

    al->pos = al->start;
}


static void
ngx_http_amonitor_audit_timer(ngx_event_t *ev)
{
    ngx_http_amonitor_audit_t *al = ev->data;

    ngx_http_amonitor_audit_flush_file(al->file, ev->log);
}


void
ngx_http_amonitor_audit_exit(ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_http_amonitor_audit_t *al = amcf->audit;

    if (al == NULL) {
        return;
    }

    if (al->event.timer_set) {
        ngx_del_timer(&al->event);
    }

    ngx_http_amonitor_audit_flush_file(al->file, ngx_cycle->log);
}

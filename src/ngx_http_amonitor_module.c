/*
 * Copyright (C) AMonitor authors
 *
 * ngx_http_amonitor_module: configuration directives and the shared zone,
 * the way limit_req does it.  The runtime of a worker starts and stops in
 * worker.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


static void *ngx_http_amonitor_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_amonitor_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_amonitor_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_amonitor_merge_loc_conf(
    ngx_conf_t *cf, void *parent, void *child);
static ngx_int_t ngx_http_amonitor_postconfiguration(ngx_conf_t *cf);
static char     *ngx_http_amonitor_zone(
        ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_amonitor_check_queue(
    ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_amonitor_check_not_zero(
    ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_amonitor_status(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_amonitor_metrics(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_amonitor_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_amonitor_init_process(ngx_cycle_t *cycle);
static void      ngx_http_amonitor_exit_process(ngx_cycle_t *cycle);


/* clang-format off */
static ngx_conf_post_t  ngx_http_amonitor_panel_post =
    { ngx_http_amonitor_panel_conf };

static ngx_conf_post_t  ngx_http_amonitor_queue_post =
    { ngx_http_amonitor_check_queue };

static ngx_conf_post_t  ngx_http_amonitor_not_zero_post =
    { ngx_http_amonitor_check_not_zero };

/* a name or a file: "" would mean none, which leaving it out says */
static ngx_conf_post_t  ngx_http_amonitor_not_empty_post =
    { ngx_http_amonitor_check_not_empty };



/*
 * A number's bounds, with the directive's name in the message.  This is
 * nginx's ngx_conf_check_num_bounds() but for the message: nginx says
 * "value must be between 1 and 64", naming the directive only by file and
 * line, while the module's other range errors ("amonitor_send_queue",
 * "amonitor_max_message_size") name it, and t/010-config-errors.t holds
 * these to the same words: "amonitor_dial_attempts" must be between 1 and
 * 1000.
 */
typedef struct {
    ngx_conf_post_handler_pt post_handler;
    const char              *name;
    ngx_uint_t               low;
    ngx_uint_t               high;
} ngx_http_amonitor_bounds_t;


static char *ngx_http_amonitor_check_bounds(
    ngx_conf_t *cf, void *post, void *data);


/* learned targets: how many, how many dials, attempts (registry.c) */
static ngx_http_amonitor_bounds_t  ngx_http_amonitor_learned_bounds = {
    ngx_http_amonitor_check_bounds, "amonitor_learned_limit", 1,
    NGX_HTTP_AMONITOR_MAX_LEARNED
};

static ngx_http_amonitor_bounds_t  ngx_http_amonitor_dial_bounds = {
    ngx_http_amonitor_check_bounds, "amonitor_dial_limit", 1,
    NGX_HTTP_AMONITOR_MAX_LEARNED
};

static ngx_http_amonitor_bounds_t  ngx_http_amonitor_panel_dial_bounds = {
    ngx_http_amonitor_check_bounds, "amonitor_dial_limit_per_panel", 1,
    NGX_HTTP_AMONITOR_PANEL_DIALS
};

static ngx_http_amonitor_bounds_t  ngx_http_amonitor_attempts_bounds = {
    ngx_http_amonitor_check_bounds, "amonitor_dial_attempts", 1, 1000
};


static ngx_command_t  ngx_http_amonitor_commands[] = {

    { ngx_string("amonitor_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_amonitor_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_target"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_amonitor_conf_target,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_dedupe_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, dedupe_ttl),
      NULL },

    { ngx_string("amonitor_ack_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ack_timeout),
      NULL },

    { ngx_string("amonitor_ack_late_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, late_window),
      NULL },

    { ngx_string("amonitor_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, connect_timeout),
      &ngx_http_amonitor_not_zero_post },

    { ngx_string("amonitor_reconnect"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_amonitor_conf_reconnect,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_ping"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ping),
      NULL },

    { ngx_string("amonitor_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, max_message),
      NULL },

    { ngx_string("amonitor_send_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, queue),
      &ngx_http_amonitor_queue_post },

    { ngx_string("amonitor_connection_buffer_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, buffer_limit),
      NULL },

    { ngx_string("amonitor_learned_expire"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, learned_expire),
      NULL },

    { ngx_string("amonitor_dial_attempts"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, dial_attempts),
      &ngx_http_amonitor_attempts_bounds },

    { ngx_string("amonitor_learned_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, learned_limit),
      &ngx_http_amonitor_learned_bounds },

    { ngx_string("amonitor_dial_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, dial_limit),
      &ngx_http_amonitor_dial_bounds },

    { ngx_string("amonitor_dial_limit_per_panel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, dial_limit_panel),
      &ngx_http_amonitor_panel_dial_bounds },

    { ngx_string("amonitor_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_amonitor_store_redis_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_amonitor_cluster_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_instance_id"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, instance_id),
      NULL },

    { ngx_string("amonitor_allow_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_amonitor_conf_allow_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_verify),
      NULL },

    { ngx_string("amonitor_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_trusted_certificate),
      &ngx_http_amonitor_not_empty_post },

    { ngx_string("amonitor_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_name),
      &ngx_http_amonitor_not_empty_post },

    { ngx_string("amonitor_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_server_name),
      NULL },

    { ngx_string("amonitor_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_certificate),
      &ngx_http_amonitor_not_empty_post },

    { ngx_string("amonitor_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_certificate_key),
      &ngx_http_amonitor_not_empty_post },

    { ngx_string("amonitor_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_amonitor_conf_protocols,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_amonitor_main_conf_t, ssl_protocols),
      &ngx_http_amonitor_ssl_protocols },

    { ngx_string("amonitor_panel"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_amonitor_loc_conf_t, panel),
      &ngx_http_amonitor_panel_post },

    { ngx_string("amonitor_panel_allow_origin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_amonitor_panel_allow_origin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_panel_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_amonitor_conf_panel_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_panel_snapshot"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_amonitor_loc_conf_t, panel_snapshot),
      NULL },

    { ngx_string("amonitor_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_amonitor_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_amonitor_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_dashboard"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_amonitor_dashboard,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("amonitor_dashboard_root"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_amonitor_loc_conf_t, dashboard_root),
      &ngx_http_amonitor_dashboard_root_post },

    { ngx_string("amonitor_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_amonitor_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_amonitor_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_amonitor_postconfiguration,   /* postconfiguration */

    ngx_http_amonitor_create_main_conf,    /* create main configuration */
    ngx_http_amonitor_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_amonitor_create_loc_conf,     /* create location configuration */
    ngx_http_amonitor_merge_loc_conf       /* merge location configuration */
};


/* the key of ngx_http_amonitor_hash(): the zone's (store_shm.c) */
amon_hash_key_t ngx_http_amonitor_hash_key;


ngx_module_t  ngx_http_amonitor_module = {
    NGX_MODULE_V1,
    &ngx_http_amonitor_module_ctx,         /* module context */
    ngx_http_amonitor_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_amonitor_init_module,         /* init module */
    ngx_http_amonitor_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_amonitor_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static void *
ngx_http_amonitor_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_amonitor_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->shm_zone = NULL;
     *     amcf->worker = NULL;
     *     amcf->audit = NULL;
     *     amcf->cluster = NULL;
     *     amcf->cluster_set = 0;
     *     amcf->instance_id = { 0, NULL };
     *     amcf->panel_file = { 0, NULL };
     *     amcf->ssl_protocols = 0;
     *     amcf->ssl_trusted_certificate = { 0, NULL };
     *     amcf->ssl_name = { 0, NULL };
     *     amcf->ssl_certificate = { 0, NULL };
     *     amcf->ssl_certificate_key = { 0, NULL };
     *     amcf->ssl_used = 0;
     *     amcf->ssl = NULL;
     */

    if (ngx_array_init(&amcf->targets, cf->pool, 4,
            sizeof(ngx_http_amonitor_target_conf_t))
        != NGX_OK) {
        return NULL;
    }

    if (ngx_array_init(
            &amcf->allow, cf->pool, 2, sizeof(ngx_http_amonitor_allow_t))
        != NGX_OK) {
        return NULL;
    }

    amcf->dedupe_ttl = NGX_CONF_UNSET_MSEC;
    amcf->ack_timeout = NGX_CONF_UNSET_MSEC;
    amcf->late_window = NGX_CONF_UNSET_MSEC;
    amcf->reconnect_min = NGX_CONF_UNSET_MSEC;
    amcf->reconnect_max = NGX_CONF_UNSET_MSEC;
    amcf->ping = NGX_CONF_UNSET_MSEC;
    amcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    amcf->max_message = NGX_CONF_UNSET_SIZE;
    amcf->queue = NGX_CONF_UNSET_UINT;
    amcf->buffer_limit = NGX_CONF_UNSET_SIZE;
    amcf->learned_expire = NGX_CONF_UNSET_MSEC;
    amcf->dial_attempts = NGX_CONF_UNSET_UINT;
    amcf->learned_limit = NGX_CONF_UNSET_UINT;
    amcf->dial_limit = NGX_CONF_UNSET_UINT;
    amcf->dial_limit_panel = NGX_CONF_UNSET_UINT;
    amcf->ssl_verify = NGX_CONF_UNSET;
    amcf->ssl_server_name = NGX_CONF_UNSET;

    return amcf;
}


static char *
ngx_http_amonitor_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ngx_conf_init_msec_value(amcf->dedupe_ttl, 24 * 60 * 60 * 1000);
    ngx_conf_init_msec_value(amcf->ack_timeout, 10000);
    ngx_conf_init_msec_value(
        amcf->late_window, ngx_min(amcf->ack_timeout * 10, 600000));
    ngx_conf_init_msec_value(amcf->reconnect_min, 200);
    ngx_conf_init_msec_value(amcf->reconnect_max, 10000);
    ngx_conf_init_msec_value(amcf->ping, 20000);
    ngx_conf_init_msec_value(amcf->connect_timeout, 5000);
    ngx_conf_init_size_value(amcf->max_message, 1024 * 1024);
    ngx_conf_init_uint_value(amcf->queue, 1024);
    ngx_conf_init_msec_value(amcf->learned_expire, 10 * 60 * 1000);
    ngx_conf_init_uint_value(amcf->dial_attempts, 3);
    ngx_conf_init_uint_value(amcf->learned_limit, 1024);
    ngx_conf_init_uint_value(
        amcf->dial_limit, ngx_min(16, amcf->learned_limit));
    ngx_conf_init_uint_value(amcf->dial_limit_panel, 4);

    /* at most: Redis refuses an expiry past its clock's range */
    if (amcf->dedupe_ttl < 1000 || amcf->dedupe_ttl > 366 * 86400000ULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_dedupe_ttl\" must be at least 1s and at most 366d");
        return NGX_CONF_ERROR;
    }

    if (amcf->ping != 0 && amcf->ping < 100) {
        /* a ping timer per connection this often is the worker's whole job */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_ping\" must be 0 (off) or at least 100ms");
        return NGX_CONF_ERROR;
    }

    if (amcf->ack_timeout == 0) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "\"amonitor_ack_timeout\" must not be zero");
        return NGX_CONF_ERROR;
    }

    if (amcf->max_message < 1024 || amcf->max_message > 64 * 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_max_message_size\" must be between "
            "1k and 64m");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_size_value(amcf->buffer_limit,
        ngx_max(4 * 1024 * 1024, amcf->max_message + 65536));

    if (amcf->learned_expire < 2 * NGX_HTTP_AMONITOR_RECONCILE) {
        /* workers say once a second which learned targets are open */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_learned_expire\" must be at least 2s");
        return NGX_CONF_ERROR;
    }

    if (amcf->dial_limit > amcf->learned_limit) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_dial_limit\" must be between 1 and "
            "\"amonitor_learned_limit\" (%ui)",
            amcf->learned_limit);
        return NGX_CONF_ERROR;
    }

    if (amcf->buffer_limit < amcf->max_message + 65536) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_connection_buffer_limit\" must be at least "
            "\"amonitor_max_message_size\" plus 64k");
        return NGX_CONF_ERROR;
    }

    if (amcf->redis && amcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_redis\" requires \"amonitor_zone\"");
        return NGX_CONF_ERROR;
    }

    if (amcf->targets.nelts && amcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_target\" requires \"amonitor_zone\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_amonitor_ssl_init_conf(cf, amcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_amonitor_cluster_check(cf, amcf);
}


static void *
ngx_http_amonitor_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_amonitor_loc_conf_t *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_amonitor_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->allow_origin = NULL;
     *     alcf->dashboard_root = { 0, NULL };
     *     alcf->metrics = 0;
     *     alcf->status = 0;
     */

    alcf->panel_tokens = NGX_CONF_UNSET_PTR;
    alcf->panel = NGX_CONF_UNSET;
    alcf->panel_snapshot = NGX_CONF_UNSET;
    alcf->dashboard = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_amonitor_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_amonitor_loc_conf_t *prev = parent;
    ngx_http_amonitor_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->panel, prev->panel, 0);
    ngx_conf_merge_ptr_value(conf->panel_tokens, prev->panel_tokens, NULL);
    ngx_conf_merge_value(conf->panel_snapshot, prev->panel_snapshot, 1);
    ngx_conf_merge_str_value(conf->dashboard_root, prev->dashboard_root, "");

    if (conf->allow_origin == NULL) {
        conf->allow_origin = prev->allow_origin;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_amonitor_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_amonitor_module);

    if (amcf->panel_file.len && amcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
            "\"amonitor_panel\" in %V:%ui requires "
            "\"amonitor_zone\" in the http block",
            &amcf->panel_file, amcf->panel_line);
        return NGX_ERROR;
    }

    return ngx_http_amonitor_store_reload_check(cf, amcf);
}


/* the new cycle runs: what a reload may not change of its store */
static ngx_int_t
ngx_http_amonitor_init_module(ngx_cycle_t *cycle)
{
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_amonitor_module);
    if (amcf) {
        ngx_http_amonitor_store_reload_keep(amcf);
    }

    return NGX_OK;
}


static char *
ngx_http_amonitor_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ssize_t    size;
    ngx_str_t *value;

    if (amcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "invalid zone name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (32 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "zone \"%V\" is too small: %V, the minimum is "
            "%uzk",
            &value[1], &value[2], (size_t) (32 * ngx_pagesize) / 1024);
        return NGX_CONF_ERROR;
    }

    amcf->shm_zone =
        ngx_shared_memory_add(cf, &value[1], size, &ngx_http_amonitor_module);
    if (amcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (amcf->shm_zone->data) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "duplicate zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->shm_zone->init = ngx_http_amonitor_store_shm_init_zone;
    amcf->shm_zone->data = amcf;

    return NGX_CONF_OK;
}


static char *
ngx_http_amonitor_check_queue(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t *np = data;

    if (*np < 16 || *np > 1048576) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_send_queue\" must be between 16 and 1048576");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_amonitor_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_loc_conf_t *alcf = conf;

    if (alcf->status) {
        return "is duplicate";
    }

    alcf->status = 1;

    return ngx_http_amonitor_conf_handler(cf, ngx_http_amonitor_status_handler);
}


static char *
ngx_http_amonitor_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_loc_conf_t *alcf = conf;

    if (alcf->metrics) {
        return "is duplicate";
    }

    alcf->metrics = 1;

    return ngx_http_amonitor_conf_handler(
        cf, ngx_http_amonitor_metrics_handler);
}


static ngx_int_t
ngx_http_amonitor_init_process(ngx_cycle_t *cycle)
{
    ngx_http_amonitor_main_conf_t *amcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_amonitor_module);
    if (amcf == NULL || amcf->shm_zone == NULL) {
        return NGX_OK;
    }

    /* the key the zone's index was made with */
    ngx_http_amonitor_hash_key =
        ngx_http_amonitor_store_shm_shared(amcf->shm_zone)->hash_key;

    return ngx_http_amonitor_worker_init(cycle, amcf);
}


static void
ngx_http_amonitor_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_amonitor_module);
    if (amcf == NULL) {
        return;
    }

    ngx_http_amonitor_worker_exit(amcf);
}


static char *
ngx_http_amonitor_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_amonitor_bounds_t *b = post;
    ngx_uint_t                 *np = data;

    if (*np < b->low || *np > b->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"%s\" must be between %ui and %ui", b->name, b->low, b->high);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a time that must not be zero: with 0, every attempt times out at once */
static char *
ngx_http_amonitor_check_not_zero(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t *mp = data;

    ngx_str_t *value;

    if (*mp == 0) {
        value = cf->args->elts;
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "\"%V\" must not be zero", &value[0]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

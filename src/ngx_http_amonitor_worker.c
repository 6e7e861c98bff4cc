/*
 * Copyright (C) AMonitor authors
 *
 * The runtime of one worker process: made in init_process, torn down in
 * exit_process.  It owns the frame buffers, the store, the panels' and
 * upstreams' lists and the table of actions, and starts the upstreams.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_subscribe.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_fanout_told.h"


static void ngx_http_amonitor_worker_descriptors(
    ngx_http_amonitor_worker_t *w, ngx_cycle_t *cycle);
static ngx_uint_t ngx_http_amonitor_worker_settled(
    ngx_cycle_t *cycle, ngx_uint_t base);
static void *ngx_http_amonitor_worker_alloc(void *data, size_t size);
static void  ngx_http_amonitor_worker_free(void *data, void *p);


ngx_int_t
ngx_http_amonitor_worker_init(
    ngx_cycle_t *cycle, ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_int_t                   rc;
    ngx_uint_t                  base;
    ngx_http_amonitor_worker_t *w;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_amonitor_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->cycle = cycle;
    w->amcf = amcf;

    ngx_http_amonitor_worker_descriptors(w, cycle);

    ngx_queue_init(&w->panels);
    ngx_queue_init(&w->lingering);
    ngx_queue_init(&w->upstreams);
    ngx_queue_init(&w->queries);

    w->allocator.alloc = ngx_http_amonitor_worker_alloc;
    w->allocator.free = ngx_http_amonitor_worker_free;
    w->allocator.data = cycle->log;

    if (ngx_http_amonitor_frames_init(&w->frames, cycle->pool,
            amcf->max_message, amcf->queue, amcf->ping, &w->allocator)
        != NGX_OK) {
        return NGX_ERROR;
    }

    /* lower layers reach upstream.c only through these */
    w->dial = ngx_http_amonitor_upstream_add;
    w->kick = ngx_http_amonitor_upstream_kick;
    w->drop = ngx_http_amonitor_upstream_drop;
    w->hangup = ngx_http_amonitor_upstream_hangup;
    w->settled = ngx_http_amonitor_action_lease_settled;

    w->counters = ngx_http_amonitor_store_counters(amcf->shm_zone);

    w->frames.buffer_limit = amcf->buffer_limit;
    w->frames.oversize = &w->counters->oversize;

    if (amcf->redis) {
        w->store = ngx_http_amonitor_store_redis_create(w, amcf->redis);

    } else {
        /* a claim outlives the wait for its ack, late window included */
        w->store =
            ngx_http_amonitor_store_shm_create(amcf->shm_zone, cycle->pool,
                amcf->dedupe_ttl, amcf->ack_timeout + amcf->late_window + 1000);
    }

    if (w->store == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_amonitor_action_init_worker(w) != NGX_OK
        || ngx_http_amonitor_subscribe_init_worker(w) != NGX_OK) {
        return NGX_ERROR;
    }

    amcf->worker = w;

    /* amonitor_cluster: before the upstreams, which ask it who dials */
    if (ngx_http_amonitor_cluster_init(w) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * The first dials are made here, before nginx settles its channels:
     * they count what is open now or what will be, whichever is more
     * (the channel to come is a connection then, not yet now)
     */
    base = ngx_http_amonitor_worker_settled(cycle, w->fd_base);
    w->fd_base = ngx_max(w->fd_base, base + 1);

    rc = ngx_http_amonitor_upstream_init_worker(w);

    w->fd_base = base;

    return rc;
}


void
ngx_http_amonitor_worker_exit(ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_http_amonitor_worker_t *w;

    w = amcf->worker;
    if (w == NULL) {
        return;
    }

    ngx_http_amonitor_panel_close_all(w);
    ngx_http_amonitor_action_exit_remote(w);
    ngx_http_amonitor_upstream_exit_worker(w);
    ngx_http_amonitor_cluster_exit(w);
    ngx_http_amonitor_action_exit_worker(w);
    ngx_http_amonitor_query_exit_worker(w);
    ngx_http_amonitor_subscribe_exit_worker(w);
    ngx_http_amonitor_audit_exit(amcf);

    if (amcf->redis) {
        ngx_http_amonitor_store_redis_exit(w->store);
    }

    ngx_http_amonitor_told_free(w);
    amon_buf_free(&w->scratch, &w->allocator);
    amon_buf_free(&w->convert, &w->allocator);
    ngx_http_amonitor_frames_free(&w->frames);
    ngx_http_amonitor_store_counters_release(amcf->shm_zone);

    amcf->worker = NULL;
}


/*
 * What the dials may open besides worker_connections: RLIMIT_NOFILE (as
 * worker_rlimit_nofile set it), and the descriptors that are not
 * connections (log files, epoll, the channels), counted in /proc/self/fd
 * as the open ones less the connections in use.  Where either cannot be
 * read, nofile stays 0 and worker_connections alone bound the dials.
 */
static void
ngx_http_amonitor_worker_descriptors(
    ngx_http_amonitor_worker_t *w, ngx_cycle_t *cycle)
{
    DIR           *dir;
    ngx_int_t      n;
    struct rlimit  rl;
    struct dirent *de;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY) {
        return;
    }

    dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        return;
    }

    n = -1; /* the directory's own descriptor */

    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }

    (void) closedir(dir);

    n -= (ngx_int_t) (cycle->connection_n - cycle->free_connection_n);

    w->fd_base = (n > 0) ? (ngx_uint_t) n : 0;
    w->nofile = (ngx_uint_t) rl.rlim_cur;
}


/*
 * fd_base after the modules' init_process, where it was counted: a
 * worker then closes its copies of the other processes' channels and the
 * master's end of its own, and takes a connection for its own end.  It
 * keeps the master's end of every other worker's channel, and gets those
 * of workers started after it (the master passes them on): at least
 * worker_processes - 1.  After a reload the old workers' ends count until
 * they are closed, and are counted on after (fewer dials, never too many).
 */
static ngx_uint_t
ngx_http_amonitor_worker_settled(ngx_cycle_t *cycle, ngx_uint_t base)
{
    ngx_int_t        i;
    ngx_uint_t       gone, held, all;
    ngx_core_conf_t *ccf;

    if (ngx_process != NGX_PROCESS_WORKER) {
        return base;
    }

    gone = 2; /* channel[0] closed, channel[1] a connection */
    held = 0;

    for (i = 0; i < ngx_last_process; i++) {
        if (ngx_processes[i].pid == -1 || i == ngx_process_slot) {
            continue;
        }

        held += (ngx_processes[i].channel[0] != -1);
        gone += (ngx_processes[i].channel[1] != -1);
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
    all = (ngx_uint_t) ccf->worker_processes - 1;

    base = (base > gone) ? base - gone : 0;

    return base + ((all > held) ? all - held : 0);
}


static void *
ngx_http_amonitor_worker_alloc(void *data, size_t size)
{
    return ngx_alloc(size, data);
}


static void
ngx_http_amonitor_worker_free(void *data, void *p)
{
    ngx_free(p);
}

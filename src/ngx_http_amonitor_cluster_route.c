/*
 * Copyright (C) AMonitor authors
 *
 * Shared routes and owner leases.  Every target is in Redis (a hash of
 * routes, a sorted set of when each was last served) and announced on the
 * routes channel; one worker of the cluster holds a target's lease (set
 * when missing, with an expiry, renewed and released by compare-and-set
 * on its token) and only it dials the target.  Reaches upstream.c through w->kick and w->hangup.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


/*
 * Renew while ours; take it when it is missing (Redis lost its data), and
 * write the target's route (ARGV[5]) again when it is missing too
 */
#define NGX_HTTP_AMONITOR_LUA_RENEW \
    NGX_HTTP_AMONITOR_LUA_LOST("4", "6") \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) " \
    "elseif not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) " \
    "else return 0 end " \
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) " \
    "redis.call('HSETNX', KEYS[3], ARGV[4], ARGV[5]) return 1"

/*
 * Take it when it is free (nil), else the holder's token; 0: Redis lost
 * its data a moment ago (the mark, KEYS[3], is there, with no more than
 * ARGV[4] ms left: a longer-lived key of that name is not the mark), and
 * a live owner may not have taken its lease back yet: wait.  As
 * NGX_HTTP_AMONITOR_LUA_LOST, but the target's route missing too (KEYS[4],
 * ARGV[5]) also marks the loss: owners whose subscriber connections are
 * down at that moment are not counted on the channel.
 */
/* clang-format off */
#define NGX_HTTP_AMONITOR_LUA_ACQUIRE \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v then return v end " \
    "if redis.call('EXISTS', KEYS[2]) == 0 then " \
    "redis.call('SET', KEYS[2], '1') " \
    "if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 0 " \
    "or redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2] > 0 then " \
    "redis.call('SET', KEYS[3], '1', 'PX', ARGV[4]) end end " \
    "local t = redis.call('PTTL', KEYS[3]) " \
    "if t > 0 and t <= tonumber(ARGV[4]) then return 0 end " \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return false"
/* clang-format on */

#define NGX_HTTP_AMONITOR_LUA_RELEASE \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then " \
    "return redis.call('DEL', KEYS[1]) end return 0"

#define NGX_HTTP_AMONITOR_LUA_ANNOUNCE \
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) " \
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) " \
    "return redis.call('PUBLISH', ARGV[4], ARGV[5])"

/* routes nobody served for route_ttl go; then all of them */
#define NGX_HTTP_AMONITOR_LUA_RESYNC \
    "local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) " \
    "for _, id in ipairs(old) do redis.call('HDEL', KEYS[1], id) " \
    "redis.call('ZREM', KEYS[2], id) end " \
    "return redis.call('HGETALL', KEYS[1])"


static void ngx_http_amonitor_lease_acquired(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_lease_renew(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l);
static void ngx_http_amonitor_lease_renewed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_lease_free(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l);
static void ngx_http_amonitor_lease_release(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l);
static void ngx_http_amonitor_routes_got(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static ngx_msec_t ngx_http_amonitor_lease_retry(
    ngx_http_amonitor_cluster_t *cl, ngx_msec_t base);
static ngx_int_t ngx_http_amonitor_route_value(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *url, const char *origin, ngx_str_t *value);
static int64_t   ngx_http_amonitor_cluster_now(void);


/* is this token (a bus message's sender, a lease's holder) this worker's */
ngx_uint_t
ngx_http_amonitor_cluster_mine(
    ngx_http_amonitor_cluster_t *cl, const char *p, size_t len)
{
    return len == cl->token.len && ngx_memcmp(p, cl->token.data, len) == 0;
}


/* the lease record of an upstream, made when it is first asked about */
ngx_http_amonitor_lease_t *
ngx_http_amonitor_lease_get(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u)
{
    u_char                    *p;
    ngx_str_t                 *prefix;
    ngx_http_amonitor_lease_t *l;

    if (u->lease) {
        return u->lease;
    }

    prefix = &cl->redis->prefix;

    /*
     * Apart from the upstream: a command about it may be answered after
     * the upstream is freed (the handler frees a lease marked gone)
     */
    l = ngx_calloc(sizeof(ngx_http_amonitor_lease_t) + prefix->len
            + sizeof("lease:") - 1 + u->id.len,
        cl->log);
    if (l == NULL) {
        return NULL;
    }

    p = (u_char *) (l + 1);
    l->key.data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, "lease:", sizeof("lease:") - 1);
    p = ngx_cpymem(p, u->id.data, u->id.len);
    l->key.len = p - l->key.data;

    l->upstream = u;

    /* the first attempt is spread too, so workers do not race in step */
    l->retry_at = ngx_current_msec + (ngx_random() % (cl->conf->lease / 4 + 1));

    ngx_queue_insert_tail(&cl->leases, &l->queue);
    u->lease = l;

    return l;
}


/*
 * A learned target this worker forgets (its upstream is freed next): its
 * lease record goes with it, or, while a command about it is under way,
 * when that command's handler runs (marked gone meanwhile).
 */
void
ngx_http_amonitor_cluster_forget(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_lease_t   *l;
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    l = u->lease;

    if (cl == NULL || l == NULL) {
        return;
    }

    if (l->owned && cl->cmd->ready) {
        ngx_http_amonitor_lease_release(cl, l);
    }

    u->lease = NULL;
    ngx_http_amonitor_lease_free(cl, l);
}


/* out of the worker's list; freed now, or by the handler under way */
static void
ngx_http_amonitor_lease_free(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l)
{
    ngx_queue_remove(&l->queue);

    if (l->busy) {
        l->owned = 0;
        l->gone = 1;
        return;
    }

    ngx_free(l);
}


/* only the worker holding a target's lease dials it */
ngx_uint_t
ngx_http_amonitor_cluster_may_dial(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_lease_t   *l;
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return 1;
    }

    l = ngx_http_amonitor_lease_get(cl, u);

    return l != NULL && l->owned;
}


/*
 * The owner's connection failed or closed: the lease goes, and this worker
 * waits a little before it tries again, so that another worker (which may
 * reach the SDK) gets the first chance.
 */
void
ngx_http_amonitor_lease_down(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_lease_t *l;

    l = u->lease;

    if (l == NULL || !l->owned) {
        return;
    }

    l->owned = 0;
    l->retry_at = ngx_http_amonitor_lease_retry(cl, cl->conf->lease / 2);

    ngx_http_amonitor_lease_release(cl, l);
}


/*
 * The command connection is back (Redis may have restarted empty): the
 * owners renew at once (the script takes a lease that is missing), the
 * others wait half a lease before they try, so that the owners keep their
 * connections rather than race them.
 */
void
ngx_http_amonitor_lease_reconnected(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t               *q;
    ngx_http_amonitor_lease_t *l;

    for (q = ngx_queue_head(&cl->leases); q != ngx_queue_sentinel(&cl->leases);
         q = ngx_queue_next(q)) {
        l = ngx_queue_data(q, ngx_http_amonitor_lease_t, queue);

        if (l->owned) {
            l->retry_at = ngx_current_msec - cl->conf->lease;

        } else {
            l->retry_at =
                ngx_http_amonitor_lease_retry(cl, cl->conf->lease / 2);
        }
    }

    ngx_http_amonitor_lease_tick(cl);
}


/* every tick: acquire what has no owner, renew what is ours */
void
ngx_http_amonitor_lease_tick(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t               *q;
    ngx_http_amonitor_lease_t *l;

    if (!cl->cmd->ready) {
        /* Redis is down: the owners keep their connections meanwhile */
        return;
    }

    for (q = ngx_queue_head(&cl->leases); q != ngx_queue_sentinel(&cl->leases);
         q = ngx_queue_next(q)) {
        l = ngx_queue_data(q, ngx_http_amonitor_lease_t, queue);

        if (l->busy || l->gone || l->upstream->stopped) {
            continue;
        }

        if (l->owned) {
            if (ngx_current_msec - l->retry_at >= cl->conf->lease / 3) {
                ngx_http_amonitor_lease_renew(cl, l);
            }

            continue;
        }

        if ((ngx_msec_int_t) (ngx_current_msec - l->retry_at) >= 0) {
            ngx_http_amonitor_lease_acquire(cl, l);
        }
    }
}


static ngx_msec_t
ngx_http_amonitor_lease_retry(ngx_http_amonitor_cluster_t *cl, ngx_msec_t base)
{
    return ngx_current_msec + base + ngx_random() % (cl->conf->lease / 4 + 1);
}


void
ngx_http_amonitor_lease_acquire(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l)
{
    l->retry_at = ngx_http_amonitor_lease_retry(cl, cl->conf->lease / 4);

    if (ngx_http_amonitor_redis_command(cl->cmd,
            ngx_http_amonitor_lease_acquired, l, "EVAL acquire",
            "EVAL %s 4 %b %b %b %b %b %lu %b %lu %b",
            NGX_HTTP_AMONITOR_LUA_ACQUIRE, l->key.data, l->key.len,
            cl->k_state.data, cl->k_state.len, cl->k_lost.data, cl->k_lost.len,
            cl->k_routes.data, cl->k_routes.len, cl->token.data, cl->token.len,
            (unsigned long) cl->conf->lease, cl->ch_owners.data,
            cl->ch_owners.len, (unsigned long) cl->conf->lease * 3 / 4,
            l->upstream->id.data, l->upstream->id.len)
        == NGX_OK) {
        l->busy = 1;
        l->acquiring = 1;
    }
}


/*
 * The acquire script: nil when it was set, else the holder's token, which
 * may be this worker's own (an earlier try whose reply was lost): then it
 * is ours too, renewed on the next tick.  0: Redis lost its data, and a
 * live owner has not had the time to take its lease back yet.
 */
static void
ngx_http_amonitor_lease_acquired(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_lease_t *l = data;

    ngx_uint_t                    ours, level;
    ngx_http_amonitor_cluster_t  *cl;
    ngx_http_amonitor_upstream_t *u;

    l->busy = 0;
    l->acquiring = 0;
    l->settled = 1;
    u = l->upstream;

    if (l->gone) {
        ngx_free(l);
        return;
    }

    cl = ctx->worker->cluster;
    ours = reply
        && (reply->type == REDIS_REPLY_NIL
            || (reply->type == REDIS_REPLY_STRING
                && ngx_http_amonitor_cluster_mine(cl, reply->str, reply->len)));

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        /* Redis lost its data: an owner renews within lease/3 + a tick */
        l->retry_at =
            ngx_http_amonitor_lease_retry(cl, cl->conf->lease * 3 / 4);
    }

    if (!ours || u->stopped) {
        /*
         * Not ours (or not known: a lost reply); a lease taken without
         * knowing it is found ours by the next try, or expires, since it
         * is never renewed meanwhile.  Actions that waited to learn it go
         * to its owner (with no reply, the bus is gone: they are answered
         * so).
         */
        if (reply == NULL) {
            /* no answer: the next action asks again */
            l->settled = 0;
        }

        /* (l is not read after this: the target may be forgotten) */
        if (!ngx_queue_empty(&u->waiting)) {
            u->worker->settled(u);
        }

        return;
    }

    l->owned = 1;
    ngx_http_amonitor_bus_owner(cl);

    /* here: when it was renewed (one found ours: renew it now) */
    l->retry_at = reply->type == REDIS_REPLY_NIL
        ? ngx_current_msec
        : ngx_current_msec - cl->conf->lease;

    /*
     * While the SDK is out of reach, the workers take its lease in turn
     * (each releases it when its dial fails): said once per outage by
     * each, its first failure starts the outage's own lines
     */
    level = u->down ? NGX_LOG_DEBUG : NGX_LOG_INFO;

    ngx_log_error(level, ctx->log, 0,
        "amonitor: this worker holds the connection to target \"%V\"", &u->id);

    if (u->state == NGX_HTTP_AMONITOR_UP_BACKOFF
        || u->state == NGX_HTTP_AMONITOR_UP_IDLE) {
        u->state = NGX_HTTP_AMONITOR_UP_BACKOFF;
        u->worker->kick(u);
    }
}


/*
 * The owner renews, and writes the target's route again if Redis lost it
 * (FLUSHALL, a restart without its data): instances that start later
 * learn the target from the routes.
 */
static void
ngx_http_amonitor_lease_renew(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l)
{
    ngx_int_t                     rc;
    ngx_str_t                     value;
    ngx_http_amonitor_upstream_t *u;

    u = l->upstream;

    if (ngx_http_amonitor_route_value(cl, &u->norm,
            !u->dynamic ? "config" : (u->registered ? "register" : "dial"),
            &value)
        != NGX_OK) {
        return;
    }

    rc = ngx_http_amonitor_redis_command(cl->cmd,
        ngx_http_amonitor_lease_renewed, l, "EVAL renew",
        "EVAL %s 5 %b %b %b %b %b %b %lu %lld %b %b %b %lu",
        NGX_HTTP_AMONITOR_LUA_RENEW, l->key.data, l->key.len, cl->k_seen.data,
        cl->k_seen.len, cl->k_routes.data, cl->k_routes.len, cl->k_state.data,
        cl->k_state.len, cl->k_lost.data, cl->k_lost.len, cl->token.data,
        cl->token.len, (unsigned long) cl->conf->lease,
        (long long) ngx_http_amonitor_cluster_now(), u->id.data, u->id.len,
        value.data, value.len, "", (size_t) 0,
        (unsigned long) cl->conf->lease * 3 / 4);

    ngx_free(value.data);

    if (rc == NGX_OK) {
        l->busy = 1;
    }
}


static void
ngx_http_amonitor_lease_renewed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_lease_t *l = data;

    ngx_http_amonitor_cluster_t  *cl;
    ngx_http_amonitor_upstream_t *u;

    l->busy = 0;
    u = l->upstream;

    if (l->gone) {
        ngx_free(l);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || !l->owned) {
        /* Redis did not say: keep the connection, renew on the next tick */
        return;
    }

    if (reply->integer == 1) {
        l->retry_at = ngx_current_msec;
        return;
    }

    /* another worker holds it now (this one was cut off from Redis) */
    ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
        "amonitor: lost the lease of target \"%V\" to another worker, "
        "closing this worker's connection to it",
        &u->id);

    cl = ctx->worker->cluster;

    l->owned = 0;
    l->retry_at = ngx_http_amonitor_lease_retry(cl, cl->conf->lease);

    u->handed_over = 1;
    u->worker->hangup(u);
    u->handed_over = 0;
}


static void
ngx_http_amonitor_lease_release(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l)
{
    (void) ngx_http_amonitor_redis_command(cl->cmd,
        ngx_http_amonitor_redis_ignore, NULL, "EVAL release", "EVAL %s 1 %b %b",
        NGX_HTTP_AMONITOR_LUA_RELEASE, l->key.data, l->key.len, cl->token.data,
        cl->token.len);
}


/*
 * For amonitor_status: this worker's lease records (one per target it
 * has asked about, freed with the target) and how many of them it holds
 */
ngx_uint_t
ngx_http_amonitor_cluster_leases(
    ngx_http_amonitor_worker_t *w, ngx_uint_t *held)
{
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_http_amonitor_lease_t   *l;
    ngx_http_amonitor_cluster_t *cl;

    n = 0;
    *held = 0;
    cl = w->cluster;

    if (cl == NULL) {
        return 0;
    }

    for (q = ngx_queue_head(&cl->leases); q != ngx_queue_sentinel(&cl->leases);
         q = ngx_queue_next(q)) {
        l = ngx_queue_data(q, ngx_http_amonitor_lease_t, queue);
        n++;
        *held += l->owned;
    }

    return n;
}


/* the worker stops: its leases go at once, so another takes over soon */
void
ngx_http_amonitor_lease_exit(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t               *q;
    ngx_http_amonitor_lease_t *l;

    while (!ngx_queue_empty(&cl->leases)) {
        q = ngx_queue_head(&cl->leases);
        l = ngx_queue_data(q, ngx_http_amonitor_lease_t, queue);

        if (l->owned && cl->cmd->ready) {
            ngx_http_amonitor_lease_release(cl, l);
        }

        /* (the upstreams are freed already: l->upstream is not read) */
        ngx_http_amonitor_lease_free(cl, l);
    }
}


/*
 * A target into the shared routes: the hash of routes (id -> URL, origin,
 * instance), when it was last served, and the routes channel.
 */
void
ngx_http_amonitor_cluster_route(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    ngx_str_t *url, const char *origin)
{
    ngx_str_t                    value, msg, f[4];
    ngx_http_amonitor_cluster_t *cl;

    cl = w->cluster;

    if (cl == NULL || !cl->cmd->ready) {
        /* told again by the next resync of a worker that knows it */
        return;
    }

    if (ngx_http_amonitor_route_value(cl, url, origin, &value) != NGX_OK) {
        return;
    }

    f[0] = cl->token;
    f[1] = *id;
    f[2] = *url;
    f[3].data = (u_char *) origin;
    f[3].len = ngx_strlen(origin);

    if (ngx_http_amonitor_bus_pack(w, NGX_HTTP_AMONITOR_BUS_ROUTE, f, 4, &msg)
        == NGX_OK) {
        (void) ngx_http_amonitor_redis_command(cl->cmd,
            ngx_http_amonitor_redis_ignore, NULL, "EVAL announce",
            "EVAL %s 2 %b %b %b %b %lld %b %b", NGX_HTTP_AMONITOR_LUA_ANNOUNCE,
            cl->k_routes.data, cl->k_routes.len, cl->k_seen.data,
            cl->k_seen.len, id->data, id->len, value.data, value.len,
            (long long) ngx_http_amonitor_cluster_now(), cl->ch_routes.data,
            cl->ch_routes.len, msg.data, msg.len);
        ngx_free(msg.data);
    }

    ngx_free(value.data);
}


/* a route in the hash: URL, origin, instance (ngx_alloc'd) */
static ngx_int_t
ngx_http_amonitor_route_value(ngx_http_amonitor_cluster_t *cl, ngx_str_t *url,
    const char *origin, ngx_str_t *value)
{
    u_char *p;
    size_t  len;

    len = ngx_strlen(origin);

    value->len = url->len + 1 + len + 1 + cl->conf->instance.len;
    value->data = ngx_alloc(value->len, cl->log);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(value->data, url->data, url->len);
    *p++ = '\n';
    p = ngx_cpymem(p, origin, len);
    *p++ = '\n';
    ngx_memcpy(p, cl->conf->instance.data, cl->conf->instance.len);

    return NGX_OK;
}


/* this instance's amonitor_target lines, told once per connection */
void
ngx_http_amonitor_routes_announce_conf(ngx_http_amonitor_cluster_t *cl)
{
    ngx_uint_t                       i;
    ngx_http_amonitor_target_conf_t *t;

    t = cl->worker->amcf->targets.elts;

    for (i = 0; i < cl->worker->amcf->targets.nelts; i++) {
        ngx_http_amonitor_cluster_route(
            cl->worker, &t[i].id, &t[i].norm, "config");
    }
}


/* every route at once: after (re)subscribing, and now and then */
ngx_int_t
ngx_http_amonitor_routes_resync(ngx_http_amonitor_cluster_t *cl)
{
    int64_t cutoff;

    cutoff = ngx_http_amonitor_cluster_now() - (int64_t) cl->conf->route_ttl;

    return ngx_http_amonitor_redis_command(cl->cmd,
        ngx_http_amonitor_routes_got, cl, "EVAL resync", "EVAL %s 2 %b %b %lld",
        NGX_HTTP_AMONITOR_LUA_RESYNC, cl->k_routes.data, cl->k_routes.len,
        cl->k_seen.data, cl->k_seen.len, (long long) cutoff);
}


static void
ngx_http_amonitor_routes_got(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_cluster_t *cl = data;

    size_t                      i;
    u_char                     *nl;
    redisReply                 *id, *value;
    ngx_http_amonitor_bus_msg_t m;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        /* asked again after a subscribe (cluster_confirm) */
        cl->routes_asked = 0;
        return;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        id = reply->element[i];
        value = reply->element[i + 1];

        if (id->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING) {
            continue;
        }

        nl = ngx_strlchr(
            (u_char *) value->str, (u_char *) value->str + value->len, '\n');

        /* as if announced: sender (none), id, url, origin */
        m.kind = NGX_HTTP_AMONITOR_BUS_ROUTE;
        m.n = 4;
        ngx_str_null(&m.f[0]);
        m.f[1].data = (u_char *) id->str;
        m.f[1].len = id->len;
        m.f[2].data = (u_char *) value->str;
        m.f[2].len = nl ? (size_t) (nl - m.f[2].data) : value->len;
        ngx_str_set(&m.f[3], "resync");

        cl->on_message(cl, &m);
    }

    cl->routes_read = 1;
}


static int64_t
ngx_http_amonitor_cluster_now(void)
{
    ngx_time_t *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}

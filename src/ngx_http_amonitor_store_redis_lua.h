/*
 * Copyright (C) AMonitor authors
 *
 * The Lua scripts of the Redis store's claims (store_redis_claim.c):
 * claim, finish, release, renew, and the claims and finishes of a pass
 * in one call.  A claim is "p" + a claim token with a short lease; its
 * end "d" (done) or "f" (failed) + the record, kept the dedupe TTL.  The
 * scripts with markers get KEYS: the claims' keys, then their markers'
 * ("held:" + msg_id, redis_eval_keys).
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_


/*
 * KEYS[1] the key, KEYS[2] its marker, ARGV[1] "p" + owner, ARGV[2] the
 * lease, ARGV[3] the target, ARGV[4] the TTL: nil when won, else the
 * value found, or "l" + the target of a lost claim
 */
#define NGX_HTTP_AMONITOR_REDIS_CLAIM \
    "-- amonitor claim\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v then return v end " \
    "v = redis.call('GET', KEYS[2]) " \
    "if v then return 'l' .. v end " \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) " \
    "redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) " \
    "return false"

/*
 * ARGV[2] the result, ARGV[3] the TTL: 1 when written (also again, or
 * over an expired claim nobody took), else the first letter found.
 * "allow-oom" (Redis 7), here, in the finishes and the renewal: they run
 * in a Redis full with noeviction, which refuses new claims.
 */
#define NGX_HTTP_AMONITOR_REDIS_FINISH \
    "#!lua flags=allow-oom\n" \
    "-- amonitor finish\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if not v or v == ARGV[1] or v == ARGV[2] then " \
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) " \
    "redis.call('DEL', KEYS[2]) return 1 end " \
    "return string.sub(v, 1, 1)"

/* the marker goes too when the claim expired: its action was not sent */
#define NGX_HTTP_AMONITOR_REDIS_RELEASE \
    "-- amonitor release\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v == ARGV[1] then redis.call('DEL', KEYS[1]) end " \
    "if v == ARGV[1] or not v then redis.call('DEL', KEYS[2]) end " \
    "if v == ARGV[1] then return 1 end return 0"

/*
 * 1 renewed, 2 taken again after it expired, 3 ended ("d" or "f": by the
 * worker that ran its action, or another owner's), 0 another's claim
 */
#define NGX_HTTP_AMONITOR_REDIS_RENEW \
    "#!lua flags=allow-oom\n" \
    "-- amonitor renew\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v == ARGV[1] then " \
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end " \
    "if not v then " \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end " \
    "if string.sub(v, 1, 1) ~= 'p' then return 3 end " \
    "return 0"


/*
 * The claims made in one pass of the event loop, in one call: n keys, n
 * markers, ARGV[2i - 1] the owner and ARGV[2i] the target for KEYS[i],
 * ARGV[2n + 1] the lease, ARGV[2n + 2] the TTL; for each, what the claim
 * script answers (an array reply: false for nil, as Lua's nil would end
 * the array)
 */
#define NGX_HTTP_AMONITOR_REDIS_CLAIMS \
    "-- amonitor claims\n" \
    "local r, n = {}, #KEYS / 2 " \
    "for i = 1, n do " \
    "local v = redis.call('GET', KEYS[i]) " \
    "if not v then v = redis.call('GET', KEYS[n + i]) " \
    "if v then v = 'l' .. v end end " \
    "if v then r[i] = v else " \
    "redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * n + 1]) " \
    "redis.call('SET', KEYS[n + i], ARGV[2 * i], 'PX', ARGV[2 * n + 2]) " \
    "r[i] = false end " \
    "end return r"

/*
 * The finishes of one pass in one call: ARGV[2i - 1] the owner and
 * ARGV[2i] the result for KEYS[i], ARGV[2 #KEYS + 1] the TTL; for each,
 * what the finish script answers
 */
#define NGX_HTTP_AMONITOR_REDIS_FINISHES \
    "#!lua flags=allow-oom\n" \
    "-- amonitor finishes\n" \
    "local r, n = {}, #KEYS / 2 " \
    "for i = 1, n do " \
    "local v = redis.call('GET', KEYS[i]) " \
    "if not v or v == ARGV[2 * i - 1] or v == ARGV[2 * i] then " \
    "redis.call('SET', KEYS[i], ARGV[2 * i], 'PX', ARGV[2 * n + 1]) " \
    "redis.call('DEL', KEYS[n + i]) r[i] = 1 " \
    "else r[i] = string.sub(v, 1, 1) end " \
    "end return r"


#endif /* _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_ */

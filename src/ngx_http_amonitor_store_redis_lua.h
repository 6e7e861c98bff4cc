/*
 * Copyright (C) AMonitor authors
 *
 * The Lua scripts of the Redis store's claims (store_redis_claim.c):
 * claim, finish, release, renew, action_status's lookup, and the claims
 * and finishes of a pass in one call.  A claim under way is "p" + its
 * claim token (host:pid:random:sequence) + "|" + the target + ";h" + the
 * dedupe TTL of its worker, in ms; it is kept for the lease plus that
 * TTL and renewed to that while its action lives; its end is "d" (done)
 * or "f" (failed) + the record, kept the dedupe TTL.  So a claim nobody
 * renewed for a lease (its workers were killed, or cut off from Redis)
 * is still there, with less than the TTL it names left: lost.  The claim and lookup scripts answer it as "l" +
 * the claim's value, and the msg_id is not claimed again (its action may
 * have run).  A claim of an agent before this one (no ";h") expires with
 * its lease as it always did.  (Each script is string literals only: the
 * tests read them from here.)
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_


/*
 * KEYS[1] the key, ARGV[1] the claim's value, ARGV[2] the lease + TTL:
 * nil when won, else the value found ("l" + it when lost)
 */
#define NGX_HTTP_AMONITOR_REDIS_CLAIM \
    "-- amonitor claim\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v then " \
    "local h = string.sub(v, 1, 1) == 'p' and string.match(v, ';h(%d+)$') " \
    "if h and redis.call('PTTL', KEYS[1]) < tonumber(h) then " \
    "v = 'l' .. v end " \
    "return v end " \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) " \
    "return false"

/* action_status: KEYS[1] the key; as the claim, without claiming */
#define NGX_HTTP_AMONITOR_REDIS_QUERY \
    "-- amonitor query\n" \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v then " \
    "local h = string.sub(v, 1, 1) == 'p' and string.match(v, ';h(%d+)$') " \
    "if h and redis.call('PTTL', KEYS[1]) < tonumber(h) then " \
    "v = 'l' .. v end " \
    "end return v"

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
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end " \
    "return string.sub(v, 1, 1)"

#define NGX_HTTP_AMONITOR_REDIS_RELEASE \
    "-- amonitor release\n" \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then " \
    "return redis.call('DEL', KEYS[1]) end return 0"

/*
 * ARGV[3] the renewing worker's lease, plus the TTL the claim names (its
 * asker's, for a claim another instance's worker made), else ARGV[2] the
 * lease + the renewing worker's TTL: 1 renewed, 2 taken again after it
 * expired, 3 ended ("d" or "f": by the worker that ran its action, or
 * another owner's), 0 another's claim
 */
#define NGX_HTTP_AMONITOR_REDIS_RENEW \
    "#!lua flags=allow-oom\n" \
    "-- amonitor renew\n" \
    "local h = string.match(ARGV[1], ';h(%d+)$') " \
    "local px = h and tonumber(ARGV[3]) + tonumber(h) or tonumber(ARGV[2]) " \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v == ARGV[1] then " \
    "redis.call('PEXPIRE', KEYS[1], px) return 1 end " \
    "if not v then " \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', px) return 2 end " \
    "if string.sub(v, 1, 1) ~= 'p' then return 3 end " \
    "return 0"

/*
 * The claims made in one pass of the event loop, in one call: KEYS the
 * keys, ARGV[i] the claim's value for KEYS[i], ARGV[#KEYS + 1] the lease
 * + TTL; for each, what the claim script answers (an array reply: false
 * for nil, as Lua's nil would end the array)
 */
#define NGX_HTTP_AMONITOR_REDIS_CLAIMS \
    "-- amonitor claims\n" \
    "local r, n = {}, #KEYS " \
    "for i = 1, n do " \
    "local v = redis.call('GET', KEYS[i]) " \
    "if v then " \
    "local h = string.sub(v, 1, 1) == 'p' and string.match(v, ';h(%d+)$') " \
    "if h and redis.call('PTTL', KEYS[i]) < tonumber(h) then " \
    "v = 'l' .. v end " \
    "r[i] = v else " \
    "redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[n + 1]) r[i] = false end " \
    "end return r"

/*
 * The finishes of one pass in one call: ARGV[2i - 1] the owner and
 * ARGV[2i] the result for KEYS[i], ARGV[2 #KEYS + 1] the TTL; for each,
 * what the finish script answers
 */
#define NGX_HTTP_AMONITOR_REDIS_FINISHES \
    "#!lua flags=allow-oom\n" \
    "-- amonitor finishes\n" \
    "local r, n = {}, #KEYS " \
    "for i = 1, n do " \
    "local v = redis.call('GET', KEYS[i]) " \
    "if not v or v == ARGV[2 * i - 1] or v == ARGV[2 * i] then " \
    "redis.call('SET', KEYS[i], ARGV[2 * i], 'PX', ARGV[2 * n + 1]) r[i] = 1 " \
    "else r[i] = string.sub(v, 1, 1) end " \
    "end return r"


#endif /* _NGX_HTTP_AMONITOR_STORE_REDIS_LUA_H_INCLUDED_ */

/*
 * Copyright (C) AMonitor authors
 *
 * Small POSIX helpers shared by the SDK, the CLI and the load generator:
 * dialing a TCP peer, clocks, randomness and UUIDs.  Never linked into the
 * nginx module, which has its own (ngx_current_msec, ngx_random).
 */

#ifndef AMON_POSIX_H
#define AMON_POSIX_H


#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "amon_core.h"

#ifdef __cplusplus
extern "C" {
#endif


/*
 * Connect to "host" (a name or an address; IPv6 without brackets) and
 * "port" within "timeout_ms" (< 0: no limit), trying every address the
 * name resolves to.  The name is resolved with getaddrinfo(), which may
 * block.  "stop" (may be NULL) is checked while waiting: once it is set
 * the dial gives up.  Returns a connected, non-blocking, close-on-exec
 * socket with TCP_NODELAY, or -1 with a message in "err".
 */
int amon_posix_dial(const char *host, unsigned port, int timeout_ms,
    const volatile sig_atomic_t *stop, char *err, size_t errlen);

/*
 * Wait until "fd" is ready for "events" (poll(2) flags) or the monotonic
 * "deadline" (ms, < 0: none) passes.  Returns 1 ready, 0 deadline passed
 * or "stop" set, -1 poll() failed (errno says why).
 */
int amon_posix_wait(
    int fd, short events, int64_t deadline, const volatile sig_atomic_t *stop);

/* Milliseconds of the monotonic clock (deadlines, intervals). */
int64_t amon_posix_now_ms(void);

/* Milliseconds since the epoch (timestamps in envelopes). */
int64_t amon_posix_wall_ms(void);

/*
 * Fill "buf" with random bytes from getrandom().  Without an entropy
 * source it falls back to rand(): masks and ids need uniqueness, not
 * secrecy.
 */
void amon_posix_random(unsigned char *buf, size_t len);

/* A random UUID (version 4), AMON_UUID_LEN characters and a NUL. */
void amon_posix_uuid4(char out[AMON_UUID_LEN + 1]);


#ifdef __cplusplus
}
#endif

#endif /* AMON_POSIX_H */

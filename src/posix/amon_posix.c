/*
 * Copyright (C) AMonitor authors
 *
 * POSIX helpers for the programs around the agent (SDK, CLI, load
 * generator): a non-blocking dial with a deadline, clocks, random bytes
 * and UUIDs.  Plain libc and Linux system calls.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amon_posix.h"
#include "amon_envelope.h"


static int amon_posix_connect(const struct addrinfo *ai, int64_t deadline,
    const volatile sig_atomic_t *stop, int *timed_out);


int
amon_posix_dial(const char *host, unsigned port, int timeout_ms,
    const volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    int             fd, rc, one, timed_out;
    char            service[16];
    int64_t         deadline;
    struct addrinfo hints, *res, *ai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    snprintf(service, sizeof(service), "%u", port);

    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(
            err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }

    deadline = timeout_ms < 0 ? -1 : amon_posix_now_ms() + timeout_ms;
    fd = -1;
    snprintf(err, errlen, "connect to %s:%u failed", host, port);

    for (ai = res; ai; ai = ai->ai_next) {
        fd = amon_posix_connect(ai, deadline, stop, &timed_out);
        if (fd != -1) {
            break;
        }

        if (timed_out) {
            snprintf(err, errlen, "connect to %s:%u timed out", host, port);

        } else {
            snprintf(err, errlen, "connect to %s:%u: %s", host, port,
                strerror(errno));
        }
    }

    freeaddrinfo(res);

    if (fd != -1) {
        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    return fd;
}


/* one address: a connected socket, or -1 with errno or *timed_out set */
static int
amon_posix_connect(const struct addrinfo *ai, int64_t deadline,
    const volatile sig_atomic_t *stop, int *timed_out)
{
    int       fd, rc, soerr;
    socklen_t slen;

    *timed_out = 0;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
        ai->ai_protocol);
    if (fd == -1) {
        return -1;
    }

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        return fd;
    }

    if (errno == EINPROGRESS) {
        rc = amon_posix_wait(fd, POLLOUT, deadline, stop);

        if (rc > 0) {
            slen = sizeof(soerr);
            soerr = 0;
            (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
            if (soerr == 0) {
                return fd;
            }

            errno = soerr;

        } else if (rc == 0) {
            *timed_out = 1;
        }
    }

    rc = errno;
    close(fd);
    errno = rc;

    return -1;
}


int
amon_posix_wait(
    int fd, short events, int64_t deadline, const volatile sig_atomic_t *stop)
{
    int           rc, t;
    int64_t       now;
    struct pollfd pfd;

    for (;;) {
        if (stop && *stop) {
            return 0;
        }

        t = -1;
        if (deadline >= 0) {
            now = amon_posix_now_ms();
            if (now >= deadline) {
                return 0;
            }
            t = (int) (deadline - now);
        }

        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;

        rc = poll(&pfd, 1, t);
        if (rc > 0) {
            return 1;
        }

        if (rc == -1 && errno != EINTR) {
            return -1;
        }
    }
}


int64_t
amon_posix_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int64_t
amon_posix_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
amon_posix_random(unsigned char *buf, size_t len)
{
    ssize_t n;
    size_t  done;

    done = 0;

    while (done < len) {
        n = getrandom(buf + done, len - done, 0);
        if (n <= 0) {
            if (n == -1 && errno == EINTR) {
                continue;
            }

            /* no entropy source: ids need uniqueness, not secrecy */
            while (done < len) {
                buf[done] = (unsigned char) (rand() ^ (done * 131));
                done++;
            }
            return;
        }

        done += (size_t) n;
    }
}


void
amon_posix_uuid4(char out[AMON_UUID_LEN + 1])
{
    unsigned char rnd[16];

    amon_posix_random(rnd, sizeof(rnd));
    amon_uuid4(rnd, (unsigned char *) out);
    out[AMON_UUID_LEN] = '\0';
}

/*
 * Copyright (C) AMonitor authors
 *
 * The agent's status endpoint (amonitor_status) as the CLI reads it: one
 * blocking HTTP/1.0 GET with a deadline, the JSON body parsed with cJSON.
 * "amonitor watch" takes the list of configured targets from it.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "amoncli.h"
#include "amon_posix.h"
#include "amon_ws_handshake.h"


#define AMONCLI_STATUS_MAX  (1024 * 1024)
#define AMONCLI_STATUS_PATH "/amonitor/status"


/*
 * The status URL beside a panel URL: ws://H:P/ws/panel gives
 * http://H:P/amonitor/status.  Returns 0, or -1 when "panel_url" is not a
 * ws:// URL or "out" is too small.
 */
int
amoncli_status_url(const char *panel_url, char *out, size_t size)
{
    int           n;
    amon_ws_url_t u;

    if (amon_ws_url_parse(
            (const unsigned char *) panel_url, strlen(panel_url), &u)
            != AMON_OK
        || u.tls) {
        return -1;
    }

    n = snprintf(out, size, "http://%.*s%s", (int) u.host_port.len,
        (const char *) u.host_port.data, AMONCLI_STATUS_PATH);

    return (n < 0 || (size_t) n >= size) ? -1 : 0;
}


/* http://HOST[:PORT][/PATH] into its parts; IPv6 hosts in brackets */
static int
amoncli_status_parse_url(const char *url, char *host, size_t hsize,
    unsigned *port, const char **path)
{
    size_t      len;
    const char *p, *end, *colon;
    char       *e;
    long        v;

    if (strncmp(url, "http://", 7) != 0) {
        return -1;
    }

    p = url + 7;
    end = strchr(p, '/');
    *path = end ? end : "/";
    if (end == NULL) {
        end = p + strlen(p);
    }

    *port = 80;

    if (*p == '[') {
        colon = memchr(p, ']', end - p);
        if (colon == NULL) {
            return -1;
        }
        p++;
        len = colon - p;
        colon++;
        if (colon < end && *colon != ':') {
            return -1;
        }

    } else {
        colon = memchr(p, ':', end - p);
        len = (colon ? colon : end) - p;
    }

    if (len == 0 || len >= hsize) {
        return -1;
    }

    memcpy(host, p, len);
    host[len] = '\0';

    if (colon && colon < end) {
        errno = 0;
        v = strtol(colon + 1, &e, 10);
        if (errno || e != end || v < 1 || v > 65535) {
            return -1;
        }
        *port = (unsigned) v;
    }

    return 0;
}


/* send all of "p" before "deadline"; 0 or -1 */
static int
amoncli_status_send(int fd, const char *p, size_t len, int64_t deadline)
{
    ssize_t n;

    while (len) {
        n = write(fd, p, len);

        if (n > 0) {
            p += n;
            len -= (size_t) n;
            continue;
        }

        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }

        if (amon_posix_wait(fd, POLLOUT, deadline, &amoncli_interrupted) != 1) {
            return -1;
        }
    }

    return 0;
}


/* read until the agent closes; the response in a malloc'd, NUL-ended buf */
static char *
amoncli_status_read(
    int fd, int64_t deadline, size_t *len, char *err, size_t errlen)
{
    char   *buf, *nb;
    size_t  cap;
    ssize_t n;

    cap = 16384;
    *len = 0;
    buf = malloc(cap);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    for (;;) {
        if (*len + 1 == cap) {
            if (cap >= AMONCLI_STATUS_MAX) {
                snprintf(err, errlen, "response larger than %d bytes",
                    AMONCLI_STATUS_MAX);
                break;
            }
            nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                snprintf(err, errlen, "out of memory");
                break;
            }
            buf = nb;
            cap *= 2;
        }

        n = read(fd, buf + *len, cap - 1 - *len);

        if (n > 0) {
            *len += (size_t) n;
            continue;
        }

        if (n == 0) {
            buf[*len] = '\0';
            return buf;
        }

        if (errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "read: %s", strerror(errno));
            break;
        }

        if (amon_posix_wait(fd, POLLIN, deadline, &amoncli_interrupted) != 1) {
            snprintf(err, errlen, "timed out");
            break;
        }
    }

    free(buf);
    return NULL;
}


/*
 * GET "url" (http:// only) within "timeout_ms".  Returns the parsed JSON
 * body of a 200 response (the caller deletes it), or NULL with a message
 * in "err".
 */
cJSON *
amoncli_status_fetch(const char *url, int timeout_ms, char *err, size_t errlen)
{
    int         fd, status;
    char        host[256], req[1024], *resp, *body;
    size_t      len;
    cJSON      *j;
    int64_t     deadline;
    unsigned    port;
    const char *path;

    if (amoncli_status_parse_url(url, host, sizeof(host), &port, &path) != 0) {
        snprintf(err, errlen, "invalid status URL \"%s\"", url);
        return NULL;
    }

    deadline = amon_posix_now_ms() + timeout_ms;

    fd = amon_posix_dial(
        host, port, timeout_ms, &amoncli_interrupted, err, errlen);
    if (fd == -1) {
        return NULL;
    }

    len = (size_t) snprintf(req, sizeof(req),
        "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n"
        "Connection: close\r\n\r\n",
        path, host);

    if (len >= sizeof(req)
        || amoncli_status_send(fd, req, len, deadline) != 0) {
        snprintf(err, errlen, "cannot send the request");
        close(fd);
        return NULL;
    }

    resp = amoncli_status_read(fd, deadline, &len, err, errlen);
    close(fd);

    if (resp == NULL) {
        return NULL;
    }

    j = NULL;
    status = 0;

    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(err, errlen, "not an HTTP response");

    } else if (status != 200) {
        snprintf(err, errlen, "HTTP %d", status);

    } else if ((body = strstr(resp, "\r\n\r\n")) == NULL) {
        snprintf(err, errlen, "no body in the response");

    } else {
        j = cJSON_Parse(body + 4);
        if (j == NULL
            || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "targets"))) {
            snprintf(err, errlen, "not the agent's status JSON");
            cJSON_Delete(j);
            j = NULL;
        }
    }

    free(resp);

    return j;
}

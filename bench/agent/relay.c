/*
 * Copyright (C) AMonitor authors
 *
 * The floor for fan-out: a bare relay that parses nothing.  It dials one
 * fake SDK (a WebSocket client handshake), accepts panels (a server
 * handshake), and writes every byte it reads from the SDK to every panel
 * with one send() per panel per wake-up.  Server frames are unmasked, so
 * the SDK's bytes are valid frames for the panels as they are.
 *
 *   amon-relay --listen PORT --sdk-port PORT [--sdk-conns N]
 *
 * --sdk-conns N dials the SDK N times (for memory per idle connection;
 * each connection's bytes go to every panel).
 *
 * With --publish PORT instead of --listen it is nchan's publisher for the
 * comparison: it dials ws://127.0.0.1:PORT/pub and sends each SDK frame
 * there as a client frame (mask bit set, a zero key); it runs with the
 * load generator, not with the server that is measured.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amon_core.h"
#include "amon_ws_handshake.h"


#define RELAY_MAX_CONNS 65536
#define RELAY_READ      (256 * 1024)
#define RELAY_OUT_MAX   (8 * 1024 * 1024) /* a panel further behind: gone */


typedef struct {
    int            fd;
    int            sdk; /* the SDK connection */
    int            open; /* handshake done */
    unsigned char  hs[4096];
    size_t         hs_len;
    unsigned char *out; /* what a send could not take */
    size_t         out_len;
    size_t         out_cap;
} relay_conn_t;


static int           relay_ep;
static relay_conn_t *relay_conns[RELAY_MAX_CONNS];
static relay_conn_t *relay_panels[RELAY_MAX_CONNS];
static int           relay_npanels;
static unsigned char relay_buf[RELAY_READ];
static relay_conn_t *relay_pub; /* --publish: the nchan publisher */
static unsigned char relay_acc[2 * RELAY_READ]; /* partial SDK frames */
static size_t        relay_acc_len;
static unsigned char relay_framed[2 * RELAY_READ + 65536];


static void
relay_close(relay_conn_t *c)
{
    int i;

    for (i = 0; i < relay_npanels; i++) {
        if (relay_panels[i] == c) {
            relay_panels[i] = relay_panels[--relay_npanels];
            break;
        }
    }

    relay_conns[c->fd] = NULL;
    close(c->fd);
    free(c->out);
    free(c);
}


static relay_conn_t *
relay_add(int fd, int sdk)
{
    int                one;
    relay_conn_t      *c;
    struct epoll_event ev;

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    c = calloc(1, sizeof(relay_conn_t));
    if (c == NULL || fd >= RELAY_MAX_CONNS) {
        close(fd);
        free(c);
        return NULL;
    }

    c->fd = fd;
    c->sdk = sdk;
    relay_conns[fd] = c;

    ev.events = EPOLLIN;
    ev.data.fd = fd;
    (void) epoll_ctl(relay_ep, EPOLL_CTL_ADD, fd, &ev);

    return c;
}


/* one send; what it does not take waits for EPOLLOUT */
static void
relay_send(relay_conn_t *c, const unsigned char *p, size_t len)
{
    ssize_t            n;
    struct epoll_event ev;

    n = 0;

    if (c->out_len == 0) {
        n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN) {
                relay_close(c);
                return;
            }

            n = 0;
        }

        if ((size_t) n == len) {
            return;
        }
    }

    if (c->out_len + len - n > RELAY_OUT_MAX) {
        relay_close(c);
        return;
    }

    if (c->out_len + len - n > c->out_cap) {
        c->out_cap = (c->out_len + len - n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL) {
            exit(1);
        }
    }

    memcpy(c->out + c->out_len, p + n, len - n);
    c->out_len += len - n;

    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.fd = c->fd;
    (void) epoll_ctl(relay_ep, EPOLL_CTL_MOD, c->fd, &ev);
}


static void
relay_flush(relay_conn_t *c)
{
    ssize_t            n;
    struct epoll_event ev;

    n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) {
            relay_close(c);
        }
        return;
    }

    memmove(c->out, c->out + n, c->out_len - n);
    c->out_len -= n;

    if (c->out_len == 0) {
        ev.events = EPOLLIN;
        ev.data.fd = c->fd;
        (void) epoll_ctl(relay_ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}


/* --publish: the SDK's frames, whole ones, masked with a zero key */
static void
relay_publish(const unsigned char *p, size_t len)
{
    size_t               hdr, plen, out, used;
    const unsigned char *f;

    if (relay_pub == NULL || !relay_pub->open
        || relay_acc_len + len > sizeof(relay_acc)) {
        relay_acc_len = 0;
        return;
    }

    memcpy(relay_acc + relay_acc_len, p, len);
    relay_acc_len += len;

    out = 0;
    used = 0;

    while (relay_acc_len - used >= 2) {
        f = relay_acc + used;
        plen = f[1] & 0x7f;
        hdr = 2;

        if (plen == 126) {
            if (relay_acc_len - used < 4) {
                break;
            }
            plen = ((size_t) f[2] << 8) | f[3];
            hdr = 4;

        } else if (plen == 127) {
            break; /* not made by the load generator */
        }

        if (relay_acc_len - used < hdr + plen
            || out + hdr + 4 + plen > sizeof(relay_framed)) {
            break;
        }

        memcpy(relay_framed + out, f, hdr);
        relay_framed[out + 1] |= 0x80;
        memset(relay_framed + out + hdr, 0, 4);
        memcpy(relay_framed + out + hdr + 4, f + hdr, plen);
        out += hdr + 4 + plen;
        used += hdr + plen;
    }

    memmove(relay_acc, relay_acc + used, relay_acc_len - used);
    relay_acc_len -= used;

    if (out) {
        relay_send(relay_pub, relay_framed, out);
    }
}


/* the bytes of the SDK go to every open panel as they are */
static void
relay_fanout(const unsigned char *p, size_t len)
{
    int i;

    if (relay_pub) {
        relay_publish(p, len);
        return;
    }

    for (i = relay_npanels - 1; i >= 0; i--) {
        relay_send(relay_panels[i], p, len);
    }
}


/* a panel's upgrade request: the 101, or nothing until it is complete */
static void
relay_panel_handshake(relay_conn_t *c)
{
    char         *k, *e;
    unsigned char acc[AMON_WS_ACCEPT_LEN];
    char          resp[256];
    int           n;

    c->hs[c->hs_len] = '\0';

    if (strstr((char *) c->hs, "\r\n\r\n") == NULL) {
        return;
    }

    k = strcasestr((char *) c->hs, "\nSec-WebSocket-Key:");
    if (k == NULL) {
        relay_close(c);
        return;
    }

    k += 19;
    while (*k == ' ') {
        k++;
    }

    e = strstr(k, "\r\n");
    if (e == NULL
        || amon_ws_accept((unsigned char *) k, e - k, acc) != AMON_OK) {
        relay_close(c);
        return;
    }

    n = snprintf(resp, sizeof(resp),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n\r\n",
        AMON_WS_ACCEPT_LEN, acc);

    c->open = 1;
    relay_panels[relay_npanels++] = c;
    relay_send(c, (unsigned char *) resp, n);
}


static void
relay_read(relay_conn_t *c)
{
    char   *end;
    ssize_t n;
    size_t  rest;

    if (!c->open) {
        n = recv(c->fd, c->hs + c->hs_len, sizeof(c->hs) - 1 - c->hs_len, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) {
                return;
            }
            relay_close(c);
            return;
        }

        c->hs_len += n;

        if (!c->sdk) {
            relay_panel_handshake(c);
            return;
        }

        if (c->sdk == 2) {
            c->hs[c->hs_len] = '\0';
            c->open = (strstr((char *) c->hs, "\r\n\r\n") != NULL);
            return;
        }

        /* the SDK's 101: what follows it is relayed */
        c->hs[c->hs_len] = '\0';
        end = strstr((char *) c->hs, "\r\n\r\n");
        if (end == NULL) {
            return;
        }

        c->open = 1;
        rest = c->hs_len - ((unsigned char *) end + 4 - c->hs);
        if (rest) {
            relay_fanout((unsigned char *) end + 4, rest);
        }

        return;
    }

    n = recv(c->fd, relay_buf, sizeof(relay_buf), 0);

    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }

        if (c->sdk) {
            exit(0);
        }

        relay_close(c);
        return;
    }

    if (c->sdk == 1) {
        relay_fanout(relay_buf, n);
    }

    /* a panel's own frames are read and dropped */
}


static int
relay_listen(int port)
{
    int                fd, one;
    struct sockaddr_in sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    one = 1;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(fd, 4096) != 0) {
        perror("amon-relay: listen");
        exit(1);
    }

    (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    return fd;
}


/* dial the SDK (or nchan's /pub: "path"), retrying until it listens */
static relay_conn_t *
relay_dial(int port, const char *p, int kind)
{
    int                fd;
    size_t             len;
    unsigned char      key[AMON_WS_KEY_LEN], rnd[16], req[512];
    relay_conn_t      *c;
    struct sockaddr_in sin;
    amon_str_t         hp = {(const unsigned char *) "127.0.0.1", 9};
    amon_str_t         path;
    amon_str_t         none = {NULL, 0};

    path.data = (const unsigned char *) p;
    path.len = strlen(p);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0) {
            break;
        }

        close(fd);
        usleep(50000);
    }

    memset(rnd, 7, sizeof(rnd));
    amon_ws_make_key(rnd, key);
    len = amon_ws_client_request(req, sizeof(req), hp, path, key, none);

    if (send(fd, req, len, 0) != (ssize_t) len) {
        exit(1);
    }

    c = relay_add(fd, kind);
    if (c == NULL) {
        exit(1);
    }

    return c;
}


int
main(int argc, char **argv)
{
    int                i, n, o, lfd, fd, port, sdk_port, pub_port, conns;
    relay_conn_t      *c;
    struct epoll_event ev, evs[256];

    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"sdk-port", required_argument, NULL, 'p'},
        {"publish", required_argument, NULL, 'P'},
        {"sdk-conns", required_argument, NULL, 'k'}, {NULL, 0, NULL, 0}};

    port = 0;
    sdk_port = 0;
    pub_port = 0;
    conns = 1;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l': port = atoi(optarg); break;
        case 'p': sdk_port = atoi(optarg); break;
        case 'P': pub_port = atoi(optarg); break;
        case 'k': conns = atoi(optarg); break;
        default: return 2;
        }
    }

    if ((port == 0 && pub_port == 0) || sdk_port == 0 || conns < 1
        || conns > RELAY_MAX_CONNS / 2) {
        fprintf(stderr,
            "usage: amon-relay --listen PORT --sdk-port PORT [--sdk-conns N]\n"
            "       amon-relay --publish PORT --sdk-port PORT\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    relay_ep = epoll_create1(0);
    lfd = -1;

    if (pub_port) {
        relay_pub = relay_dial(pub_port, "/pub", 2);

    } else {
        lfd = relay_listen(port);
        ev.events = EPOLLIN;
        ev.data.fd = lfd;
        (void) epoll_ctl(relay_ep, EPOLL_CTL_ADD, lfd, &ev);
    }

    for (i = 0; i < conns; i++) {
        (void) relay_dial(sdk_port, "/", 1);
    }

    for (;;) {
        n = epoll_wait(relay_ep, evs, 256, -1);

        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;

            if (fd == lfd) {
                while ((o = accept(lfd, NULL, NULL)) >= 0) {
                    (void) relay_add(o, 0);
                }
                continue;
            }

            c = relay_conns[fd];
            if (c == NULL) {
                continue;
            }

            if ((evs[i].events & EPOLLOUT) && c->out_len) {
                relay_flush(c);
                c = relay_conns[fd];
                if (c == NULL) {
                    continue;
                }
            }

            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                relay_read(c);
            }
        }
    }
}

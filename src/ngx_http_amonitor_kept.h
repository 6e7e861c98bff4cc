/*
 * Copyright (C) AMonitor authors
 *
 * Records kept for use again instead of freed: a list, linked through
 * the first bytes of each kept record (it holds nothing then), of at
 * most the number its owner gives.  Once stopped (its owner exits) the
 * list is emptied and keeps nothing more.
 */

#ifndef _NGX_HTTP_AMONITOR_KEPT_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_KEPT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    void      *head;
    ngx_uint_t n;
    unsigned   stopped : 1;
} ngx_http_amonitor_kept_t;


/* a kept record (its contents are stale), or NULL */
static ngx_inline void *
ngx_http_amonitor_kept_get(ngx_http_amonitor_kept_t *k)
{
    void *p;

    p = k->head;

    if (p != NULL) {
        k->head = *(void **) p;
        k->n--;
    }

    return p;
}


/* keep "p" (a record of at least a pointer's size), or free it */
static ngx_inline void
ngx_http_amonitor_kept_put(ngx_http_amonitor_kept_t *k, void *p, ngx_uint_t max)
{
    if (k->n >= max || k->stopped) {
        ngx_free(p);
        return;
    }

    *(void **) p = k->head;
    k->head = p;
    k->n++;
}


static ngx_inline void
ngx_http_amonitor_kept_exit(ngx_http_amonitor_kept_t *k)
{
    void *p;

    k->stopped = 1;

    while ((p = ngx_http_amonitor_kept_get(k)) != NULL) {
        ngx_free(p);
    }
}


#endif /* _NGX_HTTP_AMONITOR_KEPT_H_INCLUDED_ */

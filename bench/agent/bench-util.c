/*
 * Copyright (C) AMonitor authors
 *
 * The clock and the fatal errors of the benchmarks' load generators.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-util.h"


uint64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


/* the program's name, what failed and errno's reason; exits with 2 */
void
bench_die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
        strerror(errno));
    exit(2);
}


void *
bench_alloc(size_t n)
{
    void *p = calloc(1, n);

    if (p == NULL) {
        bench_die("calloc");
    }

    return p;
}

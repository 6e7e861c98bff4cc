/*
 * Copyright (C) AMonitor authors
 *
 * What the benchmarks' load generators (amon-load, scale-load) share:
 * the monotonic clock, dying with the reason, allocations that cannot
 * fail.
 */

#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>


uint64_t bench_now_ns(void);
void     bench_die(const char *what) __attribute__((noreturn));
void    *bench_alloc(size_t n);


#endif /* BENCH_UTIL_H */

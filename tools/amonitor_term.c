/*
 * Copyright (C) AMonitor authors
 *
 * What the amonitor CLI prints for people: peer text made safe for a
 * terminal.  Calls nothing else of the CLI.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "amoncli.h"


/*
 * fprintf for what a person reads.  Peer text (ids, names, messages,
 * close reasons) may hold control characters: written escaped by
 * amon_escape_text() (a tab and the newline that ends the output kept),
 * so that no peer can move the cursor, retitle or clear the terminal or
 * forge a line.
 */
void
amoncli_tprintf(FILE *f, const char *fmt, ...)
{
    int     n;
    char    small[512], *buf, *out;
    size_t  size;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);

    if (n < 0) {
        return;
    }

    buf = small;
    if ((size_t) n >= sizeof(small)) {
        buf = malloc((size_t) n + 1);
        if (buf == NULL) {
            fputs("(out of memory)\n", f);
            return;
        }
        va_start(ap, fmt);
        (void) vsnprintf(buf, (size_t) n + 1, fmt, ap);
        va_end(ap);
    }

    size = (size_t) n * AMON_ESC_MAX_PER_BYTE + 1;
    out = malloc(size);

    if (out == NULL) {
        fputs("(out of memory)\n", f);

    } else {
        (void) amon_escape_text((const unsigned char *) buf, (size_t) n, out,
            size, AMON_ESC_KEEP_TAB | AMON_ESC_KEEP_LAST_NL);
        fputs(out, f);
        free(out);
    }

    if (buf != small) {
        free(buf);
    }
}

/*
 * Copyright (C) AMonitor authors
 *
 * What the amonitor CLI prints for people: peer text made safe for a
 * terminal.  Calls nothing else of the CLI.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amoncli.h"


/* The length of the UTF-8 sequence at p (at most n bytes), 0: not one. */
static size_t
amoncli_utf8_len(const unsigned char *p, size_t n)
{
    size_t want;

    want = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

    if (want == 0 || want > n || amon_utf8_validate(p, want) != AMON_OK) {
        return 0;
    }

    return want;
}


/*
 * fprintf for what a person reads.  Peer text (ids, names, messages,
 * close reasons) may hold control characters: C0 controls other than tab
 * and a newline that ends the output, DEL, C1 controls and bytes that are
 * not UTF-8 are written as \u00HH (bytes that are not UTF-8 as \xHH:
 * JSON text keeps its meaning), so that no peer can move
 * the cursor, retitle or clear the terminal or forge a line.
 */
void
amoncli_tprintf(FILE *f, const char *fmt, ...)
{
    int                  n;
    char                 small[512], *buf;
    size_t               i, k, len;
    va_list              ap;
    const unsigned char *p;

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

    p = (const unsigned char *) buf;
    len = (size_t) n;

    for (i = 0; i < len; i += k) {
        k = 1;

        if (p[i] < 0x80) {
            if ((p[i] < 0x20 && p[i] != '\t' && !(p[i] == '\n' && i + 1 == len))
                || p[i] == 0x7f) {
                fprintf(f, "\\u%04x", p[i]);
            } else {
                fputc(p[i], f);
            }
            continue;
        }

        k = amoncli_utf8_len(p + i, len - i);
        if (k == 0) {
            k = 1;
            fprintf(f, "\\x%02x", p[i]);

        } else if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            fprintf(f, "\\u%04x", p[i + 1]);

        } else {
            fwrite(p + i, 1, k, f);
        }
    }

    if (buf != small) {
        free(buf);
    }
}

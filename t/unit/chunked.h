
/*
 * Chunked transfer encoding of a body, for the unit tests, the fuzzers
 * and the matcher's benchmark: each frames bodies the way a back end
 * would before the scanner reads them.
 */


#ifndef _CHUNKED_H_INCLUDED_
#define _CHUNKED_H_INCLUDED_


#include <stdio.h>
#include <string.h>


/* "%zx\r\n", the data and "\r\n" per chunk, then "0\r\n\r\n" */
#define CHUNKED_MAX(len, size)                                               \
    ((len) + ((len) / (size) + 1) * (2 * sizeof(size_t) + 4) + 5)


/* writes at most CHUNKED_MAX(len, size) bytes to out; returns how many */

static size_t
chunked_encode(const u_char *p, size_t len, size_t size, u_char *out)
{
    size_t  n, o;

    o = 0;

    while (len) {
        n = len < size ? len : size;
        o += sprintf((char *) out + o, "%zx\r\n", n);
        memcpy(out + o, p, n);
        o += n;
        out[o++] = '\r';
        out[o++] = '\n';
        p += n;
        len -= n;
    }

    memcpy(out + o, "0\r\n\r\n", 5);

    return o + 5;
}


#endif /* _CHUNKED_H_INCLUDED_ */

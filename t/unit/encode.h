
/*
 * Chunked transfer encoding and gzip/deflate compression of a body, for
 * the unit tests, the fuzzers and the matcher's benchmark: each encodes
 * bodies the way a back end would before the scanner reads them.
 */


#ifndef _ENCODE_H_INCLUDED_
#define _ENCODE_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>


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


/* zlib's bound for its own wrapper, and room for gzip's larger one */
#define DEFLATE_MAX(len)  (compressBound(len) + 18)


/*
 * Compresses at "level" with "bits" as deflateInit2() takes them:
 * MAX_WBITS + 16 for gzip, MAX_WBITS for zlib, -MAX_WBITS for raw
 * deflate.  Writes at most "size" bytes to out; returns how many.
 */

static size_t
deflate_encode(const u_char *p, size_t len, int bits, int level, u_char *out,
    size_t size)
{
    z_stream  z;

    memset(&z, 0, sizeof(z));

    if (deflateInit2(&z, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        abort();
    }

    z.next_in = (u_char *) p;
    z.avail_in = len;
    z.next_out = out;
    z.avail_out = size;

    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        abort();
    }

    deflateEnd(&z);

    return size - z.avail_out;
}


#endif /* _ENCODE_H_INCLUDED_ */

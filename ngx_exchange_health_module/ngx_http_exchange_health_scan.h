
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_SCAN_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_SCAN_H_INCLUDED_


/*
 * The body scanner: looks for failure markers in the first bytes of a
 * response body, fed in pieces split at any byte.  It removes chunked
 * framing and inflates gzip or deflate itself, so the bytes passed on to
 * the client are never touched or copied.  Plain C and zlib on purpose:
 * unit tests and fuzzers link this file alone.
 */


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN  64   /* longest marker */
#define NGX_HTTP_EXCHANGE_HEALTH_MARKERS     32   /* markers in one set */
#define NGX_HTTP_EXCHANGE_HEALTH_SCAN_OUT    2048 /* inflated at a time */

/* what ngx_http_exchange_health_scan() returns; >= 0: the marker found */
#define NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE   -1   /* undecided so far */
#define NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN  -2   /* no marker in window */
#define NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD    -3   /* undecodable body */

#define NGX_HTTP_EXCHANGE_HEALTH_IDENTITY    0
#define NGX_HTTP_EXCHANGE_HEALTH_GZIP        1
#define NGX_HTTP_EXCHANGE_HEALTH_DEFLATE     2


typedef struct {
    const u_char  *data;
    size_t         len;
    size_t         anchor;      /* offset of its rarest byte */
    size_t         window;      /* looked for in so many bytes; 0: all */

    /*
     * Where a page names itself: once "prefix" is found, the marker is
     * right after it or nowhere in the page, and is no longer looked for.
     */
    const u_char  *prefix;
    size_t         prefix_len;
    size_t         prefix_anchor;
} ngx_http_exchange_health_marker_t;


typedef struct {
    unsigned                           n;
    size_t                             longest;
    ngx_http_exchange_health_marker_t  marker[NGX_HTTP_EXCHANGE_HEALTH_MARKERS];
} ngx_http_exchange_health_markers_t;


typedef struct {
    const ngx_http_exchange_health_markers_t  *markers;
    uint32_t      mask;         /* markers looked for, by index */

    size_t        window;       /* decoded bytes to scan at most */
    size_t        scanned;      /* decoded bytes scanned so far */
    size_t        body;         /* body bytes taken, framing removed */
    uint64_t      chunk;        /* bytes left in the current chunk */

    int           result;

    unsigned      chunked:1;
    unsigned      chunk_state:3;
    unsigned      chunk_digits:1;
    unsigned      encoding:2;
    unsigned      inflating:1;
    unsigned      nhead:1;      /* the first byte waits for the second */
    u_char        head;

    z_stream      zstream;
    u_char       *out;          /* inflated bytes, only when inflating */

    size_t        ncarry;
    u_char        carry[NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN];
} ngx_http_exchange_health_scan_t;


/*
 * adds a marker (kept by reference), looked for in the first "window"
 * bytes only, or in the whole scan window when 0; returns its index or -1
 */
int ngx_http_exchange_health_marker_add(
    ngx_http_exchange_health_markers_t *set, const u_char *data, size_t len,
    size_t window);

/*
 * Gives marker i a prefix (see the marker); prefix and marker together
 * fit NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN.  0, or -1 when they do not.
 */
int ngx_http_exchange_health_marker_prefix(
    ngx_http_exchange_health_markers_t *set, int i, const u_char *prefix,
    size_t len);

void ngx_http_exchange_health_scan_init(ngx_http_exchange_health_scan_t *s,
    const ngx_http_exchange_health_markers_t *markers, uint32_t mask,
    size_t window, unsigned chunked, unsigned encoding, alloc_func zalloc,
    free_func zfree, void *opaque);

/* feeds body bytes as they came from the server (chunked if it was) */
int ngx_http_exchange_health_scan(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t len);

/* from now on bytes come with chunked framing already removed */
void ngx_http_exchange_health_scan_unchunked(
    ngx_http_exchange_health_scan_t *s);

/* the body has ended: an undecided scan is clean */
int ngx_http_exchange_health_scan_end(ngx_http_exchange_health_scan_t *s);

void ngx_http_exchange_health_scan_release(
    ngx_http_exchange_health_scan_t *s);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_SCAN_H_INCLUDED_ */

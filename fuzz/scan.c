
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


/*
 * libFuzzer target of the body scanner.  The module relies on the scan
 * giving one answer however the body is cut into reads, chunks and
 * compressed blocks, so every input is scanned in pieces and in one
 * piece, and the two answers must agree.  When the body is plain text the
 * harness encodes itself, the answer is also checked against memmem() on
 * that text: the expected answer is known.
 *
 * Input: a 21-byte header, then the body.
 *
 *   byte 0      mode: bit 0 chunked, bits 1-2 encoding (0 identity,
 *               1 gzip, 2 deflate, 3 raw deflate), bit 3 harness-made;
 *               for a harness-made body bits 4-5 choose the compression
 *               level and bits 6-7 the chunk size
 *   bytes 1-2   scan window, little endian
 *   byte 3      marker mask, low 5 bits; bit 5: the markers have windows
 *               of their own (a rule's "scan="), else the scan window
 *   byte 4      number of cuts, modulo 9
 *   bytes 5-20  8 cut offsets, 16 bits little endian each, modulo the
 *               length of the bytes fed
 *
 * Without bit 3 the body is fed as it is, the fuzzer's own chunked
 * framing and compressed stream (raw deflate is then simply "deflate":
 * the scanner tells zlib from raw by the first two bytes).  With bit 3 it
 * is plain text that the harness compresses and frames.
 */


#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_exchange_health_scan.h"
#include "../t/unit/encode.h"


#define FUZZ_HEADER    21
#define FUZZ_CUTS      8
#define FUZZ_MARKERS   5

#define FUZZ_CHUNKED   0x01
#define FUZZ_HARNESS   0x08
#define FUZZ_WINDOWED  0x20
#define FUZZ_NAMED     0x40   /* with a prefix where the page names itself */

#define FUZZ_MORE      NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE
#define FUZZ_CLEAN     NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN
#define FUZZ_BAD       NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD


typedef struct {
    const ngx_http_exchange_health_markers_t  *set;
    uint32_t                                   mask;
    size_t                                     window;
    unsigned                                   chunked;
    unsigned                                   encoding;
} fuzz_mode_t;


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_scan(const fuzz_mode_t *mode, const u_char *p, size_t len,
    const size_t *cut, size_t ncuts);
static int fuzz_scan_switched(const fuzz_mode_t *mode, const u_char *wire,
    size_t at, const u_char *body, size_t len);
static int fuzz_feed(ngx_http_exchange_health_scan_t *s, int prev,
    const u_char *p, size_t n);
static void fuzz_check(const ngx_http_exchange_health_scan_t *s, int rc);
static void fuzz_agree(const char *what, int whole, int other);
static void fuzz_expect(const char *what, const fuzz_mode_t *mode,
    const u_char *plain, size_t len, int rc);
static u_char *fuzz_encode(const u_char *p, size_t len, unsigned encoding,
    int level, size_t *olen);
static int fuzz_cmp_size(const void *one, const void *two);


/*
 * The module's default markers, plus a 1-byte and a 64-byte one for the
 * edges of the carry between pieces.  The long one has its rarest byte,
 * where memchr() anchors, in the middle.
 */
static const char  *fuzz_marker[FUZZ_MARKERS] = {
    "ASP.auth_errorfe_aspx",
    "id=\"diagnosticDiv\"",
    "Server Error in '/",
    "|",
    "--------------------X-OWA-Error: ExAssertException--------------"
};

/* windows of their own, some shorter than most scan windows, one none */
static const size_t  fuzz_marker_window[FUZZ_MARKERS] = {
    200, 0, 1000, 7, 100
};

static ngx_http_exchange_health_markers_t  fuzz_set;
static ngx_http_exchange_health_markers_t  fuzz_set_windowed;
static ngx_http_exchange_health_markers_t  fuzz_set_named;

static const int     fuzz_level[4] = { 1, 6, 9, 0 };
static const size_t  fuzz_chunk_size[4] = { 1, 5, 100, 4096 };


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int  i;

    (void) argc;
    (void) argv;

    for (i = 0; i < FUZZ_MARKERS; i++) {
        if (ngx_http_exchange_health_marker_add(&fuzz_set,
                (const u_char *) fuzz_marker[i], strlen(fuzz_marker[i]), 0)
            != i
            || ngx_http_exchange_health_marker_add(&fuzz_set_windowed,
                (const u_char *) fuzz_marker[i], strlen(fuzz_marker[i]),
                fuzz_marker_window[i])
            != i)
        {
            abort();
        }
    }

    /* errorfe-page as built in: its marker right after the page's name */

    for (i = 0; i < FUZZ_MARKERS - 1; i++) {
        if (ngx_http_exchange_health_marker_add(&fuzz_set_named,
                (const u_char *) fuzz_marker[i], strlen(fuzz_marker[i]),
                fuzz_marker_window[i])
            != i)
        {
            abort();
        }
    }

    if (ngx_http_exchange_health_marker_prefix(&fuzz_set_named, 0,
            (const u_char *) "<!-- OwaPage = ", 15) != 0
        || ngx_http_exchange_health_marker_prefix(&fuzz_set_named, 3,
            (const u_char *) "<", 1) != 0)
    {
        abort();
    }

    if (fuzz_set.longest != NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN) {
        /* the 64-byte marker must stay 64 bytes long */
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            whole, split, switched;
    size_t         i, len, plen, zlen, piece, ncuts, cut[FUZZ_CUTS];
    u_char        *z, *wire;
    unsigned       encoding, harness;
    fuzz_mode_t    mode;
    const u_char  *plain;

    if (size < FUZZ_HEADER) {
        return 0;
    }

    encoding = (data[0] >> 1) & 3;
    harness = data[0] & FUZZ_HARNESS;

    mode.chunked = data[0] & FUZZ_CHUNKED;
    mode.encoding = encoding == 0 ? NGX_HTTP_EXCHANGE_HEALTH_IDENTITY
                    : encoding == 1 ? NGX_HTTP_EXCHANGE_HEALTH_GZIP
                    : NGX_HTTP_EXCHANGE_HEALTH_DEFLATE;
    mode.window = data[1] | (data[2] << 8);
    mode.mask = data[3] & ((1 << FUZZ_MARKERS) - 1);
    mode.set = (data[3] & FUZZ_NAMED) ? &fuzz_set_named
               : (data[3] & FUZZ_WINDOWED) ? &fuzz_set_windowed : &fuzz_set;

    if (data[3] & FUZZ_NAMED) {
        mode.mask &= (1 << (FUZZ_MARKERS - 1)) - 1;
    }

    plain = data + FUZZ_HEADER;
    plen = size - FUZZ_HEADER;

    z = NULL;
    zlen = 0;
    wire = NULL;

    if (harness) {
        z = fuzz_encode(plain, plen, encoding, fuzz_level[(data[0] >> 4) & 3],
                        &zlen);

        if (mode.chunked) {
            piece = fuzz_chunk_size[data[0] >> 6];

            wire = malloc(CHUNKED_MAX(zlen, piece));
            if (wire == NULL) {
                abort();
            }

            len = chunked_encode(z, zlen, piece, wire);

        } else {
            len = zlen;
        }

    } else {
        len = plen;
    }

    ncuts = data[4] % (FUZZ_CUTS + 1);

    for (i = 0; i < ncuts; i++) {
        cut[i] = (data[5 + 2 * i] | (data[6 + 2 * i] << 8)) % (len + 1);
    }

    qsort(cut, ncuts, sizeof(size_t), fuzz_cmp_size);

    if (wire == NULL) {
        wire = harness ? z : (u_char *) plain;
    }

    whole = fuzz_scan(&mode, wire, len, NULL, 0);
    split = fuzz_scan(&mode, wire, len, cut, ncuts);

    fuzz_agree("split", whole, split);

    /*
     * The expected answer is known when the bytes fed decode to "plain",
     * and no marker waits for a page's name (the oracle knows none).
     */

    if (!(data[3] & FUZZ_NAMED)
        && (harness
            || (!mode.chunked
                && mode.encoding == NGX_HTTP_EXCHANGE_HEALTH_IDENTITY)))
    {
        fuzz_expect("whole", &mode, plain, plen, whole);
        fuzz_expect("split", &mode, plain, plen, split);
    }

    /*
     * The module's own switch: the scan held with the header sees the
     * chunked bytes, the body filter then the body with framing removed,
     * from the offset the scanner has reached.
     */

    if (harness && mode.chunked && ncuts) {
        switched = fuzz_scan_switched(&mode, wire, cut[0], z, zlen);

        fuzz_agree("switched", whole, switched);

        if (!(data[3] & FUZZ_NAMED)) {
            fuzz_expect("switched", &mode, plain, plen, switched);
        }
    }

    if (wire != z && wire != plain) {
        free(wire);
    }

    free(z);

    return 0;
}


static int
fuzz_scan(const fuzz_mode_t *mode, const u_char *p, size_t len,
    const size_t *cut, size_t ncuts)
{
    int                              rc;
    size_t                           i, from, to;
    ngx_http_exchange_health_scan_t  s;

    ngx_http_exchange_health_scan_init(&s, mode->set, mode->mask,
                                       mode->window, mode->chunked,
                                       mode->encoding, Z_NULL, Z_NULL,
                                       Z_NULL);
    rc = s.result;
    from = 0;

    /* pieces after a decision are fed too: the answer must not change */

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cut[i] : len;
        rc = fuzz_feed(&s, rc, p + from, to - from);
        from = to;
    }

    if (s.body > len) {
        abort();
    }

    if (rc == FUZZ_MORE) {
        rc = ngx_http_exchange_health_scan_end(&s);
        fuzz_check(&s, rc);
    }

    if (rc == FUZZ_MORE) {
        abort();
    }

    ngx_http_exchange_health_scan_release(&s);

    return rc;
}


static int
fuzz_scan_switched(const fuzz_mode_t *mode, const u_char *wire, size_t at,
    const u_char *body, size_t len)
{
    int                              rc;
    ngx_http_exchange_health_scan_t  s;

    ngx_http_exchange_health_scan_init(&s, mode->set, mode->mask,
                                       mode->window, 1, mode->encoding,
                                       Z_NULL, Z_NULL, Z_NULL);

    rc = fuzz_feed(&s, s.result, wire, at);

    ngx_http_exchange_health_scan_unchunked(&s);

    if (s.body > len) {
        abort();
    }

    rc = fuzz_feed(&s, rc, body + s.body, len - s.body);

    if (rc == FUZZ_MORE) {
        rc = ngx_http_exchange_health_scan_end(&s);
        fuzz_check(&s, rc);
    }

    ngx_http_exchange_health_scan_release(&s);

    return rc;
}


static int
fuzz_feed(ngx_http_exchange_health_scan_t *s, int prev, const u_char *p,
    size_t n)
{
    int      rc;
    u_char  *piece;

    /* each piece in a buffer of its own: ASan sees a read past its end */

    piece = malloc(n ? n : 1);
    if (piece == NULL) {
        abort();
    }

    memcpy(piece, p, n);

    rc = ngx_http_exchange_health_scan(s, piece, n);

    free(piece);

    if (prev != FUZZ_MORE && rc != prev) {
        fprintf(stderr, "fuzz: decided %d, then %d\n", prev, rc);
        abort();
    }

    fuzz_check(s, rc);

    return rc;
}


static void
fuzz_check(const ngx_http_exchange_health_scan_t *s, int rc)
{
    if (rc != s->result
        || rc < FUZZ_BAD
        || rc >= FUZZ_MARKERS
        || (rc >= 0 && !(s->mask & ((uint32_t) 1 << rc)))
        || s->scanned > s->window
        || s->ncarry >= NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN)
    {
        fprintf(stderr, "fuzz: rc %d, result %d, mask %#x, scanned %zu, "
                "window %zu, carry %zu\n", rc, s->result, s->mask,
                s->scanned, s->window, s->ncarry);
        abort();
    }
}


static void
fuzz_agree(const char *what, int whole, int other)
{
    /*
     * The one difference allowed: with several markers in the window,
     * which one is reported depends on the pieces, as the scanner reports
     * the lowest index found in a piece, not the first in the body.
     */

    if (whole == other || (whole >= 0 && other >= 0)) {
        return;
    }

    fprintf(stderr, "fuzz: in one piece %d, %s %d\n", whole, what, other);
    abort();
}


static void
fuzz_expect(const char *what, const fuzz_mode_t *mode, const u_char *plain,
    size_t len, int rc)
{
    int     i, any;
    size_t  n, end;

    /* a marker counts when it lies wholly within its window */

    any = 0;

    for (i = 0; i < FUZZ_MARKERS; i++) {
        end = mode->set->marker[i].window;

        if (end == 0 || end > mode->window) {
            end = mode->window;
        }

        n = len < end ? len : end;

        if ((mode->mask & ((uint32_t) 1 << i))
            && memmem(plain, n, fuzz_marker[i], strlen(fuzz_marker[i])))
        {
            if (rc == i) {
                return;
            }

            any = 1;
        }
    }

    if (!any && rc == FUZZ_CLEAN) {
        return;
    }

    fprintf(stderr, "fuzz: %s scan gave %d, markers in window: %s\n",
            what, rc, any ? "yes" : "none");
    abort();
}


static u_char *
fuzz_encode(const u_char *p, size_t len, unsigned encoding, int level,
    size_t *olen)
{
    int       bits;
    u_char   *out;

    out = malloc(DEFLATE_MAX(len));
    if (out == NULL) {
        abort();
    }

    if (encoding == 0) {
        memcpy(out, p, len);
        *olen = len;

        return out;
    }

    bits = encoding == 1 ? MAX_WBITS + 16
           : encoding == 2 ? MAX_WBITS
           : -MAX_WBITS;

    *olen = deflate_encode(p, len, bits, level, out, DEFLATE_MAX(len));

    return out;
}


static int
fuzz_cmp_size(const void *one, const void *two)
{
    size_t  a, b;

    a = *(const size_t *) one;
    b = *(const size_t *) two;

    return (a > b) - (a < b);
}

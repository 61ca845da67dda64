
/*
 * Unit tests of the body scanner: markers found across every split,
 * chunked framing, gzip and deflate, the scan window, broken input, a
 * page that names itself.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_exchange_health_scan.h"
#include "unit.h"
#include "encode.h"


static ngx_http_exchange_health_markers_t  markers;

static const char  *errorfe = "<!-- OwaPage = ASP.auth_errorfe_aspx -->";


static void
setup(void)
{
    memset(&markers, 0, sizeof(markers));

    UNIT_OK(ngx_http_exchange_health_marker_add(&markers,
                (const u_char *) "ASP.auth_errorfe_aspx", 21, 0) == 0,
            "first marker gets index 0");
    UNIT_OK(ngx_http_exchange_health_marker_add(&markers,
                (const u_char *) "id=\"diagnosticDiv\"", 18, 0) == 1,
            "second marker gets index 1");
}


static size_t
page(u_char *buf, size_t size, size_t at, const char *marker)
{
    size_t  i, len;

    /* filler that resembles HTML, with the marker at offset "at" */

    for (i = 0; i < size; i++) {
        buf[i] = "<div class=\"x\">ASP auth errorfe aspx diagnostic</div>\n"
                 [i % 54];
    }

    if (marker) {
        len = strlen(marker);
        memcpy(buf + at, marker, len);
    }

    return size;
}


static int
scan_pieces(const u_char *p, size_t len, size_t *cuts, size_t ncuts,
    unsigned chunked, unsigned encoding, size_t window)
{
    int                              rc;
    size_t                           i, from, to;
    ngx_http_exchange_health_scan_t  s;

    ngx_http_exchange_health_scan_init(&s, &markers, 0xffffffff, window,
                                       chunked, encoding, Z_NULL, Z_NULL,
                                       Z_NULL);
    rc = NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;
    from = 0;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : len;
        rc = ngx_http_exchange_health_scan(&s, p + from, to - from);
        from = to;
    }

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE && !chunked) {
        rc = ngx_http_exchange_health_scan_end(&s);
    }

    ngx_http_exchange_health_scan_release(&s);

    return rc;
}


static void
test_every_split(void)
{
    int     bad;
    size_t  len, cut[2], i, j;
    u_char  buf[300];

    len = page(buf, sizeof(buf), 130, errorfe);

    bad = 0;

    for (i = 0; i <= len; i++) {
        cut[0] = i;

        if (scan_pieces(buf, len, cut, 1, 0, 0, 65536) != 0) {
            bad++;
        }
    }

    UNIT_OK(bad == 0, "marker found with the body split at any byte");

    bad = 0;

    for (i = 120; i <= 180; i++) {
        for (j = i; j <= 180; j++) {
            cut[0] = i;
            cut[1] = j;

            if (scan_pieces(buf, len, cut, 2, 0, 0, 65536) != 0) {
                bad++;
            }
        }
    }

    UNIT_OK(bad == 0, "marker found split in three at any two bytes");

    /* byte by byte */

    {
        size_t  cuts[300];

        for (i = 0; i < len - 1; i++) {
            cuts[i] = i + 1;
        }

        UNIT_OK(scan_pieces(buf, len, cuts, len - 1, 0, 0, 65536) == 0,
                "marker found fed one byte at a time");
    }

    len = page(buf, sizeof(buf), 0, NULL);

    UNIT_OK(scan_pieces(buf, len, NULL, 0, 0, 0, 65536)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "a page without markers is clean");

    len = page(buf, sizeof(buf), 250, "id=\"diagnosticDiv\"");
    cut[0] = 260;

    UNIT_OK(scan_pieces(buf, len, cut, 1, 0, 0, 65536) == 1,
            "second marker found and reported by its index");

    len = page(buf, sizeof(buf), 0, errorfe);

    UNIT_OK(scan_pieces(buf, len, NULL, 0, 0, 0, 65536) == 0,
            "marker at the very start");

    len = page(buf, sizeof(buf), sizeof(buf) - strlen(errorfe), errorfe);
    cut[0] = sizeof(buf) - 3;

    UNIT_OK(scan_pieces(buf, len, cut, 1, 0, 0, 65536) == 0,
            "marker at the very end");
}


static void
test_window(void)
{
    size_t  len;
    u_char  buf[4096];

    len = page(buf, sizeof(buf), 3000, errorfe);

    UNIT_OK(scan_pieces(buf, len, NULL, 0, 0, 0, 2048)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "a marker past the window is not looked for");

    UNIT_OK(scan_pieces(buf, len, NULL, 0, 0, 0, 3000 + 36) == 0,
            "a marker ending exactly at the window is found");

    UNIT_OK(scan_pieces(buf, len, NULL, 0, 0, 0, 3000 + 35)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "a marker cut by the window is not");
}


static void
test_chunked(void)
{
    int     bad;
    size_t  len, clen, size, i, cut[1];
    u_char  buf[2000], framed[16000];

    len = page(buf, sizeof(buf), 1500, errorfe);
    bad = 0;

    for (size = 1; size <= 64; size++) {
        clen = chunked_encode(buf, len, size, framed);

        for (i = 0; i < clen; i += 7) {
            cut[0] = i;

            if (scan_pieces(framed, clen, cut, 1, 1, 0, 65536) != 0) {
                bad++;
            }
        }
    }

    UNIT_OK(bad == 0, "marker found through chunked framing, any size/split");

    len = page(buf, sizeof(buf), 0, NULL);
    clen = chunked_encode(buf, len, 100, framed);

    UNIT_OK(scan_pieces(framed, clen, NULL, 0, 1, 0, 65536)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "the last chunk ends a clean scan");

    UNIT_OK(scan_pieces((const u_char *) "zz\r\nabc", 7, NULL, 0, 1, 0, 100)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD,
            "a bad chunk size stops the scan");

    UNIT_OK(scan_pieces((const u_char *) "3\r\nabcX", 7, NULL, 0, 1, 0, 100)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD,
            "a chunk without its CRLF stops the scan");

    UNIT_OK(scan_pieces((const u_char *) "ffffffffffffffffff\r\n", 20,
                        NULL, 0, 1, 0, 100)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD,
            "an absurd chunk size stops the scan");

    UNIT_OK(scan_pieces((const u_char *) "1;ext=1\r\nA\r\n0\r\n\r\n", 17,
                        NULL, 0, 1, 0, 100)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "chunk extensions are skipped");
}


static void
test_compressed(void)
{
    int     bad, bits[3], enc[3];
    size_t  len, zlen, clen, i, k, cut[1];
    u_char  buf[25000], z[30000], framed[60000];

    len = page(buf, sizeof(buf), 20000, errorfe);

    bits[0] = MAX_WBITS + 16;   enc[0] = NGX_HTTP_EXCHANGE_HEALTH_GZIP;
    bits[1] = MAX_WBITS;        enc[1] = NGX_HTTP_EXCHANGE_HEALTH_DEFLATE;
    bits[2] = -MAX_WBITS;       enc[2] = NGX_HTTP_EXCHANGE_HEALTH_DEFLATE;

    for (k = 0; k < 3; k++) {
        zlen = deflate_encode(buf, len, bits[k], 6, z, sizeof(z));
        bad = 0;

        for (i = 2; i < zlen; i++) {
            cut[0] = i;

            if (scan_pieces(z, zlen, cut, 1, 0, enc[k], 65536) != 0) {
                bad++;
            }
        }

        UNIT_OK(bad == 0, k == 0 ? "gzip: marker found, any split"
                          : k == 1 ? "deflate (zlib): marker found, any split"
                          : "deflate (raw): marker found, any split");

        clen = chunked_encode(z, zlen, 333, framed);

        UNIT_OK(scan_pieces(framed, clen, NULL, 0, 1, enc[k], 65536) == 0,
                "compressed and chunked: marker found");
    }

    len = page(buf, sizeof(buf), 0, NULL);
    zlen = deflate_encode(buf, len, MAX_WBITS + 16, 6, z, sizeof(z));

    UNIT_OK(scan_pieces(z, zlen, NULL, 0, 0, NGX_HTTP_EXCHANGE_HEALTH_GZIP,
                        65536)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "a clean gzip page is clean");

    memcpy(z, "this is not gzip at all, no no no", 33);

    UNIT_OK(scan_pieces(z, 33, NULL, 0, 0, NGX_HTTP_EXCHANGE_HEALTH_GZIP,
                        65536)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD,
            "a body that is not gzip stops the scan");
}


static void
test_bomb(void)
{
    int                              rc;
    size_t                           zlen;
    u_char                          *zeros, *z;
    ngx_http_exchange_health_scan_t  s;

    /* 64 MB of zeros compress to about 64 KB */

    zeros = calloc(1, 64 << 20);
    z = malloc(1 << 20);

    zlen = deflate_encode(zeros, 64 << 20, MAX_WBITS + 16, 6, z, 1 << 20);

    ngx_http_exchange_health_scan_init(&s, &markers, 0xffffffff, 32768, 0,
                                       NGX_HTTP_EXCHANGE_HEALTH_GZIP,
                                       Z_NULL, Z_NULL, Z_NULL);
    rc = ngx_http_exchange_health_scan(&s, z, zlen);

    UNIT_OK(rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN
            && s.scanned == 32768,
            "a decompression bomb is scanned only up to the window");

    ngx_http_exchange_health_scan_release(&s);

    free(zeros);
    free(z);
}


static void
test_found_by_fuzzing(void)
{
    size_t  zlen, cut[1];
    u_char  z[256];

    /* raw deflate whose first piece is one byte: told apart all the same */

    zlen = deflate_encode((const u_char *) errorfe, strlen(errorfe),
                          -MAX_WBITS, 6, z, sizeof(z));
    cut[0] = 1;

    UNIT_OK(scan_pieces(z, zlen, cut, 1, 0, NGX_HTTP_EXCHANGE_HEALTH_DEFLATE,
                        65536) == 0,
            "raw deflate, first piece one byte: marker found");

    /* a gzip stream that fails its check after the marker came out */

    zlen = deflate_encode((const u_char *) errorfe, strlen(errorfe),
                          MAX_WBITS + 16, 6, z, sizeof(z));
    z[zlen - 8] ^= 0xff;

    UNIT_OK(scan_pieces(z, zlen, NULL, 0, 0, NGX_HTTP_EXCHANGE_HEALTH_GZIP,
                        65536) == 0,
            "bytes inflated before a fault are scanned");
}


static void
test_mask(void)
{
    size_t                           len;
    u_char                           buf[300];
    ngx_http_exchange_health_scan_t  s;

    len = page(buf, sizeof(buf), 20, errorfe);
    memcpy(buf + 200, "id=\"diagnosticDiv\"", 18);

    ngx_http_exchange_health_scan_init(&s, &markers, 0x2, 65536, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);

    UNIT_OK(ngx_http_exchange_health_scan(&s, buf, len) == 1,
            "a marker left out of the mask is not reported");

    ngx_http_exchange_health_scan_init(&s, &markers, 0, 65536, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);

    UNIT_OK(ngx_http_exchange_health_scan(&s, buf, len)
            == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "an empty mask scans nothing");
}


static void
test_marker_window(void)
{
    int                                 rc;
    size_t                              at, len, cut;
    u_char                              buf[12000];
    ngx_http_exchange_health_scan_t     s;
    ngx_http_exchange_health_markers_t  set;

    /* errorfe-page's marker in its first 4 KB, the details anywhere */

    memset(&set, 0, sizeof(set));

    UNIT_OK(ngx_http_exchange_health_marker_add(&set,
                (const u_char *) "ASP.auth_errorfe_aspx", 21, 4096) == 0
            && ngx_http_exchange_health_marker_add(&set,
                (const u_char *) "id=\"diagnosticDiv\"", 18, 0) == 1,
            "markers with and without a window of their own");

    /* "errorfe" puts the marker 15 bytes into it */

    for (at = 4096 - 36 - 2; at <= 4096 - 36 + 2; at++) {
        len = page(buf, sizeof(buf), at, errorfe);
        cut = 4096 - 30;

        ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                           Z_NULL, Z_NULL, Z_NULL);
        rc = ngx_http_exchange_health_scan(&s, buf, cut);

        if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
            rc = ngx_http_exchange_health_scan(&s, buf + cut, len - cut);
        }

        UNIT_OK(rc == (at + 15 + 21 <= 4096
                       ? 0 : NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN),
                "a marker counts only when it ends within its window, "
                "across a junction too");
    }

    /* a healthy page is cleared at the window, before its end */

    len = page(buf, sizeof(buf), 0, NULL);

    ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);

    UNIT_OK(s.window == 4096, "the scan ends at the only marker's window");

    rc = ngx_http_exchange_health_scan(&s, buf, 4000);
    UNIT_OK(rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE, "undecided at 4000");

    rc = ngx_http_exchange_health_scan(&s, buf + 4000, 4000);
    UNIT_OK(rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN && s.scanned == 4096,
            "clean once past the window, the rest not looked at");

    /* the widest marker looked for sets where the scan ends */

    len = page(buf, sizeof(buf), 10000, "id=\"diagnosticDiv\"");
    memcpy(buf + 5000, errorfe, strlen(errorfe));

    ngx_http_exchange_health_scan_init(&s, &set, 0x3, 32768, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);
    rc = ngx_http_exchange_health_scan(&s, buf, len);

    UNIT_OK(rc == 1 && s.window == 32768,
            "past one marker's window the other is still looked for");

    /* the scan window still bounds a marker's own */

    ngx_http_exchange_health_scan_init(&s, &set, 0x1, 1000, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);

    UNIT_OK(s.window == 1000, "exchange_health_scan below a rule's scan=");
}


static void
test_unchunked(void)
{
    int                              rc;
    size_t                           len, clen;
    u_char                           buf[600], framed[2000];
    ngx_http_exchange_health_scan_t  s;

    /* header-time scan sees chunked bytes, the body filter plain ones */

    len = page(buf, sizeof(buf), 290, errorfe);
    clen = chunked_encode(buf, 300, 100, framed);

    ngx_http_exchange_health_scan_init(&s, &markers, 0xffffffff, 65536, 1, 0,
                                       Z_NULL, Z_NULL, Z_NULL);

    rc = ngx_http_exchange_health_scan(&s, framed, clen - 5 - 50);

    UNIT_OK(rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE, "undecided at first");

    ngx_http_exchange_health_scan_unchunked(&s);

    rc = ngx_http_exchange_health_scan(&s, buf + s.body, len - s.body);

    UNIT_OK(rc == 0, "marker found after switching to unchunked bytes");
    (void) len;
}


static void
test_named(void)
{
    int                                 rc, ok;
    size_t                              len, cut, at;
    u_char                              buf[8000];
    ngx_http_exchange_health_scan_t     s;
    ngx_http_exchange_health_markers_t  set;
    static const char                  *healthy =
                                     "<!-- OwaPage = ASP.default_aspx -->";

    /* errorfe-page as built in: the page names itself after the prefix */

    memset(&set, 0, sizeof(set));

    UNIT_OK(ngx_http_exchange_health_marker_add(&set,
                (const u_char *) "ASP.auth_errorfe_aspx", 21, 4096) == 0
            && ngx_http_exchange_health_marker_prefix(&set, 0,
                (const u_char *) "<!-- OwaPage = ", 15) == 0
            && set.longest == 36,
            "named: a marker with a prefix; the carry holds both");

    UNIT_OK(ngx_http_exchange_health_marker_prefix(&set, 0,
                (const u_char *) "0123456789012345678901234567890123456789"
                                 "0123", 44) == -1,
            "named: prefix and marker over 64 bytes refused");

    /* the errorFE page: found, however the bytes are cut */

    ok = 1;
    len = page(buf, 2000, 107, errorfe);

    for (cut = 1; cut < 200; cut++) {
        ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                           Z_NULL, Z_NULL, Z_NULL);
        rc = ngx_http_exchange_health_scan(&s, buf, cut);

        if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
            rc = ngx_http_exchange_health_scan(&s, buf + cut, len - cut);
        }

        ok &= (rc == 0);
    }

    UNIT_OK(ok, "named: the errorFE page found across every cut");

    /* a page that names itself otherwise: clean right there */

    ok = 1;
    len = page(buf, sizeof(buf), 107, healthy);

    for (cut = 1; cut < 200; cut++) {
        ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                           Z_NULL, Z_NULL, Z_NULL);
        rc = ngx_http_exchange_health_scan(&s, buf, cut);

        /* the rest in pieces of 100 bytes: which piece decides */

        for (at = cut; rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE && at < len;
             at += 100)
        {
            rc = ngx_http_exchange_health_scan(&s, buf + at,
                                               len - at < 100 ? len - at : 100);
        }

        ok &= (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN && at < 400);
    }

    UNIT_OK(ok, "named: another page is clean where it names itself, "
                "across every cut");

    /* its marker further on is not looked for: the page said what it is */

    len = page(buf, sizeof(buf), 107, healthy);
    memcpy(buf + 1000, errorfe, strlen(errorfe) - 4);
    memcpy(buf + 1000, "<!-- x", 6);

    ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                       Z_NULL, Z_NULL, Z_NULL);
    rc = ngx_http_exchange_health_scan(&s, buf, len);

    UNIT_OK(rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN,
            "named: a marker after another page's name is not looked for");

    /* no name at all: the marker anywhere in the window, as before */

    for (at = 500; at <= 3000; at += 2500) {
        len = page(buf, sizeof(buf), at, "ASP.auth_errorfe_aspx");

        ngx_http_exchange_health_scan_init(&s, &set, 0x1, 32768, 0, 0,
                                           Z_NULL, Z_NULL, Z_NULL);
        rc = ngx_http_exchange_health_scan(&s, buf, len);

        UNIT_OK(rc == 0, "named: without the prefix, found anywhere");
    }
}


int
main(void)
{
    setup();
    test_every_split();
    test_window();
    test_chunked();
    test_compressed();
    test_bomb();
    test_found_by_fuzzing();
    test_mask();
    test_marker_window();
    test_unchunked();
    test_named();

    return unit_done();
}

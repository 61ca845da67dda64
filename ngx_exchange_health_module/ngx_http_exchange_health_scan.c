
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <stddef.h>
#include <string.h>

#include "ngx_http_exchange_health_scan.h"


#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE     0
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_EXT      1
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE_LF  2
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA     3
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_CR  4
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_LF  5
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_LAST     6

/* no real chunk is this large; a bigger size means a broken stream */
#define NGX_HTTP_EXCHANGE_HEALTH_CHUNK_MAX      ((uint64_t) 1 << 40)


static size_t ngx_http_exchange_health_rarity(u_char c);
static size_t ngx_http_exchange_health_rarest(const u_char *data, size_t len);
static int ngx_http_exchange_health_named(ngx_http_exchange_health_scan_t *s,
    unsigned i, const u_char *p, size_t n, size_t len);
static const u_char *ngx_http_exchange_health_seek(const u_char *data,
    size_t dlen, size_t anchor, const u_char *p, size_t len);
static size_t ngx_http_exchange_health_marker_end(
    const ngx_http_exchange_health_marker_t *m, size_t window);
static int ngx_http_exchange_health_find(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n, size_t offset);
static int ngx_http_exchange_health_match(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n);
static int ngx_http_exchange_health_decode(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n);
static int ngx_http_exchange_health_inflate(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n);
static int ngx_http_exchange_health_inflate_start(
    ngx_http_exchange_health_scan_t *s, const u_char *first);
static int ngx_http_exchange_health_dechunk(
    ngx_http_exchange_health_scan_t *s, const u_char *p, size_t n);


/*
 * Bytes from most to least frequent in HTML and script text.  memchr()
 * looks for the rarest byte of a marker, so it stops seldom.  The
 * capitals of hexadecimal (GUIDs, colours) and the '!' of "<!--" and
 * "<!DOCTYPE" come early in every OWA page: rarer than the common
 * bytes, not as rare as any other capital.
 */
static const char  ngx_http_exchange_health_common[] =
    " etaoinsrlhdcupmfgbywvkx\"=<>/.-:;,_'0123456789\r\n\t(){}"
    "ABCDEF!";


int
ngx_http_exchange_health_marker_add(ngx_http_exchange_health_markers_t *set,
    const u_char *data, size_t len, size_t window)
{
    ngx_http_exchange_health_marker_t  *m;

    if (len == 0 || len > NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN
        || set->n == NGX_HTTP_EXCHANGE_HEALTH_MARKERS)
    {
        return -1;
    }

    m = &set->marker[set->n];
    m->data = data;
    m->len = len;
    m->anchor = ngx_http_exchange_health_rarest(data, len);
    m->window = window;
    m->prefix = NULL;
    m->prefix_len = 0;
    m->prefix_anchor = 0;

    if (len > set->longest) {
        set->longest = len;
    }

    return set->n++;
}


int
ngx_http_exchange_health_marker_prefix(ngx_http_exchange_health_markers_t *set,
    int i, const u_char *prefix, size_t len)
{
    ngx_http_exchange_health_marker_t  *m;

    if (i < 0 || (unsigned) i >= set->n || len == 0) {
        return -1;
    }

    m = &set->marker[i];

    if (len + m->len > NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN) {
        return -1;
    }

    m->prefix = prefix;
    m->prefix_len = len;
    m->prefix_anchor = ngx_http_exchange_health_rarest(prefix, len);

    /* a prefix and its marker split between two pieces meet in the carry */

    if (len + m->len > set->longest) {
        set->longest = len + m->len;
    }

    return 0;
}


static size_t
ngx_http_exchange_health_rarest(const u_char *data, size_t len)
{
    size_t  i, rank, best, anchor;

    best = 0;
    anchor = 0;

    for (i = 0; i < len; i++) {
        rank = ngx_http_exchange_health_rarity(data[i]);

        if (rank > best) {
            best = rank;
            anchor = i;
        }
    }

    return anchor;
}


static size_t
ngx_http_exchange_health_rarity(u_char c)
{
    const char  *p;

    p = memchr(ngx_http_exchange_health_common, c,
               sizeof(ngx_http_exchange_health_common) - 1);

    if (p == NULL) {
        return sizeof(ngx_http_exchange_health_common);
    }

    return 1 + (p - ngx_http_exchange_health_common);
}


void
ngx_http_exchange_health_scan_init(ngx_http_exchange_health_scan_t *s,
    const ngx_http_exchange_health_markers_t *markers, uint32_t mask,
    size_t window, unsigned chunked, unsigned encoding, alloc_func zalloc,
    free_func zfree, void *opaque)
{
    size_t    end;
    uint32_t  m;
    unsigned  i;

    /* the carry and scratch buffers need no clearing */
    memset(s, 0, offsetof(ngx_http_exchange_health_scan_t, carry));

    s->markers = markers;
    s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;
    s->chunked = chunked ? 1 : 0;
    s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE;
    s->encoding = encoding;

    s->zstream.zalloc = zalloc;
    s->zstream.zfree = zfree;
    s->zstream.opaque = opaque;

    /*
     * The scan ends where the widest of the markers looked for ends.
     * This loop and those of each piece go by the bits of the mask, up
     * to its highest: on a healthy page, one marker of many.
     */

    if (markers->n < 32) {
        mask &= ((uint32_t) 1 << markers->n) - 1;
    }

    for (i = 0, m = mask; m; i++, m >>= 1) {
        if (!(m & 1)) {
            continue;
        }

        end = ngx_http_exchange_health_marker_end(&markers->marker[i], window);

        if (end) {
            s->mask |= (uint32_t) 1 << i;
        }

        if (end > s->window) {
            s->window = end;
        }
    }

    if (s->mask == 0) {
        s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN;
    }
}


int
ngx_http_exchange_health_scan(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t len)
{
    if (s->result != NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE || len == 0) {
        return s->result;
    }

    if (s->chunked) {
        return ngx_http_exchange_health_dechunk(s, p, len);
    }

    s->body += len;

    return ngx_http_exchange_health_decode(s, p, len);
}


void
ngx_http_exchange_health_scan_unchunked(ngx_http_exchange_health_scan_t *s)
{
    s->chunked = 0;
}


int
ngx_http_exchange_health_scan_end(ngx_http_exchange_health_scan_t *s)
{
    if (s->result == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
        s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN;
    }

    return s->result;
}


void
ngx_http_exchange_health_scan_release(ngx_http_exchange_health_scan_t *s)
{
    if (s->inflating) {
        s->zstream.zfree(s->zstream.opaque, s->out);
        inflateEnd(&s->zstream);
        s->inflating = 0;
    }
}


static int
ngx_http_exchange_health_dechunk(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n)
{
    int           rc;
    size_t        take;
    u_char        c, digit;
    const u_char *end;

    end = p + n;

    while (p < end) {

        switch (s->chunk_state) {

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE:
            c = *p++;

            if (c >= '0' && c <= '9') {
                digit = c - '0';

            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                digit = (c | 0x20) - 'a' + 10;

            } else if (!s->chunk_digits) {
                goto bad;

            } else if (c == ';' || c == ' ' || c == '\t') {
                s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_EXT;
                break;

            } else if (c == '\r') {
                s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE_LF;
                break;

            } else if (c == '\n') {
                goto size_done;

            } else {
                goto bad;
            }

            s->chunk = s->chunk * 16 + digit;
            s->chunk_digits = 1;

            if (s->chunk > NGX_HTTP_EXCHANGE_HEALTH_CHUNK_MAX) {
                goto bad;
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_EXT:
            if (*p++ == '\n') {
                goto size_done;
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE_LF:
            if (*p++ != '\n') {
                goto bad;
            }

            goto size_done;

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA:
            take = end - p;

            if (take > s->chunk) {
                take = (size_t) s->chunk;
            }

            s->chunk -= take;
            s->body += take;

            rc = ngx_http_exchange_health_decode(s, p, take);

            if (rc != NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
                return rc;
            }

            p += take;

            if (s->chunk == 0) {
                s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_CR;
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_CR:
            c = *p++;

            if (c == '\r') {
                s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_LF;

            } else if (c == '\n') {
                s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE;

            } else {
                goto bad;
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA_LF:
            if (*p++ != '\n') {
                goto bad;
            }

            s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_SIZE;
            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_CHUNK_LAST */
            return ngx_http_exchange_health_scan_end(s);
        }

        continue;

    size_done:

        s->chunk_digits = 0;

        if (s->chunk == 0) {
            s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_LAST;
            return ngx_http_exchange_health_scan_end(s);
        }

        s->chunk_state = NGX_HTTP_EXCHANGE_HEALTH_CHUNK_DATA;
    }

    return s->result;

bad:

    s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD;
    return s->result;
}


static int
ngx_http_exchange_health_decode(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n)
{
    int     rc;
    u_char  first[2];

    if (s->encoding == NGX_HTTP_EXCHANGE_HEALTH_IDENTITY) {
        return ngx_http_exchange_health_match(s, p, n);
    }

    if (!s->inflating) {

        /*
         * "deflate" is told from raw deflate by its first two bytes,
         * which may come in two pieces: the first one waits.
         */

        if (s->nhead + n < 2) {
            s->head = *p;
            s->nhead = 1;
            return s->result;
        }

        first[0] = s->nhead ? s->head : p[0];
        first[1] = s->nhead ? p[0] : p[1];

        if (ngx_http_exchange_health_inflate_start(s, first) != Z_OK) {
            s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD;
            return s->result;
        }

        if (s->nhead) {
            s->nhead = 0;

            rc = ngx_http_exchange_health_inflate(s, &s->head, 1);

            if (rc != NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
                return rc;
            }
        }
    }

    return ngx_http_exchange_health_inflate(s, p, n);
}


static int
ngx_http_exchange_health_inflate(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n)
{
    int     rc;
    uInt    avail;
    size_t  got;

    s->zstream.next_in = (u_char *) p;
    s->zstream.avail_in = n;

    /*
     * Output goes to a small scratch buffer and is matched at once; the
     * scan window bounds the work, so a decompression bomb costs no more
     * than a plain page.
     */

    while (s->zstream.avail_in) {
        s->zstream.next_out = s->out;
        s->zstream.avail_out = NGX_HTTP_EXCHANGE_HEALTH_SCAN_OUT;
        avail = s->zstream.avail_in;

        rc = inflate(&s->zstream, Z_NO_FLUSH);

        /* what came out before a fault is looked at all the same */

        got = NGX_HTTP_EXCHANGE_HEALTH_SCAN_OUT - s->zstream.avail_out;

        if (got && ngx_http_exchange_health_match(s, s->out, got)
                   != NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE)
        {
            return s->result;
        }

        if (rc == Z_STREAM_END) {
            return ngx_http_exchange_health_scan_end(s);
        }

        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD;
            return s->result;
        }

        if (got == 0 && avail == s->zstream.avail_in) {
            /* no progress: zlib wants more input than there is */
            break;
        }
    }

    return s->result;
}


static int
ngx_http_exchange_health_inflate_start(ngx_http_exchange_health_scan_t *s,
    const u_char *first)
{
    int  bits;

    /* gzip or zlib by their headers; "deflate" is sometimes sent raw */

    bits = MAX_WBITS + 32;

    if (s->encoding == NGX_HTTP_EXCHANGE_HEALTH_DEFLATE
        && ((first[0] & 0x0f) != Z_DEFLATED
            || ((first[0] << 8) | first[1]) % 31 != 0))
    {
        bits = -MAX_WBITS;
    }

    if (inflateInit2(&s->zstream, bits) != Z_OK) {
        return Z_MEM_ERROR;
    }

    /*
     * Through the allocator zlib now holds (the caller's, or its own):
     * a plain page, the most common, never needs this buffer, and the
     * request's pool stays small.
     */

    s->out = s->zstream.zalloc(s->zstream.opaque, 1,
                               NGX_HTTP_EXCHANGE_HEALTH_SCAN_OUT);
    if (s->out == NULL) {
        inflateEnd(&s->zstream);
        return Z_MEM_ERROR;
    }

    s->inflating = 1;

    return Z_OK;
}


static int
ngx_http_exchange_health_match(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n)
{
    int       found;
    size_t    keep, take, total, drop;
    u_char    junction[2 * NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN];
    uint32_t  m;
    unsigned  i;

    if (n > s->window - s->scanned) {
        n = s->window - s->scanned;
    }

    keep = s->markers->longest - 1;

    /* a marker split between the previous bytes and these */

    if (s->ncarry) {
        take = n < keep ? n : keep;

        memcpy(junction, s->carry, s->ncarry);
        memcpy(junction + s->ncarry, p, take);

        found = ngx_http_exchange_health_find(s, junction, s->ncarry + take,
                                              s->scanned - s->ncarry);
        if (found >= 0) {
            s->result = found;
            return found;
        }
    }

    found = ngx_http_exchange_health_find(s, p, n, s->scanned);

    if (found >= 0) {
        s->result = found;
        return found;
    }

    s->scanned += n;

    /* a marker whose window has passed is no longer looked for */

    for (i = 0, m = s->mask; m; i++, m >>= 1) {
        if ((m & 1)
            && s->scanned >= ngx_http_exchange_health_marker_end(
                                          &s->markers->marker[i], s->window))
        {
            s->mask &= ~((uint32_t) 1 << i);
        }
    }

    if (s->mask == 0) {
        s->result = NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN;
        return s->result;
    }

    /* keep the last "longest - 1" bytes seen for the next junction */

    if (n >= keep) {
        memcpy(s->carry, p + n - keep, keep);
        s->ncarry = keep;

    } else {
        total = s->ncarry + n;
        drop = total > keep ? total - keep : 0;

        memmove(s->carry, s->carry + drop, s->ncarry - drop);
        memcpy(s->carry + s->ncarry - drop, p, n);
        s->ncarry = total - drop;
    }

    return s->result;
}


static size_t
ngx_http_exchange_health_marker_end(const ngx_http_exchange_health_marker_t *m,
    size_t window)
{
    /* the body offset a marker must end by to be found */

    return (m->window && m->window < window) ? m->window : window;
}


static int
ngx_http_exchange_health_find(ngx_http_exchange_health_scan_t *s,
    const u_char *p, size_t n, size_t offset)
{
    int                                       named;
    size_t                                    end, len;
    uint32_t                                  bits;
    unsigned                                  i;
    const ngx_http_exchange_health_marker_t  *m;

    /* "p" holds the decoded body bytes from "offset" on */

    for (i = 0, bits = s->mask; bits; i++, bits >>= 1) {
        if (!(bits & 1)) {
            continue;
        }

        m = &s->markers->marker[i];

        end = ngx_http_exchange_health_marker_end(m, s->window);
        len = (end - offset < n) ? end - offset : n;

        if (len < m->len) {
            continue;
        }

        if (m->prefix_len) {
            named = ngx_http_exchange_health_named(s, i, p, n, len);

            if (named == 1) {
                return i;
            }

            if (named < 0) {
                continue;
            }
        }

        if (ngx_http_exchange_health_seek(m->data, m->len, m->anchor, p, len)
            != NULL)
        {
            return i;
        }
    }

    return -1;
}


static const u_char *
ngx_http_exchange_health_seek(const u_char *data, size_t dlen, size_t anchor,
    const u_char *p, size_t len)
{
    const u_char  *q, *last;

    /* the first "data" wholly within p[0 .. len), by its rarest byte */

    if (len < dlen) {
        return NULL;
    }

    q = p + anchor;
    last = p + len - (dlen - anchor);

    while (q <= last) {
        q = memchr(q, data[anchor], last - q + 1);

        if (q == NULL) {
            return NULL;
        }

        if (memcmp(q - anchor, data, dlen) == 0) {
            return q - anchor;
        }

        q++;
    }

    return NULL;
}


static int
ngx_http_exchange_health_named(ngx_http_exchange_health_scan_t *s,
    unsigned i, const u_char *p, size_t n, size_t len)
{
    size_t                                    stop;
    const u_char                             *name;
    const ngx_http_exchange_health_marker_t  *m;

    /*
     * The marker counts before the page's name and as the name, never
     * after it.  1: found; -1: not found, and no longer looked for once
     * the name is all here (or the window ends first), or looked for
     * again with the next bytes when the name is cut; 0: no name in
     * these bytes, look for the marker anywhere.
     */

    m = &s->markers->marker[i];

    name = ngx_http_exchange_health_seek(m->prefix, m->prefix_len,
                                         m->prefix_anchor, p, len);
    if (name == NULL) {
        return 0;
    }

    stop = (name - p) + m->prefix_len + m->len;

    if (ngx_http_exchange_health_seek(m->data, m->len, m->anchor, p,
                                      stop < len ? stop : len)
        != NULL)
    {
        return 1;
    }

    if (stop <= len || len < n) {
        s->mask &= ~((uint32_t) 1 << i);
    }

    return -1;
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Reading an answer's headers: by name, line by line, and the few that
 * judging reads on most answers (known), found by the hash nginx gave
 * them while it parsed the header, with no string compared.
 */


static ngx_inline ngx_uint_t ngx_http_exchange_health_known_name(
    const u_char *name, const u_char *known, size_t len);


/*
 * by NGX_HTTP_EXCHANGE_HEALTH_H_*; lowercase, as in h->lowcase_key; 10
 * to 20 bytes each (known_name)
 */
static ngx_str_t  ngx_http_exchange_health_known_names[] = {
    ngx_string("x-feserver"),
    ngx_string("x-beserver"),
    ngx_string("x-owa-error"),
    ngx_string("x-ecp-error"),
    ngx_string("x-calculatedbetarget"),
    ngx_string("content-encoding")
};

/* their hashes as nginx computes a header's (h->hash), made at start */
static ngx_uint_t  ngx_http_exchange_health_known_hash[
                                              NGX_HTTP_EXCHANGE_HEALTH_H_N];

/*
 * A bit of a word for each hash's low 6 bits: of the some 25 headers of an
 * OWA page, about two others share a bit with the known names.
 */
static uint64_t    ngx_http_exchange_health_known_bits;


static ngx_inline ngx_uint_t
ngx_http_exchange_health_known_name(const u_char *name, const u_char *known,
    size_t len)
{
    uint64_t  a, b, c, d;

    /*
     * A name of 10 to 20 bytes compared as two or three words that may
     * overlap, with no call: a header whose hash is a known one's is
     * mostly that one.
     */

    ngx_memcpy(&a, name, 8);
    ngx_memcpy(&b, known, 8);
    ngx_memcpy(&c, name + len - 8, 8);
    ngx_memcpy(&d, known + len - 8, 8);

    if (a != b || c != d) {
        return 0;
    }

    if (len <= 16) {
        return 1;
    }

    ngx_memcpy(&a, name + 8, 8);
    ngx_memcpy(&b, known + 8, 8);

    return a == b;
}


ngx_int_t
ngx_http_exchange_health_known_index(ngx_str_t *name)
{
    ngx_uint_t  i;

    /* a rule's header that judging reads anyway: found by its hash */

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_H_N; i++) {
        if (name->len == ngx_http_exchange_health_known_names[i].len
            && ngx_strncasecmp(name->data,
                               ngx_http_exchange_health_known_names[i].data,
                               name->len) == 0)
        {
            return i;
        }
    }

    return -1;
}


void
ngx_http_exchange_health_known_init(void)
{
    ngx_uint_t  i;

    /* hashed as the proxy module hashes a header's */

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_H_N; i++) {
        ngx_http_exchange_health_known_hash[i] = ngx_hash_key(
                               ngx_http_exchange_health_known_names[i].data,
                               ngx_http_exchange_health_known_names[i].len);

        ngx_http_exchange_health_known_bits |=
                  (uint64_t) 1 << (ngx_http_exchange_health_known_hash[i] & 63);
    }
}


ngx_table_elt_t *
ngx_http_exchange_health_header(ngx_list_t *headers, ngx_str_t *name)
{
    ngx_http_exchange_health_lines_t  lines;

    lines.part = NULL;

    return ngx_http_exchange_health_header_next(headers, name, &lines);
}


ngx_table_elt_t *
ngx_http_exchange_health_header_next(ngx_list_t *headers, ngx_str_t *name,
    ngx_http_exchange_health_lines_t *lines)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* the lines of one name, each in turn: lines->part NULL starts */

    if (lines->part == NULL) {
        part = &headers->part;
        i = 0;

    } else {
        part = lines->part;
        i = lines->i + 1;
    }

    h = part->elts;

    for ( /* void */ ; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            lines->part = part;
            lines->i = i;
            return &h[i];
        }
    }
}


ngx_uint_t
ngx_http_exchange_health_header_any(ngx_list_t *headers, ngx_str_t *name,
    ngx_regex_t *regex)
{
    ngx_table_elt_t                   *h;
    ngx_http_exchange_health_lines_t   lines;

    lines.part = NULL;

    while ((h = ngx_http_exchange_health_header_next(headers, name, &lines))) {
        if (ngx_regex_exec(regex, &h->value, NULL, 0) >= 0) {
            return 1;
        }
    }

    return 0;
}


ngx_table_elt_t *
ngx_http_exchange_health_known(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t k)
{
    uint64_t          bits;
    ngx_uint_t        n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *last;

    /*
     * The headers the module reads of an answer, found in one walk of
     * its list instead of one walk each; the first of a name counts, as
     * for any header lookup here.
     */

    if (ctx->known_read) {
        return ctx->known[k];
    }

    ctx->known_read = 1;
    ngx_memzero(ctx->known, sizeof(ctx->known));

    bits = ngx_http_exchange_health_known_bits;

    for (part = &r->upstream->headers_in.headers.part;
         part;
         part = part->next)
    {
        h = part->elts;

        for (last = h + part->nelts; h < last; h++) {

            /*
             * Most headers cost a test of one bit by the hash the proxy
             * module made of their lowercase name; the rest, the hash
             * compared, then the name.
             */

            if (!((bits >> (h->hash & 63)) & 1)) {
                continue;
            }

            for (n = 0; n < NGX_HTTP_EXCHANGE_HEALTH_H_N; n++) {
                if (h->hash == ngx_http_exchange_health_known_hash[n]) {
                    break;
                }
            }

            if (n < NGX_HTTP_EXCHANGE_HEALTH_H_N
                && ctx->known[n] == NULL
                && h->key.len == ngx_http_exchange_health_known_names[n].len
                && ngx_http_exchange_health_known_name(h->lowcase_key,
                                  ngx_http_exchange_health_known_names[n].data,
                                  h->key.len))
            {
                ctx->known[n] = h;
            }
        }
    }

    return ctx->known[k];
}


ngx_uint_t
ngx_http_exchange_health_scannable(ngx_http_request_t *r)
{
    u_char               *p;
    ngx_uint_t            status;
    ngx_table_elt_t      *type;
    ngx_http_upstream_t  *u;

    /* only an HTML page can be the errorFE page or an ASP.NET error */

    u = r->upstream;
    type = u->headers_in.content_type;

    /*
     * "text/html" in any case, on every answer, and "text/xml" on a
     * 5xx (EWS's SOAP faults): OR-ing in 0x20 lowers the letters and
     * keeps '/' (a control byte 0x0f would pass for it: such an answer
     * is only scanned).  The type first: most answers that are not
     * scanned (JSON, scripts, images) fail at its first byte.
     */

    if (type == NULL || type->value.len < 8) {
        return 0;
    }

    p = type->value.data;

    if ((p[0] | 0x20) != 't' || (p[1] | 0x20) != 'e'
        || (p[2] | 0x20) != 'x' || (p[3] | 0x20) != 't'
        || (p[4] | 0x20) != '/')
    {
        return 0;
    }

    status = u->headers_in.status_n;

    if (r->method == NGX_HTTP_HEAD
        || status < 200 || status == 204 || status == 304
        || u->headers_in.content_length_n == 0)
    {
        return 0;
    }

    if (type->value.len >= 9
        && (p[5] | 0x20) == 'h' && (p[6] | 0x20) == 't'
        && (p[7] | 0x20) == 'm' && (p[8] | 0x20) == 'l')
    {
        return 1;
    }

    return status >= 500
           && (p[5] | 0x20) == 'x' && (p[6] | 0x20) == 'm'
           && (p[7] | 0x20) == 'l';
}


ngx_int_t
ngx_http_exchange_health_encoding(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_str_t        *v;
    ngx_table_elt_t  *h;

    /*
     * The first Content-Encoding, as nginx 1.22 keeps it in the upstream's
     * headers_in; later versions keep no such pointer, so it is found by
     * the one walk of the answer's headers, done already for a page.
     */

    h = ngx_http_exchange_health_known(r, ctx,
                                       NGX_HTTP_EXCHANGE_HEALTH_H_ENCODING);
    if (h == NULL) {
        return NGX_HTTP_EXCHANGE_HEALTH_IDENTITY;
    }

    v = &h->value;

    if ((v->len == 4 && ngx_strncasecmp(v->data, (u_char *) "gzip", 4) == 0)
        || (v->len == 6
            && ngx_strncasecmp(v->data, (u_char *) "x-gzip", 6) == 0))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_GZIP;
    }

    if (v->len == 7 && ngx_strncasecmp(v->data, (u_char *) "deflate", 7) == 0)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_DEFLATE;
    }

    if (v->len == 8 && ngx_strncasecmp(v->data, (u_char *) "identity", 8)
                       == 0)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_IDENTITY;
    }

    /* br and the like: nothing to scan with */
    return NGX_ERROR;
}

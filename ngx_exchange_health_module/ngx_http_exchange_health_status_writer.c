
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status_writer.h"


/*
 * Output built in a chain of the request pool's buffers, a line at a
 * time, and sent with the headers every answer of the status location
 * has: the page's renderers and the admin API's answers write through it.
 */


static ngx_buf_t *ngx_http_exchange_health_writer_buf(
    ngx_http_exchange_health_writer_t *w, size_t size);
static size_t ngx_http_exchange_health_utf8(u_char *p, u_char *last);
static ngx_int_t ngx_http_exchange_health_add_header(ngx_http_request_t *r,
    char *key, char *value);


void
ngx_http_exchange_health_writer_init(ngx_http_exchange_health_writer_t *w,
    ngx_pool_t *pool)
{
    ngx_memzero(w, sizeof(ngx_http_exchange_health_writer_t));
    w->pool = pool;
    w->last = &w->out;
}


ngx_int_t
ngx_http_exchange_health_send(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_http_exchange_health_writer_t *w)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (w->error || w->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = 0;

    for (cl = w->out; cl; cl = cl->next) {
        r->headers_out.content_length_n += ngx_buf_size(cl->buf);
    }

    w->buf->last_buf = (r == r->main) ? 1 : 0;
    w->buf->last_in_chain = 1;

    /* health is stale at once */

    if (ngx_http_exchange_health_add_header(r, "Cache-Control", "no-store")
        != NGX_OK
        || ngx_http_exchange_health_add_header(r, "Vary", "Accept") != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, w->out);
}


static ngx_buf_t *
ngx_http_exchange_health_writer_buf(ngx_http_exchange_health_writer_t *w,
    size_t size)
{
    ngx_chain_t  *cl;

    if (w->buf && (size_t) (w->buf->end - w->buf->last) >= size) {
        return w->buf;
    }

    cl = ngx_alloc_chain_link(w->pool);
    if (cl == NULL) {
        w->error = 1;
        return NULL;
    }

    cl->buf = ngx_create_temp_buf(w->pool, ngx_max(size, 16384));
    if (cl->buf == NULL) {
        w->error = 1;
        return NULL;
    }

    cl->next = NULL;
    *w->last = cl;
    w->last = &cl->next;
    w->buf = cl->buf;

    return w->buf;
}


void
ngx_http_exchange_health_write(ngx_http_exchange_health_writer_t *w,
    const char *fmt, ...)
{
    u_char   *last, text[1024];
    va_list   args;

    /* a line at a time; values longer than a line go through write_text */

    va_start(args, fmt);
    last = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);

    ngx_http_exchange_health_write_text(w, text, last - text);
}


void
ngx_http_exchange_health_write_text(ngx_http_exchange_health_writer_t *w,
    u_char *data, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_http_exchange_health_writer_buf(w, len);
    if (b == NULL) {
        return;
    }

    b->last = ngx_cpymem(b->last, data, len);
}


void
ngx_http_exchange_health_write_escaped(ngx_http_exchange_health_writer_t *w,
    u_char *data, size_t len, ngx_uint_t mode)
{
    u_char      c, *p, *last;
    size_t      n;
    ngx_buf_t  *b;

    /*
     * Names, paths and errors come from upstream servers and requests:
     * they are escaped for the output format, and bytes that are not
     * UTF-8 become U+FFFD, so the output always parses.
     */

    b = ngx_http_exchange_health_writer_buf(w, len * 6);
    if (b == NULL) {
        return;
    }

    p = data;
    last = data + len;

    while (p < last) {
        c = *p;

        if (c >= 0x80) {
            n = ngx_http_exchange_health_utf8(p, last);

            if (n == 0) {
                b->last = ngx_cpymem(b->last, "\xef\xbf\xbd", 3);
                p++;

            } else {
                b->last = ngx_cpymem(b->last, p, n);
                p += n;
            }

            continue;
        }

        p++;

        switch (mode) {

        case NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML:
            switch (c) {
            case '&':  b->last = ngx_cpymem(b->last, "&amp;", 5); continue;
            case '<':  b->last = ngx_cpymem(b->last, "&lt;", 4); continue;
            case '>':  b->last = ngx_cpymem(b->last, "&gt;", 4); continue;
            case '"':  b->last = ngx_cpymem(b->last, "&quot;", 6); continue;
            case '\'': b->last = ngx_cpymem(b->last, "&#39;", 5); continue;
            }

            if (c < 0x20 || c == 0x7f) {
                c = '?';
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON:
            if (c == '"' || c == '\\') {
                *b->last++ = '\\';

            } else if (c < 0x20 || c == 0x7f) {
                b->last = ngx_sprintf(b->last, "\\u%04xd", (ngx_uint_t) c);
                continue;
            }

            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_PROMETHEUS */
            if (c == '"' || c == '\\') {
                *b->last++ = '\\';

            } else if (c == '\n') {
                b->last = ngx_cpymem(b->last, "\\n", 2);
                continue;

            } else if (c < 0x20 || c == 0x7f) {
                c = '?';
            }
        }

        *b->last++ = c;
    }
}


static size_t
ngx_http_exchange_health_utf8(u_char *p, u_char *last)
{
    size_t    n, i;
    uint32_t  u, min;

    /* the length of the valid UTF-8 sequence at p, or 0 */

    if (*p >= 0xf0 && *p <= 0xf4) {
        n = 4; u = *p & 0x07; min = 0x10000;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 3; u = *p & 0x0f; min = 0x800;

    } else if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2; u = *p & 0x1f; min = 0x80;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return n;
}


static ngx_int_t
ngx_http_exchange_health_add_header(ngx_http_request_t *r, char *key,
    char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}

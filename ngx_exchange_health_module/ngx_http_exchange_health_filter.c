
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Body scanning.  The first body bytes are scanned inside the upstream,
 * where a failure can still be retried (judge.c's hold); what is left
 * undecided is scanned here as it streams to the client, untouched and
 * uncopied, up to the scan window.  A failure found here can no longer be
 * hidden from this client, but it counts toward ejecting the server.
 */


static ngx_int_t ngx_http_exchange_health_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_exchange_health_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_exchange_health_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_exchange_health_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_header_filter(ngx_http_request_t *r)
{
    ngx_http_exchange_health_ctx_t      *ctx;
    ngx_http_exchange_health_attempt_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (ctx == NULL || ctx->header_sent || ctx->nattempts == 0) {
        return ngx_http_next_header_filter(r);
    }

    /* from here on this server's answer is the one the client gets */

    ctx->header_sent = 1;
    a = &ctx->attempt[ctx->nattempts - 1];

    /* only a request with credentials or on a bound line has to say */

    if (ctx->ntlm || ctx->bound) {
        ngx_http_exchange_health_bind_header(r, ctx);
    }

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING && !r->header_only) {

        if (ctx->scan == NULL
            && ngx_http_exchange_health_start_scan(r, ctx, 0) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ctx->scan) {
            ngx_http_exchange_health_scan_unchunked(ctx->scan);
            ctx->skip = ctx->scan->body;
            ctx->passed = 0;

            r->filter_need_in_memory = 1;

            return ngx_http_next_header_filter(r);
        }
    }

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING) {
        /* nothing to scan: no body, or not one in a form to read */
        ngx_http_exchange_health_unread(r, ctx);
    }

    ngx_http_exchange_health_settle(ctx);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_exchange_health_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_exchange_health_ctx_t  *ctx;

    /*
     * Called for every buffer of every answer: most have nothing to
     * scan, and pass on at the cost of this test alone.
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (ctx && ctx->scan && !ctx->settled && in) {
        return ngx_http_exchange_health_body_scan(r, ctx, in);
    }

    return ngx_http_next_body_filter(r, in);
}


/*
 * Not static, so that the compiler keeps it out of the body filter; it
 * passes the buffers on itself, so that both of the filter's ways end in
 * a jump and its fast path saves no registers.
 */

ngx_int_t
ngx_http_exchange_health_body_scan(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_chain_t *in)
{
    int                               rc;
    off_t                             skip, size;
    ngx_buf_t                        *b;
    ngx_uint_t                        verdict;
    ngx_chain_t                      *cl;
    ngx_http_exchange_health_rule_t  *rule;

    rc = NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            size = b->last - b->pos;

            /* the bytes scanned while the header was held come first */

            skip = 0;

            if (ctx->passed < ctx->skip) {
                skip = ngx_min(size, ctx->skip - ctx->passed);
            }

            ctx->passed += size;

            rc = ngx_http_exchange_health_scan(ctx->scan, b->pos + skip,
                                               size - skip);

        } else if (ngx_buf_size(b)) {
            rc = NGX_HTTP_EXCHANGE_HEALTH_SCAN_BAD;
        }

        if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE
            && (b->last_buf || b->last_in_chain))
        {
            rc = ngx_http_exchange_health_scan_end(ctx->scan);
        }

        if (rc != NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
            rule = NULL;
            verdict = ngx_http_exchange_health_classify_body(r, ctx, rc,
                                                             &rule);
            ngx_http_exchange_health_judged(r, ctx, verdict, rule);
            ngx_http_exchange_health_settle(ctx);
            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}

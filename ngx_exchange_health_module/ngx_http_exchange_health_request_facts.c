
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * What of nginx's request request.c's tests read (a plain C struct): the
 * method, path and query, MAPI's X-RequestType, and the first bytes of a
 * body nginx has read into memory; and whether the request is meant to
 * wait, decided once, when it first matters.
 */


static const u_char *ngx_http_exchange_health_request_body(
    ngx_http_request_t *r, size_t *len);


ngx_str_t *
ngx_http_exchange_health_path(ngx_http_exchange_health_ctx_t *ctx)
{
    u_char  *p;

    /*
     * The request's path as first asked, never with a mailbox address in
     * it: it is recorded, logged, shown and kept only after a failure or
     * a retry, so it is masked then, not on every request.  Its bytes
     * stay where they were while the request lasts.
     */

    if (ctx->path_read) {
        return &ctx->uri;
    }

    ctx->path_read = 1;

    if (!ngx_http_exchange_health_has_mailbox(ctx->uri.data, ctx->uri.len)) {
        return &ctx->uri;
    }

    p = ngx_pnalloc(ctx->request->pool, 5 * ctx->uri.len + 9);

    if (p == NULL) {
        /* no room to mask it in: no path rather than an address */
        ctx->uri.len = 0;
        return &ctx->uri;
    }

    ctx->uri.len = ngx_http_exchange_health_mask_mailbox(p, ctx->uri.data,
                                                         ctx->uri.len);
    ctx->uri.data = p;

    return &ctx->uri;
}


ngx_uint_t
ngx_http_exchange_health_waiting(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_request_t  rq;

    /*
     * Whether the request is meant to wait: request.c decides, the
     * first time it matters (a hold, a timeout), so that a healthy
     * answer never asks.  What it reads of the request (method, path,
     * query, headers, the body nginx read) stays as it was while the
     * request's upstream lasts: the proxy module sends copies of the
     * body's buffers.
     */

    if (ctx->waits_read) {
        return ctx->waits;
    }

    ctx->waits_read = 1;

    ngx_http_exchange_health_request_of(r, ctx, &rq);

    ctx->waits = ngx_http_exchange_health_waits(&rq);

    if (ctx->waits) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: a request meant to wait: %s",
                       ngx_http_exchange_health_wait_names[ctx->waits]);
    }

    return ctx->waits;
}


void
ngx_http_exchange_health_request_of(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_request_t *rq)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  request_type = ngx_string("X-RequestType");

    /*
     * What request.c reads of a request: its method, path and query,
     * MAPI's X-RequestType, and for ActiveSync and EWS the first bytes
     * of a body nginx has read into memory.
     */

    ngx_memzero(rq, sizeof(ngx_http_exchange_health_request_t));

    rq->protocol = ctx->protocol;
    rq->method = r->method_name.data;
    rq->method_len = r->method_name.len;
    rq->path = r->uri.data;
    rq->path_len = r->uri.len;
    rq->args = r->args.data;
    rq->args_len = r->args.len;
    rq->content_length = r->headers_in.content_length_n;

    if (ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_MAPI) {
        h = ngx_http_exchange_health_header(&r->headers_in.headers,
                                            &request_type);
        if (h) {
            rq->request_type = h->value.data;
            rq->request_type_len = h->value.len;
        }
    }

    if (ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC
        || ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_EWS)
    {
        rq->body = ngx_http_exchange_health_request_body(r, &rq->body_len);
    }
}


static const u_char *
ngx_http_exchange_health_request_body(ngx_http_request_t *r, size_t *len)
{
    u_char       *p, *buf;
    size_t        size, n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    /*
     * The first bytes of a body read into memory before the request is
     * sent: an ActiveSync Sync or an EWS operation is small.  One buffer
     * is read in place; a body in pieces is copied, up to the limit.
     */

    *len = 0;

    if (r->request_body == NULL || r->request_body_no_buffering
        || r->request_body->bufs == NULL
        || !ngx_buf_in_memory(r->request_body->bufs->buf))
    {
        return NULL;
    }

    cl = r->request_body->bufs;
    b = cl->buf;

    if (cl->next == NULL
        || b->last - b->pos >= NGX_HTTP_EXCHANGE_HEALTH_WAIT_BODY)
    {
        *len = ngx_min((size_t) (b->last - b->pos),
                       NGX_HTTP_EXCHANGE_HEALTH_WAIT_BODY);
        return b->pos;
    }

    size = 0;

    for ( /* void */ ; cl && ngx_buf_in_memory(cl->buf); cl = cl->next) {
        size += cl->buf->last - cl->buf->pos;
    }

    size = ngx_min(size, NGX_HTTP_EXCHANGE_HEALTH_WAIT_BODY);

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;

    for (cl = r->request_body->bufs; p < buf + size; cl = cl->next) {
        n = ngx_min((size_t) (cl->buf->last - cl->buf->pos),
                    (size_t) (buf + size - p));
        p = ngx_cpymem(p, cl->buf->pos, n);
    }

    *len = size;

    return buf;
}

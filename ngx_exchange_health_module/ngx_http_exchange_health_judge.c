
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Each answer is judged as soon as its header is parsed, inside the
 * upstream, where nginx can still send the request elsewhere: the proxy
 * module's process_header is decorated, and a failure found there, in
 * the header or in the first body bytes held for it, makes nginx try
 * another server through its own next-upstream path (resend).  What nginx
 * itself finds wrong (errors, timeouts, proxy_next_upstream statuses) is
 * judged when it frees the peer (judge_free).  The rules that classify an
 * answer are in rules.c; every verdict is recorded by judged, here; what
 * a verdict changes is in state.c.
 */


static ngx_int_t ngx_http_exchange_health_process_header(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_reinit_request(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_scan_held(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_may_hold(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_int_t ngx_http_exchange_health_resend(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_learn(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);


static ngx_str_t  ngx_http_exchange_health_upstream_error =
    ngx_string("upstream-error");
static ngx_str_t  ngx_http_exchange_health_upstream_timeout =
    ngx_string("upstream-timeout");
static ngx_str_t  ngx_http_exchange_health_upstream_status =
    ngx_string("upstream-status");


void
ngx_http_exchange_health_judge_init(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_upstream_t  *u;

    /* the protocol module's handlers, decorated: see process_header */

    u = r->upstream;

    if (u->process_header == NULL) {
        return;
    }

    ctx->process_header = u->process_header;
    u->process_header = ngx_http_exchange_health_process_header;

    ctx->reinit_request = u->reinit_request;
    u->reinit_request = ngx_http_exchange_health_reinit_request;
}


ngx_uint_t
ngx_http_exchange_health_judge_free(ngx_peer_connection_t *pc,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t state)
{
    ngx_uint_t                           timedout;
    ngx_connection_t                    *c;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_attempt_t  *a;

    a = ctx->nattempts ? &ctx->attempt[ctx->nattempts - 1] : NULL;
    u = ctx->request->upstream;
    c = pc->connection;
    timedout = c && (c->read->timedout || c->write->timedout);

    if (ctx->retrying) {
        /* this module's verdict, not a connection failure for max_fails */
        ctx->retrying = 0;
        state &= ~NGX_PEER_FAILED;

    } else if ((state & NGX_PEER_FAILED) && a && ctx->detect
               && a->verdict != NGX_HTTP_EXCHANGE_HEALTH_FAILED
               && !(pc->cached && !timedout
                    && a->verdict == NGX_HTTP_EXCHANGE_HEALTH_NONE))
    {
        /*
         * An error, a timeout, an invalid header or a status listed in
         * proxy_next_upstream: counted as nginx's max_fails counts it.
         * A classified failure nginx retries waits for the next server's
         * answer instead, like one this module retries.  A kept-alive
         * connection the server had closed is not its failure: nginx
         * gives that try back.  A server that sends a header and then
         * stalls the body held for it times out here too: it is failing,
         * and since the client has had nothing yet nginx may try another.
         */

        if (timedout) {
            a->rule = ngx_http_exchange_health_upstream_timeout;
            a->status = 0;

        } else if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_HEALTHY) {
            /* a whole answer, judged well: its status is in the list */
            a->rule = ngx_http_exchange_health_upstream_status;
            a->status = u->headers_in.status_n;

        } else {
            /* no answer, a bad one, or one cut off while held */
            a->rule = ngx_http_exchange_health_upstream_error;
            a->status = 0;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "exchange health: nginx's own failure \"%V\", "
                       "status %ui", &a->rule, a->status);

        ngx_http_exchange_health_judged(ctx->request, ctx,
                                        NGX_HTTP_EXCHANGE_HEALTH_ERROR, NULL);

        /* no second opinion needed: it gave no usable answer */
        ngx_http_exchange_health_blame(ctx, a, 1);
    }

    return state;
}


/*
 * The one place where an attempt's verdict changes: rules.c decides it,
 * the filters and judge_free report what ends a judging, and this records
 * it, with the facts of a failure.
 */

void
ngx_http_exchange_health_judged(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t verdict,
    ngx_http_exchange_health_rule_t *rule)
{
    ngx_http_exchange_health_attempt_t  *a;

    a = &ctx->attempt[ctx->nattempts - 1];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: attempt %ui judged %ui, was %ui",
                   ctx->nattempts, verdict, a->verdict);

    a->verdict = verdict;

    if (verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
        ngx_http_exchange_health_describe(r, ctx, rule);
    }
}


void
ngx_http_exchange_health_unread(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_uint_t                        verdict;
    ngx_http_exchange_health_rule_t  *rule;

    /*
     * The body was to decide and cannot be read: as if it named none of
     * the markers looked for, so a later rule that matched the header
     * (ctx->fallback) decides.
     */

    rule = NULL;
    verdict = ngx_http_exchange_health_classify_body(r, ctx, -1, &rule);

    ngx_http_exchange_health_judged(r, ctx, verdict, rule);
}


static ngx_int_t
ngx_http_exchange_health_process_header(ngx_http_request_t *r)
{
    ngx_int_t                            rc;
    ngx_uint_t                           verdict;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_ctx_t      *ctx;
    ngx_http_exchange_health_rule_t     *rule;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);
    a = &ctx->attempt[ctx->nattempts - 1];

    if (!ctx->holding) {
        rc = ctx->process_header(r);

        /* the proxy module moves on from the status line by itself */

        if (u->process_header != ngx_http_exchange_health_process_header) {
            ctx->process_header = u->process_header;
            u->process_header = ngx_http_exchange_health_process_header;
        }

        /* a header read back from the cache is no server's answer now */

        if (rc != NGX_OK || r->cached) {
            return rc;
        }

        rule = NULL;
        verdict = ngx_http_exchange_health_classify(r, ctx, &rule);
        ngx_http_exchange_health_judged(r, ctx, verdict, rule);
        ngx_http_exchange_health_learn(r, ctx);

        if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING
            && ngx_http_exchange_health_start_scan(r, ctx, 1) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING && ctx->scan
        && ngx_http_exchange_health_scan_held(r, ctx) == NGX_AGAIN)
    {
        ctx->holding = 1;
        return NGX_AGAIN;
    }

    ctx->holding = 0;

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED
        && a->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER
        && ngx_http_exchange_health_may_retry(r, ctx))
    {
        return ngx_http_exchange_health_resend(r, ctx);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_reinit_request(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_upstream_t             *u;
    ngx_http_exchange_health_ctx_t  *ctx;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    rc = ctx->reinit_request ? ctx->reinit_request(r) : NGX_OK;

    /* the proxy module starts over from the status line */

    ctx->process_header = u->process_header;
    u->process_header = ngx_http_exchange_health_process_header;

    return rc;
}


static ngx_int_t
ngx_http_exchange_health_scan_held(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    int                               rc;
    off_t                             body;
    ngx_buf_t                        *b;
    ngx_uint_t                        verdict;
    ngx_http_upstream_t              *u;
    ngx_http_exchange_health_rule_t  *rule;

    /*
     * The body bytes that came with the header, and any awaited for it,
     * sit in the upstream buffer; nothing has gone to the client yet.
     */

    u = r->upstream;
    b = &u->buffer;

    rc = ngx_http_exchange_health_scan(ctx->scan, b->start + ctx->fed,
                                       b->last - (b->start + ctx->fed));
    ctx->fed = b->last - b->start;

    body = b->last - b->pos;

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE
        && !u->headers_in.chunked
        && u->headers_in.content_length_n >= 0
        && body >= u->headers_in.content_length_n)
    {
        rc = ngx_http_exchange_health_scan_end(ctx->scan);
    }

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
        if (ngx_http_exchange_health_may_hold(r, ctx)) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "exchange health: hold, %O body bytes so far",
                           body);
            return NGX_AGAIN;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: hold ends undecided after %O "
                       "bytes, the filters go on", body);
        return NGX_OK;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: hold ends decided after %O bytes",
                   body);

    rule = NULL;
    verdict = ngx_http_exchange_health_classify_body(r, ctx, rc, &rule);
    ngx_http_exchange_health_judged(r, ctx, verdict, rule);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_exchange_health_may_hold(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    off_t                                 held;
    ngx_buf_t                            *b;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    /*
     * Waiting for more of the body only pays when a failure found in it
     * can still be retried; it stops at the hold size, a full buffer, or
     * the end of the body, and, checked when data comes, the hold time.
     */

    u = r->upstream;
    b = &u->buffer;
    hlcf = ctx->lcf;
    held = b->last - b->pos;

    if (b->last == b->end
        || held >= (off_t) hlcf->hold
        || ngx_current_msec - ctx->hold_start >= hlcf->hold_time
        || (!u->headers_in.chunked && u->headers_in.content_length_n < 0))
    {
        return 0;
    }

    return ngx_http_exchange_health_may_retry(r, ctx);
}


static ngx_uint_t
ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_msec_t                            timeout;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    u = r->upstream;
    hlcf = ctx->lcf;
    timeout = u->conf->next_upstream_timeout;

    /*
     * One retry per request: a second failure of the same kind is a
     * diagnosis (the request fails everywhere), not a cue.  A second
     * failure of another kind (an errorFE page, then HTTP.SYS's 503) is a
     * second broken server: the request goes to a third, no further.
     */

    if (ctx->retried
        && (ctx->retried >= 2 || ngx_http_exchange_health_same_failure(ctx)))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry after %ui retries",
                       (ngx_uint_t) ctx->retried);
        return 0;
    }

    /*
     * A request signed in by its connection (NTLM, Negotiate) holds
     * credentials that are good on that connection only: elsewhere it
     * would meet a 401.  Its answer goes to the client as it is.
     */

    if (hlcf->retry == NGX_HTTP_EXCHANGE_HEALTH_RETRY_OFF
        || ctx->ntlm
        || ctx->bound
        || u->peer.tries <= 1
        || (timeout && ngx_current_msec - u->peer.start_time >= timeout)
        || (u->request_sent && r->request_body_no_buffering))
    {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry: retry %ui, signed in by "
                       "its connection %ui, tries left %ui, body unbuffered "
                       "%ui", hlcf->retry, (ngx_uint_t) (ctx->ntlm
                                                         || ctx->bound),
                       u->peer.tries,
                       (ngx_uint_t) r->request_body_no_buffering);
        return 0;
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))
        && hlcf->retry != NGX_HTTP_EXCHANGE_HEALTH_RETRY_NON_IDEMPOTENT)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry of a non-idempotent "
                       "request");
        return 0;
    }

    /* every server fails the same way: retrying would only double load */

    if (ctx->conf->sh && ctx->conf->sh->farm[ctx->slot].fault) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry in a farm-wide fault");
        return 0;
    }

    /*
     * Round robin with one primary server picks it again whatever was
     * tried; otherwise there must be a server left that it would take.
     */

    if (ctx->rrp.peers->single) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry, one server");
        return 0;
    }

    /* the marks of ejected servers are for the primary servers only */

    if (!ngx_http_exchange_health_usable(&ctx->rrp,
                                ctx->rrp.peers == ctx->conf->primary
                                ? ctx->avoided : NULL))
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry, no server left");
        return 0;
    }

    return 1;
}


static ngx_int_t
ngx_http_exchange_health_resend(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    u_char                               buf[3 * 256];
    ngx_str_t                            uri;
    ngx_uint_t                           mask;
    ngx_http_upstream_t                 *u;
    ngx_http_upstream_conf_t            *conf;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    a = &ctx->attempt[ctx->nattempts - 1];

    /*
     * nginx's next-upstream path does the retry: it frees the peer, keeps
     * the tried servers, resends the buffered request body, and honours
     * proxy_next_upstream_tries and _timeout.  It acts on an invalid
     * header only when told to, so a copy of the upstream configuration
     * that says so is used for this request.
     */

    mask = NGX_HTTP_UPSTREAM_FT_INVALID_HEADER;

    if (u->request_sent
        && (r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH)))
    {
        mask |= NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;
    }

    if ((u->conf->next_upstream & mask) != mask) {
        conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
        if (conf == NULL) {
            return NGX_ERROR;
        }

        /* for this decision only: the next try restores the original */

        *conf = *u->conf;
        conf->next_upstream |= mask;
        conf->next_upstream &= ~NGX_HTTP_UPSTREAM_FT_OFF;

        ctx->conf_original = u->conf;
        u->conf = conf;
    }

    ctx->retrying = 1;
    ctx->retried++;

    uri = ngx_http_exchange_health_log_text(buf, sizeof(buf), ctx->uri.data,
                                            ctx->uri.len);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "exchange_health: rule \"%V\" matched the answer of "
                  "server %V to %V %V, status %ui: trying another server",
                  &a->rule, u->peer.name, &ctx->method, &uri, a->status);

    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
}


static void
ngx_http_exchange_health_learn(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_str_t                            fqdn;
    ngx_buf_t                           *b;
    ngx_table_elt_t                     *h;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    a = &ctx->attempt[ctx->nattempts - 1];

    /*
     * A server's name seldom changes: it is read from the answers
     * sampled (classify), from any answer not yet known to be healthy,
     * and whenever its headers were walked anyway.  The proxy module
     * keeps each header in the request's pool, where a retry leaves it.
     */

    if (ctx->sampled || ctx->known_read
        || a->verdict != NGX_HTTP_EXCHANGE_HEALTH_HEALTHY)
    {
        h = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_FESERVER);
        if (h) {
            ngx_http_exchange_health_learn_name(ctx, a, &h->value, 0);
        }
    }

    /* "200 OK<br/>EXCH1.contoso.local" from healthcheck.htm */

    if (u->headers_in.status_n != NGX_HTTP_OK
        || r->uri.len < sizeof("/healthcheck.htm") - 1
        || (r->uri.data[r->uri.len - 1] | 0x20) != 'm'
        || ngx_strncasecmp(r->uri.data + r->uri.len
                           - (sizeof("/healthcheck.htm") - 1),
                           (u_char *) "/healthcheck.htm",
                           sizeof("/healthcheck.htm") - 1) != 0)
    {
        return;
    }

    b = &u->buffer;

    if (u->headers_in.chunked || u->headers_in.content_length_n < 0
        || b->last - b->pos < u->headers_in.content_length_n)
    {
        return;
    }

    fqdn.len = ngx_http_exchange_health_healthcheck_name(b->pos,
                                  (size_t) u->headers_in.content_length_n,
                                  (const u_char **) &fqdn.data);
    if (fqdn.len == 0) {
        return;
    }

    ngx_http_exchange_health_learn_name(ctx, a, &fqdn, 1);
}

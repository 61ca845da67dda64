
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Each answer is judged as soon as its header is parsed, inside the
 * upstream, where nginx can still send the request elsewhere: the proxy
 * module's process_header is decorated, and a failure found there, in
 * the header or in the first body bytes held for it, makes nginx try
 * another server through its own next-upstream path (retry.c).  What
 * nginx itself finds wrong (errors, timeouts, proxy_next_upstream
 * statuses) is judged when it frees the peer (judge_free).  The rules
 * that classify an answer are in classify.c; every verdict is recorded
 * by judged, here; what a verdict changes is in state.c.  Requests meant
 * to wait (request.c) are never held, and their timeouts are nobody's.
 */


static ngx_int_t ngx_http_exchange_health_process_header(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_reinit_request(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_scan_held(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_may_hold(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_int_t ngx_http_exchange_health_hold_back(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_hold_stop(
    ngx_http_exchange_health_ctx_t *ctx, ngx_connection_t *c);
static ssize_t ngx_http_exchange_health_held_recv(ngx_connection_t *c,
    u_char *buf, size_t size);
static void ngx_http_exchange_health_hold_timeout(ngx_event_t *ev);
static void ngx_http_exchange_health_hold_cleanup(void *data);
static void *ngx_http_exchange_health_zalloc(void *opaque, u_int items,
    u_int size);
static void ngx_http_exchange_health_zfree(void *opaque, void *address);
static void ngx_http_exchange_health_learn(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);


/* signed-in answers seen by this worker, for sampling the proof */
static ngx_uint_t  ngx_http_exchange_health_samples;


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

    /* the balancer's free_peer asks judge_idle first: see there */

    a = ctx->nattempts ? &ctx->attempt[ctx->nattempts - 1] : NULL;
    u = ctx->request->upstream;
    c = pc->connection;
    timedout = c && (c->read->timedout || c->write->timedout);

    /* an answer freed while held: its timer goes, nginx's recv comes back */

    if (ctx->holding || ctx->held_byte
        || (ctx->hold_timer && ctx->hold_timer->timer_set))
    {
        ngx_http_exchange_health_hold_stop(ctx, c);
        ctx->holding = 0;
    }

    if (ctx->retrying) {
        /* this module's verdict, not a connection failure for max_fails */
        ctx->retrying = 0;
        state &= ~NGX_PEER_FAILED;

    } else if ((state & NGX_PEER_FAILED) && a && ctx->detect
               && c && c->read->timedout && u->request_sent
               && ngx_http_exchange_health_waiting(ctx->request, ctx))
    {
        /*
         * A request meant to wait, still waiting when proxy_read_timeout
         * ran out: the server did what the client asked.  Nobody's
         * failure, for this module and for max_fails, and never sent to
         * another server, where it would only wait again.
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "exchange health: a request meant to wait (%s) "
                       "timed out: nobody's failure, not retried",
                       ngx_http_exchange_health_wait_names[ctx->waits]);

        state &= ~NGX_PEER_FAILED;
        pc->tries = 0;

    } else if (!(state & NGX_PEER_FAILED) && a && ctx->detect
               && a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING
               && c && c->read->timedout
               && !ngx_http_exchange_health_waiting(ctx->request, ctx))
    {
        /*
         * The header went on when the hold time was up, and the body the
         * module still reads stalled past proxy_read_timeout: the
         * server's failure, as when the hold waited for it, but too late
         * to send the request elsewhere.  nginx counts no timeout after
         * the header, and neither does max_fails here.
         */

        a->rule = ngx_http_exchange_health_upstream_timeout;
        a->status = 0;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "exchange health: the body stalled before it was "
                       "judged: \"upstream-timeout\"");

        ngx_http_exchange_health_judged(ctx->request, ctx,
                                        NGX_HTTP_EXCHANGE_HEALTH_ERROR, NULL);
        ngx_http_exchange_health_blame(ctx, a, 1);

        /* the answer ends here, before the access log is written */

        ngx_http_exchange_health_settle(ctx);

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
        ctx->hold_expired = 0;
        ctx->held_byte = 0;

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

        /*
         * The proof of a sign-in makes a session a voter (state.c): it
         * is looked for in the answers sampled, the first of a client
         * connection, the one that signs a connection in (NTLM's type 3
         * comes second) and one in 16 others, so that a healthy answer
         * mostly costs no header walk.  The server's name is learnt from
         * them too (learn).
         */

        ctx->sampled = r->connection->requests == 1
                       || ctx->ntlm
                       || (++ngx_http_exchange_health_samples & 15) == 0;

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
        if (ngx_http_exchange_health_hold_back(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->holding = 1;
        return NGX_AGAIN;
    }

    if (ctx->holding) {
        ngx_http_exchange_health_hold_stop(ctx, u->peer.connection);
        ctx->holding = 0;
    }

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

    rc = NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;

    if (b->last > b->start + ctx->fed) {
        rc = ngx_http_exchange_health_scan(ctx->scan, b->start + ctx->fed,
                                           b->last - (b->start + ctx->fed));
        ctx->fed = b->last - b->start;
    }

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
    ngx_msec_int_t                        left;
    ngx_connection_t                     *c;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    /*
     * Waiting for more of the body only pays when a failure found in it
     * can still be retried; it stops at the hold size, a full buffer, the
     * end of the body, or the hold time (a timer of its own, hold_back).
     * A request meant to wait streams or answers when it will: never
     * held.
     */

    u = r->upstream;
    b = &u->buffer;
    c = u->peer.connection;
    hlcf = ctx->lcf;
    held = b->last - b->pos;

    if (ngx_http_exchange_health_waiting(r, ctx)) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no hold of a request meant to "
                       "wait (%s)",
                       ngx_http_exchange_health_wait_names[ctx->waits]);
        return 0;
    }

    if (ctx->hold_expired
        || b->last == b->end
        || held >= (off_t) hlcf->hold
        || ngx_current_msec - ctx->hold_start >= hlcf->hold_time
        || (!u->headers_in.chunked && u->headers_in.content_length_n < 0))
    {
        return 0;
    }

    /*
     * nginx's read timer runs from the request on, and nginx resets it
     * only once the header is passed on: the hold ends before it is due,
     * so that it never turns a healthy answer into a timeout.
     */

    if (c && c->read->timer_set) {
        left = (ngx_msec_int_t) (c->read->timer.key - ngx_current_msec);

        if (left <= 1) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "exchange health: no hold, the read timer is "
                           "due in %M ms", (ngx_msec_t) ngx_max(left, 0));
            return 0;
        }
    }

    return ngx_http_exchange_health_may_retry(r, ctx);
}


/*
 * Holding an answer: nginx calls process_header only when bytes arrive,
 * so a page that streams a chunk every few seconds would be held until
 * the next one.  The hold has a timer of its own instead, and when it
 * fires nginx must read the header once more with no new bytes.  For
 * that, the last byte read is held back: u->buffer.last is moved back
 * over it, and the connection's recv, while the answer is held, hands it
 * back first, followed by whatever the server sends, or alone when the
 * hold time is up.  The byte never leaves nginx's buffer, where recv
 * gives it back, so nothing is copied.  This is the public module API:
 * nginx reads the upstream's header through c->recv, and its read
 * handler runs when the connection's read event is posted.
 */

static ngx_int_t
ngx_http_exchange_health_hold_back(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_msec_t                            timer;
    ngx_event_t                          *ev;
    ngx_msec_int_t                        left;
    ngx_connection_t                     *c;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    u = r->upstream;
    c = u->peer.connection;
    hlcf = ctx->lcf;

    if (ctx->hold_timer == NULL) {
        ev = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);

        if (ev == NULL || cln == NULL) {
            return NGX_ERROR;
        }

        ev->handler = ngx_http_exchange_health_hold_timeout;
        ev->data = r;
        ev->log = r->connection->log;

        /* a request freed while its answer is held takes its timer along */

        cln->handler = ngx_http_exchange_health_hold_cleanup;
        cln->data = ev;

        ctx->hold_timer = ev;
    }

    if (!ctx->hold_timer->timer_set) {
        timer = hlcf->hold_time - (ngx_current_msec - ctx->hold_start);

        if (c->read->timer_set) {
            left = (ngx_msec_int_t) (c->read->timer.key - ngx_current_msec);

            if ((ngx_msec_int_t) timer >= left) {
                timer = (ngx_msec_t) left - 1;
            }
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: hold for %M ms at most", timer);

        ngx_add_timer(ctx->hold_timer, timer);
    }

    if (!ctx->held_byte) {
        u->buffer.last--;
        u->state->bytes_received--;
        ctx->held_byte = 1;
    }

    if (c->recv != ngx_http_exchange_health_held_recv) {
        ctx->hold_recv = c->recv;
        c->recv = ngx_http_exchange_health_held_recv;
    }

    return NGX_OK;
}


static void
ngx_http_exchange_health_hold_stop(ngx_http_exchange_health_ctx_t *ctx,
    ngx_connection_t *c)
{
    if (ctx->hold_timer && ctx->hold_timer->timer_set) {
        ngx_del_timer(ctx->hold_timer);
    }

    if (c && c->recv == ngx_http_exchange_health_held_recv) {
        c->recv = ctx->hold_recv;
    }

    ctx->held_byte = 0;
}


static ssize_t
ngx_http_exchange_health_held_recv(ngx_connection_t *c, u_char *buf,
    size_t size)
{
    ssize_t                          n;
    ngx_http_request_t              *r;
    ngx_http_exchange_health_ctx_t  *ctx;

    /* an upstream connection's data is its request */

    r = c->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (!ctx->held_byte) {
        return ctx->hold_recv(c, buf, size);
    }

    /* buf is where the byte held back still is: it comes first */

    if (ctx->hold_expired) {
        ctx->held_byte = 0;
        return 1;
    }

    n = ctx->hold_recv(c, buf + 1, size - 1);

    if (n > 0) {
        ctx->held_byte = 0;
        return n + 1;
    }

    return n;
}


static void
ngx_http_exchange_health_hold_timeout(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_exchange_health_ctx_t  *ctx;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);
    c = r->upstream ? r->upstream->peer.connection : NULL;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "exchange health: hold time is up, the answer goes on");

    ctx->hold_expired = 1;

    if (!ctx->holding || c == NULL
        || c->recv != ngx_http_exchange_health_held_recv)
    {
        return;
    }

    /*
     * nginx's read handler, as if bytes came: the held byte comes back.
     * At once, not posted: nginx's read timer, due later, may be expired
     * too by the time posted events run.  Nothing here after it: the
     * request may be gone.
     */

    c->read->handler(c->read);
}


static void
ngx_http_exchange_health_hold_cleanup(void *data)
{
    ngx_event_t  *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
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


ngx_int_t
ngx_http_exchange_health_start_scan(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t raw)
{
    ngx_int_t             encoding;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    encoding = ngx_http_exchange_health_encoding(r, ctx);

    if (encoding == NGX_ERROR) {
        /* an encoding zlib cannot read: judged by its header alone */
        ngx_http_exchange_health_unread(r, ctx);
        return NGX_OK;
    }

    /* raw upstream bytes are read only when they are HTTP/1.x framed */

    if (raw && (u->schema.len < 4
                || (u->schema.data[0] | 0x20) != 'h'
                || (u->schema.data[1] | 0x20) != 't'
                || (u->schema.data[2] | 0x20) != 't'
                || (u->schema.data[3] | 0x20) != 'p'))
    {
        return NGX_OK;
    }

    ctx->scan = &ctx->scan_state;

    ngx_http_exchange_health_scan_init(ctx->scan, ctx->lcf->markers,
                                       ctx->eligible, ctx->lcf->scan,
                                       raw && u->headers_in.chunked,
                                       encoding,
                                       ngx_http_exchange_health_zalloc,
                                       ngx_http_exchange_health_zfree,
                                       r->pool);

    ctx->fed = u->buffer.pos - u->buffer.start;
    ctx->hold_start = ngx_current_msec;

    return NGX_OK;
}


static void *
ngx_http_exchange_health_zalloc(void *opaque, u_int items, u_int size)
{
    return ngx_palloc(opaque, items * size);
}


static void
ngx_http_exchange_health_zfree(void *opaque, void *address)
{
    /* the request pool frees it all */
}

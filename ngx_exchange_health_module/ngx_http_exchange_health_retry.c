
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Whether an answer judged a server's failure goes to another server,
 * and the sending there.  judge.c asks may_retry once it has a verdict
 * and the client has had nothing yet; resend hands the request to
 * nginx's own next-upstream path.  usable is round robin's test of what
 * is left to try, which the balancer asks too.
 */


ngx_uint_t
ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_msec_t                            timeout;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_request_t    rq;
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
     * Connection-bound sign-in is sent on too, its binding to the failing
     * server ended (bind.c): a Kerberos ticket is good on every server;
     * an NTLM type 1 gets its challenge from the next one; a type 3, or
     * a request its connection signed in, meets a 401 there, and the
     * client signs in again, away from the server that failed it.
     */

    if (hlcf->retry == NGX_HTTP_EXCHANGE_HEALTH_RETRY_OFF
        || u->peer.tries <= 1
        || (timeout && ngx_current_msec - u->peer.start_time >= timeout)
        || (u->request_sent && r->request_body_no_buffering))
    {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry: retry %ui, tries left "
                       "%ui, body unbuffered %ui", hlcf->retry,
                       u->peer.tries,
                       (ngx_uint_t) r->request_body_no_buffering);
        return 0;
    }

    /*
     * A POST that only reads (an EWS GetFolder, an OWA FindItem) is as
     * safe to send twice as a GET; others, only when configured so.
     */

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))
        && hlcf->retry != NGX_HTTP_EXCHANGE_HEALTH_RETRY_NON_IDEMPOTENT)
    {
        ngx_http_exchange_health_request_of(r, ctx, &rq);

        if (!(r->method & NGX_HTTP_POST)
            || !ngx_http_exchange_health_reads_only(&rq))
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "exchange health: no retry of a non-idempotent "
                           "request");
            return 0;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: a POST that only reads");
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


ngx_int_t
ngx_http_exchange_health_resend(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    u_char                               buf[3 * 256];
    ngx_str_t                            uri, *path;
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

    path = ngx_http_exchange_health_path(ctx);
    uri = ngx_http_exchange_health_log_text(buf, sizeof(buf), path->data,
                                            path->len);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "exchange_health: rule \"%V\" matched the answer of "
                  "server %V to %V %V, status %ui: trying another server",
                  &a->rule, u->peer.name, &ctx->method, &uri, a->status);

    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
}


ngx_uint_t
ngx_http_exchange_health_usable(ngx_http_upstream_rr_peer_data_t *rrp,
    uintptr_t *avoided)
{
    time_t                         now;
    ngx_uint_t                     i, usable;
    ngx_http_upstream_rr_peer_t   *peer;
    ngx_http_upstream_rr_peers_t  *peers;

    /* round robin's own test of a peer, on peers not tried or avoided */

    now = ngx_time();
    usable = 0;

    ngx_http_upstream_rr_peers_rlock(rrp->peers);

    for (peers = rrp->peers; peers && !usable; peers = peers->next) {

        for (peer = peers->peer, i = 0; peer; peer = peer->next, i++) {

            if (peers == rrp->peers
                && (ngx_http_exchange_health_map_test(rrp->tried, i)
                    || (avoided
                        && ngx_http_exchange_health_map_test(avoided, i))))
            {
                continue;
            }

            if (peer->down) {
                continue;
            }

            if (peer->max_fails
                && peer->fails >= peer->max_fails
                && now - peer->checked <= peer->fail_timeout)
            {
                continue;
            }

            if (peer->max_conns && peer->conns >= peer->max_conns) {
                continue;
            }

            usable = 1;
            break;
        }
    }

    ngx_http_upstream_rr_peers_unlock(rrp->peers);

    return usable;
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The balancer is nginx's round robin (weights, backup, down, max_fails
 * and max_conns keep their meaning) that never picks a server ejected for
 * the request's protocol: ejected servers are marked as already tried
 * before round robin chooses.  It sets up the request's context; the
 * answer is judged in judge.c.
 */


static ngx_int_t ngx_http_exchange_health_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_exchange_health_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_exchange_health_mark_avoided(
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_cleanup(void *data);
static ngx_http_exchange_health_ctx_t *ngx_http_exchange_health_ctx_get(
    ngx_log_t *log);
static void ngx_http_exchange_health_ctx_put(
    ngx_http_exchange_health_ctx_t *ctx);


/*
 * Contexts of ended requests, kept by the worker for the next ones: a
 * context (with its attempts and scan state, 1.3 KB) taken from the
 * request's pool made the pool of an HTML answer take one more 4 KB
 * block, and every later allocation of the request walk past the full
 * ones (docs/performance.md).  As nginx keeps free connections.
 */
static ngx_http_exchange_health_ctx_t  *ngx_http_exchange_health_free;
static ngx_uint_t                       ngx_http_exchange_health_nfree;


ngx_int_t
ngx_http_exchange_health_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    int                                   anonymous;
    ngx_uint_t                            n;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_ctx_t       *ctx;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
    ngx_http_exchange_health_srv_conf_t  *hscf;

    u = r->upstream;
    hscf = ngx_http_conf_upstream_srv_conf(us,
                                           ngx_http_exchange_health_module);
    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    /* the cleanup first: a context must never outlive its request */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    ctx = ngx_http_exchange_health_ctx_get(r->connection->log);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /*
     * From user to nattempts included: the fields before are set below,
     * or when first asked; the attempts are zeroed by attempt()
     */

    ngx_memzero(&ctx->user, offsetof(ngx_http_exchange_health_ctx_t, attempt)
                            - offsetof(ngx_http_exchange_health_ctx_t, user));

    u->peer.data = &ctx->rrp;

    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        goto failed;
    }

    u->peer.get = ngx_http_exchange_health_get_peer;
    u->peer.free = ngx_http_exchange_health_free_peer;

    ctx->request = r;
    ctx->conf = hscf;
    ctx->lcf = hlcf;
    ctx->method = r->method_name;
    ctx->uri = r->uri;      /* its mailbox addresses masked by path() */

    n = (hscf->nprimary + hscf->nbackup + 8 * sizeof(uintptr_t) - 1)
        / (8 * sizeof(uintptr_t));

    if (n == 1) {
        ctx->avoided = &ctx->avoided_data[0];
        ctx->suspect = &ctx->avoided_data[1];

    } else {
        ctx->avoided = ngx_pcalloc(r->pool, 2 * n * sizeof(uintptr_t));
        if (ctx->avoided == NULL) {
            goto failed;
        }

        ctx->suspect = ctx->avoided + n;
    }

    /* the path's protocol, and whether it is an anonymous page: one pass */

    if (hlcf->protocol >= 0) {
        ctx->protocol = hlcf->protocol;
        anonymous = -1;

    } else {
        ctx->protocol = ngx_http_exchange_health_uri_facts(r->uri.data,
                                                           r->uri.len,
                                                           &anonymous);
    }

    ctx->slot = hscf->per_server ? 0 : ctx->protocol;

    /* Exchange's virtual directories are judged; other paths only routed */

    ctx->detect = hlcf->detect
                  && (hlcf->protocol >= 0
                      || ctx->protocol != NGX_HTTP_EXCHANGE_HEALTH_OTHER);

    /*
     * Pages Exchange renders for anyone (the logon, the errorFE page a
     * browser is sent to after a failure on any server) are routed, not
     * judged: anyone can ask for them with any cookie and any query, and
     * the server that renders them is not the one that failed.
     */

    if (ctx->detect
        && (ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_OWA
            || ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_ECP)
        && (anonymous < 0
            ? ngx_http_exchange_health_anonymous_uri(r->uri.data, r->uri.len)
            : anonymous))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: \"%V\" is an anonymous page, "
                       "not judged", &r->uri);

        ngx_http_exchange_health_who(ctx);

        ctx->detect = 0;
        ctx->signed_in = 0;
    }

    if (ctx->detect) {
        ngx_http_exchange_health_judge_init(r, ctx);
    }

    cln->handler = ngx_http_exchange_health_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_exchange_health_module);

    return NGX_OK;

failed:

    ngx_http_exchange_health_ctx_put(ctx);

    return NGX_ERROR;
}


static ngx_http_exchange_health_ctx_t *
ngx_http_exchange_health_ctx_get(ngx_log_t *log)
{
    ngx_http_exchange_health_ctx_t  *ctx;

    ctx = ngx_http_exchange_health_free;

    if (ctx == NULL) {
        return ngx_alloc(sizeof(ngx_http_exchange_health_ctx_t), log);
    }

    ngx_http_exchange_health_free = ctx->next_free;
    ngx_http_exchange_health_nfree--;

    return ctx;
}


static void
ngx_http_exchange_health_ctx_put(ngx_http_exchange_health_ctx_t *ctx)
{
    if (ngx_http_exchange_health_nfree == NGX_HTTP_EXCHANGE_HEALTH_FREE_CTX) {
        ngx_free(ctx);
        return;
    }

    ctx->next_free = ngx_http_exchange_health_free;
    ngx_http_exchange_health_free = ctx;
    ngx_http_exchange_health_nfree++;
}


static ngx_int_t
ngx_http_exchange_health_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_upstream_rr_peer_t   *peer;
    ngx_http_upstream_rr_peers_t  *peers;

    /*
     * The configuration widened for this module's retry served nginx's
     * decision to go on; every later decision is nginx's own again.
     */

    if (ctx->conf_original) {
        ctx->request->upstream->conf = ctx->conf_original;
        ctx->conf_original = NULL;
    }

    ngx_http_exchange_health_mark_avoided(ctx);

    rc = ngx_http_upstream_get_round_robin_peer(pc, &ctx->rrp);

    if (rc != NGX_OK) {
        return rc;
    }

    /* which server round robin chose, as an index: primaries first */

    peers = ctx->rrp.peers;

    for (peer = peers->peer, i = 0; peer; peer = peer->next, i++) {
        if (peer == ctx->rrp.current) {
            break;
        }
    }

    if (peers != ctx->conf->primary) {
        i += ctx->conf->nprimary;
    }

    /* a peer list changed at run time ("resolve") is not tracked */

    if (peer == NULL || i >= ctx->conf->nprimary + ctx->conf->nbackup) {
        i = NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED;
    }

    ngx_http_exchange_health_attempt(ctx, i);

    return NGX_OK;
}


void
ngx_http_exchange_health_attempt(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer)
{
    ngx_http_exchange_health_attempt_t   *a;
    ngx_http_exchange_health_upstream_t  *up;

    /* a server is tried: chosen here, or the one a binding holds */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: try %ui", peer);

    if (ctx->nattempts < NGX_HTTP_EXCHANGE_HEALTH_ATTEMPTS) {
        ctx->nattempts++;
    }

    a = &ctx->attempt[ctx->nattempts - 1];
    ngx_memzero(a, sizeof(ngx_http_exchange_health_attempt_t));
    a->peer = peer;

    ctx->scan = NULL;
    ctx->holding = 0;
    ctx->known_read = 0;

    /*
     * Only an ejected server's try can be its trial: none is, mostly
     * (counted among the primaries, read unlocked as picked reads the
     * server's state)
     */

    up = ctx->conf->sh;

    if (up == NULL || up->ejected[ctx->slot] || peer >= ctx->conf->nprimary) {
        ngx_http_exchange_health_picked(ctx, a);
    }
}


static void
ngx_http_exchange_health_mark_avoided(ngx_http_exchange_health_ctx_t *ctx)
{
    size_t                                words;
    ngx_uint_t                            i;
    ngx_http_upstream_rr_peer_data_t     *rrp;
    ngx_http_exchange_health_upstream_t  *up;

    /*
     * A first try while no server is out for the protocol: nothing was
     * marked before, and avoid would find nothing to mark (read
     * unlocked, as avoid reads it).
     */

    up = ctx->conf->sh;

    if (ctx->nattempts == 0 && !ctx->moved
        && (up == NULL || up->avoided[ctx->slot] == 0))
    {
        return;
    }

    rrp = &ctx->rrp;

    if (rrp->peers != ctx->conf->primary || rrp->peers->single
        || rrp->peers->number != ctx->conf->nprimary)
    {
        return;
    }

    words = (ctx->conf->nprimary + 8 * sizeof(uintptr_t) - 1)
            / (8 * sizeof(uintptr_t));

    /* marks of an earlier try are recomputed: ejections change */

    for (i = 0; i < words; i++) {
        rrp->tried[i] &= ~ctx->avoided[i];
        ctx->avoided[i] = 0;
        ctx->suspect[i] = 0;
    }

    if (ngx_http_exchange_health_avoid(ctx, ctx->avoided, ctx->suspect) == 0)
    {
        return;
    }

    for (i = 0; i < words; i++) {
        ctx->avoided[i] &= ~rrp->tried[i];
        ctx->suspect[i] = (ctx->suspect[i] | ctx->avoided[i]) & ~rrp->tried[i];
    }

    /*
     * A retry spares the servers seen failing lately when another is
     * left.  Never worse than no module: when every server still usable
     * is ejected, round robin chooses among them as it would without us.
     */

    if (ngx_http_exchange_health_usable(rrp, ctx->suspect)) {
        for (i = 0; i < words; i++) {
            ctx->avoided[i] = ctx->suspect[i];
        }

    } else if (!ngx_http_exchange_health_usable(rrp, ctx->avoided)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "exchange_health: only ejected servers are left");

        for (i = 0; i < words; i++) {
            ctx->avoided[i] = 0;
        }

        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: avoided mask %xi of %ui servers "
                   "(out, or failing lately on a retry)",
                   (ngx_uint_t) ctx->avoided[0], ctx->conf->nprimary);

    for (i = 0; i < words; i++) {
        rrp->tried[i] |= ctx->avoided[i];
    }
}


static void
ngx_http_exchange_health_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    if (!ngx_http_exchange_health_judge_idle(ctx, state)) {
        state = ngx_http_exchange_health_judge_free(pc, ctx, state);
    }

    ngx_http_upstream_free_round_robin_peer(pc, &ctx->rrp, state);
}


static void
ngx_http_exchange_health_cleanup(void *data)
{
    ngx_http_exchange_health_ctx_t  *ctx = data;

    /* a request that ended before its answer was judged */

    ngx_http_exchange_health_settle(ctx);

    if (ctx->scan) {
        ngx_http_exchange_health_scan_release(ctx->scan);
    }

    /*
     * The pool's last use of the context: its request is being freed,
     * and the hold's timer, whose cleanup came later, is gone already.
     */

    ngx_http_exchange_health_ctx_put(ctx);
}


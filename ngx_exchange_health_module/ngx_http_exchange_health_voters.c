
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Who may vote: a session (a cookie, an Authorization value, a bound
 * connection's sign-in) counts as a user once Exchange proved it signed
 * in; the proven sessions are kept in a keyed table in the zone.
 */


static uint32_t ngx_http_exchange_health_user(
    ngx_http_exchange_health_ctx_t *ctx);


static uint32_t
ngx_http_exchange_health_user(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * Who is asking: the OWA session, else the credentials, else the IP.
     * Any bytes a client sends, so a keyed hash: nobody can aim at
     * another's slot of the proven table.
     */

    ngx_http_exchange_health_who(ctx);

    sh = ctx->conf->shpool->data;

    return (uint32_t) ngx_http_exchange_health_siphash(&sh->secret,
                                                       ctx->user_key.data,
                                                       ctx->user_key.len);
}


void
ngx_http_exchange_health_prove(ngx_http_exchange_health_ctx_t *ctx)
{
    uint32_t                          *pair;
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * The session got an answer a mailbox server took part in: Exchange
     * signed it in.  A session has a pair of slots, the newest first: a
     * real user's proof is lost only to two others of the same pair, not
     * to one (with a slot each, 12 users collided in 6 % of starts).
     * Unlocked: each slot is one aligned word, written only when the
     * pair changes, and a write lost to a race costs one vote.
     */

    sh = ctx->conf->shpool->data;
    ctx->user = ngx_http_exchange_health_user(ctx);
    pair = ngx_http_exchange_health_proven_pair(sh, ctx->user);

    if (pair[0] != ctx->user) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "exchange health: session %08xD proven", ctx->user);

        if (pair[1] != ctx->user) {
            pair[1] = pair[0];
        }

        pair[0] = ctx->user;
    }
}


ngx_uint_t
ngx_http_exchange_health_voter(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * Whether a failure no other server confirmed may count toward an
     * ejection or a farm-wide fault.  OWA is on the internet: anyone can
     * send a made-up cookie or credentials, and each would be a user.  A
     * session votes when Exchange is known to have signed it in: it got
     * an answer a mailbox server took part in before, or this failure
     * names the mailbox server that answered (X-BEServer): the front end
     * proxies only requests it signed in.
     */

    ctx->user = ngx_http_exchange_health_user(ctx);

    /* a target computed, not reached, proves no sign-in */

    if ((a->backend.len && !a->backend_computed) || ctx->conf->any_voter) {
        return 1;
    }

    sh = ctx->conf->shpool->data;

    if (ngx_http_exchange_health_in_pair(sh, ctx->user)) {
        return 1;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: session %08xD not known signed in: "
                   "no vote", ctx->user);

    return 0;
}


ngx_uint_t
ngx_http_exchange_health_may_try(ngx_http_exchange_health_ctx_t *ctx)
{
    /*
     * Whether a request may be an ejected server's trial: one that
     * exercises what broke (signed in, in a detecting location), from a
     * session Exchange signed in before, so that made-up credentials
     * cannot take the trial and hold a healed server out.  A handshake
     * of Windows sign-in names its user only when it ends: its trial is
     * judged on the answer to the handshake (bind.c).
     */

    if (!ctx->detect || !ngx_http_exchange_health_signed_in(ctx)) {
        return 0;
    }

    return ctx->ntlm || ctx->conf->any_voter
           || ngx_http_exchange_health_proven(ctx);
}


ngx_uint_t
ngx_http_exchange_health_proven(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /* the session got an answer a mailbox server took part in before */

    if (ctx == NULL || !ngx_http_exchange_health_signed_in(ctx)) {
        return 0;
    }

    sh = ctx->conf->shpool->data;
    ctx->user = ngx_http_exchange_health_user(ctx);

    return ngx_http_exchange_health_in_pair(sh, ctx->user);
}


void
ngx_http_exchange_health_who(ngx_http_exchange_health_ctx_t *ctx)
{
    size_t               len;
    const u_char        *v;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;
#if (nginx_version < 1023000)
    ngx_uint_t           i;
    ngx_table_elt_t    **cookies;
#endif

    /*
     * Asked the first time it matters (a trial, a proof, a failure), not
     * for every request: a healthy answer never asks.  What it reads of
     * the request (its Cookie lines, Authorization, the client's address)
     * stays as it was while the request lasts, and the location's
     * session cookies are those of the location the request was
     * balanced in (ctx->lcf).
     */

    if (ctx->who_read) {
        return;
    }

    ctx->who_read = 1;
    r = ctx->request;

    /*
     * OWA and ECP sign in with a session cookie (cadata, AD FS's FedAuth,
     * OpenID Connect's: exchange_health_session_cookies), the other
     * protocols with a header; what signs a user in also tells users
     * apart.  The Cookie lines are those nginx gathered as it read the
     * request: a list from 1.23 on, an array before.
     */

#if (nginx_version >= 1023000)
    for (h = r->headers_in.cookie; h; h = h->next) {
#else
    cookies = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        h = cookies[i];
#endif

        v = ngx_http_exchange_health_session_cookie(h->value.data,
                                                    h->value.len,
                                                    ctx->lcf->sessions,
                                                    ctx->lcf->nsessions,
                                                    &len);
        if (v) {
            ctx->signed_in = 1;
            ctx->user_key.data = (u_char *) v;
            ctx->user_key.len = len;
            return;
        }
    }

    if (r->headers_in.authorization) {
        ctx->signed_in = 1;
        ctx->user_key = r->headers_in.authorization->value;
        return;
    }

    ctx->user_key = r->connection->addr_text;
}


ngx_uint_t
ngx_http_exchange_health_signed_in(ngx_http_exchange_health_ctx_t *ctx)
{
    /* whether the request has a sign-in: worked out when first asked */

    if (!ctx->who_read) {
        ngx_http_exchange_health_who(ctx);
    }

    return ctx->signed_in;
}

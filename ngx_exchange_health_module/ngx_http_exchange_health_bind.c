
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_bind.h"


/*
 * NTLM and Negotiate sign in a TCP connection, not a request: IIS sends
 * its challenge on one connection, wants the answer on the same one, and
 * then takes that connection as signed in.  Outlook (MAPI, RPC, EWS,
 * OAB, Autodiscover) lives on it.  nginx gives a kept-alive upstream
 * connection to whichever request comes next, or opens a new one for
 * each request; either way the handshake never completes.
 *
 * Once a request carries "Authorization: NTLM ..." or "Negotiate ...",
 * its upstream connection is bound to the client connection: it is never
 * given to anyone else, the client's later requests go through it, and it
 * is closed when the client connection closes.  The binding is a cleanup
 * of the client connection's pool, so it lives and dies with that
 * connection; bound connections are never in keepalive's cache.
 *
 * This layer wraps whatever the upstream's balancer is after nginx read
 * the configuration (this module's, under keepalive when configured), so
 * it sees a connection before keepalive could cache it.  A request that
 * uses its binding bypasses the balancer below: there is nothing to
 * choose.
 *
 * Anyone on the internet can send such a header, so a connection is kept
 * only for what proves a handshake: a 401 that carries a challenge
 * (pending, bounded in time and in number per client address), then the
 * answer to that challenge on the same connection, or a 2xx that carries
 * the server's own Negotiate token (Kerberos, one leg).  A bound
 * connection keeps its server's place in max_conns, and its timers are
 * those of an idle keepalive connection: nothing the client does while it
 * idles is the server's failure.
 */


/* what an answer leaves of a connection that carried a sign-in */
#define NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE       0
#define NGX_HTTP_EXCHANGE_HEALTH_BIND_PENDING    1
#define NGX_HTTP_EXCHANGE_HEALTH_BIND_SIGNED_IN  2


static ngx_int_t ngx_http_exchange_health_bind_init_peer(
    ngx_http_request_t *r, ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_exchange_health_bind_get_peer(
    ngx_peer_connection_t *pc, void *data);
static void ngx_http_exchange_health_bind_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_exchange_health_bind_set_session(
    ngx_peer_connection_t *pc, void *data);
static void ngx_http_exchange_health_bind_save_session(
    ngx_peer_connection_t *pc, void *data);
#endif
static ngx_uint_t ngx_http_exchange_health_bind_keep(
    ngx_http_exchange_health_ctx_t *ctx, ngx_peer_connection_t *pc,
    ngx_uint_t state, ngx_uint_t bypass, ngx_uint_t peer);
static ngx_uint_t ngx_http_exchange_health_bind_token(ngx_http_upstream_t *u);
static ngx_uint_t ngx_http_exchange_health_keepable(ngx_peer_connection_t *pc,
    ngx_http_upstream_t *u, ngx_uint_t state);


ngx_int_t
ngx_http_exchange_health_bind_init(ngx_conf_t *cf)
{
    ngx_uint_t                             i;
    ngx_http_exchange_health_srv_conf_t  **hscfp, *hscf;
    ngx_http_exchange_health_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_exchange_health_module);
    hscfp = hmcf->upstreams.elts;

    /*
     * Every upstream's peer.init is final by now: keepalive, when
     * configured after exchange_health, has wrapped this module's.
     */

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        hscf = hscfp[i];

        /* ntlm is set by init_upstream, which ran for every upstream */

        if (hscf->ntlm != 1 || hscf->upstream->peer.init == NULL) {
            continue;
        }

        hscf->bind_init_peer = hscf->upstream->peer.init;
        hscf->upstream->peer.init = ngx_http_exchange_health_bind_init_peer;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_bind_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    u_char                               *p;
    ngx_str_t                             user, uri;
    ngx_table_elt_t                      *auth;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_ctx_t       *ctx;
    ngx_http_exchange_health_binding_t   *b;
    ngx_http_exchange_health_srv_conf_t  *hscf;
    u_char                                ubuf[3 * 128];

    hscf = ngx_http_conf_upstream_srv_conf(us,
                                           ngx_http_exchange_health_module);

    if (hscf->bind_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);
    if (ctx == NULL || ctx->conf != hscf) {
        return NGX_OK;
    }

    u = r->upstream;
    auth = r->headers_in.authorization;

    ctx->ntlm = auth && ngx_http_exchange_health_ntlm_scheme(auth->value.data,
                                                         auth->value.len);

    /*
     * One main request at a time uses an HTTP/1.x connection (pipelined
     * ones wait their turn), so a binding is never wanted twice at once.
     * Many requests share an HTTP/2 or HTTP/3 connection, and
     * subrequests share their request's: a connection's sign-in cannot
     * be theirs.  Such requests go through unbound; NTLM over them fails
     * as it would with no module (offer HTTP/1.1 there).
     */

    if (r->http_version >= NGX_HTTP_VERSION_20 || r != r->main) {
        if (ctx->ntlm) {
            /* the decoded path: a %0A in it must not start a line */
            uri = ngx_http_exchange_health_log_text(ubuf, sizeof(ubuf),
                                                    r->uri.data, r->uri.len);

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "exchange_health_ntlm: \"%V\" over HTTP/2 or in a "
                          "subrequest cannot be bound to a connection; "
                          "offer HTTP/1.1 to Outlook", &uri);
            ctx->ntlm = 0;
        }

        return NGX_OK;
    }

    b = ngx_http_exchange_health_binding(r, hscf);

    /*
     * Neither credentials nor a binding: nothing to keep, and the
     * balancer below is left as it is, at no cost.  A 401 alone holds
     * no sign-in on its connection, so it binds nothing: the type-1
     * message that follows it starts the handshake, and the binding.
     */

    if (!ctx->ntlm && b == NULL) {
        return NGX_OK;
    }

    /* who asks, known from here on: the binding may say otherwise */
    ngx_http_exchange_health_who(ctx);

    ctx->binding = b;

    /* signing in again after a failure: away from the failing servers */
    ctx->moved = b && b->moved;

    ctx->bind_get = u->peer.get;
    ctx->bind_free = u->peer.free;
    ctx->bind_data = u->peer.data;

    u->peer.get = ngx_http_exchange_health_bind_get_peer;
    u->peer.free = ngx_http_exchange_health_bind_free_peer;
    u->peer.data = ctx;

#if (NGX_HTTP_SSL)
    ctx->bind_set_session = u->peer.set_session;
    ctx->bind_save_session = u->peer.save_session;
    u->peer.set_session = ngx_http_exchange_health_bind_set_session;
    u->peer.save_session = ngx_http_exchange_health_bind_save_session;
#endif

    /* who the request is: the NTLM user, else who signed the line in */

    if (ctx->ntlm) {
        p = ngx_pnalloc(r->pool, NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER);
        if (p == NULL) {
            return NGX_ERROR;
        }

        user.data = p;
        user.len = ngx_http_exchange_health_ntlm_user(auth->value.data,
                                        auth->value.len, p,
                                        NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER);
        if (user.len) {
            ctx->user_key = user;

        } else if (auth->value.len > NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER) {
            /*
             * A Kerberos ticket names no user.  Its last bytes (the
             * encrypted authenticator) differ on every sign-in, its
             * first are the same for everyone: the binding keeps the
             * last, and the sign-in is who they say from then on.
             */

            ctx->user_key.data = auth->value.data + auth->value.len
                                 - NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER;
            ctx->user_key.len = NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER;
        }

    } else if (b && b->signed_in && auth == NULL) {
        ctx->signed_in = 1;
        ctx->user_key = b->user;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: connection-bound auth, "
                   "ntlm:%ui bound:%p user:\"%V\"",
                   (ngx_uint_t) ctx->ntlm, b, &ctx->user_key);

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_bind_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    ngx_connection_t                    *c;
    ngx_http_exchange_health_binding_t  *b;

    b = ctx->binding;

    if (b == NULL || b->connection == NULL) {
        return ctx->bind_get(pc, ctx->bind_data);
    }

    c = b->connection;

    /*
     * The server was ejected or drained since the binding was made: its
     * connection is dropped, and the request is routed afresh.  The new
     * server answers 401, and the client signs in again there.
     */

    if (ngx_http_exchange_health_out(ctx, b->peer)
        && !(b->trial && ngx_http_exchange_health_trial_bound(ctx, b->peer)))
    {
        ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                      "exchange_health_ntlm: %V is out of service, the "
                      "client signs in again elsewhere", &b->name);

        ngx_http_exchange_health_bind_drop(b);

        if (ctx->signed_in && ctx->user_key.data == b->user.data) {
            ctx->signed_in = 0;
            ctx->user_key = ctx->request->connection->addr_text;
        }

        return ctx->bind_get(pc, ctx->bind_data);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "exchange health: bound connection %p to %V", c, &b->name);

    b->connection = NULL;
    ctx->bypass = 1;
    ctx->bound = 1;

    pc->sockaddr = &b->sockaddr.sockaddr;
    pc->socklen = b->socklen;
    pc->name = &b->name;

    c->idle = 0;
    c->sent = 0;
    c->data = NULL;
    c->log = pc->log;
    c->read->log = pc->log;
    c->write->log = pc->log;
    c->pool->log = pc->log;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    pc->connection = c;
    pc->cached = 1;

    /*
     * The answer to the challenge a trial got is the trial itself:
     * attempt() claims it anew, as for any request that meets an
     * ejected server, unless another request is its trial by now.
     */

    ngx_http_exchange_health_attempt(ctx, b->peer);
    b->trial = 0;

    return NGX_DONE;
}


static void
ngx_http_exchange_health_bind_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    ngx_uint_t                           bypass, peer, keep;
    ngx_msec_t                           timeout;
    ngx_connection_t                    *c;
    ngx_http_request_t                  *r;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_binding_t  *b;

    r = ctx->request;
    u = r->upstream;
    c = pc->connection;
    b = ctx->binding;

    bypass = ctx->bypass;
    ctx->bypass = 0;

    peer = ctx->nattempts ? ctx->attempt[ctx->nattempts - 1].peer
                          : NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED;

    if (bypass && (state & NGX_PEER_FAILED) && !ctx->retrying) {
        /*
         * A bound connection failed (reset, timed out): nginx would send
         * the request on, without credentials.  Only a failure the
         * module judged, and chose to send on, is (judge.c).
         */
        pc->tries = 0;
    }

    if (ctx->retrying && b) {
        /* the client signs in again elsewhere: not here, if it can */
        b->moved = 1;
    }

    if (!(bypass || ctx->ntlm) || c == NULL) {
        goto done;
    }

    keep = ngx_http_exchange_health_bind_keep(ctx, pc, state, bypass, peer);

    if (keep == NGX_HTTP_EXCHANGE_HEALTH_BIND_PENDING
        && (b == NULL || !b->pending)
        && ngx_http_exchange_health_bind_crowded(r, ctx->conf))
    {
        ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                      "exchange_health_ntlm: too many handshakes half done "
                      "from the client's address, its connection to %V is "
                      "not kept", pc->name);

        keep = NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE;
    }

    if (keep == NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE) {
        /*
         * Nothing to keep for the client.  A connection that carried
         * credentials or a sign-in may be signed in all the same: never
         * into keepalive's cache, nginx closes it.
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "exchange health: connection %p not kept", c);

        u->keepalive = 0;

        if (b && (bypass || b->connection == NULL)) {
            if (bypass) {
                ngx_http_exchange_health_bind_count(b, -1);
            }

            (void) ngx_http_exchange_health_bind_pending(b, 0);
            b->signed_in = 0;
        }

        goto done;
    }

    if (b == NULL) {
        b = ngx_http_exchange_health_bind_new(r, ctx->conf);
        if (b == NULL) {
            u->keepalive = 0;
            goto done;
        }

        ctx->binding = b;
    }

    if (!bypass) {
        if (b->connection) {
            /* a request that could not use the binding made another */
            ngx_http_exchange_health_bind_drop(b);
        }

        b->peer = peer;
        b->socklen = pc->socklen;
        ngx_memcpy(&b->sockaddr, pc->sockaddr, pc->socklen);
        b->name.len = ngx_min(pc->name->len, NGX_SOCKADDR_STRLEN);
        ngx_memcpy(b->name_data, pc->name->data, b->name.len);

        /* the balancer below lets its place go: the binding keeps it */
        ngx_http_exchange_health_bind_count(b, 1);
    }

    if (keep == NGX_HTTP_EXCHANGE_HEALTH_BIND_PENDING) {
        (void) ngx_http_exchange_health_bind_pending(b, 1);
        b->signed_in = 0;
        timeout = NGX_HTTP_EXCHANGE_HEALTH_HANDSHAKE_TIMEOUT;

        /* a trial of an ejected server: the answer to come is the trial */
        b->trial = ctx->trial_handshake;

    } else {
        (void) ngx_http_exchange_health_bind_pending(b, 0);
        timeout = NGX_HTTP_EXCHANGE_HEALTH_BIND_IDLE_TIMEOUT;

        if (ctx->ntlm) {
            /* the credentials signed the connection in, as this user */
            b->signed_in = 1;
            b->moved = 0;
            b->user.len = ngx_min(ctx->user_key.len,
                                  NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER);
            ngx_memcpy(b->user_data, ctx->user_key.data, b->user.len);
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "exchange health: connection %p bound to client %p, %V, "
                   "%s", c, b->client, &b->name,
                   b->pending ? "handshake half done" : "signed in");

    pc->connection = NULL;
    ngx_http_exchange_health_bind_park(b, c, timeout);

done:

    if (bypass) {
        /* the balancer below never chose it: only the answer's verdict */
        (void) ngx_http_exchange_health_judge_free(pc, ctx, state);
        return;
    }

    ctx->bind_free(pc, ctx->bind_data, state);
}


static ngx_uint_t
ngx_http_exchange_health_bind_keep(ngx_http_exchange_health_ctx_t *ctx,
    ngx_peer_connection_t *pc, ngx_uint_t state, ngx_uint_t bypass,
    ngx_uint_t peer)
{
    ngx_uint_t                           status;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_binding_t  *b;

    u = ctx->request->upstream;
    b = ctx->binding;
    status = u->headers_in.status_n;

    /* an ejected server's trial goes on: its handshake is the trial */

    if (!ngx_http_exchange_health_keepable(pc, u, state)
        || (ngx_http_exchange_health_out(ctx, peer) && !ctx->trial_handshake))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE;
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        /*
         * A challenge to credentials: the handshake goes on, here.  A
         * 401 that offers the schemes bare holds no sign-in.
         */

        return (ctx->ntlm && ngx_http_exchange_health_bind_token(u))
               ? NGX_HTTP_EXCHANGE_HEALTH_BIND_PENDING
               : NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE;
    }

    if (!ctx->ntlm) {
        /*
         * A request its connection signed in.  A handshake left half
         * done by a request without credentials ends.
         */

        return (bypass && b->signed_in)
               ? NGX_HTTP_EXCHANGE_HEALTH_BIND_SIGNED_IN
               : NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE;
    }

    /*
     * Credentials answered without a challenge: the answer to the one
     * this connection got (NTLM's type 3), or Kerberos' one leg, which
     * IIS accepts with its own token on the 2xx (mutual authentication).
     * Anything else, such as a page anyone may see, which IIS serves
     * whatever the header says, signs nothing in.
     */

    if (bypass && b->pending) {
        return NGX_HTTP_EXCHANGE_HEALTH_BIND_SIGNED_IN;
    }

    if (status >= 200 && status < 300
        && ngx_http_exchange_health_bind_token(u)
           == NGX_HTTP_EXCHANGE_HEALTH_TOKEN_NEGOTIATE)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_BIND_SIGNED_IN;
    }

    return NGX_HTTP_EXCHANGE_HEALTH_BIND_NONE;
}


static ngx_uint_t
ngx_http_exchange_health_bind_token(ngx_http_upstream_t *u)
{
    int                                token;
    ngx_table_elt_t                   *h;
    ngx_http_exchange_health_lines_t   lines;
    static ngx_str_t                   name = ngx_string("WWW-Authenticate");

    /*
     * The answer's WWW-Authenticate lines, all of them: IIS offers the
     * bare schemes on lines of their own.  Read for answers to
     * credentials only.
     */

    lines.part = NULL;

    while ((h = ngx_http_exchange_health_header_next(&u->headers_in.headers,
                                                     &name, &lines)))
    {
        token = ngx_http_exchange_health_ntlm_token(h->value.data,
                                                    h->value.len);
        if (token) {
            return token;
        }
    }

    return 0;
}


void
ngx_http_exchange_health_bind_header(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_attempt_t  *a;

    a = &ctx->attempt[ctx->nattempts - 1];

    /*
     * The trial of an ejected server met a challenge (NTLM): the answer
     * to it will be the trial, on this connection, kept for it.  Decided
     * here, before settling would let the trial go as proving nothing.
     */

    if (ctx->ntlm && a->trial
        && r->upstream->headers_in.status_n == NGX_HTTP_UNAUTHORIZED
        && ngx_http_exchange_health_bind_token(r->upstream))
    {
        ngx_http_exchange_health_trial_handshake(ctx, a);
        ctx->trial_handshake = 1;
        return;
    }

    /*
     * The answer on a bound connection whose binding ends with it (its
     * server closes it, or went out of service): the client's connection
     * ends too, and says so, so that its next request starts on a new
     * one instead of meeting a reset.  Not a trial's: it may bring the
     * server back.
     */

    if (!ctx->bound || !r->keepalive || a->trial) {
        return;
    }

    /* u->keepalive is known only once the body is read: the header's */

    if (r->upstream->headers_in.connection_close
        || ngx_http_exchange_health_out(ctx, a->peer))
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: binding ends, Connection: close");
        r->keepalive = 0;
    }
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_exchange_health_bind_set_session(ngx_peer_connection_t *pc,
    void *data)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    return ctx->bind_set_session(pc, ctx->bind_data);
}


static void
ngx_http_exchange_health_bind_save_session(ngx_peer_connection_t *pc,
    void *data)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    /* only after a handshake: never on a bound connection handed back */

    ctx->bind_save_session(pc, ctx->bind_data);
}

#endif


static ngx_uint_t
ngx_http_exchange_health_keepable(ngx_peer_connection_t *pc,
    ngx_http_upstream_t *u, ngx_uint_t state)
{
    ngx_connection_t  *c;

    /* keepalive's own test of a connection that may carry more */

    c = pc->connection;

    return !(state & NGX_PEER_FAILED)
           && !c->read->eof && !c->read->error && !c->read->timedout
           && !c->write->error && !c->write->timedout
           && u->keepalive
           && u->request_body_sent
           && !ngx_terminate && !ngx_exiting
           && ngx_handle_read_event(c->read, 0) == NGX_OK;
}

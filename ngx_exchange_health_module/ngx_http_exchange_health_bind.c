
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


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
 */


struct ngx_http_exchange_health_binding_s {
    ngx_http_exchange_health_srv_conf_t  *conf;     /* the upstream */
    ngx_connection_t                     *client;
    ngx_connection_t                     *connection;  /* idle, or NULL */

    ngx_uint_t                            peer;     /* index, or untracked */
    ngx_sockaddr_t                        sockaddr;
    socklen_t                             socklen;
    ngx_str_t                             name;
    u_char                                name_data[NGX_SOCKADDR_STRLEN];

    /* who signed the connection in: DOMAIN\user of the NTLM message */
    ngx_str_t                             user;
    u_char                                user_data[
                                          NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER];

    unsigned                              signed_in:1;
};


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
static ngx_http_exchange_health_binding_t *ngx_http_exchange_health_binding(
    ngx_http_request_t *r, ngx_http_exchange_health_srv_conf_t *conf);
static ngx_http_exchange_health_binding_t *
    ngx_http_exchange_health_bind_new(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf);
static ngx_uint_t ngx_http_exchange_health_keepable(ngx_peer_connection_t *pc,
    ngx_http_upstream_t *u, ngx_uint_t state);
static void ngx_http_exchange_health_bind_idle(ngx_event_t *ev);
static void ngx_http_exchange_health_bind_dummy(ngx_event_t *ev);
static void ngx_http_exchange_health_bind_close(ngx_connection_t *c);
static void ngx_http_exchange_health_unbind(void *data);


/* live bindings in this worker: none, and nothing is looked up */
static ngx_uint_t  ngx_http_exchange_health_nbindings;


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
    ngx_str_t                             user;
    ngx_table_elt_t                      *auth;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_ctx_t       *ctx;
    ngx_http_exchange_health_binding_t   *b;
    ngx_http_exchange_health_srv_conf_t  *hscf;

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
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "exchange_health_ntlm: \"%V\" over HTTP/2 or in a "
                          "subrequest cannot be bound to a connection; "
                          "offer HTTP/1.1 to Outlook", &r->uri);
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

    ctx->binding = b;

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

    if (ngx_http_exchange_health_out(ctx, b->peer)) {
        ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                      "exchange_health_ntlm: %V is out of service, the "
                      "client signs in again elsewhere", &b->name);

        b->connection = NULL;
        b->signed_in = 0;
        ngx_http_exchange_health_bind_close(c);

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

    ngx_http_exchange_health_attempt(ctx, b->peer);

    return NGX_DONE;
}


static void
ngx_http_exchange_health_bind_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    ngx_uint_t                           bypass, peer;
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

    if (!(bypass || ctx->ntlm) || c == NULL) {
        goto done;
    }

    if (!ngx_http_exchange_health_keepable(pc, u, state)
        || ngx_http_exchange_health_out(ctx, peer))
    {
        /*
         * The connection the client signed in on ends: so does the
         * client's, after this answer, so that it starts again on a
         * new one rather than on a server that does not know it.  And
         * never into keepalive's cache: nginx closes it.
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "exchange health: bound connection %p ends", c);

        u->keepalive = 0;
        r->keepalive = 0;

        if (b) {
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

    if (b->connection) {
        /* a request that could not use the binding made another */
        ngx_http_exchange_health_bind_close(b->connection);
        b->connection = NULL;
    }

    b->peer = peer;
    b->socklen = pc->socklen;
    ngx_memcpy(&b->sockaddr, pc->sockaddr, pc->socklen);
    b->name.len = ngx_min(pc->name->len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(b->name_data, pc->name->data, b->name.len);

    /* a 2xx to credentials: the connection is signed in, as this user */

    if (ctx->ntlm && u->headers_in.status_n / 100 == 2) {
        b->signed_in = 1;
        b->user.len = ngx_min(ctx->user_key.len,
                              NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER);
        ngx_memcpy(b->user_data, ctx->user_key.data, b->user.len);

    } else if (u->headers_in.status_n == NGX_HTTP_UNAUTHORIZED) {
        b->signed_in = 0;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "exchange health: connection %p bound to client %p, %V",
                   c, b->client, &b->name);

    b->connection = c;
    pc->connection = NULL;

    c->read->delayed = 0;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->write->handler = ngx_http_exchange_health_bind_dummy;
    c->read->handler = ngx_http_exchange_health_bind_idle;

    c->data = b;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;

    if (c->read->ready) {
        ngx_http_exchange_health_bind_idle(c->read);
    }

done:

    if (bypass) {
        /* the balancer below never chose it: only the answer's verdict */
        (void) ngx_http_exchange_health_judge_free(pc, ctx, state);
        return;
    }

    ctx->bind_free(pc, ctx->bind_data, state);
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


static ngx_http_exchange_health_binding_t *
ngx_http_exchange_health_binding(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf)
{
    ngx_pool_cleanup_t                  *cln;
    ngx_http_exchange_health_binding_t  *b;

    /* a binding is made after a first request: none before */

    if (ngx_http_exchange_health_nbindings == 0
        || r->connection->requests < 2)
    {
        return NULL;
    }

    for (cln = r->connection->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler != ngx_http_exchange_health_unbind) {
            continue;
        }

        b = cln->data;

        if (b->conf == conf) {
            return b;
        }
    }

    return NULL;
}


static ngx_http_exchange_health_binding_t *
ngx_http_exchange_health_bind_new(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf)
{
    ngx_pool_cleanup_t                  *cln;
    ngx_http_exchange_health_binding_t  *b;

    /* in the client connection's pool: it lives as long as that does */

    cln = ngx_pool_cleanup_add(r->connection->pool,
                               sizeof(ngx_http_exchange_health_binding_t));
    if (cln == NULL) {
        return NULL;
    }

    b = cln->data;
    ngx_memzero(b, sizeof(ngx_http_exchange_health_binding_t));

    b->conf = conf;
    b->client = r->connection;
    b->name.data = b->name_data;
    b->user.data = b->user_data;

    cln->handler = ngx_http_exchange_health_unbind;

    ngx_http_exchange_health_nbindings++;

    return b;
}


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


static void
ngx_http_exchange_health_bind_idle(ngx_event_t *ev)
{
    int                                  n;
    char                                 buf[1];
    ngx_connection_t                    *c;
    ngx_http_exchange_health_binding_t  *b;

    /*
     * An idle bound connection: the server closed it, sent something
     * unasked, or nginx is shutting down.  It is closed; the client's
     * next request is routed afresh and signs in again.
     */

    c = ev->data;

    if (!c->close) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            ev->ready = 0;

            if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
                return;
            }
        }
    }

    b = c->data;
    b->connection = NULL;
    b->signed_in = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "exchange health: idle bound connection %p closed", c);

    ngx_http_exchange_health_bind_close(c);
}


static void
ngx_http_exchange_health_bind_dummy(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "exchange health: bound connection write event");
}


static void
ngx_http_exchange_health_bind_close(ngx_connection_t *c)
{
#if (NGX_HTTP_SSL)

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_exchange_health_bind_close;
            return;
        }
    }

#endif

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


static void
ngx_http_exchange_health_unbind(void *data)
{
    ngx_http_exchange_health_binding_t  *b = data;

    /* the client connection closes: its upstream connection with it */

    ngx_http_exchange_health_nbindings--;

    if (b->connection) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, b->client->log, 0,
                       "exchange health: client gone, closing bound "
                       "connection %p", b->connection);

        ngx_http_exchange_health_bind_close(b->connection);
        b->connection = NULL;
    }
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_bind.h"


/*
 * A binding's life (bind.c decides when a connection is bound): it is
 * kept in the client connection's pool, found again by the client's next
 * request, parked between requests as keepalive parks a connection,
 * counted in its server's conns and, while its handshake is half done,
 * against its client's address; it closes with the client connection,
 * on its own idle timer, or when the server closes it.
 */


/* counters of half-done handshakes, by a keyed hash of the address */
#define NGX_HTTP_EXCHANGE_HEALTH_ADDRESSES       1024


static ngx_uint_t ngx_http_exchange_health_bind_address(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf);
static void ngx_http_exchange_health_bind_idle(ngx_event_t *ev);
static void ngx_http_exchange_health_bind_dummy(ngx_event_t *ev);
static void ngx_http_exchange_health_bind_close(ngx_connection_t *c);
static void ngx_http_exchange_health_unbind(void *data);


/* live bindings in this worker: none, and nothing is looked up */
static ngx_uint_t  ngx_http_exchange_health_nbindings;

/* half-done handshakes in this worker, per client address */
static uint16_t    ngx_http_exchange_health_handshakes[
                       NGX_HTTP_EXCHANGE_HEALTH_ADDRESSES];


ngx_http_exchange_health_binding_t *
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


ngx_http_exchange_health_binding_t *
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
    b->address = ngx_http_exchange_health_bind_address(r, conf);

    cln->handler = ngx_http_exchange_health_unbind;

    ngx_http_exchange_health_nbindings++;

    return b;
}


void
ngx_http_exchange_health_bind_park(ngx_http_exchange_health_binding_t *b,
    ngx_connection_t *c, ngx_msec_t timeout)
{
    /*
     * The connection waits for its client's next request, as keepalive
     * keeps one: proxy_read_timeout's timer goes, its own is the
     * handshake's or the idle binding's.
     */

    b->connection = c;

    c->read->delayed = 0;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

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

    ngx_add_timer(c->read, timeout);

    if (c->read->ready) {
        ngx_http_exchange_health_bind_idle(c->read);
    }
}


ngx_uint_t
ngx_http_exchange_health_bind_crowded(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf)
{
    /* the client's address has as many handshakes half done as it may */

    return ngx_http_exchange_health_handshakes[
               ngx_http_exchange_health_bind_address(r, conf)]
           >= NGX_HTTP_EXCHANGE_HEALTH_HANDSHAKES;
}


static ngx_uint_t
ngx_http_exchange_health_bind_address(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf)
{
    size_t                             len;
    u_char                            *p;
    struct sockaddr_in                *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6               *sin6;
#endif
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * The client's address, as far as it is one client's: an IPv4
     * address, or an IPv6 /64 (one site's, all of whose addresses a
     * client may use).  Hashed with the zone's secret: nobody can make
     * his addresses share another's counter.
     */

    switch (r->connection->sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        p = sin6->sin6_addr.s6_addr;
        len = 8;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            p += 12;
            len = 4;
        }

        break;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        p = (u_char *) &sin->sin_addr;
        len = 4;
        break;

    default:
        /* a UNIX socket: one peer, whatever it relays */
        p = NULL;
        len = 0;
        break;
    }

    sh = conf->shpool->data;

    return ngx_http_exchange_health_siphash(&sh->secret, p, len)
           % NGX_HTTP_EXCHANGE_HEALTH_ADDRESSES;
}


ngx_int_t
ngx_http_exchange_health_bind_pending(ngx_http_exchange_health_binding_t *b,
    ngx_uint_t pending)
{
    uint16_t  *n;

    /* a half-done handshake counts against its client's address */

    if (b->pending == pending) {
        return NGX_OK;
    }

    n = &ngx_http_exchange_health_handshakes[b->address];

    if (pending) {
        (*n)++;

    } else {
        (*n)--;
    }

    b->pending = pending;

    return NGX_OK;
}


void
ngx_http_exchange_health_bind_count(ngx_http_exchange_health_binding_t *b,
    ngx_int_t n)
{
    ngx_http_upstream_rr_peer_t          *peer;
    ngx_http_upstream_rr_peers_t         *peers;
    ngx_http_exchange_health_srv_conf_t  *conf;

    /*
     * A bound connection, idle or busy, is one of its server's: it keeps
     * its place in peer->conns, so that max_conns holds with bindings as
     * round robin holds it without them.
     */

    conf = b->conf;

    if (b->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED
        || (n > 0) == b->counted)
    {
        return;
    }

    peers = b->peer < conf->nprimary ? conf->primary : conf->primary->next;
    peer = conf->peers[b->peer];

    if (peers == NULL || peer == NULL) {
        return;
    }

    ngx_http_upstream_rr_peers_rlock(peers);
    ngx_http_upstream_rr_peer_lock(peers, peer);

    if (n > 0) {
        peer->conns++;

    } else {
        peer->conns--;
    }

    ngx_http_upstream_rr_peer_unlock(peers, peer);
    ngx_http_upstream_rr_peers_unlock(peers);

    b->counted = (n > 0);
}


void
ngx_http_exchange_health_bind_drop(ngx_http_exchange_health_binding_t *b)
{
    ngx_connection_t  *c;

    /* the binding's idle connection closes; the client signs in again */

    c = b->connection;

    b->connection = NULL;
    b->signed_in = 0;

    (void) ngx_http_exchange_health_bind_pending(b, 0);
    ngx_http_exchange_health_bind_count(b, -1);

    if (c) {
        ngx_http_exchange_health_bind_close(c);
    }
}


static void
ngx_http_exchange_health_bind_idle(ngx_event_t *ev)
{
    int                                  n;
    char                                 buf[1];
    ngx_connection_t                    *c;

    /*
     * An idle bound connection: the server closed it, sent something
     * unasked, it idled past its time, or nginx is shutting down.  It is
     * closed; the client's next request is routed afresh and signs in
     * again.
     */

    c = ev->data;

    if (!c->close && !ev->timedout) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            ev->ready = 0;

            if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
                return;
            }
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "exchange health: idle bound connection %p closed, "
                   "timed out: %ui", c, (ngx_uint_t) ev->timedout);

    ngx_http_exchange_health_bind_drop(c->data);
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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, b->client->log, 0,
                   "exchange health: client gone, closing bound "
                   "connection %p", b->connection);

    ngx_http_exchange_health_bind_drop(b);
}

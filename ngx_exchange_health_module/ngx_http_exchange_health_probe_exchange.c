
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The exchange every probe is made of: a connection to one server, TLS
 * with the probe's SNI (the server's certificate read on the way), a
 * request sent, the answer read into a bounded buffer, and the probe's
 * handler called with it or with why there is none.  The healthcheck.htm
 * probes and the signed-in probes' forms and Basic calls say "close" and
 * take a new connection for each exchange; NTLM signs a connection in,
 * so its handshake reads the challenge's answer whole, by its length,
 * and sends the next request on the same connection (probe_again).
 */


#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_BUFFER   2048

#define NGX_HTTP_EXCHANGE_HEALTH_STAGE_CONNECT  0
#define NGX_HTTP_EXCHANGE_HEALTH_STAGE_SEND     1
#define NGX_HTTP_EXCHANGE_HEALTH_STAGE_READ     2


static void ngx_http_exchange_health_probe_handler(ngx_event_t *ev);
static void ngx_http_exchange_health_probe_connected(
    ngx_http_exchange_health_probe_t *pr);
#if (NGX_HTTP_SSL)
static void ngx_http_exchange_health_probe_handshaked(ngx_connection_t *c);
static void ngx_http_exchange_health_probe_certificate(
    ngx_http_exchange_health_probe_t *pr, ngx_connection_t *c);
#endif
static void ngx_http_exchange_health_probe_send(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_probe_read(
    ngx_http_exchange_health_probe_t *pr);
static ngx_uint_t ngx_http_exchange_health_probe_whole(ngx_buf_t *b);


ngx_http_exchange_health_probe_t *
ngx_http_exchange_health_probe_new(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t peer, size_t size, ngx_http_exchange_health_probe_pt handler)
{
    ngx_pool_t                        *pool;
    ngx_http_exchange_health_probe_t  *pr;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    pr = ngx_pcalloc(pool, sizeof(ngx_http_exchange_health_probe_t));
    if (pr == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    pr->pool = pool;
    pr->conf = conf;
    pr->peer = peer;
    pr->handler = handler;

    pr->request = ngx_create_temp_buf(pool, size);
    pr->response = ngx_create_temp_buf(pool,
                                       NGX_HTTP_EXCHANGE_HEALTH_PROBE_BUFFER);
    if (pr->request == NULL || pr->response == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    return pr;
}


void
ngx_http_exchange_health_probe_connect(ngx_http_exchange_health_probe_t *pr)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_upstream_rr_peer_t  *rp;

    /* a new connection for each exchange: the request says "close" */

    rp = pr->conf->peers[pr->peer];

    ngx_memzero(&pr->pc, sizeof(ngx_peer_connection_t));

    pr->stage = NGX_HTTP_EXCHANGE_HEALTH_STAGE_CONNECT;
    pr->response->pos = pr->response->start;
    pr->response->last = pr->response->start;

    pr->pc.sockaddr = rp->sockaddr;
    pr->pc.socklen = rp->socklen;
    pr->pc.name = &rp->name;
    pr->pc.get = ngx_event_get_peer;
    pr->pc.log = ngx_cycle->log;
    pr->pc.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&pr->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        pr->handler(pr, "cannot connect");
        return;
    }

    c = pr->pc.connection;
    c->data = pr;
    c->pool = pr->pool;
    c->read->handler = ngx_http_exchange_health_probe_handler;
    c->write->handler = ngx_http_exchange_health_probe_handler;

    ngx_add_timer(c->write, pr->conf->probe->timeout);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_exchange_health_probe_connected(pr);
}


void
ngx_http_exchange_health_probe_again(ngx_http_exchange_health_probe_t *pr)
{
    ngx_connection_t  *c;

    /* the next request of a handshake, on the connection it signs in */

    c = pr->pc.connection;

    if (c == NULL) {
        pr->handler(pr, "the connection was closed");
        return;
    }

    pr->stage = NGX_HTTP_EXCHANGE_HEALTH_STAGE_SEND;
    pr->response->pos = pr->response->start;
    pr->response->last = pr->response->start;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ngx_add_timer(c->write, pr->conf->probe->timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "exchange health probe: again on the connection to %V",
                   pr->pc.name);

    ngx_http_exchange_health_probe_send(pr);
}


void
ngx_http_exchange_health_probe_close(ngx_http_exchange_health_probe_t *pr)
{
    ngx_connection_t  *c;

    c = pr->pc.connection;

    if (c == NULL) {
        return;
    }

    pr->pc.connection = NULL;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    ngx_close_connection(c);
}


static void
ngx_http_exchange_health_probe_handler(ngx_event_t *ev)
{
    ngx_connection_t                  *c;
    ngx_http_exchange_health_probe_t  *pr;

    c = ev->data;
    pr = c->data;

    if (ev->timedout) {
        pr->timed_out = 1;
        pr->handler(pr, "timed out");
        return;
    }

    switch (pr->stage) {

    case NGX_HTTP_EXCHANGE_HEALTH_STAGE_CONNECT:
        ngx_http_exchange_health_probe_connected(pr);
        break;

    case NGX_HTTP_EXCHANGE_HEALTH_STAGE_SEND:
        ngx_http_exchange_health_probe_send(pr);
        break;

    default: /* NGX_HTTP_EXCHANGE_HEALTH_STAGE_READ */
        ngx_http_exchange_health_probe_read(pr);
    }
}


static void
ngx_http_exchange_health_probe_connected(ngx_http_exchange_health_probe_t *pr)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = pr->pc.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        pr->handler(pr, "cannot connect");
        return;
    }

    pr->stage = NGX_HTTP_EXCHANGE_HEALTH_STAGE_SEND;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "exchange health probe: connected to %V", pr->pc.name);

#if (NGX_HTTP_SSL)

    if (pr->conf->probe->ssl) {
        if (ngx_ssl_create_connection(pr->conf->probe->ssl, c,
                                      NGX_SSL_BUFFER|NGX_SSL_CLIENT)
            != NGX_OK)
        {
            pr->handler(pr, "cannot start TLS");
            return;
        }

        /* SNI names the site: a host name, never an address */

        if (pr->conf->probe->sni.len) {
            SSL_set_tlsext_host_name(c->ssl->connection,
                                     (char *) pr->conf->probe->sni_cstr);
        }

        if (ngx_ssl_handshake(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_exchange_health_probe_handshaked;
            return;
        }

        ngx_http_exchange_health_probe_handshaked(c);
        return;
    }

#endif

    ngx_http_exchange_health_probe_send(pr);
}


#if (NGX_HTTP_SSL)

static void
ngx_http_exchange_health_probe_handshaked(ngx_connection_t *c)
{
    ngx_http_exchange_health_probe_t  *pr;

    pr = c->data;

    if (!c->ssl->handshaked) {
        pr->handler(pr, "TLS handshake failed");
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "exchange health probe: TLS done with %V", pr->pc.name);

    ngx_http_exchange_health_probe_certificate(pr, c);

    c->read->handler = ngx_http_exchange_health_probe_handler;
    c->write->handler = ngx_http_exchange_health_probe_handler;

    ngx_http_exchange_health_probe_send(pr);
}


static void
ngx_http_exchange_health_probe_certificate(
    ngx_http_exchange_health_probe_t *pr, ngx_connection_t *c)
{
    int    days, secs;
    X509  *cert;

    /* the thumbprint as Get-ExchangeCertificate shows it: SHA-1 in hex */

    if (ngx_ssl_get_subject_dn(c, pr->pool, &pr->subject) != NGX_OK
        || ngx_ssl_get_fingerprint(c, pr->pool, &pr->thumbprint) != NGX_OK)
    {
        pr->thumbprint.len = 0;
        return;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return;
    }

    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) {
        pr->not_after = ngx_time() + (time_t) days * 86400 + secs;
    }

    X509_free(cert);
}

#endif


static void
ngx_http_exchange_health_probe_send(ngx_http_exchange_health_probe_t *pr)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = pr->pc.connection;
    b = pr->request;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN
            && ngx_handle_write_event(c->write, 0) == NGX_OK)
        {
            return;
        }

        if (n == NGX_AGAIN || n == NGX_ERROR || n == 0) {
            pr->handler(pr, "cannot send");
            return;
        }

        b->pos += n;
    }

    pr->stage = NGX_HTTP_EXCHANGE_HEALTH_STAGE_READ;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "exchange health probe: sent %uz bytes to %V",
                   (size_t) (b->last - b->start), pr->pc.name);

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_add_timer(c->read, pr->conf->probe->timeout);

    ngx_http_exchange_health_probe_read(pr);
}


static void
ngx_http_exchange_health_probe_read(ngx_http_exchange_health_probe_t *pr)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = pr->pc.connection;
    b = pr->response;

    for ( ;; ) {

        /*
         * A full buffer is as much of the answer as is judged; but what
         * is left of an answer on a kept connection would be taken for
         * the next
         */

        if (b->last == b->end) {
            pr->handler(pr, pr->keep ? "the answer is over the buffer"
                                     : NULL);
            return;
        }

        /*
         * Over TLS nginx reads a reset as an end, as it reads a close,
         * and only errno tells them apart: cleared first, so a stale
         * value cannot pass for a reset.
         */

        ngx_set_socket_errno(0);

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                break;
            }

            return;
        }

        /*
         * A close with no answer is how Exchange says a component is
         * inactive; a reset or an error is a failure like any other.
         */

        if (b->last == b->pos
            && (n == NGX_ERROR
                || (n == 0 && ngx_socket_errno == NGX_ECONNRESET)))
        {
            pr->handler(pr, ngx_socket_errno == NGX_ECONNRESET
                            ? "the connection was reset"
                            : "the connection failed");
            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            pr->handler(pr, NULL);
            return;
        }

        b->last += n;

        /* a probe that judges the header alone need not wait for more */

        if (pr->head_only
            && ngx_strlcasestrn(b->pos, b->last, (u_char *) "\r\n\r\n", 4 - 1)
               != NULL)
        {
            pr->handler(pr, NULL);
            return;
        }

        /* a connection used again: the answer ends where its length says */

        if (pr->keep && ngx_http_exchange_health_probe_whole(b)) {
            pr->handler(pr, NULL);
            return;
        }
    }

    pr->handler(pr, "cannot read");
}


static ngx_uint_t
ngx_http_exchange_health_probe_whole(ngx_buf_t *b)
{
    u_char     *body, *p, *last;
    off_t       n;
    ngx_uint_t  found;

    body = ngx_strlcasestrn(b->pos, b->last, (u_char *) "\r\n\r\n", 4 - 1);

    if (body == NULL) {
        return 0;
    }

    body += 4;

    /* chunked (IIS does not chunk a 401): ends with the last chunk */

    if (ngx_strlcasestrn(b->pos, body, (u_char *) "\r\ntransfer-encoding:",
                         sizeof("\r\ntransfer-encoding:") - 2)
        != NULL)
    {
        return b->last - body >= 5
               && ngx_strncmp(b->last - 5, "0\r\n\r\n", 5) == 0;
    }

    p = ngx_strlcasestrn(b->pos, body, (u_char *) "\r\ncontent-length:",
                         sizeof("\r\ncontent-length:") - 2);

    /* without a length, the answer ends with the connection */

    if (p == NULL) {
        return 0;
    }

    p += sizeof("\r\ncontent-length:") - 1;
    last = body - 2;

    while (p < last && *p == ' ') {
        p++;
    }

    n = 0;
    found = 0;

    while (p < last && *p >= '0' && *p <= '9' && n < NGX_MAX_OFF_T_VALUE / 10)
    {
        n = n * 10 + (*p++ - '0');
        found = 1;
    }

    return found && b->last - body >= n;
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_BIND_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_BIND_H_INCLUDED_


#include "ngx_http_exchange_health.h"


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* what the binding layer (bind.c) and a binding's life (binding.c) share */


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

    ngx_uint_t                            address;  /* its handshakes' */

    unsigned                              signed_in:1;
    unsigned                              pending:1;  /* a challenge out */
    unsigned                              counted:1;  /* in peer->conns */
    unsigned                              trial:1;    /* its server's */
    unsigned                              moved:1;    /* off a failure */
};


ngx_http_exchange_health_binding_t *ngx_http_exchange_health_binding(
    ngx_http_request_t *r, ngx_http_exchange_health_srv_conf_t *conf);
ngx_http_exchange_health_binding_t *ngx_http_exchange_health_bind_new(
    ngx_http_request_t *r, ngx_http_exchange_health_srv_conf_t *conf);
void ngx_http_exchange_health_bind_park(ngx_http_exchange_health_binding_t *b,
    ngx_connection_t *c, ngx_msec_t timeout);
ngx_uint_t ngx_http_exchange_health_bind_crowded(ngx_http_request_t *r,
    ngx_http_exchange_health_srv_conf_t *conf);
ngx_int_t ngx_http_exchange_health_bind_pending(
    ngx_http_exchange_health_binding_t *b, ngx_uint_t pending);
void ngx_http_exchange_health_bind_count(
    ngx_http_exchange_health_binding_t *b, ngx_int_t n);
void ngx_http_exchange_health_bind_drop(ngx_http_exchange_health_binding_t *b);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_BIND_H_INCLUDED_ */

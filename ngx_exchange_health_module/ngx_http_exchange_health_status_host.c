
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status_writer.h"


/*
 * The Host check the status page and the admin API share: they answer
 * only a Host the server block serves, an address or localhost.  An
 * allow list alone lets a rebound name of another site read the page.
 */


ngx_int_t
ngx_http_exchange_health_status_names(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *hlcf)
{
    ngx_str_t                 *name;
    ngx_uint_t                 i;
    ngx_http_server_name_t    *sn;
    ngx_http_core_srv_conf_t  *cscf;

    /*
     * The server block's names, kept for the Host check: nginx keeps
     * them in the configuration's temporary pool, gone once it is read.
     * Regular expressions are left out: a name the Host must match
     * exactly is what the operator typed.  So is "_", the catch-all of
     * nginx's documentation: a name no client uses, where the server
     * means to have none.
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    sn = cscf->server_names.elts;

    hlcf->server_names = ngx_array_create(cf->pool,
                                          ngx_max(cscf->server_names.nelts, 1),
                                          sizeof(ngx_str_t));
    if (hlcf->server_names == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < cscf->server_names.nelts; i++) {

#if (NGX_PCRE)
        if (sn[i].regex) {
            continue;
        }
#endif

        if (sn[i].name.len == 0
            || (sn[i].name.len == 1 && sn[i].name.data[0] == '_'))
        {
            continue;
        }

        name = ngx_array_push(hlcf->server_names);
        if (name == NULL) {
            return NGX_ERROR;
        }

        name->len = sn[i].name.len;
        name->data = ngx_pstrdup(cf->pool, &sn[i].name);
        if (name->data == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_exchange_health_status_host(ngx_http_request_t *r)
{
    ngx_str_t                             host, *name;
    ngx_uint_t                            i;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
#if (NGX_HAVE_INET6)
    u_char                                addr6[16];
#endif

    /*
     * Is the Host one this server block serves?  DNS rebinding makes a
     * browser send its operator's saved credentials, from inside an
     * allow list, to a name of the attacker's that now resolves to the
     * load balancer: the Host is that name.  The page and the admin API
     * answer a name of the server's own, an address, or localhost.
     *
     * nginx's checked Host: lower case, without its port or a final dot.
     */

    host = r->headers_in.server;

    if (host.len == 0) {
        return 0;
    }

    /*
     * An address is no name to rebind: a browser sends it as the Host of
     * a page loaded from that very address.  Any address, not only the
     * one the request came to, for a node behind NAT or a virtual IP.
     */

    if (ngx_inet_addr(host.data, host.len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']'
        && ngx_inet6_addr(host.data + 1, host.len - 2, addr6) == NGX_OK)
    {
        return 1;
    }
#endif

    /* browsers resolve localhost to the loopback, never through DNS */

    if (host.len == sizeof("localhost") - 1
        && ngx_strncasecmp(host.data, (u_char *) "localhost", host.len) == 0)
    {
        return 1;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    for (i = 0; hlcf->server_names && i < hlcf->server_names->nelts; i++) {

        name = &((ngx_str_t *) hlcf->server_names->elts)[i];

        if (name->len == host.len
            && ngx_strncasecmp(name->data, host.data, host.len) == 0)
        {
            return 1;
        }

        /* "*.contoso.com": a name under it */

        if (name->len > 1 && name->data[0] == '*' && name->data[1] == '.'
            && host.len > name->len - 1
            && ngx_strncasecmp(host.data + host.len - (name->len - 1),
                               name->data + 1, name->len - 1) == 0)
        {
            return 1;
        }

        /* ".contoso.com": the name itself and any under it */

        if (name->len > 1 && name->data[0] == '.'
            && ((host.len == name->len - 1
                 && ngx_strncasecmp(host.data, name->data + 1, host.len) == 0)
                || (host.len > name->len
                    && ngx_strncasecmp(host.data + host.len - name->len,
                                       name->data, name->len) == 0)))
        {
            return 1;
        }

        /* "mail.*": the name in any domain */

        if (name->len > 1 && name->data[name->len - 1] == '*'
            && name->data[name->len - 2] == '.'
            && host.len > name->len - 1
            && ngx_strncasecmp(host.data, name->data, name->len - 1) == 0)
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_exchange_health_refuse_host(ngx_http_request_t *r)
{
    u_char                             buf[3 * 64];
    ngx_str_t                          host;
    ngx_http_exchange_health_writer_t  w;

    /*
     * 403, as the admin API answers an order with such a Host: one answer
     * for both.  Not 421 Misdirected Request, which tells a client to try
     * again on another connection (browsers do, at once): it would only
     * be refused again.
     */

    host = ngx_http_exchange_health_log_text(buf, sizeof(buf),
                                             r->headers_in.server.data,
                                             r->headers_in.server.len);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "exchange_health: status page refused: the Host is not a "
                  "name of this server (Host \"%V\")", &host);

    ngx_http_exchange_health_writer_init(&w, r->pool);

    ngx_http_exchange_health_write(&w, "the Host is not a name of this "
                                   "server: use a name in its server_name, "
                                   "its address or localhost\n");

    return ngx_http_exchange_health_send(r, NGX_HTTP_FORBIDDEN,
                                         "text/plain; charset=utf-8", &w);
}

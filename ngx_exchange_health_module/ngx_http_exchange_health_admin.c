
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status_writer.h"


/*
 * The admin API, on the status location when "admin=on": an operator
 * drains a server, puts it in maintenance, makes it ready again, or
 * clears its failure history, for one protocol or all.
 *
 *     POST /exchange-status?action=drain&server=EXCH2&protocol=owa
 *
 * Who may do it is the location's business (allow/deny, auth_basic).
 * What a page of another site can make an operator's browser send is
 * refused: an order carries X-Exchange-Health-Admin, which a cross-site
 * form cannot send and a script only after a CORS preflight nobody
 * answers; its Host is one of the server's names or an address, not a
 * name another site rebound to it (the status location's check,
 * ngx_http_exchange_health_status_host); its Origin, if any, is this
 * site.
 * Answers are JSON.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_ACTION_DRAIN        0
#define NGX_HTTP_EXCHANGE_HEALTH_ACTION_MAINTENANCE  1
#define NGX_HTTP_EXCHANGE_HEALTH_ACTION_READY        2
#define NGX_HTTP_EXCHANGE_HEALTH_ACTION_CLEAR        3


typedef struct {
    ngx_uint_t                             action;
    ngx_str_t                              upstream;
    ngx_str_t                              server;
    ngx_int_t                              protocol;     /* -1: all */
    ngx_http_exchange_health_srv_conf_t   *conf;
    ngx_uint_t                             peer;
} ngx_http_exchange_health_order_t;


static ngx_int_t ngx_http_exchange_health_admin_parse(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order, const char **error);
static ngx_int_t ngx_http_exchange_health_admin_find(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order, const char **error);
static const char *ngx_http_exchange_health_admin_refused(
    ngx_http_request_t *r);
static void ngx_http_exchange_health_admin_apply(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order);
static ngx_int_t ngx_http_exchange_health_admin_reply(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_exchange_health_order_t *order,
    const char *error);


static const char  *ngx_http_exchange_health_actions[] = {
    "drain", "maintenance", "ready", "clear", NULL
};

static ngx_str_t  ngx_http_exchange_health_origin = ngx_string("Origin");
static ngx_str_t  ngx_http_exchange_health_admin_header =
    ngx_string("X-Exchange-Health-Admin");


ngx_int_t
ngx_http_exchange_health_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    const char                        *error;
    ngx_http_exchange_health_order_t   order;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&order, sizeof(ngx_http_exchange_health_order_t));

    error = ngx_http_exchange_health_admin_refused(r);

    if (error) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "exchange_health: admin order refused: %s", error);

        return ngx_http_exchange_health_admin_reply(r, NGX_HTTP_FORBIDDEN,
                                                    NULL, error);
    }

    error = NULL;

    if (ngx_http_exchange_health_admin_parse(r, &order, &error) != NGX_OK) {
        return ngx_http_exchange_health_admin_reply(r, NGX_HTTP_BAD_REQUEST,
                                                    NULL, error);
    }

    rc = ngx_http_exchange_health_admin_find(r, &order, &error);

    if (rc != NGX_OK) {
        return ngx_http_exchange_health_admin_reply(r,
                   rc == NGX_DECLINED ? NGX_HTTP_CONFLICT : NGX_HTTP_NOT_FOUND,
                   &order, error);
    }

    ngx_http_exchange_health_admin_apply(r, &order);

    return ngx_http_exchange_health_admin_reply(r, NGX_HTTP_OK, &order, NULL);
}


static ngx_int_t
ngx_http_exchange_health_admin_parse(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order, const char **error)
{
    ngx_str_t   value;
    ngx_uint_t  i;

    static u_char  unknown[160];

    /* action=drain|maintenance|ready|clear, server=, protocol=, upstream= */

    if (ngx_http_arg(r, (u_char *) "action", 6, &value) != NGX_OK) {
        *error = "no action: use action=drain, maintenance, ready or clear";
        return NGX_ERROR;
    }

    for (i = 0; ngx_http_exchange_health_actions[i]; i++) {
        if (value.len == ngx_strlen(ngx_http_exchange_health_actions[i])
            && ngx_strncmp(value.data, ngx_http_exchange_health_actions[i],
                           value.len) == 0)
        {
            break;
        }
    }

    if (ngx_http_exchange_health_actions[i] == NULL) {
        *error = "unknown action: use drain, maintenance, ready or clear";
        return NGX_ERROR;
    }

    order->action = i;

    if (ngx_http_arg(r, (u_char *) "server", 6, &order->server) != NGX_OK
        || order->server.len == 0)
    {
        *error = "no server: use server= with its Exchange name or address";
        return NGX_ERROR;
    }

    if (ngx_http_arg(r, (u_char *) "upstream", 8, &order->upstream)
        != NGX_OK)
    {
        ngx_str_null(&order->upstream);
    }

    order->protocol = -1;

    if (ngx_http_arg(r, (u_char *) "protocol", 8, &value) == NGX_OK
        && !(value.len == 3 && ngx_strncmp(value.data, "all", 3) == 0))
    {
        order->protocol = ngx_http_exchange_health_protocol_by_name(
                                                      value.data, value.len);
        if (order->protocol == -1) {
            if (unknown[0] == '\0') {
                (void) ngx_snprintf(unknown, sizeof(unknown) - 1,
                                    "unknown protocol: use all or one of %s",
                                    ngx_http_exchange_health_protocol_names());
            }

            *error = (const char *) unknown;
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_admin_find(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order, const char **error)
{
    size_t                                  len;
    ngx_str_t                              *s;
    ngx_uint_t                              i, j, n, found, untracked;
    ngx_http_exchange_health_server_t      *srv;
    ngx_http_exchange_health_srv_conf_t   **hscfp, *hscf;
    ngx_http_exchange_health_main_conf_t   *hmcf;

    /* the server by its address, its configured name, or its Exchange name */

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_exchange_health_module);
    hscfp = hmcf->upstreams.elts;
    s = &order->server;
    found = 0;
    untracked = 0;

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        hscf = hscfp[i];

        if (hscf->sh == NULL
            || (order->upstream.len
                && (order->upstream.len != hscf->name.len
                    || ngx_strncmp(order->upstream.data, hscf->name.data,
                                   hscf->name.len) != 0)))
        {
            continue;
        }

        n = hscf->nprimary + hscf->nbackup;

        ngx_shmtx_lock(&hscf->shpool->mutex);

        for (j = 0; j < n; j++) {
            srv = hscf->servers[j];
            len = s->len;

            if (srv == NULL) {
                /* configured, but the zone had no room for it */

                if (len == hscf->addrs[j].len
                    && ngx_strncmp(s->data, hscf->addrs[j].data, len) == 0)
                {
                    untracked++;
                }

                continue;
            }

            if ((len == hscf->addrs[j].len
                 && ngx_strncmp(s->data, hscf->addrs[j].data, len) == 0)
                || (len == srv->server.len
                    && ngx_strncasecmp(s->data, srv->server.data, len) == 0)
                || (len == srv->name.len
                    && ngx_strncasecmp(s->data, srv->name.data, len) == 0))
            {
                order->conf = hscf;
                order->peer = j;
                found++;
            }
        }

        ngx_shmtx_unlock(&hscf->shpool->mutex);
    }

    if (found == 0 && untracked) {
        *error = "the server is not tracked: its exchange_health_zone is "
                 "full; make the zone bigger and reload";
        return NGX_DECLINED;
    }

    if (found == 0) {
        *error = "no such server";
        return NGX_ERROR;
    }

    if (found > 1) {
        order->conf = NULL;
        *error = "several servers go by that name: give its address, "
                 "or upstream=";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static const char *
ngx_http_exchange_health_admin_refused(ngx_http_request_t *r)
{
    size_t            len;
    u_char           *p, *last;
    const char       *scheme;
    ngx_table_elt_t  *h;

    /* a header a form cannot send, nor another site's script unasked */

    h = ngx_http_exchange_health_header(&r->headers_in.headers,
                                        &ngx_http_exchange_health_admin_header);
    if (h == NULL || h->value.len == 0) {
        return "an order needs the header X-Exchange-Health-Admin: 1";
    }

    if (r->headers_in.host == NULL
        || !ngx_http_exchange_health_status_host(r))
    {
        return "the Host is not a name of this server";
    }

    /*
     * Browsers name the page a request comes from in Origin; scripts and
     * curl send none.  When there is one, it is this very site: the same
     * scheme, host and port.
     */

    h = ngx_http_exchange_health_header(&r->headers_in.headers,
                                        &ngx_http_exchange_health_origin);
    if (h == NULL) {
        return NULL;
    }

    p = h->value.data;
    last = p + h->value.len;

#if (NGX_HTTP_SSL)
    scheme = r->connection->ssl ? "https://" : "http://";
#else
    scheme = "http://";
#endif

    len = ngx_strlen(scheme);

    if ((size_t) (last - p) < len
        || ngx_strncasecmp(p, (u_char *) scheme, len) != 0)
    {
        return "a request from another site (Origin)";
    }

    p += len;

    if ((size_t) (last - p) != r->headers_in.host->value.len
        || ngx_strncasecmp(p, r->headers_in.host->value.data, last - p) != 0)
    {
        return "a request from another site (Origin)";
    }

    return NULL;
}


static void
ngx_http_exchange_health_admin_apply(ngx_http_request_t *r,
    ngx_http_exchange_health_order_t *order)
{
    u_char                                buf[3 * 64], wbuf[3 * 64];
    ngx_str_t                             who, proto, server;
    ngx_uint_t                            p, last;
    ngx_http_exchange_health_srv_conf_t  *conf;

    conf = order->conf;

    /* with scope=server one state, the first, stands for every protocol */

    if (conf->per_server) {
        order->protocol = -1;
        p = 0;
        last = 0;

    } else if (order->protocol >= 0) {
        p = order->protocol;
        last = p;

    } else {
        p = 0;
        last = NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS - 1;
    }

    /* a slot's state changes in state.c only, one function for each */

    ngx_shmtx_lock(&conf->shpool->mutex);

    for ( /* void */ ; p <= last; p++) {

        switch (order->action) {

        case NGX_HTTP_EXCHANGE_HEALTH_ACTION_DRAIN:
            ngx_http_exchange_health_set_admin_locked(conf, p, order->peer,
                                       NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN);
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_ACTION_MAINTENANCE:
            ngx_http_exchange_health_set_admin_locked(conf, p, order->peer,
                                 NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE);
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_ACTION_READY:
            ngx_http_exchange_health_set_admin_locked(conf, p, order->peer,
                                        NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE);
            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_ACTION_CLEAR */
            ngx_http_exchange_health_clear_locked(conf, p, order->peer);
        }
    }

    ngx_shmtx_unlock(&conf->shpool->mutex);

    /* who did it, for the log: the address, and the user if one signed in */

    if (ngx_http_auth_basic_user(r) == NGX_OK) {
        who = r->headers_in.user;

    } else {
        ngx_str_null(&who);
    }

    if (order->protocol >= 0) {
        proto.data = (u_char *) ngx_http_exchange_health_protocols[
                                                      order->protocol].name;
        proto.len = ngx_strlen(proto.data);

    } else {
        ngx_str_set(&proto, "all protocols");
    }

    server = ngx_http_exchange_health_log_text(buf, sizeof(buf),
                                               order->server.data,
                                               order->server.len);
    who = ngx_http_exchange_health_log_text(wbuf, sizeof(wbuf), who.data,
                                            who.len);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "exchange_health: upstream \"%V\" server %V (%V): %s for "
                  "%V, by the admin API (from %V%s%V%s)", &conf->name,
                  &conf->addrs[order->peer], &server,
                  ngx_http_exchange_health_actions[order->action], &proto,
                  &r->connection->addr_text, who.len ? ", user \"" : "",
                  &who, who.len ? "\"" : "");
}


static ngx_int_t
ngx_http_exchange_health_admin_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_exchange_health_order_t *order, const char *error)
{
    ngx_http_exchange_health_writer_t  w;

    ngx_http_exchange_health_writer_init(&w, r->pool);

    ngx_http_exchange_health_write(&w, "{\"ok\":%s",
                                   error ? "false" : "true");

    if (error) {
        ngx_http_exchange_health_write(&w, ",\"error\":\"%s\"", error);
    }

    if (order && order->server.len) {
        ngx_http_exchange_health_write(&w, ",\"action\":\"%s\",\"server\":\"",
                            ngx_http_exchange_health_actions[order->action]);
        ngx_http_exchange_health_write_escaped(&w, order->server.data,
                                   order->server.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON);
        ngx_http_exchange_health_write(&w, "\",\"protocol\":\"%s\"",
                            order->protocol >= 0
                            ? ngx_http_exchange_health_protocols[
                                                  order->protocol].name
                            : "all");

        if (order->conf) {
            ngx_http_exchange_health_write(&w, ",\"upstream\":\"");
            ngx_http_exchange_health_write_escaped(&w, order->conf->name.data,
                                   order->conf->name.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON);
            ngx_http_exchange_health_write(&w, "\",\"address\":\"");
            ngx_http_exchange_health_write_escaped(&w,
                                   order->conf->addrs[order->peer].data,
                                   order->conf->addrs[order->peer].len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON);
            ngx_http_exchange_health_write(&w, "\"");
        }
    }

    ngx_http_exchange_health_write(&w, "}\n");

    return ngx_http_exchange_health_send(r, status, "application/json", &w);
}

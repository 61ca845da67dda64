
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * The status location, as stub_status's: the directive, then a handler
 * that checks the method and the Host, takes a snapshot of the zones and
 * hands it to the renderer of the format asked for.  An order (POST) goes
 * to the admin API when the location allows it.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML        0
#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON        1
#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS  2


static ngx_int_t ngx_http_exchange_health_status_handler(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_exchange_health_format(ngx_http_request_t *r);


static ngx_str_t  ngx_http_exchange_health_accept = ngx_string("Accept");


char *
ngx_http_exchange_health_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "admin=on") == 0) {
            hlcf->admin = 1;

        } else if (ngx_strcmp(value[1].data, "admin=off") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", use \"admin=on\" "
                               "or \"admin=off\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    hlcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_exchange_health_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_exchange_health_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_uint_t                            format;
    ngx_http_exchange_health_writer_t     w;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
    ngx_http_exchange_health_snapshot_t   snap;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    if (r->method == NGX_HTTP_POST && hlcf->admin) {
        return ngx_http_exchange_health_admin_handler(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!ngx_http_exchange_health_status_host(r)) {
        return ngx_http_exchange_health_refuse_host(r);
    }

    if (ngx_http_exchange_health_snapshot(r, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_exchange_health_writer_init(&w, r->pool);

    format = ngx_http_exchange_health_format(r);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange_health status: format %ui, %ui servers, "
                   "%ui failing", format, snap.nservers, snap.nfailing);

    switch (format) {

    case NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON:
        ngx_http_exchange_health_render_json(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                             "application/json", &w);

    case NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS:
        ngx_http_exchange_health_render_prometheus(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                 "text/plain; version=0.0.4; charset=utf-8",
                                 &w);

    default:
        ngx_http_exchange_health_render_html(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                             "text/html; charset=utf-8", &w);
    }
}


static ngx_uint_t
ngx_http_exchange_health_format(ngx_http_request_t *r)
{
    ngx_str_t         value;
    ngx_table_elt_t  *accept;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {

        if (value.len == 4 && ngx_strncmp(value.data, "json", 4) == 0) {
            return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON;
        }

        if (value.len == 10
            && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML;
    }

    accept = ngx_http_exchange_health_header(&r->headers_in.headers,
                                             &ngx_http_exchange_health_accept);

    if (accept
        && ngx_strlcasestrn(accept->value.data,
                            accept->value.data + accept->value.len,
                            (u_char *) "application/json", 16 - 1))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON;
    }

    return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML;
}

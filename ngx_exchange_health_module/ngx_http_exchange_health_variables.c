
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/* what the module made of a request, for access logs */


static ngx_int_t ngx_http_exchange_health_verdict_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_exchange_health_server_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_exchange_health_rule_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_exchange_health_protocol_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_exchange_health_set(ngx_http_variable_value_t *v,
    ngx_str_t *s);


static ngx_http_variable_t  ngx_http_exchange_health_vars[] = {

    { ngx_string("exchange_health_verdict"), NULL,
      ngx_http_exchange_health_verdict_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_server"), NULL,
      ngx_http_exchange_health_server_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_rule"), NULL,
      ngx_http_exchange_health_rule_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_protocol"), NULL,
      ngx_http_exchange_health_protocol_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_exchange_health_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_exchange_health_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_verdict_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_exchange_health_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (ctx == NULL || ctx->verdict_text.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_exchange_health_set(v, &ctx->verdict_text);

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_server_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_exchange_health_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (ctx == NULL || ctx->fe_name.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_exchange_health_set(v, &ctx->fe_name);

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_rule_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t                       i;
    ngx_http_exchange_health_ctx_t  *ctx;

    /* the first failure of the request: of the server a retry avoided */

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    for (i = 0; ctx && i < ctx->nattempts; i++) {
        if (ctx->attempt[i].rule.len) {
            ngx_http_exchange_health_set(v, &ctx->attempt[i].rule);
            return NGX_OK;
        }
    }

    v->not_found = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_protocol_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                        name;
    ngx_http_exchange_health_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    name.data = (u_char *) ngx_http_exchange_health_protocols[ctx->protocol]
                                                                      .name;
    name.len = ngx_strlen(name.data);

    ngx_http_exchange_health_set(v, &name);

    return NGX_OK;
}


static void
ngx_http_exchange_health_set(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;
}

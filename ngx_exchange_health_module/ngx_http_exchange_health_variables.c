
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/* what the module made of a request, for access logs */


#define NGX_HTTP_EXCHANGE_HEALTH_VAR_VERDICT   0
#define NGX_HTTP_EXCHANGE_HEALTH_VAR_SERVER    1
#define NGX_HTTP_EXCHANGE_HEALTH_VAR_RULE      2
#define NGX_HTTP_EXCHANGE_HEALTH_VAR_PROTOCOL  3


static ngx_int_t ngx_http_exchange_health_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_exchange_health_vars[] = {

    { ngx_string("exchange_health_verdict"), NULL,
      ngx_http_exchange_health_variable,
      NGX_HTTP_EXCHANGE_HEALTH_VAR_VERDICT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_server"), NULL,
      ngx_http_exchange_health_variable,
      NGX_HTTP_EXCHANGE_HEALTH_VAR_SERVER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_rule"), NULL,
      ngx_http_exchange_health_variable,
      NGX_HTTP_EXCHANGE_HEALTH_VAR_RULE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("exchange_health_protocol"), NULL,
      ngx_http_exchange_health_variable,
      NGX_HTTP_EXCHANGE_HEALTH_VAR_PROTOCOL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

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
ngx_http_exchange_health_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                        s;
    ngx_uint_t                       i;
    ngx_table_elt_t                 *h;
    ngx_http_exchange_health_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    ngx_str_null(&s);

    if (ctx) {
        switch (data) {

        case NGX_HTTP_EXCHANGE_HEALTH_VAR_VERDICT:
            s = ctx->verdict_text;
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_VAR_SERVER:

            /* the X-FEServer of the judged answer the client got */

            if (ctx->nattempts && r->upstream
                && ctx->attempt[ctx->nattempts - 1].verdict
                   != NGX_HTTP_EXCHANGE_HEALTH_NONE)
            {
                h = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_FESERVER);
                if (h) {
                    s.data = h->value.data;
                    s.len = ngx_min(h->value.len,
                                    NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN);
                }
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_VAR_RULE:

            /* the first failure of the request: of the server a retry left */

            for (i = 0; i < ctx->nattempts; i++) {
                if (ctx->attempt[i].rule.len) {
                    s = ctx->attempt[i].rule;
                    break;
                }
            }

            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_VAR_PROTOCOL */
            s.data = (u_char *)
                     ngx_http_exchange_health_protocols[ctx->protocol].name;
            s.len = ngx_strlen(s.data);
            break;
        }
    }

    if (s.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s.data;

    return NGX_OK;
}

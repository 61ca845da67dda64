
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The lines a change of state writes to the error log: one per change,
 * at warn, naming the upstream, the server, the protocol, the rule and
 * the request that made it, with nothing a server or a client sent able
 * to forge or colour a line.  state.c decides; this file only says.
 */


static void ngx_http_exchange_health_protocol_name(
    ngx_http_exchange_health_ctx_t *ctx, ngx_str_t *name);


void
ngx_http_exchange_health_log(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_http_exchange_health_event_t *ev)
{
    char                *action;
    u_char               dbuf[NGX_INT_T_LEN + 8], wbuf[NGX_INT_T_LEN + 8],
                         ubuf[3 * NGX_HTTP_EXCHANGE_HEALTH_URI_LEN],
                         nbuf[3 * NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN],
                         ebuf[3 * NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    ngx_str_t           *addr, proto, name, error, duration, window, uri,
                        *method, *path;
    ngx_log_t           *log;
    ngx_http_request_t  *r;

    /* an event always concerns a server nginx knows; the check is cheap */

    if (ev->change == ngx_http_exchange_health_nothing
        || a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED)
    {
        return;
    }

    r = ctx->request;
    log = r->connection->log;
    addr = &ctx->conf->addrs[a->peer];
    method = &ctx->method;
    ngx_http_exchange_health_protocol_name(ctx, &proto);

    /* what came from servers and clients cannot forge or colour a line */

    name = ngx_http_exchange_health_log_text(nbuf, sizeof(nbuf),
                                             ev->name.data, ev->name.len);
    error = ngx_http_exchange_health_log_text(ebuf, sizeof(ebuf),
                                              a->error.data, a->error.len);
    path = ngx_http_exchange_health_path(ctx);
    uri = ngx_http_exchange_health_log_text(ubuf, sizeof(ubuf),
                                            path->data, path->len);

    if (name.len == 0) {
        ngx_str_set(&name, "-");
    }

    if (error.len == 0) {
        ngx_str_set(&error, "-");
    }

    duration = ngx_http_exchange_health_duration(dbuf, ev->duration);
    window = ngx_http_exchange_health_duration(wbuf, ev->window);

    /*
     * A state change is the module's decision, taken at whatever step of
     * the upstream the request is in ("connecting to upstream" for a
     * trial, "reading response header" for an ejection): every line ends
     * the same way, with the request, not with that step.
     */

    action = log->action;
    log->action = NULL;

    switch (ev->change) {

    case ngx_http_exchange_health_ejected:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "ejected for %V for %V after %ui failures in %V: "
                      "rule \"%V\" on %V %V, status %ui, error %V",
                      &ctx->conf->name, addr, &name, &proto, &duration,
                      ev->fails, &window, &a->rule, method,
                      &uri, a->status, &error);
        break;

    case ngx_http_exchange_health_trial:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "on trial for %V with %V %V",
                      &ctx->conf->name, addr, &name, &proto,
                      method, &uri);
        break;

    case ngx_http_exchange_health_trial_failed:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "failed its trial for %V, ejected again for %V: "
                      "rule \"%V\" on %V %V, status %ui, error %V",
                      &ctx->conf->name, addr, &name, &proto, &duration,
                      &a->rule, method, &uri, a->status, &error);
        break;

    case ngx_http_exchange_health_readmitted:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "re-admitted for %V after a good answer to %V %V",
                      &ctx->conf->name, addr, &name, &proto,
                      method, &uri);
        break;

    case ngx_http_exchange_health_farm_fault:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\": farm-wide fault "
                      "for %V, not ejecting (%ui failures in %V, %ui "
                      "servers were ejected and take traffic again): "
                      "rule \"%V\" on %V %V from server %V (%V), "
                      "status %ui, error %V",
                      &ctx->conf->name, &proto, ev->fails, &window,
                      ev->ejected, &a->rule, method, &uri,
                      addr, &name, a->status, &error);
        break;

    case ngx_http_exchange_health_backend_fault:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\": requests for %V "
                      "fail on every server, all through mailbox server "
                      "%V (%ui failures in %V): that back end's fault, "
                      "no server ejected: rule \"%V\" on %V %V, "
                      "status %ui, error %V",
                      &ctx->conf->name, &proto, &name, ev->fails, &window,
                      &a->rule, method, &uri, a->status, &error);
        break;

    case ngx_http_exchange_health_farm_cleared:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "exchange_health: upstream \"%V\": farm-wide fault "
                      "for %V cleared by a good answer from server %V (%V) "
                      "to %V %V",
                      &ctx->conf->name, &proto, addr, &name,
                      method, &uri);
        break;

    default:
        break;
    }

    log->action = action;
}


ngx_str_t
ngx_http_exchange_health_duration(u_char *buf, ngx_msec_t ms)
{
    ngx_str_t  s;

    s.data = buf;

    if (ms >= 60000 && ms % 60000 == 0) {
        s.len = ngx_sprintf(buf, "%Mm", ms / 60000) - buf;

    } else if (ms % 1000 == 0) {
        s.len = ngx_sprintf(buf, "%Ms", ms / 1000) - buf;

    } else if (ms < 1000) {
        s.len = ngx_sprintf(buf, "%Mms", ms) - buf;

    } else {
        s.len = ngx_sprintf(buf, "%M.%03Ms", ms / 1000, ms % 1000) - buf;
    }

    return s;
}


ngx_str_t
ngx_http_exchange_health_log_text(u_char *buf, size_t size, u_char *data,
    size_t len)
{
    ngx_str_t  s;

    /* escaped as in URIs: spaces, control and non-ASCII bytes become %XX */

    len = ngx_min(len, size / 3);

    s.data = buf;
    s.len = (u_char *) ngx_escape_uri(buf, data, len, NGX_ESCAPE_URI) - buf;

    return s;
}


static void
ngx_http_exchange_health_protocol_name(ngx_http_exchange_health_ctx_t *ctx,
    ngx_str_t *name)
{
    /* what a log line says the state changed for */

    if (ctx->conf->per_server) {
        ngx_str_set(name, "all protocols");
        return;
    }

    name->data = (u_char *) ngx_http_exchange_health_protocols[ctx->protocol]
                                                                      .name;
    name->len = ngx_strlen(name->data);
}

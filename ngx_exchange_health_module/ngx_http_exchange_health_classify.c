
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * classify and classify_body decide; judge.c records what they decide
 * (ngx_http_exchange_health_judged), which asks describe for the facts
 * of a failure.
 */


static ngx_uint_t ngx_http_exchange_health_failure(ngx_http_request_t *r,
    ngx_http_exchange_health_rule_t *rule,
    ngx_http_exchange_health_rule_t **matched);
static ngx_uint_t ngx_http_exchange_health_headers_match(
    ngx_http_request_t *r, ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_rule_t *rule);
static ngx_uint_t ngx_http_exchange_health_proof(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_uint_t status);


ngx_uint_t
ngx_http_exchange_health_classify(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_rule_t **matched)
{
    uint64_t                              may;
    ngx_uint_t                            k, status, defer;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_rule_t     **rule;
    ngx_http_exchange_health_attempt_t   *a;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    u = r->upstream;
    hlcf = ctx->lcf;
    a = &ctx->attempt[ctx->nattempts - 1];

    status = u->headers_in.status_n;

    a->status = status;
    ctx->eligible = 0;
    ctx->fallback = NULL;
    defer = 0;

    /*
     * A trial, or the end of a farm-wide fault, needs proof that the
     * server's signed-in path works: a 2xx that a mailbox server took
     * part in.  Exchange's front end proxies to a mailbox only for a user
     * it signed in; the logon redirect a forged or expired cookie gets,
     * even from a broken server, names none.  So does the end of a
     * server's part in requests that failed on every server tried.
     * Looked at only then.
     */

    farm = ctx->conf->sh ? &ctx->conf->sh->farm[ctx->slot] : NULL;

    /*
     * The same proof makes a session a voter: looked for in sampled
     * answers (judge.c), and in the answer after another server refused
     * the session's credentials (failure).
     */

    if (a->trial
        || ctx->refused
        || (farm && (farm->fault
                     || ngx_http_exchange_health_failing(ctx->conf,
                                                         ctx->slot, a->peer)))
        || (farm && ctx->sampled && ngx_http_exchange_health_signed_in(ctx)))
    {
        a->mailbox = ngx_http_exchange_health_proof(r, ctx, a, status);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: status %ui, reached a mailbox: %ui",
                       status, (ngx_uint_t) a->mailbox);
    }

    rule = hlcf->active->elts;

    /*
     * The rules that may match this status, in their order.  A rule that
     * looks at the body cannot match an answer whose body is not read
     * (JSON, a redirect, an image): neither are its headers looked at,
     * so most healthy answers cost no header walk.
     */

    k = ngx_min(status, NGX_HTTP_EXCHANGE_HEALTH_STATUSES);

    may = ngx_http_exchange_health_scannable(r)
          ? hlcf->status_rules[k] : hlcf->status_rules_nobody[k];

    for (k = 0; may; k++, may >>= 1) {

        if (!(may & 1)
            || !ngx_http_exchange_health_headers_match(r, ctx, rule[k]))
        {
            continue;
        }

        if (rule[k]->bodies == NULL) {

            if (!defer) {
                return ngx_http_exchange_health_failure(r, rule[k], matched);
            }

            /*
             * An earlier rule for this status waits for the body: it
             * comes first, and this one decides if the body names none
             * of the markers.  A body rule for any status (the errorFE
             * page in any answer) does not hold a later rule back: that
             * one decides at once, before anything reaches the client.
             */

            ctx->fallback = rule[k];
            break;
        }

        ctx->eligible |= hlcf->rule_markers[k];
        defer |= !rule[k]->any_status;
    }

    if (ctx->eligible) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: status %ui, the body decides",
                       status);
        return NGX_HTTP_EXCHANGE_HEALTH_PENDING;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: status %ui, healthy", status);

    return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
}


ngx_uint_t
ngx_http_exchange_health_classify_body(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, int found,
    ngx_http_exchange_health_rule_t **matched)
{
    ngx_http_exchange_health_rule_t  **rule;

    if (found < 0) {
        if (ctx->fallback) {
            return ngx_http_exchange_health_failure(r, ctx->fallback,
                                                    matched);
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no marker in the body, healthy");
        return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
    }

    rule = ctx->lcf->active->elts;

    return ngx_http_exchange_health_failure(r,
                                          rule[ctx->lcf->marker_rule[found]],
                                          matched);
}


static ngx_uint_t
ngx_http_exchange_health_failure(ngx_http_request_t *r,
    ngx_http_exchange_health_rule_t *rule,
    ngx_http_exchange_health_rule_t **matched)
{
    ngx_uint_t                       code;
    ngx_http_upstream_t             *u;
    ngx_http_exchange_health_ctx_t  *ctx;

    u = r->upstream;

    /*
     * OWA sends its "can't find the page" (a stale link), bad request and
     * forbidden pages through errorFE.aspx as it sends its failures: every
     * server answers such a request the same, so it is nobody's failure
     * and no other server is asked.  The page itself comes with its 4xx
     * status: a rule for pages of any status (errorfe-page) that finds
     * it there finds the request's.
     */

    code = u->headers_in.status_n;

    if (rule->any_status && rule->bodies && code >= 400 && code < 500) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: rule \"%V\" matched a page with "
                       "status %ui: the request's, not the server's",
                       &rule->name, code);

        return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
    }

    if (u->headers_in.location) {
        code = ngx_http_exchange_health_errorfe_code(
                                        u->headers_in.location->value.data,
                                        u->headers_in.location->value.len);

        if (code >= 400 && code < 500) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "exchange health: rule \"%V\" matched an errorFE "
                           "redirect with httpCode %ui: the request's, "
                           "not the server's", &rule->name, code);

            return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
        }
    }

    /*
     * A refusal of credentials is the server's only where another
     * server accepts them.  For credentials no server has accepted yet
     * (a token just refreshed) the refusal is sent on, once, as the
     * diagnosis: it counts only if the next server's answer proves the
     * sign-in (settle.c); a second refusal is the client's to mend.
     */

    if (rule->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_PROVEN) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

        if (!ngx_http_exchange_health_proven(ctx)) {

            if (ctx->refused) {
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "exchange health: rule \"%V\" matched "
                               "credentials refused twice: the client's",
                               &rule->name);

                return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
            }

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "exchange health: rule \"%V\" matched "
                           "credentials no server accepted yet: asking "
                           "another", &rule->name);

            ctx->refused = 1;
            ctx->attempt[ctx->nattempts - 1].unproven = 1;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: rule \"%V\" matched, status %ui, "
                   "scope %ui", &rule->name, u->headers_in.status_n,
                   rule->scope);

    *matched = rule;

    return NGX_HTTP_EXCHANGE_HEALTH_FAILED;
}


void
ngx_http_exchange_health_describe(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_rule_t *rule)
{
    u_char                              *p, *last, *dot;
    size_t                               len;
    ngx_str_t                           *error;
    ngx_uint_t                           i;
    const u_char                        *be;
    ngx_table_elt_t                     *h[3];
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    a = &ctx->attempt[ctx->nattempts - 1];

    a->rule = rule->name;

    /* a proven session's refusal: the server's, as any other failure */
    a->scope = rule->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_PROVEN
               ? NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER : rule->scope;

    /*
     * The exception names the cause; it also tells one user's problem
     * (a full mailbox) from the server's.  Headers live in the upstream
     * buffer, which a retry reuses: keep a copy.
     */

    h[0] = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_OWA_ERROR);
    h[1] = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_ECP_ERROR);
    h[2] = u->headers_in.location;

    error = &a->error;
    ngx_str_null(error);

    for (i = 0; i < 3; i++) {
        if (h[i] == NULL) {
            continue;
        }

        if (ctx->lcf->user_errors
            && ngx_regex_exec(ctx->lcf->user_errors, &h[i]->value, NULL, 0)
               >= 0)
        {
            a->scope = NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER;
        }

        if (error->len) {
            continue;
        }

        p = h[i]->value.data;
        last = p + h[i]->value.len;

        if (i == 2) {
            /* owaError= of the errorFE redirect */
            p = ngx_strlcasestrn(p, last, (u_char *) "owaError=", 9 - 1);
            if (p == NULL) {
                continue;
            }

            p += 9;
            last = ngx_strlchr(p, last, '&');
            if (last == NULL) {
                last = h[i]->value.data + h[i]->value.len;
            }
        }

        error->len = ngx_min((size_t) (last - p),
                             NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN - 1);
        error->data = ngx_pnalloc(r->pool, error->len);
        if (error->data == NULL) {
            error->len = 0;
            continue;
        }

        ngx_memcpy(error->data, p, error->len);
    }

    /*
     * The mailbox server that did the work: failures of users of one
     * database follow it through every front end.  When it did not
     * answer (its back-end site down), the front end still names the
     * target it computed for the user.
     */

    ngx_str_null(&a->backend);
    a->backend_computed = 0;

    h[0] = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_BESERVER);

    if (h[0] == NULL || h[0]->value.len == 0) {
        h[0] = ngx_http_exchange_health_known(r, ctx,
                                          NGX_HTTP_EXCHANGE_HEALTH_H_BETARGET);
        a->backend_computed = 1;
    }

    if (h[0] && h[0]->value.len) {
        p = h[0]->value.data;
        last = p + ngx_min(h[0]->value.len,
                           NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN);

        /* the short name: an FQDN and a NetBIOS name are the same server */

        dot = ngx_strlchr(p, last, '.');
        last = dot ? dot : last;

    } else if (u->headers_in.location) {
        /*
         * Outbound rules that strip the headers leave the errorFE
         * redirect's query as it is: be= names the mailbox server
         * the front end proxied to.
         */

        a->backend_computed = 0;

        h[0] = u->headers_in.location;
        len = ngx_http_exchange_health_errorfe_backend(h[0]->value.data,
                                                       h[0]->value.len, &be);
        if (len == 0) {
            return;
        }

        p = (u_char *) be;
        last = p + ngx_min(len, NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN);

    } else {
        return;
    }

    a->backend.len = last - p;
    a->backend.data = ngx_pnalloc(r->pool, a->backend.len);
    if (a->backend.data == NULL) {
        a->backend.len = 0;
        return;
    }

    ngx_memcpy(a->backend.data, p, a->backend.len);
}


static ngx_uint_t
ngx_http_exchange_health_headers_match(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_rule_t *rule)
{
    ngx_uint_t                               i;
    ngx_table_elt_t                         *h;
    ngx_http_exchange_health_header_cond_t  *cond;

    if (rule->headers == NULL) {
        return 1;
    }

    cond = rule->headers->elts;

    for (i = 0; i < rule->headers->nelts; i++) {
        if (cond[i].known < 0 && cond[i].regex && !cond[i].absent) {

            /* any line of the name: WWW-Authenticate comes a line a scheme */

            if (!ngx_http_exchange_health_header_any(
                                        &r->upstream->headers_in.headers,
                                        &cond[i].name, cond[i].regex))
            {
                return 0;
            }

            continue;
        }

        h = cond[i].known >= 0
            ? ngx_http_exchange_health_known(r, ctx, cond[i].known)
            : ngx_http_exchange_health_header(&r->upstream->headers_in.headers,
                                              &cond[i].name);

        if (cond[i].absent) {
            if (h) {
                return 0;
            }

            continue;
        }

        if (h == NULL) {
            return 0;
        }

        if (cond[i].regex
            && ngx_regex_exec(cond[i].regex, &h->value, NULL, 0) < 0)
        {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_http_exchange_health_proof(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_uint_t status)
{
    time_t                              now;
    ngx_uint_t                          named;
    ngx_http_exchange_health_server_t  *srv;

    /*
     * Whether this answer shows that Exchange signed the request in: a
     * 2xx to a GET or POST with credentials (the caller asks for those),
     * not on the few paths the front end answers, or sends to a mailbox
     * server, for anyone (anonymous pages are not judged at all; open_uri
     * names the others).  A made-up or expired credential gets the logon
     * redirect, an AD FS or Entra redirect, or a 401: never a 2xx.
     */

    if (status < 200 || status >= 300
        || !(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))
        || a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED
        || ngx_http_exchange_health_open_uri(r->uri.data, r->uri.len))
    {
        return 0;
    }

    srv = ctx->conf->servers[a->peer];
    if (srv == NULL) {
        return 0;
    }

    named = ngx_http_exchange_health_known(r, ctx,
                                           NGX_HTTP_EXCHANGE_HEALTH_H_BESERVER)
            || ngx_http_exchange_health_known(r, ctx,
                                           NGX_HTTP_EXCHANGE_HEALTH_H_BETARGET);

    now = ngx_time();

    /*
     * Where the server names the back end of what it proxies, that name
     * is the proof: an answer without it came from the front end alone.
     * Where it has named none for minutes, its farm strips the headers
     * (IIS outbound rules against host-name disclosure), and the answer
     * itself is the proof.  One aligned word, written unlocked when it
     * changes.
     */

    if (named) {
        if (srv->backend_seen != now) {
            srv->backend_seen = now;
        }

        return 1;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "exchange health: a 2xx naming no back end, which the "
                   "server last named %T s ago", now - srv->backend_seen);

    return now - srv->backend_seen > NGX_HTTP_EXCHANGE_HEALTH_BACKEND_HEADERS;
}

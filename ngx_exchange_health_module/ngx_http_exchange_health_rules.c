
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Rules say which upstream responses are Exchange failures.  A rule
 * matches when the status is in its list, every header condition holds,
 * and, when it names body markers, one of them is in the scanned body.
 * The built-in rules are written in the directive's own syntax and go
 * through the same parser; configured rules with the same name replace
 * them, "off" switches one off.
 */


static char *ngx_http_exchange_health_parse_rule(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *args, ngx_uint_t n);
static char *ngx_http_exchange_health_parse_status(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *list);
static char *ngx_http_exchange_health_parse_header(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *cond);
static ngx_regex_t *ngx_http_exchange_health_regex(ngx_conf_t *cf,
    ngx_str_t *pattern, ngx_uint_t caseless);
static ngx_array_t *ngx_http_exchange_health_defaults(ngx_conf_t *cf);
static char *ngx_http_exchange_health_compile(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *conf);
static ngx_uint_t ngx_http_exchange_health_headers_match(
    ngx_http_request_t *r, ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_rule_t *rule);
static ngx_uint_t ngx_http_exchange_health_proof(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_uint_t status);
static ngx_uint_t ngx_http_exchange_health_scannable(ngx_http_request_t *r);
static ngx_uint_t ngx_http_exchange_health_header_any(ngx_list_t *headers,
    ngx_str_t *name, ngx_regex_t *regex);
static ngx_uint_t ngx_http_exchange_health_failure(ngx_http_request_t *r,
    ngx_http_exchange_health_rule_t *rule,
    ngx_http_exchange_health_rule_t **matched);


#define ngx_http_exchange_health_status_set(rule, s)                         \
    ((rule)->status[(s) / 64] |= (uint64_t) 1 << ((s) % 64))

#define ngx_http_exchange_health_status_in(rule, s)                          \
    ((rule)->any_status                                                      \
     || ((s) < 640 && ((rule)->status[(s) / 64] >> ((s) % 64) & 1)))


/* a location's rules are the bits of a word (status_rules) */
typedef char  ngx_http_exchange_health_rules_fit_a_word[
    NGX_HTTP_EXCHANGE_HEALTH_RULES <= 64 ? 1 : -1];


#define ngx_http_exchange_health_arg(s)  { sizeof(s) - 1, (u_char *) s }

static ngx_str_t  ngx_http_exchange_health_default_rules[][6] = {

    /* how OWA usually delivers "Something went wrong" */
    { ngx_http_exchange_health_arg("errorfe-redirect"),
      ngx_http_exchange_health_arg("status=301,302,303,307"),
      ngx_http_exchange_health_arg("header=Location~*/auth/errorFE\\.aspx"),
      ngx_null_string },

    /*
     * The errorFE page itself, in any language: it names itself in a
     * comment a few hundred bytes in, as every OWA page does, so a page
     * that names itself otherwise is cleared there, and any other after
     * its first 4 KB.  Its "More details" block comes some 21 KB in and
     * is looked for only in answers that name an OWA error.
     */
    { ngx_http_exchange_health_arg("errorfe-page"),
      ngx_http_exchange_health_arg("body=ASP.auth_errorfe_aspx"),
      ngx_http_exchange_health_arg("scan=4k"),
      ngx_http_exchange_health_arg("after=<!-- OwaPage = "),
      ngx_null_string },

    { ngx_http_exchange_health_arg("errorfe-details"),
      ngx_http_exchange_health_arg("header=X-OWA-Error"),
      ngx_http_exchange_health_arg("body=id=\"diagnosticDiv\""),
      ngx_null_string },

    /* ECP web services, named before the 500 they also are */
    { ngx_http_exchange_health_arg("ecp-json"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=jsonerror~*^true$"),
      ngx_null_string },

    { ngx_http_exchange_health_arg("ecp-error"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=X-ECP-ERROR"),
      ngx_null_string },

    /*
     * EWS answers every SOAP fault with a 500, its ResponseCode first in
     * faultcode.  ErrorInternalServerError and its transient twin are
     * the server's: EWS ran and failed for no cause of the request's.
     * The others are a request it cannot parse (ErrorSchemaValidation),
     * a user it throttles (ErrorServerBusy), an item that is not there:
     * the request's or the user's, named so before fe500, which they also
     * are.  The body decides between the two, within its first bytes.
     */
    { ngx_http_exchange_health_arg("ews-server-fault"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=Content-Type~*^text/xml"),
      ngx_http_exchange_health_arg("body=ErrorInternalServerError"),
      ngx_http_exchange_health_arg("body=ErrorInternalServerTransientError"),
      ngx_null_string },

    { ngx_http_exchange_health_arg("soap-fault"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=Content-Type~*^text/xml"),
      ngx_http_exchange_health_arg("scope=user"),
      ngx_null_string },

    /*
     * OAuth (modern authentication: Outlook, EWS, ActiveSync) refuses
     * tokens with x-ms-diagnostics naming why.  Most refusals are the
     * client's (an expired token, refreshed at once) or the whole
     * organization's (stale auth metadata); 2000007 (internal error)
     * and 2000009 (a certificate the server cannot find) are the
     * server's own, and only for a token another server accepted.
     */
    { ngx_http_exchange_health_arg("bearer-rejected"),
      ngx_http_exchange_health_arg("status=401,403,500"),
      ngx_http_exchange_health_arg("header=x-ms-diagnostics~^200000[79]"),
      ngx_http_exchange_health_arg("scope=proven"),
      ngx_null_string },

    /* OWA service calls and most front-end failures */
    { ngx_http_exchange_health_arg("fe500"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=X-FEServer"),
      ngx_null_string },

    /* an ASP.NET application that fails to start, e.g. after an update */
    { ngx_http_exchange_health_arg("aspnet-error"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("body=Server Error in '/"),
      ngx_null_string },

    /*
     * A 500 of fe500's where outbound rules strip X-FEServer: Exchange's
     * HttpProxy gives every answer it sends a request-id, which IIS's
     * own pages (iis-500 below) and a gateway's have not
     */
    { ngx_http_exchange_health_arg("exchange-500"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("header=request-id"),
      ngx_null_string },

    /*
     * HTTP.SYS answers for an application pool that is stopped or whose
     * queue is full: no Exchange code ran, so no X-FEServer
     */
    { ngx_http_exchange_health_arg("httpsys-503"),
      ngx_http_exchange_health_arg("status=503"),
      ngx_http_exchange_health_arg("header=Server~^Microsoft-HTTPAPI/"),
      ngx_null_string },

    /*
     * A gateway between nginx and the server (a firewall, a load
     * balancer per server) that got no answer or a bad one from it:
     * that path to the server fails, as the server would.  Exchange
     * names itself in what it sends, ActiveSync's own 502 ("the
     * specified server could not be found") among them: not a gateway's.
     */
    { ngx_http_exchange_health_arg("gateway"),
      ngx_http_exchange_health_arg("status=502,504"),
      ngx_http_exchange_health_arg("header=!X-FEServer"),
      ngx_http_exchange_health_arg("header=!request-id"),
      ngx_null_string },

    /*
     * IIS's own 500 page, e.g. 500.19 for a broken web.config after an
     * update: the custom page remote clients get, or the detailed one
     */
    { ngx_http_exchange_health_arg("iis-500"),
      ngx_http_exchange_health_arg("status=500"),
      ngx_http_exchange_health_arg("body=500 - Internal server error."),
      ngx_http_exchange_health_arg("body=HTTP Error 500."),
      ngx_null_string }
};


/* exceptions that belong to one user or one mailbox, not to a server */
static ngx_str_t  ngx_http_exchange_health_default_user_errors =
    ngx_string("(QuotaExceeded|UserHasNoMailbox|MailboxInTransit"
               "|MailboxOffline|AccountDisabled|WrongServer|OverBudget"
               "|ObjectNotFound|MailboxCrossSiteFailover)Exception");


/* signed-in answers seen by this worker, for sampling the proof */
static ngx_uint_t  ngx_http_exchange_health_samples;


/* by NGX_HTTP_EXCHANGE_HEALTH_H_*; lowercase, as in h->lowcase_key */
static ngx_str_t  ngx_http_exchange_health_known_names[] = {
    ngx_string("x-feserver"),
    ngx_string("x-beserver"),
    ngx_string("x-owa-error"),
    ngx_string("x-ecp-error"),
    ngx_string("x-calculatedbetarget"),
    ngx_string("content-encoding")
};

/* their hashes as nginx computes a header's (h->hash), made by defaults() */
static ngx_uint_t  ngx_http_exchange_health_known_hash[
                                              NGX_HTTP_EXCHANGE_HEALTH_H_N];


char *
ngx_http_exchange_health_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t                        *value;
    ngx_uint_t                        i;
    ngx_http_exchange_health_rule_t  *rule;

    value = cf->args->elts;

    if (hlcf->rules == NULL) {
        hlcf->rules = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_http_exchange_health_rule_t));
        if (hlcf->rules == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rule = hlcf->rules->elts;

    for (i = 0; i < hlcf->rules->nelts; i++) {
        if (rule[i].name.len == value[1].len
            && ngx_strncmp(rule[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate rule \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    rule = ngx_array_push(hlcf->rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_exchange_health_parse_rule(cf, rule, &value[1],
                                               cf->args->nelts - 1);
}


static char *
ngx_http_exchange_health_parse_rule(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *args, ngx_uint_t n)
{
    char        *rv;
    ssize_t      size;
    ngx_str_t   *body, s;
    ngx_uint_t   i;

    ngx_memzero(rule, sizeof(ngx_http_exchange_health_rule_t));

    rule->name = args[0];
    rule->file = cf->conf_file->file.name;
    rule->line = cf->conf_file->line;
    rule->scope = NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER;
    rule->any_status = 1;

    if (rule->name.len == 0
        || rule->name.len >= NGX_HTTP_EXCHANGE_HEALTH_RULE_LEN)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rule name \"%V\" must be 1 to %d characters",
                           &rule->name, NGX_HTTP_EXCHANGE_HEALTH_RULE_LEN - 1);
        return NGX_CONF_ERROR;
    }

    if (n == 2 && ngx_strcmp(args[1].data, "off") == 0) {
        rule->off = 1;
        return NGX_CONF_OK;
    }

    for (i = 1; i < n; i++) {

        if (ngx_strncmp(args[i].data, "status=", 7) == 0) {
            s.data = args[i].data + 7;
            s.len = args[i].len - 7;

            rv = ngx_http_exchange_health_parse_status(cf, rule, &s);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_strncmp(args[i].data, "header=", 7) == 0) {
            s.data = args[i].data + 7;
            s.len = args[i].len - 7;

            rv = ngx_http_exchange_health_parse_header(cf, rule, &s);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_strncmp(args[i].data, "body=", 5) == 0) {
            s.data = args[i].data + 5;
            s.len = args[i].len - 5;

            if (s.len == 0 || s.len > NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "body marker \"%V\" must be 1 to %d bytes",
                                   &s, NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN);
                return NGX_CONF_ERROR;
            }

            if (rule->bodies == NULL) {
                rule->bodies = ngx_array_create(cf->pool, 2,
                                                sizeof(ngx_str_t));
                if (rule->bodies == NULL) {
                    return NGX_CONF_ERROR;
                }
            }

            body = ngx_array_push(rule->bodies);
            if (body == NULL) {
                return NGX_CONF_ERROR;
            }

            *body = s;
            continue;
        }

        if (ngx_strncmp(args[i].data, "after=", 6) == 0) {
            rule->after.data = args[i].data + 6;
            rule->after.len = args[i].len - 6;

            if (rule->after.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "empty \"after=\" in rule \"%V\"",
                                   &rule->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(args[i].data, "scan=", 5) == 0) {
            s.data = args[i].data + 5;
            s.len = args[i].len - 5;

            size = ngx_parse_size(&s);

            if (size <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid size in \"%V\" of rule \"%V\"",
                                   &args[i], &rule->name);
                return NGX_CONF_ERROR;
            }

            rule->scan = size;
            continue;
        }

        if (ngx_strcmp(args[i].data, "scope=server") == 0) {
            rule->scope = NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER;
            continue;
        }

        if (ngx_strcmp(args[i].data, "scope=proven") == 0) {
            rule->scope = NGX_HTTP_EXCHANGE_HEALTH_SCOPE_PROVEN;
            continue;
        }

        if (ngx_strcmp(args[i].data, "scope=user") == 0) {
            rule->scope = NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in rule \"%V\", use "
                           "\"status=\", \"header=\", \"body=\", "
                           "\"after=\", \"scan=\", \"scope=\" or "
                           "\"off\"",
                           &args[i], &rule->name);
        return NGX_CONF_ERROR;
    }

    if (rule->after.len && rule->bodies == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rule \"%V\" has \"after=\" but no \"body=\" "
                           "marker to look for", &rule->name);
        return NGX_CONF_ERROR;
    }

    if (rule->scan && rule->bodies == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rule \"%V\" has \"scan=\" but no \"body=\" "
                           "marker to look for", &rule->name);
        return NGX_CONF_ERROR;
    }

    if (rule->any_status && rule->headers == NULL && rule->bodies == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rule \"%V\" has no condition: it would match "
                           "every response", &rule->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_exchange_health_parse_status(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *list)
{
    u_char      *p, *last, *comma;
    ngx_int_t    code;
    ngx_uint_t   s;

    /* "500", "5xx", "301,302,303" */

    rule->any_status = 0;

    p = list->data;
    last = p + list->len;

    do {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (comma - p == 3 && p[0] >= '1' && p[0] <= '5'
            && (p[1] | 0x20) == 'x' && (p[2] | 0x20) == 'x')
        {
            for (s = (p[0] - '0') * 100; s < (ngx_uint_t) (p[0] - '0' + 1)
                                              * 100; s++)
            {
                ngx_http_exchange_health_status_set(rule, s);
            }

        } else {
            code = ngx_atoi(p, comma - p);

            if (code < 100 || code > 599) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid status \"%*s\" in rule \"%V\", "
                                   "use a code from 100 to 599 or \"5xx\"",
                                   comma - p, p, &rule->name);
                return NGX_CONF_ERROR;
            }

            ngx_http_exchange_health_status_set(rule, (ngx_uint_t) code);
        }

        p = comma + 1;

    } while (comma < last);

    return NGX_CONF_OK;
}


static char *
ngx_http_exchange_health_parse_header(ngx_conf_t *cf,
    ngx_http_exchange_health_rule_t *rule, ngx_str_t *cond)
{
    u_char                                  *tilde;
    ngx_str_t                                pattern;
    ngx_uint_t                               i, caseless;
    ngx_http_exchange_health_header_cond_t  *h;

    /* "Name", "Name~regex", "Name~*regex", "!Name" */

    if (rule->headers == NULL) {
        rule->headers = ngx_array_create(cf->pool, 2,
                              sizeof(ngx_http_exchange_health_header_cond_t));
        if (rule->headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    h = ngx_array_push(rule->headers);
    if (h == NULL) {
        return NGX_CONF_ERROR;
    }

    tilde = ngx_strlchr(cond->data, cond->data + cond->len, '~');

    h->name.data = cond->data;
    h->name.len = tilde ? (size_t) (tilde - cond->data) : cond->len;
    h->regex = NULL;
    h->known = -1;
    h->absent = 0;

    if (h->name.len && h->name.data[0] == '!') {
        if (tilde) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"header=%V\" of rule \"%V\": an absent "
                               "header has no value to match", cond,
                               &rule->name);
            return NGX_CONF_ERROR;
        }

        h->absent = 1;
        h->name.data++;
        h->name.len--;
    }

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_H_N; i++) {
        if (h->name.len == ngx_http_exchange_health_known_names[i].len
            && ngx_strncasecmp(h->name.data,
                               ngx_http_exchange_health_known_names[i].data,
                               h->name.len) == 0)
        {
            h->known = i;
        }
    }

    if (h->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no header name in \"header=%V\" of rule \"%V\"",
                           cond, &rule->name);
        return NGX_CONF_ERROR;
    }

    if (tilde == NULL) {
        return NGX_CONF_OK;
    }

    pattern.data = tilde + 1;
    pattern.len = cond->data + cond->len - pattern.data;
    caseless = 0;

    if (pattern.len && pattern.data[0] == '*') {
        pattern.data++;
        pattern.len--;
        caseless = 1;
    }

    if (pattern.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty regex in \"header=%V\" of rule \"%V\"",
                           cond, &rule->name);
        return NGX_CONF_ERROR;
    }

    h->regex = ngx_http_exchange_health_regex(cf, &pattern, caseless);
    if (h->regex == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_regex_t *
ngx_http_exchange_health_regex(ngx_conf_t *cf, ngx_str_t *pattern,
    ngx_uint_t caseless)
{
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = *pattern;
    rc.pool = cf->pool;
    rc.options = caseless ? NGX_REGEX_CASELESS : 0;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NULL;
    }

    return rc.regex;
}


char *
ngx_http_exchange_health_user_errors(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->user_errors != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        hlcf->user_errors = NULL;
        return NGX_CONF_OK;
    }

    hlcf->user_errors = ngx_http_exchange_health_regex(cf, &value[1], 1);
    if (hlcf->user_errors == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_exchange_health_merge_rules(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *prev,
    ngx_http_exchange_health_loc_conf_t *conf)
{
    ngx_uint_t                         i, j;
    ngx_array_t                       *active;
    ngx_http_exchange_health_rule_t   *rule, **r, **slot;

    if (prev->user_errors == NGX_CONF_UNSET_PTR) {
        prev->user_errors = ngx_http_exchange_health_regex(cf,
                                &ngx_http_exchange_health_default_user_errors,
                                1);
        if (prev->user_errors == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_ptr_value(conf->user_errors, prev->user_errors, NULL);

    /* the outermost level starts from the built-in rules */

    if (prev->active == NULL) {
        prev->active = ngx_http_exchange_health_defaults(cf);
        if (prev->active == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->active = NULL;

        if (ngx_http_exchange_health_merge_rules(cf, prev, prev)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (conf == prev) {
        /* the outermost level merged with itself: its own rules on top */

    } else if (conf->rules == NULL) {
        conf->active = prev->active;
        conf->markers = prev->markers;
        conf->marker_rule = prev->marker_rule;
        conf->rule_markers = prev->rule_markers;
        conf->status_rules = prev->status_rules;
        conf->status_rules_nobody = prev->status_rules_nobody;

        return NGX_CONF_OK;
    }

    active = ngx_array_create(cf->pool, prev->active->nelts + 4,
                              sizeof(ngx_http_exchange_health_rule_t *));
    if (active == NULL) {
        return NGX_CONF_ERROR;
    }

    r = prev->active->elts;

    for (i = 0; i < prev->active->nelts; i++) {
        slot = ngx_array_push(active);
        if (slot == NULL) {
            return NGX_CONF_ERROR;
        }

        *slot = r[i];
    }

    rule = conf->rules ? conf->rules->elts : NULL;

    for (i = 0; conf->rules && i < conf->rules->nelts; i++) {
        slot = active->elts;

        for (j = 0; j < active->nelts; j++) {
            if (slot[j]->name.len == rule[i].name.len
                && ngx_strncmp(slot[j]->name.data, rule[i].name.data,
                               rule[i].name.len) == 0)
            {
                break;
            }
        }

        if (j == active->nelts) {
            if (rule[i].off) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "rule \"%V\" to switch off is not defined "
                              "in %V:%ui", &rule[i].name, &rule[i].file,
                              rule[i].line);
                return NGX_CONF_ERROR;
            }

            slot = ngx_array_push(active);
            if (slot == NULL) {
                return NGX_CONF_ERROR;
            }

            j = active->nelts - 1;
            slot = active->elts;
        }

        slot[j] = &rule[i];
    }

    if (active->nelts > NGX_HTTP_EXCHANGE_HEALTH_RULES) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "too many exchange_health rules, at most %d, "
                      "in %V:%ui", NGX_HTTP_EXCHANGE_HEALTH_RULES,
                      &rule[i - 1].file, rule[i - 1].line);
        return NGX_CONF_ERROR;
    }

    conf->active = active;

    return ngx_http_exchange_health_compile(cf, conf);
}


static ngx_array_t *
ngx_http_exchange_health_defaults(ngx_conf_t *cf)
{
    ngx_uint_t                         i, n, nargs;
    ngx_array_t                       *active;
    ngx_http_exchange_health_rule_t   *rule, **slot;

    /* known()'s names hashed as the proxy module hashes a header's */

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_H_N; i++) {
        ngx_http_exchange_health_known_hash[i] = ngx_hash_key(
                               ngx_http_exchange_health_known_names[i].data,
                               ngx_http_exchange_health_known_names[i].len);
    }

    n = sizeof(ngx_http_exchange_health_default_rules)
        / sizeof(ngx_http_exchange_health_default_rules[0]);

    active = ngx_array_create(cf->pool, n,
                              sizeof(ngx_http_exchange_health_rule_t *));
    if (active == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        rule = ngx_palloc(cf->pool, sizeof(ngx_http_exchange_health_rule_t));
        slot = ngx_array_push(active);

        if (rule == NULL || slot == NULL) {
            return NULL;
        }

        for (nargs = 0;
             ngx_http_exchange_health_default_rules[i][nargs].len;
             nargs++)
        {
            /* void */
        }

        if (ngx_http_exchange_health_parse_rule(cf, rule,
                                    ngx_http_exchange_health_default_rules[i],
                                    nargs)
            != NGX_CONF_OK)
        {
            return NULL;
        }

        *slot = rule;
    }

    return active;
}


static char *
ngx_http_exchange_health_compile(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *conf)
{
    int                                i;
    ngx_str_t                         *body;
    ngx_uint_t                         k, j;
    ngx_http_exchange_health_rule_t  **rule;

    /* one marker set per rule list; the scanner reports a marker index */

    conf->markers = ngx_pcalloc(cf->pool,
                                sizeof(ngx_http_exchange_health_markers_t));
    conf->marker_rule = ngx_pcalloc(cf->pool,
                                    NGX_HTTP_EXCHANGE_HEALTH_MARKERS);
    conf->rule_markers = ngx_pcalloc(cf->pool,
                                     conf->active->nelts * sizeof(uint32_t));
    conf->status_rules = ngx_pcalloc(cf->pool, 2 * 641 * sizeof(uint64_t));
    if (conf->markers == NULL || conf->marker_rule == NULL
        || conf->status_rules == NULL
        || (conf->rule_markers == NULL && conf->active->nelts))
    {
        return NGX_CONF_ERROR;
    }

    conf->status_rules_nobody = conf->status_rules + 641;

    rule = conf->active->elts;

    /*
     * A rule is a bit of a word (NGX_HTTP_EXCHANGE_HEALTH_RULES at most,
     * merge_rules checks): classify finds the few a status wants.
     */

    for (k = 0; k < conf->active->nelts; k++) {
        if (rule[k]->off) {
            continue;
        }

        for (j = 0; j <= 640; j++) {
            if (ngx_http_exchange_health_status_in(rule[k], j)) {
                conf->status_rules[j] |= (uint64_t) 1 << k;

                if (rule[k]->bodies == NULL) {
                    conf->status_rules_nobody[j] |= (uint64_t) 1 << k;
                }
            }
        }
    }

    for (k = 0; k < conf->active->nelts; k++) {
        if (rule[k]->off || rule[k]->bodies == NULL) {
            continue;
        }

        body = rule[k]->bodies->elts;

        for (j = 0; j < rule[k]->bodies->nelts; j++) {
            i = ngx_http_exchange_health_marker_add(conf->markers,
                                                    body[j].data, body[j].len,
                                                    rule[k]->scan);
            if (i < 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "too many body markers, at most %d, in %V:%ui",
                              NGX_HTTP_EXCHANGE_HEALTH_MARKERS,
                              &rule[k]->file, rule[k]->line);
                return NGX_CONF_ERROR;
            }

            conf->marker_rule[i] = (u_char) k;
            conf->rule_markers[k] |= (uint32_t) 1 << i;

            if (rule[k]->after.len
                && ngx_http_exchange_health_marker_prefix(conf->markers, i,
                                                  rule[k]->after.data,
                                                  rule[k]->after.len) != 0)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"after=%V\" and \"body=%V\" of rule "
                              "\"%V\" are over %d bytes together, in %V:%ui",
                              &rule[k]->after, &body[j], &rule[k]->name,
                              NGX_HTTP_EXCHANGE_HEALTH_MARKER_LEN,
                              &rule[k]->file, rule[k]->line);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


/*
 * classify and classify_body decide; judge.c records what they decide
 * (ngx_http_exchange_health_judged), which asks describe for the facts
 * of a failure.
 */

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
     * The same proof makes a session a voter (state.c): looked for in the
     * answers sampled, the first of a client connection, the one that
     * signs a connection in (NTLM's type 3 comes second) and one in 16
     * others, so that a healthy answer mostly costs no header walk.  The
     * server's name is learnt from them too (judge.c).
     */

    ctx->sampled = r->connection->requests == 1
                   || ctx->ntlm
                   || (++ngx_http_exchange_health_samples & 15) == 0;

    if (a->trial
        || (farm && (farm->fault
                     || ngx_http_exchange_health_failing(ctx->conf,
                                                         ctx->slot, a->peer)))
        || (farm && ctx->signed_in && ctx->sampled))
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

    k = ngx_min(status, 640);

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
    ngx_uint_t            code;
    ngx_http_upstream_t  *u;

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
     * server accepted them: otherwise it is the client's to mend, and
     * nobody's failure.
     */

    if (rule->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_PROVEN
        && !ngx_http_exchange_health_proven(
                  ngx_http_get_module_ctx(r, ngx_http_exchange_health_module)))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: rule \"%V\" matched credentials "
                       "no server accepted yet: the client's",
                       &rule->name);

        return NGX_HTTP_EXCHANGE_HEALTH_HEALTHY;
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


ngx_table_elt_t *
ngx_http_exchange_health_header(ngx_list_t *headers, ngx_str_t *name)
{
    ngx_http_exchange_health_lines_t  lines;

    lines.part = NULL;

    return ngx_http_exchange_health_header_next(headers, name, &lines);
}


ngx_table_elt_t *
ngx_http_exchange_health_header_next(ngx_list_t *headers, ngx_str_t *name,
    ngx_http_exchange_health_lines_t *lines)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* the lines of one name, each in turn: lines->part NULL starts */

    if (lines->part == NULL) {
        part = &headers->part;
        i = 0;

    } else {
        part = lines->part;
        i = lines->i + 1;
    }

    h = part->elts;

    for ( /* void */ ; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            lines->part = part;
            lines->i = i;
            return &h[i];
        }
    }
}


static ngx_uint_t
ngx_http_exchange_health_header_any(ngx_list_t *headers, ngx_str_t *name,
    ngx_regex_t *regex)
{
    ngx_table_elt_t                   *h;
    ngx_http_exchange_health_lines_t   lines;

    lines.part = NULL;

    while ((h = ngx_http_exchange_health_header_next(headers, name, &lines))) {
        if (ngx_regex_exec(regex, &h->value, NULL, 0) >= 0) {
            return 1;
        }
    }

    return 0;
}


ngx_table_elt_t *
ngx_http_exchange_health_known(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t k)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /*
     * The headers the module reads of an answer, found in one walk of
     * its list instead of one walk each; the first of a name counts, as
     * for any header lookup here.
     */

    if (ctx->known_read) {
        return ctx->known[k];
    }

    ctx->known_read = 1;
    ngx_memzero(ctx->known, sizeof(ctx->known));

    part = &r->upstream->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /*
         * By length first, then by the hash and lowercase name the proxy
         * module made of it: most headers cost a switch.
         */

        switch (h[i].key.len) {

        case sizeof("x-feserver") - 1:     /* and x-beserver */
            n = (h[i].hash
                 == ngx_http_exchange_health_known_hash[
                                          NGX_HTTP_EXCHANGE_HEALTH_H_FESERVER])
                ? NGX_HTTP_EXCHANGE_HEALTH_H_FESERVER
                : NGX_HTTP_EXCHANGE_HEALTH_H_BESERVER;
            break;

        case sizeof("x-owa-error") - 1:    /* and x-ecp-error */
            n = (h[i].hash
                 == ngx_http_exchange_health_known_hash[
                                         NGX_HTTP_EXCHANGE_HEALTH_H_OWA_ERROR])
                ? NGX_HTTP_EXCHANGE_HEALTH_H_OWA_ERROR
                : NGX_HTTP_EXCHANGE_HEALTH_H_ECP_ERROR;
            break;

        case sizeof("x-calculatedbetarget") - 1:
            n = NGX_HTTP_EXCHANGE_HEALTH_H_BETARGET;
            break;

        case sizeof("content-encoding") - 1:
            n = NGX_HTTP_EXCHANGE_HEALTH_H_ENCODING;
            break;

        default:
            continue;
        }

        if (h[i].hash == ngx_http_exchange_health_known_hash[n]
            && ctx->known[n] == NULL
            && ngx_strncmp(h[i].lowcase_key,
                           ngx_http_exchange_health_known_names[n].data,
                           h[i].key.len) == 0)
        {
            ctx->known[n] = &h[i];
        }
    }

    return ctx->known[k];
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


static ngx_uint_t
ngx_http_exchange_health_scannable(ngx_http_request_t *r)
{
    u_char               *p;
    ngx_uint_t            i, status;
    ngx_table_elt_t      *type;
    ngx_http_upstream_t  *u;

    /* only an HTML page can be the errorFE page or an ASP.NET error */

    u = r->upstream;
    status = u->headers_in.status_n;

    if (r->method == NGX_HTTP_HEAD
        || status < 200 || status == 204 || status == 304
        || u->headers_in.content_length_n == 0)
    {
        return 0;
    }

    type = u->headers_in.content_type;

    if (type == NULL || type->value.len < 8) {
        return 0;
    }

    /*
     * "text/html" in any case, on every answer, and "text/xml" on a
     * 5xx (EWS's SOAP faults): OR-ing in 0x20 lowers the letters and
     * keeps '/' (a control byte 0x0f would pass for it: such an answer
     * is only scanned)
     */

    p = type->value.data;

    for (i = 0; i < 5; i++) {
        if ((p[i] | 0x20) != (u_char) "text/"[i]) {
            return 0;
        }
    }

    if (type->value.len >= 9
        && (p[5] | 0x20) == 'h' && (p[6] | 0x20) == 't'
        && (p[7] | 0x20) == 'm' && (p[8] | 0x20) == 'l')
    {
        return 1;
    }

    return status >= 500
           && (p[5] | 0x20) == 'x' && (p[6] | 0x20) == 'm'
           && (p[7] | 0x20) == 'l';
}


ngx_int_t
ngx_http_exchange_health_encoding(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_str_t        *v;
    ngx_table_elt_t  *h;

    /*
     * The first Content-Encoding, as nginx 1.22 keeps it in the upstream's
     * headers_in; later versions keep no such pointer, so it is found by
     * the one walk of the answer's headers, done already for a page.
     */

    h = ngx_http_exchange_health_known(r, ctx,
                                       NGX_HTTP_EXCHANGE_HEALTH_H_ENCODING);
    if (h == NULL) {
        return NGX_HTTP_EXCHANGE_HEALTH_IDENTITY;
    }

    v = &h->value;

    if ((v->len == 4 && ngx_strncasecmp(v->data, (u_char *) "gzip", 4) == 0)
        || (v->len == 6
            && ngx_strncasecmp(v->data, (u_char *) "x-gzip", 6) == 0))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_GZIP;
    }

    if (v->len == 7 && ngx_strncasecmp(v->data, (u_char *) "deflate", 7) == 0)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_DEFLATE;
    }

    if (v->len == 8 && ngx_strncasecmp(v->data, (u_char *) "identity", 8)
                       == 0)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_IDENTITY;
    }

    /* br and the like: nothing to scan with */
    return NGX_ERROR;
}


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


#define ngx_http_exchange_health_status_set(rule, s)                         \
    ((rule)->status[(s) / 64] |= (uint64_t) 1 << ((s) % 64))

#define ngx_http_exchange_health_status_in(rule, s)                          \
    ((rule)->any_status                                                      \
     || ((s) < NGX_HTTP_EXCHANGE_HEALTH_STATUSES                            \
         && ((rule)->status[(s) / 64] >> ((s) % 64) & 1)))


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
    ngx_uint_t                               caseless;
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

    h->known = ngx_http_exchange_health_known_index(&h->name);

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

    ngx_http_exchange_health_known_init();

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
    conf->status_rules = ngx_pcalloc(cf->pool,
                                     2 * (NGX_HTTP_EXCHANGE_HEALTH_STATUSES + 1)
                                     * sizeof(uint64_t));
    if (conf->markers == NULL || conf->marker_rule == NULL
        || conf->status_rules == NULL
        || (conf->rule_markers == NULL && conf->active->nelts))
    {
        return NGX_CONF_ERROR;
    }

    conf->status_rules_nobody = conf->status_rules
                                + NGX_HTTP_EXCHANGE_HEALTH_STATUSES + 1;

    rule = conf->active->elts;

    /*
     * A rule is a bit of a word (NGX_HTTP_EXCHANGE_HEALTH_RULES at most,
     * merge_rules checks): classify finds the few a status wants.
     */

    for (k = 0; k < conf->active->nelts; k++) {
        if (rule[k]->off) {
            continue;
        }

        for (j = 0; j <= NGX_HTTP_EXCHANGE_HEALTH_STATUSES; j++) {
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


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * What an answer to the signed-in probe says, read from its header
 * alone (the buffer is bounded: a header cut short or too long is a
 * failure, never a wait): the status, where it redirects, Exchange's
 * error header, and the session cookies a sign-in sets, up to the jar's
 * size.  Then the verdict: the judging of live answers' built-in rules
 * for OWA and ECP, from their header: a 2xx is proof, errorFE.aspx, a
 * 5xx or an unexpected 4xx is the failure users meet, the logon page (or
 * 401, 440) means the session is gone.  Only OWA's own words of a
 * redirect are kept: never the rest of its Location.
 */


static void ngx_http_exchange_health_signin_cookie(
    ngx_http_exchange_health_answer_t *a, ngx_str_t *jar, u_char *p,
    u_char *last);


ngx_uint_t
ngx_http_exchange_health_signin_verdict(ngx_http_exchange_health_answer_t *a,
    u_char *why)
{
    u_char     *p, *last, *v;
    size_t      len;
    ngx_str_t   loc;

    /* why holds NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN - 9 bytes or more */

    len = NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN - 10;
    loc = a->location;
    ngx_memzero(why, len);

    if (a->status == 0) {
        ngx_cpystrn(why, (u_char *) (a->empty ? "the connection was closed "
                                                "with no answer"
                                              : "not an HTTP answer"), len);
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
    }

    if (!a->complete) {
        ngx_cpystrn(why, (u_char *) "the answer's header is cut short or "
                    "over 16 KB", len);
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
    }

    if (a->status >= 200 && a->status < 300) {
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK;
    }

    if (a->status == 401 || a->status == 440
        || (a->status >= 300 && a->status < 400 && loc.len
            && ngx_strlcasestrn(loc.data, loc.data + loc.len,
                                (u_char *) "/auth/logon.aspx", 16 - 1)))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_LOGON;
    }

    if (a->status >= 300 && a->status < 400 && loc.len
        && ngx_strlcasestrn(loc.data, loc.data + loc.len,
                            (u_char *) "errorfe.aspx", 12 - 1))
    {
        /* only OWA's own words of the redirect: its httpCode, owaError */

        last = loc.data + loc.len;
        p = ngx_strlcasestrn(loc.data, last, (u_char *) "owaError=", 9 - 1);
        v = p ? p + 9 : last;

        for (p = v; p < last && *p != '&'; p++) { /* void */ }

        ngx_snprintf(why, len - 1, "errorFE.aspx, httpCode %ui: %*s",
                     (ngx_uint_t) ngx_http_exchange_health_errorfe_code(
                                                       loc.data, loc.len),
                     (size_t) ngx_min((size_t) (p - v), len), v);
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
    }

    if (a->status >= 300 && a->status < 400) {
        /* somewhere else (AD FS?): no proof either way */
        ngx_snprintf(why, len - 1, "status %ui: redirected elsewhere",
                     a->status);
        return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_UNCLEAR;
    }

    if (a->error.len) {
        ngx_snprintf(why, len - 1, "status %ui: %*s", a->status,
                     (size_t) ngx_min(a->error.len, len), a->error.data);

    } else {
        ngx_snprintf(why, len - 1, "status %ui", a->status);
    }

    return NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
}


void
ngx_http_exchange_health_signin_read_answer(ngx_buf_t *b,
    ngx_http_exchange_health_answer_t *a, ngx_str_t *jar, ngx_str_t *scheme)
{
    u_char     *p, *last, *end, *eol, *colon, *v;
    ngx_int_t   status;
    ngx_str_t   name;

    ngx_memzero(a, sizeof(ngx_http_exchange_health_answer_t));

    p = b->pos;
    last = b->last;
    a->empty = (p == last);

    if (last - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return;
    }

    status = ngx_atoi(p + 9, 3);
    if (status < 100 || status > 599) {
        return;
    }

    a->status = status;

    end = ngx_strlcasestrn(p, last, (u_char *) "\r\n\r\n", 4 - 1);
    if (end == NULL) {
        return;
    }

    a->complete = 1;

    /* the lines after the status line, each "Name: value" */

    p = ngx_strlchr(p, end, '\n');

    while (p && p < end) {
        p++;
        eol = ngx_strlchr(p, end + 2, '\n');
        if (eol == NULL) {
            break;
        }

        colon = ngx_strlchr(p, eol, ':');
        if (colon == NULL) {
            p = eol;
            continue;
        }

        name.data = p;
        name.len = colon - p;

        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }

        last = eol;
        while (last > v && (last[-1] == '\r' || last[-1] == ' ')) {
            last--;
        }

        if (name.len == 8 && ngx_strncasecmp(p, (u_char *) "Location", 8) == 0)
        {
            a->location.data = v;
            a->location.len = last - v;

        } else if (name.len == 11 && a->error.len == 0
                   && (ngx_strncasecmp(p, (u_char *) "X-OWA-Error", 11) == 0
                       || ngx_strncasecmp(p, (u_char *) "X-ECP-Error", 11)
                          == 0))
        {
            a->error.data = v;
            a->error.len = last - v;

        } else if (jar && name.len == 10
                   && ngx_strncasecmp(p, (u_char *) "Set-Cookie", 10) == 0)
        {
            ngx_http_exchange_health_signin_cookie(a, jar, v, last);

        } else if (scheme && a->token.len == 0 && name.len == 16
                   && ngx_strncasecmp(p, (u_char *) "WWW-Authenticate", 16)
                      == 0
                   && (size_t) (last - v) > scheme->len + 1
                   && ngx_strncasecmp(v, scheme->data, scheme->len) == 0
                   && v[scheme->len] == ' ')
        {
            /* "NTLM <base64>", one of those a 401 offers: its token */
            a->token.data = v + scheme->len + 1;
            a->token.len = last - a->token.data;
        }

        p = eol;
    }
}


static void
ngx_http_exchange_health_signin_cookie(ngx_http_exchange_health_answer_t *a,
    ngx_str_t *jar, u_char *p, u_char *last)
{
    u_char  *semi, *eq, *c;
    size_t   len;

    /* "cadata=...; path=/; secure; HttpOnly": the pair alone is sent */

    semi = ngx_strlchr(p, last, ';');
    last = semi ? semi : last;

    eq = ngx_strlchr(p, last, '=');

    /* a cookie cleared ("cadata=; expires=...") is not kept */

    if (eq == NULL || eq == p || eq + 1 == last) {
        return;
    }

    for (c = p; c < last; c++) {
        if (*c <= ' ' || *c >= 0x7f) {
            return;
        }
    }

    if (eq - p == 6 && ngx_strncmp(p, "cadata", 6) == 0) {
        a->cadata = 1;
    }

    len = (last - p) + (jar->len ? 2 : 0);

    if (jar->len + len > NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN) {
        a->jar_full = 1;
        return;
    }

    if (jar->len) {
        jar->data[jar->len++] = ';';
        jar->data[jar->len++] = ' ';
    }

    jar->len = ngx_cpymem(jar->data + jar->len, p, last - p) - jar->data;
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_exchange_health_request.h"
#include "ngx_http_exchange_health_service.h"


/*
 * A reason names the status only when Exchange's own words are missing:
 * the log line and the status page show the status beside it.
 *
 * The good answers are the ones each protocol's specification names: EWS
 * answers a GetFolder it fulfilled with ResponseClass="Success", an
 * ActiveSync server's OPTIONS answer must carry MS-ASProtocolVersions,
 * MAPI over HTTP says success with X-ResponseCode: 0.  A 401 is the
 * credentials' (the account's back-off, never an ejection); a 5xx, a SOAP
 * fault or errorFE.aspx is the failure users of that server meet.
 */


#define SERVICE_WORD  48


static int ngx_http_exchange_health_service_ews(const u_char *body,
    const u_char *last, unsigned status, u_char *why, size_t size);
static const u_char *ngx_http_exchange_health_service_find(const u_char *p,
    const u_char *last, const char *s);
static size_t ngx_http_exchange_health_service_header(const u_char *p,
    const u_char *end, const char *name, const u_char **value);
static size_t ngx_http_exchange_health_service_word(const u_char *p,
    const u_char *last, char *buf);
static void ngx_http_exchange_health_service_why(u_char *why, size_t size,
    const char *text);


int
ngx_http_exchange_health_service_verdict(unsigned protocol, const u_char *p,
    size_t len, unsigned *status, u_char *why, size_t size)
{
    char           text[3 * SERVICE_WORD];
    char           word[SERVICE_WORD];
    size_t         n;
    unsigned       st, i;
    const u_char  *last, *end, *v;

    *status = 0;
    why[0] = '\0';
    last = p + len;

    if (len == 0) {
        ngx_http_exchange_health_service_why(why, size,
                                "the connection was closed with no answer");
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
    }

    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        ngx_http_exchange_health_service_why(why, size, "not an HTTP answer");
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
    }

    for (st = 0, i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            ngx_http_exchange_health_service_why(why, size,
                                                 "not an HTTP answer");
            return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
        }

        st = st * 10 + (p[i] - '0');
    }

    if (st < 100) {
        ngx_http_exchange_health_service_why(why, size, "not an HTTP answer");
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
    }

    *status = st;

    end = ngx_http_exchange_health_service_find(p, last, "\r\n\r\n");
    if (end == NULL) {
        ngx_http_exchange_health_service_why(why, size,
                        "the answer's header is cut short or over 16 KB");
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
    }

    if (st == 401) {
        ngx_http_exchange_health_service_why(why, size,
                        "status 401: the credentials were refused");
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_REFUSED;
    }

    if (st >= 300 && st < 400) {
        n = ngx_http_exchange_health_service_header(p, end, "Location", &v);

        if (n && ngx_http_exchange_health_service_find(v, v + n,
                                                       "errorfe.aspx"))
        {
            snprintf(text, sizeof(text), "errorFE.aspx, httpCode %u",
                     ngx_http_exchange_health_errorfe_code(v, n));
            ngx_http_exchange_health_service_why(why, size, text);
            return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
        }

        /* the logon page, AD FS: not what a Basic call is answered */

        snprintf(text, sizeof(text), "status %u: redirected elsewhere", st);
        ngx_http_exchange_health_service_why(why, size, text);
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_UNCLEAR;
    }

    switch (protocol) {

    case NGX_HTTP_EXCHANGE_HEALTH_EWS:
        return ngx_http_exchange_health_service_ews(end + 4, last, st, why,
                                                    size);

    case NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC:

        if (st >= 200 && st < 300) {
            n = ngx_http_exchange_health_service_header(p, end,
                                              "MS-ASProtocolVersions", &v);
            if (n) {
                return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK;
            }

            snprintf(text, sizeof(text),
                     "status %u with no MS-ASProtocolVersions", st);

        } else {
            snprintf(text, sizeof(text), "status %u", st);
        }

        break;

    case NGX_HTTP_EXCHANGE_HEALTH_MAPI:

        n = ngx_http_exchange_health_service_header(p, end,
                                                    "X-ResponseCode", &v);

        if (st >= 200 && st < 300 && n == 1 && v[0] == '0') {
            return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK;
        }

        if (n) {
            (void) ngx_http_exchange_health_service_word(v, v + n, word);
            snprintf(text, sizeof(text), "X-ResponseCode %s", word);

        } else {
            snprintf(text, sizeof(text), "status %u%s", st,
                     st >= 200 && st < 300 ? " with no X-ResponseCode" : "");
        }

        break;

    default:
        snprintf(text, sizeof(text), "status %u: no verdict for it", st);
        ngx_http_exchange_health_service_why(why, size, text);
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_UNCLEAR;
    }

    ngx_http_exchange_health_service_why(why, size, text);

    return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
}


static int
ngx_http_exchange_health_service_ews(const u_char *body, const u_char *last,
    unsigned status, u_char *why, size_t size)
{
    char           text[3 * SERVICE_WORD];
    char           word[SERVICE_WORD], code[SERVICE_WORD];
    const u_char  *c;

    /*
     * <m:GetFolderResponseMessage ResponseClass="Success">: the inbox
     * read; "Error" or "Warning" with its ResponseCode, or a SOAP fault
     * (EWS sends those with 500) with its faultcode, is a failure.
     */

    if (status >= 200 && status < 300
        && ngx_http_exchange_health_service_find(body, last,
                                         "ResponseClass=\"Success\""))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK;
    }

    word[0] = '\0';
    code[0] = '\0';

    c = ngx_http_exchange_health_service_find(body, last, "faultcode");
    if (c) {
        c = memchr(c, '>', last - c);
    }

    if (c) {
        (void) ngx_http_exchange_health_service_word(c + 1, last, code);

    } else {
        c = ngx_http_exchange_health_service_find(body, last,
                                                  "ResponseClass=\"");
        if (c) {
            (void) ngx_http_exchange_health_service_word(c + 15, last, word);
        }

        c = ngx_http_exchange_health_service_find(body, last,
                                                  "ResponseCode>");
        if (c) {
            (void) ngx_http_exchange_health_service_word(c + 13, last, code);
        }
    }

    if (code[0] && word[0]) {
        snprintf(text, sizeof(text), "ResponseClass %s, %s", word, code);

    } else if (code[0]) {
        snprintf(text, sizeof(text), "%s", code);

    } else if (status >= 200 && status < 300) {
        snprintf(text, sizeof(text), "status %u: no ResponseClass=\"Success\""
                 " in the answer", status);

    } else {
        snprintf(text, sizeof(text), "status %u", status);
    }

    ngx_http_exchange_health_service_why(why, size, text);

    return NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED;
}


static const u_char *
ngx_http_exchange_health_service_find(const u_char *p, const u_char *last,
    const char *s)
{
    size_t  n;

    /* caseless, as HTTP's names and these few markers are short */

    n = strlen(s);

    for ( /* void */ ; last - p >= (ptrdiff_t) n; p++) {
        if (strncasecmp((const char *) p, s, n) == 0) {
            return p;
        }
    }

    return NULL;
}


static size_t
ngx_http_exchange_health_service_header(const u_char *p, const u_char *end,
    const char *name, const u_char **value)
{
    size_t         n;
    const u_char  *eol, *v, *last;

    /* the first "Name: value" line of the header that ends at end */

    n = strlen(name);
    end += 2;

    p = memchr(p, '\n', end - p);

    while (p && p < end) {
        p++;

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            break;
        }

        if ((size_t) (eol - p) > n && p[n] == ':'
            && strncasecmp((const char *) p, name, n) == 0)
        {
            for (v = p + n + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
                /* void */
            }

            last = eol;
            while (last > v
                   && (last[-1] == '\r' || last[-1] == ' '
                       || last[-1] == '\t'))
            {
                last--;
            }

            *value = v;
            return last - v;
        }

        p = eol;
    }

    return 0;
}


static size_t
ngx_http_exchange_health_service_word(const u_char *p, const u_char *last,
    char *buf)
{
    size_t  n;

    /* a name: "a:ErrorInternalServerError" up to '<', '"' or a blank */

    for (n = 0; p < last && n < SERVICE_WORD - 1; p++, n++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '"'
            || *p == '%')
        {
            break;
        }

        buf[n] = *p;
    }

    buf[n] = '\0';

    return n;
}


static void
ngx_http_exchange_health_service_why(u_char *why, size_t size,
    const char *text)
{
    size_t  i;

    for (i = 0; i + 1 < size && text[i]; i++) {
        why[i] = (text[i] < ' ' || text[i] >= 0x7f || text[i] == '%')
                 ? '?' : text[i];
    }

    why[i] = '\0';
}

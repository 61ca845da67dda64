
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


/*
 * libFuzzer target of the request facts: the protocol of a URI, a
 * protocol by its name, a cookie in a Cookie header value, whether a URI
 * is an anonymous page, an errorFE redirect's httpCode, a path with
 * its mailbox addresses masked, and what a request waits for (a query
 * parameter, ActiveSync's command and WBXML Sync, EWS's operation).  The
 * whole input is each of them in turn.  Each answer is checked against a
 * second, simpler reading of the same rules, and every pointer returned
 * must stay within the input.
 */


#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_exchange_health_request.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_uri(const u_char *p, size_t len);
static void fuzz_name(const u_char *p, size_t len);
static void fuzz_ntlm(const u_char *p, size_t len);
static void fuzz_healthcheck(const u_char *p, size_t len);
static void fuzz_cookie(const u_char *p, size_t len, const char *name);
static const u_char *fuzz_cookie_ref(const u_char *p, size_t len,
    const char *name, size_t *vlen);
static int fuzz_same_caseless(const u_char *p, size_t len, const char *s);
static void fuzz_anonymous(const u_char *p, size_t len);
static void fuzz_errorfe(const u_char *p, size_t len);
static void fuzz_mask(const u_char *p, size_t len);
static void fuzz_session(const u_char *p, size_t len);
static void fuzz_waits(const u_char *p, size_t len);
static int fuzz_query_ref(const u_char *p, size_t len, const char *name,
    const char *value);
static int fuzz_ews_ref(const u_char *p, size_t len);


/*
 * "cadata" is the one the module looks for; the others share its prefix,
 * or are the shortest and the empty name.
 */
static const char  *fuzz_cookie_name[] = {
    "cadata", "cadataKey", "cadat", "X-BackEndCookie", "a", ""
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  i;

    fuzz_uri(data, size);
    fuzz_name(data, size);
    fuzz_anonymous(data, size);
    fuzz_errorfe(data, size);
    fuzz_mask(data, size);
    fuzz_ntlm(data, size);
    fuzz_healthcheck(data, size);
    fuzz_waits(data, size);

    for (i = 0; i < sizeof(fuzz_cookie_name) / sizeof(char *); i++) {
        fuzz_cookie(data, size, fuzz_cookie_name[i]);
    }

    fuzz_session(data, size);

    return 0;
}


static void
fuzz_session(const u_char *p, size_t len)
{
    size_t                                         i, vlen, wlen, n;
    const u_char                                  *v, *want, *one;
    static ngx_http_exchange_health_cookie_name_t  names[] = {
        { 6, (const u_char *) "cadata" },
        { 7, (const u_char *) "FedAuth" },
        { 22, (const u_char *) "OpenIdConnect.token.v1" }
    };

    /* the session cookie is the first of the names' cookies in the header */

    v = ngx_http_exchange_health_session_cookie(p, len, names, 3, &vlen);

    want = NULL;
    wlen = 0;

    for (i = 0; i < 3; i++) {
        one = ngx_http_exchange_health_cookie(p, len,
                                              (const char *) names[i].data,
                                              &n);
        if (one && (want == NULL || one < want)) {
            want = one;
            wlen = n;
        }
    }

    if (v != want || (v && vlen != wlen)) {
        fprintf(stderr, "fuzz: session cookie at %td+%zu, expected %td+%zu\n",
                v ? v - p : -1, vlen, want ? want - p : -1, wlen);
        abort();
    }
}


static void
fuzz_uri(const u_char *p, size_t len)
{
    int            anonymous;
    size_t         n;
    unsigned       proto, want, i;
    const u_char  *seg, *end;

    proto = ngx_http_exchange_health_uri_facts(p, len, &anonymous);

    /* the first path segment, without its leading slash */

    end = p + len;
    seg = (len && *p == '/') ? p + 1 : p;

    for (n = 0; seg + n < end && seg[n] != '/' && seg[n] != '?'; n++) {
        /* void */
    }

    want = NGX_HTTP_EXCHANGE_HEALTH_OTHER;

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_OTHER; i++) {
        if (fuzz_same_caseless(seg, n,
                               ngx_http_exchange_health_protocols[i].vdir))
        {
            want = i;
            break;
        }
    }

    if (proto != want) {
        fprintf(stderr, "fuzz: protocol of URI %u, expected %u\n",
                proto, want);
        abort();
    }
}


static void
fuzz_name(const u_char *p, size_t len)
{
    int  proto, want, i;

    proto = ngx_http_exchange_health_protocol_by_name(p, len);

    want = -1;

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        if (fuzz_same_caseless(p, len,
                               ngx_http_exchange_health_protocols[i].name))
        {
            want = i;
            break;
        }
    }

    if (proto != want) {
        fprintf(stderr, "fuzz: protocol by name %d, expected %d\n",
                proto, want);
        abort();
    }
}


static void
fuzz_cookie(const u_char *p, size_t len, const char *name)
{
    size_t         vlen, wlen;
    const u_char  *v, *want;

    vlen = (size_t) -1;
    wlen = (size_t) -1;

    v = ngx_http_exchange_health_cookie(p, len, name, &vlen);
    want = fuzz_cookie_ref(p, len, name, &wlen);

    if (v != want || (v && vlen != wlen)) {
        fprintf(stderr, "fuzz: cookie \"%s\" at %td+%zu, expected %td+%zu\n",
                name, v ? v - p : -1, vlen, want ? want - p : -1, wlen);
        abort();
    }

    if (v == NULL) {
        return;
    }

    /* within the input, after "name=", up to a ';' or the end */

    if (v <= p
        || v > p + len
        || vlen > (size_t) (p + len - v)
        || v[-1] != '='
        || (size_t) (v - p) < strlen(name) + 1
        || memcmp(v - 1 - strlen(name), name, strlen(name)) != 0
        || memchr(v, ';', vlen) != NULL
        || (v + vlen < p + len && v[vlen] != ';'))
    {
        fprintf(stderr, "fuzz: cookie \"%s\" value at %td+%zu of %zu\n",
                name, v - p, vlen, len);
        abort();
    }
}


/*
 * The header value split at each ';'; a pair is the name when the bytes
 * after leading blanks are the name and then '='.
 */

static const u_char *
fuzz_cookie_ref(const u_char *p, size_t len, const char *name, size_t *vlen)
{
    size_t         nlen;
    const u_char  *seg, *semi, *end;

    nlen = strlen(name);
    end = p + len;

    for (seg = p; seg < end; seg = semi + 1) {
        semi = memchr(seg, ';', end - seg);

        if (semi == NULL) {
            semi = end;
        }

        while (seg < semi && (*seg == ' ' || *seg == '\t')) {
            seg++;
        }

        if ((size_t) (semi - seg) > nlen
            && seg[nlen] == '='
            && memcmp(seg, name, nlen) == 0)
        {
            *vlen = semi - (seg + nlen + 1);
            return seg + nlen + 1;
        }
    }

    return NULL;
}


static int
fuzz_same_caseless(const u_char *p, size_t len, const char *s)
{
    size_t  i;

    if (strlen(s) != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (tolower(p[i]) != tolower((u_char) s[i])) {
            return 0;
        }
    }

    return 1;
}


static void
fuzz_anonymous(const u_char *p, size_t len)
{
    int            r;
    size_t         i;
    const u_char  *seg;

    r = ngx_http_exchange_health_anonymous_uri(p, len);

    /* the reference: the second segment starts with "auth/" or "auth." */

    i = (len && p[0] == '/') ? 1 : 0;

    while (i < len && p[i] != '/' && p[i] != '?') {
        i++;
    }

    seg = p + i + 1;

    if (r != (i < len && p[i] == '/' && len - i - 1 >= 5
              && strncasecmp((const char *) seg, "auth", 4) == 0
              && (seg[4] == '/' || seg[4] == '.')))
    {
        fprintf(stderr, "anonymous_uri: %d\n", r);
        abort();
    }
}


static void
fuzz_errorfe(const u_char *p, size_t len)
{
    unsigned       code;
    const u_char  *name;

    code = ngx_http_exchange_health_errorfe_code(p, len);

    if (ngx_http_exchange_health_errorfe_backend(p, len, &name) > len) {
        fprintf(stderr, "errorfe_backend: longer than its input\n");
        abort();
    }

    /* a code is three digits, and only after the page's name */

    if (code > 999) {
        fprintf(stderr, "errorfe_code: %u\n", code);
        abort();
    }

    if (code != 0 && len < 12 + 1 + 9 + 3) {
        fprintf(stderr, "errorfe_code: %u from %zu bytes\n", code, len);
        abort();
    }
}


static void
fuzz_mask(const u_char *p, size_t len)
{
    size_t   n, i;
    u_char  *buf;

    /* exactly the documented room: ASan sees any write past it */

    buf = malloc(5 * len + 9);
    if (buf == NULL) {
        return;
    }

    n = ngx_http_exchange_health_mask_mailbox(buf, p, len);

    for (i = 0; i < n; i++) {
        if (buf[i] == '@') {
            fprintf(stderr, "mask_mailbox: an '@' left\n");
            abort();
        }
    }

    /* has_mailbox() says yes exactly when masking changes the path */

    if (ngx_http_exchange_health_has_mailbox(p, len)
        != (n != len || memcmp(buf, p, len) != 0))
    {
        fprintf(stderr, "has_mailbox disagrees with mask_mailbox\n");
        abort();
    }

    free(buf);
}


static void
fuzz_ntlm(const u_char *p, size_t len)
{
    u_char  dst[NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER + 1];
    size_t  n, size;

    /* any Authorization value: never past dst, never longer than room */

    (void) ngx_http_exchange_health_ntlm_scheme(p, len);
    (void) ngx_http_exchange_health_ntlm_token(p, len);
    (void) ngx_http_exchange_health_ntlm_type1(p, len);
    (void) ngx_http_exchange_health_open_uri(p, len);

    for (size = 0; size <= NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER; size += 32) {
        dst[size] = 0xa5;

        n = ngx_http_exchange_health_ntlm_user(p, len, dst, size);

        if (n > size || dst[size] != 0xa5) {
            fprintf(stderr, "fuzz: NTLM user of %zu bytes in %zu\n", n, size);
            abort();
        }
    }
}


static void
fuzz_healthcheck(const u_char *p, size_t len)
{
    size_t         n, i;
    const u_char  *name;

    /* any body: a name inside it, printable, right after "<br/>" */

    name = NULL;
    n = ngx_http_exchange_health_healthcheck_name(p, len, &name);

    if (n == 0) {
        return;
    }

    if (name < p + 5 || name + n > p + len
        || strncasecmp((const char *) name - 5, "<br/>", 5) != 0)
    {
        fprintf(stderr, "fuzz: healthcheck name outside its body\n");
        abort();
    }

    for (i = 0; i < n; i++) {
        if (name[i] <= ' ' || name[i] >= 0x7f) {
            fprintf(stderr, "fuzz: healthcheck name byte %02x\n", name[i]);
            abort();
        }
    }
}


static void
fuzz_waits(const u_char *p, size_t len)
{
    int                                 cmd, w;
    unsigned                            i;
    ngx_http_exchange_health_request_t  rq;

    if (ngx_http_exchange_health_query_is(p, len, "ns", "PendingRequest")
        != fuzz_query_ref(p, len, "ns", "PendingRequest"))
    {
        fprintf(stderr, "fuzz: query_is disagrees with its reference\n");
        abort();
    }

    cmd = ngx_http_exchange_health_eas_command(p, len);

    if (cmd < -1 || cmd > 255) {
        fprintf(stderr, "fuzz: ActiveSync command %d\n", cmd);
        abort();
    }

    /* the WBXML walker: only ASan and UBSan judge it */

    (void) ngx_http_exchange_health_eas_sync_waits(p, len);

    if (ngx_http_exchange_health_ews_streaming(p, len)
        != fuzz_ews_ref(p, len))
    {
        fprintf(stderr, "fuzz: ews_streaming disagrees with its reference\n");
        abort();
    }

    /* the input as every part of a request of every protocol */

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        rq.protocol = i;
        rq.method = p;
        rq.method_len = len;
        rq.path = p;
        rq.path_len = len;
        rq.args = p;
        rq.args_len = len;
        rq.request_type = p;
        rq.request_type_len = len;
        rq.content_length = (off_t) len - 1;
        rq.body = p;
        rq.body_len = len;

        w = ngx_http_exchange_health_waits(&rq);

        if (w < 0 || w >= NGX_HTTP_EXCHANGE_HEALTH_WAIT_N) {
            fprintf(stderr, "fuzz: waits %d\n", w);
            abort();
        }

        /* the SOAP and query walkers: only ASan and UBSan judge them */

        (void) ngx_http_exchange_health_reads_only(&rq);
    }
}


/* the query split at each '&': a pair is "name=value", caselessly */

static int
fuzz_query_ref(const u_char *p, size_t len, const char *name,
    const char *value)
{
    size_t         nlen;
    const u_char  *seg, *amp, *end, *eq;

    nlen = strlen(name);
    end = p + len;

    for (seg = p; seg < end; seg = amp + 1) {
        amp = memchr(seg, '&', end - seg);

        if (amp == NULL) {
            amp = end;
        }

        eq = memchr(seg, '=', amp - seg);

        if (eq != NULL
            && fuzz_same_caseless(seg, eq - seg, name)
            && (size_t) (eq - seg) == nlen
            && fuzz_same_caseless(eq + 1, amp - eq - 1, value))
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Every '<', then a run of name characters; after a ':' another: the
 * last run is the local name, "GetStreamingEvents", and then a blank,
 * '>' or '/'.
 */

static int
fuzz_ews_ref(const u_char *p, size_t len)
{
    size_t  i, j, k;

    for (i = 0; i < len; i++) {
        if (p[i] != '<') {
            continue;
        }

        for (j = i + 1; j < len && (isalnum(p[j]) || p[j] == '_'
                                    || p[j] == '-' || p[j] == '.'); j++)
        {
            /* void */
        }

        k = i + 1;

        if (j < len && p[j] == ':' && j > i + 1) {
            k = j + 1;

            for (j = k; j < len && (isalnum(p[j]) || p[j] == '_'
                                    || p[j] == '-' || p[j] == '.'); j++)
            {
                /* void */
            }
        }

        if (j - k == 18 && memcmp(p + k, "GetStreamingEvents", 18) == 0
            && j < len
            && (p[j] == '>' || p[j] == '/' || p[j] == ' ' || p[j] == '\t'
                || p[j] == '\r' || p[j] == '\n'))
        {
            return 1;
        }
    }

    return 0;
}

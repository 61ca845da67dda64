
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_exchange_health_request.h"


static int ngx_http_exchange_health_static_file(const u_char *dot, size_t n);
static const u_char *ngx_http_exchange_health_errorfe_param(const u_char *p,
    size_t len, const char *name, size_t *vlen);
static const u_char *ngx_http_exchange_health_ntlm_message(u_char *buf,
    size_t *n, const u_char *p, size_t len, u_char type, size_t least);


const ngx_http_exchange_health_protocol_t
    ngx_http_exchange_health_protocols[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS] =
{
    { "owa", "owa", 3 },
    { "ecp", "ecp", 3 },
    { "ews", "ews", 3 },
    { "activesync", "microsoft-server-activesync", 27 },
    { "mapi", "mapi", 4 },
    { "rpc", "rpc", 3 },
    { "oab", "oab", 3 },
    { "autodiscover", "autodiscover", 12 },
    { "powershell", "powershell", 10 },
    { "other", NULL, 0 }
};


unsigned
ngx_http_exchange_health_uri_facts(const u_char *uri, size_t len,
    int *anonymous)
{
    size_t         n, j;
    unsigned       i;
    const u_char  *p, *v, *vdir, *end;

    p = uri;
    end = uri + len;

    if (p < end && *p == '/') {
        p++;
    }

    vdir = p;

    while (p < end && *p != '/' && *p != '?') {
        p++;
    }

    n = p - vdir;

    /* past the virtual directory: auth/logon.aspx, auth/15.x/, auth.owa */

    *anonymous = end - p >= 6 && p[0] == '/'
                 && (p[1] | 0x20) == 'a' && (p[2] | 0x20) == 'u'
                 && (p[3] | 0x20) == 't' && (p[4] | 0x20) == 'h'
                 && (p[5] == '/' || p[5] == '.');

    /*
     * On every proxied request: one candidate by the length and the
     * first letters (only a letter, in either case, can pass these),
     * then compared whole, A to Z lowered.
     */

    switch (n) {

    case sizeof("owa") - 1:           /* ecp, ews, rpc, oab */
        switch (vdir[0] | 0x20) {

        case 'o':
            i = (vdir[1] | 0x20) == 'w' ? NGX_HTTP_EXCHANGE_HEALTH_OWA
                                        : NGX_HTTP_EXCHANGE_HEALTH_OAB;
            break;

        case 'e':
            i = (vdir[1] | 0x20) == 'c' ? NGX_HTTP_EXCHANGE_HEALTH_ECP
                                        : NGX_HTTP_EXCHANGE_HEALTH_EWS;
            break;

        case 'r':
            i = NGX_HTTP_EXCHANGE_HEALTH_RPC;
            break;

        default:
            return NGX_HTTP_EXCHANGE_HEALTH_OTHER;
        }

        break;

    case sizeof("mapi") - 1:
        i = NGX_HTTP_EXCHANGE_HEALTH_MAPI;
        break;

    case sizeof("powershell") - 1:
        i = NGX_HTTP_EXCHANGE_HEALTH_POWERSHELL;
        break;

    case sizeof("autodiscover") - 1:
        i = NGX_HTTP_EXCHANGE_HEALTH_AUTODISCOVER;
        break;

    case sizeof("microsoft-server-activesync") - 1:
        i = NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC;
        break;

    default:
        return NGX_HTTP_EXCHANGE_HEALTH_OTHER;
    }

    /*
     * A byte OR 0x20 is a lowercase letter only when it is that letter
     * in either case; the '-' of ActiveSync's is compared as it is (a CR
     * OR 0x20 would pass for it).
     */

    v = (const u_char *) ngx_http_exchange_health_protocols[i].vdir;

    for (j = 0; j < n; j++) {
        if (vdir[j] != v[j] && ((vdir[j] | 0x20) != v[j] || v[j] == '-')) {
            return NGX_HTTP_EXCHANGE_HEALTH_OTHER;
        }
    }

    return i;
}


const char *
ngx_http_exchange_health_protocol_names(void)
{
    size_t       n;
    unsigned     i;

    static char  names[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS * 16];

    if (names[0] == '\0') {
        for (n = 0, i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
            n += snprintf(names + n, sizeof(names) - n, "%s%s",
                          i ? ", " : "",
                          ngx_http_exchange_health_protocols[i].name);

            if (n >= sizeof(names)) {
                break;
            }
        }
    }

    return names;
}


int
ngx_http_exchange_health_protocol_by_name(const u_char *name, size_t len)
{
    int          i;
    const char  *s;

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        s = ngx_http_exchange_health_protocols[i].name;

        if (strlen(s) == len && strncasecmp(s, (const char *) name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


int
ngx_http_exchange_health_anonymous_uri(const u_char *uri, size_t len)
{
    int  anonymous;

    (void) ngx_http_exchange_health_uri_facts(uri, len, &anonymous);

    return anonymous;
}


int
ngx_http_exchange_health_open_uri(const u_char *uri, size_t len)
{
    size_t         n;
    const u_char  *p, *end, *seg, *last, *dot;

    p = uri;
    end = uri + len;

    /* the query is not the path */

    for (n = 0; n < len; n++) {
        if (uri[n] == '?') {
            end = uri + n;
            break;
        }
    }

    /*
     * A static file, by the extension of the last segment: the front
     * end sends some to a mailbox server for anyone (add-in files, the
     * resources ProxyLogon reached), and a file proves no sign-in.
     */

    last = p;
    dot = NULL;

    for (seg = p; seg < end; seg++) {
        if (*seg == '/') {
            last = seg + 1;
            dot = NULL;

        } else if (*seg == '.') {
            dot = seg;
        }
    }

    if (dot && dot > last
        && ngx_http_exchange_health_static_file(dot + 1, end - dot - 1))
    {
        return 1;
    }

    if (p < end && *p == '/') {
        p++;
    }

    /* past the virtual directory, and any slashes after it */

    seg = p;

    while (p < end && *p != '/') {
        p++;
    }

    n = p - seg;

    while (p < end && *p == '/') {
        p++;
    }

    /* autodiscover.json, autodiscover.json/v1.0/... */

    if (n == 12 && strncasecmp((const char *) seg, "autodiscover", 12) == 0) {
        return end - p >= 17
               && strncasecmp((const char *) p, "autodiscover.json", 17) == 0
               && (end - p == 17 || p[17] == '/');
    }

    /* OWA's published calendars and its WOPI callbacks (Office Online) */

    if (n == 3 && strncasecmp((const char *) seg, "owa", 3) == 0) {
        return (end - p >= 9
                && strncasecmp((const char *) p, "calendar/", 9) == 0)
               || (end - p >= 5
                   && strncasecmp((const char *) p, "wopi/", 5) == 0);
    }

    /* ECP's eDiscovery export tool: /ecp/<build or Current>/exporttool/ */

    if (n == 3 && strncasecmp((const char *) seg, "ecp", 3) == 0) {
        while (p < end && *p != '/') {
            p++;
        }

        return end - p >= 12
               && strncasecmp((const char *) p, "/exporttool/", 12) == 0;
    }

    return 0;
}


int
ngx_http_exchange_health_has_mailbox(const u_char *p, size_t len)
{
    const u_char  *end;

    /* an '@', or an encoded one: what mask_mailbox() would replace */

    if (memchr(p, '@', len) != NULL) {
        return 1;
    }

    end = p + len;

    while ((p = memchr(p, '%', end - p)) != NULL) {
        if (end - p >= 3 && p[1] == '4' && p[2] == '0') {
            return 1;
        }

        p++;
    }

    return 0;
}


size_t
ngx_http_exchange_health_mask_mailbox(u_char *dst, const u_char *src,
    size_t len)
{
    size_t         n, i;
    u_char        *d;
    const u_char  *seg, *end, *p;

    d = dst;
    end = src + len;
    seg = src;

    while (seg < end) {

        for (p = seg; p < end && *p != '/'; p++) { /* void */ }

        n = p - seg;

        /* a segment with an address in it, plain or %-encoded */

        for (i = 0; i < n; i++) {
            if (seg[i] == '@'
                || (seg[i] == '%' && i + 2 < n && seg[i + 1] == '4'
                    && seg[i + 2] == '0'))
            {
                break;
            }
        }

        if (i < n) {
            memcpy(d, "(mailbox)", sizeof("(mailbox)") - 1);
            d += sizeof("(mailbox)") - 1;

        } else {
            memcpy(d, seg, n);
            d += n;
        }

        if (p < end) {
            *d++ = '/';
            p++;
        }

        seg = p;
    }

    return d - dst;
}


static int
ngx_http_exchange_health_static_file(const u_char *ext, size_t n)
{
    u_char       c, low[sizeof("application") - 1];
    size_t       i;
    const char  *name;

    /*
     * The extensions of static files, in any case: by length and first
     * letter, one comparison at most.
     */

    if (n < 2 || n > sizeof(low)) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        c = ext[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (c | 0x20) : c;
    }

    switch (n) {

    case 2:
        name = "js";
        break;

    case sizeof("owa") - 1:           /* ecp, ews, rpc, oab */
        switch (low[0]) {
        case 'c':
            name = "css";
            break;

        case 'e':
            name = "eot";
            break;

        case 'g':
            name = "gif";
            break;

        case 'h':
            name = "htm";
            break;

        case 'i':
            name = "ico";
            break;

        case 'j':
            name = "jpg";
            break;

        case 'm':
            name = "map";
            break;

        case 'p':
            name = "png";
            break;

        case 's':
            name = "svg";
            break;

        case 't':
            name = "ttf";
            break;

        case 'x':
            name = "xap";
            break;

        default:
            return 0;
        }

        break;

    case 4:
        name = (low[0] == 'h') ? "html" : "woff";
        break;

    case 5:
        name = "woff2";
        break;

    case 11:
        name = "application";
        break;

    default:
        return 0;
    }

    return memcmp(low, name, n) == 0;
}


static const u_char *
ngx_http_exchange_health_errorfe_param(const u_char *p, size_t len,
    const char *name, size_t *vlen)
{
    size_t         n;
    const u_char  *end, *v;

    end = p + len;
    n = strlen(name);

    /* the errorFE.aspx page, then its query */

    for ( /* void */ ; (size_t) (end - p) >= 12; p++) {
        if (strncasecmp((const char *) p, "errorfe.aspx", 12) == 0) {
            break;
        }
    }

    if ((size_t) (end - p) < 13 || p[12] != '?') {
        return NULL;
    }

    p += 13;

    while (p < end) {

        if ((size_t) (end - p) > n && p[n] == '='
            && strncasecmp((const char *) p, name, n) == 0)
        {
            v = p + n + 1;

            for (p = v; p < end && *p != '&' && *p != '#'; p++) {
                /* void */
            }

            *vlen = p - v;
            return v;
        }

        while (p < end && *p != '&') {
            p++;
        }

        if (p < end) {
            p++;
        }
    }

    return NULL;
}


unsigned
ngx_http_exchange_health_errorfe_code(const u_char *p, size_t len)
{
    size_t         n;
    unsigned       code;
    const u_char  *v;

    v = ngx_http_exchange_health_errorfe_param(p, len, "httpCode", &n);

    /* three digits, the whole parameter, or no code */

    if (v == NULL || n != 3) {
        return 0;
    }

    for (code = 0; n; n--, v++) {
        if (*v < '0' || *v > '9') {
            return 0;
        }

        code = code * 10 + (*v - '0');
    }

    return code;
}


size_t
ngx_http_exchange_health_errorfe_backend(const u_char *p, size_t len,
    const u_char **name)
{
    size_t         n, i;
    const u_char  *v;

    v = ngx_http_exchange_health_errorfe_param(p, len, "be", &n);

    /* a host name as Exchange writes it, its first label, or none */

    if (v == NULL) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (v[i] == '.') {
            break;
        }

        if (!ngx_http_exchange_health_name_char(v[i]) || v[i] == '_') {
            return 0;
        }
    }

    *name = v;

    return i;
}


size_t
ngx_http_exchange_health_healthcheck_name(const u_char *p, size_t len,
    const u_char **name)
{
    const u_char  *end, *q;

    /* both the probe and live answers read it: one reading */

    end = p + len;

    for ( /* void */ ; end - p >= 5; p++) {
        if (p[0] == '<' && (p[1] | 0x20) == 'b' && (p[2] | 0x20) == 'r'
            && p[3] == '/' && p[4] == '>')
        {
            p += 5;

            for (q = p; q < end && *q > ' ' && *q < 0x7f; q++) {
                /* void */
            }

            *name = p;
            return q - p;
        }
    }

    return 0;
}


const u_char *
ngx_http_exchange_health_cookie(const u_char *p, size_t len,
    const char *name, size_t *vlen)
{
    ngx_http_exchange_health_cookie_name_t  one;

    one.len = strlen(name);
    one.data = (const u_char *) name;

    return ngx_http_exchange_health_session_cookie(p, len, &one, 1, vlen);
}


const u_char *
ngx_http_exchange_health_session_cookie(const u_char *p, size_t len,
    const ngx_http_exchange_health_cookie_name_t *names, size_t n, size_t *vlen)
{
    size_t         i, nlen;
    const u_char  *end, *start, *semi;

    end = p + len;

    while (p < end) {

        while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
            p++;
        }

        start = p;

        semi = memchr(p, ';', end - p);
        p = semi ? semi : end;

        /* the name has no '=': the first '=' is right after it */

        for (i = 0; i < n; i++) {
            nlen = names[i].len;

            if ((size_t) (p - start) > nlen && start[nlen] == '='
                && memcmp(start, names[i].data, nlen) == 0)
            {
                *vlen = p - (start + nlen + 1);
                return start + nlen + 1;
            }
        }
    }

    return NULL;
}


int
ngx_http_exchange_health_ntlm_scheme(const u_char *p, size_t len)
{
    /* "NTLM <token>", "Negotiate <token>", or the bare scheme of a 401 */

    if (len >= 4 && strncasecmp((const char *) p, "NTLM", 4) == 0
        && (len == 4 || p[4] == ' ' || p[4] == ','))
    {
        return 1;
    }

    return len >= 9 && strncasecmp((const char *) p, "Negotiate", 9) == 0
           && (len == 9 || p[9] == ' ' || p[9] == ',');
}


int
ngx_http_exchange_health_ntlm_token(const u_char *p, size_t len)
{
    int            scheme;
    const u_char  *end;

    end = p + len;

    if (len > 5 && strncasecmp((const char *) p, "NTLM ", 5) == 0) {
        scheme = NGX_HTTP_EXCHANGE_HEALTH_TOKEN_NTLM;
        p += 5;

    } else if (len > 10 && strncasecmp((const char *) p, "Negotiate ", 10) == 0)
    {
        scheme = NGX_HTTP_EXCHANGE_HEALTH_TOKEN_NEGOTIATE;
        p += 10;

    } else {
        return 0;
    }

    while (p < end && *p == ' ') {
        p++;
    }

    /* a token68 (RFC 7235), not another scheme of a list */

    if (p == end
        || !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
             || (*p >= '0' && *p <= '9') || *p == '+' || *p == '/'))
    {
        return 0;
    }

    for ( /* void */ ; p < end; p++) {
        if (*p == ',' || *p == ' ' || *p == '"') {
            return 0;
        }
    }

    return scheme;
}


static size_t
ngx_http_exchange_health_base64(u_char *dst, size_t size, const u_char *p,
    size_t len)
{
    size_t    n;
    unsigned  bits, nbits, v;

    /* standard base64; stops at the first byte that is not, or when full */

    n = 0;
    bits = 0;
    nbits = 0;

    for ( /* void */ ; len && n < size; p++, len--) {

        if (*p >= 'A' && *p <= 'Z') {
            v = *p - 'A';

        } else if (*p >= 'a' && *p <= 'z') {
            v = *p - 'a' + 26;

        } else if (*p >= '0' && *p <= '9') {
            v = *p - '0' + 52;

        } else if (*p == '+') {
            v = 62;

        } else if (*p == '/') {
            v = 63;

        } else {
            break;
        }

        bits = (bits << 6 | v) & 0xffffff;
        nbits += 6;

        if (nbits >= 8) {
            nbits -= 8;
            dst[n++] = (u_char) (bits >> nbits);
        }
    }

    return n;
}


static size_t
ngx_http_exchange_health_ntlm_field(u_char *dst, size_t size,
    const u_char *msg, size_t len, size_t at)
{
    size_t  flen, off;

    /* an NTLM security buffer: length (2), allocated (2), offset (4) */

    flen = msg[at] | msg[at + 1] << 8;
    off = msg[at + 4] | msg[at + 5] << 8 | (size_t) msg[at + 6] << 16
          | (size_t) msg[at + 7] << 24;

    if (off > len || flen > len - off) {
        return (size_t) -1;
    }

    if (flen > size) {
        flen = size;
    }

    memcpy(dst, msg + off, flen);

    return flen;
}


static const u_char *
ngx_http_exchange_health_ntlm_message(u_char *buf, size_t *n,
    const u_char *p, size_t len, u_char type, size_t least)
{
    size_t  i;
    u_char  sig[12] = "NTLMSSP\0\0\0\0\0";

    /* skip the scheme and the spaces after it */

    i = 0;

    while (i < len && p[i] != ' ') {
        i++;
    }

    while (i < len && p[i] == ' ') {
        i++;
    }

    *n = ngx_http_exchange_health_base64(buf,
                                         NGX_HTTP_EXCHANGE_HEALTH_NTLM_TOKEN,
                                         p + i, len - i);

    /*
     * Raw NTLMSSP, or inside Negotiate's SPNEGO wrapping: the message
     * starts at its signature.  A Kerberos ticket has none.
     */

    sig[8] = type;

    for (i = 0; i + least <= *n; i++) {
        if (memcmp(buf + i, sig, 12) == 0) {
            *n -= i;
            return buf + i;
        }
    }

    return NULL;
}


int
ngx_http_exchange_health_ntlm_type1(const u_char *p, size_t len)
{
    size_t  n;
    u_char  buf[NGX_HTTP_EXCHANGE_HEALTH_NTLM_TOKEN];

    /* signature, type and flags: 16 bytes at least */

    return ngx_http_exchange_health_ntlm_message(buf, &n, p, len, 1, 16)
           != NULL;
}


size_t
ngx_http_exchange_health_ntlm_user(const u_char *p, size_t len, u_char *dst,
    size_t size)
{
    u_char         buf[NGX_HTTP_EXCHANGE_HEALTH_NTLM_TOKEN];
    size_t         n, dlen, ulen;
    const u_char  *msg;

    msg = ngx_http_exchange_health_ntlm_message(buf, &n, p, len, 3, 64);

    if (msg == NULL || size < 2) {
        return 0;
    }

    /* domain (at 28) and user (at 36): "DOMAIN\user", as sent */

    dlen = ngx_http_exchange_health_ntlm_field(dst, size - 1, msg, n, 28);
    if (dlen == (size_t) -1) {
        return 0;
    }

    dst[dlen++] = '\\';

    ulen = ngx_http_exchange_health_ntlm_field(dst + dlen, size - dlen, msg, n,
                                               36);
    if (ulen == (size_t) -1 || ulen == 0) {
        return 0;
    }

    return dlen + ulen;
}

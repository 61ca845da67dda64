
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <string.h>
#include <strings.h>

#include "ngx_http_exchange_health_request.h"


/*
 * What a request asks Exchange to do, from what it sends: its ActiveSync
 * command, MAPI request type, EWS operation, OWA action.  From them,
 * whether it is meant to wait, and whether a POST only reads.  Plain C,
 * as request.c.
 */


static int ngx_http_exchange_health_ends_with(const u_char *p, size_t len,
    const char *s, size_t n);
static int ngx_http_exchange_health_sextet(const u_char **pp,
    const u_char *end);
static int ngx_http_exchange_health_mb_uint32(const u_char **pp,
    const u_char *end, size_t *value);
static int ngx_http_exchange_health_start_tag(const u_char *p,
    const u_char *q);
static int ngx_http_exchange_health_query_next(const u_char **pp,
    const u_char *end, const char *name, const u_char **value, size_t *vlen);


/*
 * Requests meant to wait.  Each protocol says it its own way: OWA in its
 * notification channel's query, ActiveSync in the command of its query
 * and, for a Sync, in the WBXML body, MAPI in a header, EWS in the SOAP
 * operation, RPC over HTTP in its methods.  Sources:
 * docs/exchange-answers.md, "Requests meant to wait".
 */

const char  *ngx_http_exchange_health_wait_names[
    NGX_HTTP_EXCHANGE_HEALTH_WAIT_N] =
{
    "none",
    "owa-notifications",
    "activesync-ping",
    "activesync-sync-wait",
    "mapi-notificationwait",
    "ews-streaming",
    "rpc-channel"
};


int
ngx_http_exchange_health_waits(const ngx_http_exchange_health_request_t *rq)
{
    int  cmd;

    switch (rq->protocol) {

    case NGX_HTTP_EXCHANGE_HEALTH_OWA:

        /*
         * The pending GET of OWA's notification channel (ev.owa2 from
         * Exchange 2013 on, ev.owa before): a chunked page that streams
         * notifications, a keep-alive every 40 s, for as long as the
         * user keeps OWA open.  FinishNotificationRequest, in the same
         * namespace, answers at once.
         */

        if ((ngx_http_exchange_health_ends_with(rq->path, rq->path_len,
                                         "/ev.owa2", sizeof("/ev.owa2") - 1)
             || ngx_http_exchange_health_ends_with(rq->path, rq->path_len,
                                         "/ev.owa", sizeof("/ev.owa") - 1))
            && ngx_http_exchange_health_query_is(rq->args, rq->args_len,
                                                 "ns", "PendingRequest")
            && ngx_http_exchange_health_query_is(rq->args, rq->args_len,
                                                 "ev",
                                                 "PendingNotificationRequest"))
        {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_OWA_NOTIFY;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;

    case NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC:

        /*
         * Direct Push: a Ping is answered when a folder changes or its
         * heartbeat (up to 59 minutes) has passed; a Sync with Wait or
         * HeartbeatInterval likewise.  Any other command answers at once.
         */

        cmd = ngx_http_exchange_health_eas_command(rq->args, rq->args_len);

        if (cmd == NGX_HTTP_EXCHANGE_HEALTH_EAS_PING) {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_PING;
        }

        if (cmd == NGX_HTTP_EXCHANGE_HEALTH_EAS_SYNC && rq->body
            && ngx_http_exchange_health_eas_sync_waits(rq->body,
                                                       rq->body_len))
        {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_SYNC;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;

    case NGX_HTTP_EXCHANGE_HEALTH_MAPI:

        /* answered at an event, or after 5 minutes with no event */

        if (rq->request_type && rq->request_type_len == 16
            && strncasecmp((const char *) rq->request_type,
                           "NotificationWait", 16) == 0)
        {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_MAPI_NOTIFY;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;

    case NGX_HTTP_EXCHANGE_HEALTH_EWS:

        /*
         * A streaming subscription's connection, open up to its
         * ConnectionTimeout (1 to 30 minutes).  Pull notifications
         * (GetEvents) answer at once, and push ones are the server's
         * requests to the client: neither waits here.
         */

        if (rq->body
            && ngx_http_exchange_health_ews_streaming(rq->body, rq->body_len))
        {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_EWS_STREAM;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;

    case NGX_HTTP_EXCHANGE_HEALTH_RPC:

        /*
         * Outlook Anywhere's IN and OUT channels: bodies declared 128 KB
         * to 2 GB long, open for the channel's life.  An echo request
         * (the same methods, a body of 16 bytes at most) answers at once.
         */

        if (((rq->method_len == 11
              && memcmp(rq->method, "RPC_IN_DATA", 11) == 0)
             || (rq->method_len == 12
                 && memcmp(rq->method, "RPC_OUT_DATA", 12) == 0))
            && rq->content_length > 0x10)
        {
            return NGX_HTTP_EXCHANGE_HEALTH_WAIT_RPC_CHANNEL;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;
    }

    return NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE;
}


static int
ngx_http_exchange_health_ends_with(const u_char *p, size_t len,
    const char *s, size_t n)
{
    /* the last byte first, its case aside: most paths end otherwise */

    return p != NULL && len >= n
           && (p[len - 1] | 0x20) == (s[n - 1] | 0x20)
           && strncasecmp((const char *) p + len - n, s, n) == 0;
}


int
ngx_http_exchange_health_query_is(const u_char *args, size_t len,
    const char *name, const char *value)
{
    size_t         vlen, n;
    const u_char  *p, *v;

    vlen = strlen(value);
    p = args;

    while (ngx_http_exchange_health_query_next(&p, args + len, name, &v, &n)) {
        if (n == vlen && strncasecmp((const char *) v, value, vlen) == 0) {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_exchange_health_query_next(const u_char **pp, const u_char *end,
    const char *name, const u_char **value, size_t *vlen)
{
    size_t         nlen;
    const u_char  *p, *amp;

    /* the next parameter "name=..." from *pp on, the name caselessly */

    if (*pp == NULL) {
        return 0;
    }

    nlen = strlen(name);

    for (p = *pp; p < end; p = amp + 1) {
        amp = memchr(p, '&', end - p);

        if (amp == NULL) {
            amp = end;
        }

        if ((size_t) (amp - p) > nlen && p[nlen] == '='
            && strncasecmp((const char *) p, name, nlen) == 0)
        {
            *value = p + nlen + 1;
            *vlen = amp - *value;
            *pp = amp < end ? amp + 1 : end;
            return 1;
        }
    }

    *pp = end;

    return 0;
}


int
ngx_http_exchange_health_eas_command(const u_char *args, size_t len)
{
    int            s0, s1, s2, version;
    const u_char  *p, *end;

    if (args == NULL || len == 0) {
        return -1;
    }

    /* the plain text query, as protocol versions 2.5 and 12.0 send it */

    if (ngx_http_exchange_health_query_is(args, len, "Cmd", "Ping")) {
        return NGX_HTTP_EXCHANGE_HEALTH_EAS_PING;
    }

    if (ngx_http_exchange_health_query_is(args, len, "Cmd", "Sync")) {
        return NGX_HTTP_EXCHANGE_HEALTH_EAS_SYNC;
    }

    if (memchr(args, '&', len) != NULL) {
        /* another plain text command (Cmd=, User=, ...): it answers */
        return -1;
    }

    /*
     * The base64-encoded query of 12.1 and later: a protocol version
     * byte (121, 140, 141, 160 or 161), then the command code.  Its
     * '+', '/' and '=' may come %-encoded.
     */

    p = args;
    end = args + len;

    s0 = ngx_http_exchange_health_sextet(&p, end);
    s1 = ngx_http_exchange_health_sextet(&p, end);
    s2 = ngx_http_exchange_health_sextet(&p, end);

    if (s0 < 0 || s1 < 0 || s2 < 0) {
        return -1;
    }

    version = s0 << 2 | s1 >> 4;

    if (version != 121 && version != 140 && version != 141
        && version != 160 && version != 161)
    {
        return -1;
    }

    return (s1 & 0x0f) << 4 | s2 >> 2;
}


static int
ngx_http_exchange_health_sextet(const u_char **pp, const u_char *end)
{
    u_char         c;
    const u_char  *p;

    p = *pp;

    if (p >= end) {
        return -1;
    }

    c = *p++;

    if (c == '%') {
        if (end - p < 2) {
            return -1;
        }

        if (p[0] == '2' && (p[1] == 'B' || p[1] == 'b')) {
            c = '+';

        } else if (p[0] == '2' && (p[1] == 'F' || p[1] == 'f')) {
            c = '/';

        } else {
            return -1;
        }

        p += 2;
    }

    *pp = p;

    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


int
ngx_http_exchange_health_eas_sync_waits(const u_char *p, size_t len)
{
    u_char         tok, id, page;
    size_t         n, depth;
    const u_char  *end;

    end = p + len;

    /*
     * WBXML 1.3: a version byte, the public identifier and the charset
     * (multi-byte integers), the string table's length and the table.
     */

    if (p == end) {
        return 0;
    }

    p++;

    if (!ngx_http_exchange_health_mb_uint32(&p, end, &n)
        || !ngx_http_exchange_health_mb_uint32(&p, end, &n)
        || !ngx_http_exchange_health_mb_uint32(&p, end, &n)
        || n > (size_t) (end - p))
    {
        return 0;
    }

    p += n;

    /*
     * The body: <Sync> (AirSync code page 0, token 0x05) at the top,
     * <Wait> (0x24) or <HeartbeatInterval> (0x29) among its children
     * (MS-ASWBXML).  Tags with content (0x40) open an element; END
     * closes one.
     */

    page = 0;
    depth = 0;

    while (p < end) {
        tok = *p++;

        switch (tok) {

        case 0x00:                                      /* SWITCH_PAGE */
            if (p == end) {
                return 0;
            }

            page = *p++;
            continue;

        case 0x01:                                      /* END */
            if (depth <= 1) {
                return 0;
            }

            depth--;
            continue;

        case 0x02:                                      /* ENTITY */
        case 0x80: case 0x81: case 0x82:                /* EXT_T_i */
        case 0x83:                                      /* STR_T */
            if (!ngx_http_exchange_health_mb_uint32(&p, end, &n)) {
                return 0;
            }

            continue;

        case 0x03:                                      /* STR_I */
        case 0x40: case 0x41: case 0x42:                /* EXT_I_i */
            p = memchr(p, '\0', end - p);

            if (p == NULL) {
                return 0;
            }

            p++;
            continue;

        case 0xc0: case 0xc1: case 0xc2:                /* EXT_i */
            continue;

        case 0xc3:                                      /* OPAQUE */
            if (!ngx_http_exchange_health_mb_uint32(&p, end, &n)
                || n > (size_t) (end - p))
            {
                return 0;
            }

            p += n;
            continue;
        }

        id = tok & 0x3f;

        /* literal tags, processing instructions, attributes: not EAS */

        if (id < 0x05 || (tok & 0x80)) {
            return 0;
        }

        if (depth == 0) {
            if (page != 0 || id != 0x05 || !(tok & 0x40)) {
                return 0;
            }

        } else if (depth == 1 && page == 0 && (id == 0x24 || id == 0x29)) {
            return 1;
        }

        if (tok & 0x40) {
            depth++;
        }
    }

    return 0;
}


static int
ngx_http_exchange_health_mb_uint32(const u_char **pp, const u_char *end,
    size_t *value)
{
    size_t         v;
    unsigned       i;
    const u_char  *p;

    /* 7 bits a byte, the high bit set on all but the last; 5 at most */

    p = *pp;
    v = 0;

    for (i = 0; i < 5; i++) {
        if (p == end) {
            return 0;
        }

        v = v << 7 | (*p & 0x7f);

        if (!(*p++ & 0x80)) {
            *pp = p;
            *value = v;
            return 1;
        }
    }

    return 0;
}


int
ngx_http_exchange_health_ews_streaming(const u_char *p, size_t len)
{
    const u_char  *end, *q;

    /*
     * The operation's element: "<GetStreamingEvents" or with a namespace
     * prefix, "<m:GetStreamingEvents", then a blank, '>' or '/'.
     */

    end = p + len;

    for (q = p; end - q >= 19; q++) {
        q = memchr(q, 'G', (end - q) - 18);

        if (q == NULL) {
            return 0;
        }

        if (memcmp(q, "GetStreamingEvents", 18) != 0
            || (q[18] != '>' && q[18] != '/' && q[18] != ' '
                && q[18] != '\t' && q[18] != '\r' && q[18] != '\n'))
        {
            continue;
        }

        if (ngx_http_exchange_health_start_tag(p, q)) {
            return 1;
        }
    }

    return 0;
}


int
ngx_http_exchange_health_read_only(const u_char *name, size_t len)
{
    size_t        i, n;
    const char   *s;

    /*
     * Operations that read and change nothing, by EWS's and OWA's naming:
     * GetItem, FindItem, SyncFolderItems (the client keeps the sync
     * state), and the few reads named otherwise.  The prefix must be
     * followed by a capital: "Getaway" is no GetX.
     */

    static const char  *prefixes[] = { "Get", "Find", "Sync", NULL };
    static const char  *names[] = { "ResolveNames", "ExpandDL", "ConvertId",
                                    NULL };

    for (i = 0; prefixes[i]; i++) {
        s = prefixes[i];
        n = strlen(s);

        if (len > n && memcmp(name, s, n) == 0
            && name[n] >= 'A' && name[n] <= 'Z')
        {
            for (n++; n < len; n++) {
                if (!ngx_http_exchange_health_name_char(name[n])) {
                    return 0;
                }
            }

            return 1;
        }
    }

    for (i = 0; names[i]; i++) {
        if (len == strlen(names[i]) && memcmp(name, names[i], len) == 0) {
            return 1;
        }
    }

    return 0;
}


int
ngx_http_exchange_health_ews_operation(const u_char *p, size_t len,
    const u_char **name, size_t *name_len)
{
    const u_char  *end, *q, *t, *s;

    /*
     * The first element inside the SOAP Body: "<soap:Body>" (any prefix,
     * or none, attributes allowed), blanks, then "<m:GetFolder" or
     * "<GetFolder"; its local name is returned.
     */

    end = p + len;

    for (q = p; end - q >= 5; q++) {
        q = memchr(q, 'B', (end - q) - 4);

        if (q == NULL) {
            return 0;
        }

        if (memcmp(q, "Body", 4) != 0
            || (q[4] != '>' && q[4] != ' ' && q[4] != '\t' && q[4] != '\r'
                && q[4] != '\n')
            || !ngx_http_exchange_health_start_tag(p, q))
        {
            continue;
        }

        /* the end of the Body's start tag; "<Body/>" has no operation */

        t = memchr(q + 4, '>', end - (q + 4));

        if (t == NULL || t[-1] == '/') {
            return 0;
        }

        for (t++; t < end; t++) {
            if (*t != ' ' && *t != '\t' && *t != '\r' && *t != '\n') {
                break;
            }
        }

        if (t == end || *t != '<') {
            return 0;
        }

        s = ++t;

        while (t < end && ngx_http_exchange_health_name_char(*t)) {
            t++;
        }

        if (t < end && *t == ':') {
            s = ++t;

            while (t < end && ngx_http_exchange_health_name_char(*t)) {
                t++;
            }
        }

        /* the name must end inside what was read */

        if (t == s || t == end
            || (*t != '>' && *t != '/' && *t != ' ' && *t != '\t'
                && *t != '\r' && *t != '\n'))
        {
            return 0;
        }

        *name = s;
        *name_len = t - s;

        return 1;
    }

    return 0;
}


int
ngx_http_exchange_health_reads_only(
    const ngx_http_exchange_health_request_t *rq)
{
    size_t         len;
    const u_char  *p, *name;

    switch (rq->protocol) {

    case NGX_HTTP_EXCHANGE_HEALTH_EWS:

        return rq->body
               && ngx_http_exchange_health_ews_operation(rq->body,
                                                         rq->body_len,
                                                         &name, &len)
               && ngx_http_exchange_health_read_only(name, len);

    case NGX_HTTP_EXCHANGE_HEALTH_OWA:

        /* OWA's service calls name their operation: service.svc?action= */

        if (!ngx_http_exchange_health_ends_with(rq->path, rq->path_len,
                                 "/service.svc", sizeof("/service.svc") - 1)
            || rq->args == NULL)
        {
            return 0;
        }

        p = rq->args;

        while (ngx_http_exchange_health_query_next(&p,
                                                   rq->args + rq->args_len,
                                                   "action", &name, &len))
        {
            if (len) {
                return ngx_http_exchange_health_read_only(name, len);
            }
        }

        return 0;

    default:
        return 0;
    }
}


static int
ngx_http_exchange_health_start_tag(const u_char *p, const u_char *q)
{
    const u_char  *t;

    /* q, a name's first byte after p, begins "<name" or "<prefix:name" */

    if (q == p) {
        return 0;
    }

    t = q - 1;

    if (*t == ':') {
        while (t > p && ngx_http_exchange_health_name_char(t[-1])) {
            t--;
        }

        if (t == q - 1 || t == p) {
            return 0;
        }

        t--;
    }

    return *t == '<';
}

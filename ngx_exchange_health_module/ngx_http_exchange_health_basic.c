
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The signed-in probe's service calls, with Basic credentials: the
 * cheapest request of each protocol whose good answer is known and that
 * needs the server's sign-in and its application (service.c judges the
 * answers; docs/exchange-answers.md has the sources):
 *
 *   EWS         POST /EWS/Exchange.asmx, a GetFolder of the inbox, its id
 *               alone: what Managed Availability's EWS probes and load
 *               balancers' EWS monitors ask, and it reads the mailbox;
 *   ActiveSync  OPTIONS /Microsoft-Server-ActiveSync: signed in, it names
 *               the protocol's versions, and unlike a FolderSync it makes
 *               no device partnership in the monitoring mailbox;
 *   MAPI        POST /mapi/emsmdb/ with X-RequestType: PING, MAPI over
 *               HTTP's own "is this endpoint operational" call.
 *
 * The Authorization header carries the password, or NTLM's messages
 * (signin_ntlm.c): only over TLS (nginx -t refuses tls=off), and the
 * buffer is zeroed after each exchange.  An NTLM handshake keeps the
 * connection for its next request; any other request says "close".
 */


static u_char  ngx_http_exchange_health_basic_ews[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<soap:Envelope"
    " xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""
    " xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\""
    " xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/"
    "messages\">"
    "<soap:Header><t:RequestServerVersion Version=\"Exchange2013\"/>"
    "</soap:Header><soap:Body><m:GetFolder><m:FolderShape>"
    "<t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>"
    "<t:DistinguishedFolderId Id=\"inbox\"/></m:FolderIds></m:GetFolder>"
    "</soap:Body></soap:Envelope>";


void
ngx_http_exchange_health_basic_request(ngx_http_exchange_health_probe_t *pr,
    ngx_uint_t p, ngx_str_t *auth, ngx_uint_t keep)
{
    char                                    *conn;
    u_char                                  *at;
    ngx_str_t                               *host, *uri, *method;
    ngx_buf_t                               *b;
    ngx_http_exchange_health_signin_conf_t  *sc;

    sc = pr->conf->signin;
    host = ngx_http_exchange_health_probe_host(pr->conf, pr->peer);
    method = &ngx_http_exchange_health_signin_calls[p].method;
    uri = &ngx_http_exchange_health_signin_calls[p].uri;
    b = pr->request;
    conn = keep ? "keep-alive" : "close";

    /* what the last exchange sent, a form or a session, goes first */

    ngx_explicit_memzero(b->start, b->end - b->start);

    /* EWS's answer is in its body; the others' in their header */

    pr->head_only = (p != NGX_HTTP_EXCHANGE_HEALTH_EWS);

    b->pos = b->start;
    b->last = ngx_sprintf(b->start,
                          "%V %V", method, uri);

    if (p == NGX_HTTP_EXCHANGE_HEALTH_MAPI) {

        /*
         * The front end routes by MailboxId; an address serves, and
         * without one the server routes by the account signed in.
         */

        at = ngx_strlchr(sc->user.data, sc->user.data + sc->user.len, '@');

        if (at) {
            b->last = ngx_cpymem(b->last, "?MailboxId=", 11);
            b->last = ngx_http_exchange_health_form_escape(b->last,
                                                           sc->user.data,
                                                           sc->user.len);
        }
    }

    b->last = ngx_sprintf(b->last,
                          " HTTP/1.1\r\nHost: %V\r\n"
                          "User-Agent: nginx exchange_health probe\r\n"
                          "Authorization: %V\r\n", host, auth);

    switch (p) {

    case NGX_HTTP_EXCHANGE_HEALTH_EWS:
        b->last = ngx_sprintf(b->last,
                          "Content-Type: text/xml; charset=utf-8\r\n"
                          "Content-Length: %uz\r\nConnection: %s\r\n\r\n",
                          sizeof(ngx_http_exchange_health_basic_ews) - 1,
                          conn);
        b->last = ngx_cpymem(b->last, ngx_http_exchange_health_basic_ews,
                             sizeof(ngx_http_exchange_health_basic_ews) - 1);
        break;

    case NGX_HTTP_EXCHANGE_HEALTH_MAPI:
        b->last = ngx_sprintf(b->last,
                          "Content-Type: application/mapi-http\r\n"
                          "X-RequestType: PING\r\n"
                          "X-RequestId: {6E1F8A52-0D7B-4C3E-9A61-2B5D"
                          "7C8E4F10}:%ui\r\n"
                          "X-ClientInfo: {6E1F8A52-0D7B-4C3E-9A61-2B5D"
                          "7C8E4F10}-%ui\r\n"
                          "Content-Length: 0\r\nConnection: %s\r\n\r\n",
                          pr->peer + 1, pr->peer + 1, conn);
        break;

    default: /* NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC */
        b->last = ngx_sprintf(b->last,
                              "Content-Length: 0\r\nConnection: %s\r\n\r\n",
                              conn);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: signed-in call of peer %ui for %s, "
                   "connection %s", pr->peer,
                   ngx_http_exchange_health_protocols[p].name, conn);
}

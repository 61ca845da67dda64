
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_REQUEST_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_REQUEST_H_INCLUDED_


/*
 * What a request is, as far as Exchange health goes: which virtual
 * directory ("protocol") it belongs to and whether it is signed in.
 * Plain C on purpose: unit tests and fuzzers link this file alone.
 */


#include <stddef.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* Exchange virtual directories; health is kept per protocol */
#define NGX_HTTP_EXCHANGE_HEALTH_OWA           0
#define NGX_HTTP_EXCHANGE_HEALTH_ECP           1
#define NGX_HTTP_EXCHANGE_HEALTH_EWS           2
#define NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC    3
#define NGX_HTTP_EXCHANGE_HEALTH_MAPI          4
#define NGX_HTTP_EXCHANGE_HEALTH_RPC           5
#define NGX_HTTP_EXCHANGE_HEALTH_OAB           6
#define NGX_HTTP_EXCHANGE_HEALTH_AUTODISCOVER  7
#define NGX_HTTP_EXCHANGE_HEALTH_POWERSHELL    8
#define NGX_HTTP_EXCHANGE_HEALTH_OTHER         9
#define NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS    10


typedef struct {
    const char  *name;      /* as shown in logs and on the status page */
    const char  *vdir;      /* first URI segment, compared caselessly */
    size_t       vdir_len;
} ngx_http_exchange_health_protocol_t;


/* a character of a host or an XML name */
#define ngx_http_exchange_health_name_char(c)                                \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ((c) >= '0' && (c) <= '9') || (c) == '_' || (c) == '-' || (c) == '.')


extern const ngx_http_exchange_health_protocol_t
    ngx_http_exchange_health_protocols[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];


/*
 * The protocol of a request path such as "/OWA/service.svc", and whether
 * the path is an anonymous page (anonymous_uri): one pass over its
 * virtual directory, for every proxied request.
 */
unsigned ngx_http_exchange_health_uri_facts(const u_char *uri, size_t len,
    int *anonymous);

/*
 * Every protocol's name, for an error message: "owa, ecp, ..., other",
 * made once from the table.
 */
const char *ngx_http_exchange_health_protocol_names(void);

/* a protocol by its name ("owa", "activesync", ...), or -1 */
int ngx_http_exchange_health_protocol_by_name(const u_char *name,
    size_t len);

/*
 * 1 for a page OWA and ECP render for anyone, signed in or not: under
 * auth/ (the forms logon, the errorFE.aspx page a browser is sent to
 * after a failure on any server, their scripts) and auth.owa.  Its answer
 * says nothing of the signed-in path of the server that renders it.
 */
int ngx_http_exchange_health_anonymous_uri(const u_char *uri, size_t len);

/*
 * 1 for a path whose 2xx proves no sign-in although a mailbox server
 * answers it: the front end sends it there for anyone, and Exchange's
 * front end puts X-CalculatedBETarget on every answer it proxies.
 * Autodiscover v2's JSON, OWA's published calendars and WOPI callbacks,
 * ECP's export tool, and static files by their extension (add-in files,
 * the resources reached with X-BEResource or X-AnonResource cookies).
 * Sources: docs/exchange-answers.md, "Anonymous answers a mailbox server
 * took part in".
 */
int ngx_http_exchange_health_open_uri(const u_char *uri, size_t len);

/* 1 when a path holds a mailbox address: '@' or "%40" */
int ngx_http_exchange_health_has_mailbox(const u_char *p, size_t len);

/*
 * A request path with every segment that holds a mailbox address ('@',
 * or "%40") replaced by "(mailbox)": OWA's explicit logon puts one there
 * (/owa/alice@contoso.com/), and what the module records is shown on the
 * status page and kept in the state file.  dst holds 5 * len + 9 bytes;
 * returns the length written.
 */
size_t ngx_http_exchange_health_mask_mailbox(u_char *dst, const u_char *src,
    size_t len);

/*
 * The httpCode= of an errorFE.aspx redirect's Location, or 0.  OWA sends
 * its "can't find the page" (404), bad request (400) and forbidden (403)
 * pages the same way as its server failures (500).
 */
unsigned ngx_http_exchange_health_errorfe_code(const u_char *p, size_t len);

/*
 * The be= of an errorFE.aspx redirect's Location: the mailbox server the
 * front end proxied to, up to its first dot; its length, 0 when there is
 * none or it is not a host name.  *name points into p.
 */
size_t ngx_http_exchange_health_errorfe_backend(const u_char *p, size_t len,
    const u_char **name);

/*
 * The server name in a healthcheck.htm body, "200 OK<br/>EXCH1.contoso.
 * local": the printable run after "<br/>" (any case); its length, 0 when
 * there is none.  *name points into p.
 */
size_t ngx_http_exchange_health_healthcheck_name(const u_char *p,
    size_t len, const u_char **name);

/*
 * Finds cookie "name" in one Cookie header value; returns its value
 * (and length) or NULL.  Names are compared exactly, as browsers do.
 * The second finds the first cookie of the header whose name is one of
 * names[0..n-1]: the session cookies of every way OWA signs users in.
 */
typedef struct {
    size_t         len;
    const u_char  *data;
} ngx_http_exchange_health_cookie_name_t;

const u_char *ngx_http_exchange_health_cookie(const u_char *p, size_t len,
    const char *name, size_t *vlen);
const u_char *ngx_http_exchange_health_session_cookie(const u_char *p,
    size_t len, const ngx_http_exchange_health_cookie_name_t *names, size_t n,
    size_t *vlen);

/*
 * NTLM and Negotiate sign in a connection, not a request.  The first
 * says whether an Authorization or WWW-Authenticate value is of either
 * scheme.  The second finds an NTLM authenticate (type 3) message in an
 * Authorization value, raw or inside Negotiate's SPNEGO token, and
 * writes its "DOMAIN\user" (UTF-16LE, as sent; cut to size) to dst;
 * it returns the length, 0 when there is none (a Kerberos ticket, a
 * type 1 message, anything malformed).  The third says whether the
 * value carries an NTLM negotiate (type 1) message, raw or inside
 * SPNEGO.  Only the first NGX_HTTP_EXCHANGE_HEALTH_NTLM_TOKEN bytes of
 * the token are decoded.
 */

#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_TOKEN  4096
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_USER   128

int ngx_http_exchange_health_ntlm_scheme(const u_char *p, size_t len);

/*
 * A WWW-Authenticate value that carries a token of either scheme: NTLM's
 * challenge ("NTLM <type 2>", "Negotiate <type 2 in SPNEGO>"), or the
 * server's own Kerberos token on the answer that signs a connection in.
 * 1 for NTLM, 2 for Negotiate, 0 for a bare scheme or anything else.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_TOKEN_NTLM       1
#define NGX_HTTP_EXCHANGE_HEALTH_TOKEN_NEGOTIATE  2

int ngx_http_exchange_health_ntlm_token(const u_char *p, size_t len);
size_t ngx_http_exchange_health_ntlm_user(const u_char *p, size_t len,
    u_char *dst, size_t size);
int ngx_http_exchange_health_ntlm_type1(const u_char *p, size_t len);


/* ngx_http_exchange_health_operation.c: what a request asks Exchange */

/*
 * Requests meant to wait: Exchange holds them open on purpose, until
 * something happens or a time given by the client has passed (OWA's
 * notification channel, ActiveSync's Direct Push, MAPI's and EWS's
 * notifications), or they are a channel that lives for minutes (RPC over
 * HTTP).  Their timeouts are nobody's failure, and their answers are
 * never held back.  What each protocol sends, and the sources:
 * docs/exchange-answers.md, "Requests meant to wait".
 */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE         0
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_OWA_NOTIFY   1    /* ev.owa2 */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_PING     2
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_SYNC     3    /* Wait, Heartbeat */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_MAPI_NOTIFY  4    /* NotificationWait */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_EWS_STREAM   5    /* GetStreamingEv. */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_RPC_CHANNEL  6    /* RPC_IN/OUT_DATA */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_N            7

/* the ActiveSync commands that may wait, by their code (MS-ASHTTP) */
#define NGX_HTTP_EXCHANGE_HEALTH_EAS_SYNC     0
#define NGX_HTTP_EXCHANGE_HEALTH_EAS_PING     18

/* how much of a request body is read for a WBXML or SOAP operation */
#define NGX_HTTP_EXCHANGE_HEALTH_WAIT_BODY    8192


/* what of a request tells whether it waits; NULL or -1 when absent */
typedef struct {
    unsigned        protocol;
    const u_char   *method;
    size_t          method_len;
    const u_char   *path;               /* without the query */
    size_t          path_len;
    const u_char   *args;               /* the query, undecoded */
    size_t          args_len;
    const u_char   *request_type;       /* MAPI's X-RequestType */
    size_t          request_type_len;
    off_t           content_length;
    const u_char   *body;               /* its first bytes, if at hand */
    size_t          body_len;
} ngx_http_exchange_health_request_t;


extern const char *ngx_http_exchange_health_wait_names[
    NGX_HTTP_EXCHANGE_HEALTH_WAIT_N];

/* NGX_HTTP_EXCHANGE_HEALTH_WAIT_*: what a request waits for, if it does */
int ngx_http_exchange_health_waits(
    const ngx_http_exchange_health_request_t *rq);

/*
 * 1 when the query has the parameter "name" with the value "value", both
 * compared caselessly, as sent (not %-decoded).
 */
int ngx_http_exchange_health_query_is(const u_char *args, size_t len,
    const char *name, const char *value);

/*
 * The ActiveSync command of a query: Cmd=Ping (plain text), or the
 * command code of a base64-encoded query (its second byte, after a
 * protocol version byte of 12.1 to 16.1); -1 when unknown.
 */
int ngx_http_exchange_health_eas_command(const u_char *args, size_t len);

/*
 * 1 when a WBXML ActiveSync body is a Sync whose request has a Wait or
 * HeartbeatInterval element: the server may hold it that long.
 */
int ngx_http_exchange_health_eas_sync_waits(const u_char *p, size_t len);

/* 1 when a SOAP body's operation is EWS's GetStreamingEvents */
int ngx_http_exchange_health_ews_streaming(const u_char *p, size_t len);

/*
 * 1 when a POST only reads, so that a server's failure of it may be sent
 * to another server: an EWS operation (ews_operation) or an OWA service
 * call (service.svc?action=) that read_only names a read.
 */
int ngx_http_exchange_health_reads_only(
    const ngx_http_exchange_health_request_t *rq);

/* 1 for GetX, FindX, SyncX, ResolveNames, ExpandDL, ConvertId */
int ngx_http_exchange_health_read_only(const u_char *name, size_t len);

/*
 * The local name of the first element inside a SOAP Body, from the
 * first bytes of an EWS request's body; 0 when it is not all there.
 */
int ngx_http_exchange_health_ews_operation(const u_char *p, size_t len,
    const u_char **name, size_t *name_len);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_REQUEST_H_INCLUDED_ */

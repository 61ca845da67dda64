
/*
 * Unit tests of the request facts: protocol from the URI, cookies,
 * anonymous pages, the errorFE redirect's httpCode, the NTLM user, the
 * name in a healthcheck.htm body, the requests meant to wait.
 */


#include <string.h>

#include "ngx_http_exchange_health_request.h"
#include "unit.h"


static unsigned
proto(const char *uri)
{
    int  anonymous;

    return ngx_http_exchange_health_uri_facts((const u_char *) uri,
                                              strlen(uri), &anonymous);
}


static int
anon(const char *uri)
{
    return ngx_http_exchange_health_anonymous_uri((const u_char *) uri,
                                                  strlen(uri));
}


static int
open_uri(const char *uri)
{
    return ngx_http_exchange_health_open_uri((const u_char *) uri,
                                             strlen(uri));
}


static unsigned
code(const char *location)
{
    return ngx_http_exchange_health_errorfe_code((const u_char *) location,
                                                 strlen(location));
}


static const char *
mask(const char *path)
{
    size_t         len, n;
    static u_char  buf[5 * 256 + 9 + 1];

    len = strlen(path);

    /* a canary past the documented bound */
    memset(buf, 'X', sizeof(buf));

    n = ngx_http_exchange_health_mask_mailbox(buf, (const u_char *) path,
                                              len);
    if (n > 5 * len + 9 || buf[5 * len + 9] != 'X') {
        return "(overflow)";
    }

    buf[n] = '\0';

    return (const char *) buf;
}


static const char *
cookie(const char *header, const char *name)
{
    size_t         len;
    const u_char  *v;
    static char    buf[256];

    v = ngx_http_exchange_health_cookie((const u_char *) header,
                                        strlen(header), name, &len);
    if (v == NULL) {
        return NULL;
    }

    memcpy(buf, v, len);
    buf[len] = '\0';

    return buf;
}


static int
same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}


static int
scheme(const char *v)
{
    return ngx_http_exchange_health_ntlm_scheme((const u_char *) v,
                                                strlen(v));
}


static const char *
session(const char *header)
{
    size_t                                  vlen;
    const u_char                           *v;
    static char                             buf[256];
    static ngx_http_exchange_health_cookie_name_t  names[] = {
        { 6, (const u_char *) "cadata" },
        { 7, (const u_char *) "FedAuth" },
        { 22, (const u_char *) "OpenIdConnect.token.v1" }
    };

    v = ngx_http_exchange_health_session_cookie((const u_char *) header,
                                                strlen(header), names, 3,
                                                &vlen);
    if (v == NULL || vlen >= sizeof(buf)) {
        return NULL;
    }

    memcpy(buf, v, vlen);
    buf[vlen] = '\0';

    return buf;
}


static int
token(const char *v)
{
    return ngx_http_exchange_health_ntlm_token((const u_char *) v,
                                               strlen(v));
}


/* CONTOSO\alice: an NTLM type-3 message as EH::Ntlm::type3 makes it */
#define TYPE3_ALICE                                                          \
    "NTLM TlRMTVNTUAADAAAAAAAAAEAAAAAIAAgAQAAAAA4ADgBIAAAACgAKAFYAAAAA"    \
    "AAAAYAAAAAAAAABgAAAABYIIADEyMzQ1Njc4QwBPAE4AVABPAFMATwBhAGwAaQBj"    \
    "AGUA"

static u_char  ubuf[128];

static size_t
user(const char *v, size_t size)
{
    return ngx_http_exchange_health_ntlm_user((const u_char *) v, strlen(v),
                                              ubuf, size);
}


static int
type1(const char *v)
{
    return ngx_http_exchange_health_ntlm_type1((const u_char *) v,
                                               strlen(v));
}


static char  hcbuf[64];

static size_t
hc(const char *body)
{
    size_t         n;
    const u_char  *name;

    n = ngx_http_exchange_health_healthcheck_name((const u_char *) body,
                                                  strlen(body), &name);
    if (n >= sizeof(hcbuf)) {
        return 0;
    }

    memcpy(hcbuf, name, n);
    hcbuf[n] = '\0';

    return n;
}


static int
qis(const char *args, const char *name, const char *value)
{
    return ngx_http_exchange_health_query_is((const u_char *) args,
                                             strlen(args), name, value);
}


static int
eas(const char *args)
{
    return ngx_http_exchange_health_eas_command((const u_char *) args,
                                                strlen(args));
}


/* WBXML bodies: a header (1.3, ActiveSync, UTF-8, no string table) */
#define WBXML_HEAD  "\x03\x01\x6a\x00"

#define SYNC(s)  sync_waits(s, sizeof(s) - 1)

static int
sync_waits(const char *body, size_t len)
{
    return ngx_http_exchange_health_eas_sync_waits((const u_char *) body,
                                                   len);
}


static int
ews(const char *body)
{
    return ngx_http_exchange_health_ews_streaming((const u_char *) body,
                                                  strlen(body));
}


static int
be(const char *location, const char *want)
{
    size_t          n;
    const u_char   *name;

    name = NULL;
    n = ngx_http_exchange_health_errorfe_backend((const u_char *) location,
                                                 strlen(location), &name);
    if (want == NULL) {
        return n == 0;
    }

    return n == strlen(want) && memcmp(name, want, n) == 0;
}


static int
reads(unsigned protocol, const char *args, const char *body)
{
    ngx_http_exchange_health_request_t  rq;

    memset(&rq, 0, sizeof(rq));

    rq.protocol = protocol;
    rq.method = (const u_char *) "POST";
    rq.method_len = 4;
    rq.path = (const u_char *) (protocol == NGX_HTTP_EXCHANGE_HEALTH_OWA
                                ? "/owa/service.svc" : "/EWS/Exchange.asmx");
    rq.path_len = strlen((const char *) rq.path);
    rq.args = (const u_char *) args;
    rq.args_len = args ? strlen(args) : 0;
    rq.body = (const u_char *) body;
    rq.body_len = body ? strlen(body) : 0;

    return ngx_http_exchange_health_reads_only(&rq);
}


static int
waits(unsigned protocol, const char *method, const char *path,
    const char *args, const char *request_type, off_t content_length,
    const char *body, size_t body_len)
{
    ngx_http_exchange_health_request_t  rq;

    memset(&rq, 0, sizeof(rq));

    rq.protocol = protocol;
    rq.method = (const u_char *) method;
    rq.method_len = strlen(method);
    rq.path = (const u_char *) path;
    rq.path_len = strlen(path);
    rq.args = (const u_char *) args;
    rq.args_len = args ? strlen(args) : 0;
    rq.request_type = (const u_char *) request_type;
    rq.request_type_len = request_type ? strlen(request_type) : 0;
    rq.content_length = content_length;
    rq.body = (const u_char *) body;
    rq.body_len = body_len;

    return ngx_http_exchange_health_waits(&rq);
}


int
main(void)
{
    UNIT_OK(proto("/owa/") == NGX_HTTP_EXCHANGE_HEALTH_OWA, "/owa/");
    UNIT_OK(proto("/OWA") == NGX_HTTP_EXCHANGE_HEALTH_OWA, "/OWA, any case");
    UNIT_OK(proto("/owa/service.svc?action=x")
            == NGX_HTTP_EXCHANGE_HEALTH_OWA, "/owa/service.svc");
    UNIT_OK(proto("/ecp/DDI/x") == NGX_HTTP_EXCHANGE_HEALTH_ECP, "/ecp");
    UNIT_OK(proto("/EWS/Exchange.asmx") == NGX_HTTP_EXCHANGE_HEALTH_EWS,
            "/EWS");
    UNIT_OK(proto("/Microsoft-Server-ActiveSync?Cmd=Sync")
            == NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC, "ActiveSync");
    UNIT_OK(proto("/mapi/emsmdb/") == NGX_HTTP_EXCHANGE_HEALTH_MAPI, "/mapi");
    UNIT_OK(proto("/rpc/rpcproxy.dll") == NGX_HTTP_EXCHANGE_HEALTH_RPC,
            "/rpc");
    UNIT_OK(proto("/OAB/x/oab.xml") == NGX_HTTP_EXCHANGE_HEALTH_OAB, "/OAB");
    UNIT_OK(proto("/Autodiscover/Autodiscover.xml")
            == NGX_HTTP_EXCHANGE_HEALTH_AUTODISCOVER, "/Autodiscover");
    UNIT_OK(proto("/PowerShell/") == NGX_HTTP_EXCHANGE_HEALTH_POWERSHELL,
            "/PowerShell");
    UNIT_OK(proto("/") == NGX_HTTP_EXCHANGE_HEALTH_OTHER, "/ is other");
    UNIT_OK(proto("") == NGX_HTTP_EXCHANGE_HEALTH_OTHER, "empty is other");
    UNIT_OK(proto("/owax/") == NGX_HTTP_EXCHANGE_HEALTH_OTHER,
            "/owax is not /owa");
    UNIT_OK(proto("/ow") == NGX_HTTP_EXCHANGE_HEALTH_OTHER,
            "/ow is not /owa");
    UNIT_OK(proto("owa/") == NGX_HTTP_EXCHANGE_HEALTH_OWA,
            "a path without its slash");

    UNIT_OK(ngx_http_exchange_health_protocol_by_name((const u_char *)
                                                      "activesync", 10)
            == NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC, "protocol by name");
    UNIT_OK(ngx_http_exchange_health_protocol_by_name((const u_char *)
                                                      "owa2", 4) == -1,
            "unknown protocol name");

    UNIT_OK(same(cookie("cadata=abc; cadataKey=k", "cadata"), "abc"),
            "cadata first");
    UNIT_OK(same(cookie("cadataKey=k; cadata=abc", "cadata"), "abc"),
            "cadata after a cookie whose name starts the same");
    UNIT_OK(cookie("cadataKey=k; cadataIV=v", "cadata") == NULL,
            "cadataKey is not cadata");
    UNIT_OK(same(cookie("a=1;cadata=x=y", "cadata"), "x=y"),
            "no space after ';', '=' in the value");
    UNIT_OK(same(cookie("cadata=", "cadata"), ""), "empty value");
    UNIT_OK(cookie("", "cadata") == NULL, "empty header");

    /* the session cookies of forms, AD FS and OpenID Connect sign-in */
    UNIT_OK(same(session("a=1; FedAuth=77u/PD94; FedAuth1=PC9TZ"),
                 "77u/PD94"), "session: AD FS, not its second chunk");
    UNIT_OK(same(session("OpenIdConnect.token.v1=eyJ0; x=y"), "eyJ0"),
            "session: OpenID Connect");
    UNIT_OK(same(session("FedAuth1=z; cadata=abc; FedAuth=q"), "abc"),
            "session: the first in the header");
    UNIT_OK(session("FedAuth1=z; cadataKey=k; FedAuthx=1") == NULL,
            "session: none of the names");
    UNIT_OK(cookie("cadata", "cadata") == NULL, "a name without '='");
    UNIT_OK(cookie(";;; ;", "cadata") == NULL, "only separators");

    UNIT_OK(anon("/owa/auth/logon.aspx"), "the logon page");
    UNIT_OK(anon("/OWA/Auth/errorFE.aspx"), "errorFE.aspx, any case");
    UNIT_OK(anon("/owa/auth/15.1.2507/themes/resources/logo.png"),
            "the logon page's images");
    UNIT_OK(anon("/owa/auth.owa"), "the logon form's target");
    UNIT_OK(anon("/ecp/auth/logon.aspx"), "ECP's logon");
    UNIT_OK(!anon("/owa/healthcheck.htm"),
            "healthcheck.htm: judged, it names the server");
    UNIT_OK(!anon("/owa/"), "OWA itself is signed in");
    UNIT_OK(!anon("/owa"), "the bare directory");
    UNIT_OK(!anon("/owa/service.svc"), "a service call");
    UNIT_OK(!anon("/owa/authx/page"), "a segment that starts like auth");
    UNIT_OK(!anon("/owa/auth"), "auth with nothing after it");
    UNIT_OK(!anon("/auth/logon.aspx"), "auth/ as the first segment");
    UNIT_OK(!anon(""), "empty");
    UNIT_OK(!anon("/"), "root");

    UNIT_OK(code("/owa/auth/errorFE.aspx?httpCode=500&owaError=X") == 500,
            "httpCode first");
    UNIT_OK(code("https://mail.contoso.com/owa/auth/errorfe.aspx"
                 "?owaError=X&HTTPCODE=404&be=EXCH2") == 404,
            "httpCode later, any case, absolute URL");
    UNIT_OK(code("/owa/auth/errorFE.aspx?httpCode=404") == 404,
            "httpCode last");
    UNIT_OK(code("/owa/auth/errorFE.aspx?xhttpCode=404") == 0,
            "a parameter that ends like httpCode");
    UNIT_OK(code("/owa/auth/errorFE.aspx?httpCode=40") == 0, "two digits");
    UNIT_OK(code("/owa/auth/errorFE.aspx?httpCode=4044") == 0,
            "four digits");
    UNIT_OK(code("/owa/auth/errorFE.aspx?httpCode=") == 0, "empty code");
    UNIT_OK(code("/owa/auth/errorFE.aspx") == 0, "no query");
    UNIT_OK(code("/owa/auth/logon.aspx?httpCode=404") == 0,
            "not the errorFE page");
    UNIT_OK(code("/owa/auth/errorFE.aspx?a=1&&httpCode=403&") == 403,
            "empty parameters around it");

    UNIT_OK(same(mask("/owa/alice@contoso.com/"), "/owa/(mailbox)/"),
            "an explicit logon path");
    UNIT_OK(same(mask("/owa/Alice%40Contoso.com/service.svc"),
                 "/owa/(mailbox)/service.svc"), "%40, and the rest kept");
    UNIT_OK(same(mask("/owa/service.svc"), "/owa/service.svc"),
            "no address: unchanged");
    UNIT_OK(same(mask("/owa/a@b/c@d"), "/owa/(mailbox)/(mailbox)"),
            "every segment, the last without '/'");
    UNIT_OK(same(mask("//@//"), "//(mailbox)//"), "empty segments kept");
    UNIT_OK(same(mask("@/@/@/@/@/@/@"),
                 "(mailbox)/(mailbox)/(mailbox)/(mailbox)/(mailbox)/"
                 "(mailbox)/(mailbox)"), "the worst case stays in 5n + 9");
    UNIT_OK(same(mask("%4"), "%4"), "a cut %40 is no address");
    UNIT_OK(same(mask(""), ""), "empty");

    UNIT_OK(ngx_http_exchange_health_has_mailbox((const u_char *) "/owa/a@b/",
                                                 9), "has: '@'");
    UNIT_OK(ngx_http_exchange_health_has_mailbox((const u_char *) "/x%40y",
                                                 6), "has: %40");
    UNIT_OK(!ngx_http_exchange_health_has_mailbox((const u_char *) "/x%4",
                                                  4), "has not: a cut %4");
    UNIT_OK(!ngx_http_exchange_health_has_mailbox((const u_char *) "/owa/",
                                                  5), "has not: no address");

    UNIT_OK(scheme("NTLM TlRMTVNTUAABAAAA"), "scheme: NTLM and a token");
    UNIT_OK(scheme("negotiate YIIB"), "scheme: Negotiate, any case");
    UNIT_OK(scheme("NTLM"), "scheme: a 401's bare NTLM");
    UNIT_OK(scheme("Negotiate"), "scheme: a 401's bare Negotiate");
    UNIT_OK(!scheme("NTLMv2 abc"), "scheme: not a longer word");
    UNIT_OK(!scheme("Basic YWxpY2U6eA=="), "scheme: not Basic");
    UNIT_OK(!scheme("NTL"), "scheme: not a cut one");
    UNIT_OK(!scheme(""), "scheme: not empty");

    /* answered for anyone by a mailbox server */
    UNIT_OK(open_uri("/autodiscover/autodiscover.json"), "open: the JSON");
    UNIT_OK(open_uri("/Autodiscover/AutoDiscover.json?Email=a%40b&Protocol=x"),
            "open: any case, a query");
    UNIT_OK(open_uri("/autodiscover/autodiscover.json/v1.0/a@b?Protocol=x"),
            "open: v1.0 path");
    UNIT_OK(open_uri("/autodiscover//autodiscover.json"),
            "open: two slashes");
    UNIT_OK(!open_uri("/autodiscover/autodiscover.xml"), "open: not the XML");
    UNIT_OK(!open_uri("/autodiscover/autodiscover.jsonx/"),
            "open: not a longer name");
    UNIT_OK(!open_uri("/autodiscover"), "open: not the directory");
    UNIT_OK(open_uri("/owa/calendar/abc@contoso.com/xyz/calendar.html"),
            "open: a published calendar");
    UNIT_OK(open_uri("/owa/wopi/files/@/owaatt?access_token=x"),
            "open: WOPI");
    UNIT_OK(open_uri("/ecp/Current/exporttool/microsoft.exchange.ediscovery."
                     "exporttool.application"), "open: the export tool");
    UNIT_OK(open_uri("/ecp/y.js"), "open: ProxyLogon's static file");
    UNIT_OK(open_uri("/owa/auth/x.js?a=b/c"), "open: a static file, a query");
    UNIT_OK(open_uri("/owa/a@b.com/prem/15.2.1118/ext/def/x/y.PNG"),
            "open: an add-in file, any case");
    UNIT_OK(!open_uri("/owa/"), "open: not OWA");
    UNIT_OK(!open_uri("/owa/service.svc?action=GetFolder"),
            "open: not a service call");
    UNIT_OK(!open_uri("/owa/calendarx"), "open: not a longer name");
    UNIT_OK(!open_uri("/ecp/"), "open: not ECP");
    UNIT_OK(!open_uri("/ecp/DDI/DDIService.svc/GetList"), "open: not DDI");
    UNIT_OK(!open_uri("/EWS/Exchange.asmx"), "open: not EWS");
    UNIT_OK(!open_uri("/mapi/emsmdb/?MailboxId=a@b"), "open: not MAPI");
    UNIT_OK(!open_uri("/owa/x.jsx"), "open: not another extension");
    UNIT_OK(!open_uri("/owa/.js/x"), "open: the last segment only");
    UNIT_OK(!open_uri(""), "open: not empty");

    /* a challenge, or the server's Kerberos token: what binds */
    UNIT_OK(token("NTLM TlRMTVNTUAACAAAA") == 1, "token: an NTLM challenge");
    UNIT_OK(token("negotiate oYGgMIGdoAMKAQChCwYJ==") == 2,
            "token: a Negotiate token");
    UNIT_OK(token("Negotiate  TlRMTVNTUAACAAAA") == 2,
            "token: after two spaces");
    UNIT_OK(!token("NTLM"), "token: not a bare scheme");
    UNIT_OK(!token("NTLM "), "token: not a scheme and a space");
    UNIT_OK(!token("Negotiate, NTLM"), "token: not a list of schemes");
    UNIT_OK(!token("NTLM realm=\"x\""), "token: not parameters");
    UNIT_OK(!token("Basic realm=\"x\""), "token: not Basic");
    UNIT_OK(!token("Bearer abc"), "token: not Bearer");
    UNIT_OK(!token("NTLMx abc"), "token: not another scheme");
    UNIT_OK(!token(""), "token: not empty");

    UNIT_OK(user(TYPE3_ALICE, 128) == 25
            && memcmp(ubuf, "C\0O\0N\0T\0O\0S\0O\0\\a\0l\0i\0c\0e\0",
                      25) == 0,
            "user: DOMAIN\\user of a type-3, as sent");
    UNIT_OK(user("Negotiate YEgGBisGAQUFAqE+TlRMTVNTUAADAAAAAAAAAEAAAAAI"
                 "AAgAQAAAAAIAAgBIAAAABgAGAEoAAAAAAAAAUAAAAAAAAABQAAAABYII"
                 "ADEyMzQ1Njc4WABiAG8AYgA=", 128) == 9
            && memcmp(ubuf, "X\0\\b\0o\0b\0", 9) == 0,
            "user: a type-3 inside Negotiate's SPNEGO token");
    UNIT_OK(user("NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=", 128)
            == 0, "user: none in a type-1");
    UNIT_OK(user("NTLM TlRMTVNTUAADAAAAAAAAAEAAAAAIAAgAQAAAAAIAAgBIAAAABgAGAI"
                 "gTAAAAAAAAUAAAAAAAAABQAAAABYIIADEyMzQ1Njc4WABiAG8AYgA=", 128)
            == 0, "user: none when a buffer points past the message");
    UNIT_OK(user("NTLM TlRMTVNTUAADAAAA", 128) == 0, "user: none, cut short");
    UNIT_OK(user("Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEF", 128)
            == 0, "user: none in a Kerberos ticket");
    UNIT_OK(user("NTLM", 128) == 0, "user: none without a token");
    UNIT_OK(user(TYPE3_ALICE, 20) == 20,
            "user: cut to the room given");

    UNIT_OK(type1("NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA="),
            "type1: a raw type-1");
    UNIT_OK(type1("Negotiate YEgGBisGAQUFAqE+TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAA"
                  "AAAAAAAAAAA="),
            "type1: a type-1 inside Negotiate's SPNEGO token");
    UNIT_OK(!type1(TYPE3_ALICE), "type1: not a type-3");
    UNIT_OK(!type1("Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEF"),
            "type1: not a Kerberos ticket");
    UNIT_OK(!type1("NTLM TlRMTVNTUAABAAAAB4I="), "type1: not one cut short");
    UNIT_OK(!type1("NTLM"), "type1: not without a token");
    UNIT_OK(!type1("NTLM !!!!"), "type1: not in bad base64");

    UNIT_OK(hc("200 OK<br/>EXCH1.contoso.local\r\n")
            && strcmp(hcbuf, "EXCH1.contoso.local") == 0,
            "healthcheck: the name after <br/>, without the line end");
    UNIT_OK(hc("200 OK<BR/>exch2") && strcmp(hcbuf, "exch2") == 0,
            "healthcheck: <BR/> in any case, to the end of the body");
    UNIT_OK(hc("200 OK<br/>EXCH3 trailing words")
            && strcmp(hcbuf, "EXCH3") == 0,
            "healthcheck: the printable run only");
    UNIT_OK(hc("200 OK") == 0, "healthcheck: none without <br/>");
    UNIT_OK(hc("200 OK<br/>") == 0, "healthcheck: none after a bare <br/>");
    UNIT_OK(hc("200 OK<br") == 0, "healthcheck: none in a cut <br/>");
    UNIT_OK(hc("<br/>\x01name") == 0,
            "healthcheck: none when a control byte follows");

    UNIT_OK(qis("ns=PendingRequest&ev=PendingNotificationRequest&UA=0",
                "ev", "PendingNotificationRequest"), "query: a parameter");
    UNIT_OK(qis("NS=pendingrequest", "ns", "PendingRequest"),
            "query: names and values caselessly");
    UNIT_OK(!qis("xns=PendingRequest", "ns", "PendingRequest"),
            "query: a name that ends like it");
    UNIT_OK(!qis("ns=PendingRequestX", "ns", "PendingRequest"),
            "query: a value that starts like it");
    UNIT_OK(!qis("ns", "ns", "PendingRequest"), "query: a name alone");
    UNIT_OK(!qis("", "ns", "PendingRequest"), "query: empty");
    UNIT_OK(!ngx_http_exchange_health_query_is(NULL, 0, "ns", "x"),
            "query: none");

    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OWA, "GET", "/owa/ev.owa2",
                  "ns=PendingRequest&ev=PendingNotificationRequest&UA=0"
                  "&cid=8a2f&X-OWA-CANARY=x&n=96", NULL, -1, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_OWA_NOTIFY,
            "waits: OWA's pending notification GET");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OWA, "GET", "/OWA/EV.OWA",
                  "oeh=1&ns=PendingRequest&ev=PendingNotificationRequest",
                  NULL, -1, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_OWA_NOTIFY,
            "waits: Exchange 2010's ev.owa, any case");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OWA, "POST", "/owa/ev.owa2",
                  "ns=PendingRequest&ev=FinishNotificationRequest&UA=0",
                  NULL, 0, NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: not FinishNotificationRequest, it answers at once");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OWA, "GET", "/owa/service.svc",
                  "ns=PendingRequest&ev=PendingNotificationRequest", NULL,
                  -1, NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: the query alone on another page");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OWA, "GET", "/owa/ev.owa2", NULL,
                  NULL, -1, NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: ev.owa2 without its query");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_ECP, "GET", "/ecp/ev.owa2",
                  "ns=PendingRequest&ev=PendingNotificationRequest", NULL,
                  -1, NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: OWA's channel only in OWA");

    UNIT_OK(eas("Cmd=Ping&User=alice&DeviceId=dev1&DeviceType=iPhone")
            == NGX_HTTP_EXCHANGE_HEALTH_EAS_PING, "eas: Cmd=Ping");
    UNIT_OK(eas("User=alice&DeviceId=dev1&DeviceType=iPhone&Cmd=Sync")
            == NGX_HTTP_EXCHANGE_HEALTH_EAS_SYNC, "eas: Cmd=Sync, last");
    UNIT_OK(eas("Cmd=FolderSync&User=alice&DeviceId=d&DeviceType=t") == -1,
            "eas: another plain command");
    UNIT_OK(eas("jRIJBARkZXYxAAZpUGhvbmU=") == 18,
            "eas: base64, 14.1, Ping");
    UNIT_OK(eas("jAAJBARkZXYxAAZpUGhvbmU=") == 0,
            "eas: base64, 14.0, Sync");
    UNIT_OK(eas("of%2F%2F") == 0xff, "eas: base64 with %2F");
    UNIT_OK(eas("ZBIJBA==") == -1, "eas: base64 of an unknown version");
    UNIT_OK(eas("jR") == -1, "eas: base64 cut short");
    UNIT_OK(eas("jR%2") == -1, "eas: a cut %-escape");
    UNIT_OK(eas("") == -1, "eas: no query");

    UNIT_OK(SYNC(WBXML_HEAD
                       "\x45\x5c\x4f\x4b\x03" "1\0\x01\x52\x03" "5\0\x01"
                       "\x01\x01" "\x64\x03" "5\0\x01" "\x01"),
            "sync: Wait after the collections");
    UNIT_OK(SYNC(WBXML_HEAD "\x45\x69\x03" "600\0\x01\x01"),
            "sync: HeartbeatInterval");
    UNIT_OK(!SYNC(WBXML_HEAD
                        "\x45\x5c\x4f\x4b\x03" "1\0\x01\x52\x03" "5\0\x01"
                        "\x01\x01\x01"),
            "sync: a Sync that answers at once");
    UNIT_OK(!SYNC(WBXML_HEAD
                        "\x45\x5c\x4f\x64\x03" "5\0\x01\x01\x01\x01"),
            "sync: a Wait token deeper down is not the Sync's");
    UNIT_OK(!SYNC(WBXML_HEAD "\x45\x00\x01\x64\x03" "5\0\x01\x01"),
            "sync: token 0x24 of another code page");
    UNIT_OK(!SYNC(WBXML_HEAD "\x00\x0d\x45\x48\x03" "480\0\x01\x01"),
            "sync: a Ping body (code page 13)");
    UNIT_OK(SYNC(WBXML_HEAD "\x45\x5c\xc3\x03\x64\x64\x64\x01"
                       "\x64\x03" "1\0\x01\x01"),
            "sync: opaque data skipped, Wait found after it");
    UNIT_OK(!SYNC(WBXML_HEAD "\x45\x5c\xc3\x09\x64\x64"),
            "sync: opaque data longer than the body");
    UNIT_OK(!SYNC(WBXML_HEAD "\x45\x5c\x03" "no end"),
            "sync: an inline string cut short");
    UNIT_OK(!SYNC(WBXML_HEAD "\x45\x01\x64\x03" "5\0\x01"),
            "sync: nothing after the Sync closed");
    UNIT_OK(!SYNC("\x03\x01\x6a\x05" "abc"),
            "sync: a string table longer than the body");
    UNIT_OK(!SYNC("\x03\x81\x81\x81\x81\x81"),
            "sync: a multi-byte integer of six bytes");
    UNIT_OK(!SYNC(""), "sync: empty");

    UNIT_OK(ews("<soap:Envelope><soap:Body><m:GetStreamingEvents>"
                "<m:SubscriptionIds>"), "ews: <m:GetStreamingEvents>");
    UNIT_OK(ews("<Body><GetStreamingEvents xmlns=\"http://schemas...\">"),
            "ews: without a prefix, with a namespace");
    UNIT_OK(!ews("<m:GetEvents><m:SubscriptionId>"),
            "ews: GetEvents (pull) answers at once");
    UNIT_OK(!ews("<m:GetStreamingEventsResponse>"),
            "ews: a name that starts like it");
    UNIT_OK(!ews("<t:Subject>GetStreamingEvents</t:Subject>"),
            "ews: the word as text");
    UNIT_OK(!ews(":GetStreamingEvents>"), "ews: a prefix with nothing before");
    UNIT_OK(!ews("GetStreamingEvents"), "ews: the word alone");

    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC, "POST",
                  "/Microsoft-Server-ActiveSync",
                  "Cmd=Ping&User=alice&DeviceId=d&DeviceType=t", NULL, 0,
                  NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_PING,
            "waits: ActiveSync Ping, even with the body left out");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC, "POST",
                  "/Microsoft-Server-ActiveSync", "jAAJBARkZXYxAAZpUGhvbmU=",
                  NULL, 13, WBXML_HEAD "\x45\x69\x03" "600\0\x01\x01", 13)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_EAS_SYNC,
            "waits: ActiveSync Sync with HeartbeatInterval");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC, "POST",
                  "/Microsoft-Server-ActiveSync",
                  "Cmd=Sync&User=a&DeviceId=d&DeviceType=t", NULL, 12, NULL,
                  0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: a Sync whose body is not at hand");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_MAPI, "POST", "/mapi/emsmdb/",
                  "MailboxId=x", "notificationwait", 8, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_MAPI_NOTIFY,
            "waits: MAPI NotificationWait, any case");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_MAPI, "POST", "/mapi/emsmdb/",
                  NULL, "Execute", 8, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE, "waits: MAPI Execute");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_EWS, "POST", "/EWS/Exchange.asmx",
                  NULL, NULL, 40, "<m:GetStreamingEvents>", 22)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_EWS_STREAM,
            "waits: EWS GetStreamingEvents");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_RPC, "RPC_IN_DATA",
                  "/rpc/rpcproxy.dll", "mbx.contoso.local:6001", NULL,
                  1073741824, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_RPC_CHANNEL,
            "waits: the RPC IN channel, 1 GiB declared");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_RPC, "RPC_OUT_DATA",
                  "/rpc/rpcproxy.dll", "mbx.contoso.local:6001", NULL, 76,
                  NULL, 0) == NGX_HTTP_EXCHANGE_HEALTH_WAIT_RPC_CHANNEL,
            "waits: the RPC OUT channel (76 bytes)");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_RPC, "RPC_IN_DATA",
                  "/rpc/rpcproxy.dll", NULL, NULL, 16, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: an RPC echo request answers at once");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_RPC, "rpc_in_data",
                  "/rpc/rpcproxy.dll", NULL, NULL, 1073741824, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: RPC methods are case-sensitive");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_RPC, "RPC_IN_DATA",
                  "/rpc/rpcproxy.dll", NULL, NULL, -1, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: an RPC request without Content-Length");
    UNIT_OK(waits(NGX_HTTP_EXCHANGE_HEALTH_OTHER, "RPC_IN_DATA", "/x", NULL,
                  "NotificationWait", 1073741824, NULL, 0)
            == NGX_HTTP_EXCHANGE_HEALTH_WAIT_NONE,
            "waits: nothing outside Exchange's directories");
    UNIT_OK(strcmp(ngx_http_exchange_health_wait_names[
                       NGX_HTTP_EXCHANGE_HEALTH_WAIT_RPC_CHANNEL],
                   "rpc-channel") == 0, "waits: names for the log");

    UNIT_OK(strcmp(ngx_http_exchange_health_protocol_names(),
                   "owa, ecp, ews, activesync, mapi, rpc, oab, autodiscover, "
                   "powershell, other") == 0,
            "protocol names, from the table, for error messages");

    /* the mailbox server an errorFE redirect names */

    UNIT_OK(be("/owa/auth/errorFE.aspx?httpCode=500&owaError=X&be=MBX7&ts=1",
               "MBX7"), "be: MBX7");
    UNIT_OK(be("/owa/auth/errorFE.aspx?httpCode=500&be=mbx7.contoso.local",
               "mbx7"), "be: an FQDN's first label");
    UNIT_OK(be("/owa/auth/errorFE.aspx?BE=EXCH2#x", "EXCH2"),
            "be: any case, up to a fragment");
    UNIT_OK(be("/owa/auth/errorFE.aspx?httpCode=500", NULL), "be: none");
    UNIT_OK(be("/owa/auth/errorFE.aspx?be=", NULL), "be: empty");
    UNIT_OK(be("/owa/auth/errorFE.aspx?be=a%0Ab", NULL),
            "be: not a host name");
    UNIT_OK(be("/owa/auth/errorFE.aspx?xbe=MBX7", NULL),
            "be: only the parameter of that name");
    UNIT_OK(be("/owa/auth/logon.aspx?be=MBX7", NULL),
            "be: only errorFE's");

    /* POSTs that only read: EWS operations, OWA service calls */

    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                  "<?xml version=\"1.0\"?><soap:Envelope><soap:Header>"
                  "<t:RequestServerVersion Version=\"Exchange2016\"/>"
                  "</soap:Header><soap:Body>\r\n  <m:GetFolder>"
                  "<m:FolderShape>"), "reads: EWS GetFolder");
    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                  "<s:Envelope><s:Body xmlns:x=\"y\"><FindItem "
                  "Traversal=\"Shallow\">"), "reads: EWS FindItem");
    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                  "<Body><SyncFolderItems/>"), "reads: SyncFolderItems");
    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                  "<Body><m:ResolveNames ReturnFullContactData=\"true\">"),
            "reads: ResolveNames");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                   "<soap:Body><m:CreateItem MessageDisposition="
                   "\"SendAndSaveCopy\">"), "reads: CreateItem writes");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                   "<soap:Body><m:DeleteItem>"), "reads: DeleteItem writes");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                   "<soap:Header><t:MessageBody>x</t:MessageBody>"
                   "</soap:Header><soap:Body><m:SendItem>"),
            "reads: an element ending in Body is not the Body");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                   "<soap:Body><m:Getaway>"), "reads: Getaway is no GetX");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL,
                   "<soap:Body><m:GetFol"),
            "reads: an operation cut off is unknown");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL, "<soap:Body/>"),
            "reads: an empty Body");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL, "<soap:Body>"),
            "reads: a Body cut off");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL, NULL),
            "reads: no body at hand");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_EWS, NULL, "Body>"),
            "reads: Body at the start");
    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_OWA, "action=FindItem&EP=1",
                  NULL), "reads: OWA FindItem");
    UNIT_OK(reads(NGX_HTTP_EXCHANGE_HEALTH_OWA, "ID=-3&ACTION=GetItem",
                  NULL), "reads: OWA action, any case of its name");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_OWA, "action=CreateItem&EP=1",
                   NULL), "reads: OWA CreateItem writes");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_OWA, "action=", NULL),
            "reads: OWA, an empty action");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_OWA, "EP=1", NULL),
            "reads: OWA, no action");
    UNIT_OK(!reads(NGX_HTTP_EXCHANGE_HEALTH_MAPI, "action=GetItem",
                   "<soap:Body><m:GetFolder>"),
            "reads: nothing of MAPI's");

    return unit_done();
}

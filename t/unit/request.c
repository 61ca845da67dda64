
/*
 * Unit tests of the request facts: protocol from the URI, cookies,
 * anonymous pages, the errorFE redirect's httpCode, the NTLM user, the
 * name in a healthcheck.htm body.
 */


#include <string.h>

#include "ngx_http_exchange_health_request.h"
#include "unit.h"


static unsigned
proto(const char *uri)
{
    return ngx_http_exchange_health_protocol_of_uri((const u_char *) uri,
                                                    strlen(uri));
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

    return unit_done();
}

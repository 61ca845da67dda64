
/*
 * Unit tests of the request facts: protocol from the URI, cookies.
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
    UNIT_OK(cookie("cadata", "cadata") == NULL, "a name without '='");
    UNIT_OK(cookie(";;; ;", "cadata") == NULL, "only separators");

    return unit_done();
}

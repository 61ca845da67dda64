
/*
 * Unit tests of the Basic calls' verdicts (service.c): EWS's GetFolder,
 * ActiveSync's OPTIONS, MAPI's PING; a 401 is the credentials'; the
 * reason is bounded, printable, and Exchange's own words only.
 */


#include <string.h>

#include "ngx_http_exchange_health_request.h"
#include "ngx_http_exchange_health_service.h"
#include "unit.h"


static unsigned  status;
static u_char    why[NGX_HTTP_EXCHANGE_HEALTH_SERVICE_WHY];


static int
verdict(unsigned protocol, const char *answer)
{
    return ngx_http_exchange_health_service_verdict(protocol,
                                 (const u_char *) answer, strlen(answer),
                                 &status, why, sizeof(why));
}


#define OK       NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK
#define FAILED   NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED
#define REFUSED  NGX_HTTP_EXCHANGE_HEALTH_SERVICE_REFUSED
#define UNCLEAR  NGX_HTTP_EXCHANGE_HEALTH_SERVICE_UNCLEAR

#define EWS   NGX_HTTP_EXCHANGE_HEALTH_EWS
#define EAS   NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC
#define MAPI  NGX_HTTP_EXCHANGE_HEALTH_MAPI

#define WHY(s)  (strcmp((const char *) why, s) == 0)


int
main(void)
{
    size_t  i;
    u_char  big[200];
    char    answer[512];

    /* EWS */

    UNIT_OK(verdict(EWS, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n"
                    "<m:GetFolderResponseMessage ResponseClass=\"Success\">"
                    "<m:ResponseCode>NoError</m:ResponseCode>") == OK
            && status == 200 && WHY(""), "ews: Success is good");

    UNIT_OK(verdict(EWS, "HTTP/1.1 500 Internal Server Error\r\n\r\n"
                    "<s:Envelope><s:Body><s:Fault><faultcode xmlns:a=\"x\">"
                    "a:ErrorInternalServerError</faultcode>") == FAILED
            && status == 500 && WHY("a:ErrorInternalServerError"),
            "ews: a SOAP fault, its faultcode");

    UNIT_OK(verdict(EWS, "HTTP/1.1 200 OK\r\n\r\n<m:GetFolderResponseMessage "
                    "ResponseClass=\"Error\"><m:MessageText>x</m:MessageText>"
                    "<m:ResponseCode>ErrorMailboxStoreUnavailable"
                    "</m:ResponseCode>") == FAILED
            && WHY("ResponseClass Error, ErrorMailboxStoreUnavailable"),
            "ews: ResponseClass Error, its ResponseCode");

    UNIT_OK(verdict(EWS, "HTTP/1.1 200 OK\r\n\r\n<html>hello</html>")
            == FAILED
            && WHY("status 200: no ResponseClass=\"Success\" in the answer"),
            "ews: a 200 without Success");

    UNIT_OK(verdict(EWS, "HTTP/1.1 500 Internal Server Error\r\n\r\n"
                    "<a ResponseClass=\"Success\">") == FAILED
            && WHY("status 500"), "ews: Success in a 500 is no proof");

    UNIT_OK(verdict(EWS, "HTTP/1.1 200 OK\r\n\r\nResponseClass=\"Succ")
            == FAILED, "ews: a marker cut short");

    /* ActiveSync */

    UNIT_OK(verdict(EAS, "HTTP/1.1 200 OK\r\nAllow: OPTIONS,POST\r\n"
                    "ms-asprotocolversions: 14.0,16.1\r\n\r\n") == OK,
            "activesync: MS-ASProtocolVersions, any case");

    UNIT_OK(verdict(EAS, "HTTP/1.1 200 OK\r\nX-MS-ASProtocolVersions: 1\r\n"
                    "\r\n") == FAILED
            && WHY("status 200 with no MS-ASProtocolVersions"),
            "activesync: a header of another name is not it");

    UNIT_OK(verdict(EAS, "HTTP/1.1 200 OK\r\nMS-ASProtocolVersions:\r\n\r\n")
            == FAILED, "activesync: an empty value is not it");

    UNIT_OK(verdict(EAS, "HTTP/1.1 503 Service Unavailable\r\n\r\n")
            == FAILED && WHY("status 503"), "activesync: a 503");

    /* MAPI */

    UNIT_OK(verdict(MAPI, "HTTP/1.1 200 OK\r\nX-RequestType: PING\r\n"
                    "X-ResponseCode: 0\r\n\r\n") == OK, "mapi: code 0");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 200 OK\r\nX-ResponseCode: 10\r\n\r\n")
            == FAILED && WHY("X-ResponseCode 10"), "mapi: code 10");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 200 OK\r\nX-ResponseCode: 00\r\n\r\n")
            == FAILED, "mapi: \"00\" is not 0");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 200 OK\r\n\r\n") == FAILED
            && WHY("status 200 with no X-ResponseCode"), "mapi: no code");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 500 Internal Server Error\r\n"
                    "X-ResponseCode: 0\r\n\r\n") == FAILED,
            "mapi: code 0 in a 500 is no proof");

    /* every protocol */

    UNIT_OK(verdict(EWS, "HTTP/1.1 401 Unauthorized\r\n"
                    "WWW-Authenticate: Basic realm=\"x\"\r\n\r\n") == REFUSED
            && status == 401, "401: the credentials'");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 302 Found\r\nLocation: /owa/auth/"
                    "errorFE.aspx?httpCode=500&owaError=X\r\n\r\n") == FAILED
            && WHY("errorFE.aspx, httpCode 500"), "errorFE: a failure");

    UNIT_OK(verdict(EAS, "HTTP/1.1 302 Found\r\nLocation: https://adfs/\r\n"
                    "\r\n") == UNCLEAR
            && WHY("status 302: redirected elsewhere"),
            "another redirect: unclear");

    UNIT_OK(verdict(EWS, "") == FAILED
            && WHY("the connection was closed with no answer") && status == 0,
            "no byte");

    UNIT_OK(verdict(EWS, "\x01\xffNOT HTTP\r\n\r\n") == FAILED
            && WHY("not an HTTP answer"), "garbage");

    UNIT_OK(verdict(EWS, "HTTP/1.1 2x0 OK\r\n\r\n") == FAILED
            && WHY("not an HTTP answer"), "a status not of digits");

    UNIT_OK(verdict(EWS, "HTTP/1.1 200 OK\r\nContent-Type: te") == FAILED
            && WHY("the answer's header is cut short or over 16 KB"),
            "a header cut short");

    UNIT_OK(verdict(NGX_HTTP_EXCHANGE_HEALTH_OWA, "HTTP/1.1 200 OK\r\n\r\n")
            == UNCLEAR, "a protocol it has no call for: unclear");

    /* the reason: bounded, printable, no '%' */

    strcpy(answer, "HTTP/1.1 500 Error\r\n\r\n<faultcode>a:");
    for (i = strlen(answer); i < 400; i++) {
        answer[i] = 'A';
    }
    answer[i] = '\0';

    UNIT_OK(verdict(EWS, answer) == FAILED && strlen((char *) why) == 47,
            "a long faultcode is cut");

    UNIT_OK(verdict(MAPI, "HTTP/1.1 200 OK\r\nX-ResponseCode: 1%n\x01\r\n\r\n")
            == FAILED && WHY("X-ResponseCode 1"),
            "a code stops at '%' or a control byte");

    /* a small reason buffer is never overrun */

    memset(big, 'Z', sizeof(big));
    (void) ngx_http_exchange_health_service_verdict(EAS,
                   (const u_char *) "HTTP/1.1 500 x\r\n\r\n", 18, &status,
                   big, 5);
    UNIT_OK(strcmp((char *) big, "stat") == 0 && big[5] == 'Z',
            "why: size respected");

    return unit_done();
}

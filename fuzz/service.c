
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


/*
 * libFuzzer target of the Basic calls' verdicts (service.c): the input,
 * after a first byte that picks the reason's buffer size, is an answer
 * as it came from a server, judged as each protocol's.  The verdict must
 * be one of four, the reason within its size, NUL-terminated, printable
 * and free of '%'; and a good answer must hold what each protocol's
 * good answer holds, read again here more simply.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_exchange_health_request.h"
#include "ngx_http_exchange_health_service.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_has(const u_char *p, size_t len, const char *s);


static const unsigned  fuzz_protocols[] = {
    NGX_HTTP_EXCHANGE_HEALTH_EWS,
    NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC,
    NGX_HTTP_EXCHANGE_HEALTH_MAPI,
    NGX_HTTP_EXCHANGE_HEALTH_OWA
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            v;
    size_t         i, k, wsize, len;
    u_char        *p, *why;
    unsigned       status;
    const u_char  *in;

    if (size == 0) {
        return 0;
    }

    wsize = 1 + data[0] % NGX_HTTP_EXCHANGE_HEALTH_SERVICE_WHY;
    in = data + 1;
    len = size - 1;

    /* copies of exactly their size: ASan sees a read or write past them */

    p = malloc(len ? len : 1);
    why = malloc(wsize);
    if (p == NULL || why == NULL) {
        abort();
    }

    memcpy(p, in, len);

    for (k = 0; k < sizeof(fuzz_protocols) / sizeof(fuzz_protocols[0]); k++) {

        memset(why, 0xAA, wsize);

        v = ngx_http_exchange_health_service_verdict(fuzz_protocols[k], p,
                                                     len, &status, why,
                                                     wsize);

        if (v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK
            && v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED
            && v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_REFUSED
            && v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_UNCLEAR)
        {
            abort();
        }

        for (i = 0; i < wsize && why[i]; i++) {
            if (why[i] < ' ' || why[i] >= 0x7f || why[i] == '%') {
                abort();
            }
        }

        if (i == wsize) {
            abort();                         /* not NUL-terminated */
        }

        if (status != 0 && (status < 100 || status > 999)) {
            abort();
        }

        if (len == 0 && v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED) {
            abort();
        }

        if (v == NGX_HTTP_EXCHANGE_HEALTH_SERVICE_REFUSED && status != 401) {
            abort();
        }

        if (v != NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK) {
            continue;
        }

        /* a good answer: a 2xx, nothing said against it, and its proof */

        if (why[0] != '\0' || status < 200 || status > 299) {
            abort();
        }

        switch (fuzz_protocols[k]) {

        case NGX_HTTP_EXCHANGE_HEALTH_EWS:
            if (!fuzz_has(p, len, "ResponseClass=\"Success\"")) {
                abort();
            }
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_ACTIVESYNC:
            if (!fuzz_has(p, len, "\nMS-ASProtocolVersions:")) {
                abort();
            }
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_MAPI:
            if (!fuzz_has(p, len, "\nX-ResponseCode:")) {
                abort();
            }
            break;

        default:
            abort();                         /* no call: never good */
        }
    }

    free(p);
    free(why);

    return 0;
}


static int
fuzz_has(const u_char *p, size_t len, const char *s)
{
    size_t  i, n;

    n = strlen(s);

    for (i = 0; i + n <= len; i++) {
        if (strncasecmp((const char *) p + i, s, n) == 0) {
            return 1;
        }
    }

    return 0;
}

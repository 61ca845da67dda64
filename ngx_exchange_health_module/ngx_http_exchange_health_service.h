
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_SERVICE_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_SERVICE_H_INCLUDED_


/*
 * What the answer to a signed-in probe's service call says: EWS's
 * GetFolder of the inbox, ActiveSync's OPTIONS, MAPI over HTTP's PING,
 * each sent with Basic credentials.  Plain C on purpose: unit tests and
 * fuzzers link this file alone.  Sources: docs/exchange-answers.md,
 * "Signed-in service calls".
 */


#include <stddef.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* the verdicts, as the signed-in probe's results (SIGNIN_* in the .h) */
#define NGX_HTTP_EXCHANGE_HEALTH_SERVICE_OK       1
#define NGX_HTTP_EXCHANGE_HEALTH_SERVICE_FAILED   2
#define NGX_HTTP_EXCHANGE_HEALTH_SERVICE_REFUSED  3    /* the credentials */
#define NGX_HTTP_EXCHANGE_HEALTH_SERVICE_UNCLEAR  5    /* no verdict */

/* the longest reason written, its NUL included */
#define NGX_HTTP_EXCHANGE_HEALTH_SERVICE_WHY      80


/*
 * The verdict of an answer to protocol's call (EWS, ACTIVESYNC or MAPI
 * of request.h; any other is unclear), read from the bytes as they came:
 * the status line, the header and what of the body fits in len.  A
 * header cut short is a failure, never a wait.  *status gets the
 * answer's status, 0 when it has none; why, of size bytes (1 or more),
 * a printable reason with no '%', empty for a good answer, always
 * NUL-terminated.  Only Exchange's own words are kept: a SOAP fault's
 * code, EWS's ResponseCode, MAPI's X-ResponseCode, errorFE's httpCode;
 * without them, the status.
 */
int ngx_http_exchange_health_service_verdict(unsigned protocol,
    const u_char *p, size_t len, unsigned *status, u_char *why,
    size_t size);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_SERVICE_H_INCLUDED_ */

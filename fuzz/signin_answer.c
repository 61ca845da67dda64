
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


/*
 * libFuzzer target of the signed-in probe's header reader and its OWA
 * and ECP verdict (signin_answer.c): the input is an answer as it came,
 * in a buffer of exactly its size.  What the reader keeps must point
 * into the answer, the cookies it collects must fit the jar and be the
 * pairs alone, and the verdict's reason must stay within its bound.
 * It is nginx code: it links nginx's string functions (ngx_string.c of
 * a configured source tree, see the Makefile), and these stand in for
 * the few others they name, never called on these paths.
 */


#include "ngx_http_exchange_health.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

volatile ngx_cycle_t  *ngx_cycle;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    abort();
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    abort();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                             *p, *why;
    size_t                              i, reason;
    ngx_buf_t                           b;
    ngx_str_t                           jar;
    ngx_str_t                           scheme = ngx_string("NTLM");
    ngx_uint_t                          v;
    ngx_http_exchange_health_answer_t   a;

    p = malloc(size ? size : 1);
    jar.data = malloc(NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN);
    why = malloc(NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN);

    if (p == NULL || jar.data == NULL || why == NULL) {
        abort();
    }

    memcpy(p, data, size);
    jar.len = 0;

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.start = p;
    b.pos = p;
    b.last = p + size;
    b.end = p + size;

    ngx_http_exchange_health_signin_read_answer(&b, &a, &jar, &scheme);

    if (a.token.len
        && (a.token.data < p || a.token.data + a.token.len > b.last))
    {
        abort();
    }

    if (a.location.len
        && (a.location.data < p || a.location.data + a.location.len > b.last))
    {
        abort();
    }

    if (a.error.len
        && (a.error.data < p || a.error.data + a.error.len > b.last))
    {
        abort();
    }

    if (jar.len > NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN
        || (a.status && (a.status < 100 || a.status > 599))
        || (a.complete && a.status == 0))
    {
        abort();
    }

    /* the pairs alone: no attribute, no blank, no control byte */

    for (i = 0; i < jar.len; i++) {
        if (jar.data[i] == ';') {
            if (i + 1 >= jar.len || jar.data[i + 1] != ' ') {
                abort();
            }

            i++;
            continue;
        }

        if (jar.data[i] <= ' ' || jar.data[i] >= 0x7f) {
            abort();
        }
    }

    /* a session the jar could not hold is refused by signin.c whole */

    if (a.cadata && !a.jar_full
        && ngx_strlcasestrn(jar.data, jar.data + jar.len,
                            (u_char *) "cadata=", 7 - 1) == NULL)
    {
        abort();
    }

    /* signin.c gives the verdict all but the first 9 bytes of its why */

    reason = NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN - 9;
    memset(why, 0xAA, NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN);

    v = ngx_http_exchange_health_signin_verdict(&a, why + 9);

    if (v != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK
        && v != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED
        && v != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_UNCLEAR
        && v != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_LOGON)
    {
        abort();
    }

    if (ngx_strnlen(why + 9, reason) == reason) {
        abort();                             /* not NUL-terminated */
    }

    if (v == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK
        && (a.status < 200 || a.status > 299 || !a.complete))
    {
        abort();
    }

    free(p);
    free(jar.data);
    free(why);

    return 0;
}

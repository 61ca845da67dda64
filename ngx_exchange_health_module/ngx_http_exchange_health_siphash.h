
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_SIPHASH_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_SIPHASH_H_INCLUDED_


/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed hash for tables
 * indexed by what clients send (session cookies, credentials, addresses).
 * With a secret key made at each start, a client cannot choose which slot
 * its value lands in, so it cannot evict another's.  Plain C: unit tests
 * and fuzzers link this file alone.
 */


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


typedef struct {
    uint64_t  k0;
    uint64_t  k1;
} ngx_http_exchange_health_sipkey_t;


uint64_t ngx_http_exchange_health_siphash(
    const ngx_http_exchange_health_sipkey_t *key, const u_char *p,
    size_t len);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_SIPHASH_H_INCLUDED_ */


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_MD4_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_MD4_H_INCLUDED_


/*
 * MD4 (RFC 1320), for NTLM's NT hash only: OpenSSL 3 keeps MD4 in its
 * legacy provider, which Debian does not load.  MD4 is broken as a
 * digest; NTLM uses it as the password's one-way function, which is
 * what Windows computes.  Plain C: unit tests and fuzzers link this
 * file alone.
 */


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


void ngx_http_exchange_health_md4(const u_char *p, size_t len,
    u_char digest[16]);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_MD4_H_INCLUDED_ */

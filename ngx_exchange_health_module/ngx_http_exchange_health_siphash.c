
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_siphash.h"


#define ngx_http_exchange_health_rotl(x, b)                                  \
    (((x) << (b)) | ((x) >> (64 - (b))))

#define ngx_http_exchange_health_sipround(v0, v1, v2, v3)                    \
    do {                                                                     \
        v0 += v1; v1 = ngx_http_exchange_health_rotl(v1, 13); v1 ^= v0;     \
        v0 = ngx_http_exchange_health_rotl(v0, 32);                          \
        v2 += v3; v3 = ngx_http_exchange_health_rotl(v3, 16); v3 ^= v2;     \
        v0 += v3; v3 = ngx_http_exchange_health_rotl(v3, 21); v3 ^= v0;     \
        v2 += v1; v1 = ngx_http_exchange_health_rotl(v1, 17); v1 ^= v2;     \
        v2 = ngx_http_exchange_health_rotl(v2, 32);                          \
    } while (0)


uint64_t
ngx_http_exchange_health_siphash(const ngx_http_exchange_health_sipkey_t *key,
    const u_char *p, size_t len)
{
    size_t    i, n;
    uint64_t  v0, v1, v2, v3, m, b;

    v0 = key->k0 ^ 0x736f6d6570736575ULL;
    v1 = key->k1 ^ 0x646f72616e646f6dULL;
    v2 = key->k0 ^ 0x6c7967656e657261ULL;
    v3 = key->k1 ^ 0x7465646279746573ULL;

    b = (uint64_t) len << 56;
    n = len & ~(size_t) 7;

    /* little-endian words, read a byte at a time: any alignment, any CPU */

    for (i = 0; i < n; i += 8) {
        m = (uint64_t) p[i]
            | (uint64_t) p[i + 1] << 8
            | (uint64_t) p[i + 2] << 16
            | (uint64_t) p[i + 3] << 24
            | (uint64_t) p[i + 4] << 32
            | (uint64_t) p[i + 5] << 40
            | (uint64_t) p[i + 6] << 48
            | (uint64_t) p[i + 7] << 56;

        v3 ^= m;
        ngx_http_exchange_health_sipround(v0, v1, v2, v3);
        ngx_http_exchange_health_sipround(v0, v1, v2, v3);
        v0 ^= m;
    }

    for (i = 0; n + i < len; i++) {
        b |= (uint64_t) p[n + i] << (8 * i);
    }

    v3 ^= b;
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);
    v0 ^= b;

    v2 ^= 0xff;
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);
    ngx_http_exchange_health_sipround(v0, v1, v2, v3);

    return v0 ^ v1 ^ v2 ^ v3;
}

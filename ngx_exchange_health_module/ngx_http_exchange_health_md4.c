
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <string.h>

#include "ngx_http_exchange_health_md4.h"


/* RFC 1320, 3.4: the three rounds' functions, shifts and constants */

#define ngx_http_exchange_health_md4_f(x, y, z)  (((x) & (y)) | (~(x) & (z)))
#define ngx_http_exchange_health_md4_g(x, y, z)                              \
    (((x) & (y)) | ((x) & (z)) | ((y) & (z)))
#define ngx_http_exchange_health_md4_h(x, y, z)  ((x) ^ (y) ^ (z))

#define ngx_http_exchange_health_md4_rotl(x, s)                              \
    (((x) << (s)) | ((x) >> (32 - (s))))


static void ngx_http_exchange_health_md4_block(uint32_t state[4],
    const u_char *block);


void
ngx_http_exchange_health_md4(const u_char *p, size_t len, u_char digest[16])
{
    size_t    i, n;
    u_char    tail[128];
    uint32_t  state[4];
    uint64_t  bits;

    state[0] = 0x67452301;
    state[1] = 0xefcdab89;
    state[2] = 0x98badcfe;
    state[3] = 0x10325476;

    for (n = 0; n + 64 <= len; n += 64) {
        ngx_http_exchange_health_md4_block(state, p + n);
    }

    /* the padding: a 1 bit, zeros, the length in bits, little-endian */

    memset(tail, 0, sizeof(tail));
    memcpy(tail, p + n, len - n);
    tail[len - n] = 0x80;

    i = (len - n < 56) ? 56 : 120;
    bits = (uint64_t) len << 3;

    for (n = 0; n < 8; n++) {
        tail[i + n] = (u_char) (bits >> (8 * n));
    }

    ngx_http_exchange_health_md4_block(state, tail);

    if (i == 120) {
        ngx_http_exchange_health_md4_block(state, tail + 64);
    }

    for (i = 0; i < 16; i++) {
        digest[i] = (u_char) (state[i / 4] >> (8 * (i % 4)));
    }

    /* the input may be a password's hash in the making */

    explicit_bzero(tail, sizeof(tail));
}


static void
ngx_http_exchange_health_md4_block(uint32_t state[4], const u_char *block)
{
    size_t               i;
    uint32_t             a, b, c, d, t, x[16];
    static const u_char  r1[4] = { 3, 7, 11, 19 };
    static const u_char  r2[4] = { 3, 5, 9, 13 };
    static const u_char  r3[4] = { 3, 9, 11, 15 };
    static const u_char  o3[16] = { 0, 8, 4, 12, 2, 10, 6, 14,
                                    1, 9, 5, 13, 3, 11, 7, 15 };

    for (i = 0; i < 16; i++) {
        x[i] = (uint32_t) block[4 * i]
               | (uint32_t) block[4 * i + 1] << 8
               | (uint32_t) block[4 * i + 2] << 16
               | (uint32_t) block[4 * i + 3] << 24;
    }

    a = state[0];
    b = state[1];
    c = state[2];
    d = state[3];

    /* each step computes a new a, then the four words rotate by one */

    for (i = 0; i < 16; i++) {
        t = a + ngx_http_exchange_health_md4_f(b, c, d) + x[i];
        t = ngx_http_exchange_health_md4_rotl(t, r1[i % 4]);
        a = d; d = c; c = b; b = t;
    }

    for (i = 0; i < 16; i++) {
        t = a + ngx_http_exchange_health_md4_g(b, c, d)
            + x[(i % 4) * 4 + i / 4] + 0x5a827999;
        t = ngx_http_exchange_health_md4_rotl(t, r2[i % 4]);
        a = d; d = c; c = b; b = t;
    }

    for (i = 0; i < 16; i++) {
        t = a + ngx_http_exchange_health_md4_h(b, c, d) + x[o3[i]]
            + 0x6ed9eba1;
        t = ngx_http_exchange_health_md4_rotl(t, r3[i % 4]);
        a = d; d = c; c = b; b = t;
    }

    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;

    explicit_bzero(x, sizeof(x));
}

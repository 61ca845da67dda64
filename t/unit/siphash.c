
/*
 * Unit tests of the keyed hash: SipHash-2-4's reference vectors (key
 * 00..0f, messages 00..n-1), and that another key moves every value.
 */


#include <string.h>

#include "ngx_http_exchange_health_siphash.h"
#include "unit.h"


/* from the SipHash paper's reference code, for lengths 0 to 15, 31, 63 */
static const uint64_t  vectors[] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
    0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
    0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
    0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
    0xa129ca6149be45e5ULL
};


int
main(void)
{
    int                                i, same;
    char                               name[64];
    u_char                             msg[64];
    ngx_http_exchange_health_sipkey_t  key, other;

    for (i = 0; i < 64; i++) {
        msg[i] = (u_char) i;
    }

    key.k0 = 0x0706050403020100ULL;
    key.k1 = 0x0f0e0d0c0b0a0908ULL;

    for (i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "reference vector, %d bytes", i);
        UNIT_OK(ngx_http_exchange_health_siphash(&key, msg, i) == vectors[i],
                name);
    }

    UNIT_OK(ngx_http_exchange_health_siphash(&key, msg, 31)
            == 0x32d892fad841c342ULL, "reference vector, 31 bytes");
    UNIT_OK(ngx_http_exchange_health_siphash(&key, msg, 63)
            == 0x958a324ceb064572ULL, "reference vector, 63 bytes");

    /* what decides a slot is the key, which clients do not know */

    other = key;
    other.k1 ^= 1;
    same = 0;

    for (i = 0; i < 64; i++) {
        same += ngx_http_exchange_health_siphash(&key, msg, i)
                == ngx_http_exchange_health_siphash(&other, msg, i);
    }

    UNIT_OK(same == 0, "another key gives other values");

    /* any alignment */
    memmove(msg + 1, msg, 32);
    UNIT_OK(ngx_http_exchange_health_siphash(&key, msg + 1, 15)
            == vectors[15], "an unaligned message");

    return unit_done();
}

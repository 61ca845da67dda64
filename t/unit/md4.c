
/*
 * Unit tests of MD4 (md4.c) against RFC 1320's test suite (A.5), and a
 * message across the one- and two-block padding boundaries against a
 * digest computed elsewhere (Perl's Digest::MD4).
 */


#include <string.h>

#include "ngx_http_exchange_health_md4.h"
#include "unit.h"


static int
md4_is(const char *msg, const char *hex)
{
    size_t  i;
    u_char  d[16];
    char    out[33];

    ngx_http_exchange_health_md4((const u_char *) msg, strlen(msg), d);

    for (i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }

    return strcmp(out, hex) == 0;
}


int
main(void)
{
    /* RFC 1320, A.5 */

    UNIT_OK(md4_is("", "31d6cfe0d16ae931b73c59d7e0c089c0"), "MD4 (\"\")");
    UNIT_OK(md4_is("a", "bde52cb31de33e46245e05fbdbd6fb24"), "MD4 (\"a\")");
    UNIT_OK(md4_is("abc", "a448017aaf21d8525fc10ae87aa6729d"),
            "MD4 (\"abc\")");
    UNIT_OK(md4_is("message digest", "d9130a8164549fe818874806e1c7014b"),
            "MD4 (\"message digest\")");
    UNIT_OK(md4_is("abcdefghijklmnopqrstuvwxyz",
                   "d79e1c308aa5bbcdeea8ed63df412da9"),
            "MD4 (\"a...z\")");
    UNIT_OK(md4_is("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789", "043f8582f241db351ce627e153e7f0e4"),
            "MD4 (\"A...Za...z0...9\")");
    UNIT_OK(md4_is("1234567890123456789012345678901234567890123456789012"
                   "3456789012345678901234567890",
                   "e33b4ddc9c38f2199c3e7b164fcc0536"),
            "MD4 (\"8 times 1234567890\")");

    /* 55, 56 and 64 bytes: one padding block, two, and a full block */

    UNIT_OK(md4_is("0123456789012345678901234567890123456789012345678901234",
                   "3991ad0fbb068db99558a71c21c1768c"), "55 bytes");
    UNIT_OK(md4_is("01234567890123456789012345678901234567890123456789012345",
                   "cce4257176f515fb56d35a4a5cbf8832"), "56 bytes");
    UNIT_OK(md4_is("0123456789012345678901234567890123456789012345678901234"
                   "567890123", "1d7851638dce5712dda85dec7cdaa0bc"),
            "64 bytes");

    return unit_done();
}

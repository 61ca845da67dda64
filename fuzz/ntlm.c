
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


/*
 * libFuzzer target of the NTLM CHALLENGE reader (ntlm.c): the input is
 * a CHALLENGE message as a server sent it, after base64.  A message read
 * must point within itself, its AV pairs end with MsvAvEOL, and the
 * AUTHENTICATE made from it must be as long as the macro says and fit
 * the buffer it is given, whatever the AV pairs; too small a buffer
 * gets nothing.  Bound to a channel (Extended Protection: the pairs
 * rebuilt with ours, the MIC over the messages), it must fit its macro
 * too, and be refused only for what is too long.  MD5 here is a
 * stand-in: only the layout is checked.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_exchange_health_ntlm.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static size_t fuzz_authenticate(
    const ngx_http_exchange_health_ntlm_challenge_t *ch,
    const ngx_http_exchange_health_ntlm_bind_t *bind, size_t len);


static void
fuzz_md5(u_char digest[16], const u_char *a, size_t alen, const u_char *b,
    size_t blen)
{
    size_t  i;

    /* reads every byte it is given, as MD5 would */

    memset(digest, 0, 16);

    for (i = 0; i < alen; i++) {
        digest[i % 16] ^= a[i];
    }

    for (i = 0; i < blen; i++) {
        digest[i % 16] += b[i];
    }
}


/* the AUTHENTICATE made in a buffer of len bytes exactly: its length */
static size_t
fuzz_authenticate(const ngx_http_exchange_health_ntlm_challenge_t *ch,
    const ngx_http_exchange_health_ntlm_bind_t *bind, size_t len)
{
    size_t               n;
    u_char              *out;
    static const u_char  owf[16], cc[8];
    static const u_char  user[8] = "u\0s\0e\0r\0";
    static const u_char  domain[4] = "D\0O\0";

    out = malloc(len ? len : 1);
    if (out == NULL) {
        abort();
    }

    n = ngx_http_exchange_health_ntlm_authenticate(fuzz_md5, owf, ch, cc, 1,
                                                   user, sizeof(user), domain,
                                                   sizeof(domain), bind, out,
                                                   len);
    free(out);

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                                     *msg, neg[
                                 NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN];
    size_t                                      len, n;
    ngx_http_exchange_health_ntlm_bind_t        bind;
    ngx_http_exchange_health_ntlm_challenge_t   ch;
    static const u_char                         cbt[16] = "channel binding";
    static const u_char                         spn[10] = "H\0/\0m\0a\0i\0";

    /* a copy of its own size, so that a read past it is caught */

    msg = malloc(size ? size : 1);
    if (msg == NULL) {
        return 0;
    }

    memcpy(msg, data, size);

    if (ngx_http_exchange_health_ntlm_challenge(msg, size, &ch) != 0) {
        free(msg);
        return 0;
    }

    if (ch.info_len) {
        if (ch.info < msg || ch.info + ch.info_len > msg + size
            || ch.info_len < 4
            || memcmp(ch.info + ch.info_len - 4, "\0\0", 2) != 0)
        {
            abort();
        }
    }

    /* user and domain as fuzz_authenticate sends them: 8 and 4 bytes */

    len = NGX_HTTP_EXCHANGE_HEALTH_NTLM_AUTH_LEN(ch.info_len, 8, 4);
    n = fuzz_authenticate(&ch, NULL, len);

    if (n != len && !(n == 0 && ch.info_len + 48 > 0xffff)) {
        abort();
    }

    if (n && fuzz_authenticate(&ch, NULL, len - 1) != 0) {
        abort();
    }

    ngx_http_exchange_health_ntlm_negotiate(neg);

    bind.cbt = cbt;
    bind.spn16 = spn;
    bind.spn_len = sizeof(spn);
    bind.negotiate = neg;
    bind.negotiate_len = sizeof(neg);
    bind.challenge = msg;
    bind.challenge_len = size;

    len = NGX_HTTP_EXCHANGE_HEALTH_NTLM_BOUND_LEN(ch.info_len, sizeof(spn),
                                                  8, 4);
    n = fuzz_authenticate(&ch, &bind, len);

    if (n > len
        || (n == 0 && size <= NGX_HTTP_EXCHANGE_HEALTH_NTLM_CHALLENGE_MAX
            && ch.info_len + 48 + 36 + sizeof(spn) <= 0xffff))
    {
        abort();
    }

    free(msg);

    return 0;
}

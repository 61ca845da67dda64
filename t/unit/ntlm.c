
/*
 * Unit tests of NTLMv2 (ntlm.c) against MS-NLMP's own example, 4.2.4:
 * user "User", domain "Domain", password "Password", the server's
 * challenge 0123456789abcdef, the client's aa..aa, time 0: NTOWFv2
 * (4.2.4.1.1), the LMv2 response (4.2.4.2.1), the NTLMv2 response with
 * NTProofStr (4.2.4.2.2) as the AUTHENTICATE message of 4.2.4.3 carries
 * it; then the CHALLENGE reader on what servers may send.  MD5 is
 * OpenSSL's here, nginx's in the module.  Extended Protection (channel
 * binding, the MIC) has no example in MS-NLMP (4.2.4's CHALLENGE has no
 * time, so no MIC): its token and MIC are checked against OpenSSL's MD5
 * and HMAC over the bytes as RFC 5929, RFC 4121 and MS-NLMP lay them.
 */


#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_exchange_health_ntlm.h"
#include "unit.h"


static void
md5(u_char digest[16], const u_char *a, size_t alen, const u_char *b,
    size_t blen)
{
    unsigned int   n;
    EVP_MD_CTX    *ctx;

    ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    EVP_DigestUpdate(ctx, a, alen);
    EVP_DigestUpdate(ctx, b, blen);
    EVP_DigestFinal_ex(ctx, digest, &n);
    EVP_MD_CTX_free(ctx);
}


static size_t
unhex(u_char *dst, const char *hex)
{
    size_t        n;
    unsigned int  c;

    for (n = 0; hex[0] && hex[1]; hex += 2, n++) {
        sscanf(hex, "%2x", &c);
        dst[n] = (u_char) c;
    }

    return n;
}


static int
bytes_are(const u_char *p, const char *hex)
{
    u_char  want[256];
    size_t  n;

    n = unhex(want, hex);

    return memcmp(p, want, n) == 0;
}


/* 4.2.4.3's CHALLENGE_MESSAGE: target "Server", no MsvAvTimestamp */
static const char  challenge_4243[] =
    "4e544c4d53535000" "02000000" "0c000c0038000000" "33828ae2"
    "0123456789abcdef" "0000000000000000" "2400240044000000"
    "060070170000000f" "530065007200760065007200"
    "02000c0044006f006d00610069006e00"
    "01000c00530065007200760065007200" "00000000";


/* the AV pair id of the blob of an AUTHENTICATE at out, or NULL */
static const u_char *
av_pair(const u_char *out, size_t id, size_t *len)
{
    size_t         ntoff, ntlen;
    const u_char  *p, *last;

    ntlen = out[20] | out[21] << 8;
    ntoff = out[24] | out[25] << 8;
    p = out + ntoff + 16 + 28;
    last = out + ntoff + ntlen;

    while (last - p >= 4) {
        if ((size_t) (p[0] | p[1] << 8) == id) {
            *len = p[2] | p[3] << 8;
            return p + 4;
        }

        if (p[0] == 0 && p[1] == 0) {
            break;
        }

        p += 4 + (p[2] | p[3] << 8);
    }

    return NULL;
}


/*
 * Bound to a channel: the token, the pairs added, NTProofStr and the MIC
 * as OpenSSL computes them
 */
static void
bound(const u_char owf[16], const u_char *chmsg, size_t chlen,
    const u_char *user16, size_t ulen, const u_char *domain16, size_t dlen)
{
    size_t                                     len, n, ntoff, ntlen;
    u_char                                     neg[
                                 NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN];
    u_char                                     out[1024], copy[1024];
    u_char                                     all[2048], spn16[64];
    u_char                                     hash[32], cbt[16], want[64];
    u_char                                     key[16], mic[16];
    ssize_t                                    spn_len;
    unsigned int                               mlen;
    const u_char                              *v;
    ngx_http_exchange_health_ntlm_bind_t       bind;
    ngx_http_exchange_health_ntlm_challenge_t  ch;
    static const u_char                        cc[8] = {
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa
    };

    /* tls-server-end-point of a certificate: RFC 5929 4.1, RFC 4121 */

    EVP_Digest("a certificate", 13, hash, &mlen, EVP_sha256(), NULL);
    ngx_http_exchange_health_ntlm_cbt(md5, hash, 32, cbt);

    memset(want, 0, 16);
    want[16] = 21 + 32;
    want[17] = want[18] = want[19] = 0;
    memcpy(all, want, 20);
    memcpy(all + 20, "tls-server-end-point:", 21);
    memcpy(all + 41, hash, 32);
    EVP_Digest(all, 73, want, &mlen, EVP_md5(), NULL);
    UNIT_OK(memcmp(cbt, want, 16) == 0,
            "the channel binding token is MD5 of the bindings' struct");

    spn_len = ngx_http_exchange_health_ntlm_utf16(spn16,
                                         (u_char *) "HTTP/mail.contoso.com",
                                         21, 0);
    ngx_http_exchange_health_ntlm_negotiate(neg);

    bind.cbt = cbt;
    bind.spn16 = spn16;
    bind.spn_len = spn_len;
    bind.negotiate = neg;
    bind.negotiate_len = sizeof(neg);
    bind.challenge = chmsg;
    bind.challenge_len = chlen;

    ngx_http_exchange_health_ntlm_challenge(chmsg, chlen, &ch);

    len = ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 99,
                                          user16, ulen, domain16, dlen,
                                          &bind, out, sizeof(out));
    ntlen = out[20] | out[21] << 8;
    ntoff = out[24] | out[25] << 8;

    UNIT_OK(len == 88 + 24 + ntlen + dlen + ulen
            && len <= NGX_HTTP_EXCHANGE_HEALTH_NTLM_BOUND_LEN(ch.info_len,
                                                     (size_t) spn_len,
                                                     ulen, dlen),
            "bound: Version and MIC in the header, within the macro");
    UNIT_OK(ntoff == 88 + 24
            && ntlen == 16 + 28 + (ch.info_len - 4) + 8 + 20
                        + 4 + (size_t) spn_len + 4 + 4,
            "... the server's pairs, with MsvAvFlags, the bindings and "
            "the SPN");

    v = av_pair(out, 6, &n);
    UNIT_OK(v && n == 4 && memcmp(v, "\2\0\0\0", 4) == 0,
            "MsvAvFlags says a MIC is there");
    v = av_pair(out, 10, &n);
    UNIT_OK(v && n == 16 && memcmp(v, cbt, 16) == 0,
            "MsvAvChannelBindings is the token");
    v = av_pair(out, 9, &n);
    UNIT_OK(v && n == (size_t) spn_len && memcmp(v, spn16, n) == 0,
            "MsvAvTargetName is HTTP/ and the farm's name");
    v = av_pair(out, 7, &n);
    UNIT_OK(v && n == 8 && memcmp(v, "\1\2\3\4\5\6\7\10", 8) == 0,
            "the server's pairs are kept");

    /* NTProofStr over the server's challenge and the new blob */

    memcpy(all, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
    memcpy(all + 8, out + ntoff + 16, ntlen - 16);
    HMAC(EVP_md5(), owf, 16, all, 8 + ntlen - 16, want, &mlen);
    UNIT_OK(memcmp(out + ntoff, want, 16) == 0,
            "NTProofStr covers the pairs added");

    /* the MIC: session base key, over the three messages, MIC zero */

    HMAC(EVP_md5(), owf, 16, out + ntoff, 16, key, &mlen);
    memcpy(copy, out, len);
    memset(copy + 72, 0, 16);
    memcpy(all, neg, sizeof(neg));
    memcpy(all + sizeof(neg), chmsg, chlen);
    memcpy(all + sizeof(neg) + chlen, copy, len);
    HMAC(EVP_md5(), key, 16, all, sizeof(neg) + chlen + len, mic, &mlen);
    UNIT_OK(memcmp(out + 72, mic, 16) == 0,
            "the MIC is HMAC-MD5 of the session key over the messages");

    UNIT_OK(ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 99,
                                          user16, ulen, domain16, dlen,
                                          &bind, out, len - 1) == 0,
            "bound, one byte short: nothing");

    /* no time from the server (4.2.4.3's): no MIC, still the token */

    n = unhex(all, challenge_4243);
    ngx_http_exchange_health_ntlm_challenge(all, n, &ch);
    bind.cbt = NULL;
    bind.challenge = all;
    bind.challenge_len = n;

    len = ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 99,
                                          user16, ulen, domain16, dlen,
                                          &bind, out, sizeof(out));
    UNIT_OK(len && bytes_are(out + 72, "00000000000000000000000000000000")
            && av_pair(out, 6, &n) == NULL,
            "without the server's time: no MIC, no MsvAvFlags");
    v = av_pair(out, 10, &n);
    UNIT_OK(v && n == 16 && bytes_are(v, "00000000000000000000000000000000"),
            "no channel: MsvAvChannelBindings is zeros, as Windows sends");
}


int
main(void)
{
    size_t                                     n, len;
    u_char                                     msg[256], out[512], owf[16];
    u_char                                     user16[64], domain16[64];
    ssize_t                                    ulen, dlen;
    const u_char                              *u, *d;
    ngx_http_exchange_health_ntlm_challenge_t  ch;
    static const u_char                        cc[8] = {
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa
    };

    /* NTOWFv2, 4.2.4.1.1 */

    UNIT_OK(ngx_http_exchange_health_ntlm_owf(md5, (u_char *) "Password", 8,
                                    (u_char *) "User", 4,
                                    (u_char *) "Domain", 6, owf) == 0,
            "NTOWFv2 made");
    UNIT_OK(bytes_are(owf, "0c868a403bfd7a93a3001ef22ef02e3f"),
            "NTOWFv2 is MS-NLMP 4.2.4.1.1's");

    ngx_http_exchange_health_ntlm_owf(md5, (u_char *) "Password", 8,
                                      (u_char *) "user", 4,
                                      (u_char *) "Domain", 6, owf);
    UNIT_OK(bytes_are(owf, "0c868a403bfd7a93a3001ef22ef02e3f"),
            "the user is upper-cased");

    ngx_http_exchange_health_ntlm_owf(md5, (u_char *) "Password", 8,
                                      (u_char *) "User", 4,
                                      (u_char *) "DOMAIN", 6, owf);
    UNIT_OK(!bytes_are(owf, "0c868a403bfd7a93a3001ef22ef02e3f"),
            "the domain is not");

    /* the CHALLENGE of 4.2.4.3 */

    n = unhex(msg, challenge_4243);
    UNIT_OK(n == 104, "the CHALLENGE is 104 bytes");
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, n, &ch) == 0,
            "it is read");
    UNIT_OK(bytes_are(ch.challenge, "0123456789abcdef"), "its challenge");
    UNIT_OK(ch.flags == 0xe28a8233, "its flags");
    UNIT_OK(ch.info == msg + 0x44 && ch.info_len == 36, "its AV pairs");
    UNIT_OK(ch.timestamp == 0, "no timestamp");

    /* the AUTHENTICATE message: 4.2.4.2.1, 4.2.4.2.2 */

    ngx_http_exchange_health_ntlm_owf(md5, (u_char *) "Password", 8,
                                      (u_char *) "User", 4,
                                      (u_char *) "Domain", 6, owf);

    ulen = ngx_http_exchange_health_ntlm_utf16(user16, (u_char *) "User",
                                               4, 0);
    dlen = ngx_http_exchange_health_ntlm_utf16(domain16,
                                               (u_char *) "Domain", 6, 0);

    len = ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 0,
                                          user16, ulen, domain16, dlen,
                                          NULL, out, sizeof(out));

    UNIT_OK(len == 64 + 24 + 84 + 12 + 8, "the AUTHENTICATE's length");
    UNIT_OK(memcmp(out, "NTLMSSP\0\3\0\0\0", 12) == 0, "a type 3");
    UNIT_OK(out[12] == 24 && out[16] == 64, "its LM field");
    UNIT_OK(out[20] == 84 && out[24] == 88, "its NT field");
    UNIT_OK(bytes_are(out + 64, "86c35097ac9cec102554764a57cccc19"
                                "aaaaaaaaaaaaaaaa"),
            "the LMv2 response is 4.2.4.2.1's");
    UNIT_OK(bytes_are(out + 88, "68cd0ab851e51c96aabc927bebef6a1c"),
            "NTProofStr is 4.2.4.2.2's");
    UNIT_OK(bytes_are(out + 88, "68cd0ab851e51c96aabc927bebef6a1c"
                                "0101000000000000" "0000000000000000"
                                "aaaaaaaaaaaaaaaa" "00000000"
                                "02000c0044006f006d00610069006e00"
                                "01000c00530065007200760065007200"
                                "0000000000000000"),
            "the NTLMv2 response is 4.2.4.3's, byte for byte");
    UNIT_OK(out[28] == 12 && out[32] == 172
            && memcmp(out + 172, domain16, 12) == 0, "the domain");
    UNIT_OK(out[36] == 8 && out[40] == 184
            && memcmp(out + 184, user16, 8) == 0, "the user");
    UNIT_OK(ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 0,
                                          user16, ulen, domain16, dlen,
                                          NULL, out, len - 1) == 0,
            "one byte short: nothing");

    /* a server's time in the AV pairs: the blob has it, LMv2 is zeros */

    memcpy(msg + 0x44 + 32, "\x07\x00\x08\x00\x01\x02\x03\x04\x05\x06\x07\x08"
                            "\x00\x00\x00\x00", 16);
    msg[0x28] = 48;
    msg[0x2a] = 48;
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, 104 + 12, &ch) == 0
            && ch.timestamp == 0x0807060504030201ULL && ch.info_len == 48,
            "MsvAvTimestamp is read");
    len = ngx_http_exchange_health_ntlm_authenticate(md5, owf, &ch, cc, 99,
                                          user16, ulen, domain16, dlen,
                                          NULL, out, sizeof(out));
    UNIT_OK(bytes_are(out + 64, "0000000000000000" "0000000000000000"
                                "0000000000000000"),
            "LMv2 is zeros with a timestamp");
    UNIT_OK(bytes_are(out + 88 + 24, "0102030405060708"),
            "the blob has the server's time");

    bound(owf, msg, 104 + 12, user16, ulen, domain16, dlen);

    /* what a server may send that is no CHALLENGE */

    n = unhex(msg, challenge_4243);
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, 31, &ch) == -1,
            "too short");
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, 40, &ch) == 0
            && ch.info_len == 0, "an old server's, without TargetInfo");
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, 103, &ch) == -1,
            "TargetInfo past the end");
    msg[8] = 3;
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, n, &ch) == -1,
            "a type 3");
    msg[8] = 2;
    msg[0x44 + 2] = 0x40;
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, n, &ch) == -1,
            "an AV pair past the field");
    msg[0x44 + 2] = 0x0c;
    msg[0x44 + 32] = 1;
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, n, &ch) == -1,
            "no MsvAvEOL");
    msg[0x2c] = 0xff;
    msg[0x2f] = 0xff;
    msg[0x44 + 32] = 0;
    UNIT_OK(ngx_http_exchange_health_ntlm_challenge(msg, n, &ch) == -1,
            "an offset far past the end");

    /* the user's forms, and UTF-8 */

    ngx_http_exchange_health_ntlm_split((u_char *) "CONTOSO\\monitor", 15,
                                        &u, &n, &d, &len);
    UNIT_OK(n == 7 && memcmp(u, "monitor", 7) == 0
            && len == 7 && memcmp(d, "CONTOSO", 7) == 0, "DOMAIN\\user");
    ngx_http_exchange_health_ntlm_split((u_char *) "monitor@contoso.com", 19,
                                        &u, &n, &d, &len);
    UNIT_OK(n == 19 && len == 0, "a UPN is the user, with no domain");

    UNIT_OK(ngx_http_exchange_health_ntlm_utf16(out, (u_char *) "\xc3\xa9z",
                                                3, 1) == 4
            && memcmp(out, "\xe9\0Z\0", 4) == 0, "UTF-8 to UTF-16LE");
    UNIT_OK(ngx_http_exchange_health_ntlm_utf16(out,
                                 (u_char *) "\xf0\x9f\x94\x91", 4, 0) == 4
            && memcmp(out, "\x3d\xd8\x11\xdd", 4) == 0, "a surrogate pair");
    UNIT_OK(ngx_http_exchange_health_ntlm_utf16(out, (u_char *) "\xc0\xaf",
                                                2, 0) == -1, "overlong");
    UNIT_OK(ngx_http_exchange_health_ntlm_utf16(out, (u_char *) "\xe9", 1, 0)
            == -1, "Latin-1 is not UTF-8");
    UNIT_OK(ngx_http_exchange_health_ntlm_owf(md5, (u_char *) "\xff", 1,
                                    (u_char *) "User", 4,
                                    (u_char *) "Domain", 6, owf) == -1,
            "a password not in UTF-8: refused");

    return unit_done();
}

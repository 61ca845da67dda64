
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <string.h>

#include "ngx_http_exchange_health_md4.h"
#include "ngx_http_exchange_health_ntlm.h"


/*
 * MS-NLMP: the messages' layout (2.2.1), the AV pairs (2.2.2.1), NTLMv2's
 * response (3.3.2).  The flags asked for are the ones Windows clients
 * ask for without signing or sealing: Unicode, NTLM, the target's info,
 * extended session security; the session key is not exchanged, as HTTP
 * signs nothing with it.
 */


#define NTLM_FLAGS_NEGOTIATE  0x00088207
#define NTLM_FLAGS_AUTH       0x00088205

#define NTLM_AV_EOL           0
#define NTLM_AV_FLAGS         6
#define NTLM_AV_TIMESTAMP     7
#define NTLM_AV_TARGET_NAME   9
#define NTLM_AV_BINDINGS      10

/* MsvAvFlags: the message carries a MIC */
#define NTLM_AV_FLAG_MIC      0x00000002

/* the longest password, and user and domain, in UTF-8 bytes */
#define NTLM_MAX              1024


static const u_char  ngx_http_exchange_health_ntlm_sig[8] = "NTLMSSP";


static void ngx_http_exchange_health_ntlm_hmac(
    ngx_http_exchange_health_md5_pt md5, const u_char key[16],
    const u_char *msg, size_t len, u_char out[16]);
static void ngx_http_exchange_health_ntlm_field(u_char *head, size_t len,
    size_t off);
static size_t ngx_http_exchange_health_ntlm_pairs(
    const ngx_http_exchange_health_ntlm_challenge_t *ch,
    const ngx_http_exchange_health_ntlm_bind_t *bind, u_char *dst);
static u_char *ngx_http_exchange_health_ntlm_pair(u_char *p, size_t id,
    const u_char *value, size_t len);
static int ngx_http_exchange_health_ntlm_mic(
    ngx_http_exchange_health_md5_pt md5, const u_char key[16],
    const ngx_http_exchange_health_ntlm_bind_t *bind, const u_char *auth,
    size_t len, u_char mic[16]);


#define ngx_http_exchange_health_ntlm_u16(p)                                 \
    ((size_t) (p)[0] | (size_t) (p)[1] << 8)

#define ngx_http_exchange_health_ntlm_u32(p)                                 \
    ((uint32_t) (p)[0] | (uint32_t) (p)[1] << 8                              \
     | (uint32_t) (p)[2] << 16 | (uint32_t) (p)[3] << 24)


void
ngx_http_exchange_health_ntlm_negotiate(u_char *buf)
{
    /* no domain nor workstation: the server's CHALLENGE names its own */

    memset(buf, 0, NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN);
    memcpy(buf, ngx_http_exchange_health_ntlm_sig, 8);
    buf[8] = 1;
    buf[12] = NTLM_FLAGS_NEGOTIATE & 0xff;
    buf[13] = NTLM_FLAGS_NEGOTIATE >> 8 & 0xff;
    buf[14] = NTLM_FLAGS_NEGOTIATE >> 16 & 0xff;
    buf[15] = NTLM_FLAGS_NEGOTIATE >> 24 & 0xff;
}


int
ngx_http_exchange_health_ntlm_challenge(const u_char *msg, size_t len,
    ngx_http_exchange_health_ntlm_challenge_t *ch)
{
    size_t         ilen, ioff, n, id;
    const u_char  *p, *last;

    memset(ch, 0, sizeof(ngx_http_exchange_health_ntlm_challenge_t));

    if (len < 32
        || memcmp(msg, ngx_http_exchange_health_ntlm_sig, 8) != 0
        || ngx_http_exchange_health_ntlm_u32(msg + 8) != 2)
    {
        return -1;
    }

    ch->flags = ngx_http_exchange_health_ntlm_u32(msg + 20);
    memcpy(ch->challenge, msg + 24, 8);

    /* an old server's message ends before TargetInfoFields */

    if (len < 48) {
        return 0;
    }

    ilen = ngx_http_exchange_health_ntlm_u16(msg + 40);
    ioff = ngx_http_exchange_health_ntlm_u32(msg + 44);

    if (ilen == 0) {
        return 0;
    }

    if (ioff > len || ilen > len - ioff) {
        return -1;
    }

    /*
     * The AV pairs go back to the server in the response as they came:
     * they must end with MsvAvEOL, within the field
     */

    p = msg + ioff;
    last = p + ilen;

    for ( ;; ) {
        if (last - p < 4) {
            return -1;
        }

        id = ngx_http_exchange_health_ntlm_u16(p);
        n = ngx_http_exchange_health_ntlm_u16(p + 2);

        if (n > (size_t) (last - p) - 4) {
            return -1;
        }

        if (id == NTLM_AV_EOL) {
            break;
        }

        if (id == NTLM_AV_TIMESTAMP && n == 8) {
            ch->timestamp = ngx_http_exchange_health_ntlm_u32(p + 4)
                    | (uint64_t) ngx_http_exchange_health_ntlm_u32(p + 8) << 32;
        }

        p += 4 + n;
    }

    ch->info = msg + ioff;
    ch->info_len = (p + 4) - ch->info;

    return 0;
}


ssize_t
ngx_http_exchange_health_ntlm_utf16(u_char *dst, const u_char *src,
    size_t len, int upper)
{
    size_t     i, n, k;
    u_char    *p;
    uint32_t   c;

    p = dst;

    for (i = 0; i < len; i += n) {
        c = src[i];

        if (c < 0x80) {
            n = 1;

        } else if ((c & 0xe0) == 0xc0) {
            n = 2;
            c &= 0x1f;

        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            c &= 0x0f;

        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            c &= 0x07;

        } else {
            return -1;
        }

        if (n > len - i) {
            return -1;
        }

        for (k = 1; k < n; k++) {
            if ((src[i + k] & 0xc0) != 0x80) {
                return -1;
            }

            c = c << 6 | (src[i + k] & 0x3f);
        }

        /* the shortest form only, and no surrogate written as UTF-8 */

        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800)
            || (n == 4 && (c < 0x10000 || c > 0x10ffff))
            || (c >= 0xd800 && c <= 0xdfff))
        {
            return -1;
        }

        if (upper && c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';
        }

        if (c >= 0x10000) {
            c -= 0x10000;
            *p++ = (u_char) ((0xd800 | c >> 10) & 0xff);
            *p++ = (u_char) ((0xd800 | c >> 10) >> 8);
            c = 0xdc00 | (c & 0x3ff);
        }

        *p++ = (u_char) (c & 0xff);
        *p++ = (u_char) (c >> 8);
    }

    return p - dst;
}


void
ngx_http_exchange_health_ntlm_split(const u_char *name, size_t len,
    const u_char **user, size_t *ulen, const u_char **domain, size_t *dlen)
{
    const u_char  *bs;

    bs = memchr(name, '\\', len);

    if (bs == NULL) {
        *user = name;
        *ulen = len;
        *domain = name;
        *dlen = 0;
        return;
    }

    *domain = name;
    *dlen = bs - name;
    *user = bs + 1;
    *ulen = len - *dlen - 1;
}


int
ngx_http_exchange_health_ntlm_owf(ngx_http_exchange_health_md5_pt md5,
    const u_char *password, size_t plen, const u_char *user, size_t ulen,
    const u_char *domain, size_t dlen, u_char owf[16])
{
    int      rc;
    u_char   hash[16], buf[2 * NTLM_MAX];
    ssize_t  n, m;

    rc = -1;

    if (plen > NTLM_MAX || ulen + dlen > NTLM_MAX) {
        return -1;
    }

    /* the NT hash: MD4 of the password in UTF-16LE */

    n = ngx_http_exchange_health_ntlm_utf16(buf, password, plen, 0);
    if (n < 0) {
        goto done;
    }

    ngx_http_exchange_health_md4(buf, n, hash);

    n = ngx_http_exchange_health_ntlm_utf16(buf, user, ulen, 1);
    if (n < 0) {
        goto done;
    }

    m = ngx_http_exchange_health_ntlm_utf16(buf + n, domain, dlen, 0);
    if (m < 0) {
        goto done;
    }

    ngx_http_exchange_health_ntlm_hmac(md5, hash, buf, n + m, owf);

    rc = 0;

done:

    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(hash, sizeof(hash));

    return rc;
}


void
ngx_http_exchange_health_ntlm_cbt(ngx_http_exchange_health_md5_pt md5,
    const u_char *hash, size_t len, u_char cbt[16])
{
    size_t  n;
    u_char  data[20 + sizeof("tls-server-end-point:") - 1
                 + NGX_HTTP_EXCHANGE_HEALTH_NTLM_HASH_MAX];

    /*
     * Initiator and acceptor: address type 0, no address; then the
     * application data's length and the data
     */

    if (len > NGX_HTTP_EXCHANGE_HEALTH_NTLM_HASH_MAX) {
        len = NGX_HTTP_EXCHANGE_HEALTH_NTLM_HASH_MAX;
    }

    n = sizeof("tls-server-end-point:") - 1 + len;

    memset(data, 0, 16);
    data[16] = (u_char) n;
    data[17] = 0;
    data[18] = 0;
    data[19] = 0;
    memcpy(data + 20, "tls-server-end-point:", n - len);
    memcpy(data + 20 + n - len, hash, len);

    md5(cbt, data, 16, data + 16, 4 + n);
}


size_t
ngx_http_exchange_health_ntlm_authenticate(
    ngx_http_exchange_health_md5_pt md5, const u_char owf[16],
    const ngx_http_exchange_health_ntlm_challenge_t *ch, const u_char cc[8],
    uint64_t now, const u_char *user16, size_t ulen16,
    const u_char *domain16, size_t dlen16,
    const ngx_http_exchange_health_ntlm_bind_t *bind, u_char *buf,
    size_t size)
{
    size_t     len, ntlen, hlen, avlen, i;
    u_char    *p, *lm, *nt, *blob, pair[16], key[16];
    uint64_t   t;

    /*
     * Bound, the header has room for the Version and the MIC (2.2.1.3),
     * where servers look for a MIC whatever the flags
     */

    hlen = bind ? 88 : 64;
    avlen = bind ? ngx_http_exchange_health_ntlm_pairs(ch, bind, NULL)
                 : ch->info_len;

    ntlen = 16 + 28 + avlen + 4;
    len = hlen + 24 + ntlen + dlen16 + ulen16;

    if (len > size || ntlen > 0xffff || ulen16 > 0xffff || dlen16 > 0xffff
        || (bind && bind->challenge_len
                    > NGX_HTTP_EXCHANGE_HEALTH_NTLM_CHALLENGE_MAX))
    {
        return 0;
    }

    memset(buf, 0, hlen);
    memcpy(buf, ngx_http_exchange_health_ntlm_sig, 8);
    buf[8] = 3;

    lm = buf + hlen;
    nt = lm + 24;

    ngx_http_exchange_health_ntlm_field(buf + 12, 24, lm - buf);
    ngx_http_exchange_health_ntlm_field(buf + 20, ntlen, nt - buf);
    ngx_http_exchange_health_ntlm_field(buf + 28, dlen16, nt + ntlen - buf);
    ngx_http_exchange_health_ntlm_field(buf + 36, ulen16,
                                        nt + ntlen + dlen16 - buf);
    ngx_http_exchange_health_ntlm_field(buf + 44, 0, len);
    ngx_http_exchange_health_ntlm_field(buf + 52, 0, len);

    buf[60] = NTLM_FLAGS_AUTH & 0xff;
    buf[61] = NTLM_FLAGS_AUTH >> 8 & 0xff;
    buf[62] = NTLM_FLAGS_AUTH >> 16 & 0xff;
    buf[63] = NTLM_FLAGS_AUTH >> 24 & 0xff;

    /*
     * The blob (3.3.2's "temp"): its version, the time, the client's
     * challenge, the AV pairs (the server's, or bound, with ours) and
     * four zeros
     */

    blob = nt + 16;
    t = ch->timestamp ? ch->timestamp : now;

    p = blob;
    memset(p, 0, 28);
    p[0] = 1;
    p[1] = 1;

    for (i = 0; i < 8; i++) {
        p[8 + i] = (u_char) (t >> (8 * i));
    }

    memcpy(p + 16, cc, 8);
    p += 28;

    if (bind) {
        p += ngx_http_exchange_health_ntlm_pairs(ch, bind, p);

    } else if (ch->info_len) {
        memcpy(p, ch->info, ch->info_len);
        p += ch->info_len;
    }

    memset(p, 0, 4);
    p += 4;

    /* NTProofStr = HMAC-MD5(owf, server challenge, blob), in its place */

    memcpy(blob - 8, ch->challenge, 8);
    ngx_http_exchange_health_ntlm_hmac(md5, owf, blob - 8, p - blob + 8, nt);

    /*
     * With the server's time there, the LMv2 response is zeros
     * (3.1.5.1.2); without, it is its HMAC of both challenges
     */

    if (ch->timestamp) {
        memset(lm, 0, 24);

    } else {
        memcpy(pair, ch->challenge, 8);
        memcpy(pair + 8, cc, 8);
        ngx_http_exchange_health_ntlm_hmac(md5, owf, pair, 16, lm);
        memcpy(lm + 16, cc, 8);
    }

    memcpy(p, domain16, dlen16);
    memcpy(p + dlen16, user16, ulen16);

    /*
     * The MIC, with the server's time there (3.1.5.1.2): no key is
     * exchanged, so the exported session key is the session base key,
     * HMAC-MD5(owf, NTProofStr) (3.3.2, 3.4.5.1); over the three
     * messages with the MIC zero, then put in its place
     */

    if (bind && ch->timestamp) {
        ngx_http_exchange_health_ntlm_hmac(md5, owf, nt, 16, key);

        if (ngx_http_exchange_health_ntlm_mic(md5, key, bind, buf, len,
                                              buf + 72)
            != 0)
        {
            len = 0;
        }

        explicit_bzero(key, sizeof(key));
    }

    return len;
}


static size_t
ngx_http_exchange_health_ntlm_pairs(
    const ngx_http_exchange_health_ntlm_challenge_t *ch,
    const ngx_http_exchange_health_ntlm_bind_t *bind, u_char *dst)
{
    size_t         id, n, len;
    u_char        *p, flags[4];
    const u_char  *q, *last;
    static const u_char  zeros[16];

    /*
     * The server's pairs but its end (and any it should not have sent of
     * ours), then as Windows adds them: MsvAvFlags with the MIC's bit
     * when there is a MIC, the channel bindings (zeros when there are
     * none), the target name, the end
     */

    len = 0;
    p = dst;
    q = ch->info;
    last = q ? q + ch->info_len : q;

    while (q && last - q >= 4) {
        id = ngx_http_exchange_health_ntlm_u16(q);
        n = ngx_http_exchange_health_ntlm_u16(q + 2);

        if (id == NTLM_AV_EOL) {
            break;
        }

        if (id != NTLM_AV_FLAGS && id != NTLM_AV_TARGET_NAME
            && id != NTLM_AV_BINDINGS)
        {
            if (p) {
                memcpy(p, q, 4 + n);
                p += 4 + n;
            }

            len += 4 + n;
        }

        q += 4 + n;
    }

    if (ch->timestamp) {
        flags[0] = NTLM_AV_FLAG_MIC;
        flags[1] = 0;
        flags[2] = 0;
        flags[3] = 0;

        if (p) {
            p = ngx_http_exchange_health_ntlm_pair(p, NTLM_AV_FLAGS, flags, 4);
        }

        len += 8;
    }

    if (p) {
        p = ngx_http_exchange_health_ntlm_pair(p, NTLM_AV_BINDINGS,
                                               bind->cbt ? bind->cbt : zeros,
                                               16);
    }

    len += 20;

    if (bind->spn_len) {
        if (p) {
            p = ngx_http_exchange_health_ntlm_pair(p, NTLM_AV_TARGET_NAME,
                                                   bind->spn16,
                                                   bind->spn_len);
        }

        len += 4 + bind->spn_len;
    }

    if (p) {
        (void) ngx_http_exchange_health_ntlm_pair(p, NTLM_AV_EOL, NULL, 0);
    }

    return len + 4;
}


static u_char *
ngx_http_exchange_health_ntlm_pair(u_char *p, size_t id, const u_char *value,
    size_t len)
{
    p[0] = (u_char) (id & 0xff);
    p[1] = (u_char) (id >> 8);
    p[2] = (u_char) (len & 0xff);
    p[3] = (u_char) (len >> 8);

    if (len) {
        memcpy(p + 4, value, len);
    }

    return p + 4 + len;
}


static int
ngx_http_exchange_health_ntlm_mic(ngx_http_exchange_health_md5_pt md5,
    const u_char key[16], const ngx_http_exchange_health_ntlm_bind_t *bind,
    const u_char *auth, size_t len, u_char mic[16])
{
    size_t  i, n;
    u_char  head[64 + NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN
                 + NGX_HTTP_EXCHANGE_HEALTH_NTLM_CHALLENGE_MAX];
    u_char  inner[16];

    /* HMAC-MD5 over NEGOTIATE, CHALLENGE and AUTHENTICATE: one key pad */

    if (bind->negotiate_len > NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN
        || bind->challenge_len > NGX_HTTP_EXCHANGE_HEALTH_NTLM_CHALLENGE_MAX)
    {
        return -1;
    }

    memset(head, 0x36, 64);

    for (i = 0; i < 16; i++) {
        head[i] ^= key[i];
    }

    n = 64;
    memcpy(head + n, bind->negotiate, bind->negotiate_len);
    n += bind->negotiate_len;
    memcpy(head + n, bind->challenge, bind->challenge_len);
    n += bind->challenge_len;

    md5(inner, head, n, auth, len);

    for (i = 0; i < 64; i++) {
        head[i] ^= 0x36 ^ 0x5c;
    }

    md5(mic, head, 64, inner, 16);

    explicit_bzero(head, 64);
    explicit_bzero(inner, sizeof(inner));

    return 0;
}


static void
ngx_http_exchange_health_ntlm_hmac(ngx_http_exchange_health_md5_pt md5,
    const u_char key[16], const u_char *msg, size_t len, u_char out[16])
{
    size_t  i;
    u_char  pad[64], inner[16];

    /* RFC 2104, with a key of 16 bytes: never hashed first */

    memset(pad, 0x36, sizeof(pad));

    for (i = 0; i < 16; i++) {
        pad[i] ^= key[i];
    }

    md5(inner, pad, 64, msg, len);

    for (i = 0; i < 64; i++) {
        pad[i] ^= 0x36 ^ 0x5c;
    }

    md5(out, pad, 64, inner, 16);

    explicit_bzero(pad, sizeof(pad));
    explicit_bzero(inner, sizeof(inner));
}


static void
ngx_http_exchange_health_ntlm_field(u_char *head, size_t len, size_t off)
{
    /* a security buffer: its length twice, then its offset */

    head[0] = (u_char) (len & 0xff);
    head[1] = (u_char) (len >> 8);
    head[2] = head[0];
    head[3] = head[1];
    head[4] = (u_char) (off & 0xff);
    head[5] = (u_char) (off >> 8 & 0xff);
    head[6] = (u_char) (off >> 16 & 0xff);
    head[7] = (u_char) (off >> 24 & 0xff);
}

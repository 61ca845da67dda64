
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_NTLM_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_NTLM_H_INCLUDED_


/*
 * NTLMv2, the client's side, as the signed-in probe signs in with it
 * (MS-NLMP): the NEGOTIATE message, the server's CHALLENGE read, the
 * AUTHENTICATE message made.  NTLMv1 and LM are never sent.  Plain C:
 * unit tests and fuzzers link this file alone; the one digest it needs,
 * MD5, is the caller's (nginx's ngx_md5 in the module).
 */


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* MD5 of a then b: HMAC-MD5's two passes need no more */
typedef void (*ngx_http_exchange_health_md5_pt)(u_char digest[16],
    const u_char *a, size_t alen, const u_char *b, size_t blen);


/* what a CHALLENGE message says, pointing into it */
typedef struct {
    uint32_t        flags;
    u_char          challenge[8];
    const u_char   *info;           /* TargetInfo: AV pairs, MsvAvEOL */
    size_t          info_len;
    uint64_t        timestamp;      /* MsvAvTimestamp, 0 when none */
} ngx_http_exchange_health_ntlm_challenge_t;


/*
 * Extended Protection (MS-NLMP 3.1.5.1.2): what the AUTHENTICATE adds to
 * the server's AV pairs, and the messages its MIC covers
 */
typedef struct {
    const u_char   *cbt;            /* MsvAvChannelBindings, or NULL */
    const u_char   *spn16;          /* MsvAvTargetName, UTF-16LE */
    size_t          spn_len;
    const u_char   *negotiate;
    size_t          negotiate_len;
    const u_char   *challenge;
    size_t          challenge_len;
} ngx_http_exchange_health_ntlm_bind_t;


#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN  32

/* the longest CHALLENGE a MIC is made over, and hash of a certificate */
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_CHALLENGE_MAX  2048
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_HASH_MAX       64

/* the AUTHENTICATE message's size, for TargetInfo, user and domain */
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_AUTH_LEN(info, user, domain)           \
    (64 + 24 + 16 + 28 + (info) + 4 + (user) + (domain))


/*
 * ... and bound (Version and MIC in the header; MsvAvFlags, the channel
 * bindings and the target name added to the AV pairs): at most this
 */
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_BOUND_LEN(info, spn, user, domain)     \
    (88 + 24 + 16 + 28 + (info) + 8 + 20 + 4 + (spn) + 4 + (user)            \
     + (domain))


/* the NEGOTIATE message, NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN bytes */
void ngx_http_exchange_health_ntlm_negotiate(u_char *buf);

/* a CHALLENGE message read: 0, or -1 for anything else */
int ngx_http_exchange_health_ntlm_challenge(const u_char *msg, size_t len,
    ngx_http_exchange_health_ntlm_challenge_t *ch);

/*
 * UTF-8 to UTF-16LE, upper-cased (ASCII letters only) when upper is set:
 * the bytes written, or -1 for what is not UTF-8; dst holds 2 * len
 */
ssize_t ngx_http_exchange_health_ntlm_utf16(u_char *dst, const u_char *src,
    size_t len, int upper);

/*
 * "DOMAIN\user" or "user@domain": the user and the domain as NTLM sends
 * them (a UPN is the user, with no domain)
 */
void ngx_http_exchange_health_ntlm_split(const u_char *name, size_t len,
    const u_char **user, size_t *ulen, const u_char **domain, size_t *dlen);

/*
 * NTOWFv2: HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) +
 * domain)), from UTF-8: 0, or -1 for what is not UTF-8 or over 512 bytes
 */
int ngx_http_exchange_health_ntlm_owf(ngx_http_exchange_health_md5_pt md5,
    const u_char *password, size_t plen, const u_char *user, size_t ulen,
    const u_char *domain, size_t dlen, u_char owf[16]);

/*
 * The channel binding token of RFC 5929's tls-server-end-point: MD5 of
 * the gss_channel_bindings_struct (RFC 4121 4.1.1.2) with no addresses
 * and "tls-server-end-point:" and hash as its application data
 */
void ngx_http_exchange_health_ntlm_cbt(ngx_http_exchange_health_md5_pt md5,
    const u_char *hash, size_t len, u_char cbt[16]);

/*
 * The AUTHENTICATE message for ch, with the NTLMv2 response of owf, the
 * client's challenge cc and the time now (a FILETIME, used when ch has
 * no timestamp); user16 and domain16 in UTF-16LE; bound to bind, or not
 * (NULL: the message of NGX_HTTP_EXCHANGE_HEALTH_NTLM_AUTH_LEN).
 * Returns its length, or 0 when it does not fit in size.
 */
size_t ngx_http_exchange_health_ntlm_authenticate(
    ngx_http_exchange_health_md5_pt md5, const u_char owf[16],
    const ngx_http_exchange_health_ntlm_challenge_t *ch, const u_char cc[8],
    uint64_t now, const u_char *user16, size_t ulen16,
    const u_char *domain16, size_t dlen16,
    const ngx_http_exchange_health_ntlm_bind_t *bind, u_char *buf,
    size_t size);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_NTLM_H_INCLUDED_ */


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <ngx_md5.h>

#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_ntlm.h"


/*
 * The signed-in calls of EWS, ActiveSync and MAPI with NTLM, for a farm
 * whose virtual directories take Windows sign-in only (auth=ntlm, or
 * auth=negotiate: the same messages under Negotiate, as Windows sends
 * them when Kerberos is not to be had).  NTLM signs a connection in, not
 * a request: the call goes with the NEGOTIATE message on a connection
 * kept for it, a 401 brings the server's CHALLENGE, and the same call
 * goes again on that connection with the AUTHENTICATE message, whose
 * answer is the call's.  Two requests per call.
 *
 * The password itself is gone after configuration: what is kept is
 * NTOWFv2 (credentials.c), from which each AUTHENTICATE is made with a
 * client challenge of its own; both are zeroed after use.
 *
 * Each AUTHENTICATE is bound to its TLS connection, as Windows binds
 * it: Exchange 2019 CU14 and later require Extended Protection, and
 * refuse an AUTHENTICATE without the channel binding token with the 401
 * of a wrong password.  The token is of the certificate this connection
 * met (RFC 5929's tls-server-end-point), with the MIC over the three
 * messages when the server sends its time (MS-NLMP 3.1.5.1.2).
 */


/* seconds from 1601, FILETIME's epoch, to 1970 */
#define NGX_HTTP_EXCHANGE_HEALTH_FILETIME_1970  11644473600ULL


static void ngx_http_exchange_health_signin_ntlm_random(u_char *p,
    size_t n);
static u_char *ngx_http_exchange_health_signin_ntlm_cbt(
    ngx_http_exchange_health_probe_t *pr, u_char *cbt);
static ngx_int_t ngx_http_exchange_health_signin_ntlm_spn(
    ngx_http_exchange_health_probe_t *pr,
    ngx_http_exchange_health_ntlm_bind_t *bind);


void
ngx_http_exchange_health_ntlm_md5(u_char digest[16], const u_char *a,
    size_t alen, const u_char *b, size_t blen)
{
    ngx_md5_t  md5;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, a, alen);
    ngx_md5_update(&md5, b, blen);
    ngx_md5_final(digest, &md5);

    ngx_explicit_memzero(&md5, sizeof(ngx_md5_t));
}


void
ngx_http_exchange_health_signin_ntlm(ngx_http_exchange_health_probe_t *pr,
    ngx_uint_t p)
{
    u_char                                  msg[
                                 NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN];
    ngx_str_t                               auth, plain, encoded;
    ngx_http_exchange_health_signin_conf_t  *sc;

    sc = pr->conf->signin;

    ngx_http_exchange_health_ntlm_negotiate(msg);

    plain.data = msg;
    plain.len = sizeof(msg);

    auth.len = sc->scheme.len + 1 + ngx_base64_encoded_length(plain.len);
    auth.data = ngx_pnalloc(pr->pool, auth.len);
    if (auth.data == NULL) {
        pr->handler(pr, "out of memory");
        return;
    }

    ngx_sprintf(auth.data, "%V ", &sc->scheme);
    encoded.data = auth.data + sc->scheme.len + 1;
    ngx_encode_base64(&encoded, &plain);

    ngx_http_exchange_health_basic_request(pr, p, &auth, 1);

    /* the 401 is read whole, so that the connection can go on */

    pr->head_only = 0;
    pr->keep = 1;

    ngx_http_exchange_health_probe_connect(pr);
}


ngx_int_t
ngx_http_exchange_health_signin_ntlm_challenged(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p, char *error,
    u_char **why)
{
    u_char                                     cc[8], cbt[16], *msg;
    u_char                                     neg[
                                 NGX_HTTP_EXCHANGE_HEALTH_NTLM_NEGOTIATE_LEN];
    size_t                                     len;
    uint64_t                                   now;
    ngx_buf_t                                 *b;
    ngx_str_t                                  type2, auth, plain, encoded;
    ngx_http_exchange_health_answer_t          a;
    ngx_http_exchange_health_ntlm_bind_t       bind;
    ngx_http_exchange_health_signin_conf_t    *sc;
    ngx_http_exchange_health_ntlm_challenge_t  ch;

    sc = pr->conf->signin;
    b = pr->response;
    pr->keep = 0;

    /*
     * Anything but a 401 is the call's answer (a 5xx before sign-in, a
     * 200 to anyone)
     */

    if (error) {
        return NGX_DECLINED;
    }

    ngx_http_exchange_health_signin_read_answer(b, &a, NULL, &sc->scheme);

    if (a.status != NGX_HTTP_UNAUTHORIZED) {
        return NGX_DECLINED;
    }

    /*
     * A 401 to a NEGOTIATE without a CHALLENGE is the server's own: the
     * NEGOTIATE names no account, so no account can be refused by it.
     * It fails this server's call, and is no reason to hold back the
     * account's sign-ins on the others.
     */

    if (a.token.len == 0) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui sent no NTLM challenge",
                       pr->peer);
        *why = (u_char *) "a 401 to the NTLM NEGOTIATE with no CHALLENGE";
        return NGX_ERROR;
    }

    type2.data = ngx_pnalloc(pr->pool,
                             ngx_base64_decoded_length(a.token.len));
    if (type2.data == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_decode_base64(&type2, &a.token) != NGX_OK
        || ngx_http_exchange_health_ntlm_challenge(type2.data, type2.len, &ch)
           != 0)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui sent a challenge that is "
                       "not NTLM's", pr->peer);
        *why = (u_char *) "a 401 whose NTLM CHALLENGE cannot be read";
        return NGX_ERROR;
    }

    /* the NEGOTIATE sent, as the MIC covers it: the same bytes again */

    ngx_http_exchange_health_ntlm_negotiate(neg);

    bind.cbt = ngx_http_exchange_health_signin_ntlm_cbt(pr, cbt);
    bind.negotiate = neg;
    bind.negotiate_len = sizeof(neg);
    bind.challenge = type2.data;
    bind.challenge_len = type2.len;

    if (ngx_http_exchange_health_signin_ntlm_spn(pr, &bind) != NGX_OK) {
        return NGX_DECLINED;
    }

    len = NGX_HTTP_EXCHANGE_HEALTH_NTLM_BOUND_LEN(ch.info_len, bind.spn_len,
                                                  sc->ntlm_user.len,
                                                  sc->ntlm_domain.len);

    if (sc->scheme.len + 1 + ngx_base64_encoded_length(len)
        > NGX_HTTP_EXCHANGE_HEALTH_NTLM_HEADER)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui sent a challenge of "
                       "%uz bytes of target info: too long", pr->peer,
                       ch.info_len);
        *why = (u_char *) "an NTLM CHALLENGE with too much target info";
        return NGX_ERROR;
    }

    msg = ngx_pnalloc(pr->pool, len);
    auth.data = ngx_pnalloc(pr->pool, sc->scheme.len + 1
                                      + ngx_base64_encoded_length(len));

    if (msg == NULL || auth.data == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_exchange_health_signin_ntlm_random(cc, sizeof(cc));

    now = ((uint64_t) ngx_time() + NGX_HTTP_EXCHANGE_HEALTH_FILETIME_1970)
          * 10000000;

    plain.data = msg;
    plain.len = ngx_http_exchange_health_ntlm_authenticate(
                                       ngx_http_exchange_health_ntlm_md5,
                                       sc->owf, &ch, cc, now,
                                       sc->ntlm_user.data, sc->ntlm_user.len,
                                       sc->ntlm_domain.data,
                                       sc->ntlm_domain.len, &bind, msg, len);

    if (plain.len == 0) {
        *why = (u_char *) "an NTLM CHALLENGE with too much target info";
        return NGX_ERROR;
    }

    auth.len = sc->scheme.len + 1 + ngx_base64_encoded_length(plain.len);
    ngx_sprintf(auth.data, "%V ", &sc->scheme);
    encoded.data = auth.data + sc->scheme.len + 1;
    ngx_encode_base64(&encoded, &plain);

    ngx_explicit_memzero(msg, len);
    ngx_explicit_memzero(cc, sizeof(cc));

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui challenged, answering with "
                   "NTLMv2, %uz bytes of target info, channel bound: %s, "
                   "MIC: %s", pr->peer, ch.info_len,
                   bind.cbt ? "yes" : "no", ch.timestamp ? "yes" : "no");

    /* the answer to this one is the call's: its connection ends after */

    ngx_http_exchange_health_basic_request(pr, p, &auth, 0);

    ngx_explicit_memzero(auth.data, auth.len);

    ngx_http_exchange_health_probe_again(pr);

    return NGX_OK;
}


static void
ngx_http_exchange_health_signin_ntlm_random(u_char *p, size_t n)
{
    size_t  i;

#if (NGX_OPENSSL)
    if (RAND_bytes(p, (int) n) == 1) {
        return;
    }
#endif

    for (i = 0; i < n; i++) {
        p[i] = (u_char) ngx_random();
    }
}


static u_char *
ngx_http_exchange_health_signin_ntlm_cbt(ngx_http_exchange_health_probe_t *pr,
    u_char *cbt)
{
#if (NGX_HTTP_SSL)
    int                md;
    X509              *cert;
    u_char             hash[EVP_MAX_MD_SIZE];
    unsigned int       n;
    const EVP_MD      *digest;
    ngx_connection_t  *c;

    /*
     * RFC 5929 4.1: the hash of the certificate the server sent on this
     * connection, with its signature's hash, but SHA-256 for MD5 and
     * SHA-1, and for a signature that names none (RSA-PSS) as Windows
     */

    c = pr->pc.connection;

    if (c == NULL || c->ssl == NULL) {
        return NULL;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NULL;
    }

    digest = NULL;

    if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md, NULL)
        && md != NID_md5 && md != NID_sha1 && md != NID_undef)
    {
        digest = EVP_get_digestbynid(md);
    }

    if (digest == NULL) {
        digest = EVP_sha256();
    }

    n = 0;

    if (X509_digest(cert, digest, hash, &n) != 1
        || n > NGX_HTTP_EXCHANGE_HEALTH_NTLM_HASH_MAX)
    {
        n = 0;
    }

    X509_free(cert);

    if (n == 0) {
        return NULL;
    }

    ngx_http_exchange_health_ntlm_cbt(ngx_http_exchange_health_ntlm_md5,
                                      hash, n, cbt);

    return cbt;

#else

    /* no TLS, no channel: the token is zeros, as Windows sends it */

    return NULL;

#endif
}


static ngx_int_t
ngx_http_exchange_health_signin_ntlm_spn(ngx_http_exchange_health_probe_t *pr,
    ngx_http_exchange_health_ntlm_bind_t *bind)
{
    u_char     *spn, *spn16;
    ssize_t     n;
    ngx_str_t  *sni;

    /*
     * MsvAvTargetName: the service the client meant, "HTTP/" and the
     * farm's name the probe sends (SNI and Host), as a browser's would be
     */

    bind->spn16 = NULL;
    bind->spn_len = 0;

    sni = &pr->conf->probe->sni;

    if (sni->len == 0 || sni->len > 255) {
        return NGX_OK;
    }

    spn = ngx_pnalloc(pr->pool, 5 + sni->len);
    spn16 = ngx_pnalloc(pr->pool, 2 * (5 + sni->len));

    if (spn == NULL || spn16 == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(spn, "HTTP/", 5), sni->data, sni->len);

    n = ngx_http_exchange_health_ntlm_utf16(spn16, spn, 5 + sni->len, 0);
    if (n < 0) {
        return NGX_OK;
    }

    bind->spn16 = spn16;
    bind->spn_len = n;

    return NGX_OK;
}

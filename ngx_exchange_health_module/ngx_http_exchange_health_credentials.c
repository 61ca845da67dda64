
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_ntlm.h"


/*
 * exchange_health_probe_signin: the monitoring mailbox's credentials,
 * read once at configuration from a file only its owner, root, may read
 * (nginx -t refuses any other, and says how to fix it), and kept as the
 * tail of the sign-in form, and Basic's header or, for NTLM, NTOWFv2 of
 * the password (never the password).  Never written to a log line, the
 * status page or the state file; nginx -T shows the configuration, not
 * this file.  All of it is zeroed when the configuration goes.
 */


/* the credentials file: the user, then the password, a line each */
#define NGX_HTTP_EXCHANGE_HEALTH_CRED_FILE       1024


static ngx_int_t ngx_http_exchange_health_credentials_read(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc);
static ngx_int_t ngx_http_exchange_health_credentials_basic(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc, u_char *user, size_t ulen,
    u_char *pass, size_t plen);
static ngx_int_t ngx_http_exchange_health_credentials_ntlm(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc, u_char *pass, size_t plen);
static void ngx_http_exchange_health_signin_forget(void *data);


char *
ngx_http_exchange_health_probe_signin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_srv_conf_t *hscf = conf;

    ngx_str_t                               *value, s;
    ngx_uint_t                               i, signed_in;
    ngx_pool_cleanup_t                      *cln;
    ngx_http_exchange_health_signin_conf_t  *sc;

    if (hscf->signin) {
        return "is duplicate";
    }

    if (hscf->probe == NULL) {
        return "needs \"exchange_health_probe\" before it";
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_signin_conf_t));
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    sc->protocols = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS;

    /* forms for OWA and ECP; Basic for EWS, ActiveSync and MAPI */

    signed_in = (1 << NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS) - 1;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "file=", 5) == 0 && value[i].len > 5) {
            sc->file.data = value[i].data + 5;
            sc->file.len = value[i].len - 5;

            if (ngx_conf_full_name(cf->cycle, &sc->file, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "protocols=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            if (ngx_http_exchange_health_probe_protocols(cf, &value[i], &s,
                                                         &sc->protocols)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            if (sc->protocols & ~signed_in) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "signed-in probes serve \"owa\", "
                                   "\"ecp\", \"ews\", \"activesync\" "
                                   "and \"mapi\" only, not all of \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        /* how EWS, ActiveSync and MAPI sign in: the farm's choice */

        if (ngx_strcmp(value[i].data, "auth=basic") == 0) {
            ngx_str_null(&sc->scheme);
            continue;
        }

        if (ngx_strcmp(value[i].data, "auth=ntlm") == 0) {
            ngx_str_set(&sc->scheme, "NTLM");
            continue;
        }

        if (ngx_strcmp(value[i].data, "auth=negotiate") == 0) {
            ngx_str_set(&sc->scheme, "Negotiate");
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", use \"file=\", "
                           "\"protocols=\" or \"auth=\" (basic, ntlm, "
                           "negotiate)", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (sc->file.len == 0) {
        return "needs \"file=\", the monitoring mailbox's credentials";
    }

    /*
     * Basic sends the password with every request, NTLM an answer to a
     * challenge an eavesdropper may test passwords against: never in clear
     */

    if ((sc->protocols & ~NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS)
        && !hscf->probe->tls)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           sc->scheme.len
                           ? "the signed-in probes of \"ews\", "
                             "\"activesync\" and \"mapi\" sign in with "
                             "NTLM, whose answers an eavesdropper can test "
                             "passwords against: remove \"tls=off\" from "
                             "\"exchange_health_probe\""
                           : "the signed-in probes of \"ews\", "
                             "\"activesync\" and \"mapi\" send the "
                             "password with Basic in every request: remove "
                             "\"tls=off\" from \"exchange_health_probe\"");
        return NGX_CONF_ERROR;
    }

    /* the form is zeroed when the configuration goes */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_exchange_health_signin_forget;
    cln->data = sc;

    if (ngx_http_exchange_health_credentials_read(cf, sc) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    hscf->signin = sc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_exchange_health_credentials_read(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc)
{
    u_char           *p, *last, *user, *pass, *eol;
    size_t            ulen, plen;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_int_t         rc;
    ngx_file_info_t   fi;
    u_char            buf[NGX_HTTP_EXCHANGE_HEALTH_CRED_FILE + 1];

    fd = ngx_open_file(sc->file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &sc->file);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    n = 0;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &sc->file);
        goto done;
    }

    /* a password others can read, or change, is no secret */

    if (!S_ISREG(fi.st_mode)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a regular file", &sc->file);
        goto done;
    }

    if (fi.st_uid != 0 && fi.st_uid != geteuid()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds a password and belongs to uid %d: "
                           "make it root's with \"chown root %V\"",
                           &sc->file, (int) fi.st_uid, &sc->file);
        goto done;
    }

    if (fi.st_mode & (S_IRWXG|S_IRWXO)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds a password and others than its "
                           "owner may read or change it (mode %d%d%d): run "
                           "\"chmod 600 %V\"", &sc->file,
                           (int) (fi.st_mode >> 6 & 7),
                           (int) (fi.st_mode >> 3 & 7),
                           (int) (fi.st_mode & 7), &sc->file);
        goto done;
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_EXCHANGE_HEALTH_CRED_FILE + 1);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &sc->file);
        n = 0;
        goto done;
    }

    if (n > NGX_HTTP_EXCHANGE_HEALTH_CRED_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is over %d bytes: it holds the user on "
                           "its first line and the password on its second",
                           &sc->file, NGX_HTTP_EXCHANGE_HEALTH_CRED_FILE);
        goto done;
    }

    /* "CONTOSO\monitor" or "monitor@contoso.com", then the password */

    p = buf;
    last = buf + n;

    user = p;
    eol = ngx_strlchr(p, last, '\n');
    p = eol ? eol + 1 : last;
    ulen = (eol ? eol : last) - user;

    pass = p;
    eol = ngx_strlchr(p, last, '\n');
    plen = (eol ? eol : last) - pass;

    while (ulen && (user[ulen - 1] == '\r' || user[ulen - 1] == ' ')) {
        ulen--;
    }

    if (plen && pass[plen - 1] == '\r') {
        plen--;
    }

    if (ulen == 0 || plen == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs the monitoring mailbox's user on "
                           "its first line and its password on the second",
                           &sc->file);
        goto done;
    }

    sc->user.len = ulen;
    sc->user.data = ngx_pnalloc(cf->pool, ulen);

    /* "&flags=4...": made once, escaped three times over at most */

    sc->form.data = ngx_pnalloc(cf->pool, 3 * (ulen + plen) + 128);

    if (sc->user.data == NULL || sc->form.data == NULL) {
        goto done;
    }

    ngx_memcpy(sc->user.data, user, ulen);

    p = ngx_cpymem(sc->form.data, "&flags=4&forcedownlevel=0&username=",
                   sizeof("&flags=4&forcedownlevel=0&username=") - 1);
    p = ngx_http_exchange_health_form_escape(p, user, ulen);
    p = ngx_cpymem(p, "&password=", sizeof("&password=") - 1);
    p = ngx_http_exchange_health_form_escape(p, pass, plen);
    p = ngx_cpymem(p, "&passwordText=&isUtf8=1",
                   sizeof("&passwordText=&isUtf8=1") - 1);

    sc->form.len = p - sc->form.data;

    if ((sc->protocols & ~NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS)
        && (sc->scheme.len
            ? ngx_http_exchange_health_credentials_ntlm(cf, sc, pass, plen)
            : ngx_http_exchange_health_credentials_basic(cf, sc, user, ulen,
                                                         pass, plen))
           != NGX_OK)
    {
        goto done;
    }

    /* a new file, say with the password fixed, is tried again at once */

    sc->file_id = (uint32_t) ngx_file_uniq(&fi)
                  ^ (uint32_t) ngx_file_size(&fi) << 8
                  ^ (uint32_t) ngx_file_mtime(&fi);

    rc = NGX_OK;

done:

    ngx_explicit_memzero(buf, sizeof(buf));

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &sc->file);
    }

    return rc;
}


static ngx_int_t
ngx_http_exchange_health_credentials_basic(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc, u_char *user, size_t ulen,
    u_char *pass, size_t plen)
{
    ngx_str_t  plain, encoded;

    /* "Basic " and base64 of "user:password", made once */

    plain.len = ulen + 1 + plen;
    plain.data = ngx_pnalloc(cf->temp_pool, plain.len);

    sc->basic.data = ngx_pnalloc(cf->pool,
                                 6 + ngx_base64_encoded_length(plain.len));

    if (plain.data == NULL || sc->basic.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(plain.data, user, ulen);
    plain.data[ulen] = ':';
    ngx_memcpy(plain.data + ulen + 1, pass, plen);

    ngx_memcpy(sc->basic.data, "Basic ", 6);
    encoded.data = sc->basic.data + 6;

    ngx_encode_base64(&encoded, &plain);

    sc->basic.len = 6 + encoded.len;

    ngx_explicit_memzero(plain.data, plain.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_credentials_ntlm(ngx_conf_t *cf,
    ngx_http_exchange_health_signin_conf_t *sc, u_char *pass, size_t plen)
{
    size_t         ulen, dlen;
    ssize_t        n;
    const u_char  *user, *domain;

    /* "CONTOSO\monitor" signs in as monitor of CONTOSO, a UPN as itself */

    ngx_http_exchange_health_ntlm_split(sc->user.data, sc->user.len, &user,
                                        &ulen, &domain, &dlen);

    sc->ntlm_user.data = ngx_pnalloc(cf->pool, 2 * ulen);
    sc->ntlm_domain.data = ngx_pnalloc(cf->pool, 2 * dlen + 1);

    if (sc->ntlm_user.data == NULL || sc->ntlm_domain.data == NULL) {
        return NGX_ERROR;
    }

    n = ngx_http_exchange_health_ntlm_utf16(sc->ntlm_user.data, user, ulen,
                                            0);
    sc->ntlm_user.len = n;

    if (n > 0) {
        n = ngx_http_exchange_health_ntlm_utf16(sc->ntlm_domain.data, domain,
                                                dlen, 0);
        sc->ntlm_domain.len = n;
    }

    if (n < 0 || ulen == 0
        || ngx_http_exchange_health_ntlm_owf(
                                 ngx_http_exchange_health_ntlm_md5, pass, plen,
                                 user, ulen, domain, dlen, sc->owf)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs its user and password in UTF-8, "
                           "\"DOMAIN\\user\" or \"user@domain\", for NTLM",
                           &sc->file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


u_char *
ngx_http_exchange_health_form_escape(u_char *dst, u_char *src, size_t len)
{
    u_char             c;
    static const char  hex[] = "0123456789ABCDEF";

    /* application/x-www-form-urlencoded: all but RFC 3986's unreserved */

    while (len--) {
        c = *src++;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~')
        {
            *dst++ = c;
            continue;
        }

        *dst++ = '%';
        *dst++ = hex[c >> 4];
        *dst++ = hex[c & 0xf];
    }

    return dst;
}


static void
ngx_http_exchange_health_signin_forget(void *data)
{
    ngx_http_exchange_health_signin_conf_t  *sc = data;

    if (sc->form.len) {
        ngx_explicit_memzero(sc->form.data, sc->form.len);
    }

    if (sc->basic.len) {
        ngx_explicit_memzero(sc->basic.data, sc->basic.len);
    }

    ngx_explicit_memzero(sc->owf, sizeof(sc->owf));
}

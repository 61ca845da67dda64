
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * The status page: which server is failing, since when, why, and what to
 * check.  Every zone is copied under its lock first, then rendered from
 * the copy, so a page is one consistent picture and the lock is held only
 * for the copy.  It is served only for a Host the server block serves
 * (ngx_http_exchange_health_status_host, the admin API's check too): an
 * allow list alone lets a rebound name of another site read it.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML        0
#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON        1
#define NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS  2


/* hints mark commands with backquotes; the HTML page shows them as code */
typedef struct {
    ngx_uint_t   user;          /* only for a failure that was one user's */
    const char  *rule;          /* NULL: any rule */
    const char  *error;         /* NULL: any error; else any of "a|b" */
    ngx_uint_t   owa_ecp;       /* only for OWA and ECP */
    const char  *text;
} ngx_http_exchange_health_hint_t;


static ngx_int_t ngx_http_exchange_health_status_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_refuse_host(ngx_http_request_t *r);
static ngx_uint_t ngx_http_exchange_health_format(ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_snapshot(ngx_http_request_t *r,
    ngx_http_exchange_health_snapshot_t *snap);
static ngx_uint_t ngx_http_exchange_health_request_failing(
    ngx_http_exchange_health_snap_upstream_t *up, ngx_uint_t p,
    ngx_msec_t now);
static void ngx_http_exchange_health_snap_states(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_msec_t now);
static void ngx_http_exchange_health_snap_certificates(
    ngx_http_exchange_health_snap_upstream_t *up, time_t now);
static ngx_uint_t ngx_http_exchange_health_same_cert(
    ngx_http_exchange_health_snap_server_t *a,
    ngx_http_exchange_health_snap_server_t *b);
static int ngx_libc_cdecl ngx_http_exchange_health_cmp_servers(
    const void *one, const void *two);
static ngx_buf_t *ngx_http_exchange_health_writer_buf(
    ngx_http_exchange_health_writer_t *w, size_t size);
static ngx_uint_t ngx_http_exchange_health_any(const char *list,
    u_char *error);
static size_t ngx_http_exchange_health_utf8(u_char *p, u_char *last);
static ngx_int_t ngx_http_exchange_health_add_header(ngx_http_request_t *r,
    char *key, char *value);


static ngx_str_t  ngx_http_exchange_health_accept = ngx_string("Accept");


static ngx_http_exchange_health_hint_t  ngx_http_exchange_health_hints[] = {

    { 1, NULL, NULL, 0,
      "The last failure was one user's (a full mailbox, no mailbox, a "
      "mailbox being moved): not a fault of this server." },

    { 0, NULL, "ExAssert|NullReference|Certificate|HMAC|OAuth|Cryptographic",
      1,
      "Signed-in OWA and ECP fail while the logon page and healthcheck.htm "
      "pass: check the Exchange OAuth Auth certificate of this server. In "
      "the Exchange Management Shell run "
      "`Get-ExchangeCertificate (Get-AuthConfig).CurrentCertificateThumbprint "
      "| Format-List`; if it is missing, expired or without its private "
      "key, create a new one (`New-ExchangeCertificate -SubjectName "
      "\"cn=Microsoft Exchange Server Auth Certificate\" ...`), make it "
      "current with `Set-AuthConfig`, publish it, and restart the OWA and "
      "ECP application pools (or IIS)." },

    { 0, "aspnet-error", NULL, 0,
      "An Exchange web application does not start: look at the "
      "Application event log (ASP.NET 1309/1310) and the application pools "
      "(MSExchangeOWAAppPool, MSExchangeECPAppPool); after an update, "
      "re-run `UpdateCas.ps1` and `UpdateConfigFiles.ps1` and check the "
      "BinSearchFolder setting of the ECP application." },

    { 0, "ecp-json", NULL, 0,
      "ECP web services fail: check MSExchangeECPAppPool and the "
      "Application event log of this server." },

    { 0, "ecp-error", NULL, 0,
      "ECP web services fail: check MSExchangeECPAppPool and the "
      "Application event log of this server." },

    { 0, "upstream-timeout", NULL, 0,
      "The server does not answer in time: check its load, IIS (W3SVC) "
      "and the MSExchange front-end application pools." },

    { 0, "upstream-error", NULL, 0,
      "nginx cannot talk to the server: check that it is up, that IIS "
      "listens on 443 with its certificate bound, and the network between "
      "nginx and it." },

    { 0, NULL, NULL, 0,
      "Exchange fails signed-in requests on this server: the error above "
      "is the X-OWA-Error the user's \"More details\" shows; look for it in "
      "the Application event log (MSExchange Front End HTTPS Proxy 1003, "
      "ASP.NET 1309)." }
};


static const char  *ngx_http_exchange_health_state_names[] = {
    "idle", "healthy", "failing", "draining", "maintenance", "inactive",
    "probe failing", "awaiting trial", "on trial", "ejected",
    "farm-wide fault"
};


char *
ngx_http_exchange_health_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "admin=on") == 0) {
            hlcf->admin = 1;

        } else if (ngx_strcmp(value[1].data, "admin=off") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", use \"admin=on\" "
                               "or \"admin=off\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    hlcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_exchange_health_status_handler;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_exchange_health_status_names(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *hlcf)
{
    ngx_str_t                 *name;
    ngx_uint_t                 i;
    ngx_http_server_name_t    *sn;
    ngx_http_core_srv_conf_t  *cscf;

    /*
     * The server block's names, kept for the Host check: nginx keeps
     * them in the configuration's temporary pool, gone once it is read.
     * Regular expressions are left out: a name the Host must match
     * exactly is what the operator typed.  So is "_", the catch-all of
     * nginx's documentation: a name no client uses, where the server
     * means to have none.
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    sn = cscf->server_names.elts;

    hlcf->server_names = ngx_array_create(cf->pool,
                                          ngx_max(cscf->server_names.nelts, 1),
                                          sizeof(ngx_str_t));
    if (hlcf->server_names == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < cscf->server_names.nelts; i++) {

#if (NGX_PCRE)
        if (sn[i].regex) {
            continue;
        }
#endif

        if (sn[i].name.len == 0
            || (sn[i].name.len == 1 && sn[i].name.data[0] == '_'))
        {
            continue;
        }

        name = ngx_array_push(hlcf->server_names);
        if (name == NULL) {
            return NGX_ERROR;
        }

        name->len = sn[i].name.len;
        name->data = ngx_pstrdup(cf->pool, &sn[i].name);
        if (name->data == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_exchange_health_status_host(ngx_http_request_t *r)
{
    ngx_str_t                             host, *name;
    ngx_uint_t                            i;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
#if (NGX_HAVE_INET6)
    u_char                                addr6[16];
#endif

    /*
     * Is the Host one this server block serves?  DNS rebinding makes a
     * browser send its operator's saved credentials, from inside an
     * allow list, to a name of the attacker's that now resolves to the
     * load balancer: the Host is that name.  The page and the admin API
     * answer a name of the server's own, an address, or localhost.
     *
     * nginx's checked Host: lower case, without its port or a final dot.
     */

    host = r->headers_in.server;

    if (host.len == 0) {
        return 0;
    }

    /*
     * An address is no name to rebind: a browser sends it as the Host of
     * a page loaded from that very address.  Any address, not only the
     * one the request came to, for a node behind NAT or a virtual IP.
     */

    if (ngx_inet_addr(host.data, host.len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']'
        && ngx_inet6_addr(host.data + 1, host.len - 2, addr6) == NGX_OK)
    {
        return 1;
    }
#endif

    /* browsers resolve localhost to the loopback, never through DNS */

    if (host.len == sizeof("localhost") - 1
        && ngx_strncasecmp(host.data, (u_char *) "localhost", host.len) == 0)
    {
        return 1;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    for (i = 0; hlcf->server_names && i < hlcf->server_names->nelts; i++) {

        name = &((ngx_str_t *) hlcf->server_names->elts)[i];

        if (name->len == host.len
            && ngx_strncasecmp(name->data, host.data, host.len) == 0)
        {
            return 1;
        }

        /* "*.contoso.com": a name under it */

        if (name->len > 1 && name->data[0] == '*' && name->data[1] == '.'
            && host.len > name->len - 1
            && ngx_strncasecmp(host.data + host.len - (name->len - 1),
                               name->data + 1, name->len - 1) == 0)
        {
            return 1;
        }

        /* ".contoso.com": the name itself and any under it */

        if (name->len > 1 && name->data[0] == '.'
            && ((host.len == name->len - 1
                 && ngx_strncasecmp(host.data, name->data + 1, host.len) == 0)
                || (host.len > name->len
                    && ngx_strncasecmp(host.data + host.len - name->len,
                                       name->data, name->len) == 0)))
        {
            return 1;
        }

        /* "mail.*": the name in any domain */

        if (name->len > 1 && name->data[name->len - 1] == '*'
            && name->data[name->len - 2] == '.'
            && host.len > name->len - 1
            && ngx_strncasecmp(host.data, name->data, name->len - 1) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_exchange_health_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_uint_t                            format;
    ngx_http_exchange_health_writer_t     w;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
    ngx_http_exchange_health_snapshot_t   snap;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    if (r->method == NGX_HTTP_POST && hlcf->admin) {
        return ngx_http_exchange_health_admin_handler(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!ngx_http_exchange_health_status_host(r)) {
        return ngx_http_exchange_health_refuse_host(r);
    }

    if (ngx_http_exchange_health_snapshot(r, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&w, sizeof(ngx_http_exchange_health_writer_t));
    w.pool = r->pool;
    w.last = &w.out;

    format = ngx_http_exchange_health_format(r);

    switch (format) {

    case NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON:
        ngx_http_exchange_health_render_json(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                             "application/json", &w);

    case NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS:
        ngx_http_exchange_health_render_prometheus(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                 "text/plain; version=0.0.4; charset=utf-8",
                                 &w);

    default:
        ngx_http_exchange_health_render_html(&w, &snap);
        return ngx_http_exchange_health_send(r, NGX_HTTP_OK,
                                             "text/html; charset=utf-8", &w);
    }
}


static ngx_int_t
ngx_http_exchange_health_refuse_host(ngx_http_request_t *r)
{
    u_char                             buf[3 * 64];
    ngx_str_t                          host;
    ngx_http_exchange_health_writer_t  w;

    /*
     * 403, as the admin API answers an order with such a Host: one answer
     * for both.  Not 421 Misdirected Request, which tells a client to try
     * again on another connection (browsers do, at once): it would only
     * be refused again.
     */

    host = ngx_http_exchange_health_log_text(buf, sizeof(buf),
                                             r->headers_in.server.data,
                                             r->headers_in.server.len);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "exchange_health: status page refused: the Host is not a "
                  "name of this server (Host \"%V\")", &host);

    ngx_memzero(&w, sizeof(ngx_http_exchange_health_writer_t));
    w.pool = r->pool;
    w.last = &w.out;

    ngx_http_exchange_health_write(&w, "the Host is not a name of this "
                                   "server: use a name in its server_name, "
                                   "its address or localhost\n");

    return ngx_http_exchange_health_send(r, NGX_HTTP_FORBIDDEN,
                                         "text/plain; charset=utf-8", &w);
}


ngx_int_t
ngx_http_exchange_health_send(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_http_exchange_health_writer_t *w)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (w->error || w->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = 0;

    for (cl = w->out; cl; cl = cl->next) {
        r->headers_out.content_length_n += ngx_buf_size(cl->buf);
    }

    w->buf->last_buf = (r == r->main) ? 1 : 0;
    w->buf->last_in_chain = 1;

    /* health is stale at once */

    if (ngx_http_exchange_health_add_header(r, "Cache-Control", "no-store")
        != NGX_OK
        || ngx_http_exchange_health_add_header(r, "Vary", "Accept") != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, w->out);
}


static ngx_uint_t
ngx_http_exchange_health_format(ngx_http_request_t *r)
{
    ngx_str_t         value;
    ngx_table_elt_t  *accept;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {

        if (value.len == 4 && ngx_strncmp(value.data, "json", 4) == 0) {
            return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON;
        }

        if (value.len == 10
            && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_PROMETHEUS;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML;
    }

    accept = ngx_http_exchange_health_header(&r->headers_in.headers,
                                             &ngx_http_exchange_health_accept);

    if (accept
        && ngx_strlcasestrn(accept->value.data,
                            accept->value.data + accept->value.len,
                            (u_char *) "application/json", 16 - 1))
    {
        return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_JSON;
    }

    return NGX_HTTP_EXCHANGE_HEALTH_FORMAT_HTML;
}


static ngx_int_t
ngx_http_exchange_health_snapshot(ngx_http_request_t *r,
    ngx_http_exchange_health_snapshot_t *snap)
{
    ngx_uint_t                                 i, j, n;
    ngx_msec_t                                 now;
    ngx_http_exchange_health_srv_conf_t      **hscfp, *hscf;
    ngx_http_exchange_health_main_conf_t      *hmcf;
    ngx_http_exchange_health_snap_server_t    *s;
    ngx_http_exchange_health_snap_upstream_t  *up;

    ngx_memzero(snap, sizeof(ngx_http_exchange_health_snapshot_t));
    snap->now = ngx_time();
    now = ngx_current_msec;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_exchange_health_module);
    hscfp = hmcf->upstreams.elts;

    snap->upstreams = ngx_pcalloc(r->pool, hmcf->upstreams.nelts
                         * sizeof(ngx_http_exchange_health_snap_upstream_t));
    if (snap->upstreams == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        hscf = hscfp[i];

        if (hscf->sh == NULL) {
            continue;
        }

        up = &snap->upstreams[snap->nupstreams++];
        up->conf = hscf;

        n = hscf->nprimary + hscf->nbackup;

        up->servers = ngx_pcalloc(r->pool,
                          n * sizeof(ngx_http_exchange_health_snap_server_t));
        if (up->servers == NULL) {
            return NGX_ERROR;
        }

        ngx_shmtx_lock(&hscf->shpool->mutex);

        up->record = *hscf->sh;

        for (j = 0; j < n; j++) {
            if (hscf->servers[j] == NULL) {
                up->nuntracked++;
                continue;
            }

            s = &up->servers[up->nservers++];
            s->addr = hscf->addrs[j];
            s->backup = (j >= hscf->nprimary);
            s->record = *hscf->servers[j];

            /* what the signed-in probe found, not its session's cookies */

            s->record.signin = NULL;

            if (hscf->signin && hscf->servers[j]->signin) {
                s->signin = 1;
                ngx_memcpy(s->signin_result,
                           hscf->servers[j]->signin->result,
                           sizeof(s->signin_result));
            }
        }

        ngx_shmtx_unlock(&hscf->shpool->mutex);

        for (j = 0; j < up->nservers; j++) {
            ngx_http_exchange_health_snap_states(up, &up->servers[j], now);

            if (up->servers[j].severity == 2) {
                up->nfailing++;
            }
        }

        ngx_http_exchange_health_snap_certificates(up, snap->now);

        ngx_qsort(up->servers, up->nservers,
                  sizeof(ngx_http_exchange_health_snap_server_t),
                  ngx_http_exchange_health_cmp_servers);

        snap->nservers += up->nservers;
        snap->nfailing += up->nfailing;

        for (j = 0; j < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; j++) {
            if (up->record.farm[j].fault) {
                snap->nfarm_faults++;

            } else if (ngx_http_exchange_health_request_failing(up, j, now))
            {
                up->request_failing |= (ngx_uint_t) 1 << j;
                snap->nrequest_failing++;
            }
        }
    }

    return NGX_OK;
}


static void
ngx_http_exchange_health_snap_states(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_msec_t now)
{
    ngx_uint_t                        p, state, severity;
    ngx_msec_int_t                    left;
    ngx_http_exchange_health_slot_t  *slot;

    s->severity = 0;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        slot = &s->record.slot[p];

        if (up->record.farm[p].fault) {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_FARM_FAULT;

        } else if (slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE) {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_MAINTENANCE;

        } else if (slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN) {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_DRAINING;

        } else if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
            left = (ngx_msec_int_t) (slot->until - now);

            if (left > 0) {
                state = NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED;
                s->until[p] = ngx_time() + (left + 999) / 1000;

            } else if (ngx_http_exchange_health_trial_pending(slot, now)) {
                state = NGX_HTTP_EXCHANGE_HEALTH_S_TRIAL;

            } else {
                state = NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING;
            }

        } else if (slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE) {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_INACTIVE;

        } else if (ngx_http_exchange_health_drained(up->conf, slot)) {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_PROBE_FAILING;

        } else if (ngx_http_exchange_health_window_live(&slot->window,
                                                        up->conf, now))
        {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_FAILING;

        } else if (slot->requests || slot->failures || slot->user_failures
                   || slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK)
        {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY;

        } else {
            state = NGX_HTTP_EXCHANGE_HEALTH_S_IDLE;
        }

        s->state[p] = state;

        severity = ngx_http_exchange_health_severity(state);

        if (severity > s->severity) {
            s->severity = severity;
        }
    }
}


static void
ngx_http_exchange_health_snap_certificates(
    ngx_http_exchange_health_snap_upstream_t *up, time_t now)
{
    ngx_uint_t                               i, j, best, tie;
    ngx_http_exchange_health_probe_conf_t   *pc;
    ngx_http_exchange_health_snap_server_t  *s;

    /*
     * Extended Protection needs every server to present the same
     * certificate: the one most servers present is the farm's, and the
     * others are marked; all are, when no certificate has most.
     */

    pc = up->conf->probe;
    best = 0;
    tie = 0;

    for (i = 0; i < up->nservers; i++) {
        s = &up->servers[i];

        if (s->record.cert_thumbprint_len == 0) {
            continue;
        }

        if (pc && s->record.cert_not_after
            && s->record.cert_not_after - now < pc->cert_warn)
        {
            s->cert_expiring = 1;
        }

        for (j = 0; j < up->nservers; j++) {
            if (ngx_http_exchange_health_same_cert(s, &up->servers[j])) {
                s->cert_same++;
            }
        }

        if (best == 0 || s->cert_same > up->servers[best - 1].cert_same) {
            best = i + 1;
            tie = 0;

        } else if (s->cert_same == up->servers[best - 1].cert_same
                   && !ngx_http_exchange_health_same_cert(s,
                                                   &up->servers[best - 1]))
        {
            tie = 1;
        }
    }

    for (i = 0; i < up->nservers; i++) {
        s = &up->servers[i];

        if (s->record.cert_thumbprint_len
            && (tie || !ngx_http_exchange_health_same_cert(s,
                                                   &up->servers[best - 1])))
        {
            s->cert_differs = 1;
        }
    }
}


static ngx_uint_t
ngx_http_exchange_health_same_cert(ngx_http_exchange_health_snap_server_t *a,
    ngx_http_exchange_health_snap_server_t *b)
{
    return a->record.cert_thumbprint_len
           && a->record.cert_thumbprint_len == b->record.cert_thumbprint_len
           && ngx_memcmp(a->record.cert_thumbprint, b->record.cert_thumbprint,
                         a->record.cert_thumbprint_len) == 0;
}


static int ngx_libc_cdecl
ngx_http_exchange_health_cmp_servers(const void *one, const void *two)
{
    const ngx_http_exchange_health_snap_server_t  *a = one;
    const ngx_http_exchange_health_snap_server_t  *b = two;

    /* failing servers first, then primaries before backups, by address */

    if (a->severity != b->severity) {
        return (int) b->severity - (int) a->severity;
    }

    if (a->backup != b->backup) {
        return (int) a->backup - (int) b->backup;
    }

    return ngx_memn2cmp(a->addr.data, b->addr.data, a->addr.len, b->addr.len);
}


static ngx_uint_t
ngx_http_exchange_health_request_failing(
    ngx_http_exchange_health_snap_upstream_t *up, ngx_uint_t p, ngx_msec_t now)
{
    ngx_http_exchange_health_farm_t  *farm;

    /* requests failed on every server they tried, within the window */

    farm = &up->record.farm[p];

    return ngx_http_exchange_health_window_live(&farm->window, up->conf, now);
}


ngx_uint_t
ngx_http_exchange_health_shown(ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    /* scope=server keeps one state, in the first slot */

    if (up->conf->per_server) {
        return p == 0;
    }

    /* a protocol with no traffic yet shows what its signed-in probe found */

    return s->state[p] != NGX_HTTP_EXCHANGE_HEALTH_S_IDLE
           || ngx_http_exchange_health_signin_shown(up, s, p) != NULL;
}


const char *
ngx_http_exchange_health_state_name(ngx_uint_t state)
{
    return ngx_http_exchange_health_state_names[state];
}


const char *
ngx_http_exchange_health_probe_name(ngx_uint_t probe)
{
    static const char  *names[] = { "none", "ok", "inactive", "failed" };

    return names[probe < 4 ? probe : 0];
}


ngx_http_exchange_health_signin_result_t *
ngx_http_exchange_health_signin_shown(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    /* a protocol the signed-in probe signs in to, once it probed */

    if (!s->signin || p >= NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS
        || !(up->conf->signin->protocols & (1 << p))
        || s->signin_result[p].result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NONE)
    {
        return NULL;
    }

    return &s->signin_result[p];
}


const char *
ngx_http_exchange_health_slot_name(
    ngx_http_exchange_health_snap_upstream_t *up, ngx_uint_t p)
{
    return up->conf->per_server ? "all"
                                : ngx_http_exchange_health_protocols[p].name;
}


const char *
ngx_http_exchange_health_hint(ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    ngx_uint_t                           i;
    ngx_http_exchange_health_hint_t     *h;
    ngx_http_exchange_health_failure_t  *f;

    f = &s->record.slot[p].last;

    if (f->time == 0) {
        return NULL;
    }

    for (i = 0; i < sizeof(ngx_http_exchange_health_hints)
                    / sizeof(ngx_http_exchange_health_hint_t); i++)
    {
        h = &ngx_http_exchange_health_hints[i];

        if (h->user != f->user) {
            continue;
        }

        if (h->rule && ngx_strcmp(f->rule, h->rule) != 0) {
            continue;
        }

        if (h->error && !ngx_http_exchange_health_any(h->error, f->error)) {
            continue;
        }

        if (h->owa_ecp && !up->conf->per_server
            && p != NGX_HTTP_EXCHANGE_HEALTH_OWA
            && p != NGX_HTTP_EXCHANGE_HEALTH_ECP)
        {
            continue;
        }

        return h->text;
    }

    return NULL;
}


static ngx_uint_t
ngx_http_exchange_health_any(const char *list, u_char *error)
{
    size_t       len;
    const char  *p, *bar;

    /* "a|b|c": does the error name any of them? */

    len = ngx_strlen(error);

    for (p = list; *p; p = bar + 1) {
        bar = ngx_strchr(p, '|');
        if (bar == NULL) {
            bar = p + ngx_strlen(p);
        }

        if (ngx_strlcasestrn(error, error + len, (u_char *) p, bar - p - 1)) {
            return 1;
        }

        if (*bar == '\0') {
            break;
        }
    }

    return 0;
}


static ngx_buf_t *
ngx_http_exchange_health_writer_buf(ngx_http_exchange_health_writer_t *w,
    size_t size)
{
    ngx_chain_t  *cl;

    if (w->buf && (size_t) (w->buf->end - w->buf->last) >= size) {
        return w->buf;
    }

    cl = ngx_alloc_chain_link(w->pool);
    if (cl == NULL) {
        w->error = 1;
        return NULL;
    }

    cl->buf = ngx_create_temp_buf(w->pool, ngx_max(size, 16384));
    if (cl->buf == NULL) {
        w->error = 1;
        return NULL;
    }

    cl->next = NULL;
    *w->last = cl;
    w->last = &cl->next;
    w->buf = cl->buf;

    return w->buf;
}


void
ngx_http_exchange_health_write(ngx_http_exchange_health_writer_t *w,
    const char *fmt, ...)
{
    u_char   *last, text[1024];
    va_list   args;

    /* a line at a time; values longer than a line go through write_text */

    va_start(args, fmt);
    last = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);

    ngx_http_exchange_health_write_text(w, text, last - text);
}


void
ngx_http_exchange_health_write_text(ngx_http_exchange_health_writer_t *w,
    u_char *data, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_http_exchange_health_writer_buf(w, len);
    if (b == NULL) {
        return;
    }

    b->last = ngx_cpymem(b->last, data, len);
}


void
ngx_http_exchange_health_write_escaped(ngx_http_exchange_health_writer_t *w,
    u_char *data, size_t len, ngx_uint_t mode)
{
    u_char      c, *p, *last;
    size_t      n;
    ngx_buf_t  *b;

    /*
     * Names, paths and errors come from upstream servers and requests:
     * they are escaped for the output format, and bytes that are not
     * UTF-8 become U+FFFD, so the output always parses.
     */

    b = ngx_http_exchange_health_writer_buf(w, len * 6);
    if (b == NULL) {
        return;
    }

    p = data;
    last = data + len;

    while (p < last) {
        c = *p;

        if (c >= 0x80) {
            n = ngx_http_exchange_health_utf8(p, last);

            if (n == 0) {
                b->last = ngx_cpymem(b->last, "\xef\xbf\xbd", 3);
                p++;

            } else {
                b->last = ngx_cpymem(b->last, p, n);
                p += n;
            }

            continue;
        }

        p++;

        switch (mode) {

        case NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML:
            switch (c) {
            case '&':  b->last = ngx_cpymem(b->last, "&amp;", 5); continue;
            case '<':  b->last = ngx_cpymem(b->last, "&lt;", 4); continue;
            case '>':  b->last = ngx_cpymem(b->last, "&gt;", 4); continue;
            case '"':  b->last = ngx_cpymem(b->last, "&quot;", 6); continue;
            case '\'': b->last = ngx_cpymem(b->last, "&#39;", 5); continue;
            }

            if (c < 0x20 || c == 0x7f) {
                c = '?';
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON:
            if (c == '"' || c == '\\') {
                *b->last++ = '\\';

            } else if (c < 0x20 || c == 0x7f) {
                b->last = ngx_sprintf(b->last, "\\u%04xd", (ngx_uint_t) c);
                continue;
            }

            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_PROMETHEUS */
            if (c == '"' || c == '\\') {
                *b->last++ = '\\';

            } else if (c == '\n') {
                b->last = ngx_cpymem(b->last, "\\n", 2);
                continue;

            } else if (c < 0x20 || c == 0x7f) {
                c = '?';
            }
        }

        *b->last++ = c;
    }
}


static size_t
ngx_http_exchange_health_utf8(u_char *p, u_char *last)
{
    size_t    n, i;
    uint32_t  u, min;

    /* the length of the valid UTF-8 sequence at p, or 0 */

    if (*p >= 0xf0 && *p <= 0xf4) {
        n = 4; u = *p & 0x07; min = 0x10000;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 3; u = *p & 0x0f; min = 0x800;

    } else if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2; u = *p & 0x1f; min = 0x80;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return n;
}


static ngx_int_t
ngx_http_exchange_health_add_header(ngx_http_request_t *r, char *key,
    char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}

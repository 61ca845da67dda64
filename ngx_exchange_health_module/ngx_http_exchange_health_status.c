
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * The snapshot the status page is rendered from: every zone is copied
 * under its lock, then read from the copy, so a page is one consistent
 * picture and the lock is held only for the copy.  The readings of a
 * copy the renderers share are here too: the state of each server and
 * protocol, their names, and the hint of what to check.
 */


/* hints mark commands with backquotes; the HTML page shows them as code */
typedef struct {
    ngx_uint_t   user;          /* only for a failure that was one user's */
    const char  *rule;          /* NULL: any rule */
    const char  *error;         /* NULL: any error; else any of "a|b" */
    ngx_uint_t   owa_ecp;       /* only for OWA and ECP */
    const char  *text;
} ngx_http_exchange_health_hint_t;


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
static ngx_uint_t ngx_http_exchange_health_any(const char *list,
    u_char *error);


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


/*
 * The states, the one list of them: the page, the JSON, Prometheus' help
 * and the timeline's legend read it, docs/status-page.md says it again.
 */
ngx_http_exchange_health_state_t  ngx_http_exchange_health_states[] = {

    { NGX_HTTP_EXCHANGE_HEALTH_S_IDLE, "idle",
      "no answer of the protocol judged yet" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY, "healthy",
      "answers well" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_FAILING, "failing",
      "failures counted, not enough to eject it" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_DRAINING, "draining",
      "an operator drains it: no new users" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_MAINTENANCE, "maintenance",
      "an operator took it out" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_INACTIVE, "inactive",
      "Exchange's own: the component is set inactive" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_PROBE_FAILING, "probe failing",
      "the probe of healthcheck.htm fails: no new users" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING, "awaiting trial",
      "its ejection is over, it waits for a request to try it with" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_TRIAL, "on trial",
      "one request tries it" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED, "ejected",
      "out: its users are sent to the others" },

    { NGX_HTTP_EXCHANGE_HEALTH_S_FARM_FAULT, "farm-wide fault",
      "every server fails alike: none is ejected" }
};


/* a state missing from the table fails the build */
typedef char  ngx_http_exchange_health_states_complete[
    sizeof(ngx_http_exchange_health_states)
    / sizeof(ngx_http_exchange_health_state_t)
    == NGX_HTTP_EXCHANGE_HEALTH_S_N ? 1 : -1];


ngx_int_t
ngx_http_exchange_health_snapshot(ngx_http_request_t *r,
    ngx_http_exchange_health_snapshot_t *snap)
{
    ngx_uint_t                                 i, j, n, p, nlines;
    ngx_msec_t                                 now;
    ngx_http_exchange_health_line_t           *lines;
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

        /*
         * Room for the timelines, made before the lock: a line is never
         * freed once made, so counting them without the lock is safe; one
         * made meanwhile is on the next page.
         */

        for (j = 0, nlines = 0; j < n; j++) {
            if (hscf->servers[j] == NULL) {
                continue;
            }

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
                nlines += (hscf->servers[j]->slot[p].line != NULL);
            }
        }

        lines = ngx_palloc(r->pool,
                    (nlines + 1) * sizeof(ngx_http_exchange_health_line_t));
        if (lines == NULL) {
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

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
                s->record.slot[p].line = NULL;

                if (nlines
                    && ngx_http_exchange_health_timeline_copy_locked(lines,
                                           &hscf->servers[j]->slot[p]))
                {
                    s->line[p] = lines++;
                    nlines--;
                }
            }

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

        state = ngx_http_exchange_health_slot_state(up->conf, &up->record,
                                                    slot, p, now);

        if (state == NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED) {
            left = (ngx_msec_int_t) (slot->until - now);
            s->until[p] = ngx_time() + (left + 999) / 1000;
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


ngx_http_exchange_health_state_t *
ngx_http_exchange_health_state(ngx_uint_t state)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_S_N; i++) {
        if (ngx_http_exchange_health_states[i].value == state) {
            return &ngx_http_exchange_health_states[i];
        }
    }

    return &ngx_http_exchange_health_states[0];
}


const char *
ngx_http_exchange_health_state_name(ngx_uint_t state)
{
    return ngx_http_exchange_health_state(state)->name;
}


ngx_str_t
ngx_http_exchange_health_server_name(ngx_http_exchange_health_snap_server_t *s)
{
    size_t      i;
    ngx_str_t   name;

    /*
     * What to call it: Exchange's name for it (X-FEServer, the probe's
     * FQDN), else the name it has in the configuration, without its
     * port; its address when that is all the configuration says, so
     * that the page never shows the address twice.
     */

    if (s->record.name.len) {
        name.data = s->record.name.data;
        name.len = s->record.name.len;
        return name;
    }

    name.data = s->record.server.data;
    name.len = s->record.server.len;

    for (i = name.len; i > 0 && name.data[i - 1] >= '0'
                              && name.data[i - 1] <= '9'; i--)
    {
        /* void */
    }

    if (i > 1 && i < name.len && name.data[i - 1] == ':') {
        name.len = i - 1;
    }

    if (name.len == 0 || name.data[0] == '[' || name.data[0] == '/'
        || ngx_strlchr(name.data, name.data + name.len, ':')
        || ngx_inet_addr(name.data, name.len) != INADDR_NONE)
    {
        return s->addr;
    }

    return name;
}


ngx_str_t
ngx_http_exchange_health_probe_why(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    ngx_str_t  why;

    /* why the last probe failed; empty when it passed or none ran */

    ngx_str_null(&why);

    if (s->line[p]
        && s->record.slot[p].probe != NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK
        && s->record.slot[p].probe != NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE)
    {
        why.data = s->line[p]->probe_why;
        why.len = ngx_strnlen(why.data, sizeof(s->line[p]->probe_why));
    }

    return why;
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

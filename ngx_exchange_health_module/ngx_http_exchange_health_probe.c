
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Active probes: each worker looks every second for probes that are due
 * and claims them in the zone, so one worker probes a given server and
 * protocol per interval, whatever the number of workers.  A probe asks
 * for the protocol's healthcheck.htm over TLS with SNI (the exchange of
 * probe_exchange.c) and records the server's certificate it saw.
 *
 * "200 OK<br/>FQDN" is healthy.  A connection closed with no answer is
 * what Exchange does when the component is inactive (maintenance mode):
 * the server is drained for that protocol until it answers again.
 * Failing probes drain it after "fails" in a row.  A probe never
 * re-admits a server that live traffic ejected: only a live trial does.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_TICK     1000

/* the most probes one tick starts; the rest wait for the next tick */
#define NGX_HTTP_EXCHANGE_HEALTH_BATCH          64


/* a probe claimed by a tick, started once the zone is unlocked */
typedef struct {
    ngx_uint_t                             peer;
    ngx_uint_t                             protocol;
} ngx_http_exchange_health_due_t;


static void ngx_http_exchange_health_probe_tick(ngx_event_t *ev);
static void ngx_http_exchange_health_probe_start(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer,
    ngx_uint_t protocol);
static void ngx_http_exchange_health_probe_answer(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_probe_judge(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_probe_done(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t result, char *reason,
    ngx_str_t *fqdn);
static void ngx_http_exchange_health_probe_record(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t result, char *reason,
    ngx_str_t *fqdn);


char *
ngx_http_exchange_health_probe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_srv_conf_t *hscf = conf;

    ngx_int_t                               n;
    ngx_str_t                              *value, s;
    ngx_uint_t                              i;
    ngx_pool_cleanup_t                     *cln;
    ngx_http_exchange_health_probe_conf_t  *pc;

    if (hscf->probe) {
        return "is duplicate";
    }

    ngx_http_exchange_health_needs_zone(cf, hscf);

    pc = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_probe_conf_t));
    if (pc == NULL) {
        return NGX_CONF_ERROR;
    }

    hscf->probe = pc;

    pc->interval = 10000;
    pc->timeout = 5000;
    pc->tls = 1;
    pc->cert_warn = 30 * 86400;

    /* the virtual directories that have a healthcheck.htm */

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_POWERSHELL; i++) {
        pc->protocols |= 1 << i;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0
            || ngx_strncmp(value[i].data, "timeout=", 8) == 0)
        {
            s.data = ngx_strlchr(value[i].data,
                                 value[i].data + value[i].len, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            if (value[i].data[0] == 'i') {
                pc->interval = n;

            } else {
                pc->timeout = n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fails=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 1 || n > 255) {
                goto invalid;
            }

            hscf->probe_fails = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cert_warn=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            n = ngx_parse_time(&s, 1);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            pc->cert_warn = n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tls=on") == 0) {
            pc->tls = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tls=off") == 0) {
            pc->tls = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "sni=", 4) == 0 && value[i].len > 4) {
            pc->sni.data = value[i].data + 4;
            pc->sni.len = value[i].len - 4;

            /* OpenSSL takes it NUL-terminated */
            pc->sni_cstr = ngx_pnalloc(cf->pool, pc->sni.len + 1);
            if (pc->sni_cstr == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_cpystrn(pc->sni_cstr, pc->sni.data, pc->sni.len + 1);
            continue;
        }

        if (ngx_strncmp(value[i].data, "protocols=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            if (ngx_http_exchange_health_probe_protocols(cf, &value[i], &s,
                                                         &pc->protocols)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", use \"interval=\", "
                           "\"timeout=\", \"tls=\", \"sni=\", \"protocols=\", "
                           "\"fails=\" or \"cert_warn=\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_OTHER; i++) {
        if (pc->uri[i].len == 0) {
            pc->uri[i].len = ngx_strlen(
                             ngx_http_exchange_health_protocols[i].vdir)
                             + sizeof("//healthcheck.htm") - 1;
            pc->uri[i].data = ngx_pnalloc(cf->pool, pc->uri[i].len);
            if (pc->uri[i].data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_sprintf(pc->uri[i].data, "/%s/healthcheck.htm",
                        ngx_http_exchange_health_protocols[i].vdir);
        }
    }

    if (!pc->tls) {
        return NGX_CONF_OK;
    }

#if (NGX_HTTP_SSL)

    pc->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (pc->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    pc->ssl->log = cf->log;

    /* no verification: the probe reads the certificate, good or bad */

    if (ngx_ssl_create(pc->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(pc->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = pc->ssl;

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "probes over TLS need nginx built with SSL: "
                       "add \"tls=off\" or rebuild nginx");
    return NGX_CONF_ERROR;

#endif

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value in \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_exchange_health_probe_protocols(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *list, ngx_uint_t *protocols)
{
    ngx_int_t  n;
    ngx_str_t  s, name;

    /* "owa,ecp": a bit per protocol named, at least one */

    *protocols = 0;
    s = *list;

    while (s.len) {
        name.data = s.data;
        name.len = 0;

        while (name.len < s.len && s.data[name.len] != ',') {
            name.len++;
        }

        n = ngx_http_exchange_health_protocol_by_name(name.data, name.len);
        if (n < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown protocol \"%V\" in \"%V\"",
                               &name, value);
            return NGX_ERROR;
        }

        *protocols |= 1 << n;

        s.data += name.len;
        s.len -= name.len;

        if (s.len) {
            s.data++;
            s.len--;
        }
    }

    if (*protocols == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value in \"%V\"", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_exchange_health_probe_uri(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_srv_conf_t *hscf = conf;

    ngx_int_t   p;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (hscf->probe == NULL) {
        return "needs \"exchange_health_probe\" before it";
    }

    p = ngx_http_exchange_health_protocol_by_name(value[1].data,
                                                  value[1].len);
    if (p < 0 || p == NGX_HTTP_EXCHANGE_HEALTH_OTHER) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown protocol \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a probe URI starts with \"/\", not \"%V\"",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    hscf->probe->uri[p] = value[2];
    hscf->probe->protocols |= 1 << p;

    return NGX_CONF_OK;
}


void
ngx_http_exchange_health_probe_init_process(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf)
{
    hscf->probe->timer.handler = ngx_http_exchange_health_probe_tick;
    hscf->probe->timer.data = hscf;
    hscf->probe->timer.log = cycle->log;
    hscf->probe->timer.cancelable = 1;

    /* workers start apart, so the first probes are not all at once */

    ngx_add_timer(&hscf->probe->timer,
                  ngx_random() % NGX_HTTP_EXCHANGE_HEALTH_PROBE_TICK + 1);
}


static void
ngx_http_exchange_health_probe_tick(ngx_event_t *ev)
{
    ngx_uint_t                              i, p, n, ndue;
    ngx_msec_t                              now;
    ngx_http_exchange_health_due_t          due[NGX_HTTP_EXCHANGE_HEALTH_BATCH];
    ngx_http_exchange_health_slot_t        *slot;
    ngx_http_exchange_health_srv_conf_t    *conf;
    ngx_http_exchange_health_probe_conf_t  *pc;

    conf = ev->data;
    pc = conf->probe;
    now = ngx_current_msec;
    n = conf->nprimary + conf->nbackup;
    ndue = 0;

    /* claim what is due: the next probe time moves on under the lock */

    ngx_shmtx_lock(&conf->shpool->mutex);

    for (i = 0; i < n && ndue < NGX_HTTP_EXCHANGE_HEALTH_BATCH; i++) {

        if (conf->servers[i] == NULL) {
            continue;
        }

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_OTHER; p++) {

            if (ndue == NGX_HTTP_EXCHANGE_HEALTH_BATCH) {
                break;
            }

            if (!(pc->protocols & (1 << p))) {
                continue;
            }

            slot = &conf->servers[i]->slot[conf->per_server ? 0 : p];

            if ((ngx_msec_int_t) (now - slot->probe_next) < 0) {
                continue;
            }

            slot->probe_next = now + pc->interval;

            due[ndue].peer = i;
            due[ndue].protocol = p;
            ndue++;

            /* scope=server keeps one state: its first protocol answers */

            if (conf->per_server) {
                break;
            }
        }
    }

    ngx_shmtx_unlock(&conf->shpool->mutex);

    for (i = 0; i < ndue; i++) {
        ngx_http_exchange_health_probe_start(conf, due[i].peer,
                                             due[i].protocol);
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_EXCHANGE_HEALTH_PROBE_TICK);
    }
}


static void
ngx_http_exchange_health_probe_start(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer,
    ngx_uint_t protocol)
{
    u_char                                 *p;
    ngx_str_t                              *host;
    ngx_http_exchange_health_probe_t       *pr;
    ngx_http_exchange_health_probe_conf_t  *pc;

    pc = conf->probe;
    host = ngx_http_exchange_health_probe_host(conf, peer);

    pr = ngx_http_exchange_health_probe_new(conf, peer,
                                  pc->uri[protocol].len + host->len + 128,
                                  ngx_http_exchange_health_probe_answer);
    if (pr == NULL) {
        return;
    }

    pr->protocol = protocol;

    p = ngx_sprintf(pr->request->last,
                    "GET %V HTTP/1.1\r\nHost: %V\r\n"
                    "User-Agent: nginx exchange_health probe\r\n"
                    "Connection: close\r\n\r\n", &pc->uri[protocol], host);
    pr->request->last = p;

    ngx_http_exchange_health_probe_connect(pr);
}


ngx_str_t *
ngx_http_exchange_health_probe_host(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t peer)
{
    /* the site's name when sni= gives one, else the server's address */

    return conf->probe->sni.len ? &conf->probe->sni
                                : &conf->peers[peer]->server;
}


static void
ngx_http_exchange_health_probe_answer(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    if (error) {
        ngx_http_exchange_health_probe_done(pr,
                                      NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED,
                                      error, NULL);
        return;
    }

    ngx_http_exchange_health_probe_judge(pr);
}


static void
ngx_http_exchange_health_probe_judge(ngx_http_exchange_health_probe_t *pr)
{
    u_char     *p, *last, *body;
    ngx_str_t   fqdn;
    ngx_buf_t  *b;

    b = pr->response;
    p = b->pos;
    last = b->last;

    /* Exchange's way of saying "this component is inactive" */

    if (p == last) {
        ngx_http_exchange_health_probe_done(pr,
                                      NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE,
                                      "the connection was closed with no "
                                      "answer: component inactive", NULL);
        return;
    }

    if (last - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || ngx_strncmp(p + 8, " 200", 4) != 0)
    {
        ngx_http_exchange_health_probe_done(pr,
                                      NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED,
                                      "no 200 OK", NULL);
        return;
    }

    body = ngx_strlcasestrn(p, last, (u_char *) "\r\n\r\n", 4 - 1);

    if (body == NULL
        || last - (body + 4) < 6
        || ngx_strncmp(body + 4, "200 OK", 6) != 0)
    {
        ngx_http_exchange_health_probe_done(pr,
                                      NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED,
                                      "not a healthcheck.htm answer", NULL);
        return;
    }

    /* "200 OK<br/>EXCH1.contoso.local" */

    ngx_str_null(&fqdn);

    fqdn.len = ngx_http_exchange_health_healthcheck_name(body + 4,
                                              last - (body + 4),
                                              (const u_char **) &fqdn.data);

    ngx_http_exchange_health_probe_done(pr, NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK,
                                        NULL, &fqdn);
}


static void
ngx_http_exchange_health_probe_done(ngx_http_exchange_health_probe_t *pr,
    ngx_uint_t result, char *reason, ngx_str_t *fqdn)
{
    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health probe: %V, %uz bytes read, result %ui: "
                   "%s", &pr->conf->peers[pr->peer]->name,
                   (size_t) (pr->response->last - pr->response->start),
                   result, reason ? reason : "healthy");

    ngx_http_exchange_health_probe_record(pr, result, reason, fqdn);
    ngx_http_exchange_health_probe_close(pr);
    ngx_destroy_pool(pr->pool);
}


static void
ngx_http_exchange_health_probe_record(ngx_http_exchange_health_probe_t *pr,
    ngx_uint_t result, char *reason, ngx_str_t *fqdn)
{
    size_t                                  i, len;
    u_char                                  buf[64], safe[3 * 64];
    ngx_str_t                               name, proto;
    ngx_http_exchange_health_change_e       change;
    ngx_http_exchange_health_server_t      *srv;
    ngx_http_exchange_health_srv_conf_t    *conf;

    conf = pr->conf;
    srv = conf->servers[pr->peer];

    ngx_shmtx_lock(&conf->shpool->mutex);

    /* whether what it found drains the server or lets it back: state.c's */

    change = ngx_http_exchange_health_probed_locked(conf,
                                        conf->per_server ? 0 : pr->protocol,
                                        pr->peer, result, (u_char *) reason);

    if (fqdn && fqdn->len) {
        srv->fqdn_len = ngx_min(fqdn->len, NGX_HTTP_EXCHANGE_HEALTH_FQDN_LEN);
        ngx_memcpy(srv->fqdn, fqdn->data, srv->fqdn_len);
        ngx_http_exchange_health_name_from_fqdn_locked(srv);
    }

    if (pr->thumbprint.len) {
        len = ngx_min(pr->thumbprint.len, sizeof(srv->cert_thumbprint));

        for (i = 0; i < len; i++) {
            srv->cert_thumbprint[i] = ngx_toupper(pr->thumbprint.data[i]);
        }

        srv->cert_thumbprint_len = len;
        srv->cert_subject_len = ngx_min(pr->subject.len,
                                        sizeof(srv->cert_subject));

        if (srv->cert_subject_len) {
            ngx_memcpy(srv->cert_subject, pr->subject.data,
                       srv->cert_subject_len);
        }
        srv->cert_not_after = pr->not_after;
        srv->cert_time = ngx_time();
    }

    name.data = buf;
    name.len = srv->name.len;
    ngx_memcpy(buf, srv->name.data, name.len);

    ngx_shmtx_unlock(&conf->shpool->mutex);

    name = ngx_http_exchange_health_log_text(safe, sizeof(safe), name.data,
                                             name.len);

    if (name.len == 0) {
        ngx_str_set(&name, "-");
    }

    if (change == ngx_http_exchange_health_nothing) {
        return;
    }

    if (conf->per_server) {
        ngx_str_set(&proto, "all protocols");

    } else {
        proto.data = (u_char *) ngx_http_exchange_health_protocols[
                                                        pr->protocol].name;
        proto.len = ngx_strlen(proto.data);
    }

    if (change == ngx_http_exchange_health_probe_drained) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "drained for %V by its probe of %V: %s",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &conf->probe->uri[pr->protocol], reason);

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "back for %V: its probe of %V answers again",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &conf->probe->uri[pr->protocol]);
    }
}

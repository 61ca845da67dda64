
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The balancer is nginx's round robin (weights, backup, down, max_fails
 * and max_conns keep their meaning) that never picks a server ejected for
 * the request's protocol: ejected servers are marked as already tried
 * before round robin chooses.
 *
 * It also judges each answer as soon as its header is parsed, inside the
 * upstream, where nginx can still send the request elsewhere: the proxy
 * module's process_header is decorated, and a failure found there, in
 * the header or in the first body bytes held for it, makes nginx try
 * another server through its own next-upstream path.
 */


static ngx_int_t ngx_http_exchange_health_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_exchange_health_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_exchange_health_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_exchange_health_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_exchange_health_mark_avoided(
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_usable(
    ngx_http_upstream_rr_peer_data_t *rrp, uintptr_t *avoided);
static ngx_int_t ngx_http_exchange_health_process_header(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_reinit_request(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_exchange_health_scan_held(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_may_hold(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static ngx_int_t ngx_http_exchange_health_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_learn(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_who(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_cleanup(void *data);


#define ngx_http_exchange_health_bit(map, i)                                 \
    ((map)[(i) / (8 * sizeof(uintptr_t))]                                    \
     & ((uintptr_t) 1 << (i) % (8 * sizeof(uintptr_t))))


static ngx_str_t  ngx_http_exchange_health_upstream_error =
    ngx_string("upstream-error");
static ngx_str_t  ngx_http_exchange_health_upstream_timeout =
    ngx_string("upstream-timeout");
static ngx_str_t  ngx_http_exchange_health_upstream_status =
    ngx_string("upstream-status");


char *
ngx_http_exchange_health_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_srv_conf_t *hscf = conf;

    ngx_str_t                              *value, name;
    ngx_uint_t                              i;
    ngx_http_upstream_srv_conf_t           *uscf;
    ngx_http_exchange_health_srv_conf_t   **hscfp;
    ngx_http_exchange_health_main_conf_t   *hmcf;

    if (hscf->shm_zone) {
        return "is duplicate";
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;

            if (name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "no zone name in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            hscf->shm_zone = ngx_shared_memory_add(cf, &name, 0,
                                              &ngx_http_exchange_health_module);
            if (hscf->shm_zone == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=protocol") == 0) {
            hscf->per_server = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=server") == 0) {
            hscf->per_server = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", use \"zone=\" and "
                           "\"scope=protocol\" or \"scope=server\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (hscf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"exchange_health\" needs \"zone=\", the "
                           "name of an \"exchange_health_zone\"");
        return NGX_CONF_ERROR;
    }

    /*
     * The balancer is round robin's, with servers marked; another method
     * set before would be dropped silently, and keepalive set before
     * would lose its cache: both must come after, keepalive alone.
     */

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"exchange_health\" must be the first load "
                           "balancing directive of upstream \"%V\": put "
                           "\"keepalive\" after it, and remove "
                           "\"least_conn\", \"ip_hash\", \"hash\" or "
                           "\"random\": it balances with round robin",
                           &uscf->host);
        return NGX_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_http_exchange_health_init_upstream;

    uscf->flags = NGX_HTTP_UPSTREAM_CREATE
                  |NGX_HTTP_UPSTREAM_WEIGHT
                  |NGX_HTTP_UPSTREAM_MAX_CONNS
                  |NGX_HTTP_UPSTREAM_MAX_FAILS
                  |NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
                  |NGX_HTTP_UPSTREAM_DOWN
                  |NGX_HTTP_UPSTREAM_BACKUP;

    hscf->upstream = uscf;
    hscf->name = uscf->host;
    hscf->file = cf->conf_file->file.name;
    hscf->line = cf->conf_file->line;

    hmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_exchange_health_module);

    hscfp = ngx_array_push(&hmcf->upstreams);
    if (hscfp == NULL) {
        return NGX_CONF_ERROR;
    }

    *hscfp = hscf;

    return NGX_CONF_OK;
}


char *
ngx_http_exchange_health_eject(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_srv_conf_t *hscf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_msec_t  *ms;
    ngx_uint_t   i, *num;

    if (hscf->fails != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    ngx_http_exchange_health_needs_zone(cf, hscf);

    hscf->fails = 3;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        ms = NULL;
        num = NULL;

        if (ngx_strncmp(value[i].data, "fails=", 6) == 0) {
            num = &hscf->fails;
            s.data = value[i].data + 6;

        } else if (ngx_strncmp(value[i].data, "users=", 6) == 0) {
            num = &hscf->users;
            s.data = value[i].data + 6;

        } else if (ngx_strcmp(value[i].data, "voters=signed_in") == 0) {
            hscf->any_voter = 0;
            continue;

        } else if (ngx_strcmp(value[i].data, "voters=any") == 0) {
            hscf->any_voter = 1;
            continue;

        } else if (ngx_strncmp(value[i].data, "window=", 7) == 0) {
            ms = &hscf->window;
            s.data = value[i].data + 7;

        } else if (ngx_strncmp(value[i].data, "time=", 5) == 0) {
            ms = &hscf->time;
            s.data = value[i].data + 5;

        } else if (ngx_strncmp(value[i].data, "max_time=", 9) == 0) {
            ms = &hscf->max_time;
            s.data = value[i].data + 9;

        } else if (ngx_strncmp(value[i].data, "max_ejected=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].data + value[i].len - s.data;

            if (s.len > 1 && s.data[s.len - 1] == '%') {
                n = ngx_atoi(s.data, s.len - 1);
                if (n < 0 || n > 100) {
                    goto invalid;
                }

                hscf->max_ejected_percent = n;

            } else {
                n = ngx_atoi(s.data, s.len);
                if (n < 0) {
                    goto invalid;
                }

                hscf->max_ejected = n;
            }

            continue;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", use \"fails=\", "
                               "\"window=\", \"users=\", \"voters=\", "
                               "\"time=\", \"max_time=\" or "
                               "\"max_ejected=\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        s.len = value[i].data + value[i].len - s.data;

        if (num) {
            n = ngx_atoi(s.data, s.len);
            if (n < 1) {
                goto invalid;
            }

            *num = n;

        } else {
            *ms = ngx_parse_time(&s, 0);
            if (*ms == (ngx_msec_t) NGX_ERROR || *ms == 0) {
                goto invalid;
            }
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value in \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * exchange_health_eject and exchange_health_probe may come before
 * "exchange_health zone=" in an upstream block, so whether they have a
 * zone to act on is known only once the configuration is read.  Without
 * one they would be accepted and never act: refuse them instead, naming
 * the first of them where it was written.
 */

void
ngx_http_exchange_health_needs_zone(ngx_conf_t *cf,
    ngx_http_exchange_health_srv_conf_t *hscf)
{
    ngx_str_t  *value;

    if (hscf->needs_zone) {
        return;
    }

    value = cf->args->elts;

    hscf->needs_zone = (char *) value[0].data;
    hscf->needs_zone_file = cf->conf_file->file.name;
    hscf->needs_zone_line = cf->conf_file->line;
}


ngx_int_t
ngx_http_exchange_health_check_upstreams(ngx_conf_t *cf)
{
    ngx_uint_t                             i;
    ngx_http_upstream_srv_conf_t         **uscfp;
    ngx_http_upstream_main_conf_t         *umcf;
    ngx_http_exchange_health_srv_conf_t  **hscfp, *hscf;
    ngx_http_exchange_health_main_conf_t  *hmcf;

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = umcf->upstreams.elts;

    hmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_exchange_health_module);
    hscfp = hmcf->upstreams.elts;

    /*
     * A method set after exchange_health replaced it (nginx only warns
     * "load balancing method redefined"): the upstream would run without
     * the module while its zone records were set up for it.  keepalive
     * after it keeps it, and calls it.
     */

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        if (hscfp[i]->balancing) {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "another load balancing method replaced "
                      "\"exchange_health\" in upstream \"%V\": it "
                      "balances with round robin, so remove \"least_conn\", "
                      "\"ip_hash\", \"hash\" or \"random\"; only "
                      "\"keepalive\" may follow it, in %V:%ui",
                      &hscfp[i]->name, &hscfp[i]->file, hscfp[i]->line);
        return NGX_ERROR;
    }

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        if (uscfp[i]->srv_conf == NULL) {
            continue;   /* an implicit upstream of proxy_pass */
        }

        hscf = ngx_http_conf_upstream_srv_conf(uscfp[i],
                                              ngx_http_exchange_health_module);

        if (hscf->shm_zone || hscf->needs_zone == NULL) {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" needs \"exchange_health zone=\" in upstream "
                      "\"%V\" in %V:%ui", hscf->needs_zone, &uscfp[i]->host,
                      &hscf->needs_zone_file, hscf->needs_zone_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_rr_peer_t          *peer;
    ngx_http_upstream_rr_peers_t         *peers;
    ngx_http_exchange_health_srv_conf_t  *hscf;

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_exchange_health_init_peer;

    hscf = ngx_http_conf_upstream_srv_conf(us,
                                           ngx_http_exchange_health_module);
    hscf->balancing = 1;

    if (hscf->shm_zone->data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown exchange_health_zone \"%V\" in %V:%ui",
                      &hscf->shm_zone->shm.name, &hscf->file, hscf->line);
        return NGX_ERROR;
    }

    peers = us->peer.data;

    hscf->nprimary = peers->number;
    hscf->nbackup = peers->next ? peers->next->number : 0;

    /* "keep at least one" counts servers that can take traffic at all */

    for (peer = peers->peer; peer; peer = peer->next) {
        if (!peer->down) {
            hscf->nup++;
        }
    }

    if (hscf->fails == NGX_CONF_UNSET_UINT) {
        hscf->fails = 3;
    }

    if (hscf->users == NGX_CONF_UNSET_UINT) {
        hscf->users = 2;
    }

    ngx_conf_init_value(hscf->any_voter, 0);

    if (hscf->window == NGX_CONF_UNSET_MSEC) {
        hscf->window = 30000;
    }

    if (hscf->time == NGX_CONF_UNSET_MSEC) {
        hscf->time = 30000;
    }

    if (hscf->max_time == NGX_CONF_UNSET_MSEC) {
        hscf->max_time = ngx_max(600000, hscf->time);
    }

    if (hscf->probe_fails == 0) {
        hscf->probe_fails = 2;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                            n;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_ctx_t       *ctx;
    ngx_http_exchange_health_loc_conf_t  *hlcf;
    ngx_http_exchange_health_srv_conf_t  *hscf;

    u = r->upstream;
    hscf = ngx_http_conf_upstream_srv_conf(us,
                                           ngx_http_exchange_health_module);
    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_exchange_health_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_exchange_health_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    u->peer.data = &ctx->rrp;

    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    u->peer.get = ngx_http_exchange_health_get_peer;
    u->peer.free = ngx_http_exchange_health_free_peer;

    ctx->request = r;
    ctx->conf = hscf;
    ctx->lcf = hlcf;
    ctx->method = r->method_name;
    ctx->uri = r->uri;

    /* never a mailbox address in what is recorded, shown or kept */

    if (ngx_http_exchange_health_has_mailbox(r->uri.data, r->uri.len)) {
        ctx->uri.data = ngx_pnalloc(r->pool, 5 * r->uri.len + 9);
        if (ctx->uri.data == NULL) {
            return NGX_ERROR;
        }

        ctx->uri.len = ngx_http_exchange_health_mask_mailbox(ctx->uri.data,
                                                  r->uri.data, r->uri.len);
    }

    n = (hscf->nprimary + hscf->nbackup + 8 * sizeof(uintptr_t) - 1)
        / (8 * sizeof(uintptr_t));

    if (n == 1) {
        ctx->avoided = &ctx->avoided_data[0];
        ctx->suspect = &ctx->avoided_data[1];

    } else {
        ctx->avoided = ngx_pcalloc(r->pool, 2 * n * sizeof(uintptr_t));
        if (ctx->avoided == NULL) {
            return NGX_ERROR;
        }

        ctx->suspect = ctx->avoided + n;
    }

    ctx->protocol = hlcf->protocol >= 0
                    ? (ngx_uint_t) hlcf->protocol
                    : ngx_http_exchange_health_protocol_of_uri(r->uri.data,
                                                               r->uri.len);
    ctx->slot = hscf->per_server ? 0 : ctx->protocol;
    ngx_http_exchange_health_who(r, ctx);

    /* Exchange's virtual directories are judged; other paths only routed */

    ctx->detect = hlcf->detect
                  && (hlcf->protocol >= 0
                      || ctx->protocol != NGX_HTTP_EXCHANGE_HEALTH_OTHER);

    /*
     * Pages Exchange renders for anyone (the logon, the errorFE page a
     * browser is sent to after a failure on any server) are routed, not
     * judged: anyone can ask for them with any cookie and any query, and
     * the server that renders them is not the one that failed.
     */

    if (ctx->detect
        && (ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_OWA
            || ctx->protocol == NGX_HTTP_EXCHANGE_HEALTH_ECP)
        && ngx_http_exchange_health_anonymous_uri(r->uri.data, r->uri.len))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: \"%V\" is an anonymous page, "
                       "not judged", &r->uri);

        ctx->detect = 0;
        ctx->signed_in = 0;
    }

    if (ctx->detect && u->process_header) {
        ctx->process_header = u->process_header;
        u->process_header = ngx_http_exchange_health_process_header;

        ctx->reinit_request = u->reinit_request;
        u->reinit_request = ngx_http_exchange_health_reinit_request;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_exchange_health_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_exchange_health_module);

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_upstream_rr_peer_t   *peer;
    ngx_http_upstream_rr_peers_t  *peers;

    /*
     * The configuration widened for this module's retry served nginx's
     * decision to go on; every later decision is nginx's own again.
     */

    if (ctx->conf_original) {
        ctx->request->upstream->conf = ctx->conf_original;
        ctx->conf_original = NULL;
    }

    ngx_http_exchange_health_mark_avoided(ctx);

    rc = ngx_http_upstream_get_round_robin_peer(pc, &ctx->rrp);

    if (rc != NGX_OK) {
        return rc;
    }

    /* which server round robin chose, as an index: primaries first */

    peers = ctx->rrp.peers;

    for (peer = peers->peer, i = 0; peer; peer = peer->next, i++) {
        if (peer == ctx->rrp.current) {
            break;
        }
    }

    if (peers != ctx->conf->primary) {
        i += ctx->conf->nprimary;
    }

    /* a peer list changed at run time ("resolve") is not tracked */

    if (peer == NULL || i >= ctx->conf->nprimary + ctx->conf->nbackup) {
        i = NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED;
    }

    ngx_http_exchange_health_attempt(ctx, i);

    return NGX_OK;
}


void
ngx_http_exchange_health_attempt(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer)
{
    ngx_http_exchange_health_attempt_t  *a;

    /* a server is tried: chosen here, or the one a binding holds */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: try %ui", peer);

    if (ctx->nattempts < NGX_HTTP_EXCHANGE_HEALTH_ATTEMPTS) {
        ctx->nattempts++;
    }

    a = &ctx->attempt[ctx->nattempts - 1];
    ngx_memzero(a, sizeof(ngx_http_exchange_health_attempt_t));
    a->peer = peer;

    ctx->scan = NULL;
    ctx->holding = 0;
    ctx->fe_name.len = 0;

    ngx_http_exchange_health_picked(ctx, a);
}


static void
ngx_http_exchange_health_mark_avoided(ngx_http_exchange_health_ctx_t *ctx)
{
    size_t                             words;
    ngx_uint_t                         i;
    ngx_http_upstream_rr_peer_data_t  *rrp;

    rrp = &ctx->rrp;

    if (rrp->peers != ctx->conf->primary || rrp->peers->single
        || rrp->peers->number != ctx->conf->nprimary)
    {
        return;
    }

    words = (ctx->conf->nprimary + 8 * sizeof(uintptr_t) - 1)
            / (8 * sizeof(uintptr_t));

    /* marks of an earlier try are recomputed: ejections change */

    for (i = 0; i < words; i++) {
        rrp->tried[i] &= ~ctx->avoided[i];
        ctx->avoided[i] = 0;
        ctx->suspect[i] = 0;
    }

    if (ngx_http_exchange_health_avoid(ctx, ctx->avoided, ctx->suspect) == 0)
    {
        return;
    }

    for (i = 0; i < words; i++) {
        ctx->avoided[i] &= ~rrp->tried[i];
        ctx->suspect[i] = (ctx->suspect[i] | ctx->avoided[i]) & ~rrp->tried[i];
    }

    /*
     * A retry spares the servers seen failing lately when another is
     * left.  Never worse than no module: when every server still usable
     * is ejected, round robin chooses among them as it would without us.
     */

    if (ngx_http_exchange_health_usable(rrp, ctx->suspect)) {
        for (i = 0; i < words; i++) {
            ctx->avoided[i] = ctx->suspect[i];
        }

    } else if (!ngx_http_exchange_health_usable(rrp, ctx->avoided)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "exchange_health: only ejected servers are left");

        for (i = 0; i < words; i++) {
            ctx->avoided[i] = 0;
        }

        return;
    }

    for (i = 0; i < words; i++) {
        rrp->tried[i] |= ctx->avoided[i];
    }
}


static ngx_uint_t
ngx_http_exchange_health_usable(ngx_http_upstream_rr_peer_data_t *rrp,
    uintptr_t *avoided)
{
    time_t                         now;
    ngx_uint_t                     i, usable;
    ngx_http_upstream_rr_peer_t   *peer;
    ngx_http_upstream_rr_peers_t  *peers;

    /* round robin's own test of a peer, on peers not tried or avoided */

    now = ngx_time();
    usable = 0;

    ngx_http_upstream_rr_peers_rlock(rrp->peers);

    for (peers = rrp->peers; peers && !usable; peers = peers->next) {

        for (peer = peers->peer, i = 0; peer; peer = peer->next, i++) {

            if (peers == rrp->peers
                && (ngx_http_exchange_health_bit(rrp->tried, i)
                    || (avoided && ngx_http_exchange_health_bit(avoided, i))))
            {
                continue;
            }

            if (peer->down) {
                continue;
            }

            if (peer->max_fails
                && peer->fails >= peer->max_fails
                && now - peer->checked <= peer->fail_timeout)
            {
                continue;
            }

            if (peer->max_conns && peer->conns >= peer->max_conns) {
                continue;
            }

            usable = 1;
            break;
        }
    }

    ngx_http_upstream_rr_peers_unlock(rrp->peers);

    return usable;
}


static void
ngx_http_exchange_health_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_exchange_health_ctx_t *ctx = data;

    state = ngx_http_exchange_health_judge_free(pc, ctx, state);

    ngx_http_upstream_free_round_robin_peer(pc, &ctx->rrp, state);
}


ngx_uint_t
ngx_http_exchange_health_judge_free(ngx_peer_connection_t *pc,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t state)
{
    ngx_uint_t                           timedout;
    ngx_connection_t                    *c;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_attempt_t  *a;

    a = ctx->nattempts ? &ctx->attempt[ctx->nattempts - 1] : NULL;
    u = ctx->request->upstream;
    c = pc->connection;
    timedout = c && (c->read->timedout || c->write->timedout);

    if (ctx->retrying) {
        /* this module's verdict, not a connection failure for max_fails */
        ctx->retrying = 0;
        state &= ~NGX_PEER_FAILED;

    } else if ((state & NGX_PEER_FAILED) && a && ctx->detect
               && a->verdict != NGX_HTTP_EXCHANGE_HEALTH_FAILED
               && !(pc->cached && !timedout
                    && a->verdict == NGX_HTTP_EXCHANGE_HEALTH_NONE))
    {
        /*
         * An error, a timeout, an invalid header or a status listed in
         * proxy_next_upstream: counted as nginx's max_fails counts it.
         * A classified failure nginx retries waits for the next server's
         * answer instead, like one this module retries.  A kept-alive
         * connection the server had closed is not its failure: nginx
         * gives that try back.  A server that sends a header and then
         * stalls the body held for it times out here too: it is failing,
         * and since the client has had nothing yet nginx may try another.
         */

        if (timedout) {
            a->rule = ngx_http_exchange_health_upstream_timeout;
            a->status = 0;

        } else if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_HEALTHY) {
            /* a whole answer, judged well: its status is in the list */
            a->rule = ngx_http_exchange_health_upstream_status;
            a->status = u->headers_in.status_n;

        } else {
            /* no answer, a bad one, or one cut off while held */
            a->rule = ngx_http_exchange_health_upstream_error;
            a->status = 0;
        }

        a->verdict = NGX_HTTP_EXCHANGE_HEALTH_ERROR;

        /* no second opinion needed: it gave no usable answer */
        ngx_http_exchange_health_blame(ctx, a, 1);
    }

    return state;
}


static ngx_int_t
ngx_http_exchange_health_process_header(ngx_http_request_t *r)
{
    ngx_int_t                            rc;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_ctx_t      *ctx;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);
    a = &ctx->attempt[ctx->nattempts - 1];

    if (!ctx->holding) {
        rc = ctx->process_header(r);

        /* the proxy module moves on from the status line by itself */

        if (u->process_header != ngx_http_exchange_health_process_header) {
            ctx->process_header = u->process_header;
            u->process_header = ngx_http_exchange_health_process_header;
        }

        /* a header read back from the cache is no server's answer now */

        if (rc != NGX_OK || r->cached) {
            return rc;
        }

        ngx_http_exchange_health_classify(r, ctx);
        ngx_http_exchange_health_learn(r, ctx);

        if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING
            && ngx_http_exchange_health_start_scan(r, ctx, 1) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_PENDING && ctx->scan
        && ngx_http_exchange_health_scan_held(r, ctx) == NGX_AGAIN)
    {
        ctx->holding = 1;
        return NGX_AGAIN;
    }

    ctx->holding = 0;

    if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED
        && a->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER
        && ngx_http_exchange_health_may_retry(r, ctx))
    {
        return ngx_http_exchange_health_retry(r, ctx);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_reinit_request(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_upstream_t             *u;
    ngx_http_exchange_health_ctx_t  *ctx;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_exchange_health_module);

    rc = ctx->reinit_request ? ctx->reinit_request(r) : NGX_OK;

    /* the proxy module starts over from the status line */

    ctx->process_header = u->process_header;
    u->process_header = ngx_http_exchange_health_process_header;

    return rc;
}


static ngx_int_t
ngx_http_exchange_health_scan_held(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    int                   rc;
    off_t                 body;
    ngx_buf_t            *b;
    ngx_http_upstream_t  *u;

    /*
     * The body bytes that came with the header, and any awaited for it,
     * sit in the upstream buffer; nothing has gone to the client yet.
     */

    u = r->upstream;
    b = &u->buffer;

    rc = ngx_http_exchange_health_scan(ctx->scan, b->start + ctx->fed,
                                       b->last - (b->start + ctx->fed));
    ctx->fed = b->last - b->start;

    body = b->last - b->pos;

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE
        && !u->headers_in.chunked
        && u->headers_in.content_length_n >= 0
        && body >= u->headers_in.content_length_n)
    {
        rc = ngx_http_exchange_health_scan_end(ctx->scan);
    }

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
        return ngx_http_exchange_health_may_hold(r, ctx) ? NGX_AGAIN : NGX_OK;
    }

    ngx_http_exchange_health_classify_body(r, ctx, rc);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_exchange_health_may_hold(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    off_t                                 held;
    ngx_buf_t                            *b;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    /*
     * Waiting for more of the body only pays when a failure found in it
     * can still be retried; it stops at the hold size, a full buffer, or
     * the end of the body, and, checked when data comes, the hold time.
     */

    u = r->upstream;
    b = &u->buffer;
    hlcf = ctx->lcf;
    held = b->last - b->pos;

    if (b->last == b->end
        || held >= (off_t) hlcf->hold
        || ngx_current_msec - ctx->hold_start >= hlcf->hold_time
        || (!u->headers_in.chunked && u->headers_in.content_length_n < 0))
    {
        return 0;
    }

    return ngx_http_exchange_health_may_retry(r, ctx);
}


static ngx_uint_t
ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_msec_t                            timeout;
    ngx_http_upstream_t                  *u;
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    u = r->upstream;
    hlcf = ctx->lcf;
    timeout = u->conf->next_upstream_timeout;

    /*
     * One retry per request: a second failure of the same kind is a
     * diagnosis (the request fails everywhere), not a cue.  A second
     * failure of another kind (an errorFE page, then HTTP.SYS's 503) is a
     * second broken server: the request goes to a third, no further.
     */

    if (ctx->retried
        && (ctx->retried >= 2 || ngx_http_exchange_health_same_failure(ctx)))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "exchange health: no retry after %ui retries",
                       (ngx_uint_t) ctx->retried);
        return 0;
    }

    /*
     * A request signed in by its connection (NTLM, Negotiate) holds
     * credentials that are good on that connection only: elsewhere it
     * would meet a 401.  Its answer goes to the client as it is.
     */

    if (hlcf->retry == NGX_HTTP_EXCHANGE_HEALTH_RETRY_OFF
        || ctx->ntlm
        || ctx->bound
        || u->peer.tries <= 1
        || (timeout && ngx_current_msec - u->peer.start_time >= timeout)
        || (u->request_sent && r->request_body_no_buffering))
    {
        return 0;
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))
        && hlcf->retry != NGX_HTTP_EXCHANGE_HEALTH_RETRY_NON_IDEMPOTENT)
    {
        return 0;
    }

    /* every server fails the same way: retrying would only double load */

    if (ctx->conf->sh && ctx->conf->sh->farm[ctx->slot].fault) {
        return 0;
    }

    /*
     * Round robin with one primary server picks it again whatever was
     * tried; otherwise there must be a server left that it would take.
     */

    if (ctx->rrp.peers->single) {
        return 0;
    }

    /* the marks of ejected servers are for the primary servers only */

    return ngx_http_exchange_health_usable(&ctx->rrp,
                            ctx->rrp.peers == ctx->conf->primary
                            ? ctx->avoided : NULL);
}


static ngx_int_t
ngx_http_exchange_health_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    u_char                               buf[3 * 256];
    ngx_str_t                            uri;
    ngx_uint_t                           mask;
    ngx_http_upstream_t                 *u;
    ngx_http_upstream_conf_t            *conf;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    a = &ctx->attempt[ctx->nattempts - 1];

    /*
     * nginx's next-upstream path does the retry: it frees the peer, keeps
     * the tried servers, resends the buffered request body, and honours
     * proxy_next_upstream_tries and _timeout.  It acts on an invalid
     * header only when told to, so a copy of the upstream configuration
     * that says so is used for this request.
     */

    mask = NGX_HTTP_UPSTREAM_FT_INVALID_HEADER;

    if (u->request_sent
        && (r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH)))
    {
        mask |= NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;
    }

    if ((u->conf->next_upstream & mask) != mask) {
        conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
        if (conf == NULL) {
            return NGX_ERROR;
        }

        /* for this decision only: the next try restores the original */

        *conf = *u->conf;
        conf->next_upstream |= mask;
        conf->next_upstream &= ~NGX_HTTP_UPSTREAM_FT_OFF;

        ctx->conf_original = u->conf;
        u->conf = conf;
    }

    ctx->retrying = 1;
    ctx->retried++;

    uri = ngx_http_exchange_health_log_text(buf, sizeof(buf), ctx->uri.data,
                                            ctx->uri.len);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "exchange_health: rule \"%V\" matched the answer of "
                  "server %V to %V %V, status %ui: trying another server",
                  &a->rule, u->peer.name, &ctx->method, &uri, a->status);

    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
}


static void
ngx_http_exchange_health_learn(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    u_char                              *p, *last;
    ngx_str_t                            fqdn;
    ngx_buf_t                           *b;
    ngx_table_elt_t                     *h;
    ngx_http_upstream_t                 *u;
    ngx_http_exchange_health_attempt_t  *a;

    u = r->upstream;
    a = &ctx->attempt[ctx->nattempts - 1];

    h = ngx_http_exchange_health_feserver(r);

    /* copied: a retry reads the next answer into the same buffer */

    if (h) {
        ctx->fe_name.len = ngx_min(h->value.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN);
        ctx->fe_name.data = ngx_pnalloc(r->pool, ctx->fe_name.len);

        if (ctx->fe_name.data == NULL) {
            ctx->fe_name.len = 0;

        } else {
            ngx_memcpy(ctx->fe_name.data, h->value.data, ctx->fe_name.len);
            ngx_http_exchange_health_learn_name(ctx, a, &ctx->fe_name, 0);
        }
    }

    /* "200 OK<br/>EXCH1.contoso.local" from healthcheck.htm */

    if (u->headers_in.status_n != NGX_HTTP_OK
        || r->uri.len < sizeof("/healthcheck.htm") - 1
        || ngx_strncasecmp(r->uri.data + r->uri.len
                           - (sizeof("/healthcheck.htm") - 1),
                           (u_char *) "/healthcheck.htm",
                           sizeof("/healthcheck.htm") - 1) != 0)
    {
        return;
    }

    b = &u->buffer;

    if (u->headers_in.chunked || u->headers_in.content_length_n < 0
        || b->last - b->pos < u->headers_in.content_length_n)
    {
        return;
    }

    last = b->pos + u->headers_in.content_length_n;
    p = ngx_strlcasestrn(b->pos, last, (u_char *) "<br/>", 5 - 1);

    if (p == NULL) {
        return;
    }

    fqdn.data = p + 5;
    fqdn.len = last - fqdn.data;

    while (fqdn.len && (fqdn.data[fqdn.len - 1] == '\n'
                        || fqdn.data[fqdn.len - 1] == '\r'
                        || fqdn.data[fqdn.len - 1] == ' '))
    {
        fqdn.len--;
    }

    ngx_http_exchange_health_learn_name(ctx, a, &fqdn, 1);
}


static void
ngx_http_exchange_health_who(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx)
{
    size_t            len;
    ngx_uint_t        i;
    const u_char     *v;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /*
     * OWA and ECP sign in with the cadata cookie, the other protocols with
     * a header; what signs a user in also tells users apart.
     */

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 6
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Cookie", 6) == 0)
        {
            v = ngx_http_exchange_health_cookie(h[i].value.data,
                                                h[i].value.len, "cadata",
                                                &len);
            if (v) {
                ctx->signed_in = 1;
                ctx->user_key.data = (u_char *) v;
                ctx->user_key.len = len;
                return;
            }
        }
    }

    if (r->headers_in.authorization) {
        ctx->signed_in = 1;
        ctx->user_key = r->headers_in.authorization->value;
        return;
    }

    ctx->user_key = r->connection->addr_text;
}


static void
ngx_http_exchange_health_cleanup(void *data)
{
    ngx_http_exchange_health_ctx_t  *ctx = data;

    /* a request that ended before its answer was judged */

    ngx_http_exchange_health_settle(ctx);

    if (ctx->scan) {
        ngx_http_exchange_health_scan_release(ctx->scan);
    }
}

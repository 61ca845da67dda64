
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The upstream's configuration: the exchange_health and
 * exchange_health_eject directives, the checks made once the whole
 * configuration is read, and the defaults, set in one place
 * (init_upstream).  The upstream then balances with balancer.c.
 */


static ngx_int_t ngx_http_exchange_health_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);


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

    if (hscf->eject_set) {
        return "is duplicate";
    }

    ngx_http_exchange_health_needs_zone(cf, hscf);

    hscf->eject_set = 1;
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

    /* the defaults of every setting of the upstream, in one place */

    ngx_conf_init_uint_value(hscf->fails, 3);
    ngx_conf_init_uint_value(hscf->users, 2);
    ngx_conf_init_value(hscf->any_voter, 0);
    ngx_conf_init_msec_value(hscf->window, 30000);
    ngx_conf_init_msec_value(hscf->time, 30000);
    ngx_conf_init_msec_value(hscf->max_time, ngx_max(600000, hscf->time));
    ngx_conf_init_uint_value(hscf->probe_fails, 2);
    ngx_conf_init_value(hscf->ntlm, 1);

    /* max_ejected and max_ejected_percent: unset means "all but one" */

    return NGX_OK;
}

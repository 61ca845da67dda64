
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


static ngx_int_t ngx_http_exchange_health_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_exchange_health_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_exchange_health_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_exchange_health_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_exchange_health_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_exchange_health_protocol(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_exchange_health_sessions(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_exchange_health_retry(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_exchange_health_hold(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_exchange_health_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_exchange_health_init_process(ngx_cycle_t *cycle);


/*
 * The cookies that hold a signed-in OWA or ECP session: forms sign-in's
 * cadata, AD FS claims' FedAuth (WIF; its first chunk, FedAuth1 and on
 * follow), OpenID Connect's (hybrid modern authentication).
 */
static ngx_http_exchange_health_cookie_name_t
    ngx_http_exchange_health_default_sessions[] =
{
    { sizeof("cadata") - 1, (u_char *) "cadata" },
    { sizeof("FedAuth") - 1, (u_char *) "FedAuth" },
    { sizeof("OpenIdConnect.token.v1") - 1,
      (u_char *) "OpenIdConnect.token.v1" }
};


static ngx_command_t  ngx_http_exchange_health_commands[] = {

    { ngx_string("exchange_health_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_exchange_health_zone,
      0,
      0,
      NULL },

    { ngx_string("exchange_health"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_exchange_health_balancer,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_ntlm"),
      NGX_HTTP_UPS_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_exchange_health_srv_conf_t, ntlm),
      NULL },

    { ngx_string("exchange_health_eject"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_exchange_health_eject,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_probe"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_exchange_health_probe,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_probe_uri"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE2,
      ngx_http_exchange_health_probe_uri,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_probe_signin"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_exchange_health_probe_signin,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_detect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_exchange_health_loc_conf_t, detect),
      NULL },

    { ngx_string("exchange_health_protocol"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_exchange_health_protocol,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_rule"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_exchange_health_rule,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_user_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_exchange_health_user_errors,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_session_cookies"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_exchange_health_sessions,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_scan"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_exchange_health_loc_conf_t, scan),
      NULL },

    { ngx_string("exchange_health_hold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_exchange_health_hold,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_exchange_health_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("exchange_health_retry"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_exchange_health_retry,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_exchange_health_module_ctx = {
    ngx_http_exchange_health_add_variables,   /* preconfiguration */
    ngx_http_exchange_health_postconfiguration, /* postconfiguration */

    ngx_http_exchange_health_create_main_conf, /* create main configuration */
    NULL,                                     /* init main configuration */

    ngx_http_exchange_health_create_srv_conf, /* create server configuration */
    NULL,                                     /* merge server configuration */

    ngx_http_exchange_health_create_loc_conf, /* create location config */
    ngx_http_exchange_health_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_exchange_health_module = {
    NGX_MODULE_V1,
    &ngx_http_exchange_health_module_ctx,  /* module context */
    ngx_http_exchange_health_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_exchange_health_init_module,  /* init module */
    ngx_http_exchange_health_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    ngx_http_exchange_health_store_exit_master, /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_exchange_health_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_exchange_health_check_upstreams(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_exchange_health_bind_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_exchange_health_filter_init(cf);
}


static void *
ngx_http_exchange_health_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_exchange_health_main_conf_t  *hmcf;

    hmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&hmcf->upstreams, cf->pool, 4,
                       sizeof(ngx_http_exchange_health_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return hmcf;
}


static void *
ngx_http_exchange_health_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_exchange_health_srv_conf_t  *hscf;

    hscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_srv_conf_t));
    if (hscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hscf->shm_zone = NULL;
     *     hscf->upstream = NULL;
     *     hscf->per_server = 0;
     *     hscf->sh = NULL;
     *     hscf->servers = NULL;
     */

    hscf->ntlm = NGX_CONF_UNSET;
    hscf->fails = NGX_CONF_UNSET_UINT;
    hscf->window = NGX_CONF_UNSET_MSEC;
    hscf->users = NGX_CONF_UNSET_UINT;
    hscf->any_voter = NGX_CONF_UNSET;
    hscf->time = NGX_CONF_UNSET_MSEC;
    hscf->max_time = NGX_CONF_UNSET_MSEC;
    hscf->max_ejected = NGX_CONF_UNSET_UINT;
    hscf->max_ejected_percent = NGX_CONF_UNSET_UINT;
    hscf->probe_fails = NGX_CONF_UNSET_UINT;

    return hscf;
}


static void *
ngx_http_exchange_health_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_exchange_health_loc_conf_t  *hlcf;

    hlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_loc_conf_t));
    if (hlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hlcf->rules = NULL;
     *     hlcf->markers = NULL;
     *     hlcf->marker_rule = NULL;
     *     hlcf->rule_markers = NULL;
     *     hlcf->status_rules = NULL;
     *     hlcf->status_rules_nobody = NULL;
     */

    hlcf->detect = NGX_CONF_UNSET;
    hlcf->protocol = NGX_CONF_UNSET;
    hlcf->retry = NGX_CONF_UNSET_UINT;
    hlcf->scan = NGX_CONF_UNSET_SIZE;
    hlcf->hold = NGX_CONF_UNSET_SIZE;
    hlcf->hold_time = NGX_CONF_UNSET_MSEC;
    hlcf->user_errors = NGX_CONF_UNSET_PTR;
    hlcf->sessions = NGX_CONF_UNSET_PTR;

    return hlcf;
}


static char *
ngx_http_exchange_health_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_exchange_health_loc_conf_t *prev = parent;
    ngx_http_exchange_health_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->detect, prev->detect, 1);
    ngx_conf_merge_value(conf->protocol, prev->protocol, -1);
    ngx_conf_merge_uint_value(conf->retry, prev->retry,
                              NGX_HTTP_EXCHANGE_HEALTH_RETRY_ON);
    ngx_conf_merge_size_value(conf->scan, prev->scan, 32768);
    ngx_conf_merge_size_value(conf->hold, prev->hold, 4096);
    ngx_conf_merge_msec_value(conf->hold_time, prev->hold_time, 500);

    if (conf->sessions == NGX_CONF_UNSET_PTR) {
        if (prev->sessions == NGX_CONF_UNSET_PTR) {
            prev->sessions = ngx_http_exchange_health_default_sessions;
            prev->nsessions = sizeof(ngx_http_exchange_health_default_sessions)
                              / sizeof(ngx_http_exchange_health_cookie_name_t);
        }

        conf->sessions = prev->sessions;
        conf->nsessions = prev->nsessions;
    }

    if (conf->status
        && ngx_http_exchange_health_status_names(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_exchange_health_merge_rules(cf, prev, conf);
}


static char *
ngx_http_exchange_health_protocol(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->protocol != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "auto") == 0) {
        hlcf->protocol = -1;
        return NGX_CONF_OK;
    }

    hlcf->protocol = ngx_http_exchange_health_protocol_by_name(value[1].data,
                                                               value[1].len);
    if (hlcf->protocol == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown Exchange protocol \"%V\", use auto or "
                           "one of %s", &value[1],
                           ngx_http_exchange_health_protocol_names());
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_exchange_health_sessions(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t                        *value;
    ngx_uint_t                        i, j;
    ngx_http_exchange_health_cookie_name_t  *name;

    if (hlcf->sessions != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    hlcf->nsessions = cf->args->nelts - 1;
    hlcf->sessions = ngx_palloc(cf->pool,
                        hlcf->nsessions
                        * sizeof(ngx_http_exchange_health_cookie_name_t));
    if (hlcf->sessions == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        /* a cookie name is a token (RFC 6265): no '=', ';', space */

        for (j = 0; j < value[i].len; j++) {
            if (value[i].data[j] <= ' ' || value[i].data[j] >= 0x7f
                || ngx_strchr("=;,\"", value[i].data[j]))
            {
                break;
            }
        }

        if (value[i].len == 0 || j < value[i].len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cookie name \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        name = &hlcf->sessions[i - 1];
        name->len = value[i].len;
        name->data = value[i].data;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_exchange_health_retry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->retry != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        hlcf->retry = NGX_HTTP_EXCHANGE_HEALTH_RETRY_OFF;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        goto invalid;
    }

    hlcf->retry = NGX_HTTP_EXCHANGE_HEALTH_RETRY_ON;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "non_idempotent") != 0) {
            goto invalid;
        }

        hlcf->retry = NGX_HTTP_EXCHANGE_HEALTH_RETRY_NON_IDEMPOTENT;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\", use \"off\", \"on\" or "
                       "\"on non_idempotent\"", &value[cf->args->nelts - 1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_exchange_health_hold(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_exchange_health_loc_conf_t *hlcf = conf;

    ssize_t     size;
    ngx_str_t  *value;
    ngx_msec_t  time;

    if (hlcf->hold != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid hold size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    hlcf->hold = size;

    if (cf->args->nelts == 3) {
        time = ngx_parse_time(&value[2], 0);
        if (time == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid hold time \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        hlcf->hold_time = time;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_exchange_health_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                              i;
    ngx_http_exchange_health_srv_conf_t   **hscfp;
    ngx_http_exchange_health_main_conf_t   *hmcf;

    /*
     * Runs in the master after the shared zones are mapped: each upstream
     * using the balancer finds (or makes) its servers' records once, and
     * workers inherit the pointers.
     */

    if (ngx_http_exchange_health_store_check(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_exchange_health_module);
    if (hmcf == NULL) {
        return NGX_OK;
    }

    hscfp = hmcf->upstreams.elts;

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        if (ngx_http_exchange_health_bind(cycle, hscfp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_exchange_health_store_restore(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* servers may come back ejected or drained from the state file */

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        ngx_http_exchange_health_recount(hscfp[i]);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                              i;
    ngx_http_exchange_health_srv_conf_t   **hscfp, *hscf;
    ngx_http_exchange_health_main_conf_t   *hmcf;

    if (ngx_http_exchange_health_store_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* workers probe and sign in; a cache manager or loader has no business */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_exchange_health_module);
    if (hmcf == NULL) {
        return NGX_OK;
    }

    hscfp = hmcf->upstreams.elts;

    for (i = 0; i < hmcf->upstreams.nelts; i++) {
        hscf = hscfp[i];

        if (hscf->probe == NULL || hscf->sh == NULL) {
            continue;
        }

        ngx_http_exchange_health_probe_init_process(cycle, hscf);

        if (hscf->signin) {
            ngx_http_exchange_health_signin_init_process(cycle, hscf);
        }
    }

    return NGX_OK;
}


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"

#if (NGX_OPENSSL)
#include <openssl/rand.h>
#endif


/*
 * The shared zone holds one record per upstream and one per server of
 * it, keyed by upstream name and server address, so health outlives a
 * reload and every worker sees the same.  Records are made once per
 * cycle in the master and never freed: workers of an older cycle, still
 * finishing long requests, may write to them.
 */


/*
 * The shape of the shared records.  Bump the version with any change to
 * the structures of ngx_http_exchange_health.h marked "shared memory" (a
 * field added, removed, resized or moved): a reload onto a module of
 * another shape then starts the zone afresh instead of reading it wrong.
 * The sizes are a safety net for a forgotten bump that changes one.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_LAYOUT_VERSION  7

#define NGX_HTTP_EXCHANGE_HEALTH_LAYOUT                                      \
    ((0x4548 + NGX_HTTP_EXCHANGE_HEALTH_LAYOUT_VERSION) << 16                \
     ^ sizeof(ngx_http_exchange_health_server_t)                             \
     ^ sizeof(ngx_http_exchange_health_upstream_t) << 4                      \
     ^ sizeof(ngx_http_exchange_health_shctx_t) << 8)


/* a record over a page takes two: fail the build instead */
typedef char  ngx_http_exchange_health_server_fits_a_page[
    sizeof(ngx_http_exchange_health_server_t) <= 4096 ? 1 : -1];
typedef char  ngx_http_exchange_health_upstream_fits_a_page[
    sizeof(ngx_http_exchange_health_upstream_t) <= 4096 ? 1 : -1];


static ngx_int_t ngx_http_exchange_health_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_exchange_health_secret(
    ngx_http_exchange_health_sipkey_t *key);
static ngx_int_t ngx_http_exchange_health_new_sh(ngx_shm_zone_t *shm_zone);
static ngx_http_exchange_health_upstream_t *ngx_http_exchange_health_upstream(
    ngx_http_exchange_health_zone_t *zone, ngx_str_t *name, ngx_log_t *log);
static ngx_http_exchange_health_server_t *ngx_http_exchange_health_server(
    ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_upstream_t *up, ngx_str_t *addr, ngx_log_t *log);
static void *ngx_http_exchange_health_alloc(
    ngx_http_exchange_health_zone_t *zone, size_t size, ngx_log_t *log);
static void ngx_http_exchange_health_copy(ngx_http_exchange_health_name_t *to,
    ngx_str_t *from);


char *
ngx_http_exchange_health_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                           size;
    ngx_str_t                        *value;
    ngx_shm_zone_t                   *shm_zone;
    ngx_http_exchange_health_zone_t  *zone;

    /* exchange_health_zone NAME SIZE [state=PATH] */

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uzk",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_exchange_health_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->pool = cf->pool;

    if (cf->args->nelts == 4) {
        if (ngx_strncmp(value[3].data, "state=", 6) != 0
            || value[3].len == 6)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", use "
                               "\"state=\" and a file path", &value[3]);
            return NGX_CONF_ERROR;
        }

        zone->state.data = value[3].data + 6;
        zone->state.len = value[3].len - 6;

        if (ngx_conf_full_name(cf->cycle, &zone->state, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                     &ngx_http_exchange_health_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_exchange_health_init_zone;
    shm_zone->data = zone;
    zone->name = &shm_zone->shm.name;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_exchange_health_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_exchange_health_zone_t  *ozone = data;

    ngx_http_exchange_health_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* a reload: the records of the old cycle go on */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, shm_zone->shm.log, 0,
                       "exchange health zone \"%V\": reused",
                       &shm_zone->shm.name);

        zone->shpool = ozone->shpool;
        zone->sh = ozone->sh;

    } else {
        zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

        if (!shm_zone->shm.exists) {
            /* a zone that starts empty: store.c restores the state file */
            zone->fresh = 1;
            return ngx_http_exchange_health_new_sh(shm_zone);
        }

        zone->sh = zone->shpool->data;
    }

    if (zone->sh->layout != NGX_HTTP_EXCHANGE_HEALTH_LAYOUT) {
        /* a new module version: old workers keep the old records */
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "exchange_health zone \"%V\" was made by another "
                      "version of the module, its state starts afresh",
                      &shm_zone->shm.name);

        return ngx_http_exchange_health_new_sh(shm_zone);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_exchange_health_new_sh(ngx_shm_zone_t *shm_zone)
{
    size_t                            len;
    ngx_http_exchange_health_zone_t  *zone;

    zone = shm_zone->data;

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_exchange_health_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    zone->sh->layout = NGX_HTTP_EXCHANGE_HEALTH_LAYOUT;
    ngx_queue_init(&zone->sh->upstreams);

    /* zeroed: no session is proven yet */

    zone->sh->proven = ngx_slab_calloc(zone->shpool,
                          NGX_HTTP_EXCHANGE_HEALTH_PROVEN * sizeof(uint32_t));
    if (zone->sh->proven == NULL) {
        return NGX_ERROR;
    }

    ngx_http_exchange_health_secret(&zone->sh->secret);

    len = sizeof(" in exchange_health zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in exchange_health zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is reported once, by this module */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_exchange_health_bind(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf)
{
    ngx_uint_t                            i, n;
    ngx_http_upstream_rr_peer_t          *peer;
    ngx_http_upstream_rr_peers_t         *peers;
    ngx_http_exchange_health_zone_t      *zone;
    ngx_http_exchange_health_server_t    *srv;
    ngx_http_exchange_health_upstream_t  *up;

    zone = hscf->shm_zone->data;
    peers = hscf->upstream->peer.data;
    n = hscf->nprimary + hscf->nbackup;

    hscf->primary = peers;
    hscf->shpool = zone->shpool;

    hscf->servers = ngx_pcalloc(cycle->pool,
                              n * sizeof(ngx_http_exchange_health_server_t *));
    hscf->addrs = ngx_pcalloc(cycle->pool, n * sizeof(ngx_str_t));
    hscf->known_name = ngx_pcalloc(cycle->pool, n * sizeof(uint32_t));
    hscf->known_fqdn = ngx_pcalloc(cycle->pool, n * sizeof(uint32_t));
    hscf->peers = ngx_pcalloc(cycle->pool,
                              n * sizeof(ngx_http_upstream_rr_peer_t *));

    if (hscf->servers == NULL || hscf->addrs == NULL
        || hscf->known_name == NULL || hscf->known_fqdn == NULL
        || hscf->peers == NULL)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    up = ngx_http_exchange_health_upstream(zone, &hscf->name, cycle->log);
    hscf->sh = up;

    for (n = 0; up && peers; peers = peers->next) {

        for (peer = peers->peer, i = 0; peer; peer = peer->next, i++, n++) {
            hscf->addrs[n] = peer->name;
            hscf->peers[n] = peer;

            srv = ngx_http_exchange_health_server(zone, up, &peer->name,
                                                  cycle->log);
            if (srv == NULL) {
                continue;
            }

            ngx_http_exchange_health_copy(&srv->server, &peer->server);

            hscf->servers[n] = srv;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


static ngx_http_exchange_health_upstream_t *
ngx_http_exchange_health_upstream(ngx_http_exchange_health_zone_t *zone,
    ngx_str_t *name, ngx_log_t *log)
{
    ngx_uint_t                            i;
    ngx_queue_t                          *q;
    ngx_http_exchange_health_upstream_t  *up;

    for (q = ngx_queue_head(&zone->sh->upstreams);
         q != ngx_queue_sentinel(&zone->sh->upstreams);
         q = ngx_queue_next(q))
    {
        up = ngx_queue_data(q, ngx_http_exchange_health_upstream_t, queue);

        /* as stored: a long name was cut */

        if (up->name.len == ngx_min(name->len,
                                    NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN)
            && ngx_strncmp(up->name.data, name->data, up->name.len) == 0)
        {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "exchange health zone: upstream \"%V\" found",
                           name);
            return up;
        }
    }

    up = ngx_http_exchange_health_alloc(zone,
                                   sizeof(ngx_http_exchange_health_upstream_t),
                                   log);
    if (up == NULL) {
        return NULL;
    }

    ngx_memzero(up, sizeof(ngx_http_exchange_health_upstream_t));

    ngx_queue_init(&up->servers);
    ngx_http_exchange_health_copy(&up->name, name);
    up->created = ngx_time();

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        up->farm[i].since = ngx_time();
    }

    ngx_queue_insert_tail(&zone->sh->upstreams, &up->queue);

    return up;
}


static ngx_http_exchange_health_server_t *
ngx_http_exchange_health_server(ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_upstream_t *up, ngx_str_t *addr, ngx_log_t *log)
{
    ngx_uint_t                          i;
    ngx_queue_t                        *q;
    ngx_http_exchange_health_server_t  *srv;

    for (q = ngx_queue_head(&up->servers);
         q != ngx_queue_sentinel(&up->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_http_exchange_health_server_t, queue);

        if (srv->addr_len == ngx_min(addr->len,
                                     NGX_HTTP_EXCHANGE_HEALTH_ADDR_LEN)
            && ngx_strncmp(srv->addr, addr->data, srv->addr_len) == 0)
        {
            return srv;
        }
    }

    srv = ngx_http_exchange_health_alloc(zone,
                                     sizeof(ngx_http_exchange_health_server_t),
                                     log);
    if (srv == NULL) {
        return NULL;
    }

    ngx_memzero(srv, sizeof(ngx_http_exchange_health_server_t));

    srv->addr_len = ngx_min(addr->len, NGX_HTTP_EXCHANGE_HEALTH_ADDR_LEN);
    ngx_memcpy(srv->addr, addr->data, srv->addr_len);

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        srv->slot[i].since = ngx_time();
    }

    ngx_queue_insert_tail(&up->servers, &srv->queue);

    return srv;
}


static void *
ngx_http_exchange_health_alloc(ngx_http_exchange_health_zone_t *zone,
    size_t size, ngx_log_t *log)
{
    void  *p;

    p = ngx_slab_alloc_locked(zone->shpool, size);

    if (p == NULL && !zone->full) {
        zone->full = 1;
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "exchange_health zone \"%V\" is full: some servers "
                      "are not tracked and will not be ejected; make the "
                      "zone bigger", zone->name);
    }

    return p;
}


static void
ngx_http_exchange_health_copy(ngx_http_exchange_health_name_t *to,
    ngx_str_t *from)
{
    to->len = ngx_min(from->len, NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN);

    if (to->len) {
        ngx_memcpy(to->data, from->data, to->len);
    }
}


static void
ngx_http_exchange_health_secret(ngx_http_exchange_health_sipkey_t *key)
{
    /*
     * The key of the tables indexed by what clients send: made once per
     * zone, in the master, so every worker uses the same; never shown.
     */

#if (NGX_OPENSSL)

    if (RAND_bytes((u_char *) key, sizeof(*key)) == 1) {
        return;
    }

    ERR_clear_error();

#endif

    /* without OpenSSL's generator: less secret, still not chosen */

    key->k0 = (uint64_t) ngx_time() << 32 ^ (uint64_t) ngx_pid << 16
              ^ (uint64_t) ngx_random();
    key->k1 = (uint64_t) ngx_random() << 32 ^ (uint64_t) ngx_random()
              ^ (uint64_t) (uintptr_t) key;
}

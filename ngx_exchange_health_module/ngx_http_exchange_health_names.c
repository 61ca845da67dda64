
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The names servers give themselves (X-FEServer, the healthcheck's FQDN),
 * kept in the zone for the log and the status page.
 */


void
ngx_http_exchange_health_learn_name(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_str_t *name, ngx_uint_t fqdn)
{
    u_char                             *to;
    size_t                              i, len, *to_len;
    uint32_t                            hash, *known;
    uint64_t                            head, tail;
    ngx_slab_pool_t                    *shpool;
    ngx_http_exchange_health_server_t  *srv;

    if (a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED || name->len == 0) {
        return;
    }

    srv = ctx->conf->servers[a->peer];

    if (srv == NULL) {
        return;
    }

    /*
     * The zone is written only when this worker sees a new name; a hash
     * that says "the same" by chance only delays the name's next change.
     * A name of 4 to 16 bytes (X-FEServer's NetBIOS name, 15 at most,
     * read on every page) is folded from two words that may overlap;
     * others by ngx_hash_key().  Not ngx_murmur_hash2(): nginx's shifts a
     * byte of 128 or more into the sign bit of an int, which UBSan
     * reports, and names are any bytes a server sends.
     */

    if (name->len >= 8 && name->len <= 16) {
        ngx_memcpy(&head, name->data, 8);
        ngx_memcpy(&tail, name->data + name->len - 8, 8);

    } else if (name->len >= 4 && name->len < 8) {
        head = 0;
        tail = 0;
        ngx_memcpy(&head, name->data, 4);
        ngx_memcpy(&tail, name->data + name->len - 4, 4);

    } else {
        head = ngx_hash_key(name->data, name->len);
        tail = 0;
    }

    /* each word multiplied: no two bytes of one word cancel out */

    head = ((head ^ name->len) * 0x9e3779b97f4a7c15 ^ tail)
           * 0xc2b2ae3d27d4eb4f;
    hash = (uint32_t) (head >> 32);
    known = fqdn ? &ctx->conf->known_fqdn[a->peer]
                 : &ctx->conf->known_name[a->peer];

    if (*known == hash) {
        return;
    }

    *known = hash;

    if (fqdn) {
        to = srv->fqdn;
        to_len = &srv->fqdn_len;
        len = ngx_min(name->len, NGX_HTTP_EXCHANGE_HEALTH_FQDN_LEN);

    } else {
        to = srv->name.data;
        to_len = &srv->name.len;
        len = ngx_min(name->len, NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN);
    }

    shpool = ctx->conf->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    /* kept as sent, but never with bytes that could forge a log line */

    for (i = 0; i < len; i++) {
        to[i] = (name->data[i] < 0x20 || name->data[i] == 0x7f)
                ? '?' : name->data[i];
    }

    *to_len = len;

    if (fqdn) {
        ngx_http_exchange_health_name_from_fqdn_locked(srv);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_exchange_health_name_from_fqdn_locked(
    ngx_http_exchange_health_server_t *srv)
{
    size_t  i;

    /*
     * Until a server names itself in X-FEServer, the first label of its
     * FQDN names it: Exchange's NetBIOS name, in capitals.
     */

    if (srv->name.len) {
        return;
    }

    for (i = 0; i < srv->fqdn_len && i < NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN
                && srv->fqdn[i] != '.'; i++)
    {
        srv->name.data[i] = ngx_toupper(srv->fqdn[i]);
    }

    srv->name.len = i;
}

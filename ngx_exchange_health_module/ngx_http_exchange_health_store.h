
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_STORE_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_STORE_H_INCLUDED_


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_statefile.h"


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* what saving (store.c) and restoring (restore.c) share */


/*
 * The longest a state file can be for a number of servers: a header, and
 * per server and protocol the lines of a record, encoded (3 KB at most).
 * Writing sizes its buffer so, reading refuses a longer file.
 */
#define ngx_http_exchange_health_store_size(servers)                         \
    (128 + (servers) * NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS * 3 * 1024)


/* how a record keeps a field of the file */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER   0    /* unsigned, by size */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_WORD     1    /* uint8_t: its place */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_STATE    2    /* a word; ejected... */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL    3    /* ... until, msec */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_FAULT    4    /* a number; fails all */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT     5    /* NUL-terminated */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED  6    /* with a size_t length */


typedef struct {
    ngx_uint_t      kind;       /* NGX_HTTP_EXCHANGE_HEALTH_SF_* */
    const char     *key;
    ngx_uint_t      keep;
    size_t          offset;     /* in the kind's record */
    size_t          size;
    size_t          len;        /* a counted text's length, its offset */
} ngx_http_exchange_health_store_field_t;


typedef ngx_int_t (*ngx_http_exchange_health_store_pt)(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);


/* where each field of the file lives in the zone (store.c) */
extern ngx_http_exchange_health_store_field_t
    ngx_http_exchange_health_store_fields[];


ngx_int_t ngx_http_exchange_health_store_each(ngx_cycle_t *cycle,
    ngx_http_exchange_health_store_pt handler);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_STORE_H_INCLUDED_ */

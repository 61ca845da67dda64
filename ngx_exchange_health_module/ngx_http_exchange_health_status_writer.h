
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_STATUS_WRITER_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_STATUS_WRITER_H_INCLUDED_


#include "ngx_http_exchange_health.h"


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


/* output built in a chain of buffers */
typedef struct {
    ngx_pool_t                           *pool;
    ngx_chain_t                          *out;
    ngx_chain_t                         **last;
    ngx_buf_t                            *buf;
    ngx_int_t                             error;
} ngx_http_exchange_health_writer_t;


#define NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML        0
#define NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON        1
#define NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_PROMETHEUS  2


void ngx_http_exchange_health_writer_init(
    ngx_http_exchange_health_writer_t *w, ngx_pool_t *pool);
ngx_int_t ngx_http_exchange_health_send(ngx_http_request_t *r,
    ngx_uint_t status, char *type, ngx_http_exchange_health_writer_t *w);
void ngx_http_exchange_health_write(ngx_http_exchange_health_writer_t *w,
    const char *fmt, ...);
void ngx_http_exchange_health_write_text(ngx_http_exchange_health_writer_t *w,
    u_char *data, size_t len);
void ngx_http_exchange_health_write_escaped(
    ngx_http_exchange_health_writer_t *w, u_char *data, size_t len,
    ngx_uint_t mode);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_STATUS_WRITER_H_INCLUDED_ */

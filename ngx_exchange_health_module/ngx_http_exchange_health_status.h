
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_status_writer.h"


/* what the helpdesk is told about one server and protocol */
#define NGX_HTTP_EXCHANGE_HEALTH_S_IDLE           0    /* no traffic yet */
#define NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY        1
#define NGX_HTTP_EXCHANGE_HEALTH_S_FAILING        2    /* failures, not out */
#define NGX_HTTP_EXCHANGE_HEALTH_S_DRAINING       3    /* by an operator */
#define NGX_HTTP_EXCHANGE_HEALTH_S_MAINTENANCE    4    /* by an operator */
#define NGX_HTTP_EXCHANGE_HEALTH_S_INACTIVE       5    /* Exchange's own */
#define NGX_HTTP_EXCHANGE_HEALTH_S_PROBE_FAILING  6
#define NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING       7    /* time over, no trial */
#define NGX_HTTP_EXCHANGE_HEALTH_S_TRIAL          8
#define NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED        9
#define NGX_HTTP_EXCHANGE_HEALTH_S_FARM_FAULT     10
#define NGX_HTTP_EXCHANGE_HEALTH_S_N              11

/*
 * How bad, for sorting: failing servers come first; failures not acted
 * on yet and servers out on purpose (maintenance) are warnings.
 */
#define ngx_http_exchange_health_severity(s)                                 \
    ((s) >= NGX_HTTP_EXCHANGE_HEALTH_S_PROBE_FAILING ? 2                     \
     : (s) >= NGX_HTTP_EXCHANGE_HEALTH_S_FAILING ? 1 : 0)

/* does the server take requests of the protocol */
#define ngx_http_exchange_health_in_service(s)                               \
    ((s) <= NGX_HTTP_EXCHANGE_HEALTH_S_FAILING                               \
     || (s) == NGX_HTTP_EXCHANGE_HEALTH_S_FARM_FAULT)


/* a state's row in the one table of them (status.c) */
typedef struct {
    ngx_uint_t                            value;
    const char                           *name;
    const char                           *help;
} ngx_http_exchange_health_state_t;


extern ngx_http_exchange_health_state_t  ngx_http_exchange_health_states[];


/* a copy of one server's record, taken under the zone's lock */
typedef struct {
    ngx_str_t                             addr;
    ngx_uint_t                            backup;
    ngx_uint_t                            severity;
    ngx_uint_t                            cert_expiring;
    ngx_uint_t                            cert_differs;
    ngx_uint_t                            cert_same;    /* servers alike */
    ngx_uint_t                            state[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    time_t                                until[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    ngx_http_exchange_health_server_t     record;
} ngx_http_exchange_health_snap_server_t;


typedef struct {
    ngx_http_exchange_health_srv_conf_t  *conf;
    ngx_http_exchange_health_upstream_t   record;
    ngx_uint_t                            nservers;
    ngx_uint_t                            nfailing;
    ngx_uint_t                            request_failing;  /* protocols */
    ngx_uint_t                            nuntracked;  /* zone full */
    ngx_http_exchange_health_snap_server_t  *servers;
} ngx_http_exchange_health_snap_upstream_t;


typedef struct {
    time_t                                now;
    ngx_uint_t                            nupstreams;
    ngx_uint_t                            nservers;
    ngx_uint_t                            nfailing;
    ngx_uint_t                            nfarm_faults;
    ngx_uint_t                            nrequest_failing;
    ngx_http_exchange_health_snap_upstream_t  *upstreams;
} ngx_http_exchange_health_snapshot_t;


ngx_int_t ngx_http_exchange_health_snapshot(ngx_http_request_t *r,
    ngx_http_exchange_health_snapshot_t *snap);
ngx_http_exchange_health_state_t *ngx_http_exchange_health_state(
    ngx_uint_t state);

/* the protocols a server has something to show for, or all */
ngx_uint_t ngx_http_exchange_health_shown(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
const char *ngx_http_exchange_health_state_name(ngx_uint_t state);
const char *ngx_http_exchange_health_probe_name(ngx_uint_t probe);
const char *ngx_http_exchange_health_slot_name(
    ngx_http_exchange_health_snap_upstream_t *up, ngx_uint_t p);
const char *ngx_http_exchange_health_hint(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);

void ngx_http_exchange_health_render_html(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);
void ngx_http_exchange_health_render_json(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);
void ngx_http_exchange_health_render_prometheus(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_ */

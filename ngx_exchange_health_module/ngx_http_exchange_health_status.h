
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_status_writer.h"


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


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

    /* the timelines, copied; NULL where nothing happened or no room */
    ngx_http_exchange_health_line_t      *line[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    ngx_uint_t                            state[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    time_t                                until[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    ngx_http_exchange_health_server_t     record;

    /* the signed-in probe's results, when it probes the server */
    ngx_uint_t                            signin;
    ngx_http_exchange_health_signin_result_t  signin_result[
                                   NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS];
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


/* a timeline's minutes, oldest first, as status_timeline.c reads them */
typedef struct {
    time_t                                start;
    ngx_uint_t                            n;        /* minutes */
    ngx_uint_t                            most;     /* in one minute */
    ngx_uint_t                            total_failures;
    ngx_uint_t                            total_rescued;
    ngx_uint_t                            hour_rescued;
    u_char                                state[
                                          NGX_HTTP_EXCHANGE_HEALTH_MINUTES];
    uint16_t                              failures[
                                          NGX_HTTP_EXCHANGE_HEALTH_MINUTES];
    uint16_t                              rescued[
                                          NGX_HTTP_EXCHANGE_HEALTH_MINUTES];
} ngx_http_exchange_health_minutes_t;


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
ngx_str_t ngx_http_exchange_health_server_name(
    ngx_http_exchange_health_snap_server_t *s);
ngx_str_t ngx_http_exchange_health_probe_why(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
const char *ngx_http_exchange_health_slot_name(
    ngx_http_exchange_health_snap_upstream_t *up, ngx_uint_t p);
ngx_http_exchange_health_signin_result_t *
    ngx_http_exchange_health_signin_shown(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
const char *ngx_http_exchange_health_hint(
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);

void ngx_http_exchange_health_timeline_minutes(
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p,
    ngx_http_exchange_health_minutes_t *mn);
void ngx_http_exchange_health_svg_timeline(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn);

void ngx_http_exchange_health_html_server(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s);
ngx_uint_t ngx_http_exchange_health_html_out(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t say);
void ngx_http_exchange_health_html_failure(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_failure_t *f, const char *where);
void ngx_http_exchange_health_html_at(ngx_http_exchange_health_writer_t *w,
    time_t now, time_t t, const char *word);

void ngx_http_exchange_health_render_html(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);
void ngx_http_exchange_health_render_json(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);
void ngx_http_exchange_health_render_prometheus(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_STATUS_H_INCLUDED_ */


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_ZONE_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_ZONE_H_INCLUDED_


/*
 * The shared zone's layout: what the workers share (zone.c makes it,
 * state.c and settle.c change it, the status page reads it).  Included
 * by ngx_http_exchange_health.h after the numbers it is sized by, as
 * nginx's own headers are included by ngx_http.h in their order.
 */


/*
 * Shared memory.  Small fields are bytes and counters 32 bits: a server's
 * record, with a slot for every protocol, must fit one 4 KB page.
 */


/* shared memory: the last failure seen, for the helpdesk */
typedef struct {
    time_t                  time;
    uint16_t                status;
    uint8_t                 user;           /* one user's, not the server's */
    u_char                  rule[NGX_HTTP_EXCHANGE_HEALTH_RULE_LEN];
    u_char                  method[NGX_HTTP_EXCHANGE_HEALTH_METHOD_LEN];
    u_char                  uri[NGX_HTTP_EXCHANGE_HEALTH_URI_LEN];
    u_char                  error[NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
} ngx_http_exchange_health_failure_t;


/* shared memory: recent failures, counted toward a decision */
typedef struct {
    ngx_msec_t              start;
    uint32_t                fails;
    uint8_t                 confirmed;      /* by another server's answer */
    uint8_t                 nusers;
    uint32_t                users[NGX_HTTP_EXCHANGE_HEALTH_USERS];
} ngx_http_exchange_health_window_t;


/*
 * The timeline of a server for one protocol (timeline.c): a minute a
 * record, in a ring of the last hours, made when the first thing happens
 * to it.  240 records of 8 bytes and the line's own fields fit a 2 KB
 * chunk of the slab.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_MINUTES   240
#define NGX_HTTP_EXCHANGE_HEALTH_WHY_LEN   48


/* shared memory: one minute of a timeline; counts stop at 65535 */
typedef struct {
    uint16_t                minute;         /* of the epoch, mod 65536 */
    uint16_t                failures;
    uint16_t                rescued;
    uint8_t                 from;           /* the state it began in */
    uint8_t                 worst;          /* the worst it was in */
} ngx_http_exchange_health_minute_t;


/* shared memory: a timeline, written by timeline.c only */
typedef struct {
    time_t                  incident;       /* the fault began; 0: none */
    time_t                  last_failure;
    time_t                  probe_time;     /* of probe_why */
    uint8_t                 state;          /* as last recorded */
    u_char                  probe_why[NGX_HTTP_EXCHANGE_HEALTH_WHY_LEN];
    ngx_http_exchange_health_minute_t
                            minutes[NGX_HTTP_EXCHANGE_HEALTH_MINUTES];
} ngx_http_exchange_health_line_t;


/* shared memory: one server's health for one protocol */
typedef struct {
    ngx_msec_t              until;          /* ejected until */
    ngx_msec_t              trial;          /* trial request sent at */
    ngx_msec_t              up_since;       /* for the ejection backoff */
    ngx_msec_t              probe_next;     /* the next active probe */
    time_t                  since;          /* wall clock, last change */
    time_t                  probe_time;     /* the last probe's answer */

    ngx_http_exchange_health_window_t   window;

    ngx_atomic_t            requests;       /* answers; without the lock */
    uint32_t                failures;
    uint32_t                user_failures;
    uint32_t                rescued;
    uint32_t                ejections;

    uint8_t                 state;          /* up, ejected */
    uint8_t                 level;          /* ejections in a row */
    uint8_t                 admin;          /* drain, maintenance */
    uint8_t                 probe;          /* what the probe found */
    uint8_t                 probe_fails;    /* probes failed in a row */
    uint8_t                 failing;        /* the farm's map, state.c */

    ngx_http_exchange_health_failure_t  last;

    /* its timeline, once something happened to it (timeline.c) */
    ngx_http_exchange_health_line_t    *line;
} ngx_http_exchange_health_slot_t;


/* shared memory: one upstream server, keyed by its address */
typedef struct {
    ngx_queue_t             queue;

    size_t                  addr_len;
    u_char                  addr[NGX_HTTP_EXCHANGE_HEALTH_ADDR_LEN];

    ngx_http_exchange_health_name_t     server;     /* as configured */
    ngx_http_exchange_health_name_t     name;       /* X-FEServer */

    size_t                  fqdn_len;
    u_char                  fqdn[NGX_HTTP_EXCHANGE_HEALTH_FQDN_LEN];

    /*
     * When an answer of it last named its back end (X-BEServer,
     * X-CalculatedBETarget); a farm that strips them never does.
     */
    time_t                  backend_seen;

    /* the TLS certificate the probe saw */
    time_t                  cert_time;
    time_t                  cert_not_after;
    uint8_t                 cert_subject_len;
    uint8_t                 cert_thumbprint_len;
    u_char                  cert_thumbprint[40];    /* SHA-1, hex */
    u_char                  cert_subject[96];

    ngx_http_exchange_health_slot_t
                        slot[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];

    /* the signed-in probe's, made when it first probes the server */
    struct ngx_http_exchange_health_signin_s  *signin;
} ngx_http_exchange_health_server_t;


/* shared memory: what the signed-in probe of one protocol last found */
typedef struct {
    time_t                  time;
    uint16_t                status;         /* of the answer judged */
    uint8_t                 result;         /* SIGNIN_* */
    uint8_t                 fails;          /* failed in a row */
    u_char                  why[NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
} ngx_http_exchange_health_signin_result_t;


/*
 * shared memory: one server's signed-in probe, written by signin.c only.
 * The session cookies it got are kept here so that whichever worker
 * probes next uses them: one sign-in per server, not one per worker.
 */
typedef struct ngx_http_exchange_health_signin_s {
    ngx_msec_t              next;           /* the next probe */
    ngx_msec_t              busy;           /* a probe started at */
    ngx_msec_t              attempts[NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_ATTEMPTS];

    /*
     * The server accepted the credentials lately (Basic or NTLM): its
     * calls are no sign-in attempts, as a session's requests are not
     */
    ngx_uint_t              basic_ok;

    ngx_http_exchange_health_signin_result_t
                        result[NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS];

    size_t                  jar_len;        /* a Cookie header's value */
    u_char                  jar[NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN];
} ngx_http_exchange_health_signin_t;


/* shared memory: faults seen on every server at once */
typedef struct {
    ngx_uint_t              fault;
    time_t                  since;
    uint32_t                request_failures;

    ngx_http_exchange_health_window_t   window;
    ngx_http_exchange_health_failure_t  last;

    /*
     * The mailbox servers the window's request failures named: one
     * alone is that back end's fault (a database down), not the farm's
     */
    uint8_t                 backends;       /* 0, 1, 2: more or unnamed */
    uint8_t                 backend_logged;
    uint8_t                 backend_len;
    u_char                  backend[NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN];

    /*
     * A mailbox server found failing through every front end, kept for
     * max_time after its last such failure: once the front ends are
     * ejected but one, its users' failures can no longer be seen on
     * several, and must not be pinned on the last one.
     */
    ngx_msec_t              known_last;
    uint8_t                 known_len;
    u_char                  known[NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN];
} ngx_http_exchange_health_farm_t;


/* shared memory: one upstream block */
typedef struct {
    ngx_queue_t             queue;
    ngx_queue_t             servers;

    ngx_http_exchange_health_name_t     name;
    time_t                  created;        /* timelines start there */
    ngx_uint_t              timeline_full;  /* a line found no room */

    /* primaries out per protocol: ejected, and for any reason */
    ngx_uint_t              ejected[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
    ngx_uint_t              avoided[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];

    ngx_http_exchange_health_farm_t
                            farm[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];

    /*
     * The signed-in probe's account (signin.c): a refusal holds every
     * server's sign-in back, as Active Directory counts them together;
     * a credentials file of another identity is tried again at once.
     */
    ngx_msec_t              signin_refused;
    ngx_msec_t              signin_warned;
    uint32_t                signin_file;
} ngx_http_exchange_health_upstream_t;


/*
 * shared memory: the zone's header.  A change to any structure marked
 * "shared memory" bumps NGX_HTTP_EXCHANGE_HEALTH_LAYOUT_VERSION (zone.c).
 */
typedef struct {
    ngx_uint_t                          layout;
    ngx_msec_t                          save_next;  /* of the state file */
    ngx_queue_t                         upstreams;

    /*
     * Sessions seen signed in for real: hashes of users that got an
     * answer a mailbox server took part in, one per slot, the newest
     * wins.  Only they vote for a failure no other server confirmed.
     * The slot is a keyed hash (siphash.c) with a secret made when the
     * zone is: a client cannot choose it, so cannot evict another's.
     */
    uint32_t                           *proven;
    ngx_http_exchange_health_sipkey_t   secret;
} ngx_http_exchange_health_shctx_t;


typedef struct {
    ngx_http_exchange_health_shctx_t  *sh;
    ngx_slab_pool_t                   *shpool;
    ngx_str_t                         *name;
    ngx_uint_t                         full;    /* "zone is full" logged */

    /* the state file's, store.c */
    ngx_str_t                          state;       /* its path */
    ngx_uint_t                         fresh;       /* started empty */
    ngx_pool_t                        *pool;
    ngx_event_t                        save;        /* in each worker */
    uint32_t                           saved_crc;
} ngx_http_exchange_health_zone_t;


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_ZONE_H_INCLUDED_ */


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_exchange_health_request.h"
#include "ngx_http_exchange_health_scan.h"
#include "ngx_http_exchange_health_service.h"
#include "ngx_http_exchange_health_siphash.h"


/*
 * The module's own names stay inside its shared object: calls between its
 * files go straight, not through the PLT, and its variables are read
 * without the GOT.  nginx looks up only ngx_modules and its companions,
 * which the file its build generates declares with the default.
 */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_EXCHANGE_HEALTH_RULES        64    /* per location */
/* the statuses a rule may name, 0..639; a location's words have one more
 * for all others */
#define NGX_HTTP_EXCHANGE_HEALTH_STATUSES     640
#define NGX_HTTP_EXCHANGE_HEALTH_ATTEMPTS     8     /* servers per request */
/* contexts kept for reuse; none under AddressSanitizer, which then sees
 * any use of a context after its request */
#if defined(__SANITIZE_ADDRESS__)
#define NGX_HTTP_EXCHANGE_HEALTH_FREE_CTX     0
#else
#define NGX_HTTP_EXCHANGE_HEALTH_FREE_CTX     256
#endif
#define NGX_HTTP_EXCHANGE_HEALTH_USERS        4     /* distinct users kept */
#define NGX_HTTP_EXCHANGE_HEALTH_PROVEN       1024  /* sessions signed in */

/*
 * Connections bound to clients (bind.c).  A handshake half done (a
 * challenge sent, its answer not yet come) is held this long, and at most
 * this many at once per client address (an IPv6 /64) in each worker;
 * clients answer a challenge at once.  A signed-in bound connection is
 * closed after this long idle: upstream keepalive_timeout's default, and
 * below IIS's 120 s connectionTimeout, so that nginx, not IIS, closes it
 * and no request meets a connection IIS is closing.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_HANDSHAKE_TIMEOUT  10000
#define NGX_HTTP_EXCHANGE_HEALTH_HANDSHAKES         32
#define NGX_HTTP_EXCHANGE_HEALTH_BIND_IDLE_TIMEOUT  60000

/*
 * A server whose answers have named no back end for this long strips
 * those headers: a signed-in answer proves a sign-in without them.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_BACKEND_HEADERS  600

/* a trial request that has not answered by then no longer blocks others */
#define NGX_HTTP_EXCHANGE_HEALTH_TRIAL_TIMEOUT  30000

/* a failure's scope: the server's fault, or one user's or mailbox's */
#define NGX_HTTP_EXCHANGE_HEALTH_SCOPE_SERVER  0
#define NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER    1
/* the server's only for a session another server signed in, else none */
#define NGX_HTTP_EXCHANGE_HEALTH_SCOPE_PROVEN  2

/* what one server's answer to one request was */
#define NGX_HTTP_EXCHANGE_HEALTH_NONE      0    /* not judged */
#define NGX_HTTP_EXCHANGE_HEALTH_PENDING   1    /* waits for the body */
#define NGX_HTTP_EXCHANGE_HEALTH_HEALTHY   2
#define NGX_HTTP_EXCHANGE_HEALTH_FAILED    3    /* an Exchange failure */
#define NGX_HTTP_EXCHANGE_HEALTH_ERROR     4    /* as nginx's max_fails */

/* a server's state for one protocol */
#define NGX_HTTP_EXCHANGE_HEALTH_UP        0
#define NGX_HTTP_EXCHANGE_HEALTH_EJECTED   1

/* what an operator said of it */
#define NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE         0
#define NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN        1
#define NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE  2

/* what the active probe found */
#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE      0
#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK        1
#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE  2   /* closed, no answer */
#define NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED    3

/*
 * What the helpdesk is told about one server and protocol (status.c's
 * table names them), and what its timeline keeps (timeline.c)
 */
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

/* what the signed-in probe found (signin.c) */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NONE       0
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK         1
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED     2
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED    3    /* the credentials */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAITING    4    /* its back-off */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_UNCLEAR    5    /* no verdict */

/*
 * Forms sign-in serves OWA and ECP, protocols 0 and 1; Basic serves EWS,
 * ActiveSync and MAPI, 2 to 4
 */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS  5
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS                                \
    (1 << NGX_HTTP_EXCHANGE_HEALTH_OWA | 1 << NGX_HTTP_EXCHANGE_HEALTH_ECP)
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_ATTEMPTS    3
/* no sign-in on any server for so long after the account was refused */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAIT        (5 * 60 * 1000)
#define NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN            3072
/* the longest Authorization header an NTLM AUTHENTICATE may make */
#define NGX_HTTP_EXCHANGE_HEALTH_NTLM_HEADER        3072

#define NGX_HTTP_EXCHANGE_HEALTH_RETRY_OFF             0
#define NGX_HTTP_EXCHANGE_HEALTH_RETRY_ON              1
#define NGX_HTTP_EXCHANGE_HEALTH_RETRY_NON_IDEMPOTENT  2

/*
 * Zone record field sizes, longer values are cut: a server's record must
 * fit one slab page (4 KB), or it would take two.
 */
#define NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN     64
#define NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN  24    /* a short host name */
#define NGX_HTTP_EXCHANGE_HEALTH_FQDN_LEN     96
#define NGX_HTTP_EXCHANGE_HEALTH_ADDR_LEN     NGX_SOCKADDR_STRLEN
#define NGX_HTTP_EXCHANGE_HEALTH_RULE_LEN     24
#define NGX_HTTP_EXCHANGE_HEALTH_METHOD_LEN   12
#define NGX_HTTP_EXCHANGE_HEALTH_URI_LEN      88
#define NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN    88


typedef struct {
    size_t                  len;
    u_char                  data[NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN];
} ngx_http_exchange_health_name_t;


#include "ngx_http_exchange_health_zone.h"


/* the answer's headers the module reads, found in one pass (rules.c) */
#define NGX_HTTP_EXCHANGE_HEALTH_H_FESERVER   0
#define NGX_HTTP_EXCHANGE_HEALTH_H_BESERVER   1
#define NGX_HTTP_EXCHANGE_HEALTH_H_OWA_ERROR  2
#define NGX_HTTP_EXCHANGE_HEALTH_H_ECP_ERROR  3
#define NGX_HTTP_EXCHANGE_HEALTH_H_BETARGET   4
#define NGX_HTTP_EXCHANGE_HEALTH_H_ENCODING   5
#define NGX_HTTP_EXCHANGE_HEALTH_H_N          6


/* where a walk of the lines of one header name is (header_next) */
typedef struct {
    ngx_list_part_t        *part;
    ngx_uint_t              i;
} ngx_http_exchange_health_lines_t;


/* an "exchange_health_rule" */
typedef struct {
    ngx_str_t               name;
    ngx_regex_t            *regex;          /* NULL: header present */
    ngx_int_t               known;          /* NGX_HTTP_EXCHANGE_HEALTH_H_*,
                                               or -1 */
    ngx_uint_t              absent;         /* "!Name": header absent */
} ngx_http_exchange_health_header_cond_t;


typedef struct {
    ngx_str_t               name;
    ngx_str_t               file;           /* where it is configured */
    ngx_uint_t              line;
    ngx_uint_t              scope;
    ngx_flag_t              off;
    uint64_t                status[NGX_HTTP_EXCHANGE_HEALTH_STATUSES / 64];
    ngx_uint_t              any_status;
    ngx_array_t            *headers;        /* of header_cond_t */
    ngx_array_t            *bodies;         /* of ngx_str_t */
    ngx_str_t               after;          /* where a page names itself */
    size_t                  scan;           /* 0: exchange_health_scan */
} ngx_http_exchange_health_rule_t;


/* exchange_health_probe */
typedef struct {
    ngx_msec_t              interval;
    ngx_msec_t              timeout;
    ngx_uint_t              tls;
    ngx_str_t               sni;
    u_char                 *sni_cstr;
    ngx_uint_t              protocols;      /* bit per protocol */
    time_t                  cert_warn;
    ngx_ssl_t              *ssl;
    ngx_event_t             timer;          /* in each worker */
    ngx_str_t               uri[NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];
} ngx_http_exchange_health_probe_conf_t;


/* exchange_health_probe_signin: never logged, shown or saved */
typedef struct {
    ngx_str_t               file;
    ngx_str_t               user;           /* the mailbox, shown */
    ngx_str_t               form;           /* the rest of the POST body */
    ngx_str_t               basic;          /* "Basic ...", for EWS... */
    ngx_str_t               scheme;         /* "NTLM", "Negotiate" or "" */
    ngx_str_t               ntlm_user;      /* UTF-16LE, as NTLM sends */
    ngx_str_t               ntlm_domain;
    u_char                  owf[16];        /* NTOWFv2 of the password */
    ngx_uint_t              protocols;      /* bit per protocol */
    uint32_t                file_id;        /* its inode, size and time */
    ngx_event_t             timer;          /* in each worker */
} ngx_http_exchange_health_signin_conf_t;


/* what the signed-in probe reads of an answer's header (signin_answer.c) */
typedef struct {
    ngx_uint_t                             status;
    ngx_uint_t                             empty;      /* no byte */
    ngx_uint_t                             complete;   /* its header */
    ngx_uint_t                             cadata;     /* a session set */
    ngx_uint_t                             jar_full;
    ngx_str_t                              location;
    ngx_str_t                              error;      /* X-OWA-Error... */
    ngx_str_t                              token;      /* WWW-Authenticate */
} ngx_http_exchange_health_answer_t;


/* what the answer to a signed-in page says, besides SIGNIN_* */
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_LOGON    100

/* one HTTP exchange of a probe with one server (probe.c) */
typedef struct ngx_http_exchange_health_probe_s
    ngx_http_exchange_health_probe_t;

/* the answer read (error NULL), or why there is none */
typedef void (*ngx_http_exchange_health_probe_pt)(
    ngx_http_exchange_health_probe_t *pr, char *error);


/* upstream configuration: the balancer and its ejection policy */
typedef struct {
    ngx_shm_zone_t         *shm_zone;
    ngx_http_upstream_srv_conf_t          *upstream;
    ngx_str_t               name;
    ngx_str_t               file;
    ngx_uint_t              line;
    ngx_uint_t              per_server;
    ngx_uint_t              balancing;      /* its init_upstream ran */
    ngx_uint_t              eject_set;      /* exchange_health_eject */
    ngx_flag_t              ntlm;           /* exchange_health_ntlm */
    ngx_http_upstream_init_peer_pt        bind_init_peer;

    ngx_uint_t              fails;
    ngx_msec_t              window;
    ngx_uint_t              users;
    ngx_flag_t              any_voter;      /* voters=any */
    ngx_msec_t              time;
    ngx_msec_t              max_time;
    ngx_uint_t              max_ejected;    /* of primary servers */
    ngx_uint_t              max_ejected_percent;
    ngx_uint_t              probe_fails;    /* probes failed to drain */
    ngx_http_exchange_health_probe_conf_t *probe;
    ngx_http_exchange_health_signin_conf_t *signin;

    /* the first directive that needs the balancer's zone, for nginx -t */
    char                   *needs_zone;
    ngx_str_t               needs_zone_file;
    ngx_uint_t              needs_zone_line;

    ngx_uint_t              nprimary;
    ngx_uint_t              nbackup;
    ngx_uint_t              nup;            /* primaries not "down" */
    ngx_http_upstream_rr_peers_t          *primary;

    /* per peer, primaries first: set in the master for each cycle */
    ngx_slab_pool_t                       *shpool;
    ngx_http_exchange_health_upstream_t   *sh;
    ngx_http_exchange_health_server_t    **servers;
    ngx_str_t                             *addrs;
    ngx_http_upstream_rr_peer_t          **peers;

    /* per peer: names this worker last wrote to the zone */
    uint32_t                              *known_name;
    uint32_t                              *known_fqdn;
} ngx_http_exchange_health_srv_conf_t;


/*
 * A probe's exchange: one request on its own connection, over TLS with
 * the probe's SNI, and the answer read into a bounded buffer.  Its
 * handler gets the answer, or why there is none, and owns what follows:
 * another exchange on a new connection, the next request of an NTLM
 * handshake on the same one (keep), or the end (the pool).
 */
struct ngx_http_exchange_health_probe_s {
    ngx_peer_connection_t                  pc;
    ngx_http_exchange_health_srv_conf_t   *conf;
    ngx_uint_t                             peer;
    ngx_uint_t                             protocol;
    ngx_uint_t                             stage;
    ngx_buf_t                             *request;
    ngx_buf_t                             *response;
    ngx_pool_t                            *pool;
    ngx_http_exchange_health_probe_pt      handler;
    void                                  *data;

    ngx_str_t                              subject;
    ngx_str_t                              thumbprint;
    time_t                                 not_after;

    unsigned                               head_only:1;   /* is enough */
    unsigned                               keep:1;   /* read it whole */
    unsigned                               timed_out:1;
};


/* location configuration: detection and retry */
typedef struct {
    ngx_flag_t              detect;
    ngx_int_t               protocol;       /* -1: from the URI */
    ngx_uint_t              retry;
    size_t                  scan;
    size_t                  hold;
    ngx_msec_t              hold_time;
    ngx_regex_t            *user_errors;

    /* exchange_health_session_cookies: how OWA and ECP sign users in */
    ngx_http_exchange_health_cookie_name_t  *sessions;
    ngx_uint_t              nsessions;

    ngx_flag_t              status;         /* exchange_health_status */
    ngx_flag_t              admin;          /* its admin=on */
    ngx_array_t            *server_names;   /* of ngx_str_t: Host check */

    ngx_array_t            *rules;          /* of rule_t, this level's */
    ngx_array_t            *active;         /* of rule_t *, all in force */
    ngx_http_exchange_health_markers_t  *markers;
    u_char                 *marker_rule;    /* marker index -> rule */
    uint32_t               *rule_markers;   /* rule index -> its markers */

    /*
     * Per status, 0 to 639 and one for any other: a bit for each rule
     * that may match it, and for each of those that reads no body.
     */
    uint64_t               *status_rules;
    uint64_t               *status_rules_nobody;
} ngx_http_exchange_health_loc_conf_t;


/* main configuration: the upstreams that use the balancer */
typedef struct {
    ngx_array_t             upstreams;      /* of srv_conf_t * */
} ngx_http_exchange_health_main_conf_t;


#define NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED  ((ngx_uint_t) -1)


/*
 * A request's bitmaps of peers, in words as round robin keeps "tried":
 * that one, and the servers this module avoids or suspects for it.
 */
#define ngx_http_exchange_health_map_test(map, i)                            \
    ((map)[(i) / (8 * sizeof(uintptr_t))]                                    \
     & ((uintptr_t) 1 << (i) % (8 * sizeof(uintptr_t))))
#define ngx_http_exchange_health_map_set(map, i)                             \
    ((map)[(i) / (8 * sizeof(uintptr_t))]                                    \
     |= (uintptr_t) 1 << (i) % (8 * sizeof(uintptr_t)))


typedef struct ngx_http_exchange_health_binding_s
    ngx_http_exchange_health_binding_t;


/* one server tried for a request */
typedef struct {
    ngx_uint_t              peer;           /* index: primaries first */
    ngx_uint_t              verdict;
    ngx_uint_t              scope;
    ngx_uint_t              status;
    ngx_str_t               rule;
    ngx_str_t               error;          /* X-OWA-Error, owaError= */
    ngx_str_t               backend;        /* X-BEServer of a failure */
    unsigned                backend_computed:1;  /* X-CalculatedBETarget */
    unsigned                trial:1;
    unsigned                mailbox:1;      /* 2xx from a mailbox: proof */
    unsigned                unproven:1;     /* refused credentials none
                                               accepted yet */
} ngx_http_exchange_health_attempt_t;


/* the per-request context; rr's data first, so rr can use it as its own */
typedef struct {
    ngx_http_upstream_rr_peer_data_t      rrp;

    /*
     * Up to user, each field is written before it is read: set by
     * init_peer for every request (rrp by round robin), or, for
     * user_key and known, when first asked (who_read, known_read).
     * From user to nattempts, zeroed by init_peer.
     */

    ngx_http_request_t                   *request;
    ngx_http_exchange_health_srv_conf_t  *conf;
    ngx_http_exchange_health_loc_conf_t  *lcf;

    ngx_uint_t                            protocol;
    ngx_uint_t                            slot;    /* protocol or 0 */
    ngx_str_t                             user_key;  /* who_read */

    /*
     * as first asked: an error_page redirect changes the request's; the
     * path with its mailbox addresses masked once path_read (path())
     */
    ngx_str_t                             method;
    ngx_str_t                             uri;

    /*
     * Servers this module marked as tried because they are ejected, and
     * those seen failing lately, which a retry also steers clear of.
     */
    uintptr_t                            *avoided;
    uintptr_t                            *suspect;

    /* this try's answer: its headers the module reads, once read */
    ngx_table_elt_t                      *known[NGX_HTTP_EXCHANGE_HEALTH_H_N];

    /* the first field zeroed */
    uint32_t                              user;

    ngx_int_t                           (*process_header)(
                                              ngx_http_request_t *r);
    ngx_int_t                           (*reinit_request)(
                                              ngx_http_request_t *r);
    ngx_http_upstream_conf_t             *conf_original;

    uintptr_t                             avoided_data[2];

    /* the answer being judged */
    uint32_t                              eligible;  /* body markers */
    ngx_http_exchange_health_rule_t      *fallback;  /* if none is found */
    ngx_http_exchange_health_scan_t      *scan;
    off_t                                 fed;       /* in u->buffer */
    ngx_msec_t                            hold_start;
    off_t                                 skip;      /* scanned when held */
    off_t                                 passed;    /* body filter */

    /*
     * The hold's own timer, and the connection's recv while the last
     * byte read is held back from nginx (judge.c, hold_back)
     */
    ngx_event_t                          *hold_timer;
    ngx_recv_pt                           hold_recv;

    ngx_str_t                             verdict_text;

    /* connection-bound sign-in (NTLM, Negotiate), and the peer below */
    ngx_http_exchange_health_binding_t   *binding;
    ngx_event_get_peer_pt                 bind_get;
    ngx_event_free_peer_pt                bind_free;
    void                                 *bind_data;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt         bind_set_session;
    ngx_event_save_peer_session_pt        bind_save_session;
#endif

    unsigned                              detect:1;
    unsigned                              signed_in:1;   /* who_read */
    unsigned                              who_read:1;    /* who asks */
    unsigned                              path_read:1;   /* uri masked */
    unsigned                              holding:1;
    unsigned                              retrying:1;
    unsigned                              retried:2;
    unsigned                              header_sent:1;
    unsigned                              settled:1;
    unsigned                              voter:1;   /* believed signed in */
    unsigned                              known_read:1;
    unsigned                              sampled:1; /* this answer */
    unsigned                              ntlm:1;    /* its credentials */
    unsigned                              moved:1;   /* its client, off
                                                        a failing server */
    unsigned                              bound:1;   /* a bound line */
    unsigned                              refused:1; /* its credentials,
                                                        unproven, once */
    unsigned                              bypass:1;  /* this try's */
    unsigned                              trial_handshake:1;
    unsigned                              waits:3;   /* what it waits for */
    unsigned                              waits_read:1;  /* waits decided */
    unsigned                              hold_expired:1;
    unsigned                              held_byte:1;

    /* last: each is zeroed when its server is tried, not before */
    ngx_uint_t                            nattempts;
    ngx_http_exchange_health_attempt_t    attempt[
                                          NGX_HTTP_EXCHANGE_HEALTH_ATTEMPTS];

    /* what scan points to while an answer's body is scanned */
    ngx_http_exchange_health_scan_t       scan_state;

    /* in the worker's list of contexts to reuse (balancer.c) */
    void                                 *next_free;
} ngx_http_exchange_health_ctx_t;


/* a change of state (state.c), logged by events.c */
typedef enum {
    ngx_http_exchange_health_nothing = 0,
    ngx_http_exchange_health_ejected,
    ngx_http_exchange_health_trial,
    ngx_http_exchange_health_trial_failed,
    ngx_http_exchange_health_readmitted,
    ngx_http_exchange_health_farm_fault,
    ngx_http_exchange_health_farm_cleared,
    ngx_http_exchange_health_backend_fault,

    /* the probe's, which probe.c logs: it has no request to name */
    ngx_http_exchange_health_probe_drained,
    ngx_http_exchange_health_probe_back
} ngx_http_exchange_health_change_e;


/* a change of state, logged once the zone is unlocked */
typedef struct {
    ngx_http_exchange_health_change_e   change;
    ngx_msec_t                          duration;
    ngx_uint_t                          fails;
    ngx_msec_t                          window;
    ngx_uint_t                          ejected;
    ngx_http_exchange_health_name_t     name;
} ngx_http_exchange_health_event_t;


/* ngx_http_exchange_health_module.c */
extern ngx_module_t  ngx_http_exchange_health_module;

/* ngx_http_exchange_health_rules.c */
char *ngx_http_exchange_health_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_exchange_health_user_errors(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_exchange_health_merge_rules(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *prev,
    ngx_http_exchange_health_loc_conf_t *conf);

/* ngx_http_exchange_health_classify.c */
ngx_uint_t ngx_http_exchange_health_classify(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_rule_t **matched);
ngx_uint_t ngx_http_exchange_health_classify_body(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, int found,
    ngx_http_exchange_health_rule_t **matched);
void ngx_http_exchange_health_describe(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_rule_t *rule);

/* ngx_http_exchange_health_headers.c */
void ngx_http_exchange_health_known_init(void);
ngx_int_t ngx_http_exchange_health_known_index(ngx_str_t *name);
ngx_table_elt_t *ngx_http_exchange_health_header(ngx_list_t *headers,
    ngx_str_t *name);
ngx_table_elt_t *ngx_http_exchange_health_header_next(ngx_list_t *headers,
    ngx_str_t *name, ngx_http_exchange_health_lines_t *lines);
ngx_table_elt_t *ngx_http_exchange_health_known(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t k);
ngx_int_t ngx_http_exchange_health_encoding(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_header_any(ngx_list_t *headers,
    ngx_str_t *name, ngx_regex_t *regex);
ngx_uint_t ngx_http_exchange_health_scannable(ngx_http_request_t *r);

/* ngx_http_exchange_health_zone.c */
char *ngx_http_exchange_health_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_exchange_health_bind(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf);

/* ngx_http_exchange_health_store.c */
ngx_int_t ngx_http_exchange_health_store_check(ngx_cycle_t *cycle);
ngx_int_t ngx_http_exchange_health_store_restore(ngx_cycle_t *cycle);
ngx_int_t ngx_http_exchange_health_store_init_process(ngx_cycle_t *cycle);
void ngx_http_exchange_health_store_exit_master(ngx_cycle_t *cycle);

/* ngx_http_exchange_health_events.c */
void ngx_http_exchange_health_log(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
ngx_str_t ngx_http_exchange_health_log_text(u_char *buf, size_t size,
    u_char *data, size_t len);
ngx_str_t ngx_http_exchange_health_duration(u_char *buf, ngx_msec_t ms);

/* ngx_http_exchange_health_state.c */

/* the policy's two readings of a record, for state.c and the status page */
#define ngx_http_exchange_health_window_live(w, conf, now)                   \
    ((w)->fails && (now) - (w)->start <= (conf)->window)
/* out for everyone: an operator's word overrides what the probe finds */
#define ngx_http_exchange_health_drained(conf, slot)                         \
    ((slot)->admin != NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE                    \
     || (slot)->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE             \
     || ((slot)->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED              \
         && (slot)->probe_fails >= (conf)->probe_fails))
#define ngx_http_exchange_health_trial_pending(slot, now)                    \
    ((slot)->trial                                                           \
     && (now) - (slot)->trial < NGX_HTTP_EXCHANGE_HEALTH_TRIAL_TIMEOUT)


/*
 * A server's mark in the farm's "failing" map; read unlocked outside
 * avoid(): a stale mark misleads one request.  Inline: classify asks it
 * of every answer.
 */
static ngx_inline ngx_uint_t
ngx_http_exchange_health_failing(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t p, ngx_uint_t peer)
{
    ngx_http_exchange_health_server_t  *srv;

    if (peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return 0;
    }

    srv = conf->servers[peer];

    return srv && srv->slot[p].failing;
}

ngx_uint_t ngx_http_exchange_health_avoid(
    ngx_http_exchange_health_ctx_t *ctx, uintptr_t *avoid,
    uintptr_t *suspect);
void ngx_http_exchange_health_picked(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
void ngx_http_exchange_health_recount(
    ngx_http_exchange_health_srv_conf_t *hscf);
void ngx_http_exchange_health_recount_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p);
void ngx_http_exchange_health_set_admin_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t admin);
void ngx_http_exchange_health_clear_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer);
ngx_http_exchange_health_change_e ngx_http_exchange_health_probed_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t result, u_char *why);
ngx_http_exchange_health_change_e
    ngx_http_exchange_health_signin_probed_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_http_exchange_health_signin_result_t *r, ngx_str_t *method,
    ngx_str_t *uri, ngx_msec_t *duration);
ngx_uint_t ngx_http_exchange_health_out(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer);
void ngx_http_exchange_health_failing_reset_locked(
    ngx_http_exchange_health_upstream_t *up, ngx_uint_t p, ngx_uint_t failing);
ngx_http_exchange_health_slot_t *ngx_http_exchange_health_slot(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
void ngx_http_exchange_health_release_trial(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
ngx_uint_t ngx_http_exchange_health_max_ejected(
    ngx_http_exchange_health_srv_conf_t *conf);
void ngx_http_exchange_health_readmit_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_log_t *log, ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_trial_failed_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_eject_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_log_t *log, ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_farm_fault_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_farm_cleared_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_backend_fault_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_event_t *ev);
void ngx_http_exchange_health_failing_set_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t failing);
ngx_uint_t ngx_http_exchange_health_failing_all_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p);

/* ngx_http_exchange_health_settle.c */
void ngx_http_exchange_health_settle(ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_same_failure(
    ngx_http_exchange_health_ctx_t *ctx);
void ngx_http_exchange_health_blame(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_uint_t confirmed);

/* ngx_http_exchange_health_voters.c */
ngx_uint_t ngx_http_exchange_health_proven(
    ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_may_try(
    ngx_http_exchange_health_ctx_t *ctx);
void ngx_http_exchange_health_prove(ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_voter(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
void ngx_http_exchange_health_who(ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_signed_in(
    ngx_http_exchange_health_ctx_t *ctx);

/* ngx_http_exchange_health_names.c */
void ngx_http_exchange_health_learn_name(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_str_t *name, ngx_uint_t fqdn);
void ngx_http_exchange_health_name_from_fqdn_locked(
    ngx_http_exchange_health_server_t *srv);

/* ngx_http_exchange_health_timeline.c: what to record */
#define NGX_HTTP_EXCHANGE_HEALTH_T_STATE    0    /* after a change */
#define NGX_HTTP_EXCHANGE_HEALTH_T_FAILURE  1
#define NGX_HTTP_EXCHANGE_HEALTH_T_RESCUED  2

ngx_uint_t ngx_http_exchange_health_slot_state(
    ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_slot_t *slot, ngx_uint_t p, ngx_msec_t now);
ngx_uint_t ngx_http_exchange_health_timeline_state(ngx_uint_t state);
void ngx_http_exchange_health_timeline_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, ngx_uint_t p,
    ngx_uint_t what);
void ngx_http_exchange_health_timeline_probe_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, ngx_uint_t p,
    ngx_uint_t result, u_char *why);
ngx_uint_t ngx_http_exchange_health_timeline_copy_locked(
    ngx_http_exchange_health_line_t *to, ngx_http_exchange_health_slot_t *slot);
ngx_uint_t ngx_http_exchange_health_timeline_at(
    ngx_http_exchange_health_line_t *line, time_t t,
    ngx_http_exchange_health_minute_t **minute);

/* ngx_http_exchange_health_upstream.c */
char *ngx_http_exchange_health_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_exchange_health_eject(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_exchange_health_needs_zone(ngx_conf_t *cf,
    ngx_http_exchange_health_srv_conf_t *hscf);
ngx_int_t ngx_http_exchange_health_check_upstreams(ngx_conf_t *cf);

/* ngx_http_exchange_health_balancer.c */
ngx_int_t ngx_http_exchange_health_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
void ngx_http_exchange_health_attempt(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer);

/* ngx_http_exchange_health_judge.c */
void ngx_http_exchange_health_judge_init(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_judge_free(ngx_peer_connection_t *pc,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t state);

/*
 * Whether judge_free has nothing to do: an answer nginx took well,
 * judged, never held nor sent elsewhere, as most are; asked before the
 * call, which saves and restores what judge_free's other cases need
 */
#define ngx_http_exchange_health_judge_idle(ctx, state)                      \
    (!((state) & NGX_PEER_FAILED) && !(ctx)->retrying && !(ctx)->holding     \
     && !(ctx)->held_byte && (ctx)->hold_timer == NULL                       \
     && ((ctx)->nattempts == 0                                               \
         || (ctx)->attempt[(ctx)->nattempts - 1].verdict                     \
            != NGX_HTTP_EXCHANGE_HEALTH_PENDING))

void ngx_http_exchange_health_judged(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t verdict,
    ngx_http_exchange_health_rule_t *rule);
void ngx_http_exchange_health_unread(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
ngx_int_t ngx_http_exchange_health_start_scan(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t raw);

/* ngx_http_exchange_health_retry.c */
ngx_uint_t ngx_http_exchange_health_may_retry(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
ngx_int_t ngx_http_exchange_health_resend(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_usable(
    ngx_http_upstream_rr_peer_data_t *rrp, uintptr_t *avoided);

/* ngx_http_exchange_health_request_facts.c */
ngx_str_t *ngx_http_exchange_health_path(ngx_http_exchange_health_ctx_t *ctx);
ngx_uint_t ngx_http_exchange_health_waiting(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);
void ngx_http_exchange_health_request_of(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_request_t *rq);

/* the pair of slots of the proven table a session may be in */
#define ngx_http_exchange_health_proven_pair(sh, user)                       \
    (&(sh)->proven[(user) % NGX_HTTP_EXCHANGE_HEALTH_PROVEN                  \
                   & ~(uint32_t) 1])

#define ngx_http_exchange_health_in_pair(sh, user)                           \
    ((user) != 0                                                             \
     && (ngx_http_exchange_health_proven_pair(sh, user)[0] == (user)         \
         || ngx_http_exchange_health_proven_pair(sh, user)[1] == (user)))

void ngx_http_exchange_health_trial_handshake(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
ngx_uint_t ngx_http_exchange_health_trial_bound(
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t peer);

/* ngx_http_exchange_health_bind.c */
ngx_int_t ngx_http_exchange_health_bind_init(ngx_conf_t *cf);
void ngx_http_exchange_health_bind_header(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx);

/* ngx_http_exchange_health_filter.c */
ngx_int_t ngx_http_exchange_health_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_exchange_health_body_scan(ngx_http_request_t *r,
    ngx_http_exchange_health_ctx_t *ctx, ngx_chain_t *in);

/* ngx_http_exchange_health_probe.c */
char *ngx_http_exchange_health_probe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_exchange_health_probe_uri(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_exchange_health_probe_init_process(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf);
ngx_int_t ngx_http_exchange_health_probe_protocols(ngx_conf_t *cf,
    ngx_str_t *value, ngx_str_t *list, ngx_uint_t *protocols);
ngx_str_t *ngx_http_exchange_health_probe_host(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer);

/* ngx_http_exchange_health_probe_exchange.c */
ngx_http_exchange_health_probe_t *ngx_http_exchange_health_probe_new(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer,
    size_t size, ngx_http_exchange_health_probe_pt handler);
void ngx_http_exchange_health_probe_connect(
    ngx_http_exchange_health_probe_t *pr);
void ngx_http_exchange_health_probe_again(
    ngx_http_exchange_health_probe_t *pr);
void ngx_http_exchange_health_probe_close(
    ngx_http_exchange_health_probe_t *pr);

/* ngx_http_exchange_health_credentials.c */
char *ngx_http_exchange_health_probe_signin(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
u_char *ngx_http_exchange_health_form_escape(u_char *dst, u_char *src,
    size_t len);

/* ngx_http_exchange_health_signin_answer.c */
void ngx_http_exchange_health_signin_read_answer(ngx_buf_t *b,
    ngx_http_exchange_health_answer_t *a, ngx_str_t *jar, ngx_str_t *scheme);
ngx_uint_t ngx_http_exchange_health_signin_verdict(
    ngx_http_exchange_health_answer_t *a, u_char *why);

/* ngx_http_exchange_health_basic.c */
void ngx_http_exchange_health_basic_request(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p, ngx_str_t *auth,
    ngx_uint_t keep);

/* ngx_http_exchange_health_signin_ntlm.c */
void ngx_http_exchange_health_ntlm_md5(u_char digest[16], const u_char *a,
    size_t alen, const u_char *b, size_t blen);
void ngx_http_exchange_health_signin_ntlm(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p);
ngx_int_t ngx_http_exchange_health_signin_ntlm_challenged(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p, char *error,
    u_char **why);

/* ngx_http_exchange_health_signin.c */

/* the signed-in call of each protocol, SIGNIN_NPROTOCOLS of them */
typedef struct {
    ngx_str_t                              method;
    ngx_str_t                              uri;
} ngx_http_exchange_health_signin_call_t;

extern ngx_http_exchange_health_signin_call_t
    ngx_http_exchange_health_signin_calls[];

void ngx_http_exchange_health_signin_init_process(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf);

/* ngx_http_exchange_health_signin_record.c */
void ngx_http_exchange_health_signin_refused(
    ngx_http_exchange_health_probe_t *pr,
    ngx_http_exchange_health_answer_t *a);
void ngx_http_exchange_health_signin_record(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p, ngx_uint_t result,
    ngx_uint_t status, u_char *why);
const char *ngx_http_exchange_health_signin_name(ngx_uint_t result);

/* ngx_http_exchange_health_status_handler.c */
char *ngx_http_exchange_health_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_exchange_health_status_host.c */
ngx_int_t ngx_http_exchange_health_status_names(ngx_conf_t *cf,
    ngx_http_exchange_health_loc_conf_t *hlcf);
ngx_uint_t ngx_http_exchange_health_status_host(ngx_http_request_t *r);
ngx_int_t ngx_http_exchange_health_refuse_host(ngx_http_request_t *r);

/* ngx_http_exchange_health_admin.c */
ngx_int_t ngx_http_exchange_health_admin_handler(ngx_http_request_t *r);

/* ngx_http_exchange_health_variables.c */
ngx_int_t ngx_http_exchange_health_add_variables(ngx_conf_t *cf);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_H_INCLUDED_ */

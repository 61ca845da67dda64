
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/* the status as Prometheus text exposition format 0.0.4 */


typedef ngx_uint_t (*ngx_http_exchange_health_metric_pt)(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);


typedef struct {
    const char                            *name;
    const char                            *type;
    const char                            *help;
    ngx_http_exchange_health_metric_pt     value;
} ngx_http_exchange_health_metric_t;


static ngx_uint_t ngx_http_exchange_health_m_up(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_state(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_since(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_requests(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_failures(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_user_failures(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_rescued(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static ngx_uint_t ngx_http_exchange_health_m_ejections(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static void ngx_http_exchange_health_states_help(
    ngx_http_exchange_health_writer_t *w, const char *name);
static void ngx_http_exchange_health_labels(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static void ngx_http_exchange_health_label(
    ngx_http_exchange_health_writer_t *w, const char *name, u_char *value,
    size_t len);


static ngx_http_exchange_health_metric_t  ngx_http_exchange_health_metrics[] =
{
    { "exchange_health_server_up", "gauge",
      "1 when the server takes requests of the protocol, 0 when it is out",
      ngx_http_exchange_health_m_up },

    /* its help lists the states, from their table (status.c) */
    { "exchange_health_server_state", "gauge", NULL,
      ngx_http_exchange_health_m_state },

    { "exchange_health_server_state_since_timestamp_seconds", "gauge",
      "Unix time of the last change of state",
      ngx_http_exchange_health_m_since },

    { "exchange_health_requests_total", "counter",
      "Answers of the server judged by the module",
      ngx_http_exchange_health_m_requests },

    { "exchange_health_failures_total", "counter",
      "Failures counted against the server",
      ngx_http_exchange_health_m_failures },

    { "exchange_health_user_failures_total", "counter",
      "Failures of one user or mailbox, never counted against the server",
      ngx_http_exchange_health_m_user_failures },

    { "exchange_health_rescued_total", "counter",
      "Requests this server failed that another server answered",
      ngx_http_exchange_health_m_rescued },

    { "exchange_health_ejections_total", "counter",
      "Times the server was ejected",
      ngx_http_exchange_health_m_ejections }
};


void
ngx_http_exchange_health_render_prometheus(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap)
{
    ngx_uint_t                                 i, j, k, p;
    const char                                *proto;
    ngx_http_exchange_health_farm_t           *farm;
    ngx_http_exchange_health_metric_t         *m;
    ngx_http_exchange_health_snap_server_t    *s;
    ngx_http_exchange_health_signin_result_t  *sr;
    ngx_http_exchange_health_snap_upstream_t  *up;

    for (k = 0; k < sizeof(ngx_http_exchange_health_metrics)
                    / sizeof(ngx_http_exchange_health_metric_t); k++)
    {
        m = &ngx_http_exchange_health_metrics[k];

        if (m->help) {
            ngx_http_exchange_health_write(w, "# HELP %s %s\n", m->name,
                                           m->help);

        } else {
            ngx_http_exchange_health_states_help(w, m->name);
        }

        ngx_http_exchange_health_write(w, "# TYPE %s %s\n", m->name,
                                       m->type);

        for (i = 0; i < snap->nupstreams; i++) {
            up = &snap->upstreams[i];

            for (j = 0; j < up->nservers; j++) {
                s = &up->servers[j];

                for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

                    if (!ngx_http_exchange_health_shown(up, s, p)) {
                        continue;
                    }

                    ngx_http_exchange_health_write(w, "%s", m->name);
                    ngx_http_exchange_health_labels(w, up, s, p);
                    ngx_http_exchange_health_write(w, " %ui\n",
                                                   m->value(s, p));
                }
            }
        }
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_probe_ok 1 when the last active probe of the "
        "protocol's healthcheck.htm was answered well\n"
        "# TYPE exchange_health_probe_ok gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (j = 0; j < up->nservers; j++) {
            s = &up->servers[j];

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
                if (s->record.slot[p].probe
                    == NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE)
                {
                    continue;
                }

                ngx_http_exchange_health_write(w, "exchange_health_probe_ok");
                ngx_http_exchange_health_labels(w, up, s, p);
                ngx_http_exchange_health_write(w, " %d\n",
                                      s->record.slot[p].probe
                                      == NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK);
            }
        }
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_signin_ok 1 when the last signed-in probe of "
        "the protocol was answered well\n"
        "# TYPE exchange_health_signin_ok gauge\n"
        "# HELP exchange_health_signin_refused 1 when the server refused the "
        "monitoring mailbox's sign-in: its password\n"
        "# TYPE exchange_health_signin_refused gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (j = 0; j < up->nservers; j++) {
            s = &up->servers[j];

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS; p++) {
                sr = ngx_http_exchange_health_signin_shown(up, s, p);
                if (sr == NULL) {
                    continue;
                }

                ngx_http_exchange_health_write(w, "exchange_health_signin_ok");
                ngx_http_exchange_health_labels(w, up, s, p);
                ngx_http_exchange_health_write(w, " %d\n",
                             sr->result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK);

                ngx_http_exchange_health_write(w,
                                             "exchange_health_signin_refused");
                ngx_http_exchange_health_labels(w, up, s, p);
                ngx_http_exchange_health_write(w, " %d\n",
                        sr->result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED);
            }
        }
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_certificate_expiry_timestamp_seconds When "
        "the TLS certificate the server presents expires\n"
        "# TYPE exchange_health_certificate_expiry_timestamp_seconds gauge\n"
        "# HELP exchange_health_certificate_differs 1 when the server "
        "presents another certificate than the other servers\n"
        "# TYPE exchange_health_certificate_differs gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (j = 0; j < up->nservers; j++) {
            s = &up->servers[j];

            if (s->record.cert_thumbprint_len == 0) {
                continue;
            }

            ngx_http_exchange_health_write(w,
                     "exchange_health_certificate_expiry_timestamp_seconds");
            ngx_http_exchange_health_labels(w, up, s,
                                         NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS);
            ngx_http_exchange_health_write(w, " %T\n",
                                           s->record.cert_not_after);

            ngx_http_exchange_health_write(w,
                                      "exchange_health_certificate_differs");
            ngx_http_exchange_health_labels(w, up, s,
                                         NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS);
            ngx_http_exchange_health_write(w, " %ui\n", s->cert_differs);
        }
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_untracked_servers Servers the zone has no "
        "room for: never judged or ejected\n"
        "# TYPE exchange_health_untracked_servers gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        ngx_http_exchange_health_write(w,
                                       "exchange_health_untracked_servers");
        ngx_http_exchange_health_labels(w, up, NULL,
                                        NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS);
        ngx_http_exchange_health_write(w, " %ui\n", up->nuntracked);
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_farm_fault 1 while every server fails "
        "the same requests of the protocol\n"
        "# TYPE exchange_health_farm_fault gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
            if (up->conf->per_server && p) {
                break;
            }

            ngx_http_exchange_health_write(w, "exchange_health_farm_fault");
            ngx_http_exchange_health_labels(w, up, NULL, p);
            ngx_http_exchange_health_write(w, " %ui\n",
                                           up->record.farm[p].fault);
        }
    }

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_request_failures_total Requests that "
        "failed on every server tried\n"
        "# TYPE exchange_health_request_failures_total counter\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
            if (up->conf->per_server && p) {
                break;
            }

            ngx_http_exchange_health_write(w,
                                    "exchange_health_request_failures_total");
            ngx_http_exchange_health_labels(w, up, NULL, p);
            ngx_http_exchange_health_write(w, " %ui\n",
                          (ngx_uint_t) up->record.farm[p].request_failures);
        }
    }

    /*
     * Only while it lasts, as a series of its own: a back end's name is a
     * label, and one that comes and goes must not stay in every scrape.
     */

    ngx_http_exchange_health_write(w,
        "# HELP exchange_health_backend_failing 1 while requests fail on "
        "every server, all through this mailbox server\n"
        "# TYPE exchange_health_backend_failing gauge\n");

    for (i = 0; i < snap->nupstreams; i++) {
        up = &snap->upstreams[i];

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
            farm = &up->record.farm[p];

            if (!(up->request_failing & ((ngx_uint_t) 1 << p))
                || farm->backends != 1)
            {
                continue;
            }

            proto = ngx_http_exchange_health_slot_name(up, p);

            ngx_http_exchange_health_write(w,
                                    "exchange_health_backend_failing{");
            ngx_http_exchange_health_label(w, "upstream", up->conf->name.data,
                                           up->conf->name.len);
            ngx_http_exchange_health_write(w, ",");
            ngx_http_exchange_health_label(w, "protocol", (u_char *) proto,
                                           ngx_strlen(proto));
            ngx_http_exchange_health_write(w, ",");
            ngx_http_exchange_health_label(w, "backend", farm->backend,
                                           farm->backend_len);
            ngx_http_exchange_health_write(w, "} 1\n");
        }
    }
}


static void
ngx_http_exchange_health_states_help(ngx_http_exchange_health_writer_t *w,
    const char *name)
{
    ngx_uint_t                         i;
    ngx_http_exchange_health_state_t  *st;

    /* "0 idle, 1 healthy, ...": a dashboard maps the values with it */

    ngx_http_exchange_health_write(w, "# HELP %s", name);

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_S_N; i++) {
        st = &ngx_http_exchange_health_states[i];
        ngx_http_exchange_health_write(w, "%s%ui %s", i ? ", " : " ",
                                       st->value, st->name);
    }

    ngx_http_exchange_health_write(w, "\n");
}


static void
ngx_http_exchange_health_labels(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    ngx_str_t    name;
    const char  *proto;

    ngx_http_exchange_health_write(w, "{");
    ngx_http_exchange_health_label(w, "upstream", up->conf->name.data,
                                   up->conf->name.len);

    if (s) {
        ngx_http_exchange_health_write(w, ",");
        ngx_http_exchange_health_label(w, "server", s->addr.data,
                                       s->addr.len);
        ngx_http_exchange_health_write(w, ",");

        /*
         * as the page calls it: Exchange's name, else the configuration's,
         * else its address; never name=""
         */

        name = ngx_http_exchange_health_server_name(s);
        ngx_http_exchange_health_label(w, "name", name.data, name.len);
    }

    /* a server's own metrics have no protocol */

    if (p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS) {
        proto = ngx_http_exchange_health_slot_name(up, p);

        ngx_http_exchange_health_write(w, ",");
        ngx_http_exchange_health_label(w, "protocol", (u_char *) proto,
                                       ngx_strlen(proto));
    }

    ngx_http_exchange_health_write(w, "}");
}


static void
ngx_http_exchange_health_label(ngx_http_exchange_health_writer_t *w,
    const char *name, u_char *value, size_t len)
{
    ngx_http_exchange_health_write(w, "%s=\"", name);
    ngx_http_exchange_health_write_escaped(w, value, len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_PROMETHEUS);
    ngx_http_exchange_health_write(w, "\"");
}


static ngx_uint_t
ngx_http_exchange_health_m_up(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return ngx_http_exchange_health_in_service(s->state[p]);
}


static ngx_uint_t
ngx_http_exchange_health_m_state(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return s->state[p];
}


static ngx_uint_t
ngx_http_exchange_health_m_since(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return (ngx_uint_t) s->record.slot[p].since;
}


static ngx_uint_t
ngx_http_exchange_health_m_requests(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return s->record.slot[p].requests;
}


static ngx_uint_t
ngx_http_exchange_health_m_failures(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return s->record.slot[p].failures;
}


static ngx_uint_t
ngx_http_exchange_health_m_user_failures(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    return s->record.slot[p].user_failures;
}


static ngx_uint_t
ngx_http_exchange_health_m_rescued(ngx_http_exchange_health_snap_server_t *s,
    ngx_uint_t p)
{
    return s->record.slot[p].rescued;
}


static ngx_uint_t
ngx_http_exchange_health_m_ejections(
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    return s->record.slot[p].ejections;
}

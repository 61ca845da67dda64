
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/* the status for scripts and monitoring; times are ISO 8601 UTC */


static void ngx_http_exchange_health_json_upstream(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_json_server(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s);
static void ngx_http_exchange_health_json_timeline(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static void ngx_http_exchange_health_json_failure(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_failure_t *f);
static void ngx_http_exchange_health_json_string(
    ngx_http_exchange_health_writer_t *w, u_char *s, size_t len);
static void ngx_http_exchange_health_json_time(
    ngx_http_exchange_health_writer_t *w, time_t t);


void
ngx_http_exchange_health_render_json(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap)
{
    ngx_uint_t  i;

    ngx_http_exchange_health_write(w, "{\"time\":");
    ngx_http_exchange_health_json_time(w, snap->now);
    ngx_http_exchange_health_write(w,
        ",\"servers\":%ui,\"failing\":%ui,\"farm_faults\":%ui,"
        "\"request_failing\":%ui,\"upstreams\":[", snap->nservers,
        snap->nfailing, snap->nfarm_faults, snap->nrequest_failing);

    for (i = 0; i < snap->nupstreams; i++) {
        ngx_http_exchange_health_write(w, i ? "," : "");
        ngx_http_exchange_health_json_upstream(w, snap, &snap->upstreams[i]);
    }

    ngx_http_exchange_health_write(w, "]}\n");
}


static void
ngx_http_exchange_health_json_upstream(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up)
{
    ngx_uint_t                        i, p, n;
    ngx_http_exchange_health_farm_t  *farm;

    ngx_http_exchange_health_write(w, "{\"name\":");
    ngx_http_exchange_health_json_string(w, up->conf->name.data,
                                         up->conf->name.len);
    ngx_http_exchange_health_write(w, ",\"zone\":");
    ngx_http_exchange_health_json_string(w, up->conf->shm_zone->shm.name.data,
                                         up->conf->shm_zone->shm.name.len);
    ngx_http_exchange_health_write(w,
        ",\"scope\":\"%s\",\"failing\":%ui,\"untracked\":%ui,"
        "\"timeline_full\":%s,\"farm\":{",
        up->conf->per_server ? "server" : "protocol", up->nfailing,
        up->nuntracked, up->record.timeline_full ? "true" : "false");

    for (p = 0, n = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        farm = &up->record.farm[p];

        if (!farm->fault && farm->request_failures == 0) {
            continue;
        }

        ngx_http_exchange_health_write(w,
            "%s\"%s\":{\"fault\":%s,\"request_failing\":%s,\"since\":",
            n++ ? "," : "", ngx_http_exchange_health_slot_name(up, p),
            farm->fault ? "true" : "false",
            up->request_failing & ((ngx_uint_t) 1 << p) ? "true" : "false");
        ngx_http_exchange_health_json_time(w, farm->since);
        if ((up->request_failing & ((ngx_uint_t) 1 << p))
            && farm->backends == 1)
        {
            /* every one named this mailbox server: its fault */
            ngx_http_exchange_health_write(w, ",\"backend\":\"");
            ngx_http_exchange_health_write_escaped(w, farm->backend,
                                    farm->backend_len,
                                    NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON);
            ngx_http_exchange_health_write(w, "\"");
        }

        ngx_http_exchange_health_write(w, ",\"request_failures\":%ui,"
                                       "\"last_failure\":",
                                       (ngx_uint_t) farm->request_failures);
        ngx_http_exchange_health_json_failure(w, &farm->last);
        ngx_http_exchange_health_write(w, "}");
    }

    ngx_http_exchange_health_write(w, "},\"servers\":[");

    for (i = 0; i < up->nservers; i++) {
        ngx_http_exchange_health_write(w, i ? "," : "");
        ngx_http_exchange_health_json_server(w, snap, up, &up->servers[i]);
    }

    ngx_http_exchange_health_write(w, "]}");
}


static void
ngx_http_exchange_health_json_server(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s)
{
    ngx_str_t                                  why;
    ngx_uint_t                                 p, n;
    const char                                *hint;
    ngx_http_exchange_health_slot_t           *slot;
    ngx_http_exchange_health_server_t         *rec;
    ngx_http_exchange_health_signin_result_t  *sr;

    rec = &s->record;

    ngx_http_exchange_health_write(w, "{\"address\":");
    ngx_http_exchange_health_json_string(w, s->addr.data, s->addr.len);
    ngx_http_exchange_health_write(w, ",\"server\":");
    ngx_http_exchange_health_json_string(w, rec->server.data,
                                         rec->server.len);
    ngx_http_exchange_health_write(w, ",\"name\":");
    ngx_http_exchange_health_json_string(w, rec->name.data, rec->name.len);
    ngx_http_exchange_health_write(w, ",\"fqdn\":");
    ngx_http_exchange_health_json_string(w, rec->fqdn, rec->fqdn_len);

    /* when an answer last named its back end: null on a farm that strips */
    ngx_http_exchange_health_write(w, ",\"backend_named\":");
    ngx_http_exchange_health_json_time(w, rec->backend_seen);
    ngx_http_exchange_health_write(w, ",\"certificate\":");

    if (rec->cert_thumbprint_len) {
        ngx_http_exchange_health_write(w, "{\"subject\":");
        ngx_http_exchange_health_json_string(w, rec->cert_subject,
                                             rec->cert_subject_len);
        ngx_http_exchange_health_write(w, ",\"thumbprint\":");
        ngx_http_exchange_health_json_string(w, rec->cert_thumbprint,
                                             rec->cert_thumbprint_len);
        ngx_http_exchange_health_write(w, ",\"expires\":");
        ngx_http_exchange_health_json_time(w, rec->cert_not_after);
        ngx_http_exchange_health_write(w, ",\"seen\":");
        ngx_http_exchange_health_json_time(w, rec->cert_time);
        ngx_http_exchange_health_write(w,
            ",\"expiring\":%s,\"differs\":%s}",
            s->cert_expiring ? "true" : "false",
            s->cert_differs ? "true" : "false");

    } else {
        ngx_http_exchange_health_write(w, "null");
    }

    ngx_http_exchange_health_write(w,
        ",\"backup\":%s,\"state\":\"%s\",\"protocols\":{",
        s->backup ? "true" : "false",
        s->severity == 2 ? "failing" : s->severity == 1 ? "warning"
                                                        : "healthy");

    for (p = 0, n = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

        if (!ngx_http_exchange_health_shown(up, s, p)) {
            continue;
        }

        slot = &rec->slot[p];

        ngx_http_exchange_health_write(w,
            "%s\"%s\":{\"state\":\"%s\",\"since\":", n++ ? "," : "",
            ngx_http_exchange_health_slot_name(up, p),
            ngx_http_exchange_health_state_name(s->state[p]));
        ngx_http_exchange_health_json_time(w, slot->since);

        if (s->state[p] == NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED) {
            ngx_http_exchange_health_write(w, ",\"ejected_until\":");
            ngx_http_exchange_health_json_time(w, s->until[p]);
        }

        /* while a fault lasts: when it began, not the last change */

        ngx_http_exchange_health_write(w, ",\"incident_since\":");
        ngx_http_exchange_health_json_time(w,
                 s->line[p] && ngx_http_exchange_health_severity(s->state[p])
                 ? s->line[p]->incident : 0);

        ngx_http_exchange_health_write(w,
            ",\"requests\":%uA,\"failures\":%ui,\"user_failures\":%ui,"
            "\"rescued\":%ui,\"ejections\":%ui,\"last_failure\":",
            slot->requests, (ngx_uint_t) slot->failures,
            (ngx_uint_t) slot->user_failures, (ngx_uint_t) slot->rescued,
            (ngx_uint_t) slot->ejections);
        ngx_http_exchange_health_json_failure(w, &slot->last);

        ngx_http_exchange_health_write(w, ",\"probe\":");

        if (slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE) {
            ngx_http_exchange_health_write(w, "null");

        } else {
            ngx_http_exchange_health_write(w, "{\"result\":\"%s\",\"time\":",
                          ngx_http_exchange_health_probe_name(slot->probe));
            ngx_http_exchange_health_json_time(w, slot->probe_time);
            ngx_http_exchange_health_write(w, ",\"failed_in_a_row\":%ui,"
                                           "\"why\":",
                                           (ngx_uint_t) slot->probe_fails);

            why = ngx_http_exchange_health_probe_why(s, p);

            if (why.len) {
                ngx_http_exchange_health_json_string(w, why.data, why.len);

            } else {
                ngx_http_exchange_health_write(w, "null");
            }

            ngx_http_exchange_health_write(w, "}");
        }

        sr = ngx_http_exchange_health_signin_shown(up, s, p);

        if (sr) {
            ngx_http_exchange_health_write(w, ",\"signin\":{\"user\":");
            ngx_http_exchange_health_json_string(w, up->conf->signin->user.data,
                                                 up->conf->signin->user.len);
            ngx_http_exchange_health_write(w, ",\"result\":\"%s\",\"time\":",
                             ngx_http_exchange_health_signin_name(sr->result));
            ngx_http_exchange_health_json_time(w, sr->time);
            ngx_http_exchange_health_write(w,
                              ",\"status\":%ui,\"failed_in_a_row\":%ui,"
                              "\"why\":", (ngx_uint_t) sr->status,
                              (ngx_uint_t) sr->fails);
            ngx_http_exchange_health_json_string(w, sr->why,
                                   ngx_strnlen(sr->why, sizeof(sr->why)));
            ngx_http_exchange_health_write(w, "}");
        }

        ngx_http_exchange_health_json_timeline(w, snap, up, s, p);

        hint = ngx_http_exchange_health_hint(up, s, p);

        if (hint) {
            ngx_http_exchange_health_write(w, ",\"hint\":");
            ngx_http_exchange_health_json_string(w, (u_char *) hint,
                                                 ngx_strlen(hint));
        }

        ngx_http_exchange_health_write(w, "}");
    }

    ngx_http_exchange_health_write(w, "}}");
}


static void
ngx_http_exchange_health_json_timeline(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    ngx_uint_t                          i, j, n;
    ngx_http_exchange_health_minutes_t  mn;

    /*
     * The page's timeline: runs of one state, and the minutes that
     * counted failures or rescued requests; "unknown" before the zone
     * had the upstream.
     */

    ngx_http_exchange_health_timeline_minutes(snap, up, s, p, &mn);

    ngx_http_exchange_health_write(w, ",\"timeline\":{\"start\":");
    ngx_http_exchange_health_json_time(w, mn.start);
    ngx_http_exchange_health_write(w, ",\"minutes\":%ui,\"runs\":[",
                                   mn.n);

    for (i = 0; i < mn.n; i = j) {

        for (j = i + 1; j < mn.n && mn.state[j] == mn.state[i]; j++)
        {
            /* void */
        }

        ngx_http_exchange_health_write(w, "%s{\"state\":\"%s\",\"from\":",
                           i ? "," : "",
                           mn.state[i] ? ngx_http_exchange_health_state_name(
                                                                mn.state[i])
                                       : "unknown");
        ngx_http_exchange_health_json_time(w, mn.start + (time_t) i * 60);
        ngx_http_exchange_health_write(w, ",\"minutes\":%ui}", j - i);
    }

    ngx_http_exchange_health_write(w, "],\"counts\":[");

    for (i = 0, n = 0; i < mn.n; i++) {

        if (mn.failures[i] == 0 && mn.rescued[i] == 0) {
            continue;
        }

        ngx_http_exchange_health_write(w, "%s{\"minute\":", n++ ? "," : "");
        ngx_http_exchange_health_json_time(w, mn.start + (time_t) i * 60);
        ngx_http_exchange_health_write(w, ",\"failures\":%ui,\"rescued\":%ui}",
                                       (ngx_uint_t) mn.failures[i],
                                       (ngx_uint_t) mn.rescued[i]);
    }

    ngx_http_exchange_health_write(w, "]}");
}


static void
ngx_http_exchange_health_json_failure(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_failure_t *f)
{
    if (f->time == 0) {
        ngx_http_exchange_health_write(w, "null");
        return;
    }

    ngx_http_exchange_health_write(w, "{\"time\":");
    ngx_http_exchange_health_json_time(w, f->time);
    ngx_http_exchange_health_write(w, ",\"rule\":");
    ngx_http_exchange_health_json_string(w, f->rule,
                                         ngx_strnlen(f->rule,
                                                     sizeof(f->rule)));
    ngx_http_exchange_health_write(w, ",\"method\":");
    ngx_http_exchange_health_json_string(w, f->method,
                                         ngx_strnlen(f->method,
                                                     sizeof(f->method)));
    ngx_http_exchange_health_write(w, ",\"uri\":");
    ngx_http_exchange_health_json_string(w, f->uri,
                                         ngx_strnlen(f->uri, sizeof(f->uri)));
    ngx_http_exchange_health_write(w, ",\"status\":%ui,\"error\":",
                                   (ngx_uint_t) f->status);
    ngx_http_exchange_health_json_string(w, f->error,
                                         ngx_strnlen(f->error,
                                                     sizeof(f->error)));
    ngx_http_exchange_health_write(w, "}");
}


static void
ngx_http_exchange_health_json_string(ngx_http_exchange_health_writer_t *w,
    u_char *s, size_t len)
{
    ngx_http_exchange_health_write(w, "\"");
    ngx_http_exchange_health_write_escaped(w, s, len,
                                       NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_JSON);
    ngx_http_exchange_health_write(w, "\"");
}


static void
ngx_http_exchange_health_json_time(ngx_http_exchange_health_writer_t *w,
    time_t t)
{
    ngx_tm_t  tm;

    if (t == 0) {
        ngx_http_exchange_health_write(w, "null");
        return;
    }

    ngx_gmtime(t, &tm);

    ngx_http_exchange_health_write(w, "\"%4d-%02d-%02dT%02d:%02d:%02dZ\"",
                                   tm.ngx_tm_year, tm.ngx_tm_mon,
                                   tm.ngx_tm_mday, tm.ngx_tm_hour,
                                   tm.ngx_tm_min, tm.ngx_tm_sec);
}

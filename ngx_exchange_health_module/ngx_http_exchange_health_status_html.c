
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * The page the helpdesk reads: failing servers first and obvious, times
 * as "since 10:42 (7 min)", a hint of what to check.  It refreshes
 * itself, needs no JavaScript and loads nothing from elsewhere.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_REFRESH  10


static void ngx_http_exchange_health_html_upstream(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_html_farm(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_html_server(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s);
static void ngx_http_exchange_health_html_failure(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_failure_t *f, const char *where);
static void ngx_http_exchange_health_html_text(
    ngx_http_exchange_health_writer_t *w, u_char *s, size_t max);
static void ngx_http_exchange_health_html_hint(
    ngx_http_exchange_health_writer_t *w, const char *hint);
static void ngx_http_exchange_health_html_when(
    ngx_http_exchange_health_writer_t *w, time_t now, time_t t,
    const char *word);
static void ngx_http_exchange_health_html_signin(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s);
static void ngx_http_exchange_health_html_certificate(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_server_t *s);


static u_char  ngx_http_exchange_health_style[] =
"<style>\n"
"body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
"margin:0;background:#f4f5f7;color:#1d2125}\n"
"header{padding:14px 18px;color:#fff;background:#1f7a3a}\n"
"header.bad{background:#b3261e}\n"
"header.warn{background:#8a5a00}\n"
"h1{font-size:20px;margin:0}\n"
"header p{margin:4px 0 0}\n"
"main{padding:8px 12px;max-width:1100px}\n"
"h2{font-size:16px;margin:18px 6px 8px;color:#44546f}\n"
".card{background:#fff;border-radius:8px;margin:10px 0;padding:10px 14px;"
"border-left:6px solid #1f7a3a;box-shadow:0 1px 2px rgba(0,0,0,.12)}\n"
".card.bad{border-left-color:#b3261e}\n"
".card.warn{border-left-color:#c28a00}\n"
".card h3{font-size:17px;margin:2px 0 4px}\n"
".addr{font-weight:normal;color:#5e6c84;font-size:14px}\n"
".badge{display:inline-block;border-radius:4px;padding:0 6px;"
"font-size:13px;font-weight:600;color:#fff;background:#1f7a3a}\n"
".badge.bad{background:#b3261e}\n"
".badge.warn{background:#c28a00}\n"
".badge.idle{background:#8993a4}\n"
".scroll{overflow-x:auto}\n"
"table{border-collapse:collapse;width:100%;font-size:14px}\n"
"th,td{text-align:left;padding:3px 8px 3px 0;white-space:nowrap}\n"
"th{color:#5e6c84;font-weight:600}\n"
"td.n{text-align:right}\n"
".why{margin:8px 0 2px;padding:6px 8px;background:#fff4f2;"
"border-radius:4px}\n"
".hint{margin:4px 0;padding:6px 8px;background:#eef4ff;border-radius:4px}\n"
".cert{margin:0 0 6px;font-size:14px;color:#44546f}\n"
".cert b{color:#8a5a00}\n"
".fault{background:#b3261e;color:#fff;border-radius:8px;padding:10px 14px;"
"margin:10px 0}\n"
"code{font:13px ui-monospace,Consolas,monospace;word-break:break-all}\n"
"footer{color:#5e6c84;font-size:13px;padding:8px 18px 20px}\n"
"</style>\n";


void
ngx_http_exchange_health_render_html(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap)
{
    ngx_tm_t     tm;
    ngx_uint_t   i;
    const char  *cls;

    /* never "all well" while requests fail, on whichever servers */

    cls = snap->nfailing || snap->nfarm_faults ? "bad"
          : snap->nrequest_failing ? "warn" : "";

    ngx_http_exchange_health_write(w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
        "<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, "
        "initial-scale=1\">\n"
        "<meta http-equiv=\"refresh\" content=\"%d\">\n",
        NGX_HTTP_EXCHANGE_HEALTH_REFRESH);

    if (snap->nfarm_faults) {
        ngx_http_exchange_health_write(w,
            "<title>Exchange health: farm-wide fault</title>\n");

    } else if (snap->nfailing) {
        ngx_http_exchange_health_write(w,
            "<title>Exchange health: %ui server%s failing</title>\n",
            snap->nfailing, snap->nfailing == 1 ? "" : "s");

    } else if (snap->nrequest_failing) {
        ngx_http_exchange_health_write(w,
            "<title>Exchange health: requests failing on every server"
            "</title>\n");

    } else {
        ngx_http_exchange_health_write(w,
            "<title>Exchange health: all well</title>\n");
    }

    ngx_http_exchange_health_write_text(w, ngx_http_exchange_health_style,
                                   sizeof(ngx_http_exchange_health_style) - 1);

    ngx_localtime(snap->now, &tm);

    ngx_http_exchange_health_write(w,
        "</head>\n<body>\n<header class=\"%s\">\n<h1>Exchange health</h1>\n"
        "<p id=\"summary\">", cls);

    if (snap->nfarm_faults) {
        ngx_http_exchange_health_write(w,
            "Farm-wide fault: every server fails the same requests");

    } else if (snap->nfailing) {
        ngx_http_exchange_health_write(w, "%ui of %ui servers failing",
                                       snap->nfailing, snap->nservers);

    } else if (snap->nrequest_failing) {
        ngx_http_exchange_health_write(w,
            "All %ui servers up, but some requests fail on every server "
            "they try", snap->nservers);

    } else {
        ngx_http_exchange_health_write(w, "All %ui servers healthy",
                                       snap->nservers);
    }

    ngx_http_exchange_health_write(w,
        " &middot; updated %02d:%02d:%02d</p>\n</header>\n<main>\n",
        tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    if (snap->nupstreams == 0) {
        ngx_http_exchange_health_write(w,
            "<p>No upstream uses exchange_health.</p>\n");
    }

    for (i = 0; i < snap->nupstreams; i++) {
        ngx_http_exchange_health_html_upstream(w, snap, &snap->upstreams[i]);
    }

    ngx_http_exchange_health_write(w,
        "</main>\n<footer>ngx_exchange_health_module &middot; this page "
        "refreshes every %d s &middot; <a href=\"?format=json\">JSON</a> "
        "&middot; <a href=\"?format=prometheus\">Prometheus</a></footer>\n"
        "</body>\n</html>\n", NGX_HTTP_EXCHANGE_HEALTH_REFRESH);
}


static void
ngx_http_exchange_health_html_upstream(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up)
{
    ngx_uint_t  i;

    ngx_http_exchange_health_write(w, "<section class=\"upstream\">\n<h2>");
    ngx_http_exchange_health_write_escaped(w, up->conf->name.data,
                                        up->conf->name.len,
                                        NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    ngx_http_exchange_health_write(w,
        " &middot; %ui server%s, %ui failing</h2>\n", up->nservers,
        up->nservers == 1 ? "" : "s", up->nfailing);

    if (up->nuntracked) {
        ngx_http_exchange_health_write(w,
            "<div class=\"card warn\"><b>%ui server%s not tracked</b>: the "
            "zone \"", up->nuntracked, up->nuntracked == 1 ? " is" : "s are");
        ngx_http_exchange_health_write_escaped(w,
                                   up->conf->shm_zone->shm.name.data,
                                   up->conf->shm_zone->shm.name.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
        ngx_http_exchange_health_write(w,
            "\" is full. They take traffic but are never judged or "
            "ejected: make the zone bigger and reload.</div>\n");
    }

    ngx_http_exchange_health_html_farm(w, snap, up);

    for (i = 0; i < up->nservers; i++) {
        ngx_http_exchange_health_html_server(w, snap, up, &up->servers[i]);
    }

    ngx_http_exchange_health_write(w, "</section>\n");
}


static void
ngx_http_exchange_health_html_farm(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up)
{
    ngx_uint_t                        p;
    ngx_http_exchange_health_farm_t  *farm;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        farm = &up->record.farm[p];

        if (!farm->fault) {

            if (up->request_failing & ((ngx_uint_t) 1 << p)) {
                ngx_http_exchange_health_write(w,
                    "<div class=\"card warn\"><b>Requests failing on every "
                    "server for %s</b>: %ui lately. No server is to blame: "
                    "look at what those requests share (one user's mailbox, "
                    "a mailbox database or the server hosting it, the "
                    "path).", ngx_http_exchange_health_slot_name(up, p),
                    (ngx_uint_t) farm->window.fails);

                if (farm->backends == 1) {
                    ngx_http_exchange_health_write(w,
                        " Every one went through mailbox server <b>");
                    ngx_http_exchange_health_write_escaped(w, farm->backend,
                                   farm->backend_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
                    ngx_http_exchange_health_write(w,
                        "</b>: its users fail through every front end. "
                        "Check its databases "
                        "(<code>Get-MailboxDatabaseCopyStatus -Server ");
                    ngx_http_exchange_health_write_escaped(w, farm->backend,
                                   farm->backend_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
                    ngx_http_exchange_health_write(w,
                        "</code>) and its services "
                        "(<code>Test-ServiceHealth</code>).");
                }

                ngx_http_exchange_health_html_failure(w, snap, &farm->last,
                                                      NULL);

                ngx_http_exchange_health_write(w, "</div>\n");
            }

            continue;
        }

        ngx_http_exchange_health_write(w,
            "<div class=\"fault\"><b>Farm-wide fault for %s</b> ",
            ngx_http_exchange_health_slot_name(up, p));
        ngx_http_exchange_health_html_when(w, snap->now, farm->since,
                                           "since");
        ngx_http_exchange_health_write(w,
            ": requests fail on every server they try, so no server is "
            "taken out. The cause is shared by all servers. The Auth "
            "certificate is one for the whole organisation: when it has "
            "expired, or a new one was made current without being "
            "published to every server, signed-in OWA and ECP fail "
            "everywhere (<code>Get-AuthConfig</code>, then "
            "<code>Get-ExchangeCertificate</code> with its "
            "<code>CurrentCertificateThumbprint</code>). Other shared "
            "causes: a failed update, Active Directory, a database.");

        ngx_http_exchange_health_html_failure(w, snap, &farm->last, NULL);

        ngx_http_exchange_health_write(w, "</div>\n");
    }
}


static void
ngx_http_exchange_health_html_server(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s)
{
    ngx_uint_t                           p, i, n, state, shown, nhints;
    const char                          *cls, *hint;
    ngx_http_exchange_health_slot_t     *slot;
    ngx_http_exchange_health_server_t   *rec;
    const char                          *hints[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];

    rec = &s->record;
    cls = s->severity == 2 ? "bad" : s->severity == 1 ? "warn" : "";

    ngx_http_exchange_health_write(w, "<article class=\"card %s\">\n<h3>",
                                   cls);

    if (rec->name.len) {
        ngx_http_exchange_health_write_escaped(w, rec->name.data,
                                   rec->name.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    } else {
        ngx_http_exchange_health_write_escaped(w, s->addr.data, s->addr.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    }

    ngx_http_exchange_health_write(w, " <span class=\"addr\">");
    ngx_http_exchange_health_write_escaped(w, s->addr.data, s->addr.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);

    if (rec->fqdn_len) {
        ngx_http_exchange_health_write(w, " &middot; ");
        ngx_http_exchange_health_write_escaped(w, rec->fqdn, rec->fqdn_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    }

    /*
     * A server that has answered and named no back end for minutes: its
     * farm strips the names, and sign-ins are proven by answers alone.
     */

    for (i = 0, n = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        n += rec->slot[i].requests;
    }

    if (n && snap->now - rec->backend_seen
             > NGX_HTTP_EXCHANGE_HEALTH_BACKEND_HEADERS)
    {
        ngx_http_exchange_health_write(w, " &middot; names no back end");
    }

    ngx_http_exchange_health_write(w, "%s</span></h3>\n",
                                   s->backup ? " &middot; backup" : "");

    ngx_http_exchange_health_html_certificate(w, snap, s);

    shown = 0;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

        if (!ngx_http_exchange_health_shown(up, s, p)) {
            continue;
        }

        if (shown++ == 0) {
            ngx_http_exchange_health_write(w,
                "<div class=\"scroll\"><table>\n<tr><th>protocol</th>"
                "<th>state</th><th>since</th><th>probe</th><th>requests</th>"
                "<th>failures</th><th>user failures</th><th>rescued</th>"
                "<th>ejections</th></tr>\n");
        }

        slot = &rec->slot[p];
        state = s->state[p];
        cls = ngx_http_exchange_health_severity(state) == 2 ? "bad"
              : ngx_http_exchange_health_severity(state) == 1 ? "warn"
              : state == NGX_HTTP_EXCHANGE_HEALTH_S_IDLE ? "idle" : "";

        ngx_http_exchange_health_write(w,
            "<tr><td>%s</td><td><span class=\"badge %s\">%s</span>",
            ngx_http_exchange_health_slot_name(up, p), cls,
            ngx_http_exchange_health_state_name(state));

        if (state == NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED) {
            ngx_http_exchange_health_write(w, " ");
            ngx_http_exchange_health_html_when(w, snap->now, s->until[p],
                                               "until");
        }

        ngx_http_exchange_health_write(w, "</td><td>");
        ngx_http_exchange_health_html_when(w, snap->now, slot->since,
                                           "since");
        ngx_http_exchange_health_write(w, "</td><td>");

        if (slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE) {
            ngx_http_exchange_health_write(w, "&ndash;");

        } else {
            ngx_http_exchange_health_write(w, "%s",
                          ngx_http_exchange_health_probe_name(slot->probe));

            if (slot->probe_fails > 1) {
                ngx_http_exchange_health_write(w, " &times;%ui",
                                           (ngx_uint_t) slot->probe_fails);
            }

            ngx_http_exchange_health_write(w, " ");
            ngx_http_exchange_health_html_when(w, snap->now,
                                               slot->probe_time, NULL);
        }

        ngx_http_exchange_health_write(w,
            "</td><td class=\"n\">%uA</td><td class=\"n\">%ui</td>"
            "<td class=\"n\">%ui</td><td class=\"n\">%ui</td>"
            "<td class=\"n\">%ui</td></tr>\n",
            slot->requests, (ngx_uint_t) slot->failures,
            (ngx_uint_t) slot->user_failures, (ngx_uint_t) slot->rescued,
            (ngx_uint_t) slot->ejections);
    }

    if (shown == 0) {
        ngx_http_exchange_health_write(w, "<p>No traffic yet.</p>\n");

    } else {
        ngx_http_exchange_health_write(w, "</table></div>\n");
    }

    ngx_http_exchange_health_html_signin(w, snap, up, s);

    /* why, for each protocol with a failure to tell; each hint once */

    nhints = 0;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

        if (!ngx_http_exchange_health_shown(up, s, p)
            || rec->slot[p].last.time == 0)
        {
            continue;
        }

        ngx_http_exchange_health_write(w, "<div class=\"why\">");
        ngx_http_exchange_health_html_failure(w, snap, &rec->slot[p].last,
                                   ngx_http_exchange_health_slot_name(up, p));
        ngx_http_exchange_health_write(w, "</div>\n");

        hint = ngx_http_exchange_health_hint(up, s, p);

        if (hint == NULL || !ngx_http_exchange_health_severity(s->state[p])) {
            continue;
        }

        for (i = 0; i < nhints; i++) {
            if (hints[i] == hint) {
                break;
            }
        }

        if (i < nhints) {
            continue;
        }

        hints[nhints++] = hint;
        ngx_http_exchange_health_html_hint(w, hint);
    }

    ngx_http_exchange_health_write(w, "</article>\n");
}


static void
ngx_http_exchange_health_html_signin(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s)
{
    ngx_uint_t                                 p, n;
    const char                                *cls;
    ngx_http_exchange_health_signin_result_t  *sr;

    /* the mailbox it signs in as, never more of its credentials */

    for (p = 0, n = 0; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS; p++) {

        sr = ngx_http_exchange_health_signin_shown(up, s, p);
        if (sr == NULL) {
            continue;
        }

        if (n++ == 0) {
            ngx_http_exchange_health_write(w, "<p class=\"signin\">"
                                           "Signed-in probe as <b>");
            ngx_http_exchange_health_write_escaped(w,
                                  up->conf->signin->user.data,
                                  up->conf->signin->user.len,
                                  NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
            ngx_http_exchange_health_write(w, "</b>:");
        }

        cls = sr->result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK ? ""
              : sr->result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED ? "bad"
              : "warn";

        ngx_http_exchange_health_write(w, " %s <span class=\"badge %s\">%s"
                         "</span> ", ngx_http_exchange_health_protocols[p].name,
                         cls, ngx_http_exchange_health_signin_name(sr->result));
        ngx_http_exchange_health_html_when(w, snap->now, sr->time, NULL);

        if (sr->why[0]) {
            ngx_http_exchange_health_write(w, " (");
            ngx_http_exchange_health_write_escaped(w, sr->why,
                                       ngx_strnlen(sr->why, sizeof(sr->why)),
                                       NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
            ngx_http_exchange_health_write(w, ")");
        }

        ngx_http_exchange_health_write(w, ";");
    }

    if (n) {
        ngx_http_exchange_health_write(w, "</p>\n");
    }
}


static void
ngx_http_exchange_health_html_certificate(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_server_t *s)
{
    ngx_tm_t                            tm;
    ngx_http_exchange_health_server_t  *rec;

    rec = &s->record;

    if (rec->cert_thumbprint_len == 0) {
        return;
    }

    ngx_http_exchange_health_write(w, "<p class=\"cert\">Certificate <code>");
    ngx_http_exchange_health_write_escaped(w, rec->cert_subject,
                                   rec->cert_subject_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    ngx_http_exchange_health_write(w, "</code>, thumbprint <code>");
    ngx_http_exchange_health_write_escaped(w, rec->cert_thumbprint,
                                   rec->cert_thumbprint_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    ngx_http_exchange_health_write(w, "</code>");

    if (rec->cert_not_after) {
        ngx_gmtime(rec->cert_not_after, &tm);
        ngx_http_exchange_health_write(w,
            ", expires %4d-%02d-%02d (%s%T d)",
            tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
            rec->cert_not_after > snap->now ? "in " : "",
            (rec->cert_not_after - snap->now) / 86400);
    }

    if (s->cert_expiring) {
        ngx_http_exchange_health_write(w,
            " &middot; <b>expires soon: renew it on every server</b>");
    }

    if (s->cert_differs) {
        ngx_http_exchange_health_write(w,
            " &middot; <b>not the certificate the other servers present: "
            "Extended Protection needs the same one on all</b>");
    }

    ngx_http_exchange_health_write(w, "</p>\n");
}


static void
ngx_http_exchange_health_html_failure(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_failure_t *f, const char *where)
{
    if (f->time == 0) {
        return;
    }

    ngx_http_exchange_health_write(w, " <b>Last failure%s%s</b> ",
                                   where ? " for " : "", where ? where : "");
    ngx_http_exchange_health_html_when(w, snap->now, f->time, "at");
    ngx_http_exchange_health_write(w, ": rule <code>");
    ngx_http_exchange_health_html_text(w, f->rule, sizeof(f->rule));
    ngx_http_exchange_health_write(w, "</code> matched <code>");
    ngx_http_exchange_health_html_text(w, f->method, sizeof(f->method));
    ngx_http_exchange_health_write(w, " ");
    ngx_http_exchange_health_html_text(w, f->uri, sizeof(f->uri));
    ngx_http_exchange_health_write(w, "</code>");

    if (f->status) {
        ngx_http_exchange_health_write(w, ", status %ui",
                                       (ngx_uint_t) f->status);
    }

    if (f->error[0]) {
        ngx_http_exchange_health_write(w, ", error <code>");
        ngx_http_exchange_health_html_text(w, f->error, sizeof(f->error));
        ngx_http_exchange_health_write(w, "</code>");
    }
}


static void
ngx_http_exchange_health_html_hint(ngx_http_exchange_health_writer_t *w,
    const char *hint)
{
    ngx_uint_t   code;
    const char  *p, *q;

    ngx_http_exchange_health_write(w,
                            "<div class=\"hint\"><b>What to check:</b> ");

    for (p = hint, code = 0; *p; p = q + (*q != '\0'), code = !code) {
        q = ngx_strchr(p, '`');
        if (q == NULL) {
            q = p + ngx_strlen(p);
        }

        ngx_http_exchange_health_write(w, code ? "<code>" : "");
        ngx_http_exchange_health_write_escaped(w, (u_char *) p, q - p,
                                        NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
        ngx_http_exchange_health_write(w, code ? "</code>" : "");
    }

    ngx_http_exchange_health_write(w, "</div>\n");
}


static void
ngx_http_exchange_health_html_text(ngx_http_exchange_health_writer_t *w,
    u_char *s, size_t max)
{
    ngx_http_exchange_health_write_escaped(w, s,
                                   ngx_strnlen(s, max),
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
}


static void
ngx_http_exchange_health_html_when(ngx_http_exchange_health_writer_t *w,
    time_t now, time_t t, const char *word)
{
    time_t     d;
    ngx_tm_t   tm;
    ngx_int_t  future;

    /* "since 10:42 (7 min)", "until 10:50 (in 1 min)" */

    ngx_localtime(t, &tm);

    future = t > now;
    d = future ? t - now : now - t;

    ngx_http_exchange_health_write(w, "%s%s%02d:%02d (%s",
                                   word ? word : "", word ? " " : "",
                                   tm.ngx_tm_hour, tm.ngx_tm_min,
                                   future ? "in " : "");

    if (d < 60) {
        ngx_http_exchange_health_write(w, "%T s", d);

    } else if (d < 3600) {
        ngx_http_exchange_health_write(w, "%T min", d / 60);

    } else if (d < 86400) {
        ngx_http_exchange_health_write(w, "%T h %T min", d / 3600,
                                       d % 3600 / 60);

    } else {
        ngx_http_exchange_health_write(w, "%T d %T h", d / 86400,
                                       d % 86400 / 3600);
    }

    ngx_http_exchange_health_write(w, ")");
}

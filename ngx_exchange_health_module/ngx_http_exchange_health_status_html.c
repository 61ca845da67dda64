
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
#define NGX_HTTP_EXCHANGE_HEALTH_LISTED   8     /* servers in a sentence */


static void ngx_http_exchange_health_html_upstream(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_html_farm(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_html_users(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up);
static void ngx_http_exchange_health_html_legend(
    ngx_http_exchange_health_writer_t *w);


static u_char  ngx_http_exchange_health_style[] =
"<style>\n"
"body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
"margin:0;background:#f4f5f7;color:#1d2125}\n"
"header{padding:14px 18px;color:#fff;background:#1f7a3a}\n"
"header.bad{background:#b3261e}\n"
"header.warn{background:#8a5a00}\n"
"h1{font-size:20px;margin:0}\n"
"header p{margin:4px 0 0}\n"
"main{padding:8px 12px;max-width:1100px;box-sizing:border-box}\n"
"h1,h2,h3,header p,.why,.hint,.cert,.users{overflow-wrap:anywhere}\n"
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
".proto{margin:8px 0 0;padding-top:6px;border-top:1px solid #eceef1}\n"
".ph{display:flex;flex-wrap:wrap;gap:2px 10px;align-items:baseline}\n"
".ph b{min-width:3.5em}\n"
".counts{display:flex;flex-wrap:wrap;gap:0 12px;font-size:13px;"
"color:#44546f}\n"
".counts span{white-space:nowrap}\n"
".counts span.pr{white-space:normal;overflow-wrap:anywhere}\n"
"svg.tl{display:block;width:100%;height:30px;margin-top:4px;"
"background:#eceef1;border-radius:3px}\n"
".axis{display:flex;justify-content:space-between;font-size:12px;"
"color:#5e6c84}\n"
".users{background:#fff;border-radius:8px;margin:10px 0;padding:8px 14px}\n"
".legend{font-size:13px;color:#44546f;padding:0 6px;list-style:none}\n"
".legend li{margin:2px 0}\n"
".legend svg{vertical-align:-1px;margin-right:6px}\n"
".s1{fill:#1f7a3a}.s2{fill:#e0a400}.s3,.s4,.s5{fill:#8993a4}"
".s6{fill:#d9480f}.s7,.s9{fill:#b3261e}.s8{fill:#7b3fb0}"
".s10{fill:#5c0b07}.fl{fill:#b3261e}.rs{fill:#1d5fbf}\n"
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

    ngx_http_exchange_health_write(w, " &middot; ");
    ngx_http_exchange_health_html_at(w, 0, snap->now, "updated");
    ngx_http_exchange_health_write(w, "</p>\n</header>\n<main>\n");

    if (snap->nupstreams == 0) {
        ngx_http_exchange_health_write(w,
            "<p>No upstream uses exchange_health.</p>\n");
    }

    for (i = 0; i < snap->nupstreams; i++) {
        ngx_http_exchange_health_html_upstream(w, snap, &snap->upstreams[i]);
    }

    if (snap->nservers) {
        ngx_http_exchange_health_html_legend(w);
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

    if (up->record.timeline_full) {
        ngx_http_exchange_health_write(w,
            "<div class=\"card warn\">Some timelines are missing: the "
            "zone has no room for them. Make it bigger and reload."
            "</div>\n");
    }

    ngx_http_exchange_health_html_users(w, snap, up);
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
        ngx_http_exchange_health_html_at(w, snap->now, farm->since, "since");
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
ngx_http_exchange_health_html_users(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up)
{
    ngx_str_t                                name;
    ngx_uint_t                               i, p, n, nin, nout, rescued;
    ngx_uint_t                               out[
                                          NGX_HTTP_EXCHANGE_HEALTH_LISTED];
    ngx_http_exchange_health_minutes_t       mn;
    ngx_http_exchange_health_snap_server_t  *s;

    /*
     * What users see now, in a line: who serves them, who is out and for
     * what, and how many requests a retry saved in the last hour; at
     * most NGX_HTTP_EXCHANGE_HEALTH_LISTED servers named, in the order
     * of the cards.
     */

    ngx_http_exchange_health_write(w, "<p class=\"users\">");

    for (p = 0, n = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        if (up->record.farm[p].fault) {
            ngx_http_exchange_health_write(w, "%s%s",
                                    n++ ? ", " : "<b>Users of ",
                                    ngx_http_exchange_health_slot_name(up, p));
        }
    }

    if (n) {
        ngx_http_exchange_health_write(w,
            " see errors</b>: every server fails them alike. ");
    }

    nin = 0;
    nout = 0;
    rescued = 0;

    for (i = 0; i < up->nservers; i++) {
        s = &up->servers[i];

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
            if (s->line[p]) {
                ngx_http_exchange_health_timeline_minutes(snap, up, s, p,
                                                          &mn);
                rescued += mn.hour_rescued;
            }
        }

        if (ngx_http_exchange_health_html_out(w, up, s, 0)) {
            if (nout < NGX_HTTP_EXCHANGE_HEALTH_LISTED) {
                out[nout] = i;
            }

            nout++;

        } else if (!s->backup) {
            nin++;
        }
    }

    if (nin == 0) {
        ngx_http_exchange_health_write(w,
            "<b>No primary server serves every protocol</b>");
    }

    for (i = 0, n = 0; i < up->nservers && nin; i++) {
        s = &up->servers[i];

        if (s->backup || ngx_http_exchange_health_html_out(w, up, s, 0)) {
            continue;
        }

        n++;

        if (n > NGX_HTTP_EXCHANGE_HEALTH_LISTED) {
            ngx_http_exchange_health_write(w, " and %ui more",
                                    nin - NGX_HTTP_EXCHANGE_HEALTH_LISTED);
            break;
        }

        ngx_http_exchange_health_write(w, "%s", n == 1
                                 ? "Users are served by "
                                 : n == nin ? " and " : ", ");

        name = ngx_http_exchange_health_server_name(s);
        ngx_http_exchange_health_write_escaped(w, name.data, name.len,
                                       NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    }

    for (i = 0; i < ngx_min(nout, NGX_HTTP_EXCHANGE_HEALTH_LISTED); i++) {
        s = &up->servers[out[i]];
        name = ngx_http_exchange_health_server_name(s);

        ngx_http_exchange_health_write(w, "; ");
        ngx_http_exchange_health_write_escaped(w, name.data, name.len,
                                       NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
        ngx_http_exchange_health_write(w, " is out for");
        (void) ngx_http_exchange_health_html_out(w, up, s, 1);
    }

    if (nout > NGX_HTTP_EXCHANGE_HEALTH_LISTED) {
        ngx_http_exchange_health_write(w, "; %ui more out",
                                    nout - NGX_HTTP_EXCHANGE_HEALTH_LISTED);
    }

    ngx_http_exchange_health_write(w,
        "%s; %ui request%s rescued in the last hour</p>\n",
        nout ? " (their users go to the others)" : "", rescued,
        rescued == 1 ? "" : "s");
}


static void
ngx_http_exchange_health_html_legend(ngx_http_exchange_health_writer_t *w)
{
    ngx_uint_t                         i;
    ngx_http_exchange_health_state_t  *st;

    /* the timeline's colours, with the states' own words (status.c) */

    ngx_http_exchange_health_write(w,
        "<ul class=\"legend\" id=\"legend\"><li>The timelines show up to "
        "the last %d hours (since nginx started, at least half an hour), "
        "a minute a column:</li>\n", NGX_HTTP_EXCHANGE_HEALTH_MINUTES / 60);

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_S_N; i++) {
        st = &ngx_http_exchange_health_states[i];

        /* never drawn: no traffic is no colour, awaiting is ejected */

        if (st->value == NGX_HTTP_EXCHANGE_HEALTH_S_IDLE
            || st->value == NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING)
        {
            continue;
        }

        ngx_http_exchange_health_write(w,
            "<li><svg width=\"12\" height=\"12\"><rect class=\"s%ui\" "
            "width=\"12\" height=\"12\"/></svg><b>%s</b>: %s</li>\n",
            st->value, st->name, st->help);
    }

    ngx_http_exchange_health_write(w,
        "<li><svg width=\"12\" height=\"12\"><rect class=\"fl\" width=\"12\" "
        "height=\"12\"/></svg>failures and <svg width=\"12\" height=\"12\">"
        "<rect class=\"rs\" width=\"12\" height=\"12\"/></svg>requests "
        "rescued in a minute, under the band</li>\n</ul>\n");
}

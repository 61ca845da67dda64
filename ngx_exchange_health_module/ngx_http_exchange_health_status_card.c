
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * A server's card on the helpdesk's page: its name (the address once),
 * each protocol's state with since when the fault lasts, the probe and
 * why it failed, the counts and the timeline, the last failure and what
 * to check; and the times of the page, with their date and time zone.
 * Lines wrap: a card fits a phone's 390 pixels.
 */


static void ngx_http_exchange_health_html_protocol(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p);
static void ngx_http_exchange_health_html_signin(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s);
static void ngx_http_exchange_health_html_certificate(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_server_t *s);
static void ngx_http_exchange_health_html_hint(
    ngx_http_exchange_health_writer_t *w, const char *hint);
static void ngx_http_exchange_health_html_text(
    ngx_http_exchange_health_writer_t *w, u_char *s, size_t max);
static void ngx_http_exchange_health_html_when(
    ngx_http_exchange_health_writer_t *w, time_t now, time_t t,
    const char *word);
static void ngx_http_exchange_health_html_ago(
    ngx_http_exchange_health_writer_t *w, time_t now, time_t t);


void
ngx_http_exchange_health_html_server(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s)
{
    ngx_str_t                            name;
    ngx_uint_t                           p, i, n, shown, nhints;
    const char                          *cls, *hint, *sep;
    ngx_http_exchange_health_server_t   *rec;
    const char                          *hints[
                                          NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS];

    rec = &s->record;
    cls = s->severity == 2 ? "bad" : s->severity == 1 ? "warn" : "";

    ngx_http_exchange_health_write(w, "<article class=\"card %s\">\n<h3>",
                                   cls);

    /* its name, else the configuration's; the address once, never twice */

    name = ngx_http_exchange_health_server_name(s);

    ngx_http_exchange_health_write_escaped(w, name.data, name.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
    ngx_http_exchange_health_write(w, " <span class=\"addr\">");

    sep = "";

    if (name.data != s->addr.data) {
        ngx_http_exchange_health_write_escaped(w, s->addr.data, s->addr.len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
        sep = " &middot; ";
    }

    if (rec->fqdn_len) {
        ngx_http_exchange_health_write(w, "%s", sep);
        ngx_http_exchange_health_write_escaped(w, rec->fqdn, rec->fqdn_len,
                                   NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
        sep = " &middot; ";
    }

    /*
     * A server that has answered and named no back end for minutes: its
     * farm strips the names, and sign-ins are proven by answers alone.
     * One never named (no X-FEServer, no probe's FQDN) never answered.
     */

    for (i = 0, n = 0; i < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; i++) {
        n += rec->slot[i].requests;
    }

    if (n && (rec->name.len || rec->fqdn_len)
        && snap->now - rec->backend_seen
           > NGX_HTTP_EXCHANGE_HEALTH_BACKEND_HEADERS)
    {
        ngx_http_exchange_health_write(w, "%snames no back end", sep);
        sep = " &middot; ";
    }

    ngx_http_exchange_health_write(w, "%s%s</span></h3>\n",
                                   s->backup ? sep : "",
                                   s->backup ? "backup" : "");

    ngx_http_exchange_health_html_certificate(w, snap, s);

    shown = 0;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

        if (!ngx_http_exchange_health_shown(up, s, p)) {
            continue;
        }

        shown++;
        ngx_http_exchange_health_html_protocol(w, snap, up, s, p);
    }

    if (shown == 0) {
        ngx_http_exchange_health_write(w, "<p>No traffic yet.</p>\n");
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


ngx_uint_t
ngx_http_exchange_health_html_out(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t say)
{
    ngx_uint_t  p, n;

    /* the protocols it takes no request of; said when asked */

    for (p = 0, n = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {

        if (!ngx_http_exchange_health_shown(up, s, p)
            || ngx_http_exchange_health_in_service(s->state[p]))
        {
            continue;
        }

        if (say) {
            ngx_http_exchange_health_write(w, "%s %s", n ? "," : "",
                                    ngx_http_exchange_health_slot_name(up, p));
        }

        n++;
    }

    return n;
}


static void
ngx_http_exchange_health_html_protocol(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p)
{
    ngx_tm_t                             tm;
    ngx_str_t                            why;
    ngx_uint_t                           state, severity;
    const char                          *cls;
    ngx_http_exchange_health_slot_t     *slot;
    ngx_http_exchange_health_line_t     *line;
    ngx_http_exchange_health_minutes_t   mn;

    /*
     * A protocol's state, when its incident began, the probe and why it
     * failed, the counts, and the timeline: lines that wrap, so a card
     * fits a phone's width.
     */

    slot = &s->record.slot[p];
    line = s->line[p];
    state = s->state[p];
    severity = ngx_http_exchange_health_severity(state);
    cls = severity == 2 ? "bad" : severity == 1 ? "warn"
          : state == NGX_HTTP_EXCHANGE_HEALTH_S_IDLE ? "idle" : "";

    ngx_http_exchange_health_write(w,
        "<div class=\"proto\">\n<div class=\"ph\"><b>%s</b>"
        "<span><span class=\"badge %s\">%s</span>",
        ngx_http_exchange_health_slot_name(up, p), cls,
        ngx_http_exchange_health_state_name(state));

    if (state == NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED) {
        ngx_http_exchange_health_write(w, " ");
        ngx_http_exchange_health_html_when(w, snap->now, s->until[p],
                                           "until");
    }

    ngx_http_exchange_health_write(w, "</span><span class=\"since\">");

    /* while a fault lasts, since when: not its last change of state */

    if (severity && line && line->incident) {
        ngx_http_exchange_health_html_at(w, snap->now, line->incident,
                                         "fault since");

    } else {
        ngx_http_exchange_health_html_at(w, snap->now, slot->since, "since");
    }

    ngx_http_exchange_health_write(w, "</span></div>\n<div class=\"counts\">");

    if (slot->probe != NGX_HTTP_EXCHANGE_HEALTH_PROBE_NONE) {
        ngx_http_exchange_health_write(w, "<span class=\"pr\">probe %s",
                          ngx_http_exchange_health_probe_name(slot->probe));

        if (slot->probe_fails > 1) {
            ngx_http_exchange_health_write(w, " &times;%ui",
                                           (ngx_uint_t) slot->probe_fails);
        }

        ngx_http_exchange_health_write(w, " ");
        ngx_http_exchange_health_html_when(w, snap->now, slot->probe_time,
                                           NULL);

        why = ngx_http_exchange_health_probe_why(s, p);

        if (why.len) {
            ngx_http_exchange_health_write(w, ": <i class=\"why-probe\">");
            ngx_http_exchange_health_write_escaped(w, why.data, why.len,
                                       NGX_HTTP_EXCHANGE_HEALTH_ESCAPE_HTML);
            ngx_http_exchange_health_write(w, "</i>");
        }

        ngx_http_exchange_health_write(w, "</span>");
    }

    ngx_http_exchange_health_write(w,
        "<span>%uA request%s</span><span>%ui failure%s</span>"
        "<span>%ui user failure%s</span><span>%ui rescued</span>"
        "<span>%ui ejection%s</span></div>\n",
        slot->requests, slot->requests == 1 ? "" : "s",
        (ngx_uint_t) slot->failures, slot->failures == 1 ? "" : "s",
        (ngx_uint_t) slot->user_failures, slot->user_failures == 1 ? "" : "s",
        (ngx_uint_t) slot->rescued,
        (ngx_uint_t) slot->ejections, slot->ejections == 1 ? "" : "s");

    ngx_http_exchange_health_timeline_minutes(snap, up, s, p, &mn);
    ngx_http_exchange_health_svg_timeline(w, &mn);

    ngx_localtime(mn.start, &tm);

    ngx_http_exchange_health_write(w,
        "<div class=\"axis\"><span>%02d:%02d</span>"
        "<span>%ui failures, %ui rescued</span><span>now</span></div>\n"
        "</div>\n", tm.ngx_tm_hour, tm.ngx_tm_min, mn.total_failures,
        mn.total_rescued);
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


void
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
    ngx_tm_t  tm;

    /* "until 10:50 (in 1 min)": soon, today */

    ngx_localtime(t, &tm);

    ngx_http_exchange_health_write(w, "%s%s%02d:%02d ",
                                   word ? word : "", word ? " " : "",
                                   tm.ngx_tm_hour, tm.ngx_tm_min);
    ngx_http_exchange_health_html_ago(w, now, t);
}


void
ngx_http_exchange_health_html_at(ngx_http_exchange_health_writer_t *w,
    time_t now, time_t t, const char *word)
{
    ngx_tm_t   tm;
    ngx_int_t  off;

    /*
     * "since 2026-12-05 06:14:31 UTC+01:00 (7 min)": a screenshot sent
     * on, or read the next morning, says the day and the time zone.
     * Without now, no "(7 min)".
     */

    ngx_localtime(t, &tm);

#if (NGX_HAVE_GMTOFF)
    off = (ngx_int_t) (tm.ngx_tm_gmtoff / 60);
#else
    off = ngx_timezone(tm.ngx_tm_isdst);
#endif

    ngx_http_exchange_health_write(w,
        "%s <time datetime=\"%4d-%02d-%02dT%02d:%02d:%02d%c%02i:%02i\">"
        "%4d-%02d-%02d %02d:%02d:%02d UTC",
        word, tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
        tm.ngx_tm_min, tm.ngx_tm_sec, off < 0 ? '-' : '+',
        ngx_abs(off) / 60, ngx_abs(off) % 60, tm.ngx_tm_year,
        tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour, tm.ngx_tm_min,
        tm.ngx_tm_sec);

    if (off) {
        ngx_http_exchange_health_write(w, "%c%02i:%02i", off < 0 ? '-' : '+',
                                       ngx_abs(off) / 60, ngx_abs(off) % 60);
    }

    ngx_http_exchange_health_write(w, "</time>");

    if (now) {
        ngx_http_exchange_health_write(w, " ");
        ngx_http_exchange_health_html_ago(w, now, t);
    }
}


static void
ngx_http_exchange_health_html_ago(ngx_http_exchange_health_writer_t *w,
    time_t now, time_t t)
{
    time_t     d;
    ngx_int_t  future;

    /* "(7 min)", "(in 1 min)" */

    future = t > now;
    d = future ? t - now : now - t;

    ngx_http_exchange_health_write(w, "(%s", future ? "in " : "");

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

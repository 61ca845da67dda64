
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_status.h"


/*
 * The timeline as the status page and the JSON read it: the minutes of
 * the last hours of a server and protocol, from its copied line
 * (timeline.c records it), and its picture, an SVG drawn here: a band of
 * states, and under it the failures and rescued requests of each minute.
 * Nothing in it comes from a server or a client but numbers: the
 * picture's size depends on the number of changes, at most one a minute.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_BAND    14     /* the states' band */
#define NGX_HTTP_EXCHANGE_HEALTH_BARS    10     /* the counts' bars */
#define NGX_HTTP_EXCHANGE_HEALTH_HEIGHT                                      \
    (NGX_HTTP_EXCHANGE_HEALTH_BAND + 2 + NGX_HTTP_EXCHANGE_HEALTH_BARS)
#define NGX_HTTP_EXCHANGE_HEALTH_MINUTES_SHOWN  30     /* at least */


static void ngx_http_exchange_health_svg_runs(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn);
static void ngx_http_exchange_health_svg_bars(
    ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn, ngx_uint_t rescued);


void
ngx_http_exchange_health_timeline_minutes(
    ngx_http_exchange_health_snapshot_t *snap,
    ngx_http_exchange_health_snap_upstream_t *up,
    ngx_http_exchange_health_snap_server_t *s, ngx_uint_t p,
    ngx_http_exchange_health_minutes_t *mn)
{
    time_t                              t;
    ngx_uint_t                          i, state, carry, count;
    ngx_http_exchange_health_line_t    *line;
    ngx_http_exchange_health_minute_t  *m;

    /*
     * From now back: a minute with a record is its worst state (failing
     * when it counted failures), and the state it began in is the state
     * of the minutes before it that have none.  Minutes before the zone
     * had the upstream are not recorded (0).
     */

    ngx_memzero(mn, sizeof(ngx_http_exchange_health_minutes_t));

    /*
     * As long as the zone has had the upstream, and at least half an
     * hour: a zone just made is not drawn as hours of nothing.
     */

    mn->n = (ngx_uint_t) (snap->now / 60 - up->record.created / 60) + 1;
    mn->n = ngx_max(mn->n, NGX_HTTP_EXCHANGE_HEALTH_MINUTES_SHOWN);
    mn->n = ngx_min(mn->n, NGX_HTTP_EXCHANGE_HEALTH_MINUTES);
    mn->start = (snap->now / 60 - (time_t) (mn->n - 1)) * 60;

    line = s->line[p];

    /* nothing happened to it: as it is now, as a timeline says it */

    carry = line ? line->state
                 : ngx_http_exchange_health_timeline_state(s->state[p]);

    for (i = mn->n; i-- > 0; /* void */) {
        t = mn->start + (time_t) i * 60;

        if (t + 60 <= up->record.created) {
            break;
        }

        if (line && ngx_http_exchange_health_timeline_at(line, t, &m)) {
            state = m->worst;

            if (m->failures && state < NGX_HTTP_EXCHANGE_HEALTH_S_FAILING) {
                state = NGX_HTTP_EXCHANGE_HEALTH_S_FAILING;
            }

            mn->failures[i] = m->failures;
            mn->rescued[i] = m->rescued;
            mn->total_failures += m->failures;
            mn->total_rescued += m->rescued;

            if (i + 60 >= mn->n) {
                mn->hour_rescued += m->rescued;
            }

            count = (ngx_uint_t) m->failures + m->rescued;

            if (count > mn->most) {
                mn->most = count;
            }

            carry = m->from;

        } else {
            state = carry;
        }

        mn->state[i] = (u_char) state;
    }
}


void
ngx_http_exchange_health_svg_timeline(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn)
{
    /*
     * Scaled to the width of its box (no text in it to stretch): a
     * minute a unit, a phone's 300 pixels or a laptop's 900 alike.
     */

    ngx_http_exchange_health_write(w,
        "<svg class=\"tl\" viewBox=\"0 0 %ui %d\" "
        "preserveAspectRatio=\"none\" role=\"img\" "
        "aria-label=\"the last %ui minutes\">",
        mn->n, NGX_HTTP_EXCHANGE_HEALTH_HEIGHT, mn->n);

    ngx_http_exchange_health_svg_runs(w, mn);

    if (mn->total_failures) {
        ngx_http_exchange_health_svg_bars(w, mn, 0);
    }

    if (mn->total_rescued) {
        ngx_http_exchange_health_svg_bars(w, mn, 1);
    }

    ngx_http_exchange_health_write(w, "</svg>");
}


static void
ngx_http_exchange_health_svg_runs(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn)
{
    time_t      t;
    ngx_tm_t    from, to;
    ngx_uint_t  i, j;

    /* a rectangle for each run of one state, named on hover */

    for (i = 0; i < mn->n; i = j) {

        for (j = i + 1; j < mn->n && mn->state[j] == mn->state[i]; j++)
        {
            /* void */
        }

        if (mn->state[i] == 0) {
            continue;
        }

        t = mn->start + (time_t) i * 60;
        ngx_localtime(t, &from);
        ngx_localtime(t + (time_t) (j - i) * 60, &to);

        ngx_http_exchange_health_write(w,
            "<rect class=\"s%d\" x=\"%ui\" width=\"%ui\" height=\"%d\">"
            "<title>%s %02d:%02d&ndash;%02d:%02d</title></rect>",
            (int) mn->state[i], i, j - i, NGX_HTTP_EXCHANGE_HEALTH_BAND,
            ngx_http_exchange_health_state_name(mn->state[i]),
            from.ngx_tm_hour, from.ngx_tm_min, to.ngx_tm_hour,
            to.ngx_tm_min);
    }
}


static void
ngx_http_exchange_health_svg_bars(ngx_http_exchange_health_writer_t *w,
    ngx_http_exchange_health_minutes_t *mn, ngx_uint_t rescued)
{
    ngx_uint_t  i, below, n, h, bottom;

    /*
     * One path for each kind, a bar a minute, failures at the bottom
     * and rescued requests on them, to the scale of the busiest minute.
     */

    bottom = NGX_HTTP_EXCHANGE_HEALTH_HEIGHT;

    ngx_http_exchange_health_write(w, "<path class=\"%s\" d=\"",
                                   rescued ? "rs" : "fl");

    for (i = 0; i < mn->n; i++) {
        n = rescued ? mn->rescued[i] : mn->failures[i];

        if (n == 0) {
            continue;
        }

        below = rescued ? mn->failures[i] : 0;
        below = (below * NGX_HTTP_EXCHANGE_HEALTH_BARS + mn->most - 1)
                / mn->most;
        h = (n * NGX_HTTP_EXCHANGE_HEALTH_BARS + mn->most - 1) / mn->most;

        if (below + h > NGX_HTTP_EXCHANGE_HEALTH_BARS) {
            h = NGX_HTTP_EXCHANGE_HEALTH_BARS - below;
        }

        if (h == 0) {
            continue;
        }

        ngx_http_exchange_health_write(w, "M%ui %uiv-%uih1v%uiz", i,
                                       bottom - below, h, h);
    }

    ngx_http_exchange_health_write(w, "\"><title>%s a minute</title></path>",
                                   rescued ? "requests rescued"
                                           : "failures");
}

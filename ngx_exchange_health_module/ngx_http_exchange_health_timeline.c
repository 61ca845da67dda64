
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * The timeline of each server and protocol, for the status page: a
 * record a minute of the last NGX_HTTP_EXCHANGE_HEALTH_MINUTES, with the
 * state the minute began in, the worst it was in, and the failures and
 * rescued requests counted in it; and when the incident began, which is
 * not the last change of state (a failed trial is a change, not a new
 * fault).
 *
 * Only what state.c does under the zone's lock is recorded: a change of
 * state, a failure, a rescue, a probe.  A healthy answer records
 * nothing, so the healthy request's path does not pay for it.  A line is
 * made in the zone the first time something happens to a server for a
 * protocol; a zone without room for it goes without (the status page
 * says so).  A record holds its minute, so one of a minute gone by is
 * never read as this minute's: the ring needs no clearing.
 *
 * "failing" is a minute with failures, never carried into the minutes
 * after it, and "awaiting trial" is drawn as ejected: the window of
 * failures and the end of an ejection pass without an event to record.
 */


typedef char  ngx_http_exchange_health_line_fits_2k[
    sizeof(ngx_http_exchange_health_line_t) <= 2048 ? 1 : -1];


static ngx_http_exchange_health_line_t *ngx_http_exchange_health_line_locked(
    ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_slot_t *slot);
static ngx_http_exchange_health_minute_t *
    ngx_http_exchange_health_minute_locked(
    ngx_http_exchange_health_line_t *line, time_t now);


ngx_uint_t
ngx_http_exchange_health_slot_state(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_slot_t *slot, ngx_uint_t p, ngx_msec_t now)
{
    /*
     * The state the helpdesk is told, from a slot and its farm: the
     * status page's reading of a copy and the timeline's of the zone.
     */

    if (up->farm[p].fault) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_FARM_FAULT;
    }

    if (slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_MAINTENANCE;
    }

    if (slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_DRAINING;
    }

    if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {

        if ((ngx_msec_int_t) (slot->until - now) > 0) {
            return NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED;
        }

        if (ngx_http_exchange_health_trial_pending(slot, now)) {
            return NGX_HTTP_EXCHANGE_HEALTH_S_TRIAL;
        }

        return NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING;
    }

    if (slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_INACTIVE;
    }

    if (ngx_http_exchange_health_drained(conf, slot)) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_PROBE_FAILING;
    }

    if (ngx_http_exchange_health_window_live(&slot->window, conf, now)) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_FAILING;
    }

    if (slot->requests || slot->failures || slot->user_failures
        || slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY;
    }

    return NGX_HTTP_EXCHANGE_HEALTH_S_IDLE;
}


ngx_uint_t
ngx_http_exchange_health_timeline_state(ngx_uint_t state)
{
    /* see above: failing is the minute's failures, awaiting is ejected */

    if (state == NGX_HTTP_EXCHANGE_HEALTH_S_FAILING
        || state == NGX_HTTP_EXCHANGE_HEALTH_S_IDLE)
    {
        return NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY;
    }

    if (state == NGX_HTTP_EXCHANGE_HEALTH_S_AWAITING) {
        return NGX_HTTP_EXCHANGE_HEALTH_S_EJECTED;
    }

    return state;
}


void
ngx_http_exchange_health_timeline_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, ngx_uint_t p,
    ngx_uint_t what)
{
    time_t                              now;
    ngx_uint_t                          state;
    ngx_http_exchange_health_slot_t    *slot;
    ngx_http_exchange_health_line_t    *line;
    ngx_http_exchange_health_minute_t  *m;

    if (conf->servers[peer] == NULL) {
        return;
    }

    slot = &conf->servers[peer]->slot[p];

    line = ngx_http_exchange_health_line_locked(conf, slot);
    if (line == NULL) {
        return;
    }

    now = ngx_time();
    m = ngx_http_exchange_health_minute_locked(line, now);

    state = ngx_http_exchange_health_timeline_state(
                ngx_http_exchange_health_slot_state(conf, conf->sh, slot, p,
                                                    ngx_current_msec));

    switch (what) {

    case NGX_HTTP_EXCHANGE_HEALTH_T_FAILURE:
        m->failures += (m->failures < 65535);

        /*
         * A fault begins with a failure of a server in service when none
         * is counted in the window before it: failures that never ejected
         * it do not make the next one, days later, the same incident.
         */

        if (line->incident == 0
            || (state == NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY
                && (ngx_msec_t) (now - line->last_failure) * 1000
                   > conf->window))
        {
            line->incident = now;
        }

        line->last_failure = now;
        break;

    case NGX_HTTP_EXCHANGE_HEALTH_T_RESCUED:
        m->rescued += (m->rescued < 65535);
        break;

    default: /* NGX_HTTP_EXCHANGE_HEALTH_T_STATE */

        /* back in service: the incident is over */

        if (state == NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY) {
            line->incident = 0;

        } else if (line->incident == 0
                   && state != NGX_HTTP_EXCHANGE_HEALTH_S_DRAINING
                   && state != NGX_HTTP_EXCHANGE_HEALTH_S_MAINTENANCE)
        {
            line->incident = now;
        }
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: timeline of peer %ui, slot %ui: %ui, "
                   "state %ui, incident %T", peer, p, what, state,
                   line->incident);

    if (state > m->worst) {
        m->worst = (uint8_t) state;
    }

    line->state = (uint8_t) state;
}


void
ngx_http_exchange_health_timeline_probe_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, ngx_uint_t p,
    ngx_uint_t result, u_char *why)
{
    size_t                            len;
    ngx_http_exchange_health_slot_t  *slot;
    ngx_http_exchange_health_line_t  *line;

    /*
     * Why the probe failed, for the page, and the incident it begins; a
     * probe answered well leaves the last reason with its time, and ends
     * the incident of a server in service.
     */

    if (conf->servers[peer] == NULL) {
        return;
    }

    slot = &conf->servers[peer]->slot[p];

    if (result == NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK) {

        if (slot->line
            && ngx_http_exchange_health_slot_state(conf, conf->sh, slot, p,
                                                   ngx_current_msec)
               == NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY)
        {
            slot->line->incident = 0;
        }

        return;
    }

    line = ngx_http_exchange_health_line_locked(conf, slot);
    if (line == NULL) {
        return;
    }

    len = why ? ngx_strnlen(why, sizeof(line->probe_why) - 1) : 0;

    if (len) {
        ngx_memcpy(line->probe_why, why, len);
    }

    line->probe_why[len] = '\0';
    line->probe_time = ngx_time();

    if (line->incident == 0) {
        line->incident = line->probe_time;
    }
}


ngx_uint_t
ngx_http_exchange_health_timeline_copy_locked(
    ngx_http_exchange_health_line_t *to, ngx_http_exchange_health_slot_t *slot)
{
    /* for the status page, under the zone's lock: 0 when it has none */

    if (slot->line == NULL) {
        return 0;
    }

    ngx_memcpy(to, slot->line, sizeof(ngx_http_exchange_health_line_t));

    return 1;
}


ngx_uint_t
ngx_http_exchange_health_timeline_at(ngx_http_exchange_health_line_t *line,
    time_t t, ngx_http_exchange_health_minute_t **minute)
{
    ngx_uint_t                          i;
    ngx_http_exchange_health_minute_t  *m;

    /* the minute of time t, or NULL when nothing was recorded in it */

    i = (ngx_uint_t) (t / 60) % NGX_HTTP_EXCHANGE_HEALTH_MINUTES;
    m = &line->minutes[i];

    if (m->minute != (uint16_t) (t / 60) || m->worst == 0) {
        *minute = NULL;
        return 0;
    }

    *minute = m;

    return 1;
}


static ngx_http_exchange_health_line_t *
ngx_http_exchange_health_line_locked(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_slot_t *slot)
{
    ngx_http_exchange_health_line_t  *line;

    if (slot->line) {
        return slot->line;
    }

    line = ngx_slab_calloc_locked(conf->shpool,
                                  sizeof(ngx_http_exchange_health_line_t));
    if (line == NULL) {
        /* the zone is full: the status page says lines are missing */
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: no room for a timeline");
        conf->sh->timeline_full = 1;
        return NULL;
    }

    /*
     * Before its first record it was in service: the first thing to
     * happen to a server is nearly always a failure, a failed probe or
     * an operator's order.
     */

    line->state = NGX_HTTP_EXCHANGE_HEALTH_S_HEALTHY;
    slot->line = line;

    return line;
}


static ngx_http_exchange_health_minute_t *
ngx_http_exchange_health_minute_locked(ngx_http_exchange_health_line_t *line,
    time_t now)
{
    ngx_http_exchange_health_minute_t  *m;

    m = &line->minutes[(ngx_uint_t) (now / 60)
                       % NGX_HTTP_EXCHANGE_HEALTH_MINUTES];

    if (m->minute != (uint16_t) (now / 60) || m->worst == 0) {
        m->minute = (uint16_t) (now / 60);
        m->failures = 0;
        m->rescued = 0;
        m->from = line->state;
        m->worst = line->state;
    }

    return m;
}

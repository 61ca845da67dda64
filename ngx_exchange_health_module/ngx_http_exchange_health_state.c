
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Health state in the shared zone: what a request must avoid, the trials,
 * and each change of a server's state for a protocol, one function each.
 * Whose fault an outcome is: settle.c; who may vote: voters.c.
 */


static void ngx_http_exchange_health_trial_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_slot_t *slot, ngx_uint_t quiet,
    ngx_http_exchange_health_event_t *ev);
static ngx_msec_t ngx_http_exchange_health_backoff(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t level);


ngx_uint_t
ngx_http_exchange_health_avoid(ngx_http_exchange_health_ctx_t *ctx,
    uintptr_t *avoid, uintptr_t *suspect)
{
    ngx_uint_t                            i, n, live, retry, trial;
    ngx_msec_t                            now;
    ngx_slab_pool_t                      *shpool;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_upstream_t  *up;
    ngx_http_exchange_health_srv_conf_t  *conf;

    conf = ctx->conf;
    up = conf->sh;

    /*
     * A try after a failure also steers clear of the servers seen failing
     * lately, in this module's count or in requests that failed on every
     * server tried: with two broken servers, a user is not sent from one
     * to the other while a good one is left.  So does a client's new
     * sign-in after its bound server failed it (bind.c).
     */

    retry = ctx->moved
            || (ctx->nattempts
                && (ctx->attempt[ctx->nattempts - 1].verdict
                        == NGX_HTTP_EXCHANGE_HEALTH_FAILED
                    || ctx->attempt[ctx->nattempts - 1].verdict
                        == NGX_HTTP_EXCHANGE_HEALTH_ERROR));

    /* read unlocked: a stale answer costs one request at most */

    if (up == NULL || (up->avoided[ctx->slot] == 0 && !retry)) {
        return 0;
    }

    shpool = ctx->conf->shpool;
    farm = &up->farm[ctx->slot];
    now = ngx_current_msec;
    n = 0;

    /* whether this request may be a trial: the proven table is unlocked */
    trial = ngx_http_exchange_health_may_try(ctx);

    ngx_shmtx_lock(&shpool->mutex);

    live = retry && ngx_http_exchange_health_window_live(&farm->window,
                                                         conf, now);

    for (i = 0; i < conf->nprimary; i++) {

        if (conf->servers[i] == NULL) {
            continue;
        }

        slot = &conf->servers[i]->slot[ctx->slot];

        /*
         * Drained by an operator or by the probe: out for everyone.  An
         * ejected server, once its time is up, gets one trial request,
         * unless the farm is at fault; only a signed-in request in a
         * detecting location exercises what broke and can judge it.
         */

        if (ngx_http_exchange_health_drained(conf, slot)
            || (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED
                && !up->farm[ctx->slot].fault
                && ((ngx_msec_int_t) (now - slot->until) < 0
                    || !trial
                    || ngx_http_exchange_health_trial_pending(slot, now))))
        {
            ngx_http_exchange_health_map_set(avoid, i);
            n++;

        } else if (retry
                   && (ngx_http_exchange_health_window_live(&slot->window,
                                                            conf, now)
                       || (live && ngx_http_exchange_health_failing(conf,
                                                          ctx->slot, i))))
        {
            ngx_http_exchange_health_map_set(suspect, i);
            n++;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


void
ngx_http_exchange_health_picked(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_uint_t                         quiet;
    ngx_table_elt_t                   *auth;
    ngx_slab_pool_t                   *shpool;
    ngx_http_exchange_health_slot_t   *slot;
    ngx_http_exchange_health_event_t   ev;

    slot = ngx_http_exchange_health_slot(ctx, a);

    if (slot == NULL
        || slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED
        || !ngx_http_exchange_health_may_try(ctx))
    {
        return;
    }

    /*
     * An NTLM type 1 on a connection of its own starts a trial that its
     * challenge lets go at once (trial_handshake), and any client can
     * send one: its trial is not logged, nor put on the timeline; the
     * type 3's, on the connection kept for it, is.
     */

    auth = ctx->request->headers_in.authorization;
    quiet = ctx->ntlm && !ctx->bound && auth
            && ngx_http_exchange_health_ntlm_type1(auth->value.data,
                                                   auth->value.len);

    shpool = ctx->conf->shpool;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_exchange_health_trial_locked(ctx, a, slot, quiet, &ev);
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_exchange_health_log(ctx, a, &ev);
}


ngx_uint_t
ngx_http_exchange_health_out(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer)
{
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_server_t    *srv;
    ngx_http_exchange_health_upstream_t  *up;

    /*
     * Whether a server takes no new work of the request's protocol now:
     * ejected (unless the farm is at fault) or drained.  Read unlocked:
     * a stale answer keeps or drops one connection one request early.
     */

    up = ctx->conf->sh;

    if (up == NULL || peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return 0;
    }

    srv = ctx->conf->servers[peer];
    if (srv == NULL) {
        return 0;
    }

    slot = &srv->slot[ctx->slot];

    return (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED
            && !up->farm[ctx->slot].fault)
           || ngx_http_exchange_health_drained(ctx->conf, slot);
}


void
ngx_http_exchange_health_recount(ngx_http_exchange_health_srv_conf_t *hscf)
{
    ngx_uint_t  p;

    /* an upstream the zone had no room for has no records to count */

    if (hscf->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&hscf->shpool->mutex);

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        ngx_http_exchange_health_recount_locked(hscf, p);
    }

    ngx_shmtx_unlock(&hscf->shpool->mutex);
}


void
ngx_http_exchange_health_recount_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p)
{
    ngx_uint_t                        i, ejected, avoided;
    ngx_http_exchange_health_slot_t  *slot;

    /*
     * Counted again from the servers' records at each change, rather than
     * kept up by each change: a worker killed midway cannot skew them.
     */

    ejected = 0;
    avoided = 0;

    for (i = 0; i < conf->nprimary; i++) {
        if (conf->servers[i] == NULL) {
            continue;
        }

        slot = &conf->servers[i]->slot[p];

        if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
            ejected++;
            avoided++;

        } else if (ngx_http_exchange_health_drained(conf, slot)) {
            avoided++;
        }
    }

    conf->sh->ejected[p] = ejected;
    conf->sh->avoided[p] = avoided;
}


ngx_http_exchange_health_slot_t *
ngx_http_exchange_health_slot(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_http_exchange_health_server_t  *srv;

    if (a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return NULL;
    }

    srv = ctx->conf->servers[a->peer];

    return srv ? &srv->slot[ctx->slot] : NULL;
}


/*
 * The changes of a server's state for a protocol, each in one function
 * that writes the slot's state fields and leaves the zone's counts
 * right.  The caller holds the zone's lock (hence _locked); what a
 * change logs is filled into ev, and events.c says it once the lock is
 * released.  An operator's changes (admin.c) and the probe's (probe.c)
 * come last: they log their own lines, with no request to name.
 */


static void
ngx_http_exchange_health_trial_locked(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_slot_t *slot, ngx_uint_t quiet,
    ngx_http_exchange_health_event_t *ev)
{
    ngx_msec_t  now;

    /*
     * An ejected server whose time is up gets this request as its trial,
     * unless another request is its trial already: looked at again under
     * the lock, as another worker may have just sent one.
     */

    now = ngx_current_msec;

    if (slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED
        || (ngx_msec_int_t) (now - slot->until) < 0
        || ngx_http_exchange_health_trial_pending(slot, now))
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: peer %ui on trial", a->peer);

    slot->trial = now;
    a->trial = 1;

    if (quiet) {
        return;
    }

    ngx_http_exchange_health_timeline_locked(ctx->conf, a->peer, ctx->slot,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);

    ev->change = ngx_http_exchange_health_trial;
    ev->name = ctx->conf->servers[a->peer]->name;
}


void
ngx_http_exchange_health_readmit_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_log_t *log, ngx_http_exchange_health_event_t *ev)
{
    ngx_http_exchange_health_slot_t    *slot;
    ngx_http_exchange_health_server_t  *srv;

    /*
     * Back in service: after a good answer to its trial or to its
     * signed-in probe, or taken back by a farm-wide fault (no ev: the
     * fault's line says it).  Up from now, for the backoff of a later
     * ejection.
     */

    srv = conf->servers[peer];
    slot = &srv->slot[p];

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "exchange health: peer %ui re-admitted", peer);

    slot->state = NGX_HTTP_EXCHANGE_HEALTH_UP;
    slot->trial = 0;
    slot->up_since = ngx_current_msec;
    slot->since = ngx_time();

    ngx_http_exchange_health_recount_locked(conf, p);
    ngx_http_exchange_health_timeline_locked(conf, peer, p,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);

    if (ev) {
        ev->change = ngx_http_exchange_health_readmitted;
        ev->name = srv->name;
    }
}


void
ngx_http_exchange_health_trial_failed_locked(
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev)
{
    ngx_msec_t                            duration;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_srv_conf_t  *conf;

    /* the trial failed: out again, for longer; still ejected, no recount */

    conf = ctx->conf;
    slot = &conf->servers[a->peer]->slot[ctx->slot];

    duration = ngx_http_exchange_health_backoff(conf, slot->level);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: peer %ui failed its trial, out for %M",
                   a->peer, duration);

    slot->level += (slot->level < 255);
    slot->until = ngx_current_msec + duration;
    slot->trial = 0;
    slot->since = ngx_time();
    slot->ejections++;

    a->trial = 0;

    ngx_http_exchange_health_timeline_locked(conf, a->peer, ctx->slot,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);

    ev->change = ngx_http_exchange_health_trial_failed;
    ev->duration = duration;
    ev->name = conf->servers[a->peer]->name;
}


void
ngx_http_exchange_health_eject_locked(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t p, ngx_uint_t peer, ngx_log_t *log,
    ngx_http_exchange_health_event_t *ev)
{
    ngx_msec_t                        now, duration;
    ngx_http_exchange_health_slot_t  *slot;

    slot = &conf->servers[peer]->slot[p];
    now = ngx_current_msec;

    /* a server that stayed up long enough starts again from the base time */

    if (slot->level && now - slot->up_since > conf->max_time) {
        slot->level = 0;
    }

    duration = ngx_http_exchange_health_backoff(conf, slot->level);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "exchange health: peer %ui ejected for %M, level %ui",
                   peer, duration, (ngx_uint_t) slot->level);

    slot->state = NGX_HTTP_EXCHANGE_HEALTH_EJECTED;
    slot->until = now + duration;
    slot->trial = 0;
    slot->level += (slot->level < 255);
    slot->since = ngx_time();
    ngx_memzero(&slot->window, sizeof(ngx_http_exchange_health_window_t));
    slot->ejections++;

    ngx_http_exchange_health_recount_locked(conf, p);
    ngx_http_exchange_health_timeline_locked(conf, peer, p,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);

    ev->change = ngx_http_exchange_health_ejected;
    ev->duration = duration;
    ev->name = conf->servers[peer]->name;
}


void
ngx_http_exchange_health_farm_fault_locked(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_http_exchange_health_event_t *ev)
{
    ngx_uint_t                            i;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_upstream_t  *up;
    ngx_http_exchange_health_srv_conf_t  *conf;

    /*
     * Too many servers fail at once: the fault is the farm's (say, an
     * Auth certificate expired everywhere).  Ejecting more would only
     * concentrate load, so every server takes traffic again.  A good
     * answer from one of the servers that failed ends it.
     */

    conf = ctx->conf;
    up = conf->sh;
    farm = &up->farm[ctx->slot];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: farm-wide fault raised by peer %ui, "
                   "%ui ejected taken back", a->peer, up->ejected[ctx->slot]);

    farm->fault = 1;
    farm->since = ngx_time();
    ngx_http_exchange_health_failing_set_locked(conf, ctx->slot, a->peer, 1);

    ev->ejected = up->ejected[ctx->slot];

    for (i = 0; i < conf->nprimary; i++) {
        if (conf->servers[i] == NULL) {
            continue;
        }

        slot = &conf->servers[i]->slot[ctx->slot];
        ngx_memzero(&slot->window, sizeof(ngx_http_exchange_health_window_t));

        if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
            ngx_http_exchange_health_failing_set_locked(conf, ctx->slot, i, 1);
            ngx_http_exchange_health_readmit_locked(conf, ctx->slot, i,
                                          ctx->request->connection->log, NULL);

        } else {
            ngx_http_exchange_health_timeline_locked(conf, i, ctx->slot,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);
        }
    }

    ev->change = ngx_http_exchange_health_farm_fault;

    /* the request that tipped it may have met a server the zone lacks */

    if (conf->servers[a->peer]) {
        ev->name = conf->servers[a->peer]->name;
    }
}


void
ngx_http_exchange_health_farm_cleared_locked(
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev)
{
    ngx_uint_t                        i;
    ngx_http_exchange_health_farm_t  *farm;

    /* one of the servers that failed answers a signed-in user well */

    farm = &ctx->conf->sh->farm[ctx->slot];

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: farm-wide fault cleared by peer %ui",
                   a->peer);

    farm->fault = 0;
    ngx_http_exchange_health_failing_reset_locked(ctx->conf->sh, ctx->slot, 0);
    farm->since = ngx_time();
    ngx_memzero(&farm->window, sizeof(ngx_http_exchange_health_window_t));

    for (i = 0; i < ctx->conf->nprimary; i++) {
        ngx_http_exchange_health_timeline_locked(ctx->conf, i, ctx->slot,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);
    }

    ev->change = ngx_http_exchange_health_farm_cleared;
    ev->name = ctx->conf->servers[a->peer]->name;
}


void
ngx_http_exchange_health_backend_fault_locked(
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_event_t *ev)
{
    ngx_http_exchange_health_farm_t  *farm;

    /*
     * Requests fail on every server, each through the same mailbox
     * server: kept as known for max_time, said once per window.
     */

    farm = &ctx->conf->sh->farm[ctx->slot];

    farm->known_len = farm->backend_len;
    ngx_memcpy(farm->known, farm->backend, farm->backend_len);
    farm->known_last = ngx_current_msec;

    if (farm->backend_logged) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: a back end's fault, not the farm's");

    farm->backend_logged = 1;

    ev->change = ngx_http_exchange_health_backend_fault;
    ev->name.len = farm->backend_len;
    ngx_memcpy(ev->name.data, farm->backend, farm->backend_len);
}


void
ngx_http_exchange_health_set_admin_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t admin)
{
    ngx_http_exchange_health_slot_t  *slot;

    /* an operator drains it, puts it in maintenance, or makes it ready */

    slot = &conf->servers[peer]->slot[p];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui admin %ui for slot %ui",
                   peer, admin, p);

    slot->admin = (uint8_t) admin;
    slot->since = ngx_time();

    ngx_http_exchange_health_recount_locked(conf, p);
    ngx_http_exchange_health_timeline_locked(conf, peer, p,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);
}


void
ngx_http_exchange_health_clear_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer)
{
    ngx_http_exchange_health_slot_t  *slot;

    /*
     * An operator clears its history: in service again, with no backoff
     * and nothing counted; what an operator or the probe said stays.
     */

    slot = &conf->servers[peer]->slot[p];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui cleared for slot %ui", peer, p);

    slot->state = NGX_HTTP_EXCHANGE_HEALTH_UP;
    slot->until = 0;
    slot->trial = 0;
    slot->level = 0;
    slot->up_since = ngx_current_msec;
    slot->failures = 0;
    slot->user_failures = 0;
    slot->rescued = 0;
    slot->ejections = 0;
    ngx_memzero(&slot->window, sizeof(ngx_http_exchange_health_window_t));
    ngx_memzero(&slot->last, sizeof(ngx_http_exchange_health_failure_t));
    slot->since = ngx_time();

    ngx_http_exchange_health_recount_locked(conf, p);
    ngx_http_exchange_health_timeline_locked(conf, peer, p,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);
}


ngx_http_exchange_health_change_e
ngx_http_exchange_health_probed_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t result, u_char *why)
{
    ngx_uint_t                        was, now;
    ngx_http_exchange_health_slot_t  *slot;

    /*
     * What the probe found; a change only when it drains the server or
     * lets it back, as the probe's failures in a row or an operator's
     * word decide (drained).
     */

    slot = &conf->servers[peer]->slot[p];

    was = ngx_http_exchange_health_drained(conf, slot);

    slot->probe = (uint8_t) result;
    slot->probe_time = ngx_time();

    if (result == NGX_HTTP_EXCHANGE_HEALTH_PROBE_OK) {
        slot->probe_fails = 0;

    } else if (slot->probe_fails < 255) {
        slot->probe_fails++;
    }

    now = ngx_http_exchange_health_drained(conf, slot);

    ngx_http_exchange_health_timeline_probe_locked(conf, peer, p, result, why);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui probed: %ui, drained %ui, "
                   "was %ui", peer, result, now, was);

    if (was == now) {
        return ngx_http_exchange_health_nothing;
    }

    slot->since = ngx_time();

    ngx_http_exchange_health_recount_locked(conf, p);
    ngx_http_exchange_health_timeline_locked(conf, peer, p,
                                           NGX_HTTP_EXCHANGE_HEALTH_T_STATE);

    return now ? ngx_http_exchange_health_probe_drained
               : ngx_http_exchange_health_probe_back;
}


ngx_http_exchange_health_change_e
ngx_http_exchange_health_signin_probed_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_http_exchange_health_signin_result_t *r, ngx_str_t *method,
    ngx_str_t *uri, ngx_msec_t *duration)
{
    size_t                              len;
    ngx_uint_t                          i, k;
    ngx_msec_t                          now, out;
    ngx_http_exchange_health_slot_t    *slot;
    ngx_http_exchange_health_event_t    ev;
    ngx_http_exchange_health_signin_t  *sp;

    /*
     * What the signed-in probe found: a user's own path, signed in.  A
     * good answer is proof that re-admits the server; its failures are
     * confirmed failures of the server, "fails" in a row eject it.
     */

    slot = &conf->servers[peer]->slot[p];
    now = ngx_current_msec;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    if (r->result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK) {

        if (slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
            return ngx_http_exchange_health_nothing;
        }

        ngx_http_exchange_health_readmit_locked(conf, p, peer,
                                                ngx_cycle->log, &ev);
        return ev.change;
    }

    if (r->result != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED) {
        return ngx_http_exchange_health_nothing;
    }

    slot->last.time = ngx_time();
    slot->last.status = r->status;
    slot->last.user = 0;
    ngx_cpystrn(slot->last.rule, (u_char *) "signed-in-probe",
                sizeof(slot->last.rule));
    len = ngx_min(method->len, sizeof(slot->last.method) - 1);
    ngx_cpystrn(slot->last.method, method->data, len + 1);
    len = ngx_min(uri->len, sizeof(slot->last.uri) - 1);
    ngx_cpystrn(slot->last.uri, uri->data, len + 1);
    ngx_cpystrn(slot->last.error, r->why, sizeof(slot->last.error));

    if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {

        /*
         * Still failing: kept out for the base time from now, so that
         * no user's request is its trial while the probe still finds
         * it broken; the probe's good answer lets it back.
         */

        out = now + ngx_http_exchange_health_backoff(conf, 0);

        if ((ngx_msec_int_t) (out - slot->until) > 0) {
            slot->until = out;
        }

        return ngx_http_exchange_health_nothing;
    }

    /* backup servers, a fault of the farm: as for live failures */

    if (r->fails < conf->probe_fails
        || peer >= conf->nprimary
        || conf->sh->farm[p].fault)
    {
        return ngx_http_exchange_health_nothing;
    }

    /*
     * Confirmed as a retry's failure is: the mailbox answers well through
     * another server.  Failing everywhere, it is the mailbox's fault (its
     * database down), not the servers'.
     */

    sp = conf->servers[peer]->signin;
    k = r - sp->result;

    for (i = 0; i < conf->nprimary; i++) {
        if (i != peer && conf->servers[i] && conf->servers[i]->signin
            && conf->servers[i]->signin->result[k].result
               == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK)
        {
            break;
        }
    }

    if (i == conf->nprimary) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui not ejected by its probe: "
                       "no other server answers it well", peer);
        return ngx_http_exchange_health_nothing;
    }

    if (conf->sh->avoided[p] + 1 > ngx_http_exchange_health_max_ejected(conf))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui not ejected by its probe: "
                       "no other server would be left", peer);
        return ngx_http_exchange_health_nothing;
    }

    ngx_http_exchange_health_eject_locked(conf, p, peer, ngx_cycle->log,
                                          &ev);
    *duration = ev.duration;

    return ev.change;
}


void
ngx_http_exchange_health_release_trial(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_slab_pool_t                  *shpool;
    ngx_http_exchange_health_slot_t  *slot;

    /* a trial that proved nothing: let the next request try */

    if (!a->trial) {
        return;
    }

    a->trial = 0;

    slot = ngx_http_exchange_health_slot(ctx, a);
    if (slot == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: peer %ui's trial proved nothing",
                   a->peer);

    shpool = ctx->conf->shpool;

    ngx_shmtx_lock(&shpool->mutex);
    slot->trial = 0;
    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_exchange_health_trial_handshake(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    /*
     * The trial got a challenge (NTLM): a challenge proves nothing, and
     * any client can ask for one, so the trial is let go at once; the
     * answer to it, on the same connection, claims the trial anew
     * (bind.c).  Held until that answer, a made-up type 1 every half
     * minute kept a healed server out.
     */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: peer %ui's trial goes on on its "
                   "connection", a->peer);

    ngx_http_exchange_health_release_trial(ctx, a);
}


ngx_uint_t
ngx_http_exchange_health_trial_bound(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer)
{
    ngx_http_exchange_health_slot_t    *slot;
    ngx_http_exchange_health_server_t  *srv;

    /*
     * Whether a bound request may finish the handshake that a trial of
     * its ejected server began, as the trial: the server is still
     * ejected and its time up, no other request is its trial, and no
     * operator or probe drained it since.  Read unlocked: picked() claims
     * the trial under the lock, and a request that loses it to another
     * worker meets the ejected server once, not as its trial.
     */

    if (ctx->conf->sh == NULL || peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return 0;
    }

    srv = ctx->conf->servers[peer];
    if (srv == NULL) {
        return 0;
    }

    slot = &srv->slot[ctx->slot];

    return slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED
           && (ngx_msec_int_t) (ngx_current_msec - slot->until) >= 0
           && !ngx_http_exchange_health_trial_pending(slot, ngx_current_msec)
           && !ngx_http_exchange_health_drained(ctx->conf, slot);
}


ngx_uint_t
ngx_http_exchange_health_max_ejected(ngx_http_exchange_health_srv_conf_t *conf)
{
    ngx_uint_t  n;

    /* never the whole farm: at least one server always takes traffic */

    n = conf->nup ? conf->nup - 1 : 0;

    if (conf->max_ejected_percent != NGX_CONF_UNSET_UINT) {
        return ngx_min(n, conf->nup * conf->max_ejected_percent / 100);
    }

    if (conf->max_ejected != NGX_CONF_UNSET_UINT) {
        return ngx_min(n, conf->max_ejected);
    }

    return n;
}


static ngx_msec_t
ngx_http_exchange_health_backoff(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t level)
{
    ngx_uint_t  i;
    ngx_msec_t  d;

    /* twice as long for each ejection in a row, up to max_time */

    d = conf->time;

    for (i = 0; i < level && d < conf->max_time; i++) {
        if (d > conf->max_time / 2) {
            return conf->max_time;
        }

        d *= 2;
    }

    return ngx_min(d, conf->max_time);
}


/*
 * The farm's "failing" map, per protocol: the servers seen failing a
 * request that failed on every server tried, since the farm's window of
 * such failures began.  A retry steers clear of them, a farm-wide fault
 * needs every server in service among them, and only a good answer from
 * one of them ends the fault.
 *
 * A server's mark is a byte of its own slot, not a bit of one word: any
 * server, the 65th or the 500th, has its own.  A word has 64 bits, and a
 * server past them could only share one, and make a healthy server look
 * failing, or have none, and be tried again however often it failed.  A
 * mark also stays with its server's address when a reload renumbers the
 * upstream.
 */


void
ngx_http_exchange_health_failing_set_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t failing)
{
    /* a server the zone has no record of has no mark: it is not judged */

    if (peer != NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED && conf->servers[peer]) {
        conf->servers[peer]->slot[p].failing = (uint8_t) failing;
    }
}


void
ngx_http_exchange_health_failing_reset_locked(
    ngx_http_exchange_health_upstream_t *up, ngx_uint_t p, ngx_uint_t failing)
{
    ngx_queue_t                        *q;
    ngx_http_exchange_health_server_t  *srv;

    /*
     * Every server of the upstream's record, those an older cycle still
     * has included: marks of a window gone by, or of a fault ended, say
     * nothing now; a fault restored from the state file names nobody.
     */

    for (q = ngx_queue_head(&up->servers);
         q != ngx_queue_sentinel(&up->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_http_exchange_health_server_t, queue);
        srv->slot[p].failing = (uint8_t) failing;
    }
}


ngx_uint_t
ngx_http_exchange_health_failing_all_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p)
{
    ngx_uint_t                        i;
    ngx_http_exchange_health_slot_t  *slot;

    /* whether every primary that takes requests of the protocol is marked */

    for (i = 0; i < conf->nprimary; i++) {
        if (conf->servers[i] == NULL || conf->peers[i]->down) {
            continue;
        }

        slot = &conf->servers[i]->slot[p];

        if (slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED
            && !ngx_http_exchange_health_drained(conf, slot)
            && !slot->failing)
        {
            return 0;
        }
    }

    return 1;
}

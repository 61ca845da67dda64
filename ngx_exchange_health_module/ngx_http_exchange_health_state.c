
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Health state in the shared zone: what a request must avoid, and what a
 * request's outcome does to its servers.
 *
 * A request's outcome is settled once, when the answer that reaches the
 * client is judged.  If a server failed and another then answered well,
 * the first server is at fault for sure.  If every server tried failed,
 * the fault is the request's, the user's or the whole farm's, and no
 * server is blamed.  A failure seen with no second opinion counts toward
 * ejection only when it comes from several users.
 */


static ngx_http_exchange_health_slot_t *ngx_http_exchange_health_slot(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_success(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_trial_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_slot_t *slot,
    ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_readmit_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_log_t *log, ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_trial_failed_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_eject_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_log_t *log, ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_farm_fault_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_farm_cleared_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_backend_fault_locked(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_event_t *ev);
static void ngx_http_exchange_health_failing_set_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t failing);
static ngx_uint_t ngx_http_exchange_health_failing_all_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p);
static void ngx_http_exchange_health_rescued(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_request_failure(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_unconfirmed(
    ngx_http_exchange_health_ctx_t *ctx, ngx_uint_t n);
static ngx_uint_t ngx_http_exchange_health_backend_known(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_note_backend_locked(
    ngx_http_exchange_health_farm_t *farm, ngx_str_t *backend);
static void ngx_http_exchange_health_user_failure(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static void ngx_http_exchange_health_release_trial(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static ngx_uint_t ngx_http_exchange_health_count(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_window_t *w, ngx_uint_t confirmed);
static void ngx_http_exchange_health_record(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_failure_t *f);
static uint32_t ngx_http_exchange_health_user(
    ngx_http_exchange_health_ctx_t *ctx);
static void ngx_http_exchange_health_prove(ngx_http_exchange_health_ctx_t *ctx);
static ngx_uint_t ngx_http_exchange_health_voter(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
static ngx_uint_t ngx_http_exchange_health_max_ejected(
    ngx_http_exchange_health_srv_conf_t *conf);
static ngx_msec_t ngx_http_exchange_health_backoff(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t level);


/* the first, for a request not judged, leaves the variable empty */
static ngx_str_t  ngx_http_exchange_health_verdicts[] = {
    ngx_null_string,
    ngx_string("healthy"),
    ngx_string("rescued"),
    ngx_string("failure"),
    ngx_string("user-failure"),
    ngx_string("request-failure"),
    ngx_string("upstream-error")
};

#define NGX_HTTP_EXCHANGE_HEALTH_V_NONE             0
#define NGX_HTTP_EXCHANGE_HEALTH_V_HEALTHY          1
#define NGX_HTTP_EXCHANGE_HEALTH_V_RESCUED          2
#define NGX_HTTP_EXCHANGE_HEALTH_V_FAILURE          3
#define NGX_HTTP_EXCHANGE_HEALTH_V_USER_FAILURE     4
#define NGX_HTTP_EXCHANGE_HEALTH_V_REQUEST_FAILURE  5
#define NGX_HTTP_EXCHANGE_HEALTH_V_UPSTREAM_ERROR   6


ngx_uint_t
ngx_http_exchange_health_avoid(ngx_http_exchange_health_ctx_t *ctx,
    uintptr_t *avoid, uintptr_t *suspect)
{
    ngx_uint_t                            i, n, live, retry;
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
                    || !ctx->signed_in
                    || !ctx->detect
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
    ngx_slab_pool_t                   *shpool;
    ngx_http_exchange_health_slot_t   *slot;
    ngx_http_exchange_health_event_t   ev;

    slot = ngx_http_exchange_health_slot(ctx, a);

    if (slot == NULL
        || slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED
        || !ctx->signed_in
        || !ctx->detect)
    {
        return;
    }

    shpool = ctx->conf->shpool;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_exchange_health_trial_locked(ctx, a, slot, &ev);
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_exchange_health_log(ctx, a, &ev);
}


void
ngx_http_exchange_health_learn_name(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_str_t *name, ngx_uint_t fqdn)
{
    u_char                             *to;
    size_t                              i, len, *to_len;
    uint32_t                            hash, *known;
    ngx_slab_pool_t                    *shpool;
    ngx_http_exchange_health_server_t  *srv;

    if (a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED || name->len == 0) {
        return;
    }

    srv = ctx->conf->servers[a->peer];

    if (srv == NULL) {
        return;
    }

    /*
     * The zone is written only when this worker sees a new name; a hash
     * that says "the same" by chance only delays the name's next change.
     * Not ngx_murmur_hash2(): nginx's shifts a byte of 128 or more into
     * the sign bit of an int, which UBSan reports, and names are any
     * bytes a server sends.
     */

    hash = (uint32_t) ngx_hash_key(name->data, name->len);
    known = fqdn ? &ctx->conf->known_fqdn[a->peer]
                 : &ctx->conf->known_name[a->peer];

    if (*known == hash) {
        return;
    }

    *known = hash;

    if (fqdn) {
        to = srv->fqdn;
        to_len = &srv->fqdn_len;
        len = ngx_min(name->len, NGX_HTTP_EXCHANGE_HEALTH_FQDN_LEN);

    } else {
        to = srv->name.data;
        to_len = &srv->name.len;
        len = ngx_min(name->len, NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN);
    }

    shpool = ctx->conf->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    /* kept as sent, but never with bytes that could forge a log line */

    for (i = 0; i < len; i++) {
        to[i] = (name->data[i] < 0x20 || name->data[i] == 0x7f)
                ? '?' : name->data[i];
    }

    *to_len = len;

    if (fqdn) {
        ngx_http_exchange_health_name_from_fqdn_locked(srv);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_exchange_health_settle(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_uint_t                           i, n, failed, verdict;
    ngx_http_exchange_health_attempt_t  *a, *last;

    if (ctx->settled || ctx->nattempts == 0) {
        return;
    }

    ctx->settled = 1;

    n = ctx->nattempts;
    last = &ctx->attempt[n - 1];

    /* earlier servers whose answers were classified failures */

    failed = 0;

    for (i = 0; i < n - 1; i++) {
        if (ctx->attempt[i].verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
            failed++;
        }
    }

    /*
     * Connection-bound sign-in sent on after its server failed it: the
     * next server's 401 (to a request its connection signed in, to an
     * NTLM type 1 or 3) makes the client sign in again.  That 401 gives
     * no opinion on the failure, which stays its server's, unconfirmed.
     */

    if ((ctx->bound || ctx->ntlm) && n > 1
        && last->status == NGX_HTTP_UNAUTHORIZED)
    {
        ngx_http_exchange_health_unconfirmed(ctx, n - 1);

        verdict = failed ? NGX_HTTP_EXCHANGE_HEALTH_V_RESCUED
                         : NGX_HTTP_EXCHANGE_HEALTH_V_NONE;
        goto settled;
    }

    switch (last->verdict) {

    case NGX_HTTP_EXCHANGE_HEALTH_HEALTHY:
        ngx_http_exchange_health_success(ctx, last);

        verdict = NGX_HTTP_EXCHANGE_HEALTH_V_HEALTHY;

        for (i = 0; i < n - 1; i++) {
            a = &ctx->attempt[i];

            if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED) {

                /* nginx may have retried one user's failure by itself */

                if (a->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER) {
                    ngx_http_exchange_health_user_failure(ctx, a);

                } else {
                    ngx_http_exchange_health_blame(ctx, a, 1);
                }

            } else if (a->verdict == NGX_HTTP_EXCHANGE_HEALTH_ERROR) {
                /* blamed when it failed; the user was rescued all the same */
                ngx_http_exchange_health_rescued(ctx, a);

            } else {
                continue;
            }

            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_RESCUED;
        }

        break;

    case NGX_HTTP_EXCHANGE_HEALTH_FAILED:

        if (failed && ngx_http_exchange_health_same_failure(ctx)) {
            ngx_http_exchange_health_request_failure(ctx, last);
            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_REQUEST_FAILURE;

        } else if (failed) {

            /*
             * Each server failed the request its own way (one an errorFE
             * page, the other HTTP.SYS's 503): two broken servers, not a
             * request that fails everywhere.  Each failure is its
             * server's, unconfirmed.
             */

            ngx_http_exchange_health_unconfirmed(ctx, n);
            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_FAILURE;

        } else if (last->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER) {
            ngx_http_exchange_health_user_failure(ctx, last);
            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_USER_FAILURE;

        } else if (ngx_http_exchange_health_backend_known(ctx, last)) {
            /* a user of a mailbox server that fails through every front */
            ngx_http_exchange_health_request_failure(ctx, last);
            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_REQUEST_FAILURE;

        } else {
            ngx_http_exchange_health_blame(ctx, last, 0);
            verdict = NGX_HTTP_EXCHANGE_HEALTH_V_FAILURE;
        }

        break;

    case NGX_HTTP_EXCHANGE_HEALTH_ERROR:

        /* the next server gave no second opinion on the earlier failures */

        ngx_http_exchange_health_unconfirmed(ctx, n - 1);
        verdict = NGX_HTTP_EXCHANGE_HEALTH_V_UPSTREAM_ERROR;
        break;

    default:
        verdict = NGX_HTTP_EXCHANGE_HEALTH_V_NONE;
    }

settled:

    for (i = 0; i < n; i++) {
        ngx_http_exchange_health_release_trial(ctx, &ctx->attempt[i]);
    }

    ctx->verdict_text = ngx_http_exchange_health_verdicts[verdict];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: settled \"%V\" after %ui tries",
                   &ctx->verdict_text, n);
}


ngx_uint_t
ngx_http_exchange_health_drained(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_slot_t *slot)
{
    /* an operator's word overrides what the probe finds */

    if (slot->admin != NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE) {
        return 1;
    }

    return slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_INACTIVE
           || (slot->probe == NGX_HTTP_EXCHANGE_HEALTH_PROBE_FAILED
               && slot->probe_fails >= conf->probe_fails);
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


static ngx_http_exchange_health_slot_t *
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


static void
ngx_http_exchange_health_success(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_slab_pool_t                      *shpool;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_event_t      ev;
    ngx_http_exchange_health_upstream_t  *up;

    slot = ngx_http_exchange_health_slot(ctx, a);
    if (slot == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&slot->requests, 1);

    up = ctx->conf->sh;
    farm = &up->farm[ctx->slot];

    if (ctx->signed_in && a->mailbox) {
        ngx_http_exchange_health_prove(ctx);
    }

    /*
     * Only a signed-in answer from a mailbox shows the path works.  Read
     * unlocked first: on healthy traffic there is nothing to change.
     */

    if (!ctx->signed_in
        || !a->mailbox
        || (!a->trial
            && !ngx_http_exchange_health_failing(ctx->conf, ctx->slot,
                                                 a->peer)))
    {
        return;
    }

    shpool = ctx->conf->shpool;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    ngx_shmtx_lock(&shpool->mutex);

    if (a->trial && slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
        ngx_http_exchange_health_readmit_locked(ctx->conf, ctx->slot, a->peer,
                                          ctx->request->connection->log, &ev);
        a->trial = 0;

    } else if (farm->fault
               && ngx_http_exchange_health_failing(ctx->conf, ctx->slot,
                                                   a->peer))
    {
        ngx_http_exchange_health_farm_cleared_locked(ctx, a, &ev);

    } else if (!farm->fault) {

        /*
         * A server that failed a request on every server tried now
         * serves a signed-in user well: those failures were the
         * request's.  It is no longer counted toward a farm-wide fault,
         * nor passed over by a retry.
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "exchange health: peer %ui answers well, no longer "
                       "failing for the farm", a->peer);

        ngx_http_exchange_health_failing_set_locked(ctx->conf, ctx->slot,
                                                    a->peer, 0);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_exchange_health_log(ctx, a, &ev);
}


void
ngx_http_exchange_health_blame(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a, ngx_uint_t confirmed)
{
    ngx_msec_t                            now;
    ngx_slab_pool_t                      *shpool;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_event_t      ev;
    ngx_http_exchange_health_srv_conf_t  *conf;

    slot = ngx_http_exchange_health_slot(ctx, a);
    if (slot == NULL) {
        return;
    }

    conf = ctx->conf;
    shpool = ctx->conf->shpool;
    now = ngx_current_msec;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    if (!confirmed) {
        ctx->voter = ngx_http_exchange_health_voter(ctx, a);
    }

    (void) ngx_atomic_fetch_add(&slot->requests, 1);

    ngx_shmtx_lock(&shpool->mutex);

    slot->failures++;

    if (confirmed && a->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
        slot->rescued++;
    }

    ngx_http_exchange_health_record(ctx, a, &slot->last);

    if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {

        if (a->trial) {
            ngx_http_exchange_health_trial_failed_locked(ctx, a, &ev);
        }

    } else if (ngx_http_exchange_health_count(ctx, &slot->window, confirmed)
               && !conf->sh->farm[ctx->slot].fault
               && a->peer < conf->nprimary)
    {
        /* backup servers are shown, never ejected: round robin owns them */

        ev.fails = slot->window.fails;
        ev.window = now - slot->window.start;

        /* out for any reason counts: drained servers take no traffic */

        if (conf->sh->avoided[ctx->slot] + 1
            > ngx_http_exchange_health_max_ejected(conf))
        {
            ngx_http_exchange_health_farm_fault_locked(ctx, a, &ev);

        } else {
            ngx_http_exchange_health_eject_locked(conf, ctx->slot, a->peer,
                                          ctx->request->connection->log, &ev);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_exchange_health_log(ctx, a, &ev);
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
    ngx_http_exchange_health_slot_t *slot, ngx_http_exchange_health_event_t *ev)
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

    ev->change = ngx_http_exchange_health_trial;
    ev->name = ctx->conf->servers[a->peer]->name;
}


static void
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

    if (ev) {
        ev->change = ngx_http_exchange_health_readmitted;
        ev->name = srv->name;
    }
}


static void
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

    ev->change = ngx_http_exchange_health_trial_failed;
    ev->duration = duration;
    ev->name = conf->servers[a->peer]->name;
}


static void
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

    ev->change = ngx_http_exchange_health_ejected;
    ev->duration = duration;
    ev->name = conf->servers[peer]->name;
}


static void
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
        }
    }

    ev->change = ngx_http_exchange_health_farm_fault;

    /* the request that tipped it may have met a server the zone lacks */

    if (conf->servers[a->peer]) {
        ev->name = conf->servers[a->peer]->name;
    }
}


static void
ngx_http_exchange_health_farm_cleared_locked(
    ngx_http_exchange_health_ctx_t *ctx, ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_event_t *ev)
{
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

    ev->change = ngx_http_exchange_health_farm_cleared;
    ev->name = ctx->conf->servers[a->peer]->name;
}


static void
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
}


ngx_http_exchange_health_change_e
ngx_http_exchange_health_probed_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t p, ngx_uint_t peer,
    ngx_uint_t result)
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

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui probed: %ui, drained %ui, "
                   "was %ui", peer, result, now, was);

    if (was == now) {
        return ngx_http_exchange_health_nothing;
    }

    slot->since = ngx_time();

    ngx_http_exchange_health_recount_locked(conf, p);

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


static void
ngx_http_exchange_health_rescued(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_http_exchange_health_slot_t  *slot;

    slot = ngx_http_exchange_health_slot(ctx, a);
    if (slot == NULL) {
        return;
    }

    ngx_shmtx_lock(&ctx->conf->shpool->mutex);
    slot->rescued++;
    ngx_shmtx_unlock(&ctx->conf->shpool->mutex);
}


static void
ngx_http_exchange_health_request_failure(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_str_t                            *backend;
    ngx_uint_t                            i, named;
    ngx_msec_t                            now;
    ngx_slab_pool_t                      *shpool;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_event_t      ev;
    ngx_http_exchange_health_attempt_t   *f;
    ngx_http_exchange_health_upstream_t  *up;
    ngx_http_exchange_health_srv_conf_t  *conf;

    /* every server tried failed the same request: no server is blamed */

    conf = ctx->conf;
    up = conf->sh;

    if (up == NULL || a->peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return;
    }

    farm = &up->farm[ctx->slot];
    shpool = conf->shpool;
    now = ngx_current_msec;
    ngx_memzero(&ev, sizeof(ngx_http_exchange_health_event_t));

    backend = NULL;
    named = 1;

    for (i = 0; i < ctx->nattempts; i++) {
        f = &ctx->attempt[i];

        if (f->verdict != NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
            continue;
        }

        /* each server answered: it has traffic, whoever's the failure */

        slot = ngx_http_exchange_health_slot(ctx, f);
        if (slot) {
            (void) ngx_atomic_fetch_add(&slot->requests, 1);
        }

        /* the mailbox server every failure named, if one and the same */

        if (f->backend.len == 0) {
            named = 0;

        } else if (backend == NULL) {
            backend = &f->backend;

        } else if (backend->len != f->backend.len
                   || ngx_strncasecmp(backend->data, f->backend.data,
                                      backend->len) != 0)
        {
            named = 0;
        }
    }

    ctx->voter = ngx_http_exchange_health_voter(ctx, a);

    ngx_shmtx_lock(&shpool->mutex);

    farm->request_failures++;
    ngx_http_exchange_health_record(ctx, a, &farm->last);

    if (farm->window.fails == 0 || now - farm->window.start > conf->window) {
        ngx_http_exchange_health_failing_reset_locked(up, ctx->slot, 0);
        farm->backends = 0;
        farm->backend_logged = 0;
    }

    /* the primaries that answered it: backups are round robin's */

    for (i = 0; i < ctx->nattempts; i++) {
        f = &ctx->attempt[i];

        if (f->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED
            && f->peer < conf->nprimary)
        {
            ngx_http_exchange_health_failing_set_locked(conf, ctx->slot,
                                                        f->peer, 1);
        }
    }

    ngx_http_exchange_health_note_backend_locked(farm, named ? backend : NULL);

    if (named && backend
        && farm->known_len == backend->len
        && ngx_strncasecmp(farm->known, backend->data, backend->len) == 0)
    {
        farm->known_last = now;
    }

    /*
     * A farm-wide fault is many users failing on every server that takes
     * traffic: with some servers broken, requests that meet two broken
     * ones fail too, and are not one.  When every such failure names the
     * same mailbox server, its users fail through every front end: that
     * back end's fault (a database down), not the farm's.
     */

    if (!farm->fault
        && ngx_http_exchange_health_count(ctx, &farm->window, 0)
        && ngx_http_exchange_health_failing_all_locked(conf, ctx->slot))
    {
        ev.fails = farm->window.fails;
        ev.window = now - farm->window.start;

        if (farm->backends == 1) {
            ngx_http_exchange_health_backend_fault_locked(ctx, &ev);

        } else {
            ngx_http_exchange_health_farm_fault_locked(ctx, a, &ev);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_exchange_health_log(ctx, a, &ev);
}


static void
ngx_http_exchange_health_unconfirmed(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t n)
{
    ngx_uint_t                           i;
    ngx_http_exchange_health_attempt_t  *a;

    /* the failures of the first n servers tried, each its own server's */

    for (i = 0; i < n; i++) {
        a = &ctx->attempt[i];

        if (a->verdict != NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
            continue;
        }

        if (a->scope == NGX_HTTP_EXCHANGE_HEALTH_SCOPE_USER) {
            ngx_http_exchange_health_user_failure(ctx, a);

        } else {
            ngx_http_exchange_health_blame(ctx, a, 0);
        }
    }
}


static ngx_uint_t
ngx_http_exchange_health_backend_known(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_http_exchange_health_farm_t  *farm;

    /* read unlocked: a stale answer misjudges one failure at most */

    if (a->backend.len == 0 || ctx->conf->sh == NULL) {
        return 0;
    }

    farm = &ctx->conf->sh->farm[ctx->slot];

    return farm->known_len == a->backend.len
           && ngx_current_msec - farm->known_last <= ctx->conf->max_time
           && ngx_strncasecmp(farm->known, a->backend.data, a->backend.len)
              == 0;
}


ngx_uint_t
ngx_http_exchange_health_same_failure(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_str_t                           *rule;
    ngx_uint_t                           i;
    ngx_http_exchange_health_attempt_t  *a;

    /* every server tried failed the request the same way: by one rule */

    rule = NULL;

    for (i = 0; i < ctx->nattempts; i++) {
        a = &ctx->attempt[i];

        if (a->verdict != NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
            continue;
        }

        if (rule == NULL) {
            rule = &a->rule;
            continue;
        }

        if (rule->len != a->rule.len
            || ngx_strncmp(rule->data, a->rule.data, rule->len) != 0)
        {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "exchange health: rules \"%V\" and \"%V\": "
                           "each server failed its own way", rule, &a->rule);
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_exchange_health_note_backend_locked(
    ngx_http_exchange_health_farm_t *farm, ngx_str_t *backend)
{
    /* one name kept; a second name, or a failure with none, ends it */

    if (farm->backends == 2) {
        return;
    }

    if (backend == NULL) {
        farm->backends = 2;
        return;
    }

    if (farm->backends == 0) {
        farm->backend_len = (uint8_t) ngx_min(backend->len,
                                       NGX_HTTP_EXCHANGE_HEALTH_BACKEND_LEN);
        ngx_memcpy(farm->backend, backend->data, farm->backend_len);
        farm->backends = 1;
        return;
    }

    if (farm->backend_len != backend->len
        || ngx_strncasecmp(farm->backend, backend->data, backend->len) != 0)
    {
        farm->backends = 2;
    }
}


static void
ngx_http_exchange_health_user_failure(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_slab_pool_t                  *shpool;
    ngx_http_exchange_health_slot_t  *slot;

    slot = ngx_http_exchange_health_slot(ctx, a);
    if (slot == NULL) {
        return;
    }

    shpool = ctx->conf->shpool;

    (void) ngx_atomic_fetch_add(&slot->requests, 1);

    ngx_shmtx_lock(&shpool->mutex);

    slot->user_failures++;
    ngx_http_exchange_health_record(ctx, a, &slot->last);
    slot->last.user = 1;

    ngx_shmtx_unlock(&shpool->mutex);
}


static void
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
     * The trial got a challenge (NTLM): its answer, on the same
     * connection, is the trial.  The slot's trial stays pending (it ends
     * by itself after the trial time if the answer never comes); this
     * attempt is no longer it, so settling does not let it go.
     */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: peer %ui's trial goes on on its "
                   "connection", a->peer);

    a->trial = 0;
}


ngx_uint_t
ngx_http_exchange_health_trial_bound(ngx_http_exchange_health_ctx_t *ctx,
    ngx_uint_t peer)
{
    ngx_http_exchange_health_slot_t    *slot;
    ngx_http_exchange_health_server_t  *srv;

    /*
     * Whether a bound request may finish the handshake that a trial of
     * its ejected server began: the server is still ejected, its trial
     * still pending, and no operator or probe drained it since.  Read
     * unlocked: at worst the request meets the server as a trial late.
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
           && ngx_http_exchange_health_trial_pending(slot, ngx_current_msec)
           && !ngx_http_exchange_health_drained(ctx->conf, slot);
}


static ngx_uint_t
ngx_http_exchange_health_count(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_window_t *w, ngx_uint_t confirmed)
{
    ngx_uint_t                            i;
    ngx_msec_t                            now;
    ngx_http_exchange_health_srv_conf_t  *conf;

    /* true when the window holds enough failures from enough users */

    conf = ctx->conf;
    now = ngx_current_msec;

    if (w->fails == 0 || now - w->start > conf->window) {
        ngx_memzero(w, sizeof(ngx_http_exchange_health_window_t));
        w->start = now;
    }

    w->fails++;

    if (confirmed) {
        w->confirmed = 1;

    } else if (ctx->voter) {
        for (i = 0; i < w->nusers; i++) {
            if (w->users[i] == ctx->user) {
                break;
            }
        }

        if (i == w->nusers && i < NGX_HTTP_EXCHANGE_HEALTH_USERS) {
            w->users[w->nusers++] = ctx->user;
        }
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: counted, %ui of %ui failures, "
                   "%ui of %ui users, confirmed %ui",
                   (ngx_uint_t) w->fails, conf->fails,
                   (ngx_uint_t) w->nusers, conf->users,
                   (ngx_uint_t) w->confirmed);

    return w->fails >= conf->fails
           && (w->confirmed || w->nusers >= conf->users);
}


static void
ngx_http_exchange_health_record(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_failure_t *f)
{
    f->time = ngx_time();
    f->status = a->status;
    f->user = 0;

    /* cut to size and NUL-terminated; an empty string may have no data */

    ngx_cpystrn(f->rule, a->rule.data,
                ngx_min(a->rule.len + 1, sizeof(f->rule)));
    ngx_cpystrn(f->method, ctx->method.data,
                ngx_min(ctx->method.len + 1, sizeof(f->method)));
    ngx_cpystrn(f->error, a->error.data,
                ngx_min(a->error.len + 1, sizeof(f->error)));

    /* the path only: query strings may carry secrets */
    ngx_cpystrn(f->uri, ctx->uri.data,
                ngx_min(ctx->uri.len + 1, sizeof(f->uri)));
}


static uint32_t
ngx_http_exchange_health_user(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * Who is asking: the OWA session, else the credentials, else the IP.
     * Any bytes a client sends, so a keyed hash: nobody can aim at
     * another's slot of the proven table.
     */

    sh = ctx->conf->shpool->data;

    return (uint32_t) ngx_http_exchange_health_siphash(&sh->secret,
                                                       ctx->user_key.data,
                                                       ctx->user_key.len);
}


static void
ngx_http_exchange_health_prove(ngx_http_exchange_health_ctx_t *ctx)
{
    uint32_t                          *pair;
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * The session got an answer a mailbox server took part in: Exchange
     * signed it in.  A session has a pair of slots, the newest first: a
     * real user's proof is lost only to two others of the same pair, not
     * to one (with a slot each, 12 users collided in 6 % of starts).
     * Unlocked: each slot is one aligned word, written only when the
     * pair changes, and a write lost to a race costs one vote.
     */

    sh = ctx->conf->shpool->data;
    ctx->user = ngx_http_exchange_health_user(ctx);
    pair = ngx_http_exchange_health_proven_pair(sh, ctx->user);

    if (pair[0] != ctx->user) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "exchange health: session %08xD proven", ctx->user);

        if (pair[1] != ctx->user) {
            pair[1] = pair[0];
        }

        pair[0] = ctx->user;
    }
}


static ngx_uint_t
ngx_http_exchange_health_voter(ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /*
     * Whether a failure no other server confirmed may count toward an
     * ejection or a farm-wide fault.  OWA is on the internet: anyone can
     * send a made-up cookie or credentials, and each would be a user.  A
     * session votes when Exchange is known to have signed it in: it got
     * an answer a mailbox server took part in before, or this failure
     * names the mailbox server that answered (X-BEServer): the front end
     * proxies only requests it signed in.
     */

    ctx->user = ngx_http_exchange_health_user(ctx);

    /* a target computed, not reached, proves no sign-in */

    if ((a->backend.len && !a->backend_computed) || ctx->conf->any_voter) {
        return 1;
    }

    sh = ctx->conf->shpool->data;

    if (ngx_http_exchange_health_in_pair(sh, ctx->user)) {
        return 1;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: session %08xD not known signed in: "
                   "no vote", ctx->user);

    return 0;
}


ngx_uint_t
ngx_http_exchange_health_proven(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_http_exchange_health_shctx_t  *sh;

    /* the session got an answer a mailbox server took part in before */

    if (ctx == NULL || !ctx->signed_in) {
        return 0;
    }

    sh = ctx->conf->shpool->data;
    ctx->user = ngx_http_exchange_health_user(ctx);

    return ngx_http_exchange_health_in_pair(sh, ctx->user);
}


static ngx_uint_t
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


void
ngx_http_exchange_health_name_from_fqdn_locked(
    ngx_http_exchange_health_server_t *srv)
{
    size_t  i;

    /*
     * Until a server names itself in X-FEServer, the first label of its
     * FQDN names it: Exchange's NetBIOS name, in capitals.
     */

    if (srv->name.len) {
        return;
    }

    for (i = 0; i < srv->fqdn_len && i < NGX_HTTP_EXCHANGE_HEALTH_NAME_LEN
                && srv->fqdn[i] != '.'; i++)
    {
        srv->name.data[i] = ngx_toupper(srv->fqdn[i]);
    }

    srv->name.len = i;
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


ngx_uint_t
ngx_http_exchange_health_failing(ngx_http_exchange_health_srv_conf_t *conf,
    ngx_uint_t p, ngx_uint_t peer)
{
    ngx_http_exchange_health_server_t  *srv;

    /* read unlocked outside avoid(): a stale mark misleads one request */

    if (peer == NGX_HTTP_EXCHANGE_HEALTH_UNTRACKED) {
        return 0;
    }

    srv = conf->servers[peer];

    return srv && srv->slot[p].failing;
}


static void
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


static ngx_uint_t
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


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * A request's outcome is settled once, when the answer that reaches the
 * client is judged.  If a server failed and another then answered well,
 * the first server is at fault for sure.  If every server tried failed,
 * the fault is the request's, the user's or the whole farm's, and no
 * server is blamed.  A failure seen with no second opinion counts toward
 * ejection only when it comes from several users.
 */


static void ngx_http_exchange_health_success(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a);
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
static ngx_uint_t ngx_http_exchange_health_count(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_window_t *w, ngx_uint_t confirmed);
static void ngx_http_exchange_health_record(
    ngx_http_exchange_health_ctx_t *ctx,
    ngx_http_exchange_health_attempt_t *a,
    ngx_http_exchange_health_failure_t *f);


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


/*
 * Whether an attempt's failure counts.  A refusal of credentials no
 * server had accepted (classify.c) was sent on as a diagnosis: it is
 * its server's failure only if the next server's answer proved the
 * sign-in; otherwise nobody's, as the client's refusal.
 */
#define ngx_http_exchange_health_counted(a, proof)                           \
    ((a)->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED                         \
     && (!(a)->unproven || (proof)))


void
ngx_http_exchange_health_settle(ngx_http_exchange_health_ctx_t *ctx)
{
    ngx_uint_t                           i, n, failed, proof, verdict;
    ngx_http_exchange_health_slot_t     *slot;
    ngx_http_exchange_health_attempt_t  *a, *last;

    if (ctx->settled || ctx->nattempts == 0) {
        return;
    }

    ctx->settled = 1;

    n = ctx->nattempts;
    last = &ctx->attempt[n - 1];

    /*
     * Most requests: one server asked, its answer healthy and no proof
     * of a sign-in in it.  What success() does with such an answer is
     * to count it, and nothing else is left to settle.
     */

    if (n == 1 && last->verdict == NGX_HTTP_EXCHANGE_HEALTH_HEALTHY
        && !last->mailbox && !last->unproven)
    {
        slot = ngx_http_exchange_health_slot(ctx, last);

        if (slot) {
            (void) ngx_atomic_fetch_add(&slot->requests, 1);
        }

        verdict = NGX_HTTP_EXCHANGE_HEALTH_V_HEALTHY;
        goto settled;
    }

    /* the answer that reached the client proves the sign-in */

    proof = last->verdict == NGX_HTTP_EXCHANGE_HEALTH_HEALTHY
            && last->mailbox && ngx_http_exchange_health_signed_in(ctx);

    /* earlier servers whose answers were classified failures */

    failed = 0;

    for (i = 0; i < n - 1; i++) {
        if (ngx_http_exchange_health_counted(&ctx->attempt[i], proof)) {
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

    /*
     * The last server refused credentials no server accepted, and the
     * refusal could not be sent on (one server, a write, no tries
     * left): the client's, as it was before any server was asked.
     */

    if (last->unproven) {
        ngx_http_exchange_health_success(ctx, last);
        ngx_http_exchange_health_unconfirmed(ctx, n - 1);

        verdict = failed ? NGX_HTTP_EXCHANGE_HEALTH_V_FAILURE
                         : NGX_HTTP_EXCHANGE_HEALTH_V_HEALTHY;
        goto settled;
    }

    switch (last->verdict) {

    case NGX_HTTP_EXCHANGE_HEALTH_HEALTHY:
        ngx_http_exchange_health_success(ctx, last);

        verdict = NGX_HTTP_EXCHANGE_HEALTH_V_HEALTHY;

        for (i = 0; i < n - 1; i++) {
            a = &ctx->attempt[i];

            if (ngx_http_exchange_health_counted(a, proof)) {

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
        if (ctx->attempt[i].trial) {
            ngx_http_exchange_health_release_trial(ctx, &ctx->attempt[i]);
        }
    }

    ctx->verdict_text = ngx_http_exchange_health_verdicts[verdict];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "exchange health: settled \"%V\" after %ui tries",
                   &ctx->verdict_text, n);
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

    if (a->mailbox && ngx_http_exchange_health_signed_in(ctx)) {
        ngx_http_exchange_health_prove(ctx);
    }

    /*
     * Only a signed-in answer from a mailbox shows the path works.  Read
     * unlocked first: on healthy traffic there is nothing to change.
     */

    if (!a->mailbox
        || !ngx_http_exchange_health_signed_in(ctx)
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
    ngx_http_exchange_health_timeline_locked(conf, a->peer, ctx->slot,
                                         NGX_HTTP_EXCHANGE_HEALTH_T_FAILURE);

    if (confirmed && a->verdict == NGX_HTTP_EXCHANGE_HEALTH_FAILED) {
        slot->rescued++;
        ngx_http_exchange_health_timeline_locked(conf, a->peer, ctx->slot,
                                         NGX_HTTP_EXCHANGE_HEALTH_T_RESCUED);
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
    ngx_http_exchange_health_timeline_locked(ctx->conf, a->peer, ctx->slot,
                                         NGX_HTTP_EXCHANGE_HEALTH_T_RESCUED);
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

        if (!ngx_http_exchange_health_counted(f, 0)) {
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

        if (!ngx_http_exchange_health_counted(a, 0)) {
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
    ngx_str_t  *path;

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
    path = ngx_http_exchange_health_path(ctx);
    ngx_cpystrn(f->uri, path->data, ngx_min(path->len + 1, sizeof(f->uri)));
}

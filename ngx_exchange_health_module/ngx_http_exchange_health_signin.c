
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * Signed-in probes: what healthcheck.htm cannot see.  With a monitoring
 * mailbox's credentials, each server is signed in to with OWA's forms
 * (POST /owa/auth.owa), and OWA's and ECP's pages are asked for with the
 * session cookies it sets, straight to that server, every interval.  A
 * failure there is the one users would meet: "fails" in a row eject the
 * server for that protocol, and a good answer re-admits it (state.c).
 *
 * A probe is claimed in the zone per server, as healthcheck.htm's are:
 * whichever worker claims it reads the server's session cookies from the
 * zone and signs in again only when the server sends it to the logon
 * page.  Sign-ins are few: at most three per server in fifteen minutes,
 * and none on any server for five minutes after the account was refused,
 * as Active Directory locks an account out after a few bad passwords.
 *
 * The password is read from a file only root may read, kept in the
 * configuration as the form's tail, and sent only in the sign-in's body:
 * it is never logged, shown, or saved, and its buffers are zeroed.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_TICK     1000
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BUFFER   16384
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WINDOW   (15 * 60 * 1000)
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAIT     (5 * 60 * 1000)
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BATCH    64

#define NGX_HTTP_EXCHANGE_HEALTH_STEP_SIGNIN     0
#define NGX_HTTP_EXCHANGE_HEALTH_STEP_GET        1


typedef struct {
    ngx_uint_t                             step;
    ngx_uint_t                             protocol;
    ngx_uint_t                             signed_in;  /* by this probe */
    ngx_str_t                              jar;
} ngx_http_exchange_health_job_t;


typedef struct {
    ngx_uint_t                             peer;
    ngx_uint_t                             signin;
} ngx_http_exchange_health_signin_due_t;


static void ngx_http_exchange_health_signin_tick(ngx_event_t *ev);
static ngx_uint_t ngx_http_exchange_health_signin_may_locked(
    ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_signin_t *rec, ngx_msec_t now);
static void ngx_http_exchange_health_signin_start(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer,
    ngx_uint_t signin);
static void ngx_http_exchange_health_signin_post(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_signin_get(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_signin_answer(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_posted(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_got(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_refused(
    ngx_http_exchange_health_probe_t *pr,
    ngx_http_exchange_health_answer_t *a);
static void ngx_http_exchange_health_signin_record(
    ngx_http_exchange_health_probe_t *pr, ngx_uint_t p, ngx_uint_t result,
    ngx_uint_t status, u_char *why);
static void ngx_http_exchange_health_signin_next(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_signin_finish(
    ngx_http_exchange_health_probe_t *pr);
static ngx_str_t ngx_http_exchange_health_signin_name_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, u_char *buf,
    size_t size);


/* the signed-in page of each protocol: what a browser asks for first */
static ngx_str_t  ngx_http_exchange_health_signin_uri[] = {
    ngx_string("/owa/"),
    ngx_string("/ecp/")
};


void
ngx_http_exchange_health_signin_init_process(ngx_cycle_t *cycle,
    ngx_http_exchange_health_srv_conf_t *hscf)
{
    ngx_event_t  *ev;

    ev = &hscf->signin->timer;

    ev->handler = ngx_http_exchange_health_signin_tick;
    ev->data = hscf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, ngx_random() % NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_TICK + 1);
}


static void
ngx_http_exchange_health_signin_tick(ngx_event_t *ev)
{
    ngx_uint_t                               i, p, n, ndue;
    ngx_msec_t                               now;
    ngx_http_exchange_health_signin_t       *rec;
    ngx_http_exchange_health_server_t       *srv;
    ngx_http_exchange_health_srv_conf_t     *conf;
    ngx_http_exchange_health_upstream_t     *up;
    ngx_http_exchange_health_probe_conf_t   *pc;
    ngx_http_exchange_health_signin_due_t    due[
                                         NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BATCH];

    /* a worker that is leaving probes no more: its configuration is old */

    if (ngx_exiting) {
        return;
    }

    conf = ev->data;
    pc = conf->probe;
    up = conf->sh;
    now = ngx_current_msec;
    n = conf->nprimary + conf->nbackup;
    ndue = 0;

    ngx_shmtx_lock(&conf->shpool->mutex);

    if (up->signin_file != conf->signin->file_id) {
        up->signin_file = conf->signin->file_id;
        up->signin_refused = 0;
    }

    for (i = 0; i < n && ndue < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BATCH; i++) {

        srv = conf->servers[i];
        if (srv == NULL) {
            continue;
        }

        if (srv->signin == NULL) {
            /* a full zone leaves the server to healthcheck.htm */
            srv->signin = ngx_slab_calloc_locked(conf->shpool,
                                     sizeof(ngx_http_exchange_health_signin_t));
            if (srv->signin == NULL) {
                continue;
            }
        }

        rec = srv->signin;

        /*
         * One probe per server at a time, each interval, by any worker.
         * A probe is five exchanges at most (sign in, a page, sign in
         * again, the page again, the other page), each with a timeout to
         * connect and one to read: one not over by then died with its
         * worker.
         */

        if ((ngx_msec_int_t) (now - rec->next) < 0
            || (rec->busy && now - rec->busy < 10 * pc->timeout + 1000))
        {
            continue;
        }

        rec->next = now + pc->interval;

        due[ndue].peer = i;
        due[ndue].signin = (rec->jar_len == 0);

        if (due[ndue].signin
            && !ngx_http_exchange_health_signin_may_locked(conf, rec, now))
        {
            /* no session and no sign-in allowed yet: nothing to ask */

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS; p++) {
                if (rec->result[p].result
                    != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED)
                {
                    rec->result[p].result =
                                        NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAITING;
                }
            }

            continue;
        }

        rec->busy = now ? now : 1;
        ndue++;
    }

    ngx_shmtx_unlock(&conf->shpool->mutex);

    for (i = 0; i < ndue; i++) {
        ngx_http_exchange_health_signin_start(conf, due[i].peer,
                                              due[i].signin);
    }

    ngx_add_timer(ev, NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_TICK);
}


static ngx_uint_t
ngx_http_exchange_health_signin_may_locked(
    ngx_http_exchange_health_srv_conf_t *conf,
    ngx_http_exchange_health_signin_t *rec, ngx_msec_t now)
{
    ngx_uint_t  i;

    /*
     * The account's lockout: after a refusal no server signs in for a
     * while; and a server signs in at most ATTEMPTS times in a window,
     * whatever the answers (one that forgets its sessions at once).
     */

    if (conf->sh->signin_refused
        && now - conf->sh->signin_refused
           < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAIT)
    {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_ATTEMPTS; i++) {
        if (rec->attempts[i] == 0
            || now - rec->attempts[i] >= NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WINDOW)
        {
            rec->attempts[i] = now ? now : 1;
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_exchange_health_signin_start(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer,
    ngx_uint_t signin)
{
    size_t                             size;
    ngx_str_t                         *host;
    ngx_http_exchange_health_job_t    *job;
    ngx_http_exchange_health_probe_t  *pr;
    ngx_http_exchange_health_signin_t *rec;

    host = ngx_http_exchange_health_probe_host(conf, peer);

    /* a request line and headers, the cookies, or the form */

    size = 512 + 4 * host->len + conf->signin->form.len
           + NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN;

    pr = ngx_http_exchange_health_probe_new(conf, peer, size,
                                     ngx_http_exchange_health_signin_answer);
    if (pr == NULL) {
        return;
    }

    job = ngx_pcalloc(pr->pool, sizeof(ngx_http_exchange_health_job_t));
    pr->data = job;
    pr->head_only = 1;
    pr->response = ngx_create_temp_buf(pr->pool,
                                       NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BUFFER);

    if (job == NULL || pr->response == NULL) {
        ngx_http_exchange_health_signin_finish(pr);
        return;
    }

    job->jar.data = ngx_pnalloc(pr->pool, NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN);
    if (job->jar.data == NULL) {
        ngx_http_exchange_health_signin_finish(pr);
        return;
    }

    job->protocol = (conf->signin->protocols
                     & 1 << NGX_HTTP_EXCHANGE_HEALTH_OWA)
                    ? NGX_HTTP_EXCHANGE_HEALTH_OWA
                    : NGX_HTTP_EXCHANGE_HEALTH_ECP;

    ngx_shmtx_lock(&conf->shpool->mutex);

    rec = conf->servers[peer]->signin;
    job->jar.len = rec->jar_len;
    ngx_memcpy(job->jar.data, rec->jar, rec->jar_len);

    ngx_shmtx_unlock(&conf->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: signed-in probe of peer %ui, %s",
                   peer, signin ? "signing in" : "with its session");

    if (signin) {
        ngx_http_exchange_health_signin_post(pr);

    } else {
        ngx_http_exchange_health_signin_get(pr);
    }
}


static void
ngx_http_exchange_health_signin_post(ngx_http_exchange_health_probe_t *pr)
{
    u_char                                  *p, *body;
    size_t                                   len;
    ngx_str_t                               *host;
    ngx_buf_t                               *b;
    ngx_http_exchange_health_job_t          *job;
    ngx_http_exchange_health_signin_conf_t  *sc;

    job = pr->data;
    sc = pr->conf->signin;
    host = ngx_http_exchange_health_probe_host(pr->conf, pr->peer);
    b = pr->request;

    job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_SIGNIN;

    /* the body first, at the end of the buffer, to know its length */

    body = b->end - (3 * host->len + sc->form.len + 64);

    p = ngx_cpymem(body, "destination=https%3A%2F%2F",
                   sizeof("destination=https%3A%2F%2F") - 1);
    p = ngx_http_exchange_health_form_escape(p, host->data, host->len);
    p = ngx_cpymem(p, "%2Fowa%2F", sizeof("%2Fowa%2F") - 1);
    p = ngx_cpymem(p, sc->form.data, sc->form.len);
    len = p - body;

    b->pos = b->start;
    b->last = ngx_sprintf(b->start,
                          "POST /owa/auth.owa HTTP/1.1\r\nHost: %V\r\n"
                          "User-Agent: nginx exchange_health probe\r\n"
                          "Content-Type: application/x-www-form-urlencoded"
                          "\r\nContent-Length: %uz\r\n"
                          "Connection: close\r\n\r\n", host, len);

    b->last = ngx_movemem(b->last, body, len);

    ngx_explicit_memzero(b->last, b->end - b->last);

    /* a new session: the cookies it sets replace the old */

    job->jar.len = 0;

    ngx_http_exchange_health_probe_connect(pr);
}


static void
ngx_http_exchange_health_signin_get(ngx_http_exchange_health_probe_t *pr)
{
    ngx_str_t                       *host;
    ngx_buf_t                       *b;
    ngx_http_exchange_health_job_t  *job;

    job = pr->data;
    host = ngx_http_exchange_health_probe_host(pr->conf, pr->peer);
    b = pr->request;

    job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_GET;

    /* the sign-in's form, if any, is gone from the buffer first */

    ngx_explicit_memzero(b->start, b->end - b->start);

    b->pos = b->start;
    b->last = ngx_sprintf(b->start,
                          "GET %V HTTP/1.1\r\nHost: %V\r\n"
                          "User-Agent: nginx exchange_health probe\r\n"
                          "Cookie: %V\r\nConnection: close\r\n\r\n",
                          &ngx_http_exchange_health_signin_uri[job->protocol],
                          host, &job->jar);

    ngx_http_exchange_health_probe_connect(pr);
}


static void
ngx_http_exchange_health_signin_answer(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    ngx_http_exchange_health_job_t  *job;

    /* the answer is read: the connection is done with, whatever it says */

    job = pr->data;

    ngx_http_exchange_health_probe_close(pr);

    if (job->step == NGX_HTTP_EXCHANGE_HEALTH_STEP_SIGNIN) {
        ngx_http_exchange_health_signin_posted(pr, error);

    } else {
        ngx_http_exchange_health_signin_got(pr, error);
    }
}


static void
ngx_http_exchange_health_signin_posted(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    u_char                                 why[
                                         NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    ngx_uint_t                             p;
    ngx_http_exchange_health_job_t        *job;
    ngx_http_exchange_health_answer_t      a;
    ngx_http_exchange_health_signin_t     *rec;
    ngx_http_exchange_health_srv_conf_t   *conf;

    job = pr->data;
    conf = pr->conf;

    ngx_http_exchange_health_signin_read_answer(pr->response, &a, &job->jar);

    if (error == NULL && a.complete && a.cadata && !a.jar_full
        && a.status >= 300 && a.status < 400)
    {
        /* signed in: the session is every worker's from now on */

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui signed in, %uz bytes "
                       "of cookies", pr->peer, job->jar.len);

        ngx_shmtx_lock(&conf->shpool->mutex);

        rec = conf->servers[pr->peer]->signin;
        rec->jar_len = job->jar.len;
        ngx_memcpy(rec->jar, job->jar.data, job->jar.len);
        conf->sh->signin_refused = 0;

        ngx_shmtx_unlock(&conf->shpool->mutex);

        job->signed_in = 1;
        ngx_http_exchange_health_signin_get(pr);
        return;
    }

    if (error == NULL && a.complete && !a.jar_full
        && (a.status == 401 || a.status == 403
            || (a.status >= 200 && a.status < 300)
            || (a.status >= 300 && a.status < 400
                && a.location.len
                && ngx_strlcasestrn(a.location.data,
                                    a.location.data + a.location.len,
                                    (u_char *) "logon.aspx", 10 - 1))))
    {
        ngx_http_exchange_health_signin_refused(pr, &a);
        ngx_http_exchange_health_signin_finish(pr);
        return;
    }

    /* users cannot sign in on it either: both protocols fail */

    if (error) {
        ngx_snprintf(why, sizeof(why) - 1, "sign-in: %s%Z", error);

    } else if (a.jar_full) {
        ngx_snprintf(why, sizeof(why) - 1,
                     "sign-in: its cookies are over %d bytes%Z",
                     NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN);

    } else {
        (void) ngx_http_exchange_health_signin_verdict(&a, why + 9);
        ngx_memcpy(why, "sign-in: ", 9);
    }

    why[sizeof(why) - 1] = '\0';

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS; p++) {
        if (conf->signin->protocols & (1 << p)) {
            ngx_http_exchange_health_signin_record(pr, p,
                                       NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED,
                                       a.status, why);
        }
    }

    ngx_http_exchange_health_signin_finish(pr);
}


static void
ngx_http_exchange_health_signin_got(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    u_char                                why[
                                         NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    ngx_uint_t                            result, may;
    ngx_http_exchange_health_job_t       *job;
    ngx_http_exchange_health_answer_t     a;
    ngx_http_exchange_health_signin_t    *rec;
    ngx_http_exchange_health_srv_conf_t  *conf;

    job = pr->data;
    conf = pr->conf;

    ngx_http_exchange_health_signin_read_answer(pr->response, &a, NULL);

    if (error) {
        result = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
        ngx_snprintf(why, sizeof(why) - 1, "%s%Z", error);

    } else {
        result = ngx_http_exchange_health_signin_verdict(&a, why);
    }

    why[sizeof(why) - 1] = '\0';

    if (result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_LOGON) {

        if (job->signed_in) {
            /* a session it just set, refused: its sign-in is broken */
            result = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
            ngx_cpystrn(why, (u_char *) "sent to the logon page again "
                        "right after signing in", sizeof(why));

        } else {
            /* the session expired: sign in again, if it may */

            ngx_shmtx_lock(&conf->shpool->mutex);

            rec = conf->servers[pr->peer]->signin;
            rec->jar_len = 0;
            may = ngx_http_exchange_health_signin_may_locked(conf, rec,
                                                          ngx_current_msec);

            ngx_shmtx_unlock(&conf->shpool->mutex);

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "exchange health: peer %ui session expired, "
                           "signing in again: %ui", pr->peer, may);

            if (may) {
                ngx_http_exchange_health_signin_post(pr);
                return;
            }

            result = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAITING;
            ngx_cpystrn(why, (u_char *) "the session expired; the next "
                        "sign-in waits for its back-off", sizeof(why));
        }
    }

    ngx_http_exchange_health_signin_record(pr, job->protocol, result,
                                           a.status, why);

    ngx_http_exchange_health_signin_next(pr);
}


static void
ngx_http_exchange_health_signin_refused(ngx_http_exchange_health_probe_t *pr,
    ngx_http_exchange_health_answer_t *a)
{
    u_char                                  why[
                                          NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    u_char                                  buf[64], safe[3 * 64];
    u_char                                 *r, *last, *detail;
    ngx_str_t                               name;
    ngx_uint_t                              p, warn;
    ngx_msec_t                              now;
    ngx_http_exchange_health_srv_conf_t    *conf;
    ngx_http_exchange_health_signin_conf_t *sc;

    conf = pr->conf;
    sc = conf->signin;
    now = ngx_current_msec;

    /* the logon page again; its "reason=" is all it says of why */

    r = NULL;
    last = a->location.data + a->location.len;

    if (a->location.len) {
        r = ngx_strlcasestrn(a->location.data, last, (u_char *) "reason=",
                             7 - 1);
    }

    ngx_memzero(why, sizeof(why));
    p = sizeof("the sign-in was refused: ") - 1;
    ngx_memcpy(why, "the sign-in was refused: ", p);

    if (r && r + 7 < last && r[7] >= '0' && r[7] <= '9') {
        ngx_snprintf(why + p, 64, "the logon page again, reason=%c", r[7]);

    } else {
        ngx_snprintf(why + p, 64, "status %ui", a->status);
    }

    detail = why + p;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS; p++) {
        if (sc->protocols & (1 << p)) {
            ngx_http_exchange_health_signin_record(pr, p,
                                      NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED,
                                      a->status, why);
        }
    }

    ngx_shmtx_lock(&conf->shpool->mutex);

    conf->sh->signin_refused = now ? now : 1;

    /* one line per interval for the whole farm: it is one account */

    warn = (conf->sh->signin_warned == 0
            || now - conf->sh->signin_warned >= conf->probe->interval);

    if (warn) {
        conf->sh->signin_warned = now ? now : 1;
    }

    name = ngx_http_exchange_health_signin_name_locked(conf, pr->peer, buf,
                                                       sizeof(buf));

    ngx_shmtx_unlock(&conf->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui refused the sign-in, "
                   "warned %ui", pr->peer, warn);

    if (!warn) {
        return;
    }

    name = ngx_http_exchange_health_log_text(safe, sizeof(safe), name.data,
                                             name.len);

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "exchange_health: upstream \"%V\": server %V (%V) refused "
                  "the signed-in probe's sign-in as \"%V\" (%s): check the "
                  "password in %V; no server is ejected for it, and no "
                  "server is signed in to for %dm", &conf->name,
                  &conf->addrs[pr->peer], &name, &sc->user, detail,
                  &sc->file, NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAIT / 60000);
}


static void
ngx_http_exchange_health_signin_record(ngx_http_exchange_health_probe_t *pr,
    ngx_uint_t p, ngx_uint_t result, ngx_uint_t status, u_char *why)
{
    u_char                                    buf[64], safe[3 * 64];
    u_char                                    text[
                                          NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    u_char                                    dbuf[NGX_INT64_LEN + 8];
    size_t                                    i;
    ngx_str_t                                 name, reason, proto, length;
    ngx_msec_t                                duration;
    ngx_http_exchange_health_change_e         change;
    ngx_http_exchange_health_signin_result_t *r;
    ngx_http_exchange_health_srv_conf_t      *conf;

    conf = pr->conf;
    duration = 0;

    ngx_shmtx_lock(&conf->shpool->mutex);

    r = &conf->servers[pr->peer]->signin->result[p];

    r->time = ngx_time();
    r->status = (uint16_t) status;
    r->result = (uint8_t) result;
    ngx_cpystrn(r->why, why, sizeof(r->why));

    if (result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_OK) {
        r->fails = 0;
        r->why[0] = '\0';

    } else if (result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED
               && r->fails < 255)
    {
        r->fails++;
    }

    /* what it means for the server: state.c's */

    change = ngx_http_exchange_health_signin_probed_locked(conf,
                                  conf->per_server ? 0 : p, pr->peer, r,
                                  &ngx_http_exchange_health_signin_uri[p],
                                  &duration);

    name = ngx_http_exchange_health_signin_name_locked(conf, pr->peer, buf,
                                                       sizeof(buf));

    ngx_shmtx_unlock(&conf->shpool->mutex);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: signed-in probe of peer %ui for %s: "
                   "%s, change %ui", pr->peer,
                   ngx_http_exchange_health_protocols[p].name,
                   ngx_http_exchange_health_signin_name(result),
                   (ngx_uint_t) change);

    if (change == ngx_http_exchange_health_nothing) {
        return;
    }

    name = ngx_http_exchange_health_log_text(safe, sizeof(safe), name.data,
                                             name.len);
    /* the server's words, printable and with no '%' */

    reason.data = text;
    reason.len = ngx_min(ngx_strlen(why), sizeof(text));

    for (i = 0; i < reason.len; i++) {
        text[i] = (why[i] < ' ' || why[i] >= 0x7f || why[i] == '%')
                  ? '?' : why[i];
    }

    length = ngx_http_exchange_health_duration(dbuf, duration);

    if (conf->per_server) {
        ngx_str_set(&proto, "all protocols");

    } else {
        proto.data = (u_char *) ngx_http_exchange_health_protocols[p].name;
        proto.len = ngx_strlen(proto.data);
    }

    /* worded as live traffic's lines, with the probe's rule */

    if (change == ngx_http_exchange_health_ejected) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "ejected for %V for %V after %ui failures in a row of "
                      "its signed-in probe as \"%V\": rule "
                      "\"signed-in-probe\" on GET %V, status %ui: %V",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &length, conf->probe_fails, &conf->signin->user,
                      &ngx_http_exchange_health_signin_uri[p], status,
                      &reason);

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "re-admitted for %V after a good answer to its "
                      "signed-in probe as \"%V\" of GET %V",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &conf->signin->user,
                      &ngx_http_exchange_health_signin_uri[p]);
    }
}


static void
ngx_http_exchange_health_signin_next(ngx_http_exchange_health_probe_t *pr)
{
    ngx_uint_t                       p;
    ngx_http_exchange_health_job_t  *job;

    job = pr->data;

    /* scope=server keeps one state: its first protocol answers for all */

    if (pr->conf->per_server) {
        ngx_http_exchange_health_signin_finish(pr);
        return;
    }

    for (p = job->protocol + 1;
         p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS;
         p++)
    {
        if (pr->conf->signin->protocols & (1 << p)) {
            job->protocol = p;
            ngx_http_exchange_health_signin_get(pr);
            return;
        }
    }

    ngx_http_exchange_health_signin_finish(pr);
}


static void
ngx_http_exchange_health_signin_finish(ngx_http_exchange_health_probe_t *pr)
{
    ngx_http_exchange_health_job_t       *job;
    ngx_http_exchange_health_srv_conf_t  *conf;

    conf = pr->conf;

    ngx_shmtx_lock(&conf->shpool->mutex);
    conf->servers[pr->peer]->signin->busy = 0;
    ngx_shmtx_unlock(&conf->shpool->mutex);

    ngx_http_exchange_health_probe_close(pr);

    /* the form and the session leave no copy behind in freed memory */

    job = pr->data;

    if (job && job->jar.data) {
        ngx_explicit_memzero(job->jar.data, NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN);
    }

    ngx_explicit_memzero(pr->request->start,
                         pr->request->end - pr->request->start);

    if (pr->response) {
        ngx_explicit_memzero(pr->response->start,
                             pr->response->end - pr->response->start);
    }

    ngx_destroy_pool(pr->pool);
}


static ngx_str_t
ngx_http_exchange_health_signin_name_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, u_char *buf,
    size_t size)
{
    ngx_str_t                           name;
    ngx_http_exchange_health_server_t  *srv;

    srv = conf->servers[peer];

    name.data = buf;
    name.len = ngx_min(srv->name.len, size);
    ngx_memcpy(buf, srv->name.data, name.len);

    if (name.len == 0) {
        ngx_str_set(&name, "-");
    }

    return name;
}


const char *
ngx_http_exchange_health_signin_name(ngx_uint_t result)
{
    static const char  *names[] = { "none", "ok", "failed", "refused",
                                    "waiting", "unclear" };

    return names[result < 6 ? result : 0];
}

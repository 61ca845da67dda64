
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
 * EWS, ActiveSync and MAPI are asked with Basic credentials instead, one
 * service call each (basic.c, service.c), or with NTLM where the farm
 * takes Windows sign-in only (signin_ntlm.c: two requests a call, on one
 * connection).
 *
 * A probe is claimed in the zone per server, as healthcheck.htm's are:
 * whichever worker claims it reads the server's session cookies from the
 * zone and signs in again only when the server sends it to the logon
 * page.  Sign-ins are few: at most three per server in fifteen minutes,
 * and none on any server for five minutes after the account was refused,
 * as Active Directory locks an account out after a few bad passwords.
 * A Basic call is a sign-in too, until the server has accepted the
 * credentials; after, as a session's requests, it is not.
 *
 * The password is read from a file only root may read, kept in the
 * configuration as the form's tail and as Basic's header, and sent only
 * in the sign-in's body and the calls' Authorization, over TLS for the
 * latter: it is never logged, shown, or saved, and its buffers are zeroed.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_TICK     1000
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BUFFER   16384
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WINDOW   (15 * 60 * 1000)
#define NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_BATCH    64

#define NGX_HTTP_EXCHANGE_HEALTH_STEP_SIGNIN     0
#define NGX_HTTP_EXCHANGE_HEALTH_STEP_GET        1
#define NGX_HTTP_EXCHANGE_HEALTH_STEP_BASIC      2
#define NGX_HTTP_EXCHANGE_HEALTH_STEP_NTLM       3    /* its challenge */
#define NGX_HTTP_EXCHANGE_HEALTH_STEP_AUTH       4    /* NTLM's answer */


typedef struct {
    ngx_uint_t                             step;
    ngx_uint_t                             protocol;
    ngx_uint_t                             signed_in;  /* by this probe */
    ngx_uint_t                             basic;      /* may send it */
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
static void ngx_http_exchange_health_signin_call(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_signin_called(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_answer(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_posted(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_got(
    ngx_http_exchange_health_probe_t *pr, char *error);
static void ngx_http_exchange_health_signin_next(
    ngx_http_exchange_health_probe_t *pr);
static void ngx_http_exchange_health_signin_finish(
    ngx_http_exchange_health_probe_t *pr);


/*
 * The signed-in request of each protocol: the page a browser asks for
 * first, or the service call of basic.c
 */
ngx_http_exchange_health_signin_call_t
    ngx_http_exchange_health_signin_calls[
                                     NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS]
    =
{
    { ngx_string("GET"), ngx_string("/owa/") },
    { ngx_string("GET"), ngx_string("/ecp/") },
    { ngx_string("POST"), ngx_string("/EWS/Exchange.asmx") },
    { ngx_string("OPTIONS"), ngx_string("/Microsoft-Server-ActiveSync") },
    { ngx_string("POST"), ngx_string("/mapi/emsmdb/") }
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
         * A probe is eleven exchanges at most (sign in, a page, sign in
         * again, the page again, the other page, three service calls,
         * each two with NTLM), each with a timeout to connect and one to
         * read: one not over by then died with its worker.
         */

        if ((ngx_msec_int_t) (now - rec->next) < 0
            || (rec->busy && now - rec->busy < 22 * pc->timeout + 1000))
        {
            continue;
        }

        rec->next = now + pc->interval;

        /* forms sign in first; Basic alone, its first call is the one */

        due[ndue].peer = i;
        due[ndue].signin = (conf->signin->protocols
                            & NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS)
                           ? rec->jar_len == 0 : !rec->basic_ok;

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
           + NGX_HTTP_EXCHANGE_HEALTH_JAR_LEN + conf->signin->basic.len
           + 3 * conf->signin->user.len + 1024
           + (conf->signin->scheme.len ? NGX_HTTP_EXCHANGE_HEALTH_NTLM_HEADER
                                       : 0);

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

    for (job->protocol = 0;
         !(conf->signin->protocols & (1 << job->protocol));
         job->protocol++)
    {
        /* void */
    }

    /* Basic alone: the tick counted the first call as a sign-in */

    job->basic = signin
                 && !(conf->signin->protocols
                      & NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FORMS);

    ngx_shmtx_lock(&conf->shpool->mutex);

    rec = conf->servers[peer]->signin;
    job->jar.len = rec->jar_len;
    ngx_memcpy(job->jar.data, rec->jar, rec->jar_len);

    ngx_shmtx_unlock(&conf->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: signed-in probe of peer %ui, %s",
                   peer, signin ? "signing in" : "with its session");

    if (signin && job->protocol <= NGX_HTTP_EXCHANGE_HEALTH_ECP) {
        ngx_http_exchange_health_signin_post(pr);

    } else {
        ngx_http_exchange_health_signin_call(pr);
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
    pr->head_only = 1;

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
    pr->head_only = 1;

    /* the sign-in's form, if any, is gone from the buffer first */

    ngx_explicit_memzero(b->start, b->end - b->start);

    b->pos = b->start;
    b->last = ngx_sprintf(b->start,
                          "GET %V HTTP/1.1\r\nHost: %V\r\n"
                          "User-Agent: nginx exchange_health probe\r\n"
                          "Cookie: %V\r\nConnection: close\r\n\r\n",
                          &ngx_http_exchange_health_signin_calls[
                                                      job->protocol].uri,
                          host, &job->jar);

    ngx_http_exchange_health_probe_connect(pr);
}


static void
ngx_http_exchange_health_signin_call(ngx_http_exchange_health_probe_t *pr)
{
    ngx_uint_t                            p;
    ngx_http_exchange_health_job_t       *job;
    ngx_http_exchange_health_signin_t    *rec;
    ngx_http_exchange_health_srv_conf_t  *conf;

    job = pr->data;
    conf = pr->conf;

    if (job->protocol <= NGX_HTTP_EXCHANGE_HEALTH_ECP) {
        ngx_http_exchange_health_signin_get(pr);
        return;
    }

    /*
     * Credentials this server has not accepted lately are a sign-in
     * attempt, and wait for the account's back-off as forms' do
     */

    if (!job->basic) {
        ngx_shmtx_lock(&conf->shpool->mutex);

        rec = conf->servers[pr->peer]->signin;
        job->basic = rec->basic_ok
                     || ngx_http_exchange_health_signin_may_locked(conf, rec,
                                                          ngx_current_msec);

        ngx_shmtx_unlock(&conf->shpool->mutex);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "exchange health: peer %ui may send Basic: %ui",
                       pr->peer, job->basic);
    }

    if (job->basic && conf->signin->scheme.len) {
        job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_NTLM;
        ngx_http_exchange_health_signin_ntlm(pr, job->protocol);
        return;
    }

    if (job->basic) {
        job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_BASIC;
        ngx_http_exchange_health_basic_request(pr, job->protocol,
                                               &conf->signin->basic, 0);
        ngx_http_exchange_health_probe_connect(pr);
        return;
    }

    for (p = job->protocol; p < NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_NPROTOCOLS;
         p++)
    {
        if (conf->signin->protocols & (1 << p)) {
            ngx_http_exchange_health_signin_record(pr, p,
                                     NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_WAITING,
                                     0, (u_char *) "the next sign-in waits "
                                     "for its back-off");
        }
    }

    ngx_http_exchange_health_signin_finish(pr);
}


static void
ngx_http_exchange_health_signin_answer(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    u_char                          *why;
    ngx_int_t                        rc;
    ngx_http_exchange_health_job_t  *job;

    job = pr->data;

    /* an NTLM challenge is answered on its connection */

    if (job->step == NGX_HTTP_EXCHANGE_HEALTH_STEP_NTLM) {
        job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_AUTH;

        rc = ngx_http_exchange_health_signin_ntlm_challenged(pr,
                                                  job->protocol, error, &why);
        if (rc == NGX_OK) {
            return;
        }

        if (rc == NGX_ERROR) {

            /* this server's NTLM is broken, not the account */

            ngx_http_exchange_health_probe_close(pr);
            ngx_http_exchange_health_signin_record(pr, job->protocol,
                                       NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED,
                                       401, why);
            ngx_http_exchange_health_signin_next(pr);
            return;
        }

        job->step = NGX_HTTP_EXCHANGE_HEALTH_STEP_BASIC;
    }

    /* the answer is read: the connection is done with, whatever it says */

    ngx_http_exchange_health_probe_close(pr);

    if (job->step == NGX_HTTP_EXCHANGE_HEALTH_STEP_SIGNIN) {
        ngx_http_exchange_health_signin_posted(pr, error);

    } else if (job->step == NGX_HTTP_EXCHANGE_HEALTH_STEP_GET) {
        ngx_http_exchange_health_signin_got(pr, error);

    } else {
        ngx_http_exchange_health_signin_called(pr, error);
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

    ngx_http_exchange_health_signin_read_answer(pr->response, &a, &job->jar,
                                                NULL);

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
        rec->basic_ok = 1;
        conf->sh->signin_refused = 0;

        ngx_shmtx_unlock(&conf->shpool->mutex);

        job->signed_in = 1;
        job->basic = 1;
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

    /* users cannot sign in on it either: OWA and ECP fail */

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

    for (p = 0; p <= NGX_HTTP_EXCHANGE_HEALTH_ECP; p++) {
        if (conf->signin->protocols & (1 << p)) {
            ngx_http_exchange_health_signin_record(pr, p,
                                       NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED,
                                       a.status, why);
        }
    }

    /* the Basic calls need no forms: they go on */

    job->protocol = NGX_HTTP_EXCHANGE_HEALTH_ECP;
    ngx_http_exchange_health_signin_next(pr);
}


static void
ngx_http_exchange_health_signin_called(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    u_char                                why[
                                    NGX_HTTP_EXCHANGE_HEALTH_SERVICE_WHY];
    unsigned                              status;
    ngx_int_t                             result;
    ngx_http_exchange_health_job_t       *job;
    ngx_http_exchange_health_answer_t     a;
    ngx_http_exchange_health_signin_t    *rec;
    ngx_http_exchange_health_srv_conf_t  *conf;

    job = pr->data;
    conf = pr->conf;

    result = ngx_http_exchange_health_service_verdict(job->protocol,
                                    pr->response->pos,
                                    pr->response->last - pr->response->pos,
                                    &status, why, sizeof(why));

    if (error) {
        result = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
        ngx_cpystrn(why, (u_char *) error, sizeof(why));
    }

    /*
     * NTLM signs the connection in: a server that ends it after its
     * CHALLENGE (its own setting, or a device between) can sign no one in
     */

    if (job->step == NGX_HTTP_EXCHANGE_HEALTH_STEP_AUTH
        && pr->response->last == pr->response->pos
        && !pr->timed_out)
    {
        result = NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_FAILED;
        ngx_cpystrn(why, (u_char *) "closed the connection after its NTLM "
                    "CHALLENGE: NTLM needs it kept open", sizeof(why));
    }

    /* an answer, 401 or not, says whether the credentials passed */

    if (status) {
        ngx_shmtx_lock(&conf->shpool->mutex);

        rec = conf->servers[pr->peer]->signin;
        rec->basic_ok = (result != NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED);

        if (rec->basic_ok) {
            conf->sh->signin_refused = 0;
        }

        ngx_shmtx_unlock(&conf->shpool->mutex);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: peer %ui answered the %s call: %i",
                   pr->peer,
                   ngx_http_exchange_health_protocols[job->protocol].name,
                   result);

    if (result == NGX_HTTP_EXCHANGE_HEALTH_SIGNIN_REFUSED) {

        /* the account's: no more calls, on any server, for a while */

        ngx_memzero(&a, sizeof(ngx_http_exchange_health_answer_t));
        a.status = status;

        ngx_http_exchange_health_signin_refused(pr, &a);
        ngx_http_exchange_health_signin_finish(pr);
        return;
    }

    ngx_http_exchange_health_signin_record(pr, job->protocol, result, status,
                                           why);

    ngx_http_exchange_health_signin_next(pr);
}


static void
ngx_http_exchange_health_signin_got(ngx_http_exchange_health_probe_t *pr,
    char *error)
{
    u_char                                why[
                                         NGX_HTTP_EXCHANGE_HEALTH_ERROR_LEN];
    ngx_uint_t                            p, result, may;
    ngx_http_exchange_health_job_t       *job;
    ngx_http_exchange_health_answer_t     a;
    ngx_http_exchange_health_signin_t    *rec;
    ngx_http_exchange_health_srv_conf_t  *conf;

    job = pr->data;
    conf = pr->conf;

    ngx_http_exchange_health_signin_read_answer(pr->response, &a, NULL, NULL);

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

            /* ECP shares the session; the Basic calls need none */

            for (p = job->protocol; p <= NGX_HTTP_EXCHANGE_HEALTH_ECP; p++) {
                if (conf->signin->protocols & (1 << p)) {
                    ngx_http_exchange_health_signin_record(pr, p, result,
                                                           a.status, why);
                }
            }

            job->protocol = NGX_HTTP_EXCHANGE_HEALTH_ECP;
            ngx_http_exchange_health_signin_next(pr);
            return;
        }
    }

    ngx_http_exchange_health_signin_record(pr, job->protocol, result,
                                           a.status, why);

    ngx_http_exchange_health_signin_next(pr);
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
            ngx_http_exchange_health_signin_call(pr);
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

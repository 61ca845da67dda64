
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"


/*
 * What a signed-in probe found, recorded in the zone and told: a result
 * per server and protocol for the status page, its meaning for the
 * server (state.c's: ejected, re-admitted), and the account's refusal,
 * which holds every server's sign-in back and is warned of once per
 * interval.  The log lines name the mailbox, never its password, and
 * carry the server's words made printable.
 */


static ngx_str_t ngx_http_exchange_health_signin_name_locked(
    ngx_http_exchange_health_srv_conf_t *conf, ngx_uint_t peer, u_char *buf,
    size_t size);


void
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


void
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
                                  &ngx_http_exchange_health_signin_calls[p]
                                                                     .method,
                                  &ngx_http_exchange_health_signin_calls[p].uri,
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
                      "\"signed-in-probe\" on %V %V, status %ui: %V",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &length, conf->probe_fails, &conf->signin->user,
                      &ngx_http_exchange_health_signin_calls[p].method,
                      &ngx_http_exchange_health_signin_calls[p].uri, status,
                      &reason);

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "exchange_health: upstream \"%V\" server %V (%V) "
                      "re-admitted for %V after a good answer to its "
                      "signed-in probe as \"%V\" of %V %V",
                      &conf->name, &conf->addrs[pr->peer], &name, &proto,
                      &conf->signin->user,
                      &ngx_http_exchange_health_signin_calls[p].method,
                      &ngx_http_exchange_health_signin_calls[p].uri);
    }
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

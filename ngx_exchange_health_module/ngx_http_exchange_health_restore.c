
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_store.h"


/*
 * Reading a state file back into a zone that started empty: records are
 * parsed (statefile.c), matched to the upstreams and servers configured
 * now, and their fields written through the table of fields (store.c).
 */


/* an ejection restored from a file ends within a day, whatever it says */
#define NGX_HTTP_EXCHANGE_HEALTH_RESTORE_MAX    86400


/* a state file read, while a zone that started empty is filled from it */
typedef struct {
    ngx_array_t     records;    /* of sf_record_t, within the file's text */
    ngx_uint_t      max;        /* what the zone can hold */
} ngx_http_exchange_health_read_t;


static ngx_int_t ngx_http_exchange_health_store_restore_zone(
    ngx_cycle_t *cycle, ngx_http_exchange_health_zone_t *zone);
static void ngx_http_exchange_health_store_load(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log,
    ngx_http_exchange_health_read_t *sf);
static int ngx_http_exchange_health_store_record(void *data,
    ngx_http_exchange_health_sf_record_t *rec);
static void ngx_http_exchange_health_restore_zone(
    ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_read_t *sf);
static void ngx_http_exchange_health_restore_record(
    ngx_http_exchange_health_read_t *sf, ngx_uint_t kind,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t p, void *record);
static ngx_http_exchange_health_sf_record_t *
    ngx_http_exchange_health_store_find(ngx_http_exchange_health_read_t *sf,
    ngx_uint_t kind, ngx_str_t *upstream, ngx_str_t *addr, ngx_uint_t p);


ngx_int_t
ngx_http_exchange_health_store_restore(ngx_cycle_t *cycle)
{
    /*
     * Runs in the master once the records of this cycle's upstreams are
     * made: a zone that started empty gets what the last nginx knew.
     */

    return ngx_http_exchange_health_store_each(cycle,
                                 ngx_http_exchange_health_store_restore_zone);
}


static ngx_int_t
ngx_http_exchange_health_store_restore_zone(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone)
{
    ngx_http_exchange_health_read_t  sf;

    if (!zone->fresh) {
        return NGX_OK;
    }

    zone->fresh = 0;

    ngx_http_exchange_health_store_load(zone, cycle->log, &sf);

    if (sf.records.nelts) {
        ngx_shmtx_lock(&zone->shpool->mutex);
        ngx_http_exchange_health_restore_zone(zone, &sf);
        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    return NGX_OK;
}


static void
ngx_http_exchange_health_store_load(ngx_http_exchange_health_zone_t *zone,
    ngx_log_t *log, ngx_http_exchange_health_read_t *sf)
{
    u_char           *text;
    size_t            line, max;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_uint_t        servers;
    ngx_file_info_t   fi;
    const char       *error;

    /* no records until the whole file is read and found good */

    ngx_memzero(sf, sizeof(ngx_http_exchange_health_read_t));

    /*
     * The directory is the worker user's: whatever it planted there, a
     * link or a FIFO, is not followed, waited on or read.
     */

    fd = open((char *) zone->state.data, O_RDONLY|O_NONBLOCK|O_NOFOLLOW);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, log, err,
                          "exchange_health zone \"%V\": no state file \"%V\" "
                          "to read, starting afresh", zone->name, &zone->state);
        } else {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          "exchange_health zone \"%V\": state file \"%V\" "
                          "cannot be opened (a symbolic link is not "
                          "followed), starting afresh",
                          zone->name, &zone->state);
        }

        return;
    }

    /* what the zone can hold bounds what is worth reading */

    servers = (zone->shpool->end - (u_char *) zone->shpool) / 4096 + 1;
    max = ngx_http_exchange_health_store_size(servers);
    sf->max = servers * (NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS + 2);

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "is not a regular file, ignored",
                      zone->name, &zone->state);
        goto done;
    }

    if ((size_t) ngx_file_size(&fi) > max) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "is bigger than the zone can hold (%O > %uz bytes), "
                      "ignored", zone->name, &zone->state,
                      ngx_file_size(&fi), max);
        goto done;
    }

    text = ngx_palloc(zone->pool, ngx_file_size(&fi) + 1);
    if (text == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, text, ngx_file_size(&fi));

    if (n != ngx_file_size(&fi)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "cannot be read, ignored", zone->name, &zone->state);
        goto done;
    }

    if (ngx_array_init(&sf->records, zone->pool, 16,
                       sizeof(ngx_http_exchange_health_sf_record_t))
        != NGX_OK)
    {
        goto done;
    }

    if (ngx_http_exchange_health_sf_parse(text, n,
                                          ngx_http_exchange_health_store_record,
                                          sf, &error, &line)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "line %uz: %s; the file is ignored",
                      zone->name, &zone->state, line, error);
        sf->records.nelts = 0;
        goto done;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "exchange_health zone \"%V\": state read from \"%V\"",
                  zone->name, &zone->state);

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &zone->state);
    }
}


static int
ngx_http_exchange_health_store_record(void *data,
    ngx_http_exchange_health_sf_record_t *rec)
{
    ngx_http_exchange_health_read_t *sf = data;

    ngx_http_exchange_health_sf_record_t  *copy;

    /* more records than the zone has room for: not a file nginx wrote */

    if (sf->records.nelts >= sf->max) {
        return -1;
    }

    copy = ngx_array_push(&sf->records);
    if (copy == NULL) {
        return -1;
    }

    *copy = *rec;

    return 0;
}


static void
ngx_http_exchange_health_restore_zone(ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_read_t *sf)
{
    ngx_uint_t                            p;
    ngx_queue_t                          *q, *s;
    ngx_http_exchange_health_server_t    *srv;
    ngx_http_exchange_health_upstream_t  *up;

    for (q = ngx_queue_head(&zone->sh->upstreams);
         q != ngx_queue_sentinel(&zone->sh->upstreams);
         q = ngx_queue_next(q))
    {
        up = ngx_queue_data(q, ngx_http_exchange_health_upstream_t, queue);

        for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
            ngx_http_exchange_health_restore_record(sf,
                                          NGX_HTTP_EXCHANGE_HEALTH_SF_FARM,
                                          up, NULL, p, &up->farm[p]);
        }

        for (s = ngx_queue_head(&up->servers);
             s != ngx_queue_sentinel(&up->servers);
             s = ngx_queue_next(s))
        {
            srv = ngx_queue_data(s, ngx_http_exchange_health_server_t, queue);

            ngx_http_exchange_health_restore_record(sf,
                                          NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER,
                                          up, srv, 0, srv);

            for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
                ngx_http_exchange_health_restore_record(sf,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT,
                                            up, srv, p, &srv->slot[p]);
                ngx_http_exchange_health_restore_record(sf,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_LAST,
                                            up, srv, p, &srv->slot[p].last);
            }
        }
    }
}


static void
ngx_http_exchange_health_restore_record(ngx_http_exchange_health_read_t *sf,
    ngx_uint_t kind, ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t p, void *record)
{
    u_char                                  *to;
    size_t                                   n;
    time_t                                   now;
    uint64_t                                 v;
    ngx_str_t                                name, addr;
    ngx_http_exchange_health_slot_t         *slot;
    ngx_http_exchange_health_sf_field_t     *f;
    ngx_http_exchange_health_sf_record_t    *rec;
    ngx_http_exchange_health_store_field_t  *field;

    name.data = up->name.data;
    name.len = up->name.len;

    if (srv) {
        addr.data = srv->addr;
        addr.len = srv->addr_len;
    }

    rec = ngx_http_exchange_health_store_find(sf, kind, &name,
                                              srv ? &addr : NULL, p);
    if (rec == NULL) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "exchange health: restoring \"%V\" %V, protocol %ui",
                   &name, srv ? &addr : &name, p);

    now = ngx_time();

    for (field = ngx_http_exchange_health_store_fields; field->key; field++) {

        if (field->kind != kind) {
            continue;
        }

        f = ngx_http_exchange_health_sf_field(rec, field->key);
        if (f == NULL) {
            continue;
        }

        to = (u_char *) record + field->offset;
        v = f->number;

        switch (field->keep) {

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL:

            /*
             * Still ejected: for what is left of its time, or, if that
             * ran out while nginx was down, until a trial.  A time far
             * ahead (a clock set back, a file edited) is cut to a day,
             * never left to keep a server out for good.
             */

            slot = (ngx_http_exchange_health_slot_t *) record;

            if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED
                && v > (uint64_t) now)
            {
                slot->until += (ngx_msec_t) ngx_min(v - (uint64_t) now,
                                        NGX_HTTP_EXCHANGE_HEALTH_RESTORE_MAX)
                               * 1000;
            }

            continue;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT:
        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED:

            /* "-" stands for an empty value, as written */

            n = (f->len == 1 && f->value[0] == '-') ? 0 : f->len;

            if (field->keep == NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT) {
                n = ngx_min(n, field->size - 1);
                to[n] = '\0';

            } else {
                n = ngx_min(n, field->size);
                *(size_t *) ((u_char *) record + field->len) = n;
            }

            ngx_memcpy(to, f->value, n);
            continue;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_STATE:

            if (v == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
                ((ngx_http_exchange_health_slot_t *) record)->until =
                                                            ngx_current_msec;
            }

            break;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_FAULT:

            /* who failed is not kept: a good answer from any server ends it */

            if (v) {
                ngx_http_exchange_health_failing_reset_locked(up, p, 1);
            }

            break;

        default: /* NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER, _WORD */
            break;
        }

        /* statefile.c has checked the number against the field's size */

        switch (field->size) {
        case 1:
            *to = (u_char) v;
            break;
        case 2:
            *(uint16_t *) to = (uint16_t) v;
            break;
        case 4:
            *(uint32_t *) to = (uint32_t) v;
            break;
        default:
            *(uint64_t *) to = v;
        }
    }
}


static ngx_http_exchange_health_sf_record_t *
ngx_http_exchange_health_store_find(ngx_http_exchange_health_read_t *sf,
    ngx_uint_t kind, ngx_str_t *upstream, ngx_str_t *addr, ngx_uint_t p)
{
    size_t                                 len;
    ngx_uint_t                             i, a;
    const char                            *proto;
    ngx_http_exchange_health_sf_record_t  *rec;

    rec = sf->records.elts;
    proto = ngx_http_exchange_health_protocols[p].name;
    len = ngx_strlen(proto);

    for (i = 0; i < sf->records.nelts; i++) {

        if (rec[i].kind != kind
            || rec[i].arg_len[0] != upstream->len
            || ngx_strncmp(rec[i].arg[0], upstream->data, upstream->len) != 0)
        {
            continue;
        }

        a = 1;

        if (addr) {
            if (rec[i].arg_len[1] != addr->len
                || ngx_strncmp(rec[i].arg[1], addr->data, addr->len) != 0)
            {
                continue;
            }

            a = 2;
        }

        if (kind != NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER
            && (rec[i].arg_len[a] != len
                || ngx_strncmp(rec[i].arg[a], proto, len) != 0))
        {
            continue;
        }

        return &rec[i];
    }

    return NULL;
}

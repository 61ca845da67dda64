
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health.h"
#include "ngx_http_exchange_health_statefile.h"


/*
 * Health kept across a restart or an upgrade, as HAProxy's
 * server-state-file keeps it: the zone's state is written to a file every
 * few seconds when it changed, by one worker, and by the master when nginx
 * stops; a zone that starts empty reads it back.  A missing or bad file is
 * logged and ignored.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL  5000

/* an ejection restored from a file ends within a day, whatever it says */
#define NGX_HTTP_EXCHANGE_HEALTH_RESTORE_MAX    86400

/*
 * The longest a state file can be for a number of servers: a header, and
 * per server and protocol the lines of a record, encoded (3 KB at most).
 * Writing sizes its buffer so, reading refuses a longer file.
 */
#define ngx_http_exchange_health_store_size(servers)                         \
    (128 + (servers) * NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS * 3 * 1024)


/* how a record keeps a field of the file */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER   0    /* unsigned, by size */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_WORD     1    /* uint8_t: its place */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_STATE    2    /* a word; ejected... */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL    3    /* ... until, msec */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_FAULT    4    /* a number; fails all */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT     5    /* NUL-terminated */
#define NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED  6    /* with a size_t length */


typedef struct {
    ngx_uint_t      kind;       /* NGX_HTTP_EXCHANGE_HEALTH_SF_* */
    const char     *key;
    ngx_uint_t      keep;
    size_t          offset;     /* in the kind's record */
    size_t          size;
    size_t          len;        /* a counted text's length, its offset */
} ngx_http_exchange_health_store_field_t;


typedef ngx_int_t (*ngx_http_exchange_health_store_pt)(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);


/* a state file read, while a zone that started empty is filled from it */
typedef struct {
    ngx_array_t     records;    /* of sf_record_t, within the file's text */
    ngx_uint_t      max;        /* what the zone can hold */
} ngx_http_exchange_health_read_t;


/* a field's offset and size in the record of its kind */

#define ngx_http_exchange_health_in_server(f)                                \
    offsetof(ngx_http_exchange_health_server_t, f),                          \
    sizeof(((ngx_http_exchange_health_server_t *) 0)->f)

#define ngx_http_exchange_health_in_slot(f)                                  \
    offsetof(ngx_http_exchange_health_slot_t, f),                            \
    sizeof(((ngx_http_exchange_health_slot_t *) 0)->f)

#define ngx_http_exchange_health_in_last(f)                                  \
    offsetof(ngx_http_exchange_health_failure_t, f),                         \
    sizeof(((ngx_http_exchange_health_failure_t *) 0)->f)

#define ngx_http_exchange_health_in_farm(f)                                  \
    offsetof(ngx_http_exchange_health_farm_t, f),                            \
    sizeof(((ngx_http_exchange_health_farm_t *) 0)->f)


static void ngx_http_exchange_health_store_load(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log,
    ngx_http_exchange_health_read_t *sf);
static void ngx_http_exchange_health_restore_zone(
    ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_read_t *sf);
static void ngx_http_exchange_health_restore_record(
    ngx_http_exchange_health_read_t *sf, ngx_uint_t kind,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t p, void *record);
static u_char *ngx_http_exchange_health_save_record(u_char *p,
    ngx_uint_t kind, ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t proto, void *record);


/*
 * Where each field of the state file lives in the zone: saving and
 * restoring both walk this table, in its order, which is the order of
 * the file's keys (statefile.c checks the values; a state comes before
 * its end).  A record of the file is a server ("server"), one protocol
 * of it ("slot", "last": its last failure) or of its upstream ("farm").
 */

static ngx_http_exchange_health_store_field_t
    ngx_http_exchange_health_store_fields[] =
{
    { NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER, "name",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED,
      ngx_http_exchange_health_in_server(name.data),
      offsetof(ngx_http_exchange_health_server_t, name.len) },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER, "fqdn",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED,
      ngx_http_exchange_health_in_server(fqdn),
      offsetof(ngx_http_exchange_health_server_t, fqdn_len) },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "state",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_STATE,
      ngx_http_exchange_health_in_slot(state), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "until",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL,
      ngx_http_exchange_health_in_slot(until), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "level",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(level), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "admin",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_WORD,
      ngx_http_exchange_health_in_slot(admin), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "since",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(since), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "failures",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(failures), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "user_failures",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(user_failures), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "rescued",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(rescued), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "ejections",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_slot(ejections), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "time",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_last(time), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "status",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_last(status), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "user",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_last(user), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "rule",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT,
      ngx_http_exchange_health_in_last(rule), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "method",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT,
      ngx_http_exchange_health_in_last(method), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "uri",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT,
      ngx_http_exchange_health_in_last(uri), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_LAST, "error",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT,
      ngx_http_exchange_health_in_last(error), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_FARM, "fault",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_FAULT,
      ngx_http_exchange_health_in_farm(fault), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_FARM, "since",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_farm(since), 0 },

    { NGX_HTTP_EXCHANGE_HEALTH_SF_FARM, "request_failures",
      NGX_HTTP_EXCHANGE_HEALTH_KEEP_NUMBER,
      ngx_http_exchange_health_in_farm(request_failures), 0 },

    { 0, NULL, 0, 0, 0, 0 }
};


static int ngx_http_exchange_health_store_record(void *data,
    ngx_http_exchange_health_sf_record_t *rec);
static ngx_http_exchange_health_sf_record_t *
    ngx_http_exchange_health_store_find(ngx_http_exchange_health_read_t *sf,
    ngx_uint_t kind, ngx_str_t *upstream, ngx_str_t *addr, ngx_uint_t p);
static void ngx_http_exchange_health_save_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_exchange_health_save(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_exchange_health_store_each(ngx_cycle_t *cycle,
    ngx_http_exchange_health_store_pt handler);
static ngx_int_t ngx_http_exchange_health_store_restore_zone(
    ngx_cycle_t *cycle, ngx_http_exchange_health_zone_t *zone);
static ngx_int_t ngx_http_exchange_health_store_start(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);
static ngx_int_t ngx_http_exchange_health_store_last(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);
static ngx_int_t ngx_http_exchange_health_store_check_zone(
    ngx_cycle_t *cycle, ngx_http_exchange_health_zone_t *zone);
static void ngx_http_exchange_health_state_dir(
    ngx_http_exchange_health_zone_t *zone, u_char *dir);
static void ngx_http_exchange_health_sync_dir(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log);
static u_char *ngx_http_exchange_health_save_upstream(u_char *p,
    ngx_http_exchange_health_upstream_t *up, ngx_uint_t *room);
static u_char *ngx_http_exchange_health_word(u_char *p, u_char *data,
    size_t len);
static u_char *ngx_http_exchange_health_cword(u_char *p, u_char *data,
    size_t max);


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


static ngx_int_t
ngx_http_exchange_health_store_each(ngx_cycle_t *cycle,
    ngx_http_exchange_health_store_pt handler)
{
    ngx_uint_t                        i;
    ngx_shm_zone_t                   *shm_zone;
    ngx_list_part_t                  *part;
    ngx_http_exchange_health_zone_t  *zone;

    /* the module's zones that have a state file, one after the other */

    part = &cycle->shared_memory.part;
    shm_zone = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            shm_zone = part->elts;
            i = 0;
        }

        if (shm_zone[i].tag != &ngx_http_exchange_health_module) {
            continue;
        }

        zone = shm_zone[i].data;

        if (zone->state.len && handler(cycle, zone) != NGX_OK) {
            return NGX_ERROR;
        }
    }
}


ngx_int_t
ngx_http_exchange_health_store_init_process(ngx_cycle_t *cycle)
{
    /* a cache manager or loader never writes the file */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    return ngx_http_exchange_health_store_each(cycle,
                                       ngx_http_exchange_health_store_start);
}


static ngx_int_t
ngx_http_exchange_health_store_start(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone)
{
    zone->save.handler = ngx_http_exchange_health_save_timer;
    zone->save.data = zone;
    zone->save.log = cycle->log;
    zone->save.cancelable = 1;

    ngx_add_timer(&zone->save, NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL);

    return NGX_OK;
}


void
ngx_http_exchange_health_store_exit_master(ngx_cycle_t *cycle)
{
    /*
     * The last word, once every worker is gone, so a restart loses
     * nothing.  Only the master of the current configuration writes: a
     * worker of an older one, still finishing its requests, may hold a
     * zone since replaced.
     */

    (void) ngx_http_exchange_health_store_each(cycle,
                                        ngx_http_exchange_health_store_last);
}


static ngx_int_t
ngx_http_exchange_health_store_last(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone)
{
    if (zone->sh) {
        (void) ngx_http_exchange_health_save(zone, cycle->log);
    }

    /* every zone gets its chance */

    return NGX_OK;
}


static void
ngx_http_exchange_health_save_timer(ngx_event_t *ev)
{
    ngx_msec_t                        now;
    ngx_uint_t                        mine;
    ngx_http_exchange_health_zone_t  *zone;

    zone = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* one worker writes at a time: the first to find the time come */

    now = ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    mine = (ngx_msec_int_t) (now - zone->sh->save_next) >= 0;

    if (mine) {
        zone->sh->save_next = now + NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (mine) {
        (void) ngx_http_exchange_health_save(zone, ev->log);
    }

    ngx_add_timer(ev, NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL);
}


static ngx_int_t
ngx_http_exchange_health_save(ngx_http_exchange_health_zone_t *zone,
    ngx_log_t *log)
{
    size_t                                 size, n;
    u_char                                *buf, *p, tmp[NGX_MAX_PATH];
    uint32_t                               crc;
    ngx_fd_t                               fd;
    ngx_uint_t                             room, tries;
    ngx_queue_t                           *q, *s;
    ngx_http_exchange_health_upstream_t   *up;

    /*
     * The records are counted under the lock, the buffer is allocated
     * without it, and the text made under it again; records are never
     * freed, and any added meanwhile wait for the next save.
     */

    ngx_shmtx_lock(&zone->shpool->mutex);

    room = 0;

    for (q = ngx_queue_head(&zone->sh->upstreams);
         q != ngx_queue_sentinel(&zone->sh->upstreams);
         q = ngx_queue_next(q))
    {
        up = ngx_queue_data(q, ngx_http_exchange_health_upstream_t, queue);

        room++;

        for (s = ngx_queue_head(&up->servers);
             s != ngx_queue_sentinel(&up->servers);
             s = ngx_queue_next(s))
        {
            room++;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    /* the longest a record's lines can be, encoded, per server */

    size = ngx_http_exchange_health_store_size(room);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(buf, "# ngx_exchange_health_module state, written by "
                   "nginx; it may be deleted\nexchange-health-state 1\n",
                   sizeof("# ngx_exchange_health_module state, written by "
                          "nginx; it may be deleted\n"
                          "exchange-health-state 1\n") - 1);

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&zone->sh->upstreams);
         q != ngx_queue_sentinel(&zone->sh->upstreams) && room;
         q = ngx_queue_next(q))
    {
        up = ngx_queue_data(q, ngx_http_exchange_health_upstream_t, queue);

        room--;
        p = ngx_http_exchange_health_save_upstream(p, up, &room);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    p = ngx_cpymem(p, "end\n", 4);

    /* the same as last written by this worker: nothing to do */

    crc = ngx_crc32_long(buf, p - buf);

    if (crc == zone->saved_crc) {
        ngx_free(buf);
        return NGX_OK;
    }

    /*
     * Written next to it and renamed: a crash leaves the old file whole.
     * The directory is the worker user's, and the master writes as root
     * at exit: the temporary file gets a name nobody can guess and is
     * created, never opened, so no link planted there is followed.  It
     * holds server names and request paths: 0600.
     */

    if (zone->state.len + sizeof(".tmp.") + 16 > NGX_MAX_PATH) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    fd = NGX_INVALID_FILE;

    for (tries = 0; tries < 4; tries++) {
        ngx_sprintf(tmp, "%V.tmp.%08xD%08xD%Z", &zone->state,
                    (uint32_t) ngx_random(),
                    (uint32_t) (ngx_random() ^ ngx_pid ^ ngx_current_msec));

        fd = open((char *) tmp, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600);

        if (fd != NGX_INVALID_FILE || ngx_errno != NGX_EEXIST) {
            break;
        }
    }

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "exchange_health: cannot write state file \"%s\"", tmp);
        ngx_free(buf);
        return NGX_ERROR;
    }

    n = ngx_write_fd(fd, buf, p - buf);

    /* on disk before the rename, so a power cut leaves one file or the other */

    if (n != (size_t) (p - buf) || fsync(fd) == -1) {
        n = 0;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR || n != (size_t) (p - buf)
        || ngx_rename_file(tmp, zone->state.data) == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "exchange_health: cannot write state file \"%V\"",
                      &zone->state);
        (void) ngx_delete_file(tmp);
        ngx_free(buf);
        return NGX_ERROR;
    }

    ngx_http_exchange_health_sync_dir(zone, log);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "exchange health: state file \"%V\" saved, %uz bytes",
                   &zone->state, (size_t) (p - buf));

    zone->saved_crc = crc;
    ngx_free(buf);

    return NGX_OK;
}


static void
ngx_http_exchange_health_state_dir(ngx_http_exchange_health_zone_t *zone,
    u_char *dir)
{
    u_char  *p;
    size_t   len;

    /* the directory of the state file, NUL-terminated, NGX_MAX_PATH long */

    for (p = zone->state.data + zone->state.len;
         p > zone->state.data && p[-1] != '/';
         p--)
    { /* void */ }

    len = p - zone->state.data;     /* with its last '/' */

    if (len == 0) {
        ngx_cpystrn(dir, (u_char *) ".", 2);

    } else {
        ngx_cpystrn(dir, zone->state.data, ngx_min(len, NGX_MAX_PATH - 1) + 1);
    }
}


ngx_int_t
ngx_http_exchange_health_store_check(ngx_cycle_t *cycle)
{
    return ngx_http_exchange_health_store_each(cycle,
                                   ngx_http_exchange_health_store_check_zone);
}


static ngx_int_t
ngx_http_exchange_health_store_check_zone(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone)
{
    u_char            dir[NGX_MAX_PATH];
    mode_t            bits;
    ngx_uid_t         uid;
    ngx_gid_t         gid;
    const char       *user;
    struct stat       st;
    ngx_core_conf_t  *ccf;

    /*
     * As nginx checks a log file at start: the workers write the state
     * file next to where it is, as the worker user, so the directory must
     * be there and theirs to write, or health is lost at the first restart
     * with nothing said.
     */

    ngx_http_exchange_health_state_dir(zone, dir);

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        uid = ccf->user;
        gid = ccf->group;
        user = ccf->username;

    } else {
        uid = geteuid();
        gid = getegid();
        user = "nginx runs as";
    }

    if (stat((char *) dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "exchange_health_zone \"%V\": the state file's "
                      "directory \"%s\" does not exist or is not a "
                      "directory: create it for the user \"%s\", e.g. "
                      "install -d -o %s -m 0700 %s",
                      zone->name, dir, user, user, dir);
        return NGX_ERROR;
    }

    if (uid == 0) {
        return NGX_OK;
    }

    /* write and search, by the bits that apply to that user */

    bits = (st.st_uid == uid) ? (st.st_mode & (S_IWUSR|S_IXUSR)) >> 6
           : (st.st_gid == gid) ? (st.st_mode & (S_IWGRP|S_IXGRP)) >> 3
           : (st.st_mode & (S_IWOTH|S_IXOTH));

    if (bits != (S_IWOTH|S_IXOTH)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "exchange_health_zone \"%V\": the state file's "
                      "directory \"%s\" is not writable by the user \"%s\" "
                      "that writes the file: chown %s %s",
                      zone->name, dir, user, user, dir);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_exchange_health_sync_dir(ngx_http_exchange_health_zone_t *zone,
    ngx_log_t *log)
{
    u_char    dir[NGX_MAX_PATH];
    ngx_fd_t  fd;

    /* the rename itself on disk: a power cut keeps the new file */

    ngx_http_exchange_health_state_dir(zone, dir);

    fd = open((char *) dir, O_RDONLY|O_DIRECTORY);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    if (fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "exchange_health: fsync(\"%s\") failed", dir);
    }

    (void) close(fd);
}


static u_char *
ngx_http_exchange_health_save_upstream(u_char *p,
    ngx_http_exchange_health_upstream_t *up, ngx_uint_t *room)
{
    ngx_uint_t                           k;
    ngx_queue_t                         *q;
    ngx_http_exchange_health_slot_t     *slot;
    ngx_http_exchange_health_farm_t     *farm;
    ngx_http_exchange_health_server_t   *srv;

    /* what is as a new zone makes it is not written */

    for (k = 0; k < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; k++) {
        farm = &up->farm[k];

        if (farm->fault || farm->request_failures) {
            p = ngx_http_exchange_health_save_record(p,
                                          NGX_HTTP_EXCHANGE_HEALTH_SF_FARM,
                                          up, NULL, k, farm);
        }
    }

    for (q = ngx_queue_head(&up->servers);
         q != ngx_queue_sentinel(&up->servers) && *room;
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_http_exchange_health_server_t, queue);

        (*room)--;

        p = ngx_http_exchange_health_save_record(p,
                                          NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER,
                                          up, srv, 0, srv);

        for (k = 0; k < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; k++) {
            slot = &srv->slot[k];

            if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_UP
                && slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE
                && slot->failures == 0 && slot->user_failures == 0
                && slot->ejections == 0)
            {
                continue;
            }

            p = ngx_http_exchange_health_save_record(p,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT,
                                            up, srv, k, slot);

            if (slot->last.time) {
                p = ngx_http_exchange_health_save_record(p,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_LAST,
                                            up, srv, k, &slot->last);
            }
        }
    }

    return p;
}


static u_char *
ngx_http_exchange_health_save_record(u_char *p, ngx_uint_t kind,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t proto, void *record)
{
    u_char                                  *from;
    size_t                                   len;
    uint64_t                                 v;
    const char                              *word;
    ngx_msec_int_t                           left;
    ngx_http_exchange_health_slot_t         *slot;
    ngx_http_exchange_health_store_field_t  *field;

    /* KIND UPSTREAM [ADDRESS] [PROTOCOL] key=value ... */

    p = ngx_sprintf(p, "%s ", ngx_http_exchange_health_sf_kind(kind));
    p = ngx_http_exchange_health_word(p, up->name.data, up->name.len);

    if (srv) {
        *p++ = ' ';
        p = ngx_http_exchange_health_word(p, srv->addr, srv->addr_len);
    }

    if (kind != NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER) {
        p = ngx_sprintf(p, " %s",
                        ngx_http_exchange_health_protocols[proto].name);
    }

    for (field = ngx_http_exchange_health_store_fields; field->key; field++) {

        if (field->kind != kind) {
            continue;
        }

        from = (u_char *) record + field->offset;
        slot = record;

        if (field->keep == NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL
            && slot->state != NGX_HTTP_EXCHANGE_HEALTH_EJECTED)
        {
            continue;
        }

        p = ngx_sprintf(p, " %s=", field->key);

        switch (field->keep) {

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_UNTIL:

            /* the end of an ejection, from nginx's clock to the wall's */

            left = (ngx_msec_int_t) (slot->until - ngx_current_msec);
            p = ngx_sprintf(p, "%T",
                            ngx_time() + (left > 0 ? (left + 999) / 1000 : 0));
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_STATE:
        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_WORD:

            /* a value the file cannot hold is written as the first */

            word = ngx_http_exchange_health_sf_enum(kind, field->key, *from,
                                                    &len);
            if (word == NULL) {
                word = ngx_http_exchange_health_sf_enum(kind, field->key, 0,
                                                        &len);
            }

            p = ngx_cpymem(p, word, len);
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_TEXT:
            p = ngx_http_exchange_health_cword(p, from, field->size);
            break;

        case NGX_HTTP_EXCHANGE_HEALTH_KEEP_COUNTED:
            p = ngx_http_exchange_health_word(p, from,
                              *(size_t *) ((u_char *) record + field->len));
            break;

        default: /* a number */

            switch (field->size) {
            case 1:
                v = *from;
                break;
            case 2:
                v = *(uint16_t *) from;
                break;
            case 4:
                v = *(uint32_t *) from;
                break;
            default:
                v = *(uint64_t *) from;
            }

            p = ngx_sprintf(p, "%uL", v);
        }
    }

    *p++ = '\n';

    return p;
}


static u_char *
ngx_http_exchange_health_word(u_char *p, u_char *data, size_t len)
{
    /* the format has no empty words: an empty value is written "-" */

    if (len == 0) {
        *p++ = '-';
        return p;
    }

    return ngx_http_exchange_health_sf_encode(p, data, len);
}


static u_char *
ngx_http_exchange_health_cword(u_char *p, u_char *data, size_t max)
{
    return ngx_http_exchange_health_word(p, data, ngx_strnlen(data, max));
}

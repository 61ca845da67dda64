
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


static int ngx_http_exchange_health_store_record(void *data,
    ngx_http_exchange_health_sf_record_t *rec);
static ngx_http_exchange_health_sf_record_t *
    ngx_http_exchange_health_store_find(ngx_http_exchange_health_zone_t *zone,
    ngx_uint_t kind, ngx_str_t *upstream, ngx_str_t *addr, ngx_uint_t p);
static void ngx_http_exchange_health_store_text(
    ngx_http_exchange_health_sf_field_t *f, u_char *to, size_t size,
    size_t *len);
static ngx_uint_t ngx_http_exchange_health_store_is(
    ngx_http_exchange_health_sf_field_t *f, const char *value);
static void ngx_http_exchange_health_save_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_exchange_health_save(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log);
static ngx_http_exchange_health_zone_t *ngx_http_exchange_health_store_next(
    ngx_cycle_t *cycle, ngx_list_part_t **part, ngx_uint_t *i);
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


void
ngx_http_exchange_health_load(ngx_http_exchange_health_zone_t *zone,
    size_t size, ngx_log_t *log)
{
    size_t            line, max;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_uint_t        servers;
    ngx_file_info_t   fi;
    const char       *error;

    if (zone->state.len == 0) {
        return;
    }

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

    servers = size / 4096 + 1;
    max = 128 + servers * NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS * 3 * 1024;
    zone->restore_max = servers * (NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS + 2);

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

    zone->restore_buf.data = ngx_palloc(zone->pool, ngx_file_size(&fi) + 1);
    if (zone->restore_buf.data == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, zone->restore_buf.data, ngx_file_size(&fi));

    if (n != ngx_file_size(&fi)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "cannot be read, ignored", zone->name, &zone->state);
        goto done;
    }

    zone->restore_buf.len = n;

    if (ngx_array_init(&zone->restore, zone->pool, 16,
                       sizeof(ngx_http_exchange_health_sf_record_t))
        != NGX_OK)
    {
        goto done;
    }

    if (ngx_http_exchange_health_sf_parse(zone->restore_buf.data, n,
                                          ngx_http_exchange_health_store_record,
                                          zone, &error, &line)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "exchange_health zone \"%V\": state file \"%V\" "
                      "line %uz: %s; the file is ignored",
                      zone->name, &zone->state, line, error);
        zone->restore.nelts = 0;
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
    ngx_http_exchange_health_zone_t *zone = data;

    ngx_http_exchange_health_sf_record_t  *copy;

    /* more records than the zone has room for: not a file nginx wrote */

    if (zone->restore.nelts >= zone->restore_max) {
        return -1;
    }

    copy = ngx_array_push(&zone->restore);
    if (copy == NULL) {
        return -1;
    }

    *copy = *rec;

    return 0;
}


void
ngx_http_exchange_health_restore_upstream(
    ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_upstream_t *up)
{
    ngx_str_t                              name;
    ngx_uint_t                             p;
    ngx_http_exchange_health_farm_t       *farm;
    ngx_http_exchange_health_sf_field_t   *f;
    ngx_http_exchange_health_sf_record_t  *rec;

    name.data = up->name.data;
    name.len = up->name.len;

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        rec = ngx_http_exchange_health_store_find(zone,
                                           NGX_HTTP_EXCHANGE_HEALTH_SF_FARM,
                                           &name, NULL, p);
        if (rec == NULL) {
            continue;
        }

        farm = &up->farm[p];

        if ((f = ngx_http_exchange_health_sf_field(rec, "fault"))
            && f->number)
        {
            /* who failed is not kept: a good answer from any server ends it */

            farm->fault = 1;
            farm->failing = (uint64_t) -1;
        }

        if ((f = ngx_http_exchange_health_sf_field(rec, "since"))) {
            farm->since = (time_t) f->number;
        }

        if ((f = ngx_http_exchange_health_sf_field(rec, "request_failures"))) {
            farm->request_failures = (uint32_t) f->number;
        }
    }
}


void
ngx_http_exchange_health_restore_server(ngx_http_exchange_health_zone_t *zone,
    ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv)
{
    time_t                                 now;
    ngx_str_t                              name, addr;
    ngx_uint_t                             p;
    ngx_http_exchange_health_slot_t       *slot;
    ngx_http_exchange_health_failure_t    *last;
    ngx_http_exchange_health_sf_field_t   *f;
    ngx_http_exchange_health_sf_record_t  *rec;

    name.data = up->name.data;
    name.len = up->name.len;
    addr.data = srv->addr;
    addr.len = srv->addr_len;
    now = ngx_time();

    rec = ngx_http_exchange_health_store_find(zone,
                                          NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER,
                                          &name, &addr, 0);
    if (rec) {
        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "name"),
                             srv->name.data, sizeof(srv->name.data),
                             &srv->name.len);
        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "fqdn"),
                             srv->fqdn, sizeof(srv->fqdn), &srv->fqdn_len);
    }

    for (p = 0; p < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; p++) {
        slot = &srv->slot[p];

        rec = ngx_http_exchange_health_store_find(zone,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT,
                                            &name, &addr, p);
        if (rec) {
            f = ngx_http_exchange_health_sf_field(rec, "state");

            if (ngx_http_exchange_health_store_is(f, "ejected")) {

                /*
                 * Still ejected: for what is left of its time, or, if
                 * that ran out while nginx was down, until a trial.  A
                 * time far ahead (a clock set back, a file edited) is
                 * cut to a day, never left to keep a server out for good.
                 */

                slot->state = NGX_HTTP_EXCHANGE_HEALTH_EJECTED;
                slot->until = ngx_current_msec;

                f = ngx_http_exchange_health_sf_field(rec, "until");

                if (f && f->number > (uint64_t) now) {
                    slot->until += (ngx_msec_t) ngx_min(f->number
                                   - (uint64_t) now,
                                   NGX_HTTP_EXCHANGE_HEALTH_RESTORE_MAX)
                                   * 1000;
                }
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "level"))) {
                slot->level = (uint8_t) f->number;
            }

            f = ngx_http_exchange_health_sf_field(rec, "admin");

            if (ngx_http_exchange_health_store_is(f, "drain")) {
                slot->admin = NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN;

            } else if (ngx_http_exchange_health_store_is(f, "maintenance")) {
                slot->admin = NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE;
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "since"))) {
                slot->since = (time_t) f->number;
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "failures"))) {
                slot->failures = (uint32_t) f->number;
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "user_failures")))
            {
                slot->user_failures = (uint32_t) f->number;
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "rescued"))) {
                slot->rescued = (uint32_t) f->number;
            }

            if ((f = ngx_http_exchange_health_sf_field(rec, "ejections"))) {
                slot->ejections = (uint32_t) f->number;
            }
        }

        rec = ngx_http_exchange_health_store_find(zone,
                                            NGX_HTTP_EXCHANGE_HEALTH_SF_LAST,
                                            &name, &addr, p);
        if (rec == NULL) {
            continue;
        }

        last = &slot->last;

        if ((f = ngx_http_exchange_health_sf_field(rec, "time"))) {
            last->time = (time_t) f->number;
        }

        if ((f = ngx_http_exchange_health_sf_field(rec, "status"))) {
            last->status = (uint16_t) f->number;
        }

        if ((f = ngx_http_exchange_health_sf_field(rec, "user"))) {
            last->user = f->number ? 1 : 0;
        }

        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "rule"),
                             last->rule, sizeof(last->rule) - 1, NULL);
        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "method"),
                             last->method, sizeof(last->method) - 1, NULL);
        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "uri"),
                             last->uri, sizeof(last->uri) - 1, NULL);
        ngx_http_exchange_health_store_text(
                             ngx_http_exchange_health_sf_field(rec, "error"),
                             last->error, sizeof(last->error) - 1, NULL);
    }
}


static ngx_http_exchange_health_sf_record_t *
ngx_http_exchange_health_store_find(ngx_http_exchange_health_zone_t *zone,
    ngx_uint_t kind, ngx_str_t *upstream, ngx_str_t *addr, ngx_uint_t p)
{
    size_t                                 len;
    ngx_uint_t                             i, a;
    const char                            *proto;
    ngx_http_exchange_health_sf_record_t  *rec;

    rec = zone->restore.elts;
    proto = ngx_http_exchange_health_protocols[p].name;
    len = ngx_strlen(proto);

    for (i = 0; i < zone->restore.nelts; i++) {

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


static ngx_uint_t
ngx_http_exchange_health_store_is(ngx_http_exchange_health_sf_field_t *f,
    const char *value)
{
    return f && f->len == ngx_strlen(value)
           && ngx_strncmp(f->value, value, f->len) == 0;
}


static void
ngx_http_exchange_health_store_text(ngx_http_exchange_health_sf_field_t *f,
    u_char *to, size_t size, size_t *len)
{
    size_t  n;

    if (f == NULL) {
        return;
    }

    /* "-" stands for an empty value, as written */

    n = (f->len == 1 && f->value[0] == '-') ? 0 : ngx_min(f->len, size);
    ngx_memcpy(to, f->value, n);

    if (len) {
        *len = n;

    } else {
        to[n] = '\0';
    }
}


static ngx_http_exchange_health_zone_t *
ngx_http_exchange_health_store_next(ngx_cycle_t *cycle, ngx_list_part_t **part,
    ngx_uint_t *i)
{
    ngx_shm_zone_t  *shm_zone;

    /* the module's zones one after the other: *part starts NULL, *i 0 */

    if (*part == NULL) {
        *part = &cycle->shared_memory.part;
        *i = 0;
    }

    for ( ;; ) {

        if (*i >= (*part)->nelts) {
            if ((*part)->next == NULL) {
                return NULL;
            }

            *part = (*part)->next;
            *i = 0;
            continue;
        }

        shm_zone = (ngx_shm_zone_t *) (*part)->elts + (*i)++;

        if (shm_zone->tag == &ngx_http_exchange_health_module) {
            return shm_zone->data;
        }
    }
}


ngx_int_t
ngx_http_exchange_health_store_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i;
    ngx_list_part_t                  *part;
    ngx_http_exchange_health_zone_t  *zone;

    /* a cache manager or loader never writes the file */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    part = NULL;
    i = 0;

    while ((zone = ngx_http_exchange_health_store_next(cycle, &part, &i))) {

        if (zone->state.len == 0) {
            continue;
        }

        zone->save.handler = ngx_http_exchange_health_save_timer;
        zone->save.data = zone;
        zone->save.log = cycle->log;
        zone->save.cancelable = 1;

        ngx_add_timer(&zone->save, NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL);
    }

    return NGX_OK;
}


void
ngx_http_exchange_health_store_exit_master(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i;
    ngx_list_part_t                  *part;
    ngx_http_exchange_health_zone_t  *zone;

    /*
     * The last word, once every worker is gone, so a restart loses
     * nothing.  Only the master of the current configuration writes: a
     * worker of an older one, still finishing its requests, may hold a
     * zone since replaced.
     */

    part = NULL;
    i = 0;

    while ((zone = ngx_http_exchange_health_store_next(cycle, &part, &i))) {

        if (zone->state.len && zone->sh) {
            (void) ngx_http_exchange_health_save(zone, cycle->log);
        }
    }
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

    size = 128 + room * NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS * 3 * 1024;

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
    ngx_uint_t                        i;
    ngx_list_part_t                  *part;
    ngx_http_exchange_health_zone_t  *zone;

    part = NULL;
    i = 0;

    while ((zone = ngx_http_exchange_health_store_next(cycle, &part, &i))) {
        if (ngx_http_exchange_health_store_check_zone(cycle, zone) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
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

    if (zone->state.len == 0) {
        return NGX_OK;
    }

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
    time_t                                now;
    ngx_uint_t                            k;
    ngx_msec_int_t                        left;
    ngx_queue_t                          *q;
    const char                           *proto, *admin;
    ngx_http_exchange_health_slot_t      *slot;
    ngx_http_exchange_health_farm_t      *farm;
    ngx_http_exchange_health_server_t    *srv;
    ngx_http_exchange_health_failure_t   *f;

    now = ngx_time();

    for (k = 0; k < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; k++) {
        farm = &up->farm[k];

        if (!farm->fault && farm->request_failures == 0) {
            continue;
        }

        p = ngx_cpymem(p, "farm ", 5);
        p = ngx_http_exchange_health_word(p, up->name.data, up->name.len);
        p = ngx_sprintf(p, " %s fault=%ui since=%T request_failures=%uD\n",
                        ngx_http_exchange_health_protocols[k].name,
                        farm->fault ? 1 : 0, farm->since,
                        farm->request_failures);
    }

    for (q = ngx_queue_head(&up->servers);
         q != ngx_queue_sentinel(&up->servers) && *room;
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_http_exchange_health_server_t, queue);

        (*room)--;

        p = ngx_cpymem(p, "server ", 7);
        p = ngx_http_exchange_health_word(p, up->name.data, up->name.len);
        *p++ = ' ';
        p = ngx_http_exchange_health_word(p, srv->addr, srv->addr_len);

        if (srv->name.len) {
            p = ngx_cpymem(p, " name=", 6);
            p = ngx_http_exchange_health_word(p, srv->name.data,
                                              srv->name.len);
        }

        if (srv->fqdn_len) {
            p = ngx_cpymem(p, " fqdn=", 6);
            p = ngx_http_exchange_health_word(p, srv->fqdn, srv->fqdn_len);
        }

        *p++ = '\n';

        for (k = 0; k < NGX_HTTP_EXCHANGE_HEALTH_NPROTOCOLS; k++) {
            slot = &srv->slot[k];
            proto = ngx_http_exchange_health_protocols[k].name;

            if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_UP
                && slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_NONE
                && slot->failures == 0 && slot->user_failures == 0
                && slot->ejections == 0)
            {
                continue;
            }

            admin = slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_DRAIN
                    ? "drain"
                    : slot->admin == NGX_HTTP_EXCHANGE_HEALTH_ADMIN_MAINTENANCE
                      ? "maintenance" : "none";

            p = ngx_cpymem(p, "slot ", 5);
            p = ngx_http_exchange_health_word(p, up->name.data, up->name.len);
            *p++ = ' ';
            p = ngx_http_exchange_health_word(p, srv->addr, srv->addr_len);

            if (slot->state == NGX_HTTP_EXCHANGE_HEALTH_EJECTED) {
                left = (ngx_msec_int_t) (slot->until - ngx_current_msec);
                p = ngx_sprintf(p, " %s state=ejected until=%T", proto,
                                now + (left > 0 ? (left + 999) / 1000 : 0));

            } else {
                p = ngx_sprintf(p, " %s state=up", proto);
            }

            p = ngx_sprintf(p, " level=%ui admin=%s since=%T failures=%uD "
                            "user_failures=%uD rescued=%uD ejections=%uD\n",
                            (ngx_uint_t) slot->level, admin, slot->since,
                            slot->failures, slot->user_failures,
                            slot->rescued, slot->ejections);

            f = &slot->last;

            if (f->time == 0) {
                continue;
            }

            p = ngx_cpymem(p, "last ", 5);
            p = ngx_http_exchange_health_word(p, up->name.data, up->name.len);
            *p++ = ' ';
            p = ngx_http_exchange_health_word(p, srv->addr, srv->addr_len);
            p = ngx_sprintf(p, " %s time=%T status=%ui user=%ui rule=",
                            proto, f->time, (ngx_uint_t) f->status,
                            (ngx_uint_t) f->user);
            p = ngx_http_exchange_health_cword(p, f->rule, sizeof(f->rule));
            p = ngx_cpymem(p, " method=", 8);
            p = ngx_http_exchange_health_cword(p, f->method,
                                               sizeof(f->method));
            p = ngx_cpymem(p, " uri=", 5);
            p = ngx_http_exchange_health_cword(p, f->uri, sizeof(f->uri));
            p = ngx_cpymem(p, " error=", 7);
            p = ngx_http_exchange_health_cword(p, f->error, sizeof(f->error));
            *p++ = '\n';
        }
    }

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

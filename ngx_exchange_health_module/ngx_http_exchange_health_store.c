
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include "ngx_http_exchange_health_store.h"


/*
 * Health kept across a restart or an upgrade, as HAProxy's
 * server-state-file keeps it: the zone's state is written to a file every
 * few seconds when it changed, by one worker, and by the master when nginx
 * stops; a zone that starts empty reads it back.  A missing or bad file is
 * logged and ignored.
 */


#define NGX_HTTP_EXCHANGE_HEALTH_SAVE_INTERVAL  5000


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


/*
 * Where each field of the state file lives in the zone: saving and
 * restoring both walk this table, in its order, which is the order of
 * the file's keys (statefile.c checks the values; a state comes before
 * its end).  A record of the file is a server ("server"), one protocol
 * of it ("slot", "last": its last failure) or of its upstream ("farm").
 */

ngx_http_exchange_health_store_field_t
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


static ngx_int_t ngx_http_exchange_health_store_start(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);
static ngx_int_t ngx_http_exchange_health_store_last(ngx_cycle_t *cycle,
    ngx_http_exchange_health_zone_t *zone);
static void ngx_http_exchange_health_save_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_exchange_health_save(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log);
static void ngx_http_exchange_health_state_dir(
    ngx_http_exchange_health_zone_t *zone, u_char *dir);
static ngx_int_t ngx_http_exchange_health_store_check_zone(
    ngx_cycle_t *cycle, ngx_http_exchange_health_zone_t *zone);
static void ngx_http_exchange_health_sync_dir(
    ngx_http_exchange_health_zone_t *zone, ngx_log_t *log);
static u_char *ngx_http_exchange_health_save_upstream(u_char *p,
    ngx_http_exchange_health_upstream_t *up, ngx_uint_t *room);
static u_char *ngx_http_exchange_health_save_record(u_char *p,
    ngx_uint_t kind, ngx_http_exchange_health_upstream_t *up,
    ngx_http_exchange_health_server_t *srv, ngx_uint_t proto, void *record);
static u_char *ngx_http_exchange_health_word(u_char *p, u_char *data,
    size_t len);
static u_char *ngx_http_exchange_health_cword(u_char *p, u_char *data,
    size_t max);


ngx_int_t
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


/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#ifndef _NGX_HTTP_EXCHANGE_HEALTH_STATEFILE_H_INCLUDED_
#define _NGX_HTTP_EXCHANGE_HEALTH_STATEFILE_H_INCLUDED_


/*
 * The state file: health saved as text lines, so a restart does not send
 * users back to a server known to be broken.
 *
 *     exchange-health-state 1
 *     server UPSTREAM ADDRESS name=EXCH2 fqdn=exch2.contoso.local
 *     slot UPSTREAM ADDRESS PROTOCOL state=ejected until=1795612345 ...
 *     last UPSTREAM ADDRESS PROTOCOL time=... status=302 rule=... ...
 *     farm UPSTREAM PROTOCOL fault=1 since=... request_failures=...
 *     end
 *
 * Words and values are percent-encoded.  The reader checks every line and
 * refuses the whole file at the first fault, naming its line: a file cut
 * short has no "end".  Plain C on purpose: unit tests and fuzzers link
 * this file alone.
 */


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* hidden, as the module's header says why */
#if (__GNUC__ >= 4)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER  0
#define NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT    1
#define NGX_HTTP_EXCHANGE_HEALTH_SF_LAST    2
#define NGX_HTTP_EXCHANGE_HEALTH_SF_FARM    3

#define NGX_HTTP_EXCHANGE_HEALTH_SF_ARGS    3
#define NGX_HTTP_EXCHANGE_HEALTH_SF_FIELDS  12


typedef struct {
    const char    *key;
    u_char        *value;       /* decoded, within the parsed buffer */
    size_t         len;
    uint64_t       number;      /* a number; a word's place in its list */
} ngx_http_exchange_health_sf_field_t;


typedef struct {
    unsigned                              kind;
    unsigned                              nargs;
    unsigned                              nfields;
    u_char                     *arg[NGX_HTTP_EXCHANGE_HEALTH_SF_ARGS];
    size_t                      arg_len[NGX_HTTP_EXCHANGE_HEALTH_SF_ARGS];
    ngx_http_exchange_health_sf_field_t
                                field[NGX_HTTP_EXCHANGE_HEALTH_SF_FIELDS];
} ngx_http_exchange_health_sf_record_t;


/* called for each record; a non-zero return stops the reading */
typedef int (*ngx_http_exchange_health_sf_handler_pt)(void *data,
    ngx_http_exchange_health_sf_record_t *rec);


/*
 * Reads the buffer, decoding it in place.  Returns 0, or -1 with *error
 * and *line set; records are handed over only once the whole file is
 * known good.
 */
int ngx_http_exchange_health_sf_parse(u_char *buf, size_t len,
    ngx_http_exchange_health_sf_handler_pt handler, void *data,
    const char **error, size_t *line);

/* a field of a record by its key, or NULL */
ngx_http_exchange_health_sf_field_t *ngx_http_exchange_health_sf_field(
    ngx_http_exchange_health_sf_record_t *rec, const char *key);

/* the word that starts a record of a kind: "server", "slot" ... */
const char *ngx_http_exchange_health_sf_kind(unsigned kind);

/* the n-th of the words a field may hold (its length in *len), or NULL */
const char *ngx_http_exchange_health_sf_enum(unsigned kind, const char *key,
    uint64_t n, size_t *len);

/* percent-encodes a word or value; dst needs 3 * len bytes */
u_char *ngx_http_exchange_health_sf_encode(u_char *dst, const u_char *src,
    size_t len);


#if (__GNUC__ >= 4)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_EXCHANGE_HEALTH_STATEFILE_H_INCLUDED_ */


/*
 * libFuzzer target of the state file reader.  Whatever the bytes: it
 * returns; a refused file hands over no record and names a line of it;
 * decoded words lie within the buffer; and the records of an accepted
 * file, written back, are accepted again, all of them.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_exchange_health_statefile.h"


typedef struct {
    const u_char  *start;
    const u_char  *end;
    size_t         records;
    u_char        *out;         /* the records written back */
    u_char        *last;
} fuzz_ctx_t;


static const char  *kinds[] = { "server", "slot", "last", "farm" };


static int
take(void *data, ngx_http_exchange_health_sf_record_t *rec)
{
    unsigned     i;
    fuzz_ctx_t  *ctx = data;

    if (rec->kind > 3 || rec->nargs > NGX_HTTP_EXCHANGE_HEALTH_SF_ARGS
        || rec->nfields > NGX_HTTP_EXCHANGE_HEALTH_SF_FIELDS)
    {
        abort();
    }

    ctx->last = (u_char *) stpcpy((char *) ctx->last, kinds[rec->kind]);

    for (i = 0; i < rec->nargs; i++) {
        if (rec->arg[i] < ctx->start
            || rec->arg[i] + rec->arg_len[i] > ctx->end
            || rec->arg_len[i] > 256)
        {
            abort();
        }

        *ctx->last++ = ' ';
        ctx->last = ngx_http_exchange_health_sf_encode(ctx->last, rec->arg[i],
                                                       rec->arg_len[i]);
    }

    for (i = 0; i < rec->nfields; i++) {
        if (rec->field[i].value < ctx->start
            || rec->field[i].value + rec->field[i].len > ctx->end
            || rec->field[i].len > 256)
        {
            abort();
        }

        *ctx->last++ = ' ';
        ctx->last = (u_char *) stpcpy((char *) ctx->last, rec->field[i].key);
        *ctx->last++ = '=';
        ctx->last = ngx_http_exchange_health_sf_encode(ctx->last,
                                                       rec->field[i].value,
                                                       rec->field[i].len);
    }

    *ctx->last++ = '\n';
    ctx->records++;

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    u_char      *copy, *out;
    size_t       line, records;
    fuzz_ctx_t   ctx;
    const char  *error;

    copy = malloc(size + 1);
    memcpy(copy, data, size);

    /* each byte can come back as three; a line is at least two bytes */

    out = malloc(64 + size * 3 + (size / 2 + 1) * 16);
    memcpy(out, "exchange-health-state 1\n", 24);

    ctx.start = copy;
    ctx.end = copy + size;
    ctx.records = 0;
    ctx.out = out;
    ctx.last = out + 24;

    error = NULL;
    line = 0;

    rc = ngx_http_exchange_health_sf_parse(copy, size, take, &ctx, &error,
                                           &line);

    if (rc == -1) {
        if (error == NULL || ctx.records || line > size + 1) {
            abort();
        }

    } else if (rc != 0) {
        abort();

    } else {
        memcpy(ctx.last, "end\n", 4);
        ctx.last += 4;

        records = ctx.records;
        ctx.start = out;
        ctx.end = ctx.last;
        ctx.records = 0;
        ctx.last = malloc(64 + (ctx.end - out) * 3 + (size / 2 + 1) * 16);

        out = ctx.last;

        if (ngx_http_exchange_health_sf_parse((u_char *) ctx.start,
                                              ctx.end - ctx.start, take,
                                              &ctx, &error, &line)
            != 0
            || ctx.records != records)
        {
            abort();
        }

        free((void *) ctx.start);
    }

    free(out);
    free(copy);

    return 0;
}

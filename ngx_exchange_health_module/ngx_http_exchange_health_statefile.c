
/*
 * Copyright (C) ngx_exchange_health_module authors
 */


#include <string.h>

#include "ngx_http_exchange_health_request.h"
#include "ngx_http_exchange_health_statefile.h"


#define NGX_HTTP_EXCHANGE_HEALTH_SF_LINE   4096   /* longest line */
#define NGX_HTTP_EXCHANGE_HEALTH_SF_WORD   256    /* longest decoded word */

/* what a field holds */
#define NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT   0
#define NGX_HTTP_EXCHANGE_HEALTH_SF_NUM    1
#define NGX_HTTP_EXCHANGE_HEALTH_SF_ENUM   2


typedef struct {
    const char    *key;
    unsigned       type;
    uint64_t       max;         /* numbers */
    const char    *values;      /* enums: "a|b|c" */
} ngx_http_exchange_health_sf_key_t;


typedef struct {
    const char                                *name;
    unsigned                                   nargs;
    unsigned                                   protocol_arg;  /* or 0 */
    const ngx_http_exchange_health_sf_key_t   *keys;
} ngx_http_exchange_health_sf_kind_t;


static int ngx_http_exchange_health_sf_line(u_char *p, u_char *end,
    unsigned decode, ngx_http_exchange_health_sf_record_t *rec,
    const char **error);
static int ngx_http_exchange_health_sf_word(u_char **pp, u_char *end,
    unsigned decode, u_char **word, size_t *len);
static int ngx_http_exchange_health_sf_value(
    const ngx_http_exchange_health_sf_key_t *k,
    ngx_http_exchange_health_sf_field_t *f);
static int ngx_http_exchange_health_sf_hex(u_char c);


static const ngx_http_exchange_health_sf_key_t
    ngx_http_exchange_health_sf_server[] =
{
    { "name", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { "fqdn", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { NULL, 0, 0, NULL }
};

static const ngx_http_exchange_health_sf_key_t
    ngx_http_exchange_health_sf_slot[] =
{
    { "state", NGX_HTTP_EXCHANGE_HEALTH_SF_ENUM, 0, "up|ejected" },
    { "until", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, INT64_MAX, NULL },
    { "level", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, 255, NULL },
    { "admin", NGX_HTTP_EXCHANGE_HEALTH_SF_ENUM, 0,
      "none|drain|maintenance" },
    { "since", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, INT64_MAX, NULL },
    { "failures", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, UINT32_MAX, NULL },
    { "user_failures", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, UINT32_MAX, NULL },
    { "rescued", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, UINT32_MAX, NULL },
    { "ejections", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, UINT32_MAX, NULL },
    { NULL, 0, 0, NULL }
};

static const ngx_http_exchange_health_sf_key_t
    ngx_http_exchange_health_sf_last[] =
{
    { "time", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, INT64_MAX, NULL },
    { "status", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, 999, NULL },
    { "user", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, 1, NULL },
    { "rule", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { "method", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { "uri", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { "error", NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT, 0, NULL },
    { NULL, 0, 0, NULL }
};

static const ngx_http_exchange_health_sf_key_t
    ngx_http_exchange_health_sf_farm[] =
{
    { "fault", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, 1, NULL },
    { "since", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, INT64_MAX, NULL },
    { "request_failures", NGX_HTTP_EXCHANGE_HEALTH_SF_NUM, UINT32_MAX,
      NULL },
    { NULL, 0, 0, NULL }
};

/* in the order of NGX_HTTP_EXCHANGE_HEALTH_SF_SERVER ... _FARM */
static const ngx_http_exchange_health_sf_kind_t
    ngx_http_exchange_health_sf_kinds[] =
{
    { "server", 2, 0, ngx_http_exchange_health_sf_server },
    { "slot", 3, 3, ngx_http_exchange_health_sf_slot },
    { "last", 3, 3, ngx_http_exchange_health_sf_last },
    { "farm", 2, 2, ngx_http_exchange_health_sf_farm },
    { NULL, 0, 0, NULL }
};

static const char  ngx_http_exchange_health_sf_header[] =
    "exchange-health-state 1";


int
ngx_http_exchange_health_sf_parse(u_char *buf, size_t len,
    ngx_http_exchange_health_sf_handler_pt handler, void *data,
    const char **error, size_t *line)
{
    int                                    rc;
    u_char                                *p, *end, *eol;
    size_t                                 n;
    unsigned                               pass, seen_header, seen_end;
    ngx_http_exchange_health_sf_record_t   rec;

    /*
     * Pass 0 checks every line and changes nothing; pass 1 decodes in
     * place and hands the records over.  A bad file gives nothing.
     */

    for (pass = 0; pass < 2; pass++) {
        p = buf;
        end = buf + len;
        n = 0;
        seen_header = 0;
        seen_end = 0;

        while (p < end) {
            n++;

            eol = memchr(p, '\n', end - p);

            if (eol == NULL) {
                *error = "the last line has no end: the file was cut short";
                goto failed;
            }

            if (eol - p > NGX_HTTP_EXCHANGE_HEALTH_SF_LINE) {
                *error = "a line too long";
                goto failed;
            }

            if (eol == p || *p == '#') {
                p = eol + 1;
                continue;
            }

            if (seen_end) {
                *error = "a line after \"end\"";
                goto failed;
            }

            if (!seen_header) {
                if ((size_t) (eol - p)
                        != sizeof(ngx_http_exchange_health_sf_header) - 1
                    || memcmp(p, ngx_http_exchange_health_sf_header,
                              eol - p) != 0)
                {
                    *error = "not an exchange_health state file of version 1";
                    goto failed;
                }

                seen_header = 1;
                p = eol + 1;
                continue;
            }

            if (eol - p == 3 && memcmp(p, "end", 3) == 0) {
                seen_end = 1;
                p = eol + 1;
                continue;
            }

            rc = ngx_http_exchange_health_sf_line(p, eol, pass, &rec, error);

            if (rc != 0) {
                goto failed;
            }

            if (pass == 1 && handler(data, &rec) != 0) {
                *error = "a record the module could not take";
                goto failed;
            }

            p = eol + 1;
        }

        if (!seen_end) {
            *error = seen_header ? "no \"end\": the file was cut short"
                                 : "an empty file";
            n = 0;
            goto failed;
        }
    }

    return 0;

failed:

    *line = n;
    return -1;
}


static int
ngx_http_exchange_health_sf_line(u_char *p, u_char *end, unsigned decode,
    ngx_http_exchange_health_sf_record_t *rec, const char **error)
{
    u_char                                    *word, *eq;
    size_t                                     len;
    unsigned                                   i, k;
    const ngx_http_exchange_health_sf_key_t   *key;
    const ngx_http_exchange_health_sf_kind_t  *kind;
    ngx_http_exchange_health_sf_field_t       *f;

    memset(rec, 0, sizeof(ngx_http_exchange_health_sf_record_t));

    /* the kind of record, a plain word */

    for (len = 0; p + len < end && p[len] != ' '; len++) {
        /* void */
    }

    for (kind = ngx_http_exchange_health_sf_kinds; kind->name; kind++) {
        if (strlen(kind->name) == len && memcmp(kind->name, p, len) == 0) {
            break;
        }
    }

    if (kind->name == NULL) {
        *error = "an unknown kind of record";
        return -1;
    }

    rec->kind = kind - ngx_http_exchange_health_sf_kinds;
    p += len;

    for (i = 0; i < kind->nargs; i++) {
        if (p == end || *p++ != ' ') {
            *error = "too few words";
            return -1;
        }

        if (ngx_http_exchange_health_sf_word(&p, end, decode, &rec->arg[i],
                                             &rec->arg_len[i])
            != 0)
        {
            *error = "a bad word";
            return -1;
        }
    }

    rec->nargs = kind->nargs;

    if (kind->protocol_arg
        && ngx_http_exchange_health_protocol_by_name(
               rec->arg[kind->protocol_arg - 1],
               rec->arg_len[kind->protocol_arg - 1]) < 0)
    {
        *error = "an unknown protocol";
        return -1;
    }

    while (p < end) {
        if (*p++ != ' ' || p == end) {
            *error = "a stray space or byte";
            return -1;
        }

        eq = memchr(p, '=', end - p);

        if (eq == NULL || eq == p) {
            *error = "a field without \"key=\"";
            return -1;
        }

        for (key = kind->keys; key->key; key++) {
            if (strlen(key->key) == (size_t) (eq - p)
                && memcmp(key->key, p, eq - p) == 0)
            {
                break;
            }
        }

        if (key->key == NULL) {
            *error = "an unknown field";
            return -1;
        }

        for (k = 0; k < rec->nfields; k++) {
            if (rec->field[k].key == key->key) {
                *error = "a field twice";
                return -1;
            }
        }

        f = &rec->field[rec->nfields++];
        f->key = key->key;
        p = eq + 1;

        if (ngx_http_exchange_health_sf_word(&p, end, decode, &word, &len)
            != 0)
        {
            *error = "a bad value";
            return -1;
        }

        f->value = word;
        f->len = len;

        if (ngx_http_exchange_health_sf_value(key, f) != 0) {
            *error = "a value out of range";
            return -1;
        }
    }

    return 0;
}


static int
ngx_http_exchange_health_sf_word(u_char **pp, u_char *end, unsigned decode,
    u_char **word, size_t *len)
{
    int      hi, lo;
    u_char  *p, *out, c;

    /* up to the next space; %XX escapes; never more than it takes */

    p = *pp;
    out = p;
    *word = p;
    *len = 0;

    while (p < end && *p != ' ') {
        c = *p++;

        if (c == '%') {
            if (end - p < 2) {
                return -1;
            }

            hi = ngx_http_exchange_health_sf_hex(p[0]);
            lo = ngx_http_exchange_health_sf_hex(p[1]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            c = (u_char) (hi << 4 | lo);
            p += 2;

        } else if (c < 0x21 || c > 0x7e || c == '=') {
            return -1;
        }

        if (++*len > NGX_HTTP_EXCHANGE_HEALTH_SF_WORD) {
            return -1;
        }

        if (decode) {
            *out++ = c;
        }
    }

    *pp = p;

    return 0;
}


static int
ngx_http_exchange_health_sf_value(const ngx_http_exchange_health_sf_key_t *k,
    ngx_http_exchange_health_sf_field_t *f)
{
    size_t       i, n;
    const char  *v, *bar;

    switch (k->type) {

    case NGX_HTTP_EXCHANGE_HEALTH_SF_NUM:

        /* plain decimal digits: pass 0 has not decoded, so no escapes */

        if (f->len == 0 || f->len > 19) {
            return -1;
        }

        f->number = 0;

        for (i = 0; i < f->len; i++) {
            if (f->value[i] < '0' || f->value[i] > '9') {
                return -1;
            }

            f->number = f->number * 10 + (f->value[i] - '0');
        }

        return f->number > k->max ? -1 : 0;

    case NGX_HTTP_EXCHANGE_HEALTH_SF_ENUM:

        /* the value's place in the list is its number */

        f->number = 0;

        for (v = k->values; v; v = bar ? bar + 1 : NULL) {
            bar = strchr(v, '|');
            n = bar ? (size_t) (bar - v) : strlen(v);

            if (n == f->len && memcmp(v, f->value, n) == 0) {
                return 0;
            }

            f->number++;
        }

        return -1;

    default: /* NGX_HTTP_EXCHANGE_HEALTH_SF_TEXT */
        return 0;
    }
}


static int
ngx_http_exchange_health_sf_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


ngx_http_exchange_health_sf_field_t *
ngx_http_exchange_health_sf_field(ngx_http_exchange_health_sf_record_t *rec,
    const char *key)
{
    unsigned  i;

    for (i = 0; i < rec->nfields; i++) {
        if (strcmp(rec->field[i].key, key) == 0) {
            return &rec->field[i];
        }
    }

    return NULL;
}


const char *
ngx_http_exchange_health_sf_kind(unsigned kind)
{
    return kind > NGX_HTTP_EXCHANGE_HEALTH_SF_FARM
           ? NULL : ngx_http_exchange_health_sf_kinds[kind].name;
}


const char *
ngx_http_exchange_health_sf_enum(unsigned kind, const char *key, uint64_t n,
    size_t *len)
{
    const char                               *v, *bar;
    const ngx_http_exchange_health_sf_key_t  *k;

    if (kind > NGX_HTTP_EXCHANGE_HEALTH_SF_FARM) {
        return NULL;
    }

    for (k = ngx_http_exchange_health_sf_kinds[kind].keys; k->key; k++) {
        if (strcmp(k->key, key) == 0) {
            break;
        }
    }

    if (k->type != NGX_HTTP_EXCHANGE_HEALTH_SF_ENUM) {
        return NULL;
    }

    for (v = k->values; v; v = bar + 1) {
        bar = strchr(v, '|');

        if (n-- == 0) {
            *len = bar ? (size_t) (bar - v) : strlen(v);
            return v;
        }

        if (bar == NULL) {
            break;
        }
    }

    return NULL;
}


u_char *
ngx_http_exchange_health_sf_encode(u_char *dst, const u_char *src, size_t len)
{
    u_char                   c;
    static const char  hex[] = "0123456789ABCDEF";

    while (len--) {
        c = *src++;

        if (c < 0x21 || c > 0x7e || c == '%' || c == '=') {
            *dst++ = '%';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];

        } else {
            *dst++ = c;
        }
    }

    return dst;
}


/*
 * Unit tests of the state file reader: a good file's records, and the
 * refusal, naming the line, of every kind of bad file.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_exchange_health_statefile.h"
#include "unit.h"


typedef struct {
    int         n;
    char        names[16][64];
    uint64_t    state, admin;       /* of the slot record */
} seen_t;


static int
collect(void *data, ngx_http_exchange_health_sf_record_t *rec)
{
    seen_t  *seen = data;

    ngx_http_exchange_health_sf_field_t  *f;

    if (seen->n < 16) {
        snprintf(seen->names[seen->n], 64, "%u:%.*s", rec->kind,
                 (int) rec->arg_len[1], rec->arg[1]);
    }

    seen->n++;

    if (rec->kind == NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT) {
        f = ngx_http_exchange_health_sf_field(rec, "state");
        seen->state = f ? f->number : 99;
        f = ngx_http_exchange_health_sf_field(rec, "admin");
        seen->admin = f ? f->number : 99;
    }

    return 0;
}


static int
parse(const char *text, seen_t *seen, const char **error, size_t *line)
{
    int     rc;
    char   *copy;

    copy = strdup(text);
    memset(seen, 0, sizeof(seen_t));
    *error = NULL;
    *line = 0;

    rc = ngx_http_exchange_health_sf_parse((u_char *) copy, strlen(copy),
                                           collect, seen, error, line);
    free(copy);

    return rc;
}


static const char  *good =
    "# a comment\n"
    "exchange-health-state 1\n"
    "\n"
    "farm exchange owa fault=1 since=1700000000 request_failures=3\n"
    "server exchange 10.0.0.12:443 name=EXCH2 fqdn=exch2.contoso.local\n"
    "slot exchange 10.0.0.12:443 owa state=ejected until=1700000030 level=2"
    " admin=drain since=1700000000 failures=5 user_failures=0 rescued=4"
    " ejections=2\n"
    "last exchange 10.0.0.12:443 owa time=1700000000 status=302 user=0"
    " rule=errorfe-redirect method=GET uri=/owa/%20x error=Ex%25A\n"
    "end\n";


static int
bad(const char *text, size_t want_line, const char *name)
{
    int          rc;
    seen_t       seen;
    size_t       line;
    const char  *error;

    rc = parse(text, &seen, &error, &line);

    UNIT_OK(rc == -1 && error != NULL && line == want_line && seen.n == 0,
            name);

    if (rc != -1 || line != want_line) {
        printf("# rc %d, line %zu, error %s\n", rc, line,
               error ? error : "-");
    }

    return 0;
}


int
main(void)
{
    int                                    rc;
    seen_t                                 seen;
    size_t                                 line;
    u_char                                 enc[64], *e;
    const char                            *error;

    rc = parse(good, &seen, &error, &line);

    UNIT_OK(rc == 0, "a good file is read");
    UNIT_OK(seen.n == 4, "four records");
    UNIT_OK(strcmp(seen.names[0], "3:owa") == 0, "farm first");
    UNIT_OK(strcmp(seen.names[1], "0:10.0.0.12:443") == 0, "then the server");
    UNIT_OK(seen.state == 1 && seen.admin == 1,
            "a word's number is its place: ejected 1, drain 1");

    {
        size_t       len;
        const char  *w;

        w = ngx_http_exchange_health_sf_enum(NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT,
                                             "admin", 2, &len);
        UNIT_OK(w && len == 11 && strncmp(w, "maintenance", len) == 0,
                "the words of a field by place: the last");
        w = ngx_http_exchange_health_sf_enum(NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT,
                                             "state", 0, &len);
        UNIT_OK(w && len == 2 && strncmp(w, "up", len) == 0,
                "... the first");
        UNIT_OK(ngx_http_exchange_health_sf_enum(
                    NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "admin", 3, &len)
                == NULL, "... none past the last");
        UNIT_OK(ngx_http_exchange_health_sf_enum(
                    NGX_HTTP_EXCHANGE_HEALTH_SF_SLOT, "level", 0, &len)
                == NULL, "... none of a number");
        UNIT_OK(ngx_http_exchange_health_sf_enum(7, "admin", 0, &len)
                == NULL, "... none of an unknown kind");
    }

    e = ngx_http_exchange_health_sf_encode(enc, (const u_char *) "a b%c=d\x01",
                                           8);
    *e = '\0';
    UNIT_OK(strcmp((char *) enc, "a%20b%25c%3Dd%01") == 0,
            "encoding: space, %, = and control bytes");

    bad("", 0, "an empty file");
    bad("exchange-health-state 2\nend\n", 1, "another version");
    bad("exchange-health-state 1\n", 0, "no end: cut short");
    bad("exchange-health-state 1\nend", 2, "no final newline: cut short");
    bad("exchange-health-state 1\nend\nfarm x owa fault=1\n", 3,
        "a line after end");
    bad("exchange-health-state 1\nbogus x\nend\n", 2, "unknown kind");
    bad("exchange-health-state 1\nserver x\nend\n", 2, "too few words");
    bad("exchange-health-state 1\nslot x y smtp state=up\nend\n", 2,
        "unknown protocol");
    bad("exchange-health-state 1\nslot x y owa color=red\nend\n", 2,
        "unknown field");
    bad("exchange-health-state 1\nslot x y owa level=1 level=2\nend\n", 2,
        "a field twice");
    bad("exchange-health-state 1\nslot x y owa level=256\nend\n", 2,
        "a number out of range");
    bad("exchange-health-state 1\nslot x y owa level=-1\nend\n", 2,
        "a negative number");
    bad("exchange-health-state 1\nslot x y owa until=99999999999999999999"
        "\nend\n", 2, "a number too long");
    bad("exchange-health-state 1\nslot x y owa state=gone\nend\n", 2,
        "an unknown state");
    bad("exchange-health-state 1\nserver x%zz y\nend\n", 2,
        "a bad escape");
    bad("exchange-health-state 1\nserver x%2 y\nend\n", 2,
        "an escape cut short");
    bad("exchange-health-state 1\nserver x y  name=a\nend\n", 2,
        "two spaces");
    bad("exchange-health-state 1\nserver x y name=a \nend\n", 2,
        "a trailing space");
    bad("exchange-health-state 1\nserver x y =a\nend\n", 2,
        "a field without a key");
    bad("exchange-health-state 1\nserver x y name\nend\n", 2,
        "a field without a value");
    bad("exchange-health-state 1\nserver x y name=a\tb\nend\n", 2,
        "a control byte");

    {
        char  big[6000];

        strcpy(big, "exchange-health-state 1\nserver x ");
        memset(big + strlen(big), 'a', 5000);
        strcpy(big + 33 + 5000, "\nend\n");
        bad(big, 2, "a line too long");
    }

    return unit_done();
}

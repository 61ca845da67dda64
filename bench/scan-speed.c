
/*
 * The body scanner alone, in bytes per second of one core: the module's
 * ngx_http_exchange_health_scan() with the default rules' body markers
 * over the body of a capture (by default the 25 KB signed-in OWA page),
 * fed in pieces the size nginx reads (4 KB), again and again.
 *
 *   build/bench/scan-speed [-s seconds] [-p piece] [-w window] [capture.http]
 *
 * Cases: a healthy 200 page as the default rules scan it (only the
 * errorfe-page marker, in its first 4 KB); and, for the scanner's speed,
 * every default marker over the whole window (what a 500 page naming an
 * OWA error costs): the plain body, the same chunked, the same gzipped
 * (inflate bound).
 * Speed is decoded bytes per CPU second of this thread, so another
 * process on the machine lowers it less than it would lower a wall-clock
 * figure; the median of several runs is printed.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ngx_http_exchange_health_scan.h"
#include "../t/unit/encode.h"


#define RUNS   7
#define BATCH  256


typedef struct {
    const char     *name;
    const u_char   *data;        /* what is fed to the scanner */
    size_t          len;
    size_t          decoded;     /* body bytes the scan covers */
    unsigned        chunked;
    unsigned        encoding;
    uint32_t        mask;
} bench_case_t;


static ngx_http_exchange_health_markers_t  markers;

static const struct {
    const char     *text;
    size_t          window;
} marker_text[] = {
    { "ASP.auth_errorfe_aspx", 4096 },        /* errorfe-page scan=4k */
    { "id=\"diagnosticDiv\"", 0 },            /* errorfe-details */
    { "Server Error in '/", 0 },              /* aspnet-error */
};


static double
cpu_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static u_char *
read_body(const char *file, size_t *len)
{
    long     size;
    FILE    *f;
    u_char  *buf, *p;

    f = fopen(file, "rb");
    if (f == NULL) {
        perror(file);
        exit(2);
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);

    buf = malloc(size + 1);
    if (buf == NULL || fread(buf, 1, size, f) != (size_t) size) {
        fprintf(stderr, "%s: cannot read\n", file);
        exit(2);
    }

    fclose(f);
    buf[size] = '\0';

    /* a capture is a whole response: the body follows the blank line */

    p = (u_char *) strstr((char *) buf, "\r\n\r\n");

    if (p) {
        p += 4;

    } else if ((p = (u_char *) strstr((char *) buf, "\n\n"))) {
        p += 2;

    } else {
        p = buf;
    }

    *len = size - (p - buf);

    return p;
}


static int
scan_once(bench_case_t *c, size_t piece, size_t window)
{
    int                              rc;
    size_t                           off, n;
    ngx_http_exchange_health_scan_t  s;

    ngx_http_exchange_health_scan_init(&s, &markers, c->mask, window,
                                       c->chunked, c->encoding, Z_NULL,
                                       Z_NULL, Z_NULL);
    rc = NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;

    for (off = 0; off < c->len && rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE;
         off += n)
    {
        n = c->len - off < piece ? c->len - off : piece;
        rc = ngx_http_exchange_health_scan(&s, c->data + off, n);
    }

    if (rc == NGX_HTTP_EXCHANGE_HEALTH_SCAN_MORE) {
        rc = ngx_http_exchange_health_scan_end(&s);
    }

    ngx_http_exchange_health_scan_release(&s);

    return rc;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


int
main(int argc, char **argv)
{
    int            opt, rc, k;
    u_char        *body, *chunked, *gz;
    size_t         i, len, chunked_len, gz_len, piece, window, covered, first;
    double         seconds, start, spent, rate[RUNS], scans_per_s;
    unsigned long  n;
    const char    *file;
    bench_case_t   cases[4], *c;

    seconds = 1.0;
    piece = 4096;
    window = 32768;           /* exchange_health_scan's default */
    file = "t/captures/owa-signed-in.http";

    while ((opt = getopt(argc, argv, "s:p:w:")) != -1) {
        switch (opt) {
        case 's':
            seconds = atof(optarg);
            break;
        case 'p':
            piece = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            window = strtoul(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: %s [-s seconds] [-p piece] [-w window] "
                            "[capture.http]\n", argv[0]);
            return 2;
        }
    }

    if (optind < argc) {
        file = argv[optind];
    }

    if (piece == 0 || window == 0 || seconds <= 0) {
        fprintf(stderr, "%s: bad arguments\n", argv[0]);
        return 2;
    }

    body = read_body(file, &len);
    chunked = malloc(CHUNKED_MAX(len, piece));
    if (chunked == NULL) {
        return 2;
    }

    chunked_len = chunked_encode(body, len, piece, chunked);
    /* level 6 and the gzip wrapper, as IIS and nginx's gzip send */

    gz = malloc(DEFLATE_MAX(len));
    if (gz == NULL) {
        return 2;
    }

    gz_len = deflate_encode(body, len, MAX_WBITS + 16, 6, gz,
                            DEFLATE_MAX(len));

    for (i = 0; i < sizeof(marker_text) / sizeof(marker_text[0]); i++) {
        if (ngx_http_exchange_health_marker_add(&markers,
                (const u_char *) marker_text[i].text,
                strlen(marker_text[i].text), marker_text[i].window) < 0)
        {
            return 2;
        }
    }

    covered = len < window ? len : window;
    first = covered < 4096 ? covered : 4096;

    cases[0] = (bench_case_t) { "a 200 page, errorfe-page's 4 KB", body,
                                len, first, 0,
                                NGX_HTTP_EXCHANGE_HEALTH_IDENTITY, 0x1 };
    cases[1] = (bench_case_t) { "identity, 3 default markers", body, len,
                                covered, 0, NGX_HTTP_EXCHANGE_HEALTH_IDENTITY,
                                0x7 };
    cases[2] = (bench_case_t) { "chunked, 3 default markers", chunked,
                                chunked_len, covered, 1,
                                NGX_HTTP_EXCHANGE_HEALTH_IDENTITY, 0x7 };
    cases[3] = (bench_case_t) { "gzip, 3 default markers", gz, gz_len,
                                covered, 0, NGX_HTTP_EXCHANGE_HEALTH_GZIP,
                                0x7 };

    printf("scan-speed: %s, body %zu bytes (gzip %zu), window %zu, "
           "pieces of %zu, %d runs of %.1f s CPU each, median\n",
           file, len, gz_len, window, piece, RUNS, seconds);

    for (c = cases; c < cases + 4; c++) {

        rc = scan_once(c, piece, window);

        if (rc != NGX_HTTP_EXCHANGE_HEALTH_SCAN_CLEAN) {
            /* a healthy page must scan clean, or the figure means nothing */
            fprintf(stderr, "%s: %s: scan returned %d, not clean\n",
                    argv[0], c->name, rc);
            return 1;
        }

        for (i = 0; i < RUNS; i++) {
            n = 0;
            start = cpu_now();

            /*
             * The CPU clock is a system call of about a microsecond, as
             * long as a short scan: it is read once per batch of scans.
             */

            do {
                for (k = 0; k < BATCH; k++) {
                    scan_once(c, piece, window);
                }

                n += BATCH;
                spent = cpu_now() - start;
            } while (spent < seconds);

            rate[i] = (double) n * c->decoded / spent;
        }

        qsort(rate, RUNS, sizeof(double), cmp_double);
        scans_per_s = rate[RUNS / 2] / c->decoded;

        printf("scan-speed: %-36s %6.2f GB/s per core (min %.2f, max %.2f), "
               "%.2f us per page\n", c->name, rate[RUNS / 2] / 1e9,
               rate[0] / 1e9, rate[RUNS - 1] / 1e9, 1e6 / scans_per_s);
    }

    return 0;
}

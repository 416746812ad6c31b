/* ppfctl table and ppfctl event: the Image Prediction Table (TABLE_DUMP)
 * and host history for the learning engine (EVENT),
 * schemas/device-protocol.md §5.7.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

#define TABLE_ROWS_MAX 1000000

struct tbl_image {
    char image[PPF_NAME_MAX + 1];
    char tenant[PPF_NAME_MAX + 1];
    uint32_t score;             /* x 1e6 */
    uint64_t hits, misses;
};

struct tbl_row {
    char key[256];
    uint64_t hits, misses, updated_us;
    size_t n;
    struct tbl_image *img;
};

struct tbl {
    struct tbl_row *v;
    size_t n, cap;
    uint32_t total;
};

static void
tbl_free(struct tbl *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].img);
    free(t->v);
}

/* Appends the rows of one TABLE_DUMP answer.  0, or -1 (malformed, or
 * out of memory). */
static int
tbl_decode(const uint8_t *buf, uint32_t len, struct tbl *t)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct tbl_row *row = NULL;
    struct tbl_image *im = NULL;
    int k;

    ppf_attr_reader_init(&r, buf, len);
    while ((k = ppf_attr_next(&r, &a)) > 0) {
        if (a.type == PPF_A_KEY) {
            if (t->n == t->cap) {
                size_t nc = t->cap ? 2 * t->cap : 64;
                struct tbl_row *nv;

                if (nc > TABLE_ROWS_MAX || !(nv = realloc(t->v, nc * sizeof *nv)))
                    return -1;
                t->v = nv;
                t->cap = nc;
            }
            row = &t->v[t->n++];
            memset(row, 0, sizeof *row);
            im = NULL;
            if (ppf_attr_get_str(&a, row->key, sizeof row->key) < 0)
                return -1;
            continue;
        }
        if (!row)
            return -1;          /* every row starts with its key */
        if (a.type == PPF_A_IMAGE) {
            struct tbl_image *nv = realloc(row->img, (row->n + 1) * sizeof *nv);

            if (!nv)
                return -1;
            row->img = nv;
            im = &row->img[row->n++];
            memset(im, 0, sizeof *im);
            if (ppf_attr_get_str(&a, im->image, sizeof im->image) < 0)
                return -1;
            continue;
        }
        switch (a.type) {
        case PPF_A_TENANT:
            if (!im || ppf_attr_get_str(&a, im->tenant, sizeof im->tenant) < 0)
                return -1;
            break;
        case PPF_A_SCORE:
            if (!im || ppf_attr_get_u32(&a, &im->score) < 0)
                return -1;
            break;
        case PPF_A_HITS:
            if (ppf_attr_get_u64(&a, im ? &im->hits : &row->hits) < 0)
                return -1;
            break;
        case PPF_A_MISSES:
            if (ppf_attr_get_u64(&a, im ? &im->misses : &row->misses) < 0)
                return -1;
            break;
        case PPF_A_UPDATED_US:
            if (im || ppf_attr_get_u64(&a, &row->updated_us) < 0)
                return -1;
            break;
        default:
            break;              /* newer attributes: skipped (§5.1) */
        }
    }
    return k < 0 ? -1 : 0;
}

static int
tbl_fetch(struct ctl *c, struct tbl *t)
{
    CLEANUP_FREE uint8_t *out = NULL;
    uint32_t cap;

    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    for (;;) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_TABLE_DUMP, .arg = { t->n },
                               .out = out, .out_cap = cap };
        size_t before = t->n;

        if (ctl_exec(c, &cmd, "table") != 0)
            return 1;
        if (tbl_decode(out, cmd.out_len, t) < 0) {
            ctl_malformed("table", PPF_OP_TABLE_DUMP);
            return 1;
        }
        t->total = cmd.result;
        if (t->n >= cmd.result || t->n == before)
            return 0;           /* all, or the table shrank meanwhile */
    }
}

static void
fmt_age(uint64_t updated_us, char *buf, size_t len)
{
    double age = (double)time(NULL) - (double)updated_us / 1e6;

    if (!updated_us)
        snprintf(buf, len, "-");
    else if (age < 120)
        snprintf(buf, len, "%.0fs ago", age < 0 ? 0 : age);
    else if (age < 7200)
        snprintf(buf, len, "%.0fm ago", age / 60);
    else if (age < 172800)
        snprintf(buf, len, "%.0fh ago", age / 3600);
    else
        snprintf(buf, len, "%.0fd ago", age / 86400);
}

static void
tbl_print_json(const struct tbl *t)
{
    struct ppf_json j;

    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_begin_array(&j, "rows");
    for (size_t i = 0; i < t->n; i++) {
        const struct tbl_row *row = &t->v[i];

        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "key", row->key);
        ppf_json_u64(&j, "hits", row->hits);
        ppf_json_u64(&j, "misses", row->misses);
        ppf_json_double(&j, "updated", (double)row->updated_us / 1e6);
        ppf_json_begin_array(&j, "images");
        for (size_t k = 0; k < row->n; k++) {
            const struct tbl_image *im = &row->img[k];

            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "image", im->image);
            if (im->tenant[0])
                ppf_json_str(&j, "tenant", im->tenant);
            ppf_json_double(&j, "score", im->score / 1e6);
            ppf_json_u64(&j, "hits", im->hits);
            ppf_json_u64(&j, "misses", im->misses);
            ppf_json_end_object(&j);
        }
        ppf_json_end_array(&j);
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    ppf_json_u64(&j, "total", t->total);
    ppf_json_end_object(&j);
}

static void
tbl_print_text(const struct tbl *t)
{
    if (t->n == 0) {
        printf("the prediction table is empty (nothing learned yet, or learning.algorithm "
               "is none)\n");
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        const struct tbl_row *row = &t->v[i];
        char age[32];

        fmt_age(row->updated_us, age, sizeof age);
        printf("%s  (hits %" PRIu64 ", misses %" PRIu64 ", updated %s)\n", row->key,
               row->hits, row->misses, age);
        for (size_t k = 0; k < row->n; k++) {
            const struct tbl_image *im = &row->img[k];

            printf("  %zu. %s%s%s  score %.3f  hits %" PRIu64 "  misses %" PRIu64 "\n",
                   k + 1, im->image, im->tenant[0] ? " for " : "", im->tenant,
                   im->score / 1e6, im->hits, im->misses);
        }
    }
    if (t->total != t->n)
        printf("(%zu rows listed; the table now holds %u)\n", t->n, t->total);
}

int
cmd_table(struct ctl *c, int argc, char **argv)
{
    struct tbl t = { 0 };
    int r;

    if (argc > 1)
        return usage_error("table takes no arguments, got '%s'", argv[1]);
    if ((r = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return r;
    r = tbl_fetch(c, &t);
    if (r == 0) {
        if (c->json)
            tbl_print_json(&t);
        else
            tbl_print_text(&t);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "ppfctl: writing the table: %s\n", strerror(errno));
            r = 1;
        }
    }
    tbl_free(&t);
    return r;
}

/* ---- EVENT -------------------------------------------------------------- */

static const char *const event_kinds[PPF_EVENT__MAX] = {
    [PPF_EVENT_DEFINED] = "defined",
    [PPF_EVENT_STARTED] = "started",
    [PPF_EVENT_STOPPED] = "stopped",
    [PPF_EVENT_UNDEFINED] = "undefined",
    [PPF_EVENT_DEPLOY] = "deploy",
};

int
cmd_event(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "tenant", required_argument, NULL, 't' },
        { "domain", required_argument, NULL, 'D' },
        { "time", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *tenant = NULL, *domain = NULL;
    uint8_t in[1024], reason[512];
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_EVENT, .out = reason, .out_cap = sizeof reason };
    uint64_t time_us = 0;
    unsigned kind = 0;
    int opt, r;

    /* 0, not 1: glibc re-initialises and permutes, so options may follow
     * KIND IMAGE (main's "+" would otherwise stick) */
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        double sec;

        switch (opt) {
        case 't':
            tenant = optarg;
            break;
        case 'D':
            domain = optarg;
            break;
        case 'T':
            errno = 0;
            sec = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(sec > 0) || sec > 1e11)
                return usage_error("--time: '%s' is not a time in seconds since the epoch "
                                   "(e.g. $(date +%%s))", optarg);
            time_us = (uint64_t)(sec * 1e6);
            break;
        default:
            return usage_error("event: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 1)
        return usage_error("event needs a KIND (defined, started, stopped, undefined, deploy)");
    for (unsigned k = 1; k < PPF_EVENT__MAX; k++)
        if (strcmp(argv[optind], event_kinds[k]) == 0)
            kind = k;
    if (!kind)
        return usage_error("event: '%s' is not a kind; use defined, started, stopped, "
                           "undefined or deploy", argv[optind]);
    if (argc - optind > 2)
        return usage_error("event: unexpected argument '%s'", argv[optind + 2]);
    if (argc - optind < 2 && kind != PPF_EVENT_STOPPED && kind != PPF_EVENT_UNDEFINED)
        return usage_error("event %s needs an IMAGE", event_kinds[kind]);
    if (argc - optind == 2 && !ppf_name_ok(argv[optind + 1]))
        return usage_error("'%s' is not an image name (1-255 letters, digits, '.', '_' or "
                           "'-')", argv[optind + 1]);
    if (tenant && !ppf_name_ok(tenant))
        return usage_error("--tenant: '%s' is not a tenant name", tenant);
    if (domain && !ppf_uuid_ok(domain))
        return usage_error("--domain: '%s' is not a UUID", domain);

    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_u32(&w, PPF_A_EVENT, kind);
    if (argc - optind == 2)
        ppf_attr_put_str(&w, PPF_A_IMAGE, argv[optind + 1]);
    if (tenant)
        ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if (domain)
        ppf_attr_put_str(&w, PPF_A_DOMAIN, domain);
    if (time_us)
        ppf_attr_put_u64(&w, PPF_A_TIME_US, time_us);
    if ((r = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return r;
    if (ctl_set_payload(c, &cmd, &w, "event") != 0 || ctl_exec(c, &cmd, "event") != 0)
        return 1;
    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "event", event_kinds[kind]);
        ppf_json_bool(&j, "learned", cmd.result == 1);
        ppf_json_end_object(&j);
    } else {
        printf("%s event sent%s\n", event_kinds[kind], cmd.result == 1 ? "; learned" : "");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

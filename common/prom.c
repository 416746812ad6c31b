/* GET_STATS counters as Prometheus text (see prom.h).  One table says, for
 * every counter id, its family name, type and help; ids the table does not
 * know yet but ppf_stat_name() does come out as ppf_NAME, untyped, so a
 * newer peripheral's counters are never silently lost.
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prom.h"

/* One counter: its family (several ids may share one, told apart by an
 * opcode label), whether it is a gauge, and whether it is exported in
 * seconds from milliseconds.  help sits on the first id of a family. */
struct prom_desc {
    unsigned id;
    const char *family;
    const char *label;          /* NULL or the opcode="..." label value */
    int gauge;
    int ms_to_s;
    const char *help;
};

static const struct prom_desc prom_descs[] = {
    /* §5.3 the core */
    { PPF_STAT_UPTIME_MS, "ppf_uptime_seconds", NULL, 1, 1,
      "Seconds since the peripheral started." },
    { PPF_STAT_COMMANDS, "ppf_commands_total", NULL, 0, 0,
      "Commands completed, any status." },
    { PPF_STAT_ERRORS, "ppf_command_errors_total", NULL, 0, 0,
      "Commands completed with an error status." },
    { PPF_STAT_REJECTED, "ppf_commands_rejected_total", NULL, 0, 0,
      "Commands rejected as invalid from the host." },
    { PPF_STAT_CLAIMS, "ppf_queue_pair_claims_total", NULL, 0, 0, "Queue pairs claimed." },
    { PPF_STAT_RESETS, "ppf_queue_pair_resets_total", NULL, 0, 0,
      "Queue pairs reset after release or reclaim." },
    { PPF_STAT_RECLAIMS, "ppf_queue_pair_reclaims_total", NULL, 0, 0,
      "Queue pairs reclaimed from dead owners." },
    { PPF_STAT_QUEUE_FATAL, "ppf_queue_pairs_stopped_total", NULL, 0, 0,
      "Queue pairs stopped for protocol violations." },
    { PPF_STAT_IRQS, "ppf_interrupts_total", NULL, 0, 0, "Completion interrupts raised." },
    { PPF_STAT_WAKEUPS, "ppf_wakeups_total", NULL, 0, 0,
      "Times the peripheral woke from sleep." },
    { PPF_STAT_CLIENTS, "ppf_clients", NULL, 1, 0,
      "Clients attached now (emulated peripheral)." },
    { PPF_STAT_QPS_CLAIMED, "ppf_queue_pairs_claimed", NULL, 1, 0, "Queue pairs claimed now." },
    { PPF_STAT_OP_NOP, "ppf_opcode_commands_total", "NOP", 0, 0,
      "Commands executed, by opcode." },
    { PPF_STAT_OP_IDENTIFY, "ppf_opcode_commands_total", "IDENTIFY", 0, 0, NULL },
    { PPF_STAT_OP_GET_STATS, "ppf_opcode_commands_total", "GET_STATS", 0, 0, NULL },
    /* §5.6 the prefetch buffer */
    { PPF_STAT_DEPLOYS, "ppf_deploys_total", NULL, 0, 0,
      "DEPLOY commands completed successfully." },
    { PPF_STAT_HITS, "ppf_deploy_hits_total", NULL, 0, 0,
      "Deploys served from a prepared buffer entry." },
    { PPF_STAT_INFLIGHT_HITS, "ppf_deploy_inflight_hits_total", NULL, 0, 0,
      "Deploys that waited for a prefetch in flight." },
    { PPF_STAT_MISSES, "ppf_deploy_misses_total", NULL, 0, 0,
      "Deploys that had to fetch the image." },
    { PPF_STAT_DEPLOY_ERRORS, "ppf_deploy_errors_total", NULL, 0, 0,
      "DEPLOY commands that failed." },
    { PPF_STAT_PREFETCHES, "ppf_prefetches_total", NULL, 0, 0, "Prefetches finished." },
    { PPF_STAT_PREFETCH_BYTES, "ppf_prefetch_bytes_total", NULL, 0, 0,
      "Bytes prepared by prefetches." },
    { PPF_STAT_DEMAND_BYTES, "ppf_demand_bytes_total", NULL, 0, 0,
      "Bytes prepared for deploy misses." },
    { PPF_STAT_FETCH_ERRORS, "ppf_fetch_errors_total", NULL, 0, 0, "Fetches that failed." },
    { PPF_STAT_EVICTIONS, "ppf_evictions_total", NULL, 0, 0, "Buffer entries evicted." },
    { PPF_STAT_WASTED_BYTES, "ppf_wasted_bytes_total", NULL, 0, 0,
      "Bytes prefetched, then evicted unused." },
    { PPF_STAT_BUFFER_USED, "ppf_buffer_used_bytes", NULL, 1, 0,
      "Bytes of the prefetch buffer charged now." },
    { PPF_STAT_BUFFER_CAPACITY, "ppf_buffer_capacity_bytes", NULL, 1, 0,
      "Capacity of the prefetch buffer in bytes." },
    { PPF_STAT_BUFFER_ENTRIES, "ppf_buffer_entries", NULL, 1, 0,
      "Entries in the prefetch buffer now." },
    /* §6.3 the monitor */
    { PPF_STAT_METRICS_RECORDS, "ppf_metrics_records_total", NULL, 0, 0,
      "Host metric records the monitor read and accepted." },
    { PPF_STAT_METRICS_DROPPED, "ppf_metrics_dropped_total", NULL, 0, 0,
      "Host metric records overwritten before the monitor read them." },
    { PPF_STAT_METRICS_INVALID, "ppf_metrics_invalid_total", NULL, 0, 0,
      "Host metric records skipped as torn or invalid." },
    { PPF_STAT_METRICS_PRODUCER, "ppf_metrics_producer_pid", NULL, 1, 0,
      "Process id of the producer (ppfd) of the last metric record, 0 if none." },
    /* §5.7 the predictor */
    { PPF_STAT_EVENTS, "ppf_events_total", NULL, 0, 0,
      "Host EVENT commands accepted (libvirt domain lifecycle, host deploys)." },
    { PPF_STAT_LEARNED, "ppf_learned_total", NULL, 0, 0,
      "Deploys the engine learned from." },
    { PPF_STAT_PREDICTED, "ppf_predicted_prefetches_total", NULL, 0, 0,
      "Prefetches the predictor started." },
    { PPF_STAT_PREDICTED_HITS, "ppf_predicted_hits_total", NULL, 0, 0,
      "Deploys served from predicted prefetches." },
    { PPF_STAT_PREDICTED_WASTED, "ppf_predicted_wasted_total", NULL, 0, 0,
      "Predicted prefetches evicted unused." },
    { PPF_STAT_HINTS, "ppf_hint_prefetches_total", NULL, 0, 0,
      "Prefetches started for a domain DEFINED event." },
    { PPF_STAT_TABLE_ROWS, "ppf_table_rows", NULL, 1, 0,
      "Rows in the Image Prediction Table now." },
    { PPF_STAT_STORE_SAVES, "ppf_store_saves_total", NULL, 0, 0,
      "Times the learned pattern store was written." },
};

#define PROM_NDESCS (sizeof prom_descs / sizeof prom_descs[0])

int
ppf_prom_stats_parse(struct ppf_prom_stats *s, const void *buf, size_t len)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    int k;

    memset(s, 0, sizeof *s);
    ppf_attr_reader_init(&r, buf, len);
    while ((k = ppf_attr_next(&r, &a)) > 0) {
        if (a.type == 0 || a.type >= PPF_PROM_NSTATS)
            continue;               /* unknown counter: skip (§5.1) */
        if (ppf_attr_get_u64(&a, &s->v[a.type]) < 0)
            return -1;
        s->have[a.type] = 1;
    }
    return k < 0 ? -1 : 0;
}

int
ppf_prom_hit_ratio(const struct ppf_prom_stats *s, double *ratio)
{
    *ratio = 0;
    if (!s->have[PPF_STAT_DEPLOYS] || s->v[PPF_STAT_DEPLOYS] == 0)
        return 0;
    /* in floating point, so that inconsistent counters cannot overflow */
    *ratio = ((double)s->v[PPF_STAT_HITS] + (double)s->v[PPF_STAT_INFLIGHT_HITS]) /
             (double)s->v[PPF_STAT_DEPLOYS];
    return 1;
}

static void
prom_header(FILE *fp, const char *family, const char *type, const char *help)
{
    fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, type);
}

static void
prom_value(FILE *fp, const struct prom_desc *d, uint64_t v)
{
    if (d->label)
        fprintf(fp, "%s{opcode=\"%s\"} ", d->family, d->label);
    else
        fprintf(fp, "%s ", d->family);
    if (d->ms_to_s)
        fprintf(fp, "%llu.%03llu\n", (unsigned long long)(v / 1000),
                (unsigned long long)(v % 1000));
    else
        fprintf(fp, "%llu\n", (unsigned long long)v);
}

int
ppf_prom_write(FILE *fp, const struct ppf_prom_stats *s)
{
    unsigned char described[PPF_PROM_NSTATS] = { 0 };
    const char *family = NULL;
    double ratio;

    for (size_t i = 0; i < PROM_NDESCS; i++) {
        const struct prom_desc *d = &prom_descs[i];

        described[d->id] = 1;
        if (!s->have[d->id])
            continue;
        if (!family || strcmp(family, d->family) != 0) {
            const char *help = d->help;

            for (size_t k = i; !help && k > 0; k--)
                if (strcmp(prom_descs[k - 1].family, d->family) == 0)
                    help = prom_descs[k - 1].help;
            prom_header(fp, d->family, d->gauge ? "gauge" : "counter", help ? help : "");
            family = d->family;
        }
        prom_value(fp, d, s->v[d->id]);
    }
    /* named by the protocol but not described here yet */
    for (unsigned id = 1; id < PPF_PROM_NSTATS; id++) {
        const char *name = ppf_stat_name(id);

        if (described[id] || !s->have[id] || !name)
            continue;
        fprintf(fp, "# HELP ppf_%s Peripheral counter %s (GET_STATS id %u).\n"
                "# TYPE ppf_%s untyped\nppf_%s %llu\n", name, name, id, name, name,
                (unsigned long long)s->v[id]);
    }
    if (s->have[PPF_STAT_DEPLOYS]) {
        prom_header(fp, "ppf_hit_ratio", "gauge", "Deploys served from the buffer (hits "
                    "and in-flight hits) over all deploys.");
        if (ppf_prom_hit_ratio(s, &ratio))
            fprintf(fp, "ppf_hit_ratio %.6g\n", ratio);
        else
            fprintf(fp, "ppf_hit_ratio NaN\n");
    }
    if (ferror(fp)) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

int
ppf_prom_write_one(FILE *fp, const char *name, const char *type, const char *help,
                   double value)
{
    prom_header(fp, name, type, help);
    fprintf(fp, "%s %.17g\n", name, value);
    if (ferror(fp)) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

/* ---- USAGE (§5.9) ------------------------------------------------------- */

/* The row a new group starts; NULL (errno set) if there is no room. */
static struct ppf_prom_usage_row *
usage_add(struct ppf_prom_usage *u)
{
    if (u->n == u->cap) {
        size_t nc = u->cap ? 2 * u->cap : 64;
        struct ppf_prom_usage_row *nv;

        if (u->n >= PPF_PROM_USAGE_MAX) {
            errno = EPROTO;
            return NULL;
        }
        if (!(nv = realloc(u->row, nc * sizeof *nv))) {
            errno = ENOMEM;
            return NULL;
        }
        u->row = nv;
        u->cap = nc;
    }
    memset(&u->row[u->n], 0, sizeof u->row[u->n]);
    return &u->row[u->n++];
}

/* Where a U_* counter goes in a row, or NULL for other types. */
static uint64_t *
usage_counter(struct ppf_prom_usage_row *r, uint16_t type)
{
    switch (type) {
    case PPF_A_U_DEPLOYS: return &r->deploys;
    case PPF_A_U_HITS: return &r->hits;
    case PPF_A_U_INFLIGHT: return &r->inflight;
    case PPF_A_U_MISSES: return &r->misses;
    case PPF_A_U_FALLBACKS: return &r->fallbacks;
    case PPF_A_U_WAIT_US: return &r->wait_us;
    case PPF_A_U_SAVED_US: return &r->saved_us;
    case PPF_A_U_PREFETCH_BYTES: return &r->prefetch_bytes;
    case PPF_A_U_WASTED_BYTES: return &r->wasted_bytes;
    default: return NULL;
    }
}

int
ppf_prom_usage_parse(struct ppf_prom_usage *u, const void *buf, size_t len)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct ppf_prom_usage_row *row = NULL;
    int k;

    ppf_attr_reader_init(&r, buf, len);
    while ((k = ppf_attr_next(&r, &a)) > 0) {
        /* a group starts with IMAGE (an image's, TENANT follows) or with
         * TENANT (a tenant's) */
        if (a.type == PPF_A_IMAGE ||
            (a.type == PPF_A_TENANT && (!row || !row->image[0] || row->tenant[0]))) {
            if (!(row = usage_add(u)))
                return -1;
        }
        if (a.type == PPF_A_IMAGE || a.type == PPF_A_TENANT) {
            char *dst = a.type == PPF_A_IMAGE ? row->image : row->tenant;

            if (ppf_attr_get_str(&a, dst, sizeof row->image) < 0 || !dst[0])
                break;
            continue;
        }
        if (a.type < PPF_A_U_DEPLOYS || a.type > PPF_A_U_WASTED_BYTES)
            continue;           /* newer attributes: skipped (§5.1) */
        if (!row || ppf_attr_get_u64(&a, usage_counter(row, a.type)) < 0)
            break;
    }
    if (k != 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int
usage_cmp(const void *pa, const void *pb)
{
    const struct ppf_prom_usage_row *a = pa, *b = pb;
    int c;

    if (!a->image[0] != !b->image[0])
        return a->image[0] ? 1 : -1;    /* tenants first */
    if ((c = strcmp(a->image, b->image)) != 0)
        return c;
    return strcmp(a->tenant, b->tenant);
}

void
ppf_prom_usage_sort(struct ppf_prom_usage *u)
{
    size_t n = 0;

    if (u->n > 1)
        qsort(u->row, u->n, sizeof *u->row, usage_cmp);
    /* a group read twice (a new tenant shifted the images between two
     * pages): keep one */
    for (size_t i = 0; i < u->n; i++)
        if (n == 0 || usage_cmp(&u->row[n - 1], &u->row[i]) != 0)
            u->row[n++] = u->row[i];
    u->n = n;
    for (u->ntenants = 0; u->ntenants < u->n && !u->row[u->ntenants].image[0]; u->ntenants++)
        ;
}

void
ppf_prom_usage_free(struct ppf_prom_usage *u)
{
    free(u->row);
    memset(u, 0, sizeof *u);
}

double
ppf_prom_usage_hit_ratio(const struct ppf_prom_usage_row *r)
{
    if (!r->deploys)
        return 0;
    return ((double)r->hits + (double)r->inflight) / (double)r->deploys;
}

/* A label value in the text format: backslash, quote and newline escaped. */
static void
prom_label_value(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', fp);
        if (*s == '\n')
            fputs("\\n", fp);
        else
            fputc(*s, fp);
    }
    fputc('"', fp);
}

/* family{tenant="T"} or family{image="I",tenant="T"}, with outcome if any. */
static void
prom_usage_labels(FILE *fp, const char *family, const struct ppf_prom_usage_row *r,
                  const char *outcome)
{
    fprintf(fp, "%s{", family);
    if (r->image[0]) {
        fputs("image=", fp);
        prom_label_value(fp, r->image);
        fputc(',', fp);
    }
    fputs("tenant=", fp);
    prom_label_value(fp, r->tenant);
    if (outcome)
        fprintf(fp, ",outcome=\"%s\"", outcome);
    fputs("} ", fp);
}

static void
prom_us(FILE *fp, uint64_t us)
{
    fprintf(fp, "%llu.%06llu\n", (unsigned long long)(us / 1000000),
            (unsigned long long)(us % 1000000));
}

/* The per-row families after the deploys: name suffix, help, the field. */
static const struct {
    const char *suffix, *help;
    size_t off;
    int us;
} usage_families[] = {
    { "wait_seconds_total", "Time deploys waited for their disk (fallbacks not counted).",
      offsetof(struct ppf_prom_usage_row, wait_us), 1 },
    { "saved_seconds_total", "Deploy time the buffer saved against misses, estimated from "
      "the measured pipeline rate.", offsetof(struct ppf_prom_usage_row, saved_us), 1 },
    { "prefetched_bytes_total", "Bytes brought into the buffer by prefetches.",
      offsetof(struct ppf_prom_usage_row, prefetch_bytes), 0 },
    { "wasted_bytes_total", "Bytes prefetched, then evicted unused.",
      offsetof(struct ppf_prom_usage_row, wasted_bytes), 0 },
};

/* The families of the tenant rows (images 0) or the image rows (1), if
 * there are any. */
static void
prom_usage_rows(FILE *fp, const struct ppf_prom_usage *u, int images)
{
    static const char *const outcomes[] = { "hit", "in-flight", "miss", "fallback" };
    const char *who = images ? "image" : "tenant";
    char family[64], help[160];
    size_t n = 0;

    for (size_t i = 0; i < u->n; i++)
        n += (u->row[i].image[0] != '\0') == images;
    if (!n)
        return;                 /* a family without samples confuses some scrapers */
    snprintf(family, sizeof family, "ppf_%s_deploys_total", who);
    snprintf(help, sizeof help, "Deploys by %s and outcome (hit, in-flight, miss; fallback: "
             "deployed by the host).", images ? "image, tenant" : "tenant");
    prom_header(fp, family, "counter", help);
    for (size_t i = 0; i < u->n; i++) {
        const struct ppf_prom_usage_row *r = &u->row[i];
        const uint64_t v[] = { r->hits, r->inflight, r->misses, r->fallbacks };

        if ((r->image[0] != '\0') != images)
            continue;
        for (int o = 0; o < 4; o++) {
            prom_usage_labels(fp, family, r, outcomes[o]);
            fprintf(fp, "%llu\n", (unsigned long long)v[o]);
        }
    }
    for (size_t f = 0; f < sizeof usage_families / sizeof usage_families[0]; f++) {
        snprintf(family, sizeof family, "ppf_%s_%s", who, usage_families[f].suffix);
        prom_header(fp, family, "counter", usage_families[f].help);
        for (size_t i = 0; i < u->n; i++) {
            const struct ppf_prom_usage_row *r = &u->row[i];
            uint64_t v;

            if ((r->image[0] != '\0') != images)
                continue;
            memcpy(&v, (const char *)r + usage_families[f].off, sizeof v);
            prom_usage_labels(fp, family, r, NULL);
            if (usage_families[f].us)
                prom_us(fp, v);
            else
                fprintf(fp, "%llu\n", (unsigned long long)v);
        }
    }
}

int
ppf_prom_usage_write(FILE *fp, const struct ppf_prom_usage *u)
{
    uint64_t saved = 0;

    if (!u->have)
        return 0;
    for (size_t i = 0; i < u->n; i++)
        if (!u->row[i].image[0])
            saved += u->row[i].saved_us;
    prom_header(fp, "ppf_saved_seconds_total", "counter", "Deploy time the buffer saved "
                "against misses, estimated from the measured pipeline rate.");
    fputs("ppf_saved_seconds_total ", fp);
    prom_us(fp, saved);
    prom_usage_rows(fp, u, 0);
    prom_usage_rows(fp, u, 1);
    if (ferror(fp)) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

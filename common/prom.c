/* GET_STATS counters as Prometheus text (see prom.h).  One table says, for
 * every counter id, its family name, type and help; ids the table does not
 * know yet but ppf_stat_name() does come out as ppf_NAME, untyped, so a
 * newer peripheral's counters are never silently lost.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
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

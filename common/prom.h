/* The peripheral's counters (GET_STATS, schemas/device-protocol.md §5.3)
 * in the Prometheus text exposition format, shared by `ppfctl stats
 * --prometheus` and ppfd's textfile-collector file (--prometheus-file).
 * Pure formatting: no I/O but the FILE the caller hands in, so both
 * callers print the same families with the same names, help and types.
 */
#ifndef PPF_COMMON_PROM_H
#define PPF_COMMON_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ppf/protocol.h"

#define PPF_PROM_NSTATS PPF_STAT_PREDICT__MAX   /* counter ids understood: 1..63 */

/* The counters one GET_STATS answered, by PPF_STAT_* id. */
struct ppf_prom_stats {
    uint64_t v[PPF_PROM_NSTATS];
    unsigned char have[PPF_PROM_NSTATS];        /* 1 if the peripheral sent v[id] */
};

/* Reads a GET_STATS payload of len bytes (untrusted) into *s, which is
 * cleared first; counters of unknown ids are skipped (§5.1).  0, or -1 if
 * the payload is malformed. */
int ppf_prom_stats_parse(struct ppf_prom_stats *s, const void *buf, size_t len);

/* (hits + in-flight hits) / deploys in *ratio and 1, or 0 (*ratio = 0)
 * when there were no deploys or the peripheral has no buffer counters. */
int ppf_prom_hit_ratio(const struct ppf_prom_stats *s, double *ratio);

/* Writes every counter s holds as a metric family with # HELP and # TYPE
 * (counters end in _total, sizes in _bytes, durations in _seconds), then
 * ppf_hit_ratio (a gauge, NaN before the first deploy) if the peripheral
 * has buffer counters.  0, or -1 with errno set if fp failed. */
int ppf_prom_write(FILE *fp, const struct ppf_prom_stats *s);

/* Writes one family of one sample: name, "counter" or "gauge", help (one
 * line, no backslash or newline) and value.  For a program's own metrics
 * beside the peripheral's.  0, or -1 with errno set. */
int ppf_prom_write_one(FILE *fp, const char *name, const char *type, const char *help,
                       double value);

/* One USAGE group (§5.9): a tenant's counters (image "") or an image's
 * for one tenant.  Names are as the peripheral sent them (checked strings;
 * "(other)" collects what it stopped tracking separately). */
struct ppf_prom_usage_row {
    char image[PPF_NAME_MAX + 1];
    char tenant[PPF_NAME_MAX + 1];
    uint64_t deploys, hits, inflight, misses, fallbacks;
    uint64_t wait_us, saved_us, prefetch_bytes, wasted_bytes;
};

/* Every group of a USAGE answer: tenants first, then images. */
struct ppf_prom_usage {
    struct ppf_prom_usage_row *row;
    size_t n, cap;
    size_t ntenants;            /* rows[0..ntenants) are tenants (after sorting) */
    int have;                   /* 1 if the peripheral answered USAGE */
};

#define PPF_PROM_USAGE_MAX 100000   /* groups accepted from one peripheral */

/* Appends the groups of one USAGE payload of len bytes (untrusted) to *u
 * (zeroed the first time).  0, or -1 if it is malformed or too large
 * (errno EPROTO), or out of memory (ENOMEM). */
int ppf_prom_usage_parse(struct ppf_prom_usage *u, const void *buf, size_t len);
/* Orders the rows: tenants by name, then images by name and tenant; drops
 * a row read twice (pages of one USAGE are not one snapshot); sets
 * ntenants. */
void ppf_prom_usage_sort(struct ppf_prom_usage *u);
/* Frees the rows; u may be reused after. */
void ppf_prom_usage_free(struct ppf_prom_usage *u);
/* (hits + in-flight) / deploys, 0 without deploys (fallbacks count as
 * deploys the buffer did not serve). */
double ppf_prom_usage_hit_ratio(const struct ppf_prom_usage_row *r);
/* Writes the usage (nothing unless u->have) as labeled families:
 * ppf_saved_seconds_total, then ppf_tenant_* {tenant=...} and ppf_image_*
 * {image=...,tenant=...} when there are such rows, with deploys split by
 * outcome="hit|in-flight|miss|fallback".  Label values are escaped as the
 * text format wants.  0, or -1 with errno set. */
int ppf_prom_usage_write(FILE *fp, const struct ppf_prom_usage *u);

#endif /* PPF_COMMON_PROM_H */

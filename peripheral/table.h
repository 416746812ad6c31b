/* The Image Prediction Table: pattern key -> ranked images, each with a
 * score (how likely, smoothed over recent predictions) and hit/miss counts
 * (prefetches it caused that were used / evicted unused).  Keys are short
 * texts naming the pattern that predicted ("histogram every 5m",
 * "markov after img-1", "seasonal daily 10:00").  Its size (rows) comes
 * from table.size; in dynamic mode it grows towards table.dynamic.max
 * while rows are being evicted and predictions hit, and shrinks towards
 * table.dynamic.min when they miss or rows sit unused, never past its
 * memory limit.  Least useful rows are evicted first.
 */
#ifndef PPF_PERIPHERAL_TABLE_H
#define PPF_PERIPHERAL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "peripheral/engine.h"
#include "policy/policy.h"

#define PPF_TABLE_KEY   64      /* bytes of a key, with its NUL */
#define PPF_TABLE_RANK  8       /* images per row */

struct ppf_table_entry {
    uint32_t image;
    double score;
    uint64_t hits, misses;
};

struct ppf_table_row {
    char key[PPF_TABLE_KEY];
    double updated;
    uint64_t hits, misses;
    unsigned n;
    struct ppf_table_entry e[PPF_TABLE_RANK];   /* best score first */
};

struct ppf_table_config {
    uint32_t size;              /* rows */
    bool dynamic;
    uint32_t min, max;
    uint64_t memory_limit;      /* bytes; 0 = none */
    double adaptation_rate;     /* score smoothing */
};

struct ppf_table_stats {
    uint32_t size, rows;
    uint64_t hits, misses, evictions, grows, shrinks;
};

void ppf_table_config_from_policy(const struct ppf_policy *p, struct ppf_table_config *c);

struct ppf_table;

/* NULL on ENOMEM or EINVAL (size 0, min > size > max in dynamic mode). */
struct ppf_table *ppf_table_new(const struct ppf_table_config *c);
void ppf_table_free(struct ppf_table *t);

/* The predictions p[0..n) were made under key at now: merge them into its
 * row (created, evicting the least useful row if the table is full).
 * 0, or -1 (EINVAL: empty key; ENOMEM). */
int ppf_table_record(struct ppf_table *t, const char *key, const struct ppf_prediction *p,
                     size_t n, double now);
/* An image predicted under key was used (hit) or wasted (miss).  Counts
 * for the row and the image, and drives dynamic sizing.  0, or -1
 * (ENOENT: the row is gone). */
int ppf_table_feedback(struct ppf_table *t, const char *key, uint32_t image, bool hit,
                       double now);

void ppf_table_get_stats(const struct ppf_table *t, struct ppf_table_stats *st);
/* Up to cap rows, most hits first (ties: key order); returns the count. */
size_t ppf_table_dump(const struct ppf_table *t, struct ppf_table_row *out, size_t cap);
/* The whole table as JSON (names through e, which may be NULL: ids). */
int ppf_table_dump_json(const struct ppf_table *t, const struct ppf_engine *e, FILE *fp);

#endif /* PPF_PERIPHERAL_TABLE_H */

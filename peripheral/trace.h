/* Replay traces: deploy requests as CSV (plain or gzip-compressed), in the
 * format of ../shared/traces/README.md,
 *
 *     timestamp,image,tenant,size_bytes
 *
 * with a header line naming the columns (any order; more columns are
 * ignored), times in seconds, sorted.  A metrics file is optional:
 * "timestamp,NAME..." with up to PPF_ENGINE_MAX_METRICS numeric columns.
 * Every bad line is reported as "FILE:LINE: what is wrong".  Gzip is read
 * through the gzip program (no library dependency).
 */
#ifndef PPF_PERIPHERAL_TRACE_H
#define PPF_PERIPHERAL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "peripheral/engine.h"

/* Times may go back by at most this much (then count as the previous
 * time); more is an error. */
#define PPF_TRACE_TIME_TOLERANCE 1.0

struct ppf_trace_event {
    double time;
    uint32_t image, tenant;     /* ids in the trace's own tables */
    uint64_t size;
};

struct ppf_trace {
    char *path;
    struct ppf_trace_event *ev;
    size_t n;
    struct ppf_strtab *images, *tenants;
    struct ppf_metrics_sample *metrics;
    size_t nmetrics;
    unsigned metric_dims;
};

/* Reads a whole trace.  0 and *out (ppf_trace_free), or -1 with err set to
 * "FILE[:LINE]: message" (nothing is printed). */
int ppf_trace_read(const char *path, struct ppf_trace **out, char *err, size_t errlen);
/* Adds a metrics file to t.  0, or -1 with err set. */
int ppf_trace_read_metrics(struct ppf_trace *t, const char *path, char *err, size_t errlen);
void ppf_trace_free(struct ppf_trace *t);

#endif /* PPF_PERIPHERAL_TRACE_H */

/* ppfd's metrics agent: samples the host (CPU from /proc/stat, memory from
 * /proc/meminfo, pressure from /proc/pressure/{cpu,memory,io}, disks from /proc/diskstats,
 * network from /proc/net/dev) into ring records (include/ppf/protocol.h §6).
 * The /proc and /sys roots can be moved with $PPF_PROC_ROOT and
 * $PPF_SYSFS_ROOT for tests.  No allocation per sample.
 */
#ifndef PPF_PLUGIN_METRICS_H
#define PPF_PLUGIN_METRICS_H

#include <stdint.h>

#include "ppf/protocol.h"

struct ppf_sampler;

/* A new sampler, or NULL (message logged). */
struct ppf_sampler *ppf_sampler_new(void);
void ppf_sampler_free(struct ppf_sampler *s);
/* Takes one sample of the groups in mask (PPF_METRIC_*) into *rec (seq and
 * index left 0).  Rates (CPU, disk, net) need a previous sample: the first
 * one after start or after a group is enabled leaves that group's flag
 * clear; an unreadable file leaves its group out (warned once).  Returns 0. */
int ppf_sampler_sample(struct ppf_sampler *s, uint32_t mask, uint32_t interval_ms,
                       struct ppf_metrics_rec *rec);

/* Parsers, exposed for the unit tests.  Each takes a NUL-terminated file
 * text and returns 0 or -1. */
int ppf_parse_proc_stat(const char *text, uint64_t *total, uint64_t *idle);
int ppf_parse_meminfo(const char *text, uint64_t *total_kb, uint64_t *avail_kb);
int ppf_parse_psi_avg10(const char *text, uint16_t *hundredths);
int ppf_parse_net_dev(const char *text, uint64_t *rx, uint64_t *tx);

#endif /* PPF_PLUGIN_METRICS_H */

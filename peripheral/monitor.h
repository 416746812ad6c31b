/* The peripheral's monitor: the consumer of the metrics ring that ppfd
 * fills (schemas/device-protocol.md §6).  ppf_monitor_poll runs on the
 * core's thread at every poll (one load of the ring's head when nothing
 * is new); it checks and keeps the last valid sample and counts what it
 * read, dropped and rejected.  ppf_monitor_last may be called from any
 * thread (the engine's).
 */
#ifndef PPF_PERIPHERAL_MONITOR_H
#define PPF_PERIPHERAL_MONITOR_H

#include <stdint.h>

#include "ppf/protocol.h"

struct ppf_monitor;
struct ppf_attr_writer;

struct ppf_monitor_counters {
    uint64_t records;           /* valid records read */
    uint64_t dropped;           /* overwritten before they were read */
    uint64_t invalid;           /* torn or failing the checks */
    uint64_t resyncs;           /* head moved backwards */
    uint32_t producer;          /* producer pid seen with the last record, 0 if none */
};

/* Initialises the ring at mem (size bytes inside the window, zeroed) with
 * the largest power-of-two number of records that fits, and returns a
 * monitor reading it in *monp (NULL on entry).  0 or -1 (logged). */
int ppf_monitor_new(void *mem, uint64_t size, struct ppf_monitor **monp);
void ppf_monitor_free(struct ppf_monitor *mon);
/* Reads every record published since the last call (at most one ring's
 * worth).  Returns how many valid records it read. */
unsigned ppf_monitor_poll(struct ppf_monitor *mon);
/* Copies the last valid sample to *rec and returns 0, or -1 if none has
 * arrived yet (*rec zeroed).  counters may be NULL. */
int ppf_monitor_last(struct ppf_monitor *mon, struct ppf_metrics_rec *rec,
                     struct ppf_monitor_counters *counters);
/* Appends PPF_STAT_METRICS_* counters to a GET_STATS answer. */
void ppf_monitor_stats(struct ppf_monitor *mon, struct ppf_attr_writer *w);

#endif /* PPF_PERIPHERAL_MONITOR_H */

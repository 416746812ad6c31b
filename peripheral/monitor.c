/* The peripheral's monitor (peripheral/monitor.h): reads the metrics ring
 * with the checking consumer of common/metrics.c and publishes the last
 * sample under a mutex for the engine.  The ring's producer pid is read
 * only to name it in the log; nothing else in the header is re-read.
 */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "peripheral/monitor.h"

struct ppf_monitor {
    struct ppf_metrics_reader rd;       /* core thread only */
    const struct ppf_metrics_hdr *hdr;
    uint32_t logged_producer;           /* core thread only: what was last logged */
    uint32_t logged_interval;
    unsigned nlogged;                   /* a flapping host cannot flood the log */
    pthread_mutex_t lock;               /* guards last, have_last, counters */
    struct ppf_metrics_rec last;
    int have_last;
    struct ppf_monitor_counters counters;
};

int
ppf_monitor_new(void *mem, uint64_t size, struct ppf_monitor **monp)
{
    struct ppf_monitor *mon;
    uint32_t n = ppf_metrics_ring_fit(size);

    *monp = NULL;
    if (n == 0 || ppf_metrics_ring_init(mem, size, n) < 0) {
        ppf_err("monitor", "metrics ring of %llu bytes holds no records",
                (unsigned long long)size);
        return -1;
    }
    mon = calloc(1, sizeof *mon);
    if (!mon) {
        ppf_err("monitor", "out of memory");
        return -1;
    }
    pthread_mutex_init(&mon->lock, NULL);
    mon->hdr = mem;
    ppf_metrics_reader_init(&mon->rd, mem, n);
    ppf_debug("monitor", "metrics ring of %u records ready", n);
    *monp = mon;
    return 0;
}

void
ppf_monitor_free(struct ppf_monitor *mon)
{
    if (!mon)
        return;
    pthread_mutex_destroy(&mon->lock);
    free(mon);
}

unsigned
ppf_monitor_poll(struct ppf_monitor *mon)
{
    struct ppf_metrics_rec rec, last;
    uint64_t head;
    unsigned n = 0;
    uint32_t producer;

    if (!mon)
        return 0;
    head = __atomic_load_n(&mon->hdr->head, __ATOMIC_ACQUIRE);
    if (head == mon->rd.tail)
        return 0;               /* the common case: one load */
    while (n <= mon->rd.nrecs && ppf_metrics_reader_next(&mon->rd, &rec) == 1) {
        last = rec;
        n++;
    }
    producer = __atomic_load_n(&mon->hdr->producer, __ATOMIC_RELAXED);
    if (n && (producer != mon->logged_producer || last.interval_ms != mon->logged_interval)) {
        ppf_log(++mon->nlogged <= 32 ? PPF_LOG_INFO : PPF_LOG_DEBUG, "monitor",
                "receiving host metrics from producer pid %u every %u ms", producer,
                last.interval_ms);
        mon->logged_producer = producer;
        mon->logged_interval = last.interval_ms;
    }
    pthread_mutex_lock(&mon->lock);
    if (n) {
        mon->last = last;
        mon->have_last = 1;
        mon->counters.producer = producer;
    }
    mon->counters.records = mon->rd.records;
    mon->counters.dropped = mon->rd.dropped;
    mon->counters.invalid = mon->rd.invalid;
    mon->counters.resyncs = mon->rd.resyncs;
    pthread_mutex_unlock(&mon->lock);
    return n;
}

int
ppf_monitor_last(struct ppf_monitor *mon, struct ppf_metrics_rec *rec,
                 struct ppf_monitor_counters *counters)
{
    int have;

    memset(rec, 0, sizeof *rec);
    if (counters)
        memset(counters, 0, sizeof *counters);
    if (!mon)
        return -1;
    pthread_mutex_lock(&mon->lock);
    have = mon->have_last;
    if (have)
        *rec = mon->last;
    if (counters)
        *counters = mon->counters;
    pthread_mutex_unlock(&mon->lock);
    return have ? 0 : -1;
}

void
ppf_monitor_stats(struct ppf_monitor *mon, struct ppf_attr_writer *w)
{
    struct ppf_monitor_counters c;
    struct ppf_metrics_rec rec;

    if (!mon)
        return;
    ppf_monitor_last(mon, &rec, &c);
    ppf_attr_put_u64(w, PPF_STAT_METRICS_RECORDS, c.records);
    ppf_attr_put_u64(w, PPF_STAT_METRICS_DROPPED, c.dropped);
    ppf_attr_put_u64(w, PPF_STAT_METRICS_INVALID, c.invalid);
    ppf_attr_put_u64(w, PPF_STAT_METRICS_PRODUCER, c.producer);
}

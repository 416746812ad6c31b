/* Replay: runs the engine, scheduler and buffer model in virtual time over
 * a trace (peripheral/trace.h), or one of the baselines, and measures what
 * a host would have seen.  The model: one fetch stream at the given
 * bandwidth, demand first (a miss pauses a running prefetch, which
 * resumes when the stream is idle again); a request is a hit only if its
 * image is fully prepared in the buffer at that moment; a miss waits for
 * the demand fetches ahead of it and then size / bandwidth (a request for
 * an image already being fetched joins that fetch).  Deterministic: the
 * same trace and configuration give the same numbers.
 *
 * Baselines: lru (demand fetch, least recently used evicted), belady
 * (demand fetch, the image used farthest in the future evicted, or not
 * kept if it is that image: the best any demand-only cache can do),
 * oracle (perfect knowledge: belady's eviction plus prefetching, over
 * idle stream time, of the next requested image not in the buffer
 * whenever it displaces only images needed later).
 */
#ifndef PPF_PERIPHERAL_REPLAY_H
#define PPF_PERIPHERAL_REPLAY_H

#include <stdint.h>

#include "peripheral/engine.h"
#include "peripheral/sched.h"
#include "peripheral/trace.h"
#include "policy/policy.h"

enum ppf_replay_kind {
    PPF_REPLAY_ENGINE,          /* engine.algorithm + scheduler + buffer model */
    PPF_REPLAY_LRU,
    PPF_REPLAY_BELADY,
    PPF_REPLAY_ORACLE,
    PPF_REPLAY__MAX
};

struct ppf_replay_config {
    enum ppf_replay_kind kind;
    struct ppf_engine_config engine;    /* PPF_REPLAY_ENGINE */
    struct ppf_sched_config sched;      /* PPF_REPLAY_ENGINE */
    enum ppf_policy_eviction eviction;  /* PPF_REPLAY_ENGINE */
    uint64_t capacity;                  /* bytes */
    uint64_t bandwidth;                 /* bytes/s, > 0 */
    const struct ppf_policy *policy;    /* optional: tenant quotas */
    int progress;                       /* report progress on stderr */
    int split_requests;                 /* ppf_replay_run_hosts: requests spread
                                         * over the hosts (by a hash of the
                                         * request), not tenants */
};

struct ppf_replay_result {
    char name[32];              /* algorithm or baseline */
    uint64_t capacity, bandwidth;
    uint64_t requests, hits;
    double hit_ratio;
    uint64_t demand_bytes;      /* fetched for misses */
    uint64_t prefetch_bytes;    /* fetched ahead of a request */
    uint64_t useful_bytes;      /* prefetched, then used */
    uint64_t wasted_bytes;      /* prefetched, then evicted unused */
    uint64_t pending_bytes;     /* prefetched, unused, still there at the end */
    uint64_t prefetches;
    double mean_latency, p99_latency;   /* modeled deploy wait, s (hit = 0) */
    double wall_seconds;
    struct ppf_engine_stats engine;     /* PPF_REPLAY_ENGINE */
};

/* The name of a kind ("lru", "belady", "oracle"; the engine's algorithm
 * for PPF_REPLAY_ENGINE), and the reverse (-1 if unknown). */
const char *ppf_replay_kind_name(enum ppf_replay_kind k);
int ppf_replay_kind_parse(const char *s);

/* 0, or -1 with errno (EINVAL: bad configuration; ENOMEM). */
int ppf_replay_run(const struct ppf_trace *t, const struct ppf_replay_config *c,
                   struct ppf_replay_result *r);

/* Several hosts (issue 8): the trace's requests split over nhosts by a
 * hash of the tenant (or of each request: c->split_requests), each host with its own engine, scheduler and buffer
 * of c->capacity; with interval > 0 (s of trace time) every host sends
 * its pattern summary to every other one that often (through the wire
 * format, schemas/federation.md), with interval 0 they learn alone.
 * r[0..nhosts) per host (requests 0 if none came to it); *merged counts
 * the images merged.  0, or -1 with errno. */
#define PPF_REPLAY_MAX_HOSTS 64
int ppf_replay_run_hosts(const struct ppf_trace *t, const struct ppf_replay_config *c,
                         unsigned nhosts, double interval, struct ppf_replay_result *r,
                         uint64_t *merged);
/* The host (0..nhosts) a tenant's requests go to. */
uint32_t ppf_replay_host_of(const char *tenant, unsigned nhosts);

#endif /* PPF_PERIPHERAL_REPLAY_H */

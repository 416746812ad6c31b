/* The prefetch scheduler: turns the engine's predictions into prefetches.
 * It ranks candidates by expected benefit per byte,
 *
 *     value (probability, discounted by how far ahead) x time saved / size
 *
 * where the time saved by a hit is the fetch time at the prefetch
 * bandwidth plus the wait a miss would add (observed), and admits one only
 * if the buffer model can make room by evicting entries worth less per
 * byte (never pinned or in-flight ones), within the tenant's quota and the
 * concurrency limit.  The same function ranks the buffer for eviction, so
 * a prefetch never displaces something more valuable than itself.
 */
#ifndef PPF_PERIPHERAL_SCHED_H
#define PPF_PERIPHERAL_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "peripheral/bufmodel.h"
#include "peripheral/engine.h"
#include "policy/policy.h"

struct ppf_sched_config {
    uint64_t bandwidth;         /* bytes/s of the fetch path; 0 = unknown (1 GB/s assumed) */
    uint32_t concurrent;        /* prefetches in flight at most */
    enum ppf_policy_priority priority;  /* passed on to the pipeline */
    double setup;               /* s a miss costs besides the transfer */
};

/* From prefetch.* of a policy. */
void ppf_sched_config_from_policy(const struct ppf_policy *p, struct ppf_sched_config *c);

struct ppf_sched_pick {
    uint32_t image, tenant;
    uint64_t size;
    double probability, eta, value_per_byte;
    enum ppf_policy_priority priority;
};

struct ppf_sched;

/* A scheduler over engine e and buffer b (both borrowed; they must outlive
 * it).  Installs itself as b's value function.  NULL on ENOMEM. */
struct ppf_sched *ppf_sched_new(const struct ppf_sched_config *c, struct ppf_engine *e,
                                struct ppf_bufmodel *b);
void ppf_sched_free(struct ppf_sched *s);

/* Expected benefit per byte of having image ready at now. */
double ppf_sched_value_per_byte(struct ppf_sched *s, uint32_t image, uint64_t size, double now);
/* A miss waited this long for the fetch path (feeds the time saved). */
void ppf_sched_note_wait(struct ppf_sched *s, double wait);
/* Whether a demand-fetched image is worth keeping: admits it to the buffer
 * (in flight) if room can be made from entries worth less.  1 admitted,
 * 0 not worth it (the deploy proceeds without keeping it). */
int ppf_sched_admit_demand(struct ppf_sched *s, uint32_t image, uint32_t tenant, uint64_t size,
                           double now);
/* The next prefetch to start at now, admitted in flight in the buffer:
 * 1 and *out, or 0 if nothing is worth it (or the concurrency limit is
 * reached).  The caller calls ppf_bufmodel_ready when it lands. */
int ppf_sched_next(struct ppf_sched *s, double now, struct ppf_sched_pick *out);

/* When to ask again if ppf_sched_next found nothing at now and nothing
 * happens meanwhile (predictions move with time alone). */
double ppf_sched_next_poll(const struct ppf_sched *s, double now);

struct ppf_sched_stats {
    uint64_t picks, refused, predictions;
    double wait;                /* current estimate of a miss's wait */
};
void ppf_sched_get_stats(const struct ppf_sched *s, struct ppf_sched_stats *st);

#endif /* PPF_PERIPHERAL_SCHED_H */

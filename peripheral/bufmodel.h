/* Buffer accounting: which images are in the prefetch buffer (prepared or
 * in flight), what they cost, and which to evict.  Pure logic, no file
 * I/O: the real buffer (it moves files) and replay (it only counts) share
 * it.  Rules: the whole buffer fits its capacity; a tenant's private
 * images fit its quota; a public image is charged once, to the capacity
 * only, however many tenants use it; pinned and in-flight entries are
 * never evicted; eviction takes the lowest value per byte first (policy
 * buffer.eviction: value) or the least recently used (lru), and never
 * evicts anything worth as much as what it makes room for.
 */
#ifndef PPF_PERIPHERAL_BUFMODEL_H
#define PPF_PERIPHERAL_BUFMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define PPF_BUF_PUBLIC UINT32_MAX   /* tenant of a public image */

enum ppf_buf_state { PPF_BUF_INFLIGHT = 1, PPF_BUF_PREPARED = 2 };

struct ppf_buf_entry {
    uint32_t image, tenant;
    uint64_t size;
    uint8_t state;              /* enum ppf_buf_state */
    bool pinned;
    bool prefetched;            /* brought in by a prefetch, not a miss */
    bool used;                  /* a deploy has used it since */
    double inserted, last_use;
    double value, value_time;   /* cached value per byte and when */
};

struct ppf_bufmodel_config {
    uint64_t capacity;          /* bytes */
    enum ppf_policy_eviction eviction;
    double revalue_interval;    /* s a cached value stays valid; 0 = always recompute */
};

struct ppf_buf_stats {
    uint64_t used, inflight, pinned;    /* bytes */
    uint64_t entries;
    uint64_t evictions, evicted_bytes;
    uint64_t evicted_unused, evicted_unused_bytes;  /* prefetched, never used */
    uint64_t refused;           /* admissions that found no room */
};

/* Value per byte of an entry at now (higher = keep), and the eviction
 * notice (called before the entry goes). */
typedef double (*ppf_buf_value_fn)(void *ctx, const struct ppf_buf_entry *e, double now);
typedef void (*ppf_buf_evict_fn)(void *ctx, const struct ppf_buf_entry *e, double now);

struct ppf_bufmodel;

/* NULL on ENOMEM or EINVAL (capacity 0). */
struct ppf_bufmodel *ppf_bufmodel_new(const struct ppf_bufmodel_config *c);
void ppf_bufmodel_free(struct ppf_bufmodel *b);
/* value NULL: every entry is worth 0 (eviction then falls back to LRU). */
void ppf_bufmodel_set_callbacks(struct ppf_bufmodel *b, ppf_buf_value_fn value,
                                ppf_buf_evict_fn evict, void *ctx);
/* quota 0: the whole buffer.  0, or -1 (ENOMEM). */
int ppf_bufmodel_set_quota(struct ppf_bufmodel *b, uint32_t tenant, uint64_t quota);

/* The entry of image, or NULL.  Valid until the next change. */
const struct ppf_buf_entry *ppf_bufmodel_find(const struct ppf_bufmodel *b, uint32_t image);

/* Makes room for size bytes of image for tenant (PPF_BUF_PUBLIC for a
 * public image) and adds it in flight.  Evicts only unpinned prepared
 * entries of value per byte below limit (any of them in lru mode, where
 * limit is ignored; pass INFINITY to force), the tenant's own first when
 * its quota is the constraint.  If room cannot be made that way nothing
 * changes and -1 is returned with errno ENOSPC (EEXIST: already there;
 * EINVAL: size 0).  0 on success. */
int ppf_bufmodel_admit(struct ppf_bufmodel *b, uint32_t image, uint32_t tenant, uint64_t size,
                       bool prefetch, double limit, double now);
/* The entry eviction would take first (unpinned, prepared, lowest value
 * per byte or least recently used), if it is worth less than limit per
 * byte (ignored in lru mode); 0 if there is none.  Nothing changes. */
uint32_t ppf_bufmodel_victim(struct ppf_bufmodel *b, double limit, double now);
/* In flight -> prepared.  0, or -1 (ENOENT). */
int ppf_bufmodel_ready(struct ppf_bufmodel *b, uint32_t image, double now);
/* A deploy of image: returns 1 if it was prepared (a hit; marks it used
 * and refreshes its value), 0 if in flight or absent. */
int ppf_bufmodel_use(struct ppf_bufmodel *b, uint32_t image, double now);
/* What is known about image changed: its cached value is recomputed when
 * next needed.  No-op if absent. */
void ppf_bufmodel_revalue(struct ppf_bufmodel *b, uint32_t image);
/* Removes an entry (cancelled fetch, or explicit eviction: the evict
 * callback runs).  0, or -1 (ENOENT; EBUSY if pinned). */
int ppf_bufmodel_remove(struct ppf_bufmodel *b, uint32_t image, double now);
/* Pins (never evicted) or unpins.  0, or -1 (ENOENT). */
int ppf_bufmodel_pin(struct ppf_bufmodel *b, uint32_t image, bool pin);

uint64_t ppf_bufmodel_capacity(const struct ppf_bufmodel *b);
/* Capacity not yet charged. */
uint64_t ppf_bufmodel_free_bytes(const struct ppf_bufmodel *b);
/* The lowest value per byte among evictable entries at now (INFINITY if
 * none; -INFINITY in lru mode, where anything may go). */
double ppf_bufmodel_floor(struct ppf_bufmodel *b, double now);
uint64_t ppf_bufmodel_tenant_used(const struct ppf_bufmodel *b, uint32_t tenant);
/* In-flight entries that came from prefetches. */
uint32_t ppf_bufmodel_inflight_prefetches(const struct ppf_bufmodel *b);
void ppf_bufmodel_get_stats(const struct ppf_bufmodel *b, struct ppf_buf_stats *st);
/* Calls fn for each entry (in insertion-independent, stable order). */
void ppf_bufmodel_foreach(const struct ppf_bufmodel *b,
                          void (*fn)(void *ctx, const struct ppf_buf_entry *e), void *ctx);

#endif /* PPF_PERIPHERAL_BUFMODEL_H */

/* The operations log and usage accounting (issue 9, schemas/device-protocol.md
 * §5.9): what the peripheral did and why, as numbered records an operator
 * can follow (ppfctl events [--follow] [--json]), and per-tenant and
 * per-image outcome counters (ppfctl stats, the Prometheus output).
 *
 * Records live in a bounded in-memory ring (the oldest go first; readers
 * that fall behind see a gap in the sequence numbers) and each is also
 * written to the peripheral's log.  Usage counters live as long as the
 * peripheral runs.  Everything runs on the core's thread.
 *
 * Time saved: a deploy that found its image ready (or in flight) saved the
 * time a miss would have taken, estimated from the measured pipeline rate
 * (bytes per second of recent preparations that ran without a bandwidth
 * limit), minus the time it waited.  Until a rate has been measured the
 * saving is counted as 0 and the record says so.
 */
#ifndef PPF_PERIPHERAL_OPLOG_H
#define PPF_PERIPHERAL_OPLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peripheral/core.h"
#include "ppf/protocol.h"

struct ppf_oplog;

#define PPF_OPLOG_DEFAULT_RECORDS 4096

/* A log keeping the last `records` records.  NULL on ENOMEM. */
struct ppf_oplog *ppf_oplog_new(size_t records);
void ppf_oplog_free(struct ppf_oplog *l);

/* Appends a record of kind (PPF_OPLOG_*) about image and tenant (either may
 * be NULL), bytes it concerns (0 if none), and a one-line text saying what
 * happened and why ("prefetched web for alice: p=0.83 from seasonal, due
 * 09:00", "evicted db: lowest value per byte, not used for 6 d").  Also
 * logged (ppf_info, component "ops").  l may be NULL (then nothing). */
void ppf_oplog_add(struct ppf_oplog *l, enum ppf_oplog_kind kind, const char *image,
                   const char *tenant, uint64_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* A deploy finished: outcome PPF_OUTCOME_*, size of the image, how long the
 * deploy waited.  Records it (PPF_OPLOG_DEPLOY, with SAVED_US) and counts it
 * for the tenant and the image.  Returns the time saved (us). */
uint64_t ppf_oplog_deploy(struct ppf_oplog *l, const char *image, const char *tenant,
                          int outcome, uint64_t size, uint64_t wait_us);

/* A preparation finished: bytes in us microseconds; prefetch: brought in
 * by a prefetch (counted as prefetched bytes for tenant and image);
 * limited: it ran under a bandwidth limit (not used for the rate).  Adds
 * no record: the READY record the caller adds next about the same image
 * and tenant (ppf_oplog_add) gets WAIT_US = us. */
void ppf_oplog_prepared(struct ppf_oplog *l, const char *image, const char *tenant,
                        uint64_t bytes, uint64_t us, bool prefetch, bool limited);

/* A prefetched entry left the buffer unused: counted as wasted bytes. */
void ppf_oplog_wasted(struct ppf_oplog *l, const char *image, const char *tenant,
                      uint64_t bytes);

/* The estimated time of a miss for bytes (us), 0 if no rate is known yet. */
uint64_t ppf_oplog_miss_us(const struct ppf_oplog *l, uint64_t bytes);

/* LOG_READ: the records with sequence number >= start, as many groups as
 * fit in w; *result = the sequence number of the newest record (0: none). */
enum ppf_status_code ppf_oplog_read(struct ppf_oplog *l, uint64_t start,
                                    struct ppf_attr_writer *w, uint32_t *result);

/* USAGE: groups from index start (tenants first, then images), as many as
 * fit in w; *result = the total number of groups. */
enum ppf_status_code ppf_oplog_usage(struct ppf_oplog *l, uint64_t start,
                                     struct ppf_attr_writer *w, uint32_t *result);

/* EXPLAIN (§5.9), the log's part: the text of the last PREFETCH record of
 * image (PPF_A_X_LAST_PREFETCH) and of its last EVICT or PURGE record
 * (PPF_A_X_LAST_EVICT), each prefixed with its local time.  l may be NULL. */
void ppf_oplog_explain(struct ppf_oplog *l, const char *image, struct ppf_attr_writer *w);

#endif /* PPF_PERIPHERAL_OPLOG_H */

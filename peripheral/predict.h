/* The live predictor (schemas/device-protocol.md §5.7): the learning
 * engine, the Image Prediction Table and the prefetch decisions inside the
 * running peripheral.  It learns from every DEPLOY and EVENT and from the
 * metrics ring, asks the engine (right after a deploy, and at most once a
 * second) which images are most worth having ready, and starts prefetches
 * of those that are not in the buffer when room can be made from entries
 * of lower value per byte.  It also gives the buffer the value of each
 * entry for eviction, and keeps the learned state in the NVM pattern store
 * (STATE_DIR/patterns.nvm).  Everything runs on the core's thread.
 *
 * Time: the engine runs on the wall clock (seasonal patterns need the time
 * of day), in seconds since the Unix epoch.
 */
#ifndef PPF_PERIPHERAL_PREDICT_H
#define PPF_PERIPHERAL_PREDICT_H

#include <stdint.h>

#include "peripheral/buffer.h"
#include "policy/policy.h"
#include "ppf/protocol.h"

struct ppf_predict;
struct ppf_monitor;
struct ppf_fed;

/* A predictor for policy p, its store in state_dir (loaded now).  0, or -1
 * (ENOMEM; logged). */
int ppf_predict_new(const struct ppf_policy *p, const char *state_dir,
                    struct ppf_predict **out);
/* Saves the store and frees (NULL is fine). */
void ppf_predict_free(struct ppf_predict *pr);
/* Installs the value and eviction hooks into b (and remembers b), and the
 * monitor whose samples it learns from (may be NULL). */
void ppf_predict_attach(struct ppf_predict *pr, struct ppf_buffer *b,
                        struct ppf_monitor *mon);
/* A new policy: a new engine and table under the new learning settings,
 * what was learned carried over through the store.  0 or -1 (the old one
 * stays). */
int ppf_predict_reconfigure(struct ppf_predict *pr, const struct ppf_policy *p);

/* A DEPLOY the device served (or is serving): learned, and predictions
 * made under "after TENANT/IMAGE". */
void ppf_predict_deploy(struct ppf_predict *pr, const char *image, const char *tenant,
                        const char *domain);
/* EVENT (§5.7): payload checked here.  PPF_SC_SUCCESS and *result (1 if
 * learned), or INVALID_PAYLOAD with a reason in msg. */
enum ppf_status_code ppf_predict_event(struct ppf_predict *pr, const uint8_t *in,
                                       uint32_t len, uint32_t *result, char *msg,
                                       size_t msglen);
/* TABLE_DUMP from row start into w; *result = rows in the table. */
enum ppf_status_code ppf_predict_table_dump(struct ppf_predict *pr, uint64_t start,
                                            struct ppf_attr_writer *w, uint32_t *result);
/* EXPLAIN (§5.9), the predictor's part: schedules of image for tenant and
 * their windows, whether the engine knows it, its probability and value
 * per byte, each model's opinion, a pause of its prefetching, the table
 * rows that rank it, and the prefetches in flight. */
void ppf_predict_explain(struct ppf_predict *pr, const char *image, const char *tenant,
                         struct ppf_attr_writer *w);
/* Periodic work (called at every poll; does something at most once a
 * second): metrics, predictions, prefetches, saving the store. */
void ppf_predict_tick(struct ppf_predict *pr);
/* The predictor's federation with its peers (peripheral/federation.h), or
 * NULL when the policy does not enable it. */
struct ppf_fed *ppf_predict_federation(struct ppf_predict *pr);
/* The operations log the predictor reports to (may be NULL). */
struct ppf_oplog;
void ppf_predict_set_oplog(struct ppf_predict *pr, struct ppf_oplog *log);
/* Time: the predictor, the schedules and the pins' ends run on
 * ppf_clock_wall() (peripheral/clock.h): the real clock, or a virtual one
 * in tests (--virtual-clock). */

/* Appends PPF_STAT_EVENTS.. counters. */
void ppf_predict_stats(struct ppf_predict *pr, struct ppf_attr_writer *w);

#endif /* PPF_PERIPHERAL_PREDICT_H */

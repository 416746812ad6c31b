/* Federation between peripherals (issue 8, schemas/federation.md): every
 * federation.interval this peripheral sends a summary of what its engine
 * learned to each peer the policy names, and accepts theirs, over mutual
 * TLS (GnuTLS; the CA, certificate and key files of the policy; there is
 * no plaintext mode).  A listener thread accepts peers and a sender thread
 * pushes to them with backoff; neither touches the engine: received
 * summaries are checked in full on arrival and wait in an inbox until the
 * core's thread merges them (ppf_fed_tick), which also refreshes the
 * outbox.  Tenants with `share: false` never leave the host.
 */
#ifndef PPF_PERIPHERAL_FEDERATION_H
#define PPF_PERIPHERAL_FEDERATION_H

#include "peripheral/engine.h"
#include "policy/policy.h"
#include "ppf/protocol.h"

struct ppf_fed;
struct ppf_predict;

/* Starts federation as policy p says: *out NULL if federation.enabled is
 * false.  A problem with the certificates or the listen address is logged
 * and shown by FED_STATUS (the object exists, idle); -1 only on ENOMEM. */
int ppf_fed_new(const struct ppf_policy *p, struct ppf_fed **out);
/* Stops the threads and frees (NULL is fine). */
void ppf_fed_free(struct ppf_fed *f);
/* On the core's thread, about once a second: every interval, the local
 * summary of e for the peers; and the summaries received since, merged
 * into e.  now: wall clock, s. */
void ppf_fed_tick(struct ppf_fed *f, struct ppf_engine *e, double now);
/* e was replaced by a new engine: what peers sent is merged again at the
 * next tick. */
void ppf_fed_engine_changed(struct ppf_fed *f);
/* FED_STATUS (schemas/device-protocol.md §5.8) into w; f may be NULL
 * (federation disabled). */
void ppf_fed_status(struct ppf_fed *f, struct ppf_attr_writer *w);

#endif /* PPF_PERIPHERAL_FEDERATION_H */

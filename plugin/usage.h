/* Host side of USAGE (schemas/device-protocol.md §5.9): every per-tenant
 * and per-image group the peripheral holds, fetched page by page.  Used by
 * ppfctl stats and ppfd's Prometheus textfile.
 */
#ifndef PPF_PLUGIN_USAGE_H
#define PPF_PLUGIN_USAGE_H

#include <stddef.h>

#include "common/prom.h"
#include "ppf/ppf.h"

/* Runs USAGE on qp (a pair of dev) until it has every group, waiting up to
 * timeout_ms for each.  0 with *u filled, sorted and u->have set (the
 * caller frees it with ppf_prom_usage_free); 1 if the peripheral predates
 * USAGE (INVALID_OPCODE); -1 with err holding one line (libppf's error, the
 * device's refusal, a malformed answer).  *u is empty after 1 or -1. */
int ppf_usage_fetch(struct ppf_dev *dev, struct ppf_qp *qp, int timeout_ms,
                    struct ppf_prom_usage *u, char *err, size_t errlen);

#endif /* PPF_PLUGIN_USAGE_H */

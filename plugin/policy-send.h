/* Host side of CONFIGURE (schemas/device-protocol.md §5.5): send a policy
 * to the peripheral, or fetch the one in force.  Used by ppfctl and ppfd.
 */
#ifndef PPF_PLUGIN_POLICY_SEND_H
#define PPF_PLUGIN_POLICY_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "ppf/ppf.h"

/* Encodes p and sends CONFIGURE SET on the admin pair of dev (claimed and
 * released here, waiting up to timeout_ms).  0 with *generation set, or -1
 * with err holding one line: libppf's error or the device's reason. */
int ppf_policy_send(struct ppf_dev *dev, const struct ppf_policy *p, int timeout_ms,
                    uint32_t *generation, char *err, size_t errlen);
/* CONFIGURE GET: *out is the policy in force, decoded and checked (never
 * trusting the device).  0, or -1 with err set. */
int ppf_policy_fetch(struct ppf_dev *dev, int timeout_ms, struct ppf_policy **out,
                     uint32_t *generation, char *err, size_t errlen);

#endif /* PPF_PLUGIN_POLICY_SEND_H */

/* The card's configuration store: the policy the host sent with CONFIGURE
 * (schemas/device-protocol.md §5.4), checked like any untrusted input and
 * kept in the state directory so it survives restarts and crashes.
 */
#ifndef PPF_PERIPHERAL_CONFIG_H
#define PPF_PERIPHERAL_CONFIG_H

#include <stdint.h>

#include "ppf/protocol.h"
#include "policy/policy.h"

#define PPF_CONFIG_FILE "policy.ppfc"

struct ppf_fw_config;

/* Loads DIR/policy.ppfc, or the defaults when there is none.  A store that
 * is corrupt is renamed aside (policy.ppfc.corrupt-TIME), reported, and
 * the defaults are used: never a failure to start.  -1 only on ENOMEM. */
int ppf_fw_config_open(const char *state_dir, struct ppf_fw_config **out);
void ppf_fw_config_free(struct ppf_fw_config *c);

/* The policy in force (owned by c; valid until the next CONFIGURE). */
const struct ppf_policy *ppf_fw_config_policy(const struct ppf_fw_config *c);
/* How many times a policy was applied (persisted); 0 = defaults. */
uint64_t ppf_fw_config_generation(const struct ppf_fw_config *c);

/* Runs CONFIGURE: arg[0] = PPF_CONFIGURE_SET (in: an encoded policy) or
 * PPF_CONFIGURE_GET (out: the encoded policy in force).  Same contract as
 * struct ppf_core_cmd_ops.exec. */
enum ppf_status_code ppf_fw_config_configure(struct ppf_fw_config *c, const struct ppf_sqe *e,
                                             const uint8_t *in, uint8_t *out,
                                             uint32_t *result, uint32_t *out_len);

#endif /* PPF_PERIPHERAL_CONFIG_H */

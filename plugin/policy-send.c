/* CONFIGURE from the host (see policy-send.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/policy-send.h"
#include "ppf/protocol.h"

/* Runs one CONFIGURE on the admin pair; 0, or -1 with err set. */
static int
send_configure(struct ppf_dev *dev, int timeout_ms, struct ppf_cmd *cmd, char *err,
               size_t errlen)
{
    struct ppf_dev_info info;
    struct ppf_qp *qp;
    int r;

    ppf_dev_get_info(dev, &info);
    if (cmd->in_len > info.slot_size) {
        snprintf(err, errlen, "the encoded policy (%u bytes) is larger than the "
                 "peripheral's command slots (%u bytes); shorten it", cmd->in_len,
                 info.slot_size);
        return -1;
    }
    if (cmd->out_cap > info.slot_size)
        cmd->out_cap = info.slot_size;
    if (ppf_qp_claim(dev, PPF_QP_ADMIN, timeout_ms, &qp) < 0) {
        snprintf(err, errlen, "the admin queue: %s", ppf_error());
        return -1;
    }
    r = ppf_exec(qp, cmd, timeout_ms);
    if (r < 0)
        snprintf(err, errlen, "CONFIGURE: %s", ppf_error());
    ppf_qp_release(qp);
    if (r == 0 && cmd->status != PPF_SC_SUCCESS) {
        char msg[512];

        ppf_cmd_reason(cmd, msg, sizeof msg);
        snprintf(err, errlen, "the peripheral refused CONFIGURE: %s%s%s",
                 ppf_status_text(cmd->status), msg[0] ? ": " : "", msg);
        return -1;
    }
    return r;
}

int
ppf_policy_send(struct ppf_dev *dev, const struct ppf_policy *p, int timeout_ms,
                uint32_t *generation, char *err, size_t errlen)
{
    uint8_t *blob = malloc(PPF_POLICY_MAX_ENCODED), reply[512];
    struct ppf_cmd cmd = { .opcode = PPF_OP_CONFIGURE, .arg = { PPF_CONFIGURE_SET },
                           .out = reply, .out_cap = sizeof reply };
    size_t len;
    int r = -1;

    if (!blob) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ppf_policy_encode(p, blob, PPF_POLICY_MAX_ENCODED, &len) < 0) {
        snprintf(err, errlen, "the policy does not fit in one CONFIGURE command (%d KiB): %s",
                 PPF_POLICY_MAX_ENCODED / 1024, strerror(errno));
    } else {
        cmd.in = blob;
        cmd.in_len = (uint32_t)len;
        r = send_configure(dev, timeout_ms, &cmd, err, errlen);
        if (r == 0)
            *generation = cmd.result;
    }
    free(blob);
    return r;
}

int
ppf_policy_fetch(struct ppf_dev *dev, int timeout_ms, struct ppf_policy **out,
                 uint32_t *generation, char *err, size_t errlen)
{
    uint8_t *blob = malloc(PPF_POLICY_MAX_ENCODED);
    struct ppf_cmd cmd = { .opcode = PPF_OP_CONFIGURE, .arg = { PPF_CONFIGURE_GET },
                           .out = blob, .out_cap = PPF_POLICY_MAX_ENCODED };
    char why[256];
    int r;

    *out = NULL;
    if (!blob) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r = send_configure(dev, timeout_ms, &cmd, err, errlen);
    if (r == 0 && ppf_policy_decode(blob, cmd.out_len, out, why, sizeof why) < 0) {
        snprintf(err, errlen, "the peripheral returned a policy that does not check out "
                 "(%s); apply one again with 'ppfctl policy apply FILE'", why);
        r = -1;
    }
    if (r == 0)
        *generation = cmd.result;
    free(blob);
    return r;
}

/* Dispatch of the firmware commands (see firmware.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "peripheral/firmware.h"

int
ppf_fw_new(const char *state_dir, struct ppf_fw **out)
{
    struct ppf_fw *fw = calloc(1, sizeof *fw);

    *out = NULL;
    if (!fw || ppf_fw_config_open(state_dir, &fw->config) < 0) {
        ppf_err("firmware", "out of memory loading the state in %s", state_dir);
        free(fw);
        return -1;
    }
    *out = fw;
    return 0;
}

void
ppf_fw_free(struct ppf_fw *fw)
{
    if (!fw)
        return;
    ppf_fw_config_free(fw->config);
    free(fw);
}

static enum ppf_status_code
fw_exec(void *opaque, uint32_t qid, const struct ppf_sqe *e, const uint8_t *in,
        uint8_t *out, uint32_t *result, uint32_t *out_len)
{
    struct ppf_fw *fw = opaque;

    *result = 0;
    *out_len = 0;
    switch (e->opcode) {
    case PPF_OP_CONFIGURE:
        return ppf_fw_config_configure(fw->config, e, in, out, result, out_len);
    default:
        /* reserved (§5.4): not implemented in this version */
        return PPF_SC_INVALID_OPCODE;
    }
}

struct ppf_core_cmd_ops
ppf_fw_cmd_ops(struct ppf_fw *fw)
{
    struct ppf_core_cmd_ops ops = { .exec = fw_exec, .opaque = fw };

    return ops;
}

/* USAGE, page by page (see usage.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "plugin/usage.h"

int
ppf_usage_fetch(struct ppf_dev *dev, struct ppf_qp *qp, int timeout_ms,
                struct ppf_prom_usage *u, char *err, size_t errlen)
{
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_dev_info info;

    memset(u, 0, sizeof *u);
    ppf_dev_get_info(dev, &info);
    if (!(out = malloc(info.slot_size ? info.slot_size : 1))) {
        snprintf(err, errlen, "USAGE: out of memory for a %u-byte answer", info.slot_size);
        return -1;
    }
    for (;;) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_USAGE, .arg = { u->n }, .out = out,
                               .out_cap = info.slot_size };
        size_t before = u->n;

        if (ppf_exec(qp, &cmd, timeout_ms) < 0) {
            snprintf(err, errlen, "USAGE: %s", ppf_error());
            break;
        }
        if (cmd.status == PPF_SC_INVALID_OPCODE) {
            ppf_prom_usage_free(u);
            return 1;
        }
        if (cmd.status != PPF_SC_SUCCESS) {
            char why[256];

            ppf_cmd_reason(&cmd, why, sizeof why);
            snprintf(err, errlen, "USAGE refused: %s%s%s", ppf_status_text(cmd.status),
                     why[0] ? ": " : "", why);
            break;
        }
        if (ppf_prom_usage_parse(u, out, cmd.out_len) < 0) {
            snprintf(err, errlen, "the peripheral's USAGE answer is malformed; restart "
                     "ppf-peripheral or update it to match");
            break;
        }
        /* all of them, or the peripheral forgot some meanwhile */
        if (u->n >= cmd.result || u->n == before) {
            ppf_prom_usage_sort(u);
            u->have = 1;
            return 0;
        }
    }
    ppf_prom_usage_free(u);
    return -1;
}

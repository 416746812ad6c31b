/* The card's firmware above the command processor: the commands of
 * schemas/device-protocol.md §5.4-§5.6 and the subsystems that serve them
 * (the configuration store, the prefetch buffer).  peripheral/core.c hands
 * it every command it does not run itself, through struct ppf_core_cmd_ops.
 */
#ifndef PPF_PERIPHERAL_FIRMWARE_H
#define PPF_PERIPHERAL_FIRMWARE_H

#include "peripheral/buffer.h"
#include "peripheral/config.h"
#include "peripheral/core.h"
#include "peripheral/predict.h"

struct ppf_fw {
    struct ppf_fw_config *config;
    struct ppf_buffer *buffer;  /* NULL until attached, or if it failed */
    struct ppf_core *core;
    struct ppf_predict *predict;    /* NULL if the engine could not start */
    struct ppf_monitor *monitor;    /* set before ppf_fw_attach; may be NULL */
    struct ppf_oplog *oplog;    /* operations log and usage (§5.9); NULL if out of memory */
    char *state_dir;
};

/* Loads the firmware's state from state_dir; 0, or -1 (reported). */
int ppf_fw_new(const char *state_dir, struct ppf_fw **out);
/* Starts what needs the core (the buffer's workers complete commands
 * through it).  0, or -1 (reported; the device still answers, buffer
 * commands fail with a reason). */
int ppf_fw_attach(struct ppf_fw *fw, struct ppf_core *core);
void ppf_fw_free(struct ppf_fw *fw);
/* The ops to hand to ppf_core_set_cmd_ops. */
struct ppf_core_cmd_ops ppf_fw_cmd_ops(struct ppf_fw *fw);

#endif /* PPF_PERIPHERAL_FIRMWARE_H */

/* ppfctl's shared state and helpers, used by the command files
 * (tools/ppfctl*.c).  Not installed.
 */
#ifndef PPF_TOOLS_PPFCTL_H
#define PPF_TOOLS_PPFCTL_H

#include "ppf/ppf.h"

struct ctl {
    const char *device;
    int timeout_ms;
    int json;
    struct ppf_dev *dev;
    struct ppf_qp *qp;
};

/* Prints "ppfctl: MESSAGE" and a hint; returns 2 (usage). */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "ppfctl: [what: ]libppf's last error"; returns 1. */
int fail(const char *what);
/* Opens c->device and claims a pair of the kind; 0 or 1 (reported). */
int ctl_connect_kind(struct ctl *c, enum ppf_qp_kind kind);
/* Releases the pair and closes the device; safe to call twice. */
void ctl_disconnect(struct ctl *c);

/* Runs cmd (payload and out buffer set) and reports a transport failure
 * or a refusal, naming obj; 0 or 1 (reported). */
int ctl_exec(struct ctl *c, struct ppf_cmd *cmd, const char *obj);
/* A buffer one data slot long for answers (*cap its size), or NULL
 * (reported). */
uint8_t *ctl_alloc_out(struct ctl *c, uint32_t *cap);
/* Sets cmd's payload from w, refusing one that overflowed or does not fit
 * the slot; 0 or 1 (reported). */
int ctl_set_payload(struct ctl *c, struct ppf_cmd *cmd, const struct ppf_attr_writer *w,
                    const char *obj);
/* The one IMAGE argument left after the options (argv[optind]), checked,
 * and the --tenant value if any; 0 or 2 (usage, reported). */
int ctl_one_image(int argc, char **argv, const char *tenant, const char **image);
/* Connects a pair of kind, gives cmd the payload w and a slot-sized answer
 * buffer (*out, the caller frees it) and runs it, reporting a refusal with
 * the device's reason, naming obj.  0 or an exit code (reported). */
int ctl_run(struct ctl *c, enum ppf_qp_kind kind, struct ppf_cmd *cmd,
            const struct ppf_attr_writer *w, const char *obj, uint8_t **out);
/* Reports a malformed answer to op. */
void ctl_malformed(const char *obj, unsigned op);

/* Formatting shared by the command files (tools/ppfctl-buffer.c):
 * "1.5 GiB", "3.1 ms", and a PPF_OUTCOME_* as "hit", "in-flight", "miss",
 * "fallback". */
void buf_fmt_size(uint64_t v, char *buf, size_t len);
void buf_fmt_us(uint64_t us, char *buf, size_t len);
const char *buf_outcome_name(uint32_t o);

/* USAGE (§5.9) on c's pair, for ppfctl stats (tools/ppfctl-events.c): *u
 * filled and sorted (free it with ppf_prom_usage_free; u->have 0 if the
 * peripheral predates USAGE).  0, or 1 (reported). */
struct ppf_prom_usage;
struct ppf_json;
int ctl_usage_get(struct ctl *c, struct ppf_prom_usage *u);
/* The tenants' table, then the images', after the counters. */
void ctl_usage_print_text(const struct ppf_prom_usage *u);
/* "tenants": [...], "images": [...] into the open object. */
void ctl_usage_print_json(struct ppf_json *j, const struct ppf_prom_usage *u);

int cmd_policy(struct ctl *c, int argc, char **argv);
int cmd_prefetch(struct ctl *c, int argc, char **argv);
int cmd_deploy(struct ctl *c, int argc, char **argv);
int cmd_release(struct ctl *c, int argc, char **argv);
int cmd_evict(struct ctl *c, int argc, char **argv);
/* pin and unpin (argv[0] names it) */
int cmd_pin(struct ctl *c, int argc, char **argv);
int cmd_explain(struct ctl *c, int argc, char **argv);
int cmd_buffer(struct ctl *c, int argc, char **argv);
int cmd_stats(struct ctl *c, int argc, char **argv);
int cmd_replay(struct ctl *c, int argc, char **argv);
int cmd_table(struct ctl *c, int argc, char **argv);
int cmd_event(struct ctl *c, int argc, char **argv);
int cmd_federation(struct ctl *c, int argc, char **argv);
int cmd_events(struct ctl *c, int argc, char **argv);
/* pool-define, pool-dumpxml, pool-undefine, pool-list (argv[0] names it) */
int cmd_pool(struct ctl *c, int argc, char **argv);
/* vol-create, vol-delete, vol-list: disks of ppf pools (argv[0] names it) */
int cmd_vol(struct ctl *c, int argc, char **argv);

#endif /* PPF_TOOLS_PPFCTL_H */

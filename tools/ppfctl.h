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

int cmd_policy(struct ctl *c, int argc, char **argv);
int cmd_prefetch(struct ctl *c, int argc, char **argv);
int cmd_deploy(struct ctl *c, int argc, char **argv);
int cmd_release(struct ctl *c, int argc, char **argv);
int cmd_evict(struct ctl *c, int argc, char **argv);
int cmd_buffer(struct ctl *c, int argc, char **argv);
int cmd_stats(struct ctl *c, int argc, char **argv);
int cmd_replay(struct ctl *c, int argc, char **argv);
/* pool-define, pool-dumpxml, pool-undefine, pool-list (argv[0] names it) */
int cmd_pool(struct ctl *c, int argc, char **argv);

#endif /* PPF_TOOLS_PPFCTL_H */

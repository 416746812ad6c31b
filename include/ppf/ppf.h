/* libppf: the thin host-side driver every ppf program uses to reach the
 * peripheral.  Open a device by spec, claim a queue pair, submit commands,
 * wait for their completions (poll briefly, then sleep on the interrupt),
 * release, close.  Backends: "emu" (the emulated peripheral's shared-memory
 * window) and "uio" (a real card through Linux UIO).
 *
 * Errors: functions return -1 (or NULL) with errno set and a message, which
 * names the device and what to do, available from ppf_error() in the same
 * thread.  The library never prints.
 */
#ifndef PPF_PPF_H
#define PPF_PPF_H

#include <stdint.h>

#include "ppf/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PPF_DEFAULT_EMU_PATH "/run/ppf/ppf0"
#define PPF_UIO_NAME         "ppf"      /* /sys/class/uio/uioN/name of a ppf card */
#define PPF_ENV_DEVICE       "PPF_DEVICE"
#define PPF_ENV_SYSFS_ROOT   "PPF_SYSFS_ROOT"   /* default "/sys" (tests: a fake tree) */
#define PPF_ENV_DEV_ROOT     "PPF_DEV_ROOT"     /* default "/dev" (tests: a fake tree) */
#define PPF_ENV_POLL_US      "PPF_POLL_US"      /* default poll budget in wait */

#define PPF_DEFAULT_POLL_US  50

struct ppf_dev;
struct ppf_qp;

enum ppf_qp_kind {
    PPF_QP_IO = 0,              /* any free I/O pair (1..num_qps-1) */
    PPF_QP_ADMIN = 1,           /* the admin pair 0 */
};

struct ppf_dev_info {
    char backend[8];            /* "emu" or "uio" */
    char path[4096];            /* socket path or /dev/uioN */
    uint32_t version;
    uint64_t features;
    uint32_t num_qps;
    uint32_t qsize;
    uint32_t slots;
    uint32_t slot_size;
    uint32_t device_pid;        /* emulated only */
};

/* A command.  The caller owns it and keeps it alive until ppf_wait()
 * returns for it.  in/in_len are copied into the data slot at submit; the
 * result payload is copied to out (at most out_cap bytes) on completion. */
struct ppf_cmd {
    uint8_t opcode;
    uint64_t arg[6];
    const void *in;
    uint32_t in_len;
    void *out;
    uint32_t out_cap;
    /* filled in on completion */
    uint16_t status;            /* PPF_SC_* */
    uint32_t result;
    uint32_t out_len;
    /* private to libppf */
    int done_;
    uint16_t cid_;
};

/* Opens a device.  spec: NULL or "auto" ($PPF_DEVICE, else a UIO device
 * named "ppf", else emu:PPF_DEFAULT_EMU_PATH), "emu:PATH" or
 * "uio:/dev/uioN".  *devp is set to NULL on entry. */
int ppf_dev_open(const char *spec, struct ppf_dev **devp);
/* Closes; releases any pairs still claimed through it.  NULL is fine. */
void ppf_dev_close(struct ppf_dev *dev);
void ppf_dev_get_info(struct ppf_dev *dev, struct ppf_dev_info *info);
/* The raw window (for tests and the metrics ring).  Untrusted memory. */
void *ppf_dev_window(struct ppf_dev *dev, uint64_t *size);
/* 0 if the device looks alive (not shut down, attachment intact), else -1. */
int ppf_dev_check_alive(struct ppf_dev *dev);

/* Claims a pair; waits up to timeout_ms (-1: forever) while all are busy.
 * *qpp is set to NULL on entry.  A pair is used by one thread at a time. */
int ppf_qp_claim(struct ppf_dev *dev, enum ppf_qp_kind kind, int timeout_ms,
                 struct ppf_qp **qpp);
/* Releases a pair (the device resets it).  NULL is fine. */
void ppf_qp_release(struct ppf_qp *qp);
unsigned ppf_qp_id(const struct ppf_qp *qp);
/* How long ppf_wait spins before sleeping on the interrupt: -1 spins
 * forever (polling mode), 0 sleeps at once (interrupt mode). */
void ppf_qp_set_poll_us(struct ppf_qp *qp, int poll_us);

/* Submits; waits up to timeout_ms for a free command slot while
 * commands are in flight (back-pressure).  Returns 0 or -1. */
int ppf_submit(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms);
/* Waits until cmd completes.  Returns 0 (see cmd->status) or -1: errno
 * ETIMEDOUT, ENODEV (peripheral gone), EIO (pair stopped), EPROTO (the
 * device broke the protocol). */
int ppf_wait(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms);
/* ppf_submit + ppf_wait. */
int ppf_exec(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms);
/* The one-line reason a device gave with a refused cmd (its output
 * payload), as printable text in buf (len > 0 bytes): bounded, never cut
 * inside a UTF-8 sequence, trailing blanks dropped, control bytes replaced
 * by '?'.  Empty if the device gave none. */
void ppf_cmd_reason(const struct ppf_cmd *cmd, char *buf, size_t len);

/* The last error message of this thread. */
const char *ppf_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PPF_PPF_H */

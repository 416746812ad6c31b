/* Private header of libppf: the device handle, the backend operations each
 * kernel mechanism implements (emu.c, uio.c), and helpers shared by them.
 * Not installed.
 */
#ifndef PPF_DRIVER_H
#define PPF_DRIVER_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "ppf/ppf.h"

struct ppf_dev;
struct ppf_qp;

struct ppf_backend_ops {
    const char *name;
    /* Sleep until the device raises an interrupt for qp, or timeout_ms
     * passes.  irq_seen is the vector's count read before the final check
     * of the CQ.  Returns 0 (woken or timed out) or -1 (device gone). */
    int (*irq_wait)(struct ppf_dev *dev, struct ppf_qp *qp, uint32_t irq_seen,
                    int timeout_ms);
    /* Called after the SQ tail doorbell was written (wake a sleeping
     * emulated device; nothing on hardware). */
    void (*doorbell)(struct ppf_dev *dev);
    /* Sleep until a pair may have become free or timeout_ms passes. */
    void (*free_wait)(struct ppf_dev *dev, uint32_t seen, int timeout_ms);
    /* Mark pairs owned by dead processes for reset; optional. */
    void (*reclaim)(struct ppf_dev *dev);
    /* 0 if the attachment is intact, -1 if the device went away. */
    int (*alive)(struct ppf_dev *dev);
    /* Unmap and close everything; copes with half-opened handles. */
    void (*close)(struct ppf_dev *dev);
};

struct ppf_dev {
    const struct ppf_backend_ops *ops;
    char path[PATH_MAX];
    uint8_t *win;               /* mapped window, untrusted */
    uint64_t win_size;
    struct ppf_regs *regs;      /* == win */
    /* geometry copied once at open and checked; never re-read */
    uint32_t num_qps, qsize, slots, slot_size;
    uint64_t features;
    uint32_t version;
    uint32_t device_pid;
    uint64_t qp_regs_off, sq_off, cq_off, data_off;   /* from the geometry */
    uint32_t owner;             /* id written into claim words */
    uint64_t owner_start;       /* process start time (uio reclaim) */
    int fd;                     /* emu: attachment socket; uio: irq fd */
    pthread_mutex_t lock;       /* protects irq fd use and the qp list */
    struct ppf_qp *qps;         /* pairs claimed through this handle */
};

struct ppf_qp {
    struct ppf_dev *dev;
    struct ppf_qp *next;
    uint32_t qid;
    uint32_t gen;
    struct ppf_qp_regs *regs;
    struct ppf_sqe *sq;
    struct ppf_cqe *cq;
    uint8_t *data;              /* slots * slot_size bytes */
    uint32_t sq_tail;
    uint32_t cq_head;
    uint16_t phase;
    int poll_us;
    uint32_t inflight;          /* commands submitted, completion not yet reaped */
    uint64_t *free_cids;        /* bitmap, bit set = free */
    struct ppf_cmd **cmds;      /* by cid */
    int broken;                 /* errno once the pair is unusable */
};

extern const struct ppf_backend_ops ppf_emu_ops;
extern const struct ppf_backend_ops ppf_uio_ops;

/* Backend openers: fill dev->win/win_size/fd/owner; 0 or -1 with error set. */
int ppf_emu_open(struct ppf_dev *dev, const char *path);
int ppf_uio_open(struct ppf_dev *dev, const char *devnode);
/* Looks for a UIO device named PPF_UIO_NAME under $PPF_SYSFS_ROOT;
 * fills node (e.g. "/dev/uio0" under $PPF_DEV_ROOT); 0 found, -1 not. */
int ppf_uio_find(char *node, size_t nodelen);

/* Records the thread's error message (printf-style); returns -1.  Keeps
 * errno as the caller set it. */
int ppf_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The backends' close: unmaps the window and closes dev->fd (the emu
 * socket or the uio irq node); copes with half-opened handles. */
void ppf_dev_unmap(struct ppf_dev *dev);

/* Validates the register page of a freshly mapped window and copies the
 * geometry into dev; 0 or -1 with error set. */
int ppf_dev_load_geometry(struct ppf_dev *dev);

#include "common/futex.h"

/* Process start time in clock ticks since boot (/proc/PID/stat field 22),
 * 0 if unknown. */
uint64_t ppf_proc_start_time(int pid);

#endif /* PPF_DRIVER_H */

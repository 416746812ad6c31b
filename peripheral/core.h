/* The peripheral's command processor: serves the queue pairs of one device
 * window.  It owns the device side of the protocol (schemas/device-protocol.md):
 * writes the register page, resets released pairs, copies every SQE out of
 * the window before checking it, completes commands with a phase-tagged CQE
 * and raises interrupts through a backend callback (futex words for the
 * emulated card, a UIO irq line on hardware, a socket in tests).
 * It never trusts anything the host wrote.
 */
#ifndef PPF_PERIPHERAL_CORE_H
#define PPF_PERIPHERAL_CORE_H

#include <stdint.h>

#include "ppf/protocol.h"

struct ppf_core;

struct ppf_core_config {
    uint32_t num_qps;           /* admin pair included */
    uint32_t qsize;
    uint32_t slots;
    uint32_t slot_size;
    uint64_t metrics_size;
    uint64_t features;          /* PPF_FEAT_* advertised */
    uint32_t device_pid;        /* emulated: getpid(), else 0 */
    int poll_us;                /* idle spin before sleeping in ppf_core_run */
    const char *state_dir;      /* reported by IDENTIFY; may be NULL */
    const char *serial;         /* reported by IDENTIFY; may be NULL */
};

/* How the core raises an interrupt for pair qid.  Called only when the
 * host armed the vector and did not mask it. */
struct ppf_core_irq_ops {
    void (*raise)(void *opaque, uint32_t qid);
    void *opaque;
};

/* Commands the core does not run itself (all but NOP, IDENTIFY and
 * GET_STATS) go to the firmware.  exec runs on the core's thread with a
 * checked private copy of the SQE (e) and of its input payload (in,
 * e->in_len bytes); out is the command's data slot in host memory
 * (e->out_cap bytes; write only, never read back).  Returns a status code
 * and sets *result and *out_len; a failing command may return a message
 * (UTF-8 text) in out. */
struct ppf_core_cmd_ops {
    enum ppf_status_code (*exec)(void *opaque, uint32_t qid, const struct ppf_sqe *e,
                                 const uint8_t *in, uint8_t *out, uint32_t *result,
                                 uint32_t *out_len);
    /* Called on the core's thread at every poll: completes what finished
     * (ppf_core_complete); returns how many.  May be NULL. */
    unsigned (*poll)(void *opaque);
    /* Appends the firmware's counters to GET_STATS.  May be NULL. */
    void (*stats)(void *opaque, struct ppf_attr_writer *w);
    void *opaque;
};

/* exec returns this to complete the command later, from the core's thread,
 * with ppf_core_complete (never sent to the host). */
#define PPF_CORE_PENDING 0x7fffu

/* Fills the default geometry: 17 pairs, 64 entries, 32 slots of 64 KiB. */
void ppf_core_config_default(struct ppf_core_config *cfg);
/* Window size the config needs, 0 if the geometry is out of range. */
uint64_t ppf_core_window_size(const struct ppf_core_config *cfg);

/* Initialises the window (win_size bytes, zeroed by the caller) and the
 * core.  irq may be NULL (no interrupts: the host must poll).  *corep is
 * set to NULL on entry.  Returns 0 or -1 (message on stderr). */
int ppf_core_new(void *win, uint64_t win_size, const struct ppf_core_config *cfg,
                 const struct ppf_core_irq_ops *irq, struct ppf_core **corep);
void ppf_core_free(struct ppf_core *core);

/* Serves every pair once: resets released pairs, runs submitted commands.
 * Returns the number of commands completed. */
unsigned ppf_core_poll(struct ppf_core *core);
/* Serves until *stop becomes nonzero: polls, spins poll_us when idle, then
 * sleeps on the doorbell futex (regs.db_seq) with a short timeout, beating
 * the heartbeat at least every 100 ms. */
void ppf_core_run(struct ppf_core *core, volatile int *stop);
/* Wakes ppf_core_run (from a signal handler or another thread). */
void ppf_core_kick(struct ppf_core *core);

/* Marks every pair claimed by owner for reset (the owner went away). */
void ppf_core_reclaim_owner(struct ppf_core *core, uint32_t owner);
void ppf_core_set_cmd_ops(struct ppf_core *core, const struct ppf_core_cmd_ops *ops);
/* The claim generation pair q is being served under (for completing a
 * pending command later). */
uint32_t ppf_core_qp_gen(const struct ppf_core *core, uint32_t q);
/* Completes a command exec left pending: copies out (out_len bytes, at
 * most the command's out_cap) into its slot and posts the CQE.  Only from
 * the core's thread (the poll callback).  Returns -1 and does nothing if
 * the pair was released or reset since (gen differs). */
int ppf_core_complete(struct ppf_core *core, uint32_t q, uint32_t gen, uint16_t cid,
                      enum ppf_status_code sc, uint32_t result, const void *out,
                      uint32_t out_len);
void ppf_core_set_clients(struct ppf_core *core, uint32_t n);
void ppf_core_heartbeat(struct ppf_core *core);
/* Sets PPF_STS_SHUTDOWN and wakes every sleeping host thread. */
void ppf_core_shutdown(struct ppf_core *core);

#endif /* PPF_PERIPHERAL_CORE_H */

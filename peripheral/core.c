/* The peripheral's command processor (see core.h): the device side of the
 * queue-pair protocol.  One thread runs it.  All state it decides on is
 * kept here, never re-read from the window: the host may scribble over
 * anything it can map, and the worst it can do is stop its own pair.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/futex.h"
#include "peripheral/core.h"

#define CORE_SLEEP_MS    50      /* futex sleep slice; also the heartbeat period */

struct core_qp {
    uint32_t sq_head;
    uint32_t cq_tail;
    uint16_t phase;
    uint32_t gen;               /* generation of the claim being served */
    int fatal;
    uint32_t *pending_cap;      /* by cid: out_cap of a command the firmware
                                 * completes later, PENDING_NONE if none */
};

#define PENDING_NONE UINT32_MAX

struct ppf_core {
    uint8_t *win;
    uint64_t win_size;
    struct ppf_regs *regs;
    struct ppf_core_config cfg;
    char *state_dir;
    char *serial;
    uint64_t qp_regs_off, sq_off, cq_off, data_off;
    struct ppf_core_irq_ops irq;
    int have_irq;
    struct core_qp qps[PPF_MAX_QPS];
    uint64_t stat[PPF_STAT__MAX];
    uint64_t start_ns;
    uint64_t last_beat_ns;
    struct ppf_core_cmd_ops cmd;
    uint8_t *scratch;           /* slot_size bytes: private copy of a payload */
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
stat_add(struct ppf_core *core, enum ppf_stat s, uint64_t n)
{
    __atomic_fetch_add(&core->stat[s], n, __ATOMIC_RELAXED);
}

void
ppf_core_config_default(struct ppf_core_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->num_qps = 17;
    cfg->qsize = 64;
    cfg->slots = 32;
    cfg->slot_size = 64 * 1024;
    cfg->metrics_size = 0;
    cfg->poll_us = 50;
}

uint64_t
ppf_core_window_size(const struct ppf_core_config *cfg)
{
    struct ppf_regs r;

    return ppf_window_layout(&r, cfg->num_qps, cfg->qsize, cfg->slots, cfg->slot_size,
                             cfg->metrics_size);
}

static struct ppf_qp_regs *
qp_regs(struct ppf_core *core, uint32_t q)
{
    return (struct ppf_qp_regs *)(core->win + core->qp_regs_off) + q;
}

static struct ppf_sqe *
qp_sq(struct ppf_core *core, uint32_t q)
{
    return (struct ppf_sqe *)(core->win + core->sq_off) + (size_t)q * core->cfg.qsize;
}

static struct ppf_cqe *
qp_cq(struct ppf_core *core, uint32_t q)
{
    return (struct ppf_cqe *)(core->win + core->cq_off) + (size_t)q * core->cfg.qsize;
}

static uint8_t *
qp_slot(struct ppf_core *core, uint32_t q, uint32_t cid)
{
    return core->win + core->data_off +
           ((uint64_t)q * core->cfg.slots + cid) * core->cfg.slot_size;
}

int
ppf_core_new(void *win, uint64_t win_size, const struct ppf_core_config *cfg,
             const struct ppf_core_irq_ops *irq, struct ppf_core **corep)
{
    struct ppf_core *core;
    struct ppf_regs layout;
    uint64_t need;

    *corep = NULL;
    need = ppf_window_layout(&layout, cfg->num_qps, cfg->qsize, cfg->slots,
                             cfg->slot_size, cfg->metrics_size);
    if (need == 0) {
        fprintf(stderr, "ppf-peripheral: queue geometry out of range (%u pairs of %u "
                "entries, %u slots of %u bytes)\n", cfg->num_qps, cfg->qsize, cfg->slots,
                cfg->slot_size);
        return -1;
    }
    if (win_size < need) {
        fprintf(stderr, "ppf-peripheral: window of %llu bytes is smaller than the %llu "
                "the geometry needs\n", (unsigned long long)win_size,
                (unsigned long long)need);
        return -1;
    }
    core = calloc(1, sizeof *core);
    if (!core) {
        fprintf(stderr, "ppf-peripheral: out of memory\n");
        return -1;
    }
    core->win = win;
    core->win_size = win_size;
    core->regs = win;
    core->cfg = *cfg;
    core->state_dir = strdup(cfg->state_dir ? cfg->state_dir : "");
    core->serial = strdup(cfg->serial ? cfg->serial : "");
    core->scratch = malloc(cfg->slot_size);
    for (uint32_t q = 0; q < cfg->num_qps && core->scratch; q++) {
        core->qps[q].pending_cap = malloc(cfg->slots * sizeof(uint32_t));
        if (!core->qps[q].pending_cap) {
            free(core->scratch);
            core->scratch = NULL;
            break;
        }
        for (uint32_t i = 0; i < cfg->slots; i++)
            core->qps[q].pending_cap[i] = PENDING_NONE;
    }
    if (!core->state_dir || !core->serial || !core->scratch) {
        ppf_core_free(core);
        fprintf(stderr, "ppf-peripheral: out of memory\n");
        return -1;
    }
    core->qp_regs_off = layout.qp_regs_off;
    core->sq_off = layout.sq_off;
    core->cq_off = layout.cq_off;
    core->data_off = layout.data_off;
    if (irq && irq->raise) {
        core->irq = *irq;
        core->have_irq = 1;
    }
    for (uint32_t q = 0; q < cfg->num_qps; q++)
        core->qps[q].phase = 1;
    core->start_ns = now_ns();
    core->last_beat_ns = core->start_ns;

    /* The register page; READY goes last, with release ordering. */
    layout.features = cfg->features;
    layout.device_pid = cfg->device_pid;
    layout.status = 0;
    memcpy(core->regs, &layout, sizeof layout);
    __atomic_store_n(&core->regs->status, PPF_STS_READY, __ATOMIC_RELEASE);
    *corep = core;
    return 0;
}

void
ppf_core_free(struct ppf_core *core)
{
    if (!core)
        return;
    free(core->state_dir);
    free(core->serial);
    free(core->scratch);
    for (uint32_t q = 0; q < PPF_MAX_QPS; q++)
        free(core->qps[q].pending_cap);
    free(core);
}

static void
core_raise(struct ppf_core *core, uint32_t q)
{
    struct ppf_qp_regs *qr = qp_regs(core, q);

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!core->have_irq || !__atomic_load_n(&qr->irq_armed, __ATOMIC_SEQ_CST))
        return;
    if (__atomic_load_n(&core->regs->intr_mask, __ATOMIC_RELAXED) & (1ull << q))
        return;
    __atomic_fetch_or(&core->regs->intr_status, 1ull << q, __ATOMIC_RELAXED);
    __atomic_fetch_add(&qr->irq_count, 1, __ATOMIC_SEQ_CST);
    core->irq.raise(core->irq.opaque, q);
    stat_add(core, PPF_STAT_IRQS, 1);
}

/* Stops pair q: the host broke the protocol.  Only this pair is affected. */
static void
core_qp_fatal(struct ppf_core *core, uint32_t q, enum ppf_status_code why)
{
    struct core_qp *qp = &core->qps[q];

    if (qp->fatal)
        return;
    qp->fatal = 1;
    __atomic_store_n(&qp_regs(core, q)->qstatus, PPF_QSTS_FATAL | why, __ATOMIC_RELEASE);
    stat_add(core, PPF_STAT_QUEUE_FATAL, 1);
    /* wake a sleeping owner so it sees the status */
    if (core->have_irq) {
        __atomic_fetch_add(&qp_regs(core, q)->irq_count, 1, __ATOMIC_SEQ_CST);
        core->irq.raise(core->irq.opaque, q);
    }
}

static void
core_qp_reset(struct ppf_core *core, uint32_t q, uint64_t claim)
{
    struct core_qp *qp = &core->qps[q];
    struct ppf_qp_regs *qr = qp_regs(core, q);

    qp->sq_head = 0;
    qp->cq_tail = 0;
    qp->phase = 1;
    qp->fatal = 0;
    for (uint32_t i = 0; i < core->cfg.slots; i++)
        qp->pending_cap[i] = PENDING_NONE;  /* late completions are dropped */
    memset(qp_cq(core, q), 0, (size_t)core->cfg.qsize * sizeof(struct ppf_cqe));
    __atomic_store_n(&qr->sq_tail, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&qr->cq_head, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&qr->sq_head, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&qr->qstatus, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&qr->irq_armed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&qr->owner_start, 0, __ATOMIC_RELAXED);
    if (!__atomic_compare_exchange_n(&qr->claim, &claim,
                                     PPF_CLAIM_MAKE(PPF_CLAIM_FREE, PPF_CLAIM_GEN(claim), 0),
                                     0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return;                 /* changed under us; look again next round */
    qp->gen = (uint32_t)PPF_CLAIM_GEN(claim);
    stat_add(core, PPF_STAT_RESETS, 1);
    __atomic_fetch_add(&core->regs->free_seq, 1, __ATOMIC_SEQ_CST);
    if (core->cfg.features & PPF_FEAT_FUTEX_IRQ)
        ppf_futex_wake(&core->regs->free_seq, INT_MAX);
}

static void
core_post(struct ppf_core *core, uint32_t q, uint16_t cid, enum ppf_status_code sc,
          uint32_t result, uint32_t out_len)
{
    struct core_qp *qp = &core->qps[q];
    struct ppf_qp_regs *qr = qp_regs(core, q);
    struct ppf_cqe *cqe = &qp_cq(core, q)[qp->cq_tail];
    uint32_t head = __atomic_load_n(&qr->cq_head, __ATOMIC_ACQUIRE);
    uint32_t next = (qp->cq_tail + 1) & (core->cfg.qsize - 1);
    uint64_t lo, hi;

    if (head >= core->cfg.qsize) {
        core_qp_fatal(core, q, PPF_SC_INVALID_CQ_HEAD);
        return;
    }
    if (next == head) {
        core_qp_fatal(core, q, PPF_SC_CQ_OVERFLOW);
        return;
    }
    lo = (uint64_t)result | ((uint64_t)out_len << 32);
    hi = (uint64_t)qp->sq_head | ((uint64_t)cid << 16) |
         ((uint64_t)(((unsigned)sc << 1) | qp->phase) << 32);
    __atomic_store_n((uint64_t *)cqe, lo, __ATOMIC_RELAXED);
    __atomic_store_n((uint64_t *)cqe + 1, hi, __ATOMIC_RELEASE);
    qp->cq_tail = next;
    if (next == 0)
        qp->phase ^= 1;
    stat_add(core, PPF_STAT_COMMANDS, 1);
    if (sc != PPF_SC_SUCCESS)
        stat_add(core, PPF_STAT_ERRORS, 1);
    core_raise(core, q);
}

static uint32_t
core_clients_claimed(struct ppf_core *core)
{
    uint32_t n = 0;

    for (uint32_t q = 0; q < core->cfg.num_qps; q++)
        if (PPF_CLAIM_STATE(__atomic_load_n(&qp_regs(core, q)->claim, __ATOMIC_RELAXED)) ==
            PPF_CLAIM_CLAIMED)
            n++;
    return n;
}

static enum ppf_status_code
core_identify(struct ppf_core *core, struct ppf_attr_writer *w)
{
    ppf_attr_put_str(w, PPF_ID_VENDOR, "ppf project");
    ppf_attr_put_str(w, PPF_ID_MODEL, core->cfg.features & PPF_FEAT_EMULATED ?
                     "ppf emulated peripheral" : "ppf peripheral");
    ppf_attr_put_str(w, PPF_ID_FIRMWARE, PACKAGE_VERSION);
    ppf_attr_put_str(w, PPF_ID_SERIAL, core->serial);
    ppf_attr_put_u64(w, PPF_ID_FEATURES, core->cfg.features);
    ppf_attr_put_u32(w, PPF_ID_NUM_QPS, core->cfg.num_qps);
    ppf_attr_put_u32(w, PPF_ID_QSIZE, core->cfg.qsize);
    ppf_attr_put_u32(w, PPF_ID_SLOTS, core->cfg.slots);
    ppf_attr_put_u32(w, PPF_ID_SLOT_SIZE, core->cfg.slot_size);
    ppf_attr_put_str(w, PPF_ID_STATE_DIR, core->state_dir);
    ppf_attr_put_u32(w, PPF_ID_PID, core->cfg.device_pid);
    return w->overflow ? PPF_SC_DATA_TOO_LONG : PPF_SC_SUCCESS;
}

static enum ppf_status_code
core_get_stats(struct ppf_core *core, struct ppf_attr_writer *w)
{
    core->stat[PPF_STAT_UPTIME_MS] = (now_ns() - core->start_ns) / 1000000;
    core->stat[PPF_STAT_QPS_CLAIMED] = core_clients_claimed(core);
    for (unsigned s = 1; s < PPF_STAT__MAX; s++)
        ppf_attr_put_u64(w, (uint16_t)s, __atomic_load_n(&core->stat[s], __ATOMIC_RELAXED));
    if (core->cmd.stats)
        core->cmd.stats(core->cmd.opaque, w);
    return w->overflow ? PPF_SC_DATA_TOO_LONG : PPF_SC_SUCCESS;
}

/* Runs one command copied out of the window, and completes it. */
static void
core_exec(struct ppf_core *core, uint32_t q, const struct ppf_sqe *e)
{
    enum ppf_status_code sc = ppf_sqe_check(e, q, core->cfg.slots, core->cfg.slot_size);
    struct ppf_attr_writer w;
    uint32_t result = 0, out_len = 0;

    ppf_attr_writer_init(&w, NULL, 0);
    if (sc == PPF_SC_SUCCESS) {
        ppf_attr_writer_init(&w, qp_slot(core, q, e->cid), e->out_cap);
        switch (e->opcode) {
        case PPF_OP_NOP:
            /* echo: result is arg[0]'s low half; the payload stays in the
             * slot and is returned when out_cap allows (§5) */
            stat_add(core, PPF_STAT_OP_NOP, 1);
            result = (uint32_t)e->arg[0];
            if (e->in_len <= e->out_cap)
                w.len = e->in_len;
            break;
        case PPF_OP_IDENTIFY:
            stat_add(core, PPF_STAT_OP_IDENTIFY, 1);
            sc = core_identify(core, &w);
            break;
        case PPF_OP_GET_STATS:
            stat_add(core, PPF_STAT_OP_GET_STATS, 1);
            sc = core_get_stats(core, &w);
            break;
        default:
            /* everything else is the firmware's (§5.4); without it, the
             * opcode is not implemented */
            if (!core->cmd.exec) {
                sc = PPF_SC_INVALID_OPCODE;
                break;
            }
            /* copy first: the host may change the slot while we parse */
            memcpy(core->scratch, qp_slot(core, q, e->cid), e->in_len);
            w.len = 0;
            sc = core->cmd.exec(core->cmd.opaque, q, e, core->scratch,
                                qp_slot(core, q, e->cid), &result, &out_len);
            if ((unsigned)sc == PPF_CORE_PENDING) {
                /* the firmware completes it later (ppf_core_complete) */
                core->qps[q].pending_cap[e->cid] = e->out_cap;
                return;
            }
            if (out_len > e->out_cap) {
                sc = PPF_SC_INTERNAL;
                out_len = 0;
            }
            w.len = out_len;
            break;
        }
    }
    if (sc != PPF_SC_SUCCESS && sc != PPF_SC_DATA_TOO_LONG)
        stat_add(core, PPF_STAT_REJECTED, 1);
    /* a failed firmware command may return a message (§5.4) */
    core_post(core, q, e->cid, sc, result,
              sc == PPF_SC_SUCCESS || (core->cmd.exec && out_len) ? (uint32_t)w.len : 0);
}

static unsigned
core_serve_qp(struct ppf_core *core, uint32_t q)
{
    struct core_qp *qp = &core->qps[q];
    struct ppf_qp_regs *qr = qp_regs(core, q);
    uint64_t claim = __atomic_load_n(&qr->claim, __ATOMIC_ACQUIRE);
    struct ppf_sqe e;
    uint32_t tail, budget = core->cfg.qsize;
    unsigned done = 0;

    switch (PPF_CLAIM_STATE(claim)) {
    case PPF_CLAIM_RESET:
        core_qp_reset(core, q, claim);
        return 0;
    case PPF_CLAIM_CLAIMED:
        break;
    default:
        return 0;               /* free (or a garbage state): nothing to serve */
    }
    if (PPF_CLAIM_GEN(claim) != qp->gen) {
        qp->gen = (uint32_t)PPF_CLAIM_GEN(claim);
        stat_add(core, PPF_STAT_CLAIMS, 1);
    }
    if (qp->fatal)
        return 0;
    tail = __atomic_load_n(&qr->sq_tail, __ATOMIC_ACQUIRE);
    if (tail >= core->cfg.qsize) {
        core_qp_fatal(core, q, PPF_SC_INVALID_SQ_TAIL);
        return 0;
    }
    while (qp->sq_head != tail && budget-- > 0 && !qp->fatal) {
        /* copy first, then check: the host may change the entry under us */
        memcpy(&e, &qp_sq(core, q)[qp->sq_head], sizeof e);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        qp->sq_head = (qp->sq_head + 1) & (core->cfg.qsize - 1);
        __atomic_store_n(&qr->sq_head, qp->sq_head, __ATOMIC_RELEASE);
        core_exec(core, q, &e);
        done++;
    }
    return done;
}

uint32_t
ppf_core_qp_gen(const struct ppf_core *core, uint32_t q)
{
    return q < core->cfg.num_qps ? core->qps[q].gen : 0;
}

int
ppf_core_complete(struct ppf_core *core, uint32_t q, uint32_t gen, uint16_t cid,
                  enum ppf_status_code sc, uint32_t result, const void *out, uint32_t out_len)
{
    struct core_qp *qp;
    uint64_t claim;

    if (q >= core->cfg.num_qps || cid >= core->cfg.slots)
        return -1;
    qp = &core->qps[q];
    claim = __atomic_load_n(&qp_regs(core, q)->claim, __ATOMIC_ACQUIRE);
    if (qp->gen != gen || qp->fatal || qp->pending_cap[cid] == PENDING_NONE ||
        PPF_CLAIM_STATE(claim) != PPF_CLAIM_CLAIMED || PPF_CLAIM_GEN(claim) != gen)
        return -1;              /* the pair was released or reset meanwhile */
    if (out_len > qp->pending_cap[cid]) {
        sc = PPF_SC_INTERNAL;
        out_len = 0;
    }
    if (out_len)
        memcpy(qp_slot(core, q, cid), out, out_len);
    qp->pending_cap[cid] = PENDING_NONE;
    core_post(core, q, cid, sc, result, out_len);
    return 0;
}

unsigned
ppf_core_poll(struct ppf_core *core)
{
    unsigned done = 0;

    if (core->cmd.poll)
        done += core->cmd.poll(core->cmd.opaque);
    for (uint32_t q = 0; q < core->cfg.num_qps; q++)
        done += core_serve_qp(core, q);
    return done;
}

void
ppf_core_set_cmd_ops(struct ppf_core *core, const struct ppf_core_cmd_ops *ops)
{
    if (ops)
        core->cmd = *ops;
    else
        memset(&core->cmd, 0, sizeof core->cmd);
}

void
ppf_core_heartbeat(struct ppf_core *core)
{
    __atomic_fetch_add(&core->regs->heartbeat, 1, __ATOMIC_RELEASE);
}

void
ppf_core_kick(struct ppf_core *core)
{
    __atomic_fetch_add(&core->regs->db_seq, 1, __ATOMIC_SEQ_CST);
    ppf_futex_wake(&core->regs->db_seq, 1);
}

void
ppf_core_run(struct ppf_core *core, volatile int *stop)
{
    uint64_t idle_since = now_ns(), t;
    uint64_t poll_ns = core->cfg.poll_us > 0 ? (uint64_t)core->cfg.poll_us * 1000 : 0;
    uint32_t seq;

    while (!*stop) {
        t = now_ns();
        if (t - core->last_beat_ns >= CORE_SLEEP_MS * 1000000ull) {
            ppf_core_heartbeat(core);
            core->last_beat_ns = t;
        }
        if (ppf_core_poll(core) > 0) {
            idle_since = now_ns();
            continue;
        }
        if (now_ns() - idle_since < poll_ns) {
            ppf_cpu_relax();
            continue;
        }
        /* Going to sleep: announce it, then look once more (Dekker with
         * the host's doorbell, which reads dev_sleeping after its tail). */
        seq = __atomic_load_n(&core->regs->db_seq, __ATOMIC_SEQ_CST);
        __atomic_store_n(&core->regs->dev_sleeping, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (ppf_core_poll(core) == 0 && !*stop) {
            ppf_futex_wait(&core->regs->db_seq, seq, CORE_SLEEP_MS);
            stat_add(core, PPF_STAT_WAKEUPS, 1);
        }
        __atomic_store_n(&core->regs->dev_sleeping, 0, __ATOMIC_SEQ_CST);
        idle_since = now_ns();
    }
}

void
ppf_core_reclaim_owner(struct ppf_core *core, uint32_t owner)
{
    for (uint32_t q = 0; q < core->cfg.num_qps; q++) {
        struct ppf_qp_regs *qr = qp_regs(core, q);
        uint64_t c = __atomic_load_n(&qr->claim, __ATOMIC_ACQUIRE);

        if (PPF_CLAIM_STATE(c) != PPF_CLAIM_CLAIMED || PPF_CLAIM_OWNER(c) != owner)
            continue;
        if (__atomic_compare_exchange_n(&qr->claim, &c,
                                        PPF_CLAIM_MAKE(PPF_CLAIM_RESET, PPF_CLAIM_GEN(c), owner),
                                        0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            stat_add(core, PPF_STAT_RECLAIMS, 1);
    }
    ppf_core_kick(core);
}

void
ppf_core_set_clients(struct ppf_core *core, uint32_t n)
{
    __atomic_store_n(&core->stat[PPF_STAT_CLIENTS], n, __ATOMIC_RELAXED);
}

void
ppf_core_shutdown(struct ppf_core *core)
{
    __atomic_fetch_or(&core->regs->status, PPF_STS_SHUTDOWN, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&core->regs->status, ~PPF_STS_READY, __ATOMIC_SEQ_CST);
    for (uint32_t q = 0; q < core->cfg.num_qps; q++) {
        struct ppf_qp_regs *qr = qp_regs(core, q);

        __atomic_fetch_add(&qr->irq_count, 1, __ATOMIC_SEQ_CST);
        if (core->have_irq)
            core->irq.raise(core->irq.opaque, q);
    }
    __atomic_fetch_add(&core->regs->free_seq, 1, __ATOMIC_SEQ_CST);
    if (core->cfg.features & PPF_FEAT_FUTEX_IRQ)
        ppf_futex_wake(&core->regs->free_seq, INT_MAX);
}

/* libppf queue pairs: claim one atomically, submit commands into its SQ,
 * reap phase-tagged completions from its CQ (poll briefly, then sleep on
 * the pair's interrupt), release it.  Everything read back from the window
 * is checked: a broken or hostile device makes calls fail with EPROTO,
 * never crash the host.  Backend specifics go through dev->ops.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver/driver.h"

#define WAIT_SLICE_MS 100       /* how often a sleeping waiter checks liveness */

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left before deadline (UINT64_MAX: none), capped at cap. */
static int
ms_left(uint64_t deadline, int cap)
{
    uint64_t t;

    if (deadline == UINT64_MAX)
        return cap;
    t = now_ns();
    if (t >= deadline)
        return 0;
    t = (deadline - t + 999999) / 1000000;
    return t < (uint64_t)cap ? (int)t : cap;
}

static uint64_t
deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

static int
default_poll_us(void)
{
    const char *s = getenv(PPF_ENV_POLL_US);
    char *end;
    long v;

    if (!s || !*s)
        return PPF_DEFAULT_POLL_US;
    v = strtol(s, &end, 10);
    if (*end || v < -1 || v > 10000000)
        return PPF_DEFAULT_POLL_US;
    return (int)v;
}

static int
qp_try_claim(struct ppf_dev *dev, uint32_t q, uint32_t *gen)
{
    struct ppf_qp_regs *qr = (struct ppf_qp_regs *)(dev->win + dev->qp_regs_off) + q;
    uint64_t c = __atomic_load_n(&qr->claim, __ATOMIC_ACQUIRE);
    uint64_t want;

    if (PPF_CLAIM_STATE(c) != PPF_CLAIM_FREE)
        return 0;
    want = PPF_CLAIM_MAKE(PPF_CLAIM_CLAIMED, PPF_CLAIM_GEN(c) + 1, dev->owner);
    if (!__atomic_compare_exchange_n(&qr->claim, &c, want, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return 0;
    __atomic_store_n(&qr->owner_start, dev->owner_start, __ATOMIC_RELEASE);
    *gen = (uint32_t)PPF_CLAIM_GEN(want);
    return 1;
}

static struct ppf_qp *
qp_new(struct ppf_dev *dev, uint32_t q, uint32_t gen)
{
    struct ppf_qp *qp = calloc(1, sizeof *qp);
    size_t words = (dev->slots + 63) / 64;

    if (!qp)
        return NULL;
    qp->free_cids = calloc(words, sizeof *qp->free_cids);
    qp->cmds = calloc(dev->slots, sizeof *qp->cmds);
    if (!qp->free_cids || !qp->cmds) {
        free(qp->free_cids);
        free(qp->cmds);
        free(qp);
        return NULL;
    }
    for (uint32_t i = 0; i < dev->slots; i++)
        qp->free_cids[i / 64] |= 1ull << (i % 64);
    qp->dev = dev;
    qp->qid = q;
    qp->gen = gen;
    qp->regs = (struct ppf_qp_regs *)(dev->win + dev->qp_regs_off) + q;
    qp->sq = (struct ppf_sqe *)(dev->win + dev->sq_off) + (size_t)q * dev->qsize;
    qp->cq = (struct ppf_cqe *)(dev->win + dev->cq_off) + (size_t)q * dev->qsize;
    qp->data = dev->win + dev->data_off + (uint64_t)q * dev->slots * dev->slot_size;
    qp->phase = 1;
    qp->poll_us = default_poll_us();
    return qp;
}

int
ppf_qp_claim(struct ppf_dev *dev, enum ppf_qp_kind kind, int timeout_ms, struct ppf_qp **qpp)
{
    uint64_t deadline = deadline_after(timeout_ms);
    uint32_t first, count, start, gen = 0, q = 0, seen;
    int got = 0;

    *qpp = NULL;
    if (kind == PPF_QP_ADMIN) {
        first = PPF_ADMIN_QID;
        count = 1;
    } else {
        first = 1;
        count = dev->num_qps - 1;
    }
    /* spread processes over the pairs so they rarely race for one */
    start = (uint32_t)getpid() + dev->owner;
    for (;;) {
        if (ppf_dev_check_alive(dev) < 0)
            return -1;
        seen = __atomic_load_n(&dev->regs->free_seq, __ATOMIC_ACQUIRE);
        for (uint32_t i = 0; i < count && !got; i++) {
            q = first + (start + i) % count;
            got = qp_try_claim(dev, q, &gen);
        }
        if (got)
            break;
        if (dev->ops->reclaim)
            dev->ops->reclaim(dev);
        if (ms_left(deadline, 1) == 0) {
            errno = EBUSY;
            return ppf_set_error("%s: all %u %s queue pairs are busy; try again, or start "
                                 "the peripheral with more --queues", dev->path, count,
                                 kind == PPF_QP_ADMIN ? "admin" : "I/O");
        }
        dev->ops->free_wait(dev, seen, ms_left(deadline, WAIT_SLICE_MS));
    }

    *qpp = qp_new(dev, q, gen);
    if (!*qpp) {
        struct ppf_qp_regs *qr = (struct ppf_qp_regs *)(dev->win + dev->qp_regs_off) + q;
        __atomic_store_n(&qr->claim, PPF_CLAIM_MAKE(PPF_CLAIM_RESET, gen, dev->owner),
                         __ATOMIC_SEQ_CST);
        errno = ENOMEM;
        return ppf_set_error("out of memory");
    }
    pthread_mutex_lock(&dev->lock);
    (*qpp)->next = dev->qps;
    dev->qps = *qpp;
    pthread_mutex_unlock(&dev->lock);
    return 0;
}

void
ppf_qp_release(struct ppf_qp *qp)
{
    struct ppf_dev *dev;
    struct ppf_qp **pp;
    uint64_t c;

    if (!qp)
        return;
    dev = qp->dev;
    pthread_mutex_lock(&dev->lock);
    for (pp = &dev->qps; *pp; pp = &(*pp)->next)
        if (*pp == qp) {
            *pp = qp->next;
            break;
        }
    pthread_mutex_unlock(&dev->lock);

    /* Hand the pair back only if it is still ours (same generation). */
    c = PPF_CLAIM_MAKE(PPF_CLAIM_CLAIMED, qp->gen, dev->owner);
    if (__atomic_compare_exchange_n(&qp->regs->claim, &c,
                                    PPF_CLAIM_MAKE(PPF_CLAIM_RESET, qp->gen, dev->owner),
                                    0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        dev->ops->doorbell(dev);
    }
    free(qp->free_cids);
    free(qp->cmds);
    free(qp);
}

unsigned
ppf_qp_id(const struct ppf_qp *qp)
{
    return qp->qid;
}

void
ppf_qp_set_poll_us(struct ppf_qp *qp, int poll_us)
{
    qp->poll_us = poll_us < -1 ? -1 : poll_us;
}

static int
qp_fail(struct ppf_qp *qp, int err)
{
    qp->broken = err;
    errno = err;
    return -1;
}

/* Is the next CQ entry posted?  Returns its status word if so, else -1. */
static int
qp_cq_ready(struct ppf_qp *qp)
{
    uint64_t hi = __atomic_load_n((uint64_t *)&qp->cq[qp->cq_head] + 1, __ATOMIC_ACQUIRE);
    uint16_t status = (uint16_t)(hi >> 32);

    return PPF_CQE_PHASE(status) == qp->phase ? status : -1;
}

/* Consumes every posted completion.  Returns the number reaped or -1. */
static int
qp_reap(struct ppf_qp *qp)
{
    struct ppf_dev *dev = qp->dev;
    struct ppf_cqe c;
    struct ppf_cmd *cmd;
    int n = 0;

    while (qp_cq_ready(qp) >= 0) {
        memcpy(&c, &qp->cq[qp->cq_head], sizeof c);
        if (ppf_cqe_check(&c, dev->slots, dev->slot_size, dev->qsize) < 0 ||
            !(cmd = qp->cmds[c.cid]) || c.out_len > cmd->out_cap) {
            ppf_set_error("%s: queue pair %u: the peripheral posted an invalid completion "
                          "(cid %u, %u bytes); restart ppf-peripheral", dev->path, qp->qid,
                          c.cid, c.out_len);
            return qp_fail(qp, EPROTO);
        }
        cmd->status = PPF_CQE_SC(c.status);
        cmd->result = c.result;
        cmd->out_len = c.out_len;
        if (c.out_len)
            memcpy(cmd->out, qp->data + (size_t)c.cid * dev->slot_size, c.out_len);
        cmd->done_ = 1;
        qp->cmds[c.cid] = NULL;
        qp->free_cids[c.cid / 64] |= 1ull << (c.cid % 64);
        qp->inflight--;
        qp->cq_head = (qp->cq_head + 1) & (dev->qsize - 1);
        if (qp->cq_head == 0)
            qp->phase ^= 1;
        n++;
    }
    if (n)
        __atomic_store_n(&qp->regs->cq_head, qp->cq_head, __ATOMIC_RELEASE);
    return n;
}

static int
qp_check_status(struct ppf_qp *qp)
{
    uint32_t st = __atomic_load_n(&qp->regs->qstatus, __ATOMIC_ACQUIRE);

    if (st & PPF_QSTS_FATAL) {
        ppf_set_error("%s: queue pair %u was stopped by the peripheral: %s", qp->dev->path,
                      qp->qid, ppf_status_text(PPF_QSTS_CODE(st)));
        return qp_fail(qp, EIO);
    }
    return 0;
}

/* Waits until a completion is posted, the deadline passes (0 with
 * ETIMEDOUT... reported by the caller) or the device fails (-1). */
static int
qp_wait_event(struct ppf_qp *qp, uint64_t deadline)
{
    struct ppf_dev *dev = qp->dev;
    uint64_t spin_end;
    uint32_t seen;
    unsigned i = 0;

    if (qp->poll_us != 0) {
        spin_end = qp->poll_us < 0 ? UINT64_MAX : now_ns() + (uint64_t)qp->poll_us * 1000;
        for (;;) {
            if (qp_cq_ready(qp) >= 0)
                return 0;
            if ((++i & 1023) == 0) {
                uint64_t t = now_ns();
                if (t >= spin_end || t >= deadline)
                    break;
                if (qp->poll_us < 0 && (qp_check_status(qp) < 0 || ppf_dev_check_alive(dev) < 0))
                    return -1;
            }
            ppf_cpu_relax();
        }
    }
    for (;;) {
        int slice = ms_left(deadline, WAIT_SLICE_MS), r;

        if (qp_check_status(qp) < 0)
            return -1;
        if (ppf_dev_check_alive(dev) < 0)
            return qp_fail(qp, ENODEV);
        if (slice == 0)
            return 0;
        __atomic_store_n(&qp->regs->irq_armed, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        seen = __atomic_load_n(&qp->regs->irq_count, __ATOMIC_ACQUIRE);
        if (qp_cq_ready(qp) >= 0) {
            __atomic_store_n(&qp->regs->irq_armed, 0, __ATOMIC_RELAXED);
            return 0;
        }
        r = dev->ops->irq_wait(dev, qp, seen, slice);
        __atomic_store_n(&qp->regs->irq_armed, 0, __ATOMIC_RELAXED);
        if (r < 0)
            return qp_fail(qp, errno ? errno : ENODEV);
        if (qp_cq_ready(qp) >= 0)
            return 0;
    }
}

int
ppf_submit(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms)
{
    struct ppf_dev *dev = qp->dev;
    uint64_t deadline = deadline_after(timeout_ms);
    struct ppf_sqe e;
    uint32_t cid = UINT32_MAX;

    if (qp->broken) {
        errno = qp->broken;
        return -1;
    }
    if (cmd->in_len > dev->slot_size || cmd->out_cap > dev->slot_size ||
        (cmd->in_len && !cmd->in) || (cmd->out_cap && !cmd->out)) {
        errno = EINVAL;
        return ppf_set_error("%s command: payload of %u bytes or result buffer of %u bytes "
                             "does not fit a %u-byte slot", ppf_opcode_name(cmd->opcode),
                             cmd->in_len, cmd->out_cap, dev->slot_size);
    }
    /* A free command id; while every slot is in flight, that is back-pressure. */
    for (;;) {
        for (uint32_t w = 0; w < (dev->slots + 63) / 64 && cid == UINT32_MAX; w++)
            if (qp->free_cids[w])
                cid = w * 64 + (uint32_t)__builtin_ctzll(qp->free_cids[w]);
        if (cid != UINT32_MAX)
            break;
        if (qp_reap(qp) < 0)
            return -1;
        if (qp->inflight < dev->slots)
            continue;
        if (ms_left(deadline, 1) == 0) {
            errno = ETIMEDOUT;
            return ppf_set_error("%s: queue pair %u: all %u command slots still busy "
                                 "after %d ms", dev->path, qp->qid, dev->slots, timeout_ms);
        }
        if (qp_wait_event(qp, deadline) < 0)
            return -1;
    }
    qp->free_cids[cid / 64] &= ~(1ull << (cid % 64));
    qp->cmds[cid] = cmd;
    qp->inflight++;
    cmd->done_ = 0;
    cmd->cid_ = (uint16_t)cid;
    cmd->status = 0;
    cmd->result = 0;
    cmd->out_len = 0;

    if (cmd->in_len)
        memcpy(qp->data + (size_t)cid * dev->slot_size, cmd->in, cmd->in_len);
    memset(&e, 0, sizeof e);
    e.opcode = cmd->opcode;
    e.cid = (uint16_t)cid;
    e.in_len = cmd->in_len;
    e.out_cap = cmd->out_cap;
    memcpy(e.arg, cmd->arg, sizeof e.arg);
    memcpy(&qp->sq[qp->sq_tail], &e, sizeof e);
    qp->sq_tail = (qp->sq_tail + 1) & (dev->qsize - 1);
    __atomic_store_n(&qp->regs->sq_tail, qp->sq_tail, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    dev->ops->doorbell(dev);
    return 0;
}

int
ppf_wait(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);

    for (;;) {
        if (cmd->done_)
            return 0;
        if (qp->broken) {
            errno = qp->broken;
            return -1;
        }
        if (qp_reap(qp) < 0)
            return -1;
        if (cmd->done_)
            return 0;
        if (cmd->cid_ >= qp->dev->slots || qp->cmds[cmd->cid_] != cmd) {
            errno = EINVAL;
            return ppf_set_error("ppf_wait: %s command was not submitted on queue pair %u",
                                 ppf_opcode_name(cmd->opcode), qp->qid);
        }
        if (ms_left(deadline, 1) == 0) {
            errno = ETIMEDOUT;
            return ppf_set_error("%s: %s command got no answer within %d ms; the "
                                 "peripheral may be overloaded or stuck", qp->dev->path,
                                 ppf_opcode_name(cmd->opcode), timeout_ms);
        }
        if (qp_wait_event(qp, deadline) < 0)
            return -1;
    }
}

void
ppf_cmd_reason(const struct ppf_cmd *cmd, char *buf, size_t len)
{
    const unsigned char *p = cmd->out;
    size_t n = 0;

    if (p)
        n = cmd->out_len < len - 1 ? cmd->out_len : len - 1;

    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
        n--;
    if (n < cmd->out_len && n == len - 1) {
        /* cut short: do not end inside a UTF-8 sequence */
        while (n > 0 && (p[n - 1] & 0xc0) == 0x80)
            n--;
        if (n > 0 && p[n - 1] >= 0xc0)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
    buf[n] = '\0';
}

int
ppf_exec(struct ppf_qp *qp, struct ppf_cmd *cmd, int timeout_ms)
{
    if (ppf_submit(qp, cmd, timeout_ms) < 0)
        return -1;
    return ppf_wait(qp, cmd, timeout_ms);
}

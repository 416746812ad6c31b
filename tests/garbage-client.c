/* Hostile test client: attaches like any host program, claims a pair, and
 * then writes garbage into everything that pair lets it touch — random
 * submission entries, wild doorbell indices, random lengths and command
 * ids, junk over its SQ ring, data slots and its pair's device-owned
 * registers — re-claiming a pair whenever the peripheral stops one.  The
 * peripheral must survive and keep serving everyone else correctly.
 *
 * Usage: garbage-client [--iterations N] [--seed S]
 * Exit 0 when done and the peripheral still answers IDENTIFY; 1 otherwise.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/futex.h"
#include "ppf/ppf.h"

static uint64_t rng_state = 88172645463325252ull;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void
rnd_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd();
}

struct pair {
    struct ppf_qp *qp;
    unsigned qid;
    struct ppf_qp_regs *regs;
    struct ppf_sqe *sq;
    struct ppf_cqe *cq;
    uint8_t *data;
    uint32_t tail, head, phase;
};

static struct ppf_dev *dev;
static struct ppf_regs layout;
static uint8_t *win;

static void
pair_claim(struct pair *p)
{
    if (ppf_qp_claim(dev, PPF_QP_IO, 30000, &p->qp) < 0) {
        fprintf(stderr, "garbage-client: claim: %s\n", ppf_error());
        exit(1);
    }
    p->qid = ppf_qp_id(p->qp);
    p->regs = (struct ppf_qp_regs *)(win + layout.qp_regs_off) + p->qid;
    p->sq = (struct ppf_sqe *)(win + layout.sq_off) + (size_t)p->qid * layout.qsize;
    p->cq = (struct ppf_cqe *)(win + layout.cq_off) + (size_t)p->qid * layout.qsize;
    p->data = win + layout.data_off + (uint64_t)p->qid * layout.slots * layout.slot_size;
    p->tail = p->head = 0;
    p->phase = 1;
}

static void
ring(struct pair *p, uint32_t tail)
{
    __atomic_store_n(&p->regs->sq_tail, tail, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&((struct ppf_regs *)win)->dev_sleeping, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&((struct ppf_regs *)win)->db_seq, 1, __ATOMIC_SEQ_CST);
        ppf_futex_wake(&((struct ppf_regs *)win)->db_seq, 1);
    }
}

/* Consumes completions for up to ~2 ms, like a (sloppy) host would. */
static void
drain(struct pair *p)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        uint64_t hi = __atomic_load_n((uint64_t *)&p->cq[p->head] + 1, __ATOMIC_ACQUIRE);
        if (((hi >> 32) & 1) == p->phase) {
            p->head = (p->head + 1) & (layout.qsize - 1);
            if (p->head == 0)
                p->phase ^= 1;
            __atomic_store_n(&p->regs->cq_head, p->head, __ATOMIC_RELEASE);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 2000000L)
            return;
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "iterations", required_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long iterations = 2000, fatal_seen = 0;
    struct pair p;
    uint64_t win_size;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'n')
            iterations = strtoul(optarg, NULL, 10);
        else if (o == 's')
            rng_state = strtoull(optarg, NULL, 10) * 2654435761ull + 1;
        else
            return 2;
    }
    if (ppf_dev_open(NULL, &dev) < 0) {
        fprintf(stderr, "garbage-client: %s\n", ppf_error());
        return 1;
    }
    win = ppf_dev_window(dev, &win_size);
    {
        struct ppf_regs *r = (struct ppf_regs *)win;
        ppf_window_layout(&layout, r->num_qps, r->qsize, r->slots, r->slot_size,
                          r->metrics_size);
    }
    pair_claim(&p);

    for (unsigned long it = 0; it < iterations; it++) {
        uint32_t st = __atomic_load_n(&p.regs->qstatus, __ATOMIC_ACQUIRE);
        unsigned k;

        if (st & PPF_QSTS_FATAL) {
            fatal_seen++;
            ppf_qp_release(p.qp);
            pair_claim(&p);
        }
        switch (rnd() % 8) {
        case 0: case 1: case 2: {
            /* plausible entries with random fields */
            k = 1 + (unsigned)(rnd() % 8);
            for (unsigned i = 0; i < k; i++) {
                struct ppf_sqe e;
                rnd_bytes(&e, sizeof e);
                if (rnd() % 2) {
                    e.cid = (uint16_t)(rnd() % layout.slots);
                    e.flags = 0;
                    e.rsvd = 0;
                    e.opcode = (uint8_t)(rnd() % 0x30);
                    e.in_len = (uint32_t)(rnd() % (layout.slot_size + 2));
                    e.out_cap = (uint32_t)(rnd() % (layout.slot_size + 2));
                }
                memcpy(&p.sq[p.tail], &e, sizeof e);
                p.tail = (p.tail + 1) & (layout.qsize - 1);
            }
            ring(&p, p.tail);
            drain(&p);
            break;
        }
        case 3:
            /* a wild doorbell: the pair must stop, nobody else */
            ring(&p, (uint32_t)rnd() | layout.qsize);
            break;
        case 4:
            __atomic_store_n(&p.regs->cq_head, (uint32_t)rnd(), __ATOMIC_RELEASE);
            ring(&p, (p.tail + 1) & (layout.qsize - 1));
            break;
        case 5:
            rnd_bytes(p.sq, (size_t)layout.qsize * sizeof(struct ppf_sqe));
            rnd_bytes(p.data + (rnd() % layout.slots) * layout.slot_size, 4096);
            ring(&p, (uint32_t)(rnd() % layout.qsize));
            drain(&p);
            break;
        case 6:
            /* scribble over the fields the device owns in this pair */
            p.regs->sq_head = (uint32_t)rnd();
            p.regs->qstatus = (uint32_t)rnd() & ~PPF_QSTS_FATAL;
            p.regs->irq_count = (uint32_t)rnd();
            p.regs->irq_armed = (uint32_t)rnd();
            ((struct ppf_regs *)win)->control = (uint32_t)rnd();
            ((struct ppf_regs *)win)->db_seq = (uint32_t)rnd();
            break;
        default:
            /* give the pair back mid-stream and take another */
            ppf_qp_release(p.qp);
            pair_claim(&p);
            break;
        }
    }
    ppf_qp_release(p.qp);

    /* the peripheral must still answer, on a fresh pair */
    {
        struct ppf_qp *qp;
        uint8_t buf[4096];
        struct ppf_cmd cmd = { .opcode = PPF_OP_IDENTIFY, .out = buf, .out_cap = sizeof buf };

        if (ppf_qp_claim(dev, PPF_QP_IO, 30000, &qp) < 0 || ppf_exec(qp, &cmd, 10000) < 0 ||
            cmd.status != PPF_SC_SUCCESS) {
            fprintf(stderr, "garbage-client: the peripheral stopped answering: %s\n",
                    ppf_error());
            return 1;
        }
        ppf_qp_release(qp);
    }
    printf("garbage-client: %lu iterations, %lu pairs stopped by the peripheral\n",
           iterations, fatal_seen);
    ppf_dev_close(dev);
    return 0;
}

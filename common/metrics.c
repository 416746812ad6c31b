/* The metrics ring (schemas/device-protocol.md §6): header set-up by the
 * device, the host's lock-free single producer, and the device's consumer
 * that copies each record out under its seqlock and checks it before use.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "common/metrics.h"

_Static_assert(sizeof(struct ppf_metrics_hdr) == PPF_METRICS_HDR_SIZE, "ring header");
_Static_assert(sizeof(struct ppf_metrics_rec) == PPF_METRICS_REC_SIZE, "ring record");
_Static_assert(offsetof(struct ppf_metrics_hdr, head) == 0x40, "head");
_Static_assert(offsetof(struct ppf_metrics_rec, disk_read_bps) == 0x30, "disk");

#define READ_RETRIES 4

static int
is_pow2(uint32_t n)
{
    return n && !(n & (n - 1));
}

uint64_t
ppf_metrics_ring_size(uint32_t nrecs)
{
    return PPF_METRICS_HDR_SIZE + (uint64_t)nrecs * PPF_METRICS_REC_SIZE;
}

uint32_t
ppf_metrics_ring_fit(uint64_t size)
{
    uint32_t n = PPF_METRICS_MAX_RECORDS;

    while (n >= PPF_METRICS_MIN_RECORDS && ppf_metrics_ring_size(n) > size)
        n >>= 1;
    return n >= PPF_METRICS_MIN_RECORDS ? n : 0;
}

int
ppf_metrics_ring_init(void *mem, uint64_t size, uint32_t nrecs)
{
    struct ppf_metrics_hdr h;

    if (!is_pow2(nrecs) || nrecs < PPF_METRICS_MIN_RECORDS ||
        nrecs > PPF_METRICS_MAX_RECORDS || ppf_metrics_ring_size(nrecs) > size)
        return -1;
    memset(&h, 0, sizeof h);
    h.magic = PPF_METRICS_MAGIC;
    h.version = PPF_METRICS_VERSION;
    h.rec_size = PPF_METRICS_REC_SIZE;
    h.nrecs = nrecs;
    memcpy(mem, &h, sizeof h);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return 0;
}

static struct ppf_metrics_rec *
ring_rec(uint8_t *recs, uint32_t nrecs, uint64_t seq)
{
    return (struct ppf_metrics_rec *)(recs + (seq & (nrecs - 1)) * PPF_METRICS_REC_SIZE);
}

int
ppf_metrics_writer_attach(struct ppf_metrics_writer *w, void *mem, uint64_t size,
                          uint32_t pid, uint32_t *holder, char *why, size_t whylen)
{
    struct ppf_metrics_hdr h;
    uint32_t expect = 0;

    memset(w, 0, sizeof *w);
    *holder = 0;
    if (size < PPF_METRICS_HDR_SIZE || pid == 0) {
        snprintf(why, whylen, "metrics ring of %llu bytes is too small",
                 (unsigned long long)size);
        return -1;
    }
    memcpy(&h, mem, sizeof h);          /* one copy; the fields are checked on it */
    if (h.magic != PPF_METRICS_MAGIC || h.version != PPF_METRICS_VERSION ||
        h.rec_size != PPF_METRICS_REC_SIZE) {
        snprintf(why, whylen, "metrics ring header is not one this ppfd understands "
                 "(magic %#x, version %u, record size %u)", h.magic, h.version, h.rec_size);
        return -1;
    }
    if (!is_pow2(h.nrecs) || h.nrecs < PPF_METRICS_MIN_RECORDS ||
        h.nrecs > PPF_METRICS_MAX_RECORDS || ppf_metrics_ring_size(h.nrecs) > size) {
        snprintf(why, whylen, "metrics ring claims %u records, which do not fit in %llu "
                 "bytes or are not a power of two", h.nrecs, (unsigned long long)size);
        return -1;
    }
    w->hdr = mem;
    w->recs = (uint8_t *)mem + PPF_METRICS_HDR_SIZE;
    w->nrecs = h.nrecs;
    w->pid = pid;
    if (!__atomic_compare_exchange_n(&w->hdr->producer, &expect, pid, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE) && expect != pid) {
        *holder = expect;
        snprintf(why, whylen, "metrics ring is held by producer pid %u", expect);
        return -2;
    }
    /* continue the sequence a previous producer left, so readers stay in step */
    w->head = __atomic_load_n(&w->hdr->head, __ATOMIC_ACQUIRE);
    return 0;
}

int
ppf_metrics_writer_steal(struct ppf_metrics_writer *w, uint32_t holder)
{
    uint32_t expect = holder;

    if (!w->hdr || !__atomic_compare_exchange_n(&w->hdr->producer, &expect, w->pid, 0,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return -1;
    w->head = __atomic_load_n(&w->hdr->head, __ATOMIC_ACQUIRE);
    return 0;
}

int
ppf_metrics_writer_put(struct ppf_metrics_writer *w, const struct ppf_metrics_rec *r)
{
    struct ppf_metrics_rec *dst;
    uint32_t s;

    if (!w->hdr)
        return -1;
    if (__atomic_load_n(&w->hdr->producer, __ATOMIC_ACQUIRE) != w->pid) {
        w->hdr = NULL;          /* taken over: never write again */
        return -1;
    }
    dst = ring_rec(w->recs, w->nrecs, w->head);
    s = (__atomic_load_n(&dst->seq, __ATOMIC_RELAXED) + 1) | 1u;
    __atomic_store_n(&dst->seq, s, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    /* everything after seq; then seq even again, with release ordering */
    memcpy((uint8_t *)dst + sizeof dst->seq, (const uint8_t *)r + sizeof r->seq,
           sizeof *r - sizeof r->seq);
    __atomic_store_n(&dst->index, w->head, __ATOMIC_RELAXED);
    __atomic_store_n(&dst->seq, s + 1, __ATOMIC_RELEASE);
    w->head++;
    __atomic_store_n(&w->hdr->head, w->head, __ATOMIC_RELEASE);
    return 0;
}

void
ppf_metrics_writer_detach(struct ppf_metrics_writer *w)
{
    uint32_t expect = w->pid;

    if (w->hdr)
        __atomic_compare_exchange_n(&w->hdr->producer, &expect, 0, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    w->hdr = NULL;
    w->recs = NULL;
}

void
ppf_metrics_reader_init(struct ppf_metrics_reader *r, const void *mem, uint32_t nrecs)
{
    memset(r, 0, sizeof *r);
    r->mem = mem;
    r->nrecs = nrecs;
}

int
ppf_metrics_rec_check(const struct ppf_metrics_rec *rec)
{
    if (rec->flags & ~PPF_MREC__KNOWN)
        return -1;
    if (rec->interval_ms == 0 || rec->time_ns == 0)
        return -1;
    if (rec->cpu_busy > PPF_MREC_MAX_PERMILLE || rec->mem_used > PPF_MREC_MAX_PERMILLE)
        return -1;
    if (rec->psi_cpu > PPF_MREC_MAX_PSI || rec->psi_mem > PPF_MREC_MAX_PSI ||
        rec->psi_io > PPF_MREC_MAX_PSI)
        return -1;
    return 0;
}

/* Copies record seq out under its seqlock.  1 copied, 0 torn (odd or
 * changing through every retry). */
static int
reader_copy(const struct ppf_metrics_reader *r, uint64_t seq, struct ppf_metrics_rec *out)
{
    const struct ppf_metrics_rec *src = (const struct ppf_metrics_rec *)
        (r->mem + PPF_METRICS_HDR_SIZE + (seq & (r->nrecs - 1)) * PPF_METRICS_REC_SIZE);

    for (int i = 0; i < READ_RETRIES; i++) {
        uint32_t s1 = __atomic_load_n(&src->seq, __ATOMIC_ACQUIRE), s2;

        if (s1 & 1u)
            continue;
        memcpy(out, (const void *)src, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&src->seq, __ATOMIC_RELAXED);
        if (s1 == s2) {
            out->seq = s1;
            return 1;
        }
    }
    return 0;
}

int
ppf_metrics_reader_next(struct ppf_metrics_reader *r, struct ppf_metrics_rec *out)
{
    const struct ppf_metrics_hdr *hdr = (const struct ppf_metrics_hdr *)r->mem;
    uint64_t head;

    if (!r->mem || r->nrecs == 0)
        return 0;
    head = __atomic_load_n(&hdr->head, __ATOMIC_ACQUIRE);
    if (head < r->tail) {
        r->resyncs++;
        r->tail = head;
        return 0;
    }
    if (head - r->tail > r->nrecs) {
        r->dropped += head - r->nrecs - r->tail;
        r->tail = head - r->nrecs;
    }
    while (r->tail != head) {
        uint64_t seq = r->tail++;

        if (!reader_copy(r, seq, out)) {
            r->invalid++;
            continue;
        }
        if (out->index > seq && out->index - seq >= r->nrecs &&
            (out->index - seq) % r->nrecs == 0) {
            r->dropped++;       /* the producer lapped us on this slot */
            continue;
        }
        if (out->index != seq || ppf_metrics_rec_check(out) < 0) {
            r->invalid++;
            continue;
        }
        r->records++;
        return 1;
    }
    return 0;
}

/* cmocka tests for the metrics ring (common/metrics.c, protocol §6) and the
 * /proc parsers of ppfd's sampler (plugin/metrics.c): writer and reader on
 * a plain buffer, wraparound, overflow drop counting, a half-written
 * record, hostile header and record values.  No device, no files.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "plugin/metrics.h"

#define NRECS 8

static uint8_t ring[PPF_METRICS_HDR_SIZE + NRECS * PPF_METRICS_REC_SIZE];

static void
mkrec(struct ppf_metrics_rec *r, uint32_t i)
{
    memset(r, 0, sizeof *r);
    r->time_ns = 1000000000ull + i;
    r->interval_ms = 100;
    r->cpu_busy = (uint16_t)(i % 1001);
    r->mem_used = 500;
    r->flags = PPF_MREC_CPU | PPF_MREC_MEMORY;
}

static int
setup(void **state)
{
    (void)state;
    memset(ring, 0, sizeof ring);
    return ppf_metrics_ring_init(ring, sizeof ring, NRECS);
}

static void
attach(struct ppf_metrics_writer *w)
{
    uint32_t holder;
    char why[256];

    assert_int_equal(ppf_metrics_writer_attach(w, ring, sizeof ring, 1234, &holder, why,
                                               sizeof why), 0);
}

static void
test_sizes(void **state)
{
    (void)state;
    assert_int_equal(ppf_metrics_ring_size(64), 128 + 64 * 128);
    assert_int_equal(ppf_metrics_ring_fit(ppf_metrics_ring_size(64)), 64);
    assert_int_equal(ppf_metrics_ring_fit(ppf_metrics_ring_size(64) + 127), 64);
    assert_int_equal(ppf_metrics_ring_fit(100), 0);
    assert_int_equal(ppf_metrics_ring_init(ring, sizeof ring, 6), -1);
    assert_int_equal(ppf_metrics_ring_init(ring, sizeof ring, 16), -1);
}

static void
test_round_trip_wrap(void **state)
{
    struct ppf_metrics_writer w;
    struct ppf_metrics_reader r;
    struct ppf_metrics_rec in, out;

    (void)state;
    attach(&w);
    ppf_metrics_reader_init(&r, ring, NRECS);
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 0);
    /* five laps, reading as we go: nothing dropped */
    for (uint32_t i = 0; i < 5 * NRECS; i++) {
        mkrec(&in, i);
        assert_int_equal(ppf_metrics_writer_put(&w, &in), 0);
        if (i % 3 == 2 || i == 5 * NRECS - 1)
            while (ppf_metrics_reader_next(&r, &out) == 1) {
                assert_int_equal(out.index, r.tail - 1);
                assert_int_equal(out.time_ns, 1000000000ull + out.index);
                assert_int_equal(out.seq % 2, 0);
            }
    }
    assert_int_equal(r.records, 5 * NRECS);
    assert_int_equal(r.dropped, 0);
    assert_int_equal(r.invalid, 0);
    assert_int_equal(((struct ppf_metrics_hdr *)ring)->head, 5 * NRECS);
    ppf_metrics_writer_detach(&w);
    assert_int_equal(((struct ppf_metrics_hdr *)ring)->producer, 0);
}

static void
test_overflow_drops_oldest(void **state)
{
    struct ppf_metrics_writer w;
    struct ppf_metrics_reader r;
    struct ppf_metrics_rec in, out;
    uint64_t first = 0;
    int n = 0;

    (void)state;
    attach(&w);
    ppf_metrics_reader_init(&r, ring, NRECS);
    for (uint32_t i = 0; i < NRECS + 5; i++) {
        mkrec(&in, i);
        ppf_metrics_writer_put(&w, &in);
    }
    while (ppf_metrics_reader_next(&r, &out) == 1) {
        if (n++ == 0)
            first = out.index;
    }
    assert_int_equal(n, NRECS);
    assert_int_equal(first, 5);
    assert_int_equal(r.dropped, 5);
    assert_int_equal(r.records, NRECS);
}

static void
test_torn_record(void **state)
{
    struct ppf_metrics_writer w;
    struct ppf_metrics_reader r;
    struct ppf_metrics_rec in, out;
    struct ppf_metrics_rec *slot;

    (void)state;
    attach(&w);
    ppf_metrics_reader_init(&r, ring, NRECS);
    for (uint32_t i = 0; i < 3; i++) {
        mkrec(&in, i);
        ppf_metrics_writer_put(&w, &in);
    }
    /* record 1 half written: odd sequence word, as if the writer died in it */
    slot = (struct ppf_metrics_rec *)(ring + PPF_METRICS_HDR_SIZE + 1 * PPF_METRICS_REC_SIZE);
    slot->seq |= 1u;
    slot->cpu_busy = 0xffff;
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 1);
    assert_int_equal(out.index, 0);
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 1);
    assert_int_equal(out.index, 2);         /* record 1 skipped */
    assert_int_equal(r.invalid, 1);
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 0);
    /* the writer recovers the slot on its next lap */
    for (uint32_t i = 3; i < NRECS + 2; i++) {
        mkrec(&in, i);
        ppf_metrics_writer_put(&w, &in);
    }
    while (ppf_metrics_reader_next(&r, &out) == 1)
        ;
    assert_int_equal(r.records, 2 + NRECS - 1);
    assert_int_equal(r.invalid, 1);
    assert_int_equal(slot->seq % 2, 0);
}

static void
test_hostile_records(void **state)
{
    struct ppf_metrics_writer w;
    struct ppf_metrics_reader r;
    struct ppf_metrics_rec in, out;
    struct ppf_metrics_hdr *h = (struct ppf_metrics_hdr *)ring;
    struct ppf_metrics_rec *recs = (struct ppf_metrics_rec *)(ring + PPF_METRICS_HDR_SIZE);

    (void)state;
    attach(&w);
    ppf_metrics_reader_init(&r, ring, NRECS);
    mkrec(&in, 0);
    in.cpu_busy = 1001;                     /* out of range */
    ppf_metrics_writer_put(&w, &in);
    mkrec(&in, 1);
    in.psi_io = 10001;
    ppf_metrics_writer_put(&w, &in);
    mkrec(&in, 2);
    in.flags = 0x80000000u;                 /* unknown flag */
    ppf_metrics_writer_put(&w, &in);
    mkrec(&in, 3);
    ppf_metrics_writer_put(&w, &in);
    recs[3].index = 77;                     /* wrong sequence in the slot */
    mkrec(&in, 4);
    ppf_metrics_writer_put(&w, &in);
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 1);
    assert_int_equal(out.index, 4);
    assert_int_equal(r.invalid, 4);

    /* head far beyond: at most one ring is looked at, the rest counted dropped */
    h->head = UINT64_MAX - 3;
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 0);
    assert_int_equal(r.tail, UINT64_MAX - 3);
    assert_true(r.dropped > 0);
    /* head going backwards: resynchronised, nothing read */
    h->head = 2;
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 0);
    assert_int_equal(r.resyncs, 1);
    assert_int_equal(r.tail, 2);
    /* a reader with no ring never touches memory */
    ppf_metrics_reader_init(&r, NULL, NRECS);
    assert_int_equal(ppf_metrics_reader_next(&r, &out), 0);
}

static void
test_hostile_header(void **state)
{
    struct ppf_metrics_writer w, w2;
    struct ppf_metrics_hdr *h = (struct ppf_metrics_hdr *)ring;
    struct ppf_metrics_rec in;
    uint32_t holder;
    char why[256];

    (void)state;
    h->nrecs = 6;
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, sizeof ring, 1, &holder, why,
                                               sizeof why), -1);
    h->nrecs = NRECS * 2;                   /* does not fit */
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, sizeof ring, 1, &holder, why,
                                               sizeof why), -1);
    h->nrecs = NRECS;
    h->magic = 0;
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, sizeof ring, 1, &holder, why,
                                               sizeof why), -1);
    h->magic = PPF_METRICS_MAGIC;
    h->rec_size = 64;
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, sizeof ring, 1, &holder, why,
                                               sizeof why), -1);
    h->rec_size = PPF_METRICS_REC_SIZE;
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, 64, 1, &holder, why, sizeof why), -1);

    /* one producer: a second is refused, may steal, and the first then stops */
    assert_int_equal(ppf_metrics_writer_attach(&w, ring, sizeof ring, 100, &holder, why,
                                               sizeof why), 0);
    mkrec(&in, 0);
    assert_int_equal(ppf_metrics_writer_put(&w, &in), 0);
    assert_int_equal(ppf_metrics_writer_attach(&w2, ring, sizeof ring, 200, &holder, why,
                                               sizeof why), -2);
    assert_int_equal(holder, 100);
    assert_int_equal(ppf_metrics_writer_steal(&w2, holder), 0);
    assert_int_equal(w2.head, 1);           /* continues the sequence */
    assert_int_equal(ppf_metrics_writer_put(&w, &in), -1);
    assert_int_equal(ppf_metrics_writer_put(&w2, &in), 0);
    ppf_metrics_writer_detach(&w);          /* not ours any more: leaves it */
    assert_int_equal(h->producer, 200);
    ppf_metrics_writer_detach(&w2);
    assert_int_equal(h->producer, 0);
}

static void
test_parsers(void **state)
{
    uint64_t total, idle, a, b;
    uint16_t psi;

    (void)state;
    assert_int_equal(ppf_parse_proc_stat("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4\n",
                                         &total, &idle), 0);
    assert_int_equal(total, 980);
    assert_int_equal(idle, 820);
    assert_int_equal(ppf_parse_proc_stat("intr 1 2 3\n", &total, &idle), -1);
    assert_int_equal(ppf_parse_meminfo("MemTotal:  1000 kB\nMemFree: 100 kB\n"
                                       "MemAvailable:  250 kB\n", &a, &b), 0);
    assert_int_equal(a, 1000);
    assert_int_equal(b, 250);
    assert_int_equal(ppf_parse_meminfo("MemFree: 1 kB\n", &a, &b), -1);
    assert_int_equal(ppf_parse_psi_avg10("some avg10=12.34 avg60=0.00 avg300=0.00 total=1\n"
                                         "full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n",
                                         &psi), 0);
    assert_int_equal(psi, 1234);
    assert_int_equal(ppf_parse_psi_avg10("garbage", &psi), -1);
    assert_int_equal(ppf_parse_net_dev(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo: 5000 10 0 0 0 0 0 0 5000 10 0 0 0 0 0 0\n"
        "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
        "  eth1: 1 1 0 0 0 0 0 0 2 2 0 0 0 0 0 0\n", &a, &b), 0);
    assert_int_equal(a, 1001);
    assert_int_equal(b, 2002);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sizes, setup),
        cmocka_unit_test_setup(test_round_trip_wrap, setup),
        cmocka_unit_test_setup(test_overflow_drops_oldest, setup),
        cmocka_unit_test_setup(test_torn_record, setup),
        cmocka_unit_test_setup(test_hostile_records, setup),
        cmocka_unit_test_setup(test_hostile_header, setup),
        cmocka_unit_test(test_parsers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cmocka tests for the protocol codecs (common/protocol.c): attribute
 * payloads, SQE/CQE checks, window layout and validation of an untrusted
 * register page, names.  Pure logic: no device, no files.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ppf/protocol.h"

static void
test_attr_round_trip(void **state)
{
    uint8_t buf[256];
    struct ppf_attr_writer w;
    struct ppf_attr_reader r;
    struct ppf_attr a;
    uint32_t u32;
    uint64_t u64;
    char s[64];

    (void)state;
    ppf_attr_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ppf_attr_put_u32(&w, 1, 0xdeadbeef), 0);
    assert_int_equal(ppf_attr_put_u64(&w, 2, 0x0123456789abcdefull), 0);
    assert_int_equal(ppf_attr_put_str(&w, 3, "hello"), 0);
    assert_int_equal(ppf_attr_put_str(&w, 4, ""), 0);
    assert_int_equal(ppf_attr_put(&w, 99, "xyz", 3), 0);
    assert_false(w.overflow);
    assert_int_equal(w.len % 4, 0);
    assert_int_equal(w.len, 8 + 12 + 12 + 4 + 8);

    ppf_attr_reader_init(&r, buf, w.len);
    assert_int_equal(ppf_attr_next(&r, &a), 1);
    assert_int_equal(a.type, 1);
    assert_int_equal(ppf_attr_get_u32(&a, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(ppf_attr_get_u64(&a, &u64), -1);   /* wrong width */
    assert_int_equal(ppf_attr_next(&r, &a), 1);
    assert_int_equal(ppf_attr_get_u64(&a, &u64), 0);
    assert_true(u64 == 0x0123456789abcdefull);
    assert_int_equal(ppf_attr_next(&r, &a), 1);
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), 0);
    assert_string_equal(s, "hello");
    assert_int_equal(ppf_attr_get_str(&a, s, 5), -1);   /* no room for the NUL */
    assert_int_equal(ppf_attr_next(&r, &a), 1);
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), 0);
    assert_string_equal(s, "");
    assert_int_equal(ppf_attr_next(&r, &a), 1);          /* unknown type: still readable */
    assert_int_equal(a.type, 99);
    assert_int_equal(a.len, 3);
    assert_int_equal(ppf_attr_next(&r, &a), 0);
    assert_int_equal(ppf_attr_next(&r, &a), 0);
}

static void
test_attr_overflow(void **state)
{
    uint8_t buf[16];
    struct ppf_attr_writer w;
    char big[PPF_ATTR_MAX_STR + 2];

    (void)state;
    ppf_attr_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ppf_attr_put_u64(&w, 1, 1), 0);     /* 12 bytes */
    assert_int_equal(ppf_attr_put_u32(&w, 2, 1), -1);    /* 8 more do not fit */
    assert_true(w.overflow);
    assert_int_equal(w.len, 12);
    /* once overflowed, nothing more is written even if it would fit */
    assert_int_equal(ppf_attr_put(&w, 3, NULL, 0), -1);

    ppf_attr_writer_init(&w, NULL, 0);
    assert_int_equal(ppf_attr_put(&w, 1, NULL, 0), -1);

    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint8_t large[8192];
    ppf_attr_writer_init(&w, large, sizeof large);
    assert_int_equal(ppf_attr_put_str(&w, 1, big), -1);
    ppf_attr_writer_init(&w, large, sizeof large);
    assert_int_equal(ppf_attr_put(&w, 1, large, 70000), -1);
}

static void
test_attr_malformed(void **state)
{
    uint8_t buf[64];
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct ppf_attr_hdr h;

    (void)state;
    /* truncated header */
    memset(buf, 0, sizeof buf);
    ppf_attr_reader_init(&r, buf, 3);
    assert_int_equal(ppf_attr_next(&r, &a), -1);
    /* value longer than the payload */
    h.type = 1;
    h.len = 60;
    memcpy(buf, &h, sizeof h);
    ppf_attr_reader_init(&r, buf, 32);
    assert_int_equal(ppf_attr_next(&r, &a), -1);
    /* unpadded end: len 3 needs 4 bytes of value */
    h.len = 3;
    memcpy(buf, &h, sizeof h);
    ppf_attr_reader_init(&r, buf, 7);
    assert_int_equal(ppf_attr_next(&r, &a), -1);
    /* nonzero padding */
    buf[7] = 1;
    ppf_attr_reader_init(&r, buf, 8);
    assert_int_equal(ppf_attr_next(&r, &a), -1);
    /* huge length field */
    h.len = 0xffff;
    memcpy(buf, &h, sizeof h);
    ppf_attr_reader_init(&r, buf, sizeof buf);
    assert_int_equal(ppf_attr_next(&r, &a), -1);
}

static void
test_attr_string_content(void **state)
{
    char s[16];
    struct ppf_attr a = { .type = 1 };

    (void)state;
    a.value = (const uint8_t *)"ab\0cd";
    a.len = 5;
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), -1);  /* embedded NUL */
    a.value = (const uint8_t *)"ab\ncd";
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), -1);  /* control byte */
    a.value = (const uint8_t *)"ab\x7f" "cd";
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), -1);
    a.value = (const uint8_t *)"caf\xc3\xa9";
    assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), 0);   /* UTF-8 is fine */
    assert_string_equal(s, "caf\xc3\xa9");
    assert_int_equal(ppf_attr_get_str(&a, s, 0), -1);
}

static void
test_sqe_check(void **state)
{
    struct ppf_sqe e;

    (void)state;
    memset(&e, 0, sizeof e);
    e.opcode = PPF_OP_NOP;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_SUCCESS);
    e.cid = 32;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_INVALID_CID);
    e.cid = 31;
    e.flags = 1;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_INVALID_FIELD);
    e.flags = 0;
    e.rsvd = 7;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_INVALID_FIELD);
    e.rsvd = 0;
    e.in_len = 65537;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_DATA_TOO_LONG);
    e.in_len = 65536;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_SUCCESS);
    e.out_cap = 0xffffffffu;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_DATA_TOO_LONG);
    e.out_cap = 0;
    e.opcode = PPF_OP_CONFIGURE;
    assert_int_equal(ppf_sqe_check(&e, 1, 32, 65536), PPF_SC_ADMIN_ONLY);
    assert_int_equal(ppf_sqe_check(&e, PPF_ADMIN_QID, 32, 65536), PPF_SC_SUCCESS);
    e.opcode = PPF_OP_EVICT;
    assert_int_equal(ppf_sqe_check(&e, 5, 32, 65536), PPF_SC_ADMIN_ONLY);
}

static void
test_cqe_check(void **state)
{
    struct ppf_cqe c;

    (void)state;
    memset(&c, 0, sizeof c);
    c.status = 1;
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), 0);
    c.cid = 32;
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), -1);
    c.cid = 0;
    c.out_len = 65537;
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), -1);
    c.out_len = 0;
    c.sq_head = 64;
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), -1);
    c.sq_head = 0;
    c.status = (uint16_t)(PPF_SC__MAX << 1) | 1;
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), -1);
    c.status = (uint16_t)(PPF_SC_NOT_FOUND << 1);
    assert_int_equal(ppf_cqe_check(&c, 32, 65536, 64), 0);
    assert_int_equal(PPF_CQE_SC(c.status), PPF_SC_NOT_FOUND);
    assert_int_equal(PPF_CQE_PHASE(c.status), 0);
}

static void
test_layout(void **state)
{
    struct ppf_regs r;
    uint64_t size;

    (void)state;
    size = ppf_window_layout(&r, 17, 64, 32, 65536, 0);
    assert_true(size > 0);
    assert_int_equal(r.magic, PPF_MAGIC);
    assert_int_equal(r.qp_regs_off, 4096);
    assert_int_equal(r.sq_off % 4096, 0);
    assert_true(r.sq_off >= r.qp_regs_off + 17 * sizeof(struct ppf_qp_regs));
    assert_true(r.cq_off >= r.sq_off + 17 * 64 * sizeof(struct ppf_sqe));
    assert_true(r.data_off >= r.cq_off + 17 * 64 * sizeof(struct ppf_cqe));
    assert_true(size == r.data_off + 17ull * 32 * 65536);
    assert_true(r.window_size == size);
    /* with a metrics ring */
    size = ppf_window_layout(&r, 2, 4, 3, 4096, 10000);
    assert_true(r.metrics_off >= r.data_off + 2 * 3 * 4096);
    assert_true(size >= r.metrics_off + 10000);
    /* out of range */
    assert_true(ppf_window_layout(&r, 1, 64, 32, 65536, 0) == 0);
    assert_true(ppf_window_layout(&r, 65, 64, 32, 65536, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 48, 32, 65536, 0) == 0);   /* not 2^n */
    assert_true(ppf_window_layout(&r, 17, 2, 1, 65536, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 8192, 32, 65536, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 64, 64, 65536, 0) == 0);   /* slots >= qsize */
    assert_true(ppf_window_layout(&r, 17, 64, 0, 65536, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 64, 32, 5000, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 64, 32, 2u << 20, 0) == 0);
    assert_true(ppf_window_layout(&r, 17, 64, 32, 65536, 2ull << 30) == 0);
}

static void
test_window_check(void **state)
{
    struct ppf_regs r, bad;
    uint64_t size = ppf_window_layout(&r, 4, 16, 8, 4096, 0);
    char why[256];

    (void)state;
    assert_int_equal(ppf_window_check(&r, size, why, sizeof why), 0);
    assert_int_equal(ppf_window_check(&r, size - 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "outside"));
    assert_int_equal(ppf_window_check(&r, 100, why, sizeof why), -1);

    bad = r;
    bad.magic = 0x12345678;
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), -1);
    assert_non_null(strstr(why, "magic"));

    bad = r;
    bad.version = (2u << 16);
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), -1);
    assert_non_null(strstr(why, "version"));
    bad.version = PPF_VERSION + 1;      /* newer minor: fine */
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), 0);

    bad = r;
    bad.num_qps = 1000;
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), -1);
    assert_non_null(strstr(why, "geometry"));

    bad = r;
    bad.data_off += 4096;
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), -1);

    bad = r;
    bad.cq_off = 0xffffffffffff0000ull;
    assert_int_equal(ppf_window_check(&bad, size, why, sizeof why), -1);

    bad = r;
    bad.slot_size = 1u << 30;
    assert_int_equal(ppf_window_check(&bad, UINT64_MAX, why, sizeof why), -1);
}

static void
test_names(void **state)
{
    (void)state;
    for (unsigned i = 0; i < PPF_SC__MAX; i++) {
        assert_non_null(ppf_status_name(i));
        assert_string_not_equal(ppf_status_name(i), "unknown-status");
        assert_string_not_equal(ppf_status_text(i), "unknown status");
    }
    assert_string_equal(ppf_status_name(999), "unknown-status");
    assert_string_equal(ppf_opcode_name(PPF_OP_DEPLOY), "DEPLOY");
    assert_string_equal(ppf_opcode_name(0xff), "UNKNOWN");
    for (unsigned s = 1; s < PPF_STAT__MAX; s++)
        assert_non_null(ppf_stat_name(s));
    assert_null(ppf_stat_name(0));
    assert_null(ppf_stat_name(PPF_STAT__MAX));
}

static void
test_claim_word(void **state)
{
    uint64_t c = PPF_CLAIM_MAKE(PPF_CLAIM_CLAIMED, 0x3fffffff, 0xfffffffe);

    (void)state;
    assert_int_equal(PPF_CLAIM_STATE(c), PPF_CLAIM_CLAIMED);
    assert_int_equal(PPF_CLAIM_GEN(c), 0x3fffffff);
    assert_int_equal(PPF_CLAIM_OWNER(c), 0xfffffffe);
    /* generation wraps without touching the state bits */
    c = PPF_CLAIM_MAKE(PPF_CLAIM_FREE, 0x3fffffffull + 1, 7);
    assert_int_equal(PPF_CLAIM_STATE(c), PPF_CLAIM_FREE);
    assert_int_equal(PPF_CLAIM_GEN(c), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attr_round_trip),
        cmocka_unit_test(test_attr_overflow),
        cmocka_unit_test(test_attr_malformed),
        cmocka_unit_test(test_attr_string_content),
        cmocka_unit_test(test_sqe_check),
        cmocka_unit_test(test_cqe_check),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_window_check),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_claim_word),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

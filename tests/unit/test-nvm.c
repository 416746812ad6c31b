/* cmocka tests for the NVM pattern store: the payload codec's bounds
 * checks, a save/load round trip that gives the same predictions, the
 * store_size bound, and damaged stores (truncated, corrupted, another
 * version, garbage): each is reported, set aside, and the engine starts
 * empty, never crashes.  Works in a private temporary directory.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

static char dir[256];
static char path[300];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/ppf-nvm.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/patterns", dir);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct ppf_engine *
trained(enum ppf_policy_algorithm a, uint64_t store_size)
{
    struct ppf_engine_config c;
    struct ppf_engine *e;

    ppf_engine_config_default(&c);
    c.algorithm = a;
    if (store_size)
        c.store_size = store_size;
    e = ppf_engine_new(&c);
    assert_non_null(e);
    for (int i = 0; i < 2000; i++) {
        char n[32], t[16];
        uint32_t id, tid;
        struct ppf_engine_event ev;

        snprintf(n, sizeof n, "img-%d", i % 97);
        snprintf(t, sizeof t, "t-%d", i % 5);
        assert_int_equal(ppf_engine_intern(e, n, t, &id, &tid), 0);
        ev = (struct ppf_engine_event){ 60.0 * i + (i % 97) * 7, id, tid, 1u << 30 };
        assert_int_equal(ppf_engine_observe(e, &ev), 0);
        if (i % 50 == 0) {
            struct ppf_metrics_sample s = { ev.time, 2, { (double)(i % 3), 1 } };

            assert_int_equal(ppf_engine_metrics(e, &s), 0);
        }
    }
    return e;
}

static void
test_codec_bounds(void **state)
{
    struct ppf_nvm_writer w;
    struct ppf_nvm_reader r;
    uint32_t u;
    uint64_t v;
    double d;
    char s[8];

    (void)state;
    ppf_nvm_writer_init(&w, 0);
    ppf_nvm_put_u32(&w, 7);
    ppf_nvm_put_u64(&w, 1ull << 40);
    ppf_nvm_put_f64(&w, 2.5);
    ppf_nvm_put_str(&w, "abc");
    ppf_nvm_put_u32(&w, 1000);          /* a string length that lies */
    assert_int_equal(w.error, 0);
    ppf_nvm_reader_init(&r, w.buf, w.len);
    assert_int_equal(ppf_nvm_get_u32(&r, &u), 0);
    assert_int_equal(u, 7);
    assert_int_equal(ppf_nvm_get_u64(&r, &v), 0);
    assert_true(v == 1ull << 40);
    assert_int_equal(ppf_nvm_get_f64(&r, &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(ppf_nvm_get_str(&r, s, sizeof s), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(ppf_nvm_get_str(&r, s, sizeof s), -1);
    assert_int_equal(ppf_nvm_get_u32(&r, &u), -1);  /* sticky error */
    ppf_nvm_writer_free(&w);

    ppf_nvm_writer_init(&w, 8);         /* limit */
    ppf_nvm_put_u64(&w, 1);
    ppf_nvm_put_u8(&w, 1);
    assert_int_equal(w.error, E2BIG);
    ppf_nvm_writer_free(&w);
    assert_true(ppf_nvm_crc32("123456789", 9) == 0xcbf43926u);
}

static void
test_round_trip(void **state)
{
    struct ppf_engine *a = trained(PPF_ALGO_ENSEMBLE, 0), *b;
    struct ppf_engine_config c;
    struct ppf_prediction pa[32], pb[32];
    double now = 60.0 * 2000;
    size_t na, nb;

    (void)state;
    assert_int_equal(ppf_engine_save(a, path), 0);
    ppf_engine_config_default(&c);
    b = ppf_engine_new(&c);
    assert_int_equal(ppf_engine_load(b, path), 0);
    /* the same names give the same outlook */
    for (int i = 0; i < 97; i++) {
        char n[32];
        uint32_t ia, ib;
        double p1, p2, v1, v2;

        snprintf(n, sizeof n, "img-%d", i);
        assert_int_equal(ppf_engine_intern(a, n, NULL, &ia, NULL), 0);
        assert_int_equal(ppf_engine_intern(b, n, NULL, &ib, NULL), 0);
        v1 = ppf_engine_score(a, ia, now, &p1);
        v2 = ppf_engine_score(b, ib, now, &p2);
        assert_true(fabs(v1 - v2) < 1e-6);
        assert_true(fabs(p1 - p2) < 1e-6);
    }
    na = ppf_engine_predict(a, now, pa, 32);
    nb = ppf_engine_predict(b, now, pb, 32);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(ppf_engine_image_name(a, pa[i].image),
                            ppf_engine_image_name(b, pb[i].image));
    /* a missing store is an empty model, not an error */
    unlink(path);
    assert_int_equal(ppf_engine_load(b, path), 0);
    ppf_engine_free(a);
    ppf_engine_free(b);
}

static void
test_store_size_bound(void **state)
{
    struct ppf_engine *a = trained(PPF_ALGO_ENSEMBLE, 8192), *b;
    struct ppf_engine_config c;
    struct ppf_engine_stats st;
    struct stat sb;

    (void)state;
    assert_int_equal(ppf_engine_save(a, path), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size <= 8192);
    ppf_engine_config_default(&c);
    c.store_size = 8192;
    b = ppf_engine_new(&c);
    assert_int_equal(ppf_engine_load(b, path), 0);
    ppf_engine_get_stats(b, &st);
    assert_true(st.images > 0 && st.images < 97);  /* the most evidence kept */
    ppf_engine_free(a);
    ppf_engine_free(b);
}

static int
set_aside_exists(void)
{
    char p[400];

    for (int n = 1; n < 10; n++) {
        snprintf(p, sizeof p, "%s.corrupt-%d", path, n);
        if (access(p, F_OK) == 0)
            return 1;
    }
    return 0;
}

static void
damage_case(void (*damage)(void))
{
    struct ppf_engine *a = trained(PPF_ALGO_ENSEMBLE, 0), *b;
    struct ppf_engine_config c;
    struct ppf_engine_stats st;

    assert_int_equal(ppf_engine_save(a, path), 0);
    damage();
    ppf_engine_config_default(&c);
    b = ppf_engine_new(&c);
    assert_int_equal(ppf_engine_load(b, path), 1);
    ppf_engine_get_stats(b, &st);
    assert_int_equal(st.images, 0);                 /* empty model */
    assert_int_equal(access(path, F_OK), -1);       /* set aside ... */
    assert_true(set_aside_exists());                /* ... not deleted */
    /* and the next save works */
    assert_int_equal(ppf_engine_save(a, path), 0);
    assert_int_equal(ppf_engine_load(b, path), 0);
    ppf_engine_free(a);
    ppf_engine_free(b);
    {
        char cmd[700];

        snprintf(cmd, sizeof cmd, "rm -f '%s'.corrupt-*", path);
        assert_int_equal(system(cmd), 0);
    }
}

static void
truncate_it(void)
{
    struct stat sb;

    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
}

static void
truncate_header(void)
{
    assert_int_equal(truncate(path, 10), 0);
}

static void
flip_byte(void)
{
    int fd = open(path, O_RDWR);
    unsigned char ch;

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &ch, 1, 100), 1);
    ch ^= 0x40;
    assert_int_equal(pwrite(fd, &ch, 1, 100), 1);
    close(fd);
}

static void
other_version(void)
{
    int fd = open(path, O_RDWR);
    unsigned char v = 99;

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &v, 1, 4), 1);
    close(fd);
}

static void
garbage(void)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs("this is not a pattern store at all, just text\n", fp);
    fclose(fp);
}

static void
test_truncated(void **state)
{
    (void)state;
    damage_case(truncate_it);
    damage_case(truncate_header);
}

static void
test_corrupted(void **state)
{
    (void)state;
    damage_case(flip_byte);
}

static void
test_other_version(void **state)
{
    (void)state;
    damage_case(other_version);
    damage_case(garbage);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_bounds),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_store_size_bound),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_other_version),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

/* cmocka tests for the engine's models, the buffer model, the scheduler and
 * the Image Prediction Table, on small hand-made sequences: a strict daily
 * pattern is predicted before it happens; after A, a learned A->B chain
 * prefetches B; decay forgets an abandoned pattern; the workload model
 * links a metric state to its images; quotas, pins and public images.
 * Pure logic: no files, no clock.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "peripheral/bufmodel.h"
#include "peripheral/engine.h"
#include "peripheral/sched.h"
#include "peripheral/table.h"

#define DAY 86400.0
#define GiB (1ull << 30)

static struct ppf_engine *
new_engine(enum ppf_policy_algorithm a)
{
    struct ppf_engine_config c;
    struct ppf_engine *e;

    ppf_engine_config_default(&c);
    c.algorithm = a;
    e = ppf_engine_new(&c);
    assert_non_null(e);
    return e;
}

static uint32_t
img(struct ppf_engine *e, const char *name, const char *tenant)
{
    uint32_t id, tid;

    assert_int_equal(ppf_engine_intern(e, name, tenant, &id, &tid), 0);
    return id;
}

static void
observe(struct ppf_engine *e, double t, uint32_t image)
{
    struct ppf_engine_event ev = { t, image, ppf_engine_image_tenant(e, image), GiB };

    assert_int_equal(ppf_engine_observe(e, &ev), 0);
}

static int
predicted(struct ppf_engine *e, double now, uint32_t image, double *p)
{
    struct ppf_prediction out[64];
    size_t n = ppf_engine_predict(e, now, out, 64);

    for (size_t i = 0; i < n; i++)
        if (out[i].image == image) {
            if (p)
                *p = out[i].probability;
            return 1;
        }
    return 0;
}

static void
test_strtab(void **state)
{
    struct ppf_strtab *t = ppf_strtab_new();
    uint32_t a, b, c;

    (void)state;
    assert_int_equal(ppf_strtab_intern(t, "alpha", 5, &a), 0);
    assert_int_equal(ppf_strtab_intern(t, "beta", 4, &b), 0);
    assert_int_equal(ppf_strtab_intern(t, "alpha", 5, &c), 0);
    assert_int_equal(a, c);
    assert_int_not_equal(a, b);
    assert_string_equal(ppf_strtab_name(t, b), "beta");
    assert_int_equal(ppf_strtab_intern(t, "", 0, &c), -1);
    assert_int_equal(ppf_strtab_find(t, "gamma", 5, &c), -1);
    for (int i = 0; i < 5000; i++) {
        char n[32];

        snprintf(n, sizeof n, "img-%d", i);
        assert_int_equal(ppf_strtab_intern(t, n, strlen(n), &c), 0);
    }
    assert_int_equal(ppf_strtab_count(t), 5002);
    assert_int_equal(ppf_strtab_find(t, "img-4321", 8, &c), 0);
    assert_string_equal(ppf_strtab_name(t, c), "img-4321");
    ppf_strtab_free(t);
}

/* A job at 10:00 every day, with noise around it: on day 6 at 09:59
 * (before it happens) it is predicted, by the seasonal model, the
 * histogram model and the ensemble. */
static void
daily_case(enum ppf_policy_algorithm a)
{
    struct ppf_engine *e = new_engine(a);
    uint32_t job = img(e, "img-daily", "t-1"), noise[8];
    double p = 0;

    for (int i = 0; i < 8; i++) {
        char n[16];

        snprintf(n, sizeof n, "img-n%d", i);
        noise[i] = img(e, n, "t-2");
    }
    for (int d = 0; d < 6; d++) {
        for (int i = 0; i < 8; i++)
            observe(e, d * DAY + 3600 * (1 + 0.9 * i), noise[i]);
        observe(e, d * DAY + 10 * 3600 + (d % 2 ? 5 : -5), job);
        for (int i = 0; i < 4; i++)
            observe(e, d * DAY + 3600 * (11 + 2.3 * i), noise[(i + d) % 8]);
    }
    ppf_engine_set_time_scale(e, 300);      /* a 5-minute prediction window */
    assert_false(predicted(e, 6 * DAY + 6 * 3600, job, NULL));     /* 06:00: not yet */
    assert_true(predicted(e, 6 * DAY + 10 * 3600 - 120, job, &p)); /* 09:58 */
    assert_true(p >= 0.5);
    ppf_engine_free(e);
}

static void
test_daily_seasonal(void **state)
{
    (void)state;
    daily_case(PPF_ALGO_SEASONAL);
}

static void
test_daily_histogram(void **state)
{
    (void)state;
    daily_case(PPF_ALGO_HISTOGRAM);
}

static void
test_daily_ensemble(void **state)
{
    (void)state;
    daily_case(PPF_ALGO_ENSEMBLE);
}

/* Tenant t-1 deploys A, then B 40 s later, at irregular times.  After A,
 * the markov model predicts B, and the scheduler prefetches it. */
static void
test_markov_chain(void **state)
{
    struct ppf_engine *e = new_engine(PPF_ALGO_MARKOV);
    uint32_t a = img(e, "img-a", "t-1"), b = img(e, "img-b", "t-1");
    uint32_t x = img(e, "img-x", "t-2");
    struct ppf_bufmodel_config bc = { 64 * GiB, PPF_EVICT_VALUE, 0 };
    struct ppf_bufmodel *buf;
    struct ppf_sched_config sc = { 1000000000ull, 1, PPF_PRIO_NORMAL, 0 };
    struct ppf_sched *s;
    struct ppf_sched_pick pick;
    double t = 0, p = 0;

    (void)state;
    for (int i = 0; i < 12; i++) {
        t += 1000 + 337 * (i % 5) + 91 * (i % 3);
        observe(e, t, a);
        observe(e, t + 40, b);
        observe(e, t + 200, x);
    }
    t += 5000;
    observe(e, t, a);
    buf = ppf_bufmodel_new(&bc);
    assert_non_null(buf);
    s = ppf_sched_new(&sc, e, buf);     /* window: 64GiB at 1GB/s = 68 s */
    assert_non_null(s);
    assert_true(predicted(e, t + 1, b, &p));
    assert_true(p >= 0.5);
    assert_int_equal(ppf_sched_next(s, t + 1, &pick), 1);
    assert_int_equal(pick.image, b);
    assert_non_null(ppf_bufmodel_find(buf, b));
    ppf_sched_free(s);
    ppf_bufmodel_free(buf);
    ppf_engine_free(e);
}

/* Decay: A->B learned long ago, A->C lately; after A, C wins and B fades. */
static void
test_markov_decay(void **state)
{
    struct ppf_engine_config c;
    struct ppf_engine *e;
    uint32_t a, b, cc;
    double t = 0, pb = 0, pc = 0;

    (void)state;
    ppf_engine_config_default(&c);
    c.algorithm = PPF_ALGO_MARKOV;
    c.half_life = DAY;
    e = ppf_engine_new(&c);
    a = img(e, "img-a", "t-1");
    b = img(e, "img-b", "t-1");
    cc = img(e, "img-c", "t-1");
    for (int i = 0; i < 10; i++, t += 3000) {
        observe(e, t, a);
        observe(e, t + 20, b);
    }
    t += 10 * DAY;
    for (int i = 0; i < 3; i++, t += 3000) {
        observe(e, t, a);
        observe(e, t + 20, cc);
    }
    observe(e, t, a);
    ppf_engine_score(e, b, t + 1, &pb);
    ppf_engine_score(e, cc, t + 1, &pc);
    assert_true(pc >= 0.5);
    assert_true(pb < 0.05);
    ppf_engine_free(e);
}

/* Decay in the histogram model: a 5-minute job that stopped is no longer
 * expected after a few periods. */
static void
test_histogram_abandoned(void **state)
{
    struct ppf_engine *e = new_engine(PPF_ALGO_HISTOGRAM);
    uint32_t j = img(e, "img-5min", "t-1");
    double t = 0, p = 0;

    (void)state;
    for (int i = 0; i < 30; i++, t += 300)
        observe(e, t, j);
    t -= 300;
    ppf_engine_set_time_scale(e, 60);
    assert_true(predicted(e, t + 280, j, &p));
    assert_true(p >= 0.5);
    ppf_engine_score(e, j, t + 300 * 10 - 20, &p);
    assert_true(p < 0.05);
    assert_false(predicted(e, t + 300 * 10 - 20, j, NULL));
    ppf_engine_free(e);
}

/* The workload model: image X is deployed when the CPU is busy, Y when
 * idle; in a busy state X is predicted, not Y. */
static void
test_workload(void **state)
{
    struct ppf_engine *e = new_engine(PPF_ALGO_WORKLOAD);
    uint32_t x = img(e, "img-x", "t-1"), y = img(e, "img-y", "t-1");
    double t = 0, px = 0, py = 0;

    (void)state;
    /* let the quantile bins settle before anything is deployed */
    for (int k = 0; k < 200; k++, t += 60) {
        struct ppf_metrics_sample s = { t, 2, { k % 2 ? 91 : 6, 40 } };

        assert_int_equal(ppf_engine_metrics(e, &s), 0);
    }
    for (int round = 0; round < 20; round++) {
        int busy = round % 2;

        for (int k = 0; k < 10; k++, t += 60) {
            struct ppf_metrics_sample s = { t, 2, { busy ? 90 + k % 3 : 5 + k % 3, 40 } };

            assert_int_equal(ppf_engine_metrics(e, &s), 0);
            if (k % 3 == 1)
                observe(e, t + 1, busy ? x : y);
        }
    }
    {
        struct ppf_metrics_sample s = { t, 2, { 91, 40 } };

        assert_int_equal(ppf_engine_metrics(e, &s), 0);
    }
    ppf_engine_score(e, x, t + 1, &px);
    ppf_engine_score(e, y, t + 1, &py);
    assert_true(px > 0.5);
    assert_true(py < 0.01);
    assert_true(predicted(e, t + 1, x, NULL));
    assert_false(predicted(e, t + 1, y, NULL));
    ppf_engine_free(e);
}

/* Bounded memory: past max_images the least evidence goes. */
static void
test_bounded(void **state)
{
    struct ppf_engine_config c;
    struct ppf_engine *e;
    struct ppf_engine_stats st;

    (void)state;
    ppf_engine_config_default(&c);
    c.max_images = 100;
    e = ppf_engine_new(&c);
    for (int i = 0; i < 1000; i++) {
        char n[16];

        snprintf(n, sizeof n, "img-%d", i);
        observe(e, i, img(e, n, "t"));
    }
    ppf_engine_get_stats(e, &st);
    assert_true(st.images <= 100);
    assert_int_equal(st.evicted_images, 900);
    ppf_engine_free(e);
}

static double
fixed_value(void *ctx, const struct ppf_buf_entry *en, double now)
{
    const double *v = ctx;

    (void)now;
    return v[en->image];
}

static void
test_buf_quota_pin_public(void **state)
{
    struct ppf_bufmodel_config c = { 10 * GiB, PPF_EVICT_VALUE, 0 };
    struct ppf_bufmodel *b = ppf_bufmodel_new(&c);
    double v[16] = { 0 };
    struct ppf_buf_stats st;

    (void)state;
    assert_non_null(b);
    for (int i = 0; i < 16; i++)
        v[i] = i;
    ppf_bufmodel_set_callbacks(b, fixed_value, NULL, v);
    assert_int_equal(ppf_bufmodel_set_quota(b, 1, 4 * GiB), 0);
    /* tenant 1 fills its quota; a third image evicts its own lowest */
    assert_int_equal(ppf_bufmodel_admit(b, 1, 1, 2 * GiB, false, 100, 0), 0);
    assert_int_equal(ppf_bufmodel_admit(b, 2, 1, 2 * GiB, false, 100, 0), 0);
    assert_int_equal(ppf_bufmodel_ready(b, 1, 0), 0);
    assert_int_equal(ppf_bufmodel_ready(b, 2, 0), 0);
    /* tenant 2 (no quota) and a public image */
    assert_int_equal(ppf_bufmodel_admit(b, 8, 2, 2 * GiB, true, 100, 0), 0);
    assert_int_equal(ppf_bufmodel_ready(b, 8, 0), 0);
    assert_int_equal(ppf_bufmodel_admit(b, 9, PPF_BUF_PUBLIC, 2 * GiB, false, 100, 0), 0);
    assert_int_equal(ppf_bufmodel_ready(b, 9, 0), 0);
    assert_true(ppf_bufmodel_tenant_used(b, 1) == 4 * GiB);
    assert_int_equal(ppf_bufmodel_admit(b, 3, 1, 2 * GiB, false, 100, 1), 0);
    assert_null(ppf_bufmodel_find(b, 1));           /* its own lowest went */
    assert_non_null(ppf_bufmodel_find(b, 8));       /* not another tenant's */
    assert_true(ppf_bufmodel_tenant_used(b, 1) == 4 * GiB);
    /* a public image is charged once: to the capacity, no tenant */
    assert_int_equal(ppf_bufmodel_use(b, 9, 2), 1);
    assert_true(ppf_bufmodel_tenant_used(b, 2) == 2 * GiB);
    ppf_bufmodel_get_stats(b, &st);
    assert_true(st.used == 8 * GiB);
    /* pins: never evicted; only lower value evicted */
    assert_int_equal(ppf_bufmodel_pin(b, 2, true), 0);
    assert_int_equal(ppf_bufmodel_ready(b, 3, 1), 0);
    assert_int_equal(ppf_bufmodel_pin(b, 3, true), 0);
    assert_int_equal(ppf_bufmodel_pin(b, 8, true), 0);
    /* 4 GiB more: needs 2 GiB freed; only image 9 (value 9) is evictable */
    assert_int_equal(ppf_bufmodel_admit(b, 4, 2, 4 * GiB, true, 5, 2), -1);
    assert_int_equal(errno, ENOSPC);
    assert_non_null(ppf_bufmodel_find(b, 9));       /* nothing changed */
    assert_int_equal(ppf_bufmodel_admit(b, 10, 2, 4 * GiB, true, 10, 2), 0);
    assert_null(ppf_bufmodel_find(b, 9));
    assert_int_equal(ppf_bufmodel_admit(b, 11, 2, 2 * GiB, true, 100, 2), -1);  /* all pinned */
    assert_int_equal(ppf_bufmodel_remove(b, 2, 3), -1);
    assert_int_equal(errno, EBUSY);
    /* prefetched, evicted unused = wasted */
    assert_int_equal(ppf_bufmodel_ready(b, 10, 3), 0);
    assert_int_equal(ppf_bufmodel_pin(b, 8, false), 0);
    assert_int_equal(ppf_bufmodel_remove(b, 8, 3), 0);
    ppf_bufmodel_get_stats(b, &st);
    assert_int_equal(st.evicted_unused, 1);
    assert_true(st.evicted_unused_bytes == 2 * GiB);
    ppf_bufmodel_free(b);
}

static void
test_buf_lru(void **state)
{
    struct ppf_bufmodel_config c = { 3 * GiB, PPF_EVICT_LRU, 0 };
    struct ppf_bufmodel *b = ppf_bufmodel_new(&c);

    (void)state;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(ppf_bufmodel_admit(b, i, 0, GiB, false, 0, i), 0);
        assert_int_equal(ppf_bufmodel_ready(b, i, i), 0);
    }
    assert_int_equal(ppf_bufmodel_use(b, 0, 5), 1);
    assert_int_equal(ppf_bufmodel_admit(b, 7, 0, GiB, false, 0, 6), 0);
    assert_null(ppf_bufmodel_find(b, 1));           /* least recently used */
    assert_non_null(ppf_bufmodel_find(b, 0));
    assert_int_equal(ppf_bufmodel_use(b, 7, 6), 0);  /* in flight: no hit */
    ppf_bufmodel_free(b);
}

static void
test_table(void **state)
{
    struct ppf_table_config c = { 4, true, 2, 16, 0, 0.1 };
    struct ppf_table *t = ppf_table_new(&c);
    struct ppf_prediction p[2] = { { .image = 1, .probability = 0.9 },
                                   { .image = 2, .probability = 0.6 } };
    struct ppf_table_row rows[32];
    struct ppf_table_stats st;
    char key[32];
    size_t n;

    (void)state;
    assert_non_null(t);
    assert_int_equal(ppf_table_record(t, "markov after img-a", p, 2, 0), 0);
    assert_int_equal(ppf_table_feedback(t, "markov after img-a", 1, true, 1), 0);
    assert_int_equal(ppf_table_feedback(t, "markov after img-a", 2, false, 1), 0);
    n = ppf_table_dump(t, rows, 32);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].key, "markov after img-a");
    assert_int_equal(rows[0].n, 2);
    assert_int_equal(rows[0].e[0].image, 1);
    assert_int_equal(rows[0].e[0].hits, 1);
    assert_int_equal(rows[0].e[1].misses, 1);
    /* many useful patterns: the table grows (dynamic), up to max */
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "histogram every %ds", i);
        assert_int_equal(ppf_table_record(t, key, p, 1, i), 0);
        assert_int_equal(ppf_table_feedback(t, key, 1, true, i), 0);
    }
    ppf_table_get_stats(t, &st);
    assert_true(st.size > 4 && st.size <= 16);
    assert_true(st.grows > 0);
    /* useless patterns: it shrinks back, not below min */
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "seasonal %d", i);
        assert_int_equal(ppf_table_record(t, key, p, 1, 1000 + i), 0);
        ppf_table_feedback(t, key, 1, false, 1000 + i);
    }
    ppf_table_get_stats(t, &st);
    assert_true(st.size >= 2 && st.size < 16);
    assert_true(st.rows <= st.size);
    assert_int_equal(ppf_table_record(t, "", p, 1, 0), -1);
    ppf_table_free(t);
}

static void
test_config_from_policy(void **state)
{
    struct ppf_policy *p = ppf_policy_new();
    struct ppf_engine_config c;

    (void)state;
    assert_non_null(p);
    p->learning.algorithm = PPF_ALGO_MARKOV;
    p->learning.horizon_ms = 600000;
    p->learning.markov_order = 3;
    assert_int_equal(ppf_engine_config_from_policy(p, &c), 0);
    assert_int_equal(c.algorithm, PPF_ALGO_MARKOV);
    assert_int_equal(c.markov_order, 3);
    assert_true(fabs(c.horizon - 600) < 1e-9);
    assert_true(c.max_images > 0);
    p->learning.markov_order = 0;
    assert_int_equal(ppf_engine_config_from_policy(p, &c), -1);
    ppf_policy_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strtab),
        cmocka_unit_test(test_daily_seasonal),
        cmocka_unit_test(test_daily_histogram),
        cmocka_unit_test(test_daily_ensemble),
        cmocka_unit_test(test_markov_chain),
        cmocka_unit_test(test_markov_decay),
        cmocka_unit_test(test_histogram_abandoned),
        cmocka_unit_test(test_workload),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_buf_quota_pin_public),
        cmocka_unit_test(test_buf_lru),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_config_from_policy),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cmocka tests for the operations log and usage accounting
 * (peripheral/oplog.c, schemas/device-protocol.md §5.9) and the host's
 * decoding and Prometheus output of USAGE (common/prom.c): the ring wraps
 * and a reader sees the gap; time saved with and without a measured
 * pipeline rate; counters per tenant and per image, and the fold into
 * "(other)" past the bound; LOG_READ and USAGE in whole groups through a
 * small writer; long texts cut at a character boundary; EXPLAIN's last
 * prefetch and eviction; a NULL log does nothing.  Pure logic: no files, no device.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/prom.h"
#include "peripheral/oplog.h"

#define MAX_RECS 64

struct rec {
    uint64_t seq, time_us, wait_us, saved_us, bytes;
    uint32_t kind, outcome;
    bool has_outcome, has_wait, has_saved;
    char image[256], tenant[256], text[4097];
};

/* Decodes a LOG_READ answer into r[]; the number of records. */
static size_t
decode(const uint8_t *buf, size_t len, struct rec *r, size_t max)
{
    struct ppf_attr_reader rd;
    struct ppf_attr a;
    size_t n = 0;
    struct rec *cur = NULL;
    int k;

    ppf_attr_reader_init(&rd, buf, len);
    while ((k = ppf_attr_next(&rd, &a)) > 0) {
        if (a.type == PPF_A_SEQ) {
            assert_true(n < max);
            cur = &r[n++];
            memset(cur, 0, sizeof *cur);
            assert_int_equal(ppf_attr_get_u64(&a, &cur->seq), 0);
            continue;
        }
        assert_non_null(cur);   /* every group starts with SEQ */
        switch (a.type) {
        case PPF_A_TIME_US: assert_int_equal(ppf_attr_get_u64(&a, &cur->time_us), 0); break;
        case PPF_A_LOG_KIND: assert_int_equal(ppf_attr_get_u32(&a, &cur->kind), 0); break;
        case PPF_A_OUTCOME:
            assert_int_equal(ppf_attr_get_u32(&a, &cur->outcome), 0);
            cur->has_outcome = true;
            break;
        case PPF_A_WAIT_US:
            assert_int_equal(ppf_attr_get_u64(&a, &cur->wait_us), 0);
            cur->has_wait = true;
            break;
        case PPF_A_SAVED_US:
            assert_int_equal(ppf_attr_get_u64(&a, &cur->saved_us), 0);
            cur->has_saved = true;
            break;
        case PPF_A_BYTES: assert_int_equal(ppf_attr_get_u64(&a, &cur->bytes), 0); break;
        case PPF_A_IMAGE:
            assert_int_equal(ppf_attr_get_str(&a, cur->image, sizeof cur->image), 0);
            break;
        case PPF_A_TENANT:
            assert_int_equal(ppf_attr_get_str(&a, cur->tenant, sizeof cur->tenant), 0);
            break;
        case PPF_A_TEXT:
            assert_int_equal(ppf_attr_get_str(&a, cur->text, sizeof cur->text), 0);
            break;
        default:
            fail_msg("unexpected attribute %u", a.type);
        }
    }
    assert_int_equal(k, 0);
    return n;
}

/* LOG_READ from start into r[] with a writer of cap bytes. */
static size_t
read_log(struct ppf_oplog *l, uint64_t start, size_t cap, struct rec *r, uint32_t *newest)
{
    static uint8_t buf[65536];
    struct ppf_attr_writer w;

    assert_true(cap <= sizeof buf);
    ppf_attr_writer_init(&w, buf, cap);
    assert_int_equal(ppf_oplog_read(l, start, &w, newest), PPF_SC_SUCCESS);
    assert_false(w.overflow);
    return decode(buf, w.len, r, MAX_RECS);
}

/* Every USAGE group, fetched through a writer of cap bytes. */
static void
read_usage(struct ppf_oplog *l, size_t cap, struct ppf_prom_usage *u)
{
    static uint8_t buf[65536];
    uint32_t total;

    memset(u, 0, sizeof *u);
    for (int pages = 0;; pages++) {
        struct ppf_attr_writer w;
        size_t before = u->n;

        assert_true(pages < 100000);
        ppf_attr_writer_init(&w, buf, cap);
        assert_int_equal(ppf_oplog_usage(l, u->n, &w, &total), PPF_SC_SUCCESS);
        assert_int_equal(ppf_prom_usage_parse(u, buf, w.len), 0);
        if (u->n >= total)
            break;
        assert_true(u->n > before);
    }
    ppf_prom_usage_sort(u);
    u->have = 1;
}

static const struct ppf_prom_usage_row *
row(const struct ppf_prom_usage *u, const char *image, const char *tenant)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->row[i].image, image) == 0 && strcmp(u->row[i].tenant, tenant) == 0)
            return &u->row[i];
    fail_msg("no usage row for image '%s' tenant '%s'", image, tenant);
    return NULL;
}

static void
test_null_is_noop(void **state)
{
    uint8_t buf[64];
    struct ppf_attr_writer w;
    uint32_t result = 99;

    (void)state;
    ppf_oplog_add(NULL, PPF_OPLOG_EVICT, "a", "b", 1, "x %d", 1);
    assert_int_equal(ppf_oplog_deploy(NULL, "a", "b", PPF_OUTCOME_HIT, 100, 1), 0);
    ppf_oplog_prepared(NULL, "a", "b", 100, 100, true, false);
    ppf_oplog_wasted(NULL, "a", "b", 100);
    assert_int_equal(ppf_oplog_miss_us(NULL, 100), 0);
    ppf_attr_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ppf_oplog_read(NULL, 1, &w, &result), PPF_SC_SUCCESS);
    assert_int_equal(result, 0);
    assert_int_equal(w.len, 0);
    result = 99;
    assert_int_equal(ppf_oplog_usage(NULL, 0, &w, &result), PPF_SC_SUCCESS);
    assert_int_equal(result, 0);
    assert_int_equal(w.len, 0);
    ppf_oplog_free(NULL);
}

static uint64_t
realtime_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
test_ring_wrap_and_gaps(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(4);
    struct rec r[MAX_RECS];
    uint32_t newest;
    size_t n;
    /* CLOCK_REALTIME, as the log: time() is the coarse clock, which can lag
     * it by a tick and so be a second behind just after a second begins */
    uint64_t before = realtime_us();

    (void)state;
    assert_non_null(l);
    n = read_log(l, 1, 4096, r, &newest);
    assert_int_equal(n, 0);
    assert_int_equal(newest, 0);            /* empty */
    for (int i = 1; i <= 10; i++)
        ppf_oplog_add(l, PPF_OPLOG_EVICT, "web", i % 2 ? "alice" : NULL, (uint64_t)i,
                      "record %d", i);
    /* from the start: only the last 4 are left; the reader sees 1..6 gone */
    n = read_log(l, 1, 4096, r, &newest);
    assert_int_equal(newest, 10);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        char want[32];

        snprintf(want, sizeof want, "record %zu", i + 7);
        assert_int_equal(r[i].seq, i + 7);
        assert_int_equal(r[i].kind, PPF_OPLOG_EVICT);
        assert_int_equal(r[i].bytes, i + 7);
        assert_string_equal(r[i].text, want);
        assert_string_equal(r[i].image, "web");
        assert_string_equal(r[i].tenant, (i + 7) % 2 ? "alice" : "");
        assert_false(r[i].has_outcome);
        assert_false(r[i].has_saved);
        assert_true(r[i].time_us + 5000000 >= before &&
                    r[i].time_us <= realtime_us() + 1000000);
    }
    /* from the middle, and past the end */
    n = read_log(l, 9, 4096, r, &newest);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].seq, 9);
    n = read_log(l, 11, 4096, r, &newest);
    assert_int_equal(n, 0);
    assert_int_equal(newest, 10);
    /* start 0 means from the oldest */
    n = read_log(l, 0, 4096, r, &newest);
    assert_int_equal(n, 4);
    assert_int_equal(r[0].seq, 7);
    ppf_oplog_free(l);
}

static void
test_saved_time(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(64);
    struct rec r[MAX_RECS];
    uint32_t newest;
    size_t n;

    (void)state;
    assert_non_null(l);
    /* no rate yet: nothing saved, and the record says why */
    assert_int_equal(ppf_oplog_miss_us(l, 1000000000), 0);
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_HIT, 1000000000, 3100), 0);
    /* a limited preparation does not count for the rate */
    ppf_oplog_prepared(l, "db", "bob", 1000000, 1000000, false, true);
    assert_int_equal(ppf_oplog_miss_us(l, 1000000000), 0);
    /* 100 MB/s: a 1 GB miss takes 10 s */
    ppf_oplog_prepared(l, "db", "bob", 100000000, 1000000, false, false);
    assert_int_equal(ppf_oplog_miss_us(l, 1000000000), 10000000);
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_HIT, 1000000000, 2000000),
                     8000000);
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_INFLIGHT, 1000000000,
                                      4000000), 6000000);
    /* waiting longer than a miss would have saved nothing (never negative) */
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_INFLIGHT, 1000000000,
                                      12000000), 0);
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_MISS, 1000000000, 9000000),
                     0);
    assert_int_equal(ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_FALLBACK, 0, 0), 0);
    /* the rate is a moving average: 0.3 x 200 MB/s + 0.7 x 100 MB/s */
    ppf_oplog_prepared(l, "db", "bob", 200000000, 1000000, true, false);
    assert_int_equal(ppf_oplog_miss_us(l, 130000000), 1000000);

    n = read_log(l, 1, 65536, r, &newest);
    assert_int_equal(n, 6);     /* prepared adds no record of its own */
    assert_int_equal(r[0].kind, PPF_OPLOG_DEPLOY);
    assert_true(r[0].has_outcome && r[0].has_wait && r[0].has_saved);
    assert_int_equal(r[0].outcome, PPF_OUTCOME_HIT);
    assert_int_equal(r[0].wait_us, 3100);
    assert_int_equal(r[0].saved_us, 0);
    assert_int_equal(r[0].bytes, 1000000000);
    assert_string_equal(r[0].text, "deployed web for alice: hit, waited 3.1 ms, saved unknown: "
                        "no pipeline rate measured yet");
    assert_string_equal(r[1].text, "deployed web for alice: hit, waited 2.0 s, saved 8.0 s");
    assert_int_equal(r[1].saved_us, 8000000);
    assert_int_equal(r[2].outcome, PPF_OUTCOME_INFLIGHT);
    assert_string_equal(r[3].text, "deployed web for alice: in flight, waited 12.0 s, "
                        "saved 0 us");
    assert_string_equal(r[4].text, "deployed web for alice: miss, waited 9.0 s");
    assert_false(r[4].saved_us);
    assert_int_equal(r[5].outcome, PPF_OUTCOME_FALLBACK);
    assert_false(r[5].has_wait);
    assert_non_null(strstr(r[5].text, "fallback"));
    ppf_oplog_free(l);
}

static void
test_ready_carries_the_time_taken(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(16);
    struct rec r[MAX_RECS];
    uint32_t newest;

    (void)state;
    assert_non_null(l);
    ppf_oplog_prepared(l, "web", "alice", 4096, 2500, true, false);
    ppf_oplog_add(l, PPF_OPLOG_READY, "web", "alice", 4096, "web for alice is ready");
    ppf_oplog_add(l, PPF_OPLOG_READY, "web", "alice", 4096, "not after a preparation");
    assert_int_equal(read_log(l, 1, 4096, r, &newest), 2);
    assert_true(r[0].has_wait);
    assert_int_equal(r[0].wait_us, 2500);
    assert_false(r[1].has_wait);
    ppf_oplog_free(l);
}

static void
test_usage_per_tenant_and_image(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(16);
    struct ppf_prom_usage u;
    const struct ppf_prom_usage_row *t;

    (void)state;
    assert_non_null(l);
    ppf_oplog_prepared(l, "web", "alice", 1000000, 1000000, true, false);   /* 1 MB/s */
    ppf_oplog_prepared(l, "web", "alice", 1000000, 1000000, false, false);  /* not a prefetch */
    ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_HIT, 3000000, 1000000);  /* saves 2 s */
    ppf_oplog_deploy(l, "web", "alice", PPF_OUTCOME_MISS, 3000000, 3000000);
    ppf_oplog_deploy(l, "db", "alice", PPF_OUTCOME_INFLIGHT, 2000000, 500000); /* 1.5 s */
    ppf_oplog_deploy(l, "db", "bob", PPF_OUTCOME_FALLBACK, 0, 0);
    ppf_oplog_deploy(l, "web", NULL, PPF_OUTCOME_HIT, 1000000, 0);           /* "default" */
    ppf_oplog_wasted(l, "web", "alice", 250);

    read_usage(l, 65536, &u);
    assert_int_equal(u.n, 3 + 4);
    assert_int_equal(u.ntenants, 3);
    assert_string_equal(u.row[0].tenant, "alice");     /* sorted */
    assert_string_equal(u.row[1].tenant, "bob");
    assert_string_equal(u.row[2].tenant, "default");
    t = row(&u, "", "alice");
    assert_int_equal(t->deploys, 3);
    assert_int_equal(t->hits, 1);
    assert_int_equal(t->inflight, 1);
    assert_int_equal(t->misses, 1);
    assert_int_equal(t->fallbacks, 0);
    assert_int_equal(t->wait_us, 4500000);
    assert_int_equal(t->saved_us, 3500000);
    assert_int_equal(t->prefetch_bytes, 1000000);
    assert_int_equal(t->wasted_bytes, 250);
    assert_true(ppf_prom_usage_hit_ratio(t) > 0.66 && ppf_prom_usage_hit_ratio(t) < 0.67);
    t = row(&u, "", "bob");
    assert_int_equal(t->deploys, 1);
    assert_int_equal(t->fallbacks, 1);
    assert_true(ppf_prom_usage_hit_ratio(t) == 0);
    t = row(&u, "web", "alice");
    assert_int_equal(t->deploys, 2);
    assert_int_equal(t->saved_us, 2000000);
    assert_int_equal(t->prefetch_bytes, 1000000);
    assert_int_equal(t->wasted_bytes, 250);
    t = row(&u, "db", "alice");
    assert_int_equal(t->inflight, 1);
    assert_int_equal(t->saved_us, 1500000);
    assert_int_equal(row(&u, "db", "bob")->fallbacks, 1);
    assert_int_equal(row(&u, "web", "default")->hits, 1);
    ppf_prom_usage_free(&u);
    ppf_oplog_free(l);
}

static void
test_usage_is_bounded(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(16);
    struct ppf_prom_usage u;
    char name[32];

    (void)state;
    assert_non_null(l);
    for (int i = 0; i < 4096 + 10; i++) {
        snprintf(name, sizeof name, "img%d", i);
        ppf_oplog_wasted(l, name, "alice", 1);
    }
    read_usage(l, 65536, &u);
    assert_int_equal(u.n, 1 + 4096 + 1);
    assert_int_equal(row(&u, "", "alice")->wasted_bytes, 4106);
    assert_int_equal(row(&u, "(other)", "alice")->wasted_bytes, 10);
    ppf_prom_usage_free(&u);
    ppf_oplog_free(l);
}

static void
test_pagination(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(64);
    struct rec r[MAX_RECS];
    struct ppf_prom_usage u;
    uint8_t tiny[16];
    struct ppf_attr_writer w;
    uint32_t newest, result;
    uint64_t next = 1;
    int pages = 0;

    (void)state;
    assert_non_null(l);
    for (int i = 1; i <= 30; i++) {
        char image[16], tenant[16];

        snprintf(image, sizeof image, "image%d", i % 7);
        snprintf(tenant, sizeof tenant, "tenant%d", i % 3);
        ppf_oplog_deploy(l, image, tenant, i % 4, 1000, 10);
    }
    /* whole records only, in order, none twice, none lost */
    while (next <= 30) {
        size_t n = read_log(l, next, 400, r, &newest);

        assert_int_equal(newest, 30);
        assert_true(n >= 1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(r[i].seq, next + i);
        next += n;
        pages++;
    }
    assert_true(pages > 3);
    /* not even one record fits: an error, not an empty success */
    ppf_attr_writer_init(&w, tiny, sizeof tiny);
    assert_int_equal(ppf_oplog_read(l, 1, &w, &result), PPF_SC_DATA_TOO_LONG);
    assert_int_equal(w.len, 0);
    ppf_attr_writer_init(&w, tiny, sizeof tiny);
    assert_int_equal(ppf_oplog_usage(l, 0, &w, &result), PPF_SC_DATA_TOO_LONG);
    assert_int_equal(w.len, 0);
    assert_int_equal(result, 3 + 21);  /* (i mod 7, i mod 3) takes all 21 values */
    /* USAGE page by page gives what one big page gives */
    read_usage(l, 200, &u);
    assert_int_equal(u.n, result);
    assert_int_equal(u.ntenants, 3);
    assert_int_equal(row(&u, "", "tenant0")->deploys + row(&u, "", "tenant1")->deploys +
                     row(&u, "", "tenant2")->deploys, 30);
    ppf_prom_usage_free(&u);
    ppf_oplog_free(l);
}

static void
test_long_text(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(8);
    struct rec r[MAX_RECS];
    char text[1024];
    uint32_t newest;

    (void)state;
    assert_non_null(l);
    memset(text, 'x', 1000);
    text[1000] = '\0';
    ppf_oplog_add(l, PPF_OPLOG_ERROR, "web", "alice", 0, "%s", text);
    /* "a" then 200 two-byte characters: never cut inside one */
    strcpy(text, "a");
    for (int i = 0; i < 200; i++)
        strcat(text, "\xc3\xa9");
    ppf_oplog_add(l, PPF_OPLOG_ERROR, "web", "alice", 0, "%s", text);
    /* control bytes are not allowed in attributes (§5.1) */
    ppf_oplog_add(l, PPF_OPLOG_ERROR, NULL, NULL, 0, "bad\nline\tend");
    assert_int_equal(read_log(l, 1, 8192, r, &newest), 3);
    assert_int_equal(strlen(r[0].text), 300);
    assert_int_equal(strlen(r[1].text), 299);
    assert_memory_equal(r[1].text + 297, "\xc3\xa9", 2);
    assert_string_equal(r[2].text, "bad line end");
    assert_string_equal(r[2].image, "");
    ppf_oplog_free(l);
}

static void
test_explain(void **state)
{
    struct ppf_oplog *l = ppf_oplog_new(4);
    uint8_t buf[4096];
    struct ppf_attr_writer w;
    struct ppf_attr_reader rd;
    struct ppf_attr a;
    char s[1024], pre[1024] = "", ev[1024] = "";

    (void)state;
    assert_non_null(l);
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_oplog_explain(l, "web", &w);        /* nothing known: nothing said */
    ppf_oplog_explain(NULL, "web", &w);
    assert_int_equal(w.len, 0);
    ppf_oplog_add(l, PPF_OPLOG_PREFETCH, "web", "alice", 1, "prefetching web: first");
    ppf_oplog_add(l, PPF_OPLOG_EVICT, "web", "alice", 1, "evicted web: old");
    ppf_oplog_add(l, PPF_OPLOG_PREFETCH, "web", "alice", 1, "prefetching web: second");
    ppf_oplog_add(l, PPF_OPLOG_PURGE, "web", NULL, 1, "purged web: gone from its store");
    ppf_oplog_add(l, PPF_OPLOG_EVICT, "db", "bob", 1, "evicted db");
    ppf_oplog_explain(l, "web", &w);
    ppf_attr_reader_init(&rd, buf, w.len);
    while (ppf_attr_next(&rd, &a) > 0) {
        assert_int_equal(ppf_attr_get_str(&a, s, sizeof s), 0);
        if (a.type == PPF_A_X_LAST_PREFETCH)
            strcpy(pre, s);
        else if (a.type == PPF_A_X_LAST_EVICT)
            strcpy(ev, s);
        else
            fail_msg("unexpected attribute %u", a.type);
    }
    /* "YYYY-MM-DDTHH:MM:SS: text", the newest of each */
    assert_non_null(strstr(pre, ": prefetching web: second"));
    assert_non_null(strstr(ev, ": purged web: gone from its store"));
    assert_true(pre[4] == '-' && pre[10] == 'T' && pre[19] == ':');
    /* the first PREFETCH fell out of the ring (4 records): not found */
    ppf_oplog_add(l, PPF_OPLOG_EVICT, "db", "bob", 1, "evicted db");
    ppf_oplog_add(l, PPF_OPLOG_EVICT, "db", "bob", 1, "evicted db");
    ppf_oplog_add(l, PPF_OPLOG_EVICT, "db", "bob", 1, "evicted db");
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_oplog_explain(l, "web", &w);
    assert_int_equal(w.len, 0);
    ppf_oplog_free(l);
}

static void
test_prometheus(void **state)
{
    struct ppf_prom_usage u = { 0 };
    char *out = NULL;
    size_t len = 0;
    FILE *fp;

    (void)state;
    fp = open_memstream(&out, &len);
    assert_non_null(fp);
    assert_int_equal(ppf_prom_usage_write(fp, &u), 0);     /* no USAGE: nothing */
    fflush(fp);
    assert_int_equal(len, 0);
    u.have = 1;                 /* USAGE, no rows: no family without samples */
    assert_int_equal(ppf_prom_usage_write(fp, &u), 0);
    fflush(fp);
    assert_non_null(strstr(out, "\nppf_saved_seconds_total 0.000000\n"));
    assert_null(strstr(out, "ppf_tenant_"));
    assert_null(strstr(out, "ppf_image_"));
    u.row = calloc(2, sizeof *u.row);
    assert_non_null(u.row);
    u.n = u.cap = 2;
    strcpy(u.row[0].tenant, "a\"b\\c");
    u.row[0].deploys = 3;
    u.row[0].hits = 2;
    u.row[0].fallbacks = 1;
    u.row[0].saved_us = 2500000;
    strcpy(u.row[1].image, "web");
    strcpy(u.row[1].tenant, "a\"b\\c");
    u.row[1].hits = 2;
    u.row[1].wasted_bytes = 4096;
    ppf_prom_usage_sort(&u);
    assert_int_equal(ppf_prom_usage_write(fp, &u), 0);
    fclose(fp);
    assert_non_null(strstr(out, "# TYPE ppf_saved_seconds_total counter\n"
                           "ppf_saved_seconds_total 2.500000\n"));
    assert_non_null(strstr(out, "ppf_tenant_deploys_total{tenant=\"a\\\"b\\\\c\","
                           "outcome=\"hit\"} 2\n"));
    assert_non_null(strstr(out, "ppf_tenant_deploys_total{tenant=\"a\\\"b\\\\c\","
                           "outcome=\"fallback\"} 1\n"));
    assert_non_null(strstr(out, "ppf_tenant_saved_seconds_total{tenant=\"a\\\"b\\\\c\"} "
                           "2.500000\n"));
    assert_non_null(strstr(out, "ppf_image_deploys_total{image=\"web\",tenant=\"a\\\"b\\\\c\","
                           "outcome=\"in-flight\"} 0\n"));
    assert_non_null(strstr(out, "ppf_image_wasted_bytes_total{image=\"web\","
                           "tenant=\"a\\\"b\\\\c\"} 4096\n"));
    assert_non_null(strstr(out, "# TYPE ppf_image_prefetched_bytes_total counter\n"));
    free(out);
    ppf_prom_usage_free(&u);
}

static void
test_usage_parse_rejects_garbage(void **state)
{
    struct ppf_prom_usage u = { 0 };
    uint8_t buf[256];
    struct ppf_attr_writer w;

    (void)state;
    /* a counter before any group */
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_attr_put_u64(&w, PPF_A_U_DEPLOYS, 1);
    assert_int_equal(ppf_prom_usage_parse(&u, buf, w.len), -1);
    ppf_prom_usage_free(&u);
    /* a counter of the wrong size */
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    ppf_attr_put_u32(&w, PPF_A_U_DEPLOYS, 1);
    assert_int_equal(ppf_prom_usage_parse(&u, buf, w.len), -1);
    ppf_prom_usage_free(&u);
    /* truncated */
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    assert_int_equal(ppf_prom_usage_parse(&u, buf, w.len - 1), -1);
    ppf_prom_usage_free(&u);
    /* a group read twice (pages are not one snapshot) is kept once */
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_attr_put_str(&w, PPF_A_IMAGE, "web");
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    ppf_attr_put_str(&w, PPF_A_IMAGE, "web");
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    assert_int_equal(ppf_prom_usage_parse(&u, buf, w.len), 0);
    assert_int_equal(u.n, 3);
    ppf_prom_usage_sort(&u);
    assert_int_equal(u.n, 2);
    assert_int_equal(u.ntenants, 1);
    ppf_prom_usage_free(&u);
    /* unknown attributes are skipped */
    ppf_attr_writer_init(&w, buf, sizeof buf);
    ppf_attr_put_str(&w, PPF_A_TENANT, "alice");
    ppf_attr_put_u64(&w, 200, 7);
    ppf_attr_put_u64(&w, PPF_A_U_HITS, 7);
    assert_int_equal(ppf_prom_usage_parse(&u, buf, w.len), 0);
    assert_int_equal(u.n, 1);
    assert_int_equal(u.row[0].hits, 7);
    ppf_prom_usage_free(&u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_is_noop),
        cmocka_unit_test(test_ring_wrap_and_gaps),
        cmocka_unit_test(test_saved_time),
        cmocka_unit_test(test_ready_carries_the_time_taken),
        cmocka_unit_test(test_usage_per_tenant_and_image),
        cmocka_unit_test(test_usage_is_bounded),
        cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_usage_parse_rejects_garbage),
    };

    ppf_log_init("test-oplog", PPF_LOG_ERROR);     /* the records' log lines: not here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}

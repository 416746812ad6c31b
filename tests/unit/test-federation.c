/* cmocka tests for federated learning's pure logic (schemas/federation.md):
 * a summary survives encode/decode unchanged; every truncation, an
 * oversized buffer and out-of-range values are rejected; a tenant that
 * does not share is left out; a pattern learned by one engine is
 * predicted by another after the merge; merging the same summary twice
 * changes nothing; a peer can never lower what an engine learned itself.
 * Pure logic: no files, no clock, no network.
 */
#include <config.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "peripheral/engine.h"

#define DAY 86400.0
#define T0 (1700000000.0 - fmod(1700000000.0, DAY))    /* a midnight, UTC */

static struct ppf_engine *
new_engine(enum ppf_policy_algorithm a, bool federated)
{
    struct ppf_engine_config c;
    struct ppf_engine *e;

    ppf_engine_config_default(&c);
    c.algorithm = a;
    c.federated = federated;
    c.time_scale = 600;
    e = ppf_engine_new(&c);
    assert_non_null(e);
    return e;
}

static uint32_t
deploy(struct ppf_engine *e, double t, const char *image, const char *tenant)
{
    struct ppf_engine_event ev = { .time = t, .size = 1u << 30 };

    assert_int_equal(ppf_engine_intern(e, image, tenant, &ev.image, &ev.tenant), 0);
    assert_int_equal(ppf_engine_observe(e, &ev), 0);
    return ev.image;
}

/* Host A's habits: a then b a minute later, every day at 09:00, for two
 * weeks; tenant "secret" runs x then y at 10:00. */
static struct ppf_engine *
teach(void)
{
    struct ppf_engine *e = new_engine(PPF_ALGO_ENSEMBLE, false);

    for (int d = 0; d < 14; d++) {
        double t = T0 + d * DAY + 9 * 3600;

        deploy(e, t, "a", "acme");
        deploy(e, t + 60, "b", "acme");
        deploy(e, t + 3600, "x", "secret");
        deploy(e, t + 3660, "y", "secret");
    }
    return e;
}

static bool
no_secret(void *ctx, const char *tenant)
{
    (void)ctx;
    return !tenant || strcmp(tenant, "secret") != 0;
}

static struct ppf_fed_summary *
export(struct ppf_engine *e, double now, uint8_t **buf, size_t *len)
{
    struct ppf_fed_summary *s;

    assert_int_equal(ppf_engine_export(e, now, no_secret, NULL, &s), 0);
    assert_non_null(s);
    if (buf)
        assert_int_equal(ppf_fed_summary_encode(s, buf, len), 0);
    return s;
}

static const struct ppf_fed_image *
find(const struct ppf_fed_summary *s, const char *name)
{
    for (uint32_t i = 0; i < s->nimages; i++)
        if (strcmp(s->images[i].name, name) == 0)
            return &s->images[i];
    return NULL;
}

static void
test_roundtrip(void **state)
{
    struct ppf_engine *e = teach();
    double now = T0 + 14 * DAY;
    struct ppf_fed_summary *s = export(e, now, NULL, NULL), *d;
    const struct ppf_fed_image *a;
    uint8_t *buf, *buf2;
    size_t len, len2;
    char err[256];

    (void)state;
    assert_int_equal(s->nimages, 2);            /* a and b; never x, y */
    assert_null(find(s, "x"));
    assert_null(find(s, "y"));
    a = find(s, "a");
    assert_non_null(a);
    assert_string_equal(a->tenant, "acme");
    assert_true(a->evidence > 5);
    assert_true(a->nslots >= 1);
    assert_true(fabs(a->slot[0].tod - 9 * 3600) < 120);   /* tz_offset 0: UTC */
    assert_true(a->ctx_total > 0);
    assert_true(s->nedges >= 1);
    assert_int_equal(ppf_fed_summary_encode(s, &buf, &len), 0);
    assert_true(len <= PPF_FED_MAX_SUMMARY);
    assert_int_equal(ppf_fed_summary_decode(buf, len, &d, err, sizeof err), 0);
    assert_int_equal(d->nimages, s->nimages);
    assert_int_equal(d->nedges, s->nedges);
    assert_true(d->time == s->time);
    for (uint32_t i = 0; i < s->nimages; i++) {
        assert_string_equal(d->images[i].name, s->images[i].name);
        assert_true(d->images[i].evidence == s->images[i].evidence);
        assert_int_equal(d->images[i].nslots, s->images[i].nslots);
    }
    assert_memory_equal(d->edges, s->edges, s->nedges * sizeof *s->edges);
    /* encoding the decoded summary gives the same bytes */
    assert_int_equal(ppf_fed_summary_encode(d, &buf2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf);
    free(buf2);
    ppf_fed_summary_free(s);
    ppf_fed_summary_free(d);
    ppf_engine_free(e);
}

static void
test_truncation_and_garbage(void **state)
{
    struct ppf_engine *e = teach();
    struct ppf_fed_summary *s, *d;
    uint8_t *buf, *big;
    size_t len;
    char err[256];

    (void)state;
    s = export(e, T0 + 14 * DAY, &buf, &len);
    for (size_t n = 0; n < len; n++) {
        d = (struct ppf_fed_summary *)1;
        assert_int_equal(ppf_fed_summary_decode(buf, n, &d, err, sizeof err), -1);
        assert_null(d);
        assert_true(err[0] != 0);
    }
    /* trailing bytes */
    big = calloc(1, PPF_FED_MAX_SUMMARY + 1);
    assert_non_null(big);
    memcpy(big, buf, len);
    assert_int_equal(ppf_fed_summary_decode(big, len + 1, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "trailing"));
    /* oversized: refused before looking at it */
    assert_int_equal(ppf_fed_summary_decode(big, PPF_FED_MAX_SUMMARY + 1, &d, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "over the limit"));
    /* every single-byte corruption either decodes to a valid summary or
     * is refused: never a crash (and a bad magic is always refused) */
    for (size_t i = 0; i < len; i++) {
        memcpy(big, buf, len);
        big[i] ^= 0xa5;
        if (ppf_fed_summary_decode(big, len, &d, err, sizeof err) == 0)
            ppf_fed_summary_free(d);
        else
            assert_true(err[0] != 0);
        if (i < 4)
            assert_non_null(strstr(err, "magic"));
    }
    /* a forged count cannot make it allocate */
    memcpy(big, buf, len);
    big[16] = big[17] = big[18] = 0xff;
    big[19] = 0x7f;
    assert_int_equal(ppf_fed_summary_decode(big, len, &d, err, sizeof err), -1);
    /* NaN evidence */
    {
        struct ppf_fed_summary bad = *s;
        struct ppf_fed_image im = s->images[0];
        uint8_t *b2;
        size_t l2;

        im.evidence = NAN;
        bad.images = &im;
        bad.nimages = 1;
        bad.nedges = 0;
        assert_int_equal(ppf_fed_summary_encode(&bad, &b2, &l2), 0);
        assert_int_equal(ppf_fed_summary_decode(b2, l2, &d, err, sizeof err), -1);
        free(b2);
    }
    free(big);
    free(buf);
    ppf_fed_summary_free(s);
    ppf_engine_free(e);
}

/* The k best predictions of e at now, by image name. */
static size_t
predict(struct ppf_engine *e, double now, struct ppf_prediction *p, size_t k)
{
    return ppf_engine_predict(e, now, p, k);
}

static bool
predicts(struct ppf_engine *e, double now, const char *name)
{
    struct ppf_prediction p[16];
    size_t n = predict(e, now, p, 16);

    for (size_t i = 0; i < n; i++)
        if (strcmp(ppf_engine_image_name(e, p[i].image), name) == 0)
            return true;
    return false;
}

static struct ppf_fed_summary *
decoded(const uint8_t *buf, size_t len)
{
    struct ppf_fed_summary *s;
    char err[256];

    assert_int_equal(ppf_fed_summary_decode(buf, len, &s, err, sizeof err), 0);
    return s;
}

static void
test_merge_predicts_and_idempotent(void **state)
{
    struct ppf_engine *a = teach(), *b = new_engine(PPF_ALGO_ENSEMBLE, true);
    double now = T0 + 14 * DAY;
    struct ppf_fed_merge res;
    struct ppf_prediction p1[16], p2[16];
    size_t n1, n2, len;
    uint8_t *buf;

    (void)state;
    ppf_fed_summary_free(export(a, now, &buf, &len));
    /* b has seen a little of its own, nothing of a and b */
    deploy(b, now + 3600, "other", "acme");
    assert_false(predicts(b, now + 9 * 3600 - 600, "a"));
    assert_int_equal(ppf_engine_federate(b, "hostA", decoded(buf, len), now + 3600, &res), 0);
    assert_int_equal(res.images, 2);
    assert_true(res.edges >= 1);
    /* the time of day: a is expected at 09:00 */
    assert_true(predicts(b, now + 9 * 3600 - 300, "a"));
    /* the chain: after a here, b */
    deploy(b, now + 9 * 3600, "a", "acme");
    assert_true(predicts(b, now + 9 * 3600 + 1, "b"));
    /* the same summary again: the same predictions */
    n1 = predict(b, now + 9 * 3600 + 2, p1, 16);
    assert_int_equal(ppf_engine_federate(b, "hostA", decoded(buf, len), now + 3600, &res), 0);
    n2 = predict(b, now + 9 * 3600 + 2, p2, 16);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        assert_int_equal(p1[i].image, p2[i].image);
        assert_true(fabs(p1[i].probability - p2[i].probability) < 1e-12);
        assert_true(fabs(p1[i].value - p2[i].value) < 1e-12);
    }
    /* an engine without federation merges nothing */
    {
        struct ppf_engine *c = new_engine(PPF_ALGO_ENSEMBLE, false);

        assert_int_equal(ppf_engine_federate(c, "hostA", decoded(buf, len), now, &res), 0);
        assert_int_equal(res.images, 0);
        ppf_engine_free(c);
    }
    assert_int_equal(ppf_engine_forget_peer(b, "hostA"), 0);
    assert_int_equal(ppf_engine_forget_peer(b, "hostA"), -1);
    free(buf);
    ppf_engine_free(a);
    ppf_engine_free(b);
}

static void
test_peer_cannot_erase(void **state)
{
    struct ppf_engine *b = new_engine(PPF_ALGO_MARKOV, true);
    struct ppf_fed_summary *s = calloc(1, sizeof *s);
    struct ppf_fed_merge res;
    double now = T0 + DAY, before, after, p;
    uint32_t d;

    (void)state;
    /* local: c -> d, learned well */
    for (int i = 0; i < 8; i++) {
        deploy(b, now + i * 600, "c", "acme");
        d = deploy(b, now + i * 600 + 30, "d", "acme");
    }
    deploy(b, now + 8 * 600, "c", "acme");
    before = ppf_engine_score(b, d, now + 8 * 600 + 1, &p);
    assert_true(before > 0);
    assert_true(predicts(b, now + 8 * 600 + 1, "d"));
    /* a peer claims c -> e always, and knows d with no evidence at all */
    assert_non_null(s);
    s->time = now + 8 * 600;
    s->nimages = 3;
    s->images = calloc(3, sizeof *s->images);
    assert_non_null(s->images);
    s->images[0] = (struct ppf_fed_image){ .name = strdup("c"), .tenant = strdup("acme"),
                                           .evidence = 1000, .ctx_total = 1000 };
    s->images[1] = (struct ppf_fed_image){ .name = strdup("e"), .tenant = strdup("acme"),
                                           .evidence = 1000 };
    s->images[2] = (struct ppf_fed_image){ .name = strdup("d"), .tenant = strdup("acme") };
    s->nedges = 1;
    s->edges = calloc(1, sizeof *s->edges);
    assert_non_null(s->edges);
    s->edges[0] = (struct ppf_fed_edge){ 0, 1, 1000, 30 };
    assert_int_equal(ppf_engine_federate(b, "liar", s, now + 8 * 600, &res), 0);
    assert_int_equal(res.images, 3);
    after = ppf_engine_score(b, d, now + 8 * 600 + 1, &p);
    assert_true(after >= before);
    assert_true(predicts(b, now + 8 * 600 + 1, "d"));
    assert_true(predicts(b, now + 8 * 600 + 1, "e"));     /* evidence added */
    ppf_engine_free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncation_and_garbage),
        cmocka_unit_test(test_merge_predicts_and_idempotent),
        cmocka_unit_test(test_peer_cannot_erase),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

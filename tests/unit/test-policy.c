/* cmocka tests for the YAML policy (policy/): every key accepted, every
 * class of error reported with FILE:LINE:COLUMN and the key path (malformed
 * YAML, wrong type, out of range, unknown key with a suggestion, duplicate
 * key, aliases, huge, deep, non-UTF-8 and binary input), all errors of a
 * file reported together, key file checks, and the device codec: round
 * trip, every truncation and byte flip refused without a crash.  Inputs
 * are built in memory; files only for the host file checks (mkdtemp).
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ppf/protocol.h"
#include "policy/policy.h"

/* A policy with every key, each set away from its default. */
static const char full_policy[] =
    "monitoring:\n"
    "  interval: 250ms\n"
    "  metrics: [cpu, pressure, net]\n"
    "learning:\n"
    "  algorithm: seasonal\n"
    "  markov:\n"
    "    order: 3\n"
    "  decay:\n"
    "    half_life: 2d\n"
    "  horizon: 30m\n"
    "  time_buckets: 48\n"
    "  adaptation_rate: 0.25\n"
    "  store_size: 32MiB\n"
    "table:\n"
    "  size: 2048\n"
    "  dynamic:\n"
    "    enabled: false\n"
    "    min: 512\n"
    "    max: 4096\n"
    "prefetch:\n"
    "  priority: high\n"
    "  bandwidth: 1GB/s\n"
    "  concurrent: 4\n"
    "  workers: 8\n"
    "buffer:\n"
    "  path: /dev/shm/ppf\n"
    "  capacity: 64GiB\n"
    "  eviction: lru\n"
    "  reserve: 2GiB\n"
    "  overcommit: true\n"
    "stores:\n"
    "  - name: local\n"
    "    url: file:///srv/images\n"
    "  - name: remote\n"
    "    url: https://img.example.com:8443/base\n"
    "    ca_file: /etc/ppf/ca.pem\n"
    "    pinned_cert: /etc/ppf/pin.pem\n"
    "tenants:\n"
    "  default:\n"
    "    quota: 10GiB\n"
    "  alice:\n"
    "    quota: 60GiB\n"
    "    keyfile: /etc/ppf/alice.key\n"
    "    priority: low\n"
    "    share: false\n"
    "  bob: {quota: 20GiB}\n"
    "deploy:\n"
    "  dirs: [/var/lib/libvirt/images, /srv/vm]\n"
    "  mode: copy\n"
    "  fallback: fail\n"
    "  ephemeral: true\n"
    "federation:\n"
    "  enabled: true\n"
    "  listen: \"[::]:7000\"\n"
    "  peers: [\"a.example:7000\", \"10.0.0.2:7000\"]\n"
    "  ca_file: /etc/ppf/fca.pem\n"
    "  cert_file: /etc/ppf/fcert.pem\n"
    "  key_file: /etc/ppf/fkey.pem\n"
    "  interval: 2m\n"
    "pins:\n"
    "  - image: golden\n"
    "    tenant: alice\n"
    "    until: \"2030-01-02T03:04\"\n"
    "  - image: plain\n"
    "schedules:\n"
    "  - when: \"mon,wed,fri 07:15\"\n"
    "    image: golden\n"
    "    tenant: alice\n"
    "    before: \"08:00\"\n"
    "  - when: \"daily 23:59\"\n"
    "    image: nightly\n";

/* Parses text without host file checks; returns the policy or NULL, and
 * the diagnostics in *d (caller frees). */
static struct ppf_policy *
parse(const char *text, size_t len, struct ppf_policy_diags *d)
{
    struct ppf_policy *p = NULL;
    int rc;

    ppf_policy_diags_init(d);
    rc = ppf_policy_parse_buffer_flags("t.yaml", text, len, PPF_POLICY_NO_FILE_CHECKS, &p, d);
    if (rc == 0) {
        assert_non_null(p);
    } else {
        assert_null(p);
        assert_true(d->n > 0);
    }
    return p;
}

static struct ppf_policy *
parse_str(const char *text, struct ppf_policy_diags *d)
{
    return parse(text, strlen(text), d);
}

/* The diagnostic whose message contains needle, or NULL. */
static const struct ppf_policy_diag *
find_diag(const struct ppf_policy_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->v[i].msg, needle))
            return &d->v[i];
    return NULL;
}

/* Asserts that text is refused with a message containing needle at
 * line:column (0 = do not check) for key path (NULL = do not check). */
static void
expect_error(const char *text, size_t len, const char *needle, unsigned line, unsigned col,
             const char *path)
{
    struct ppf_policy_diags d;
    const struct ppf_policy_diag *g;
    struct ppf_policy *p = parse(text, len, &d);

    if (p || !(g = find_diag(&d, needle))) {
        ppf_policy_diags_print(&d, stderr);
        fail_msg("expected an error containing '%s'", needle);
    }
    if (line) {
        assert_int_equal(g->line, line);
        assert_int_equal(g->column, col);
    }
    if (path)
        assert_string_equal(g->path, path);
    assert_string_equal(g->file, "t.yaml");
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
}

#define EXPECT_ERROR(text, needle, line, col, path) \
    expect_error(text, strlen(text), needle, line, col, path)

/* Everything ppf_policy_emit_yaml writes, as a malloc'd string. */
static char *
emit_yaml(const struct ppf_policy *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    assert_int_equal(ppf_policy_emit_yaml(p, fp), 0);
    fclose(fp);
    return buf;
}

/* --- accepted input ----------------------------------------------------- */

static void
test_defaults(void **state)
{
    struct ppf_policy_diags d;
    struct ppf_policy *p = ppf_policy_new(), *q;
    char *a, *b;

    (void)state;
    assert_non_null(p);
    ppf_policy_diags_init(&d);
    assert_int_equal(ppf_policy_check(p, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(p->monitoring.interval_ms, 1000);
    assert_int_equal(p->monitoring.metrics, PPF_METRIC__ALL);
    assert_int_equal(p->learning.algorithm, PPF_ALGO_ENSEMBLE);
    assert_int_equal(p->learning.markov_order, 2);
    assert_true(p->learning.half_life_ms == 7ull * 86400000);
    assert_true(p->learning.horizon_ms == 3600000);
    assert_int_equal(p->table.size, 1024);
    assert_true(p->table.dynamic);
    assert_int_equal(p->table.min, 256);
    assert_int_equal(p->table.max, 16384);
    assert_int_equal(p->prefetch.priority, PPF_PRIO_NORMAL);
    assert_int_equal(p->prefetch.bandwidth, 0);
    assert_int_equal(p->prefetch.concurrent, 2);
    assert_int_equal(p->prefetch.workers, 2);
    assert_string_equal(p->buffer.path, "/var/lib/ppf/buffer");
    assert_true(p->buffer.capacity == 8ull << 30);
    assert_int_equal(p->buffer.eviction, PPF_EVICT_VALUE);
    assert_true(p->buffer.reserve == 1ull << 30);
    assert_int_equal(p->nstores, 1);
    assert_string_equal(p->stores[0].name, "local");
    assert_string_equal(p->stores[0].url, "file:///var/lib/ppf/images");
    assert_int_equal(p->ntenants, 1);
    assert_string_equal(p->tenants[0].name, "default");
    assert_int_equal(p->tenants[0].quota, 0);
    assert_int_equal(p->deploy.ndirs, 1);
    assert_string_equal(p->deploy.dirs[0], "/var/lib/libvirt/images");
    assert_int_equal(p->deploy.mode, PPF_DEPLOY_OVERLAY);
    assert_int_equal(p->deploy.fallback, PPF_FALLBACK_HOST);
    assert_false(p->deploy.ephemeral);
    assert_false(p->federation.enabled);

    /* An empty file, a file of comments and "---" all mean the defaults. */
    a = emit_yaml(p);
    q = parse_str("", &d);
    assert_non_null(q);
    b = emit_yaml(q);
    assert_string_equal(a, b);
    ppf_policy_free(q);
    free(b);
    q = parse_str("# nothing\n---\n", &d);
    assert_non_null(q);
    b = emit_yaml(q);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ppf_policy_free(q);
    ppf_policy_free(p);
    ppf_policy_free(NULL);
    ppf_policy_diags_free(&d);
}

static void
test_every_key(void **state)
{
    struct ppf_policy_diags d;
    struct ppf_policy *p = parse_str(full_policy, &d);

    (void)state;
    if (!p)
        ppf_policy_diags_print(&d, stderr);
    assert_non_null(p);
    assert_int_equal(p->monitoring.interval_ms, 250);
    assert_int_equal(p->monitoring.metrics, PPF_METRIC_CPU | PPF_METRIC_PRESSURE | PPF_METRIC_NET);
    assert_int_equal(p->learning.algorithm, PPF_ALGO_SEASONAL);
    assert_int_equal(p->learning.markov_order, 3);
    assert_true(p->learning.half_life_ms == 2 * 86400000ull);
    assert_true(p->learning.horizon_ms == 30 * 60000ull);
    assert_int_equal(p->learning.time_buckets, 48);
    assert_true(p->learning.adaptation_rate > 0.2499 && p->learning.adaptation_rate < 0.2501);
    assert_true(p->learning.store_size == 32ull << 20);
    assert_int_equal(p->table.size, 2048);
    assert_false(p->table.dynamic);
    assert_int_equal(p->table.min, 512);
    assert_int_equal(p->table.max, 4096);
    assert_int_equal(p->prefetch.priority, PPF_PRIO_HIGH);
    assert_true(p->prefetch.bandwidth == 1000000000ull);
    assert_int_equal(p->prefetch.concurrent, 4);
    assert_int_equal(p->prefetch.workers, 8);
    assert_string_equal(p->buffer.path, "/dev/shm/ppf");
    assert_true(p->buffer.capacity == 64ull << 30);
    assert_int_equal(p->buffer.eviction, PPF_EVICT_LRU);
    assert_true(p->buffer.reserve == 2ull << 30);
    assert_true(p->buffer.overcommit);
    assert_int_equal(p->nstores, 2);
    assert_string_equal(p->stores[1].name, "remote");
    assert_string_equal(p->stores[1].url, "https://img.example.com:8443/base");
    assert_string_equal(p->stores[1].ca_file, "/etc/ppf/ca.pem");
    assert_string_equal(p->stores[1].pinned_cert, "/etc/ppf/pin.pem");
    assert_int_equal(p->ntenants, 3);
    assert_string_equal(p->tenants[1].name, "alice");
    assert_true(p->tenants[1].quota == 60ull << 30);
    assert_string_equal(p->tenants[1].keyfile, "/etc/ppf/alice.key");
    assert_int_equal(p->tenants[1].priority, PPF_PRIO_LOW);
    assert_false(p->tenants[1].share);
    assert_true(p->tenants[2].share);
    assert_int_equal(p->deploy.ndirs, 2);
    assert_string_equal(p->deploy.dirs[1], "/srv/vm");
    assert_int_equal(p->deploy.mode, PPF_DEPLOY_COPY);
    assert_int_equal(p->deploy.fallback, PPF_FALLBACK_FAIL);
    assert_true(p->deploy.ephemeral);
    assert_true(p->federation.enabled);
    assert_string_equal(p->federation.listen, "[::]:7000");
    assert_int_equal(p->federation.npeers, 2);
    assert_string_equal(p->federation.peers[1], "10.0.0.2:7000");
    assert_string_equal(p->federation.key_file, "/etc/ppf/fkey.pem");
    assert_true(p->federation.interval_ms == 120000);
    assert_int_equal(p->npins, 2);
    assert_string_equal(p->pins[0].until, "2030-01-02T03:04");
    assert_string_equal(p->pins[1].tenant, "default");
    assert_string_equal(p->pins[1].until, "never");
    assert_int_equal(p->nschedules, 2);
    assert_string_equal(p->schedules[0].when, "mon,wed,fri 07:15");
    assert_string_equal(p->schedules[0].before, "08:00");
    assert_null(p->schedules[1].before);
    assert_string_equal(p->schedules[1].tenant, "default");
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
}

static void
test_values(void **state)
{
    uint64_t v;
    char buf[32];

    (void)state;
    assert_int_equal(ppf_policy_parse_size("64GiB", &v), 0);
    assert_true(v == 64ull << 30);
    assert_int_equal(ppf_policy_parse_size("1GB", &v), 0);
    assert_true(v == 1000000000ull);
    assert_int_equal(ppf_policy_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(ppf_policy_parse_size("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(ppf_policy_parse_size("64 GB", &v), -1);
    assert_int_equal(ppf_policy_parse_size("-1", &v), -1);
    assert_int_equal(ppf_policy_parse_size("1.5GiB", &v), -1);
    assert_int_equal(ppf_policy_parse_size("99999999999TiB", &v), -1);
    assert_int_equal(ppf_policy_parse_size("", &v), -1);
    assert_int_equal(ppf_policy_parse_duration("100ms", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(ppf_policy_parse_duration("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(ppf_policy_parse_duration("7d", &v), 0);
    assert_int_equal(ppf_policy_parse_duration("1", &v), -1);
    assert_int_equal(ppf_policy_parse_duration("1 s", &v), -1);
    assert_int_equal(ppf_policy_parse_duration("1w", &v), -1);
    ppf_policy_format_size(8ull << 30, buf, sizeof buf);
    assert_string_equal(buf, "8GiB");
    ppf_policy_format_size(1000000000, buf, sizeof buf);
    assert_string_equal(buf, "1GB");
    ppf_policy_format_size(1001, buf, sizeof buf);
    assert_string_equal(buf, "1001B");
    ppf_policy_format_size(0, buf, sizeof buf);
    assert_string_equal(buf, "0");
    ppf_policy_format_duration(90000, buf, sizeof buf);
    assert_string_equal(buf, "90s");
    ppf_policy_format_duration(7 * 86400000ull, buf, sizeof buf);
    assert_string_equal(buf, "7d");
    ppf_policy_format_duration(1500, buf, sizeof buf);
    assert_string_equal(buf, "1500ms");
    assert_string_equal(ppf_policy_algorithm_name(PPF_ALGO_LRU), "lru");
    assert_null(ppf_policy_priority_name(99));
}

static void
test_stores_and_tenants_defaults(void **state)
{
    struct ppf_policy_diags d;
    struct ppf_policy *p;

    (void)state;
    /* A store list replaces the default store; an empty one keeps it. */
    p = parse_str("stores:\n  - {name: nfs, url: \"file:///mnt/nfs\"}\n", &d);
    assert_non_null(p);
    assert_int_equal(p->nstores, 1);
    assert_string_equal(p->stores[0].name, "nfs");
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
    p = parse_str("stores: []\n", &d);
    assert_non_null(p);
    assert_int_equal(p->nstores, 1);
    assert_string_equal(p->stores[0].name, "local");
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
    /* The default tenant exists even when only others are named. */
    p = parse_str("tenants:\n  carol:\n", &d);
    assert_non_null(p);
    assert_int_equal(p->ntenants, 2);
    assert_non_null(ppf_policy_find_tenant(p, "default"));
    assert_non_null(ppf_policy_find_tenant(p, "carol"));
    assert_int_equal(ppf_policy_find_tenant(p, "carol")->quota, 0);
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
}

/* --- each class of error ----------------------------------------------- */

static void
test_malformed_yaml(void **state)
{
    (void)state;
    EXPECT_ERROR("buffer:\n  capacity: [1, 2\n", "malformed YAML", 3, 1, NULL);
    EXPECT_ERROR("buffer:\n  path: \"unterminated\n", "malformed YAML", 0, 0, NULL);
    EXPECT_ERROR("buffer:\n\tcapacity: 1GiB\n", "malformed YAML", 0, 0, NULL);
    EXPECT_ERROR("- a\n- b\n", "a policy is a mapping of sections", 1, 1, "");
    EXPECT_ERROR("buffer: {}\n---\nbuffer: {}\n", "one YAML document", 2, 1, NULL);
    EXPECT_ERROR("buffer: !!map {}\n", "tags", 1, 9, "buffer");
}

static void
test_wrong_type(void **state)
{
    (void)state;
    EXPECT_ERROR("buffer:\n  capacity: 64 GB\n",
                 "'64 GB' is not a size; write e.g. 64GiB", 2, 13, "buffer.capacity");
    EXPECT_ERROR("monitoring:\n  interval: 5 min\n", "'5 min' is not a duration", 2, 13,
                 "monitoring.interval");
    EXPECT_ERROR("table:\n  size: lots\n", "expected an integer, found 'lots'", 2, 9,
                 "table.size");
    EXPECT_ERROR("table:\n  size: \"12\"\n", "expected an integer, found the string", 2, 9,
                 "table.size");
    EXPECT_ERROR("table:\n  size: -3\n", "expected an integer", 2, 9, "table.size");
    EXPECT_ERROR("buffer:\n  overcommit: yes\n", "expected true or false, found 'yes'", 2, 15,
                 "buffer.overcommit");
    EXPECT_ERROR("buffer:\n  capacity:\n    - 1\n", "expected a size such as 64GiB, found a list",
                 3, 5, "buffer.capacity");
    EXPECT_ERROR("buffer: 12\n", "expected a mapping, found '12'", 1, 9, "buffer");
    EXPECT_ERROR("learning:\n  adaptation_rate: lots\n", "expected a number from 0 to 1", 2, 20,
                 "learning.adaptation_rate");
    EXPECT_ERROR("learning:\n  adaptation_rate: nan\n", "expected a number", 2, 20, NULL);
    EXPECT_ERROR("prefetch:\n  bandwidth: 10MiB\n", "is not a bandwidth", 2, 14,
                 "prefetch.bandwidth");
    EXPECT_ERROR("prefetch:\n  priority: urgent\n", "'urgent' is not one of: low, normal, high",
                 2, 13, "prefetch.priority");
    EXPECT_ERROR("learning:\n  algorithm: markow\n", "did you mean 'markov'?", 2, 14,
                 "learning.algorithm");
    EXPECT_ERROR("stores: {name: x}\n", "expected a list, found a mapping", 1, 9, "stores");
    EXPECT_ERROR("tenants: [a]\n", "expected a mapping of tenant names", 1, 10, "tenants");
    EXPECT_ERROR("tenants:\n  \"bad name\": {}\n", "is not a tenant name", 2, 3, "tenants");
    EXPECT_ERROR("buffer:\n  path: \"a\\0b\"\n", "control characters", 2, 9, "buffer.path");
    EXPECT_ERROR("buffer:\n  path:\n", "expected a string, found nothing", 2, 8, "buffer.path");
}

static void
test_out_of_range(void **state)
{
    struct ppf_policy_diags d;
    struct ppf_policy *p;

    (void)state;
    EXPECT_ERROR("monitoring:\n  interval: 5ms\n", "5ms is out of range", 2, 13,
                 "monitoring.interval");
    EXPECT_ERROR("table:\n  size: 0\n", "0 is out of range", 2, 9, "table.size");
    EXPECT_ERROR("table:\n  size: 99999999999\n", "out of range", 2, 9, "table.size");
    EXPECT_ERROR("table:\n  size: 100\n  dynamic: {min: 200}\n", "more than table.size", 3, 18,
                 "table.dynamic.min");
    EXPECT_ERROR("learning:\n  markov: {order: 9}\n", "9 is out of range", 2, 19,
                 "learning.markov.order");
    EXPECT_ERROR("learning:\n  adaptation_rate: 1.5\n", "out of range", 2, 20,
                 "learning.adaptation_rate");
    EXPECT_ERROR("prefetch:\n  concurrent: 0\n", "out of range", 2, 15, "prefetch.concurrent");
    EXPECT_ERROR("buffer:\n  capacity: 10GiB\ntenants:\n  a: {quota: 11GiB}\n",
                 "more than buffer.capacity (10GiB); lower it or set buffer.overcommit: true",
                 4, 14, "tenants.a.quota");
    EXPECT_ERROR("buffer:\n  capacity: 10GiB\ntenants:\n  a: {quota: 6GiB}\n  b: {quota: 6GiB}\n",
                 "the quotas add up to 12GiB", 3, 1, "tenants");
    EXPECT_ERROR("buffer:\n  path: relative\n", "not an absolute path", 2, 9, "buffer.path");
    EXPECT_ERROR("deploy:\n  dirs: [/a/../b]\n", "not an absolute path", 2, 10, "deploy.dirs[0]");
    EXPECT_ERROR("deploy:\n  dirs: [/a, /a]\n", "listed twice", 2, 14, "deploy.dirs[1]");
    EXPECT_ERROR("deploy:\n  dirs: []\n", "is empty", 2, 3, "deploy.dirs");
    EXPECT_ERROR("stores:\n  - {name: s, url: \"https://h/b\"}\n", "needs ca_file or pinned_cert",
                 2, 20, "stores[0].url");
    EXPECT_ERROR("stores:\n  - {name: s, url: \"file://rel\"}\n", "absolute path", 2, 20,
                 "stores[0].url");
    EXPECT_ERROR("stores:\n  - {name: s, url: \"ftp://h/b\"}\n", "neither", 2, 20,
                 "stores[0].url");
    EXPECT_ERROR("stores:\n  - {name: s, url: \"file:///a\"}\n  - {name: s, url: \"file:///b\"}\n",
                 "already defined", 3, 12, "stores[1].name");
    EXPECT_ERROR("stores:\n  - {url: \"file:///a\"}\n", "missing key 'name'", 2, 5, NULL);
    EXPECT_ERROR("pins:\n  - {image: a/b}\n", "not an image name", 2, 13, "pins[0].image");
    EXPECT_ERROR("pins:\n  - {image: \"..x\"}\n", "not an image name", 2, 13, "pins[0].image");
    EXPECT_ERROR("pins:\n  - {image: x, tenant: nobody}\n", "tenant 'nobody' is not defined",
                 2, 24, "pins[0].tenant");
    EXPECT_ERROR("pins:\n  - {image: x, until: tomorrow}\n", "expected never or a date", 2, 23,
                 "pins[0].until");
    EXPECT_ERROR("schedules:\n  - {when: \"someday 08:00\", image: x}\n", "expected DAYS HH:MM",
                 2, 12, "schedules[0].when");
    EXPECT_ERROR("schedules:\n  - {when: \"daily 08:00\", image: x, before: \"25:00\"}\n",
                 "expected a time HH:MM", 2, 45, "schedules[0].before");
    EXPECT_ERROR("federation:\n  enabled: true\n", "required when federation.enabled is true",
                 1, 1, "federation.ca_file");
    EXPECT_ERROR("federation:\n  listen: nowhere\n", "expected host:port", 2, 11,
                 "federation.listen");
    EXPECT_ERROR("federation:\n  peers: [\"h:0\"]\n", "is not host:port", 2, 11,
                 "federation.peers[0]");

    /* overcommit: true lets quotas exceed the capacity. */
    p = parse_str("buffer:\n  capacity: 10GiB\n  overcommit: true\n"
                  "tenants:\n  a: {quota: 20GiB}\n  b: {quota: 20GiB}\n", &d);
    assert_non_null(p);
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
}

static void
test_unknown_key(void **state)
{
    (void)state;
    EXPECT_ERROR("buffer:\n  capacty: 1GiB\n", "unknown key 'capacty'; did you mean 'capacity'?",
                 2, 3, "buffer.capacty");
    EXPECT_ERROR("bufer:\n  capacity: 1GiB\n", "did you mean 'buffer'?", 1, 1, "bufer");
    EXPECT_ERROR("tenants:\n  a: {qouta: 1GiB}\n", "did you mean 'quota'?", 2, 7,
                 "tenants.a.qouta");
    EXPECT_ERROR("buffer:\n  colour: red\n", "allowed here: path, capacity, eviction, reserve, "
                 "overcommit", 2, 3, "buffer.colour");
    EXPECT_ERROR("buffer:\n  [a]: 1\n", "keys must be plain words", 2, 3, NULL);
}

static void
test_duplicate_key(void **state)
{
    (void)state;
    EXPECT_ERROR("buffer:\n  capacity: 1GiB\n  capacity: 2GiB\n",
                 "duplicate key 'capacity' (first given at line 2)", 3, 3, "buffer.capacity");
    EXPECT_ERROR("buffer: {}\nbuffer: {}\n", "duplicate key 'buffer'", 2, 1, "buffer");
    EXPECT_ERROR("tenants:\n  a: {}\n  a: {}\n", "duplicate tenant 'a'", 3, 3, "tenants.a");
    EXPECT_ERROR("monitoring:\n  metrics: [cpu, cpu]\n", "listed twice", 2, 18,
                 "monitoring.metrics[1]");
}

static void
test_alias_bomb(void **state)
{
    struct ppf_policy_diags d;
    char text[4096];
    size_t n = 0;
    clock_t t0 = clock();

    (void)state;
    /* The billion laughs: each level refers nine times to the one below. */
    n += (size_t)snprintf(text + n, sizeof text - n, "a0: &a0 [lol]\n");
    for (int i = 1; i < 10; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    expect_error(text, n, "aliases are not allowed in a ppf policy", 1, 5, NULL);
    assert_null(parse(text, n, &d));
    ppf_policy_diags_free(&d);
    assert_true((clock() - t0) < CLOCKS_PER_SEC);
    EXPECT_ERROR("buffer: &b {}\n", "anchors and aliases are not allowed", 1, 9, "buffer");
    EXPECT_ERROR("buffer:\n  path: *x\n", "aliases are not allowed", 2, 9, "buffer.path");
    EXPECT_ERROR("buffer:\n  <<: {path: /x}\n", "unknown key '<<'", 2, 3, NULL);
}

static void
test_huge_input(void **state)
{
    size_t len = 2u << 20;
    char *text = malloc(len), path[] = "/tmp/ppf-policy-test.XXXXXX", file[64];
    struct ppf_policy_diags d;
    struct ppf_policy *p = NULL;
    FILE *fp;

    (void)state;
    assert_non_null(text);
    for (size_t i = 0; i < len; i++)
        text[i] = (i % 64 == 63) ? '\n' : '#';
    expect_error(text, len, "a policy is at most 1048576 bytes", 0, 0, "");
    /* The same from a file: refused before it is read. */
    assert_non_null(mkdtemp(path));
    snprintf(file, sizeof file, "%s/big.yaml", path);
    fp = fopen(file, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    fclose(fp);
    ppf_policy_diags_init(&d);
    assert_int_equal(ppf_policy_parse_file(file, &p, &d), -1);
    assert_null(p);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.v[0].msg, "at most"));
    assert_string_equal(d.v[0].file, file);
    ppf_policy_diags_free(&d);
    /* A missing file and a directory are reported, not crashed on. */
    assert_int_equal(ppf_policy_parse_file(path, &p, &d), -1);
    assert_non_null(strstr(d.v[0].msg, "not a regular file"));
    ppf_policy_diags_free(&d);
    unlink(file);
    assert_int_equal(ppf_policy_parse_file(file, &p, &d), -1);
    assert_non_null(strstr(d.v[0].msg, "cannot open"));
    ppf_policy_diags_free(&d);
    rmdir(path);
    /* Just under the limit: comments only, parses as the defaults. */
    p = parse(text, (1u << 20) - 64, &d);
    assert_non_null(p);
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
    free(text);
}

static void
test_deep_nesting(void **state)
{
    char text[1024];
    size_t n = 0;

    (void)state;
    /* Flow nesting under a key. */
    n += (size_t)snprintf(text, sizeof text, "pins: ");
    for (int i = 0; i < 100; i++)
        text[n++] = '[';
    for (int i = 0; i < 100; i++)
        text[n++] = ']';
    text[n++] = '\n';
    expect_error(text, n, "nesting deeper than 32 levels", 1, 6 + 32, NULL);
    /* Block nesting, as an unknown key (skipped, but still limited). */
    n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%*sk%d:\n", i, "", i);
    n += (size_t)snprintf(text + n, sizeof text - n, "%*sx: 1\n", 40, "");
    expect_error(text, n, "nesting deeper than 32 levels", 0, 0, NULL);
}

static void
test_non_utf8_and_binary(void **state)
{
    static const char latin1[] = "buffer:\n  path: /caf\xe9\n";
    static const char nul[] = "buffer:\n  path: /a\0b\n";
    static const char ctl[] = "buffer:\n  path: /a\x01\n";
    static const char overlong[] = "buffer:\n  path: /\xc0\xaf\n";
    static const char surrogate[] = "buffer:\n  path: /\xed\xa0\x80\n";
    static const char ok[] = "buffer:\n  path: /caf\xc3\xa9/\xe2\x82\xac\n";
    struct ppf_policy_diags d;
    struct ppf_policy *p;

    (void)state;
    expect_error(latin1, sizeof latin1 - 1, "invalid UTF-8 (byte 0xe9)", 2, 13, "");
    expect_error(nul, sizeof nul - 1, "NUL byte", 2, 11, "");
    expect_error(ctl, sizeof ctl - 1, "control character 0x01", 2, 11, "");
    expect_error(overlong, sizeof overlong - 1, "invalid UTF-8", 2, 10, "");
    expect_error(surrogate, sizeof surrogate - 1, "invalid UTF-8", 2, 10, "");
    /* Columns count characters, not bytes. */
    expect_error("buffer:\n  path: \"/\xc3\xa9\xc3\xa9\"\n  x\xff", 28, "invalid UTF-8", 3, 4, "");
    p = parse(ok, sizeof ok - 1, &d);
    assert_non_null(p);
    assert_string_equal(p->buffer.path, "/caf\xc3\xa9/\xe2\x82\xac");
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
    /* A UTF-8 byte order mark is allowed. */
    p = parse_str("\xef\xbb\xbf" "buffer:\n  capacity: 2GiB\n", &d);
    assert_non_null(p);
    ppf_policy_free(p);
    ppf_policy_diags_free(&d);
}

static void
test_multiple_errors(void **state)
{
    static const char text[] =
        "monitoring:\n"
        "  interval: 1 second\n"                 /* 2: wrong type */
        "buffer:\n"
        "  capacity: 64 GB\n"                     /* 4: the issue's example */
        "  evicton: lru\n"                        /* 5: unknown key */
        "table:\n"
        "  size: 0\n"                             /* 7: out of range */
        "prefetch:\n"
        "  priority: fast\n"                      /* 9: bad choice */
        "  priority: low\n";                      /* 10: duplicate */
    struct ppf_policy_diags d;
    char *out = NULL;
    size_t len = 0;
    FILE *fp;

    (void)state;
    assert_null(parse_str(text, &d));
    assert_int_equal(d.n, 6);
    /* Sorted by position. */
    assert_int_equal(d.v[0].line, 2);
    assert_int_equal(d.v[1].line, 4);
    assert_int_equal(d.v[2].line, 5);
    assert_int_equal(d.v[3].line, 7);
    assert_int_equal(d.v[4].line, 9);
    assert_int_equal(d.v[5].line, 10);
    fp = open_memstream(&out, &len);
    assert_non_null(fp);
    ppf_policy_diags_print(&d, fp);
    fclose(fp);
    assert_non_null(strstr(out, "t.yaml:4:13: buffer.capacity: '64 GB' is not a size; "
                           "write e.g. 64GiB"));
    assert_non_null(strstr(out, "t.yaml:5:3: buffer.evicton: unknown key 'evicton'; "
                           "did you mean 'eviction'?\n"));
    assert_non_null(strstr(out, "t.yaml:7:9: table.size: 0 is out of range"));
    free(out);
    ppf_policy_diags_free(&d);
}

static void
test_many_errors_bounded(void **state)
{
    size_t cap = 64 * 1024, n = 0;
    char *text = malloc(cap);
    struct ppf_policy_diags d;

    (void)state;
    assert_non_null(text);
    n += (size_t)snprintf(text, cap, "buffer:\n");
    for (int i = 0; n + 32 < cap; i++)
        n += (size_t)snprintf(text + n, cap - n, "  k%d: 1\n", i);
    assert_null(parse(text, n, &d));
    assert_int_equal(d.n, PPF_POLICY_MAX_DIAGS);
    assert_true(d.dropped > 0);
    ppf_policy_diags_free(&d);
    free(text);
}

/* --- host file checks --------------------------------------------------- */

static void
write_file(const char *path, size_t size, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    for (size_t i = 0; i < size; i++)
        fputc('k', fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

/* Parses tmpl with every "@" replaced by dir, with host file checks. */
static int
parse_with_files(const char *dir, const char *tmpl, struct ppf_policy_diags *d)
{
    char text[2048];
    struct ppf_policy *p = NULL;
    size_t n = 0;
    int rc;

    for (const char *c = tmpl; *c && n + strlen(dir) + 2 < sizeof text; c++) {
        if (*c == '@') {
            memcpy(text + n, dir, strlen(dir));
            n += strlen(dir);
        } else {
            text[n++] = *c;
        }
    }
    text[n] = '\0';
    ppf_policy_diags_init(d);
    rc = ppf_policy_parse_buffer("t.yaml", text, strlen(text), &p, d);
    ppf_policy_free(p);
    return rc;
}

static void
test_keyfile_checks(void **state)
{
    char dir[] = "/tmp/ppf-policy-test.XXXXXX", key[128], ca[128];
    const char *tenant = "tenants:\n  alice:\n    keyfile: @/alice.key\n";
    struct ppf_policy_diags d;
    const struct ppf_policy_diag *g;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(key, sizeof key, "%s/alice.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);

    /* Missing. */
    assert_int_equal(parse_with_files(dir, tenant, &d), -1);
    assert_non_null(g = find_diag(&d, "No such file"));
    assert_string_equal(g->path, "tenants.alice.keyfile");
    assert_int_equal(g->line, 3);
    assert_int_equal(g->column, 14);
    ppf_policy_diags_free(&d);
    /* Readable by others: say how to fix it. */
    write_file(key, 32, 0644);
    assert_int_equal(parse_with_files(dir, tenant, &d), -1);
    assert_non_null(g = find_diag(&d, "readable by group or others"));
    assert_non_null(strstr(g->msg, "chmod 600 "));
    assert_non_null(strstr(g->msg, key));
    ppf_policy_diags_free(&d);
    write_file(key, 32, 0640);
    assert_int_equal(parse_with_files(dir, tenant, &d), -1);
    ppf_policy_diags_free(&d);
    /* Wrong size. */
    write_file(key, 31, 0600);
    assert_int_equal(parse_with_files(dir, tenant, &d), -1);
    assert_non_null(find_diag(&d, "exactly 32 bytes"));
    ppf_policy_diags_free(&d);
    /* A directory. */
    unlink(key);
    assert_int_equal(mkdir(key, 0700), 0);
    assert_int_equal(parse_with_files(dir, tenant, &d), -1);
    assert_non_null(find_diag(&d, "not a regular file"));
    ppf_policy_diags_free(&d);
    rmdir(key);
    /* Right. */
    write_file(key, 32, 0600);
    assert_int_equal(parse_with_files(dir, tenant, &d), 0);
    assert_int_equal(d.n, 0);
    ppf_policy_diags_free(&d);
    unlink(key);

    /* Store certificates and federation files. */
    assert_int_equal(parse_with_files(dir, "stores:\n  - name: s\n    url: https://h/b\n"
                                      "    ca_file: @/ca.pem\n", &d), -1);
    assert_non_null(g = find_diag(&d, "No such file"));
    assert_string_equal(g->path, "stores[0].ca_file");
    ppf_policy_diags_free(&d);
    write_file(ca, 100, 0644);
    assert_int_equal(parse_with_files(dir, "stores:\n  - name: s\n    url: https://h/b\n"
                                      "    ca_file: @/ca.pem\n", &d), 0);
    ppf_policy_diags_free(&d);
    assert_int_equal(parse_with_files(dir, "federation:\n  enabled: true\n"
                                      "  ca_file: @/ca.pem\n  cert_file: @/ca.pem\n"
                                      "  key_file: @/ca.pem\n", &d), -1);
    assert_non_null(g = find_diag(&d, "chmod 600"));
    assert_string_equal(g->path, "federation.key_file");
    ppf_policy_diags_free(&d);
    unlink(ca);
    rmdir(dir);
}

/* --- the device codec --------------------------------------------------- */

static struct ppf_policy *
full(void)
{
    struct ppf_policy_diags d;
    struct ppf_policy *p = parse_str(full_policy, &d);

    assert_non_null(p);
    ppf_policy_diags_free(&d);
    return p;
}

static void
test_codec_round_trip(void **state)
{
    static uint8_t buf[PPF_POLICY_MAX_ENCODED];
    struct ppf_policy *p = full(), *q = NULL, *r = ppf_policy_new();
    char err[256], *a, *b;
    size_t len;

    (void)state;
    assert_int_equal(ppf_policy_encode(p, buf, sizeof buf, &len), 0);
    assert_true(len > 8 && len % 4 == 0);
    assert_memory_equal(buf, "PPFC", 4);
    assert_int_equal(ppf_policy_decode(buf, len, &q, err, sizeof err), 0);
    assert_non_null(q);
    a = emit_yaml(p);
    b = emit_yaml(q);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ppf_policy_free(q);
    /* The defaults too. */
    assert_int_equal(ppf_policy_encode(r, buf, sizeof buf, &len), 0);
    assert_int_equal(ppf_policy_decode(buf, len, &q, err, sizeof err), 0);
    a = emit_yaml(r);
    b = emit_yaml(q);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ppf_policy_free(q);
    /* Too small a buffer. */
    assert_int_equal(ppf_policy_encode(p, buf, 100, &len), -1);
    assert_int_equal(len, 0);
    ppf_policy_free(p);
    ppf_policy_free(r);
}

static void
test_codec_truncation(void **state)
{
    static uint8_t buf[PPF_POLICY_MAX_ENCODED];
    struct ppf_policy *p = full(), *q;
    char err[256];
    size_t len;

    (void)state;
    assert_int_equal(ppf_policy_encode(p, buf, sizeof buf, &len), 0);
    for (size_t n = 0; n < len; n++) {
        q = (struct ppf_policy *)1;
        err[0] = '\0';
        assert_int_equal(ppf_policy_decode(buf, n, &q, err, sizeof err), -1);
        assert_null(q);
        assert_true(err[0] != '\0');
    }
    /* Trailing bytes after the end marker. */
    memset(buf + len, 0, 8);
    assert_int_equal(ppf_policy_decode(buf, len + 8, &q, err, sizeof err), -1);
    assert_int_equal(ppf_policy_decode(NULL, 0, &q, err, sizeof err), -1);
    assert_int_equal(ppf_policy_decode(buf, 7, &q, err, sizeof err), -1);
    ppf_policy_free(p);
}

static void
test_codec_byte_flips(void **state)
{
    static uint8_t buf[PPF_POLICY_MAX_ENCODED], bad[PPF_POLICY_MAX_ENCODED];
    struct ppf_policy *p = full(), *q;
    char err[256];
    size_t len;
    unsigned seed = 12345;

    (void)state;
    assert_int_equal(ppf_policy_encode(p, buf, sizeof buf, &len), 0);
    /* Every single-byte change is caught (at the latest by the CRC). */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, buf, len);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        q = NULL;
        assert_int_equal(ppf_policy_decode(bad, len, &q, err, sizeof err), -1);
        assert_null(q);
    }
    /* Random multi-byte damage: never a crash (ASan/UBSan watch). */
    for (int k = 0; k < 3000; k++) {
        memcpy(bad, buf, len);
        for (int j = 0; j < 1 + k % 8; j++)
            bad[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
        q = NULL;
        if (ppf_policy_decode(bad, len, &q, err, sizeof err) == 0)
            ppf_policy_free(q);
    }
    ppf_policy_free(p);
}

/* Builds a blob: header, the attributes body[len], end marker with CRC. */
static size_t
blob(uint8_t *out, uint32_t version, const uint8_t *body, size_t len)
{
    struct ppf_attr_writer w;
    size_t n;

    memcpy(out, "PPFC", 4);
    memcpy(out + 4, &version, 4);
    memcpy(out + 8, body, len);
    n = 8 + len;
    ppf_attr_writer_init(&w, out + n, 64);
    assert_int_equal(ppf_attr_put_u32(&w, PPF_POLICY_ATTR_END, ppf_policy_crc32(out, n)), 0);
    return n + w.len;
}

/* Minimal valid body: the tenant "default" and a deploy dir. */
static size_t
base_body(struct ppf_attr_writer *w, uint8_t *buf, size_t cap)
{
    uint8_t t[64];
    struct ppf_attr_writer tw;

    ppf_attr_writer_init(w, buf, cap);
    ppf_attr_writer_init(&tw, t, sizeof t);
    ppf_attr_put_str(&tw, 0x3001, "default");               /* tenant name */
    ppf_attr_put(w, 0x4101, t, tw.len);                     /* tenant */
    ppf_attr_put_str(w, 0x3050, "/var/lib/libvirt/images"); /* deploy dir */
    return w->len;
}

static int
decode_body(struct ppf_attr_writer *w, char *err, size_t errlen)
{
    static uint8_t out[4096];
    struct ppf_policy *q = NULL;
    size_t n = blob(out, PPF_POLICY_VERSION, w->buf, w->len);
    int rc = ppf_policy_decode(out, n, &q, err, errlen);

    if (rc == 0)
        assert_non_null(q);
    else
        assert_null(q);
    ppf_policy_free(q);
    return rc;
}

static void
test_codec_hostile(void **state)
{
    uint8_t body[2048], out[4096], t[256];
    struct ppf_attr_writer w, tw;
    struct ppf_policy *q = NULL;
    char err[256], name[100];
    size_t n;

    (void)state;
    base_body(&w, body, sizeof body);
    assert_int_equal(decode_body(&w, err, sizeof err), 0);

    /* Header. */
    n = blob(out, PPF_POLICY_VERSION + 1, body, w.len);
    assert_int_equal(ppf_policy_decode(out, n, &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "version"));
    n = blob(out, PPF_POLICY_VERSION, body, w.len);
    out[0] = 'X';
    assert_int_equal(ppf_policy_decode(out, n, &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "PPFC"));

    /* Without the default tenant: the semantic check refuses it. */
    ppf_attr_writer_init(&w, body, sizeof body);
    ppf_attr_put_str(&w, 0x3050, "/x");
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "default"));

    /* A repeated scalar. */
    base_body(&w, body, sizeof body);
    ppf_attr_put_u32(&w, 0x1020, 10);
    ppf_attr_put_u32(&w, 0x1020, 10);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "repeated"));

    /* Wrong widths, a boolean that is not 0/1, an unknown type. */
    base_body(&w, body, sizeof body);
    ppf_attr_put_u64(&w, 0x1020, 10);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    ppf_attr_put_u32(&w, 0x5021, 2);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    ppf_attr_put_u32(&w, 0x1999, 2);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown attribute"));

    /* Strings: NUL inside, control byte, bad UTF-8, empty, too long. */
    base_body(&w, body, sizeof body);
    ppf_attr_put(&w, 0x3040, "/a\0b", 4);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "buffer.path"));
    base_body(&w, body, sizeof body);
    ppf_attr_put(&w, 0x3040, "/a\nb", 4);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    ppf_attr_put(&w, 0x3040, "/\xff\xfe", 3);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    ppf_attr_put(&w, 0x3040, "", 0);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    ppf_attr_writer_init(&tw, t, sizeof t);
    ppf_attr_put_str(&tw, 0x3001, name);
    ppf_attr_put(&w, 0x4101, t, tw.len);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);

    /* Malformed nested element; a path escaping via '..'. */
    base_body(&w, body, sizeof body);
    ppf_attr_put(&w, 0x4100, "\x01\x30\x09\x00", 4);
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    base_body(&w, body, sizeof body);
    ppf_attr_put_str(&w, 0x3050, "/var/../etc");
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "deploy.dirs[1]"));

    /* Too many deploy dirs. */
    base_body(&w, body, sizeof body);
    for (int i = 0; i < PPF_POLICY_MAX_DIRS + 1; i++) {
        char d[16];

        snprintf(d, sizeof d, "/d%d", i);
        ppf_attr_put_str(&w, 0x3050, d);
    }
    assert_int_equal(decode_body(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
}

/* Emit -> parse -> emit is stable, also for names a YAML reader could
 * mistake for other types, quotes and backslashes, non-ASCII text, and
 * tenants without a quota (written as the whole buffer). */
static void
test_emit_round_trip(void **state)
{
    static const char odd[] =
        "buffer:\n"
        "  path: '/srv/a\"b\\c \xc3\xa9'\n"
        "tenants:\n"
        "  \"yes\": {}\n"
        "  1abc: {quota: 1000B}\n"
        "  null:\n"
        "pins:\n"
        "  - image: \"\xc3\xbcnicode image\"\n"
        "    until: \"2030-01-01 10:00:00Z\"\n"
        "schedules:\n"
        "  - {when: \"sat,sun 10:00\", image: x, tenant: \"yes\"}\n";
    const char *texts[] = { odd, full_policy, "" };
    struct ppf_policy_diags d;
    struct ppf_policy *p, *q;
    char *a, *b;

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        p = parse_str(texts[i], &d);
        if (!p)
            ppf_policy_diags_print(&d, stderr);
        assert_non_null(p);
        ppf_policy_diags_free(&d);
        a = emit_yaml(p);
        q = parse_str(a, &d);
        if (!q) {
            fprintf(stderr, "%s", a);
            ppf_policy_diags_print(&d, stderr);
        }
        assert_non_null(q);
        ppf_policy_diags_free(&d);
        b = emit_yaml(q);
        assert_string_equal(a, b);
        free(a);
        free(b);
        ppf_policy_free(p);
        ppf_policy_free(q);
    }
}

static void
test_emit_json(void **state)
{
    struct ppf_policy *p = full();
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(fp);
    assert_int_equal(ppf_policy_emit_json(p, fp), 0);
    fclose(fp);
    assert_non_null(strstr(buf, "\"capacity\":\"64GiB\""));
    assert_non_null(strstr(buf, "\"bandwidth\":\"1GB/s\""));
    assert_non_null(strstr(buf, "\"alice\":{\"quota\":\"60GiB\""));
    assert_non_null(strstr(buf, "\"metrics\":[\"cpu\",\"pressure\",\"net\"]"));
    assert_non_null(strstr(buf, "\"adaptation_rate\":0.25"));
    free(buf);
    ppf_policy_free(p);
}

static void
test_check_in_memory(void **state)
{
    struct ppf_policy p;
    struct ppf_policy_diags d;
    char *s;

    (void)state;
    assert_int_equal(ppf_policy_init_defaults(&p), 0);
    ppf_policy_diags_init(&d);
    /* A policy built in code: no positions, only paths. */
    p.table.size = 0;
    free(p.tenants[0].name);
    p.tenants[0].name = strdup("other");
    s = p.buffer.path;
    p.buffer.path = NULL;
    assert_int_equal(ppf_policy_check(&p, &d), -1);
    assert_int_equal(d.n, 3);
    assert_null(d.v[0].file);
    assert_int_equal(d.v[0].line, 0);
    assert_string_equal(d.v[0].path, "table.size");
    assert_non_null(find_diag(&d, "'default' is missing"));
    p.buffer.path = s;
    ppf_policy_diags_free(&d);
    ppf_policy_clear(&p);
    ppf_policy_clear(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_stores_and_tenants_defaults),
        cmocka_unit_test(test_malformed_yaml),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_huge_input),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_non_utf8_and_binary),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_many_errors_bounded),
        cmocka_unit_test(test_keyfile_checks),
        cmocka_unit_test(test_codec_round_trip),
        cmocka_unit_test(test_codec_truncation),
        cmocka_unit_test(test_codec_byte_flips),
        cmocka_unit_test(test_codec_hostile),
        cmocka_unit_test(test_emit_round_trip),
        cmocka_unit_test(test_emit_json),
        cmocka_unit_test(test_check_in_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ppfctl explain IMAGE [--tenant T] [--json]: why an image is or is not
 * in the prefetch buffer now (EXPLAIN, schemas/device-protocol.md §5.9):
 * its entry, pins and schedules, each model's opinion, the value per byte
 * the engine gives it against what eviction would have to beat, the
 * tenant's quota, the last prefetch and eviction and their reasons.  The
 * device gives the facts; the verdict line is composed here.
 */
#include <config.h>

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "policy/policy.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

#define X_MAX_LIST  16
#define X_MAX_MODEL 8

struct x_model {
    char name[32], prob[32], eta[32], value[32], weight[32];
};

struct x_facts {
    uint32_t state, pins, stale, public_, known;
    uint64_t size, hits, quota, quota_used, capacity, used;
    int has_quota;
    char digest[80], value[32], floor[32], probability[32], concurrent[32];
    char last_evict[512], last_prefetch[512], paused[256];
    char hold[X_MAX_LIST][256], schedule[X_MAX_LIST][256], table[X_MAX_LIST][300];
    unsigned nhold, nschedule, ntable;
    struct x_model model[X_MAX_MODEL];
    unsigned nmodel;
};

/* A string attribute into a list of fixed slots (extra ones dropped). */
static int
x_list(const struct ppf_attr *a, char (*list)[256], unsigned *n, size_t width)
{
    char *slot;

    if (*n >= X_MAX_LIST)
        return 0;
    slot = (char *)list + (size_t)*n * width;
    if (ppf_attr_get_str(a, slot, width) < 0)
        return -1;
    (*n)++;
    return 0;
}

static int
x_decode(const uint8_t *buf, uint32_t len, struct x_facts *f)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct x_model *m = NULL;
    int k, rc = 0;

    memset(f, 0, sizeof *f);
    ppf_attr_reader_init(&r, buf, len);
    while (rc == 0 && (k = ppf_attr_next(&r, &a)) > 0) {
        switch (a.type) {
        case PPF_A_STATE: rc = ppf_attr_get_u32(&a, &f->state); break;
        case PPF_A_SIZE: rc = ppf_attr_get_u64(&a, &f->size); break;
        case PPF_A_PINS: rc = ppf_attr_get_u32(&a, &f->pins); break;
        case PPF_A_HITS: rc = ppf_attr_get_u64(&a, &f->hits); break;
        case PPF_A_PUBLIC: rc = ppf_attr_get_u32(&a, &f->public_); break;
        case PPF_A_DIGEST: rc = ppf_attr_get_str(&a, f->digest, sizeof f->digest); break;
        case PPF_A_X_STALE: rc = ppf_attr_get_u32(&a, &f->stale); break;
        case PPF_A_X_KNOWN: rc = ppf_attr_get_u32(&a, &f->known); break;
        case PPF_A_X_QUOTA: rc = ppf_attr_get_u64(&a, &f->quota); f->has_quota = 1; break;
        case PPF_A_X_QUOTA_USED: rc = ppf_attr_get_u64(&a, &f->quota_used); break;
        case PPF_A_X_CAPACITY: rc = ppf_attr_get_u64(&a, &f->capacity); break;
        case PPF_A_X_USED: rc = ppf_attr_get_u64(&a, &f->used); break;
        case PPF_A_X_VALUE: rc = ppf_attr_get_str(&a, f->value, sizeof f->value); break;
        case PPF_A_X_FLOOR: rc = ppf_attr_get_str(&a, f->floor, sizeof f->floor); break;
        case PPF_A_X_PROBABILITY:
            rc = ppf_attr_get_str(&a, f->probability, sizeof f->probability);
            break;
        case PPF_A_X_CONCURRENT:
            rc = ppf_attr_get_str(&a, f->concurrent, sizeof f->concurrent);
            break;
        case PPF_A_X_LAST_EVICT:
            rc = ppf_attr_get_str(&a, f->last_evict, sizeof f->last_evict);
            break;
        case PPF_A_X_LAST_PREFETCH:
            rc = ppf_attr_get_str(&a, f->last_prefetch, sizeof f->last_prefetch);
            break;
        case PPF_A_X_PAUSED: rc = ppf_attr_get_str(&a, f->paused, sizeof f->paused); break;
        case PPF_A_X_HOLD: rc = x_list(&a, f->hold, &f->nhold, sizeof f->hold[0]); break;
        case PPF_A_X_SCHEDULE:
            rc = x_list(&a, f->schedule, &f->nschedule, sizeof f->schedule[0]);
            break;
        case PPF_A_X_TABLE:
            if (f->ntable < X_MAX_LIST &&
                (rc = ppf_attr_get_str(&a, f->table[f->ntable], sizeof f->table[0])) == 0)
                f->ntable++;
            break;
        case PPF_A_X_MODEL:
            m = f->nmodel < X_MAX_MODEL ? &f->model[f->nmodel++] : NULL;
            if (m)
                rc = ppf_attr_get_str(&a, m->name, sizeof m->name);
            break;
        case PPF_A_X_PROB:
        case PPF_A_X_ETA:
        case PPF_A_X_MVALUE:
        case PPF_A_X_WEIGHT:
            if (!m)
                break;
            rc = ppf_attr_get_str(&a, a.type == PPF_A_X_PROB ? m->prob :
                                  a.type == PPF_A_X_ETA ? m->eta :
                                  a.type == PPF_A_X_MVALUE ? m->value : m->weight,
                                  sizeof m->prob);
            break;
        default:
            break;              /* newer attributes: skipped (§5.1) */
        }
    }
    return rc < 0 || k < 0 ? -1 : 0;
}

static void
x_size(uint64_t v, char *buf, size_t len)
{
    ppf_policy_format_size(v, buf, len);
}

/* The one-line answer. */
static void
x_verdict(const struct x_facts *f, const char *tenant, char *buf, size_t len)
{
    double value = f->value[0] ? strtod(f->value, NULL) : 0;
    double floor = f->floor[0] ? strtod(f->floor, NULL) : INFINITY;

    if (f->stale) {
        snprintf(buf, len, "kept but never served: its store no longer holds this version; "
                 "an existing disk or a running domain still uses it");
    } else if (f->state == PPF_ENTRY_READY) {
        snprintf(buf, len, "in the buffer, ready%s%s", f->nhold ? ", held by " : "",
                 f->nhold ? f->hold[0] : "");
    } else if (f->state == PPF_ENTRY_INFLIGHT) {
        snprintf(buf, len, "being prepared now%s%s", f->nhold ? ", held by " : "",
                 f->nhold ? f->hold[0] : "");
    } else if (f->nhold) {
        snprintf(buf, len, "not in the buffer although held by %s: it does not fit yet "
                 "(see the quota below and ppfctl events); retried", f->hold[0]);
    } else if (f->paused[0]) {
        snprintf(buf, len, "not in the buffer: %s", f->paused);
    } else if (!f->known) {
        snprintf(buf, len, "not in the buffer: no model knows it (never deployed, announced "
                 "or shared by a peer); deploy it, pin it, or schedule it");
    } else if (value <= 0) {
        snprintf(buf, len, "not in the buffer: no model expects a request for it within the "
                 "horizon");
    } else if (f->has_quota && f->quota && f->quota_used + f->size > f->quota &&
               value <= floor) {
        snprintf(buf, len, "not in the buffer: tenant %s's quota is full of entries worth "
                 "more per byte", tenant);
    } else if (value <= floor) {
        snprintf(buf, len, "not in the buffer: worth %s per byte, less than anything that "
                 "could be evicted for it (%s)", f->value, f->floor);
    } else {
        snprintf(buf, len, "not in the buffer yet: worth %s per byte, above the eviction "
                 "floor %s; the next decision (within a second, %s prefetches in flight) "
                 "brings it in unless the prefetch limit is reached", f->value, f->floor,
                 f->concurrent[0] ? f->concurrent : "?");
    }
}

static void
x_json(const struct x_facts *f, const char *image, const char *tenant, const char *verdict)
{
    struct ppf_json j;

    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_str(&j, "image", image);
    ppf_json_str(&j, "tenant", tenant);
    ppf_json_str(&j, "verdict", verdict);
    ppf_json_str(&j, "state", f->stale ? "stale" : f->state == PPF_ENTRY_READY ? "ready" :
                 f->state == PPF_ENTRY_INFLIGHT ? "in-flight" : "absent");
    if (f->state) {
        ppf_json_u64(&j, "size", f->size);
        ppf_json_u64(&j, "hits", f->hits);
        ppf_json_u64(&j, "pins", f->pins);
        ppf_json_str(&j, "digest", f->digest);
        ppf_json_bool(&j, "public", f->public_ != 0);
    }
    ppf_json_begin_array(&j, "holds");
    for (unsigned i = 0; i < f->nhold; i++)
        ppf_json_str(&j, NULL, f->hold[i]);
    ppf_json_end_array(&j);
    ppf_json_begin_array(&j, "schedules");
    for (unsigned i = 0; i < f->nschedule; i++)
        ppf_json_str(&j, NULL, f->schedule[i]);
    ppf_json_end_array(&j);
    ppf_json_bool(&j, "known", f->known != 0);
    ppf_json_double(&j, "probability", f->probability[0] ? strtod(f->probability, NULL) : 0);
    ppf_json_double(&j, "value_per_byte", f->value[0] ? strtod(f->value, NULL) : 0);
    if (f->floor[0] && isfinite(strtod(f->floor, NULL)))
        ppf_json_double(&j, "eviction_floor", strtod(f->floor, NULL));
    ppf_json_begin_array(&j, "models");
    for (unsigned i = 0; i < f->nmodel; i++) {
        const struct x_model *m = &f->model[i];

        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "model", m->name);
        if (m->prob[0]) {
            ppf_json_double(&j, "probability", strtod(m->prob, NULL));
            if (isfinite(strtod(m->eta, NULL)))
                ppf_json_double(&j, "eta_s", strtod(m->eta, NULL));
            ppf_json_double(&j, "value", strtod(m->value, NULL));
        }
        ppf_json_double(&j, "weight", strtod(m->weight, NULL));
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    ppf_json_begin_array(&j, "table");
    for (unsigned i = 0; i < f->ntable; i++)
        ppf_json_str(&j, NULL, f->table[i]);
    ppf_json_end_array(&j);
    if (f->has_quota) {
        ppf_json_u64(&j, "quota", f->quota);
        ppf_json_u64(&j, "quota_used", f->quota_used);
    }
    ppf_json_u64(&j, "capacity", f->capacity);
    ppf_json_u64(&j, "used", f->used);
    if (f->last_prefetch[0])
        ppf_json_str(&j, "last_prefetch", f->last_prefetch);
    if (f->last_evict[0])
        ppf_json_str(&j, "last_eviction", f->last_evict);
    if (f->paused[0])
        ppf_json_str(&j, "paused", f->paused);
    ppf_json_end_object(&j);
}

static void
x_text(const struct x_facts *f, const char *image, const char *tenant, const char *verdict)
{
    char a[32], b[32];

    printf("%s for %s: %s\n", image, tenant, verdict);
    if (f->state) {
        x_size(f->size, a, sizeof a);
        printf("  entry:         %s, %s%s, %" PRIu64 " hit%s, %u pin%s, version %.12s\n",
               a, f->public_ ? "public" : "private",
               f->stale ? ", stale" : "", f->hits, f->hits == 1 ? "" : "s", f->pins,
               f->pins == 1 ? "" : "s", f->digest);
    }
    for (unsigned i = 0; i < f->nhold; i++)
        printf("  %-14s %s\n", i ? "" : "held:", f->hold[i]);
    for (unsigned i = 0; i < f->nschedule; i++)
        printf("  %-14s %s\n", i ? "" : "schedules:", f->schedule[i]);
    if (f->known)
        printf("  engine:        p=%s, value per byte %s (eviction floor %s)\n",
               f->probability[0] ? f->probability : "0", f->value[0] ? f->value : "0",
               f->floor[0] ? f->floor : "?");
    for (unsigned i = 0; i < f->nmodel; i++) {
        const struct x_model *m = &f->model[i];

        if (m->prob[0])
            printf("  %-14s %-10s p=%s, expected in %s s, value %s, weight %s\n",
                   i ? "" : "models:", m->name, m->prob, m->eta, m->value, m->weight);
        else
            printf("  %-14s %-10s no opinion (weight %s)\n", i ? "" : "models:", m->name,
                   m->weight);
    }
    for (unsigned i = 0; i < f->ntable; i++)
        printf("  %-14s %s\n", i ? "" : "table:", f->table[i]);
    if (f->has_quota) {
        x_size(f->quota_used, a, sizeof a);
        x_size(f->quota, b, sizeof b);
        printf("  quota:         %s uses %s of %s\n", tenant, a, f->quota ? b : "the buffer");
    }
    x_size(f->used, a, sizeof a);
    x_size(f->capacity, b, sizeof b);
    printf("  buffer:        %s of %s used\n", a, b);
    if (f->last_prefetch[0])
        printf("  last prefetch: %s\n", f->last_prefetch);
    if (f->last_evict[0])
        printf("  last eviction: %s\n", f->last_evict);
}

int
cmd_explain(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "tenant", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *image, *tenant = "default";
    uint8_t in[1024];
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_EXPLAIN };
    struct x_facts *f;
    char verdict[600];
    int o, rc;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 'T')
            return usage_error("%s", "usage: explain IMAGE [--tenant T] [--json]");
        tenant = optarg;
    }
    if ((rc = ctl_one_image(argc, argv, tenant, &image)) != 0)
        return rc;
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if ((rc = ctl_run(c, PPF_QP_IO, &cmd, &w, image, &out)) != 0)
        return rc;
    if (!(f = malloc(sizeof *f))) {
        fprintf(stderr, "ppfctl: out of memory\n");
        return 1;
    }
    if (x_decode(out, cmd.out_len, f) < 0) {
        free(f);
        ctl_malformed("explain", PPF_OP_EXPLAIN);
        return 1;
    }
    x_verdict(f, tenant, verdict, sizeof verdict);
    if (c->json)
        x_json(f, image, tenant, verdict);
    else
        x_text(f, image, tenant, verdict);
    free(f);
    return fflush(stdout) == 0 ? 0 : 1;
}

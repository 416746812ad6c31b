/* The live predictor: see predict.h and schemas/device-protocol.md §5.7.
 * It also carries out the policy's schedules (peripheral/schedule.h): in
 * each window the scheduled image is held in the buffer, and given to the
 * predictor as a strong hint, like a DEFINED event.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "peripheral/clock.h"
#include "peripheral/engine.h"
#include "peripheral/federation.h"
#include "peripheral/monitor.h"
#include "peripheral/oplog.h"
#include "peripheral/predict.h"
#include "peripheral/schedule.h"
#include "peripheral/table.h"

#define PR_TICK          1.0    /* s between periodic predictions (monotonic) */
#define PR_SAVE_EVERY    60.0   /* s between saves of a changed store (monotonic) */
#define PR_PREDICT_K     16     /* predictions looked at per decision */
#define PR_RETRY_NOSPACE 30.0   /* s before trying again an image there was no room for */
#define PR_RETRY_FAILED  300.0  /* ... an image that could not be opened */
#define PR_RETRY_EVICTED 120.0 /* ... an image the admin just evicted */
#define PR_SETUP         1.0    /* s a miss costs besides the transfer */
#define PR_DEDUP         600.0  /* s: STARTED after DEPLOY of the same domain */
#define PR_RECENT        32     /* deploys remembered for that */
#define PR_FUTURE_MAX    86400.0

/* What the predictor remembers of an image (by engine id). */
struct pr_img {
    double retry_at;            /* wall s: no prefetch attempt before */
    bool tracked;               /* a prefetch of ours is in the buffer */
    bool hint;                  /* ... started for a DEFINED event */
    char key[PPF_TABLE_KEY];    /* the table row that predicted it */
};

struct pr_recent {
    char domain[40];
    double time;
};

/* A schedule of the policy and the window it holds. */
struct pr_sched {
    struct ppf_schedule s;
    char *when, *image, *tenant, *before;      /* before may be NULL */
    char source[PPF_TABLE_KEY]; /* "schedule WHEN": the hold's source, the table key */
    time_t held, held_end;      /* the window held in the buffer (0: none) */
    time_t told;                /* the window last logged */
};

struct ppf_predict {
    char *store_path;
    enum ppf_policy_algorithm algorithm;
    struct ppf_engine *e;
    struct ppf_table *t;
    struct ppf_buffer *b;
    struct ppf_monitor *mon;
    struct ppf_fed *fed;        /* federation with peers, or NULL */
    struct ppf_oplog *oplog;    /* may be NULL; not ours */
    /* policy */
    double bw;                  /* bytes/s of the fetch path */
    uint32_t concurrent;
    int priority;
    double lookahead;           /* s: capacity / bandwidth, at most the horizon */
    /* state */
    struct pr_img *img;
    uint32_t nimg;
    struct pr_recent recent[PR_RECENT];
    unsigned recent_next;
    struct pr_sched *sched;
    size_t nsched;
    double next_tick, last_save;        /* monotonic s */
    uint64_t last_metric_ns;
    bool dirty;
    uint64_t stat[PPF_STAT_PREDICT__MAX - PPF_STAT_EVENTS];
};

/* For the pace of the periodic work, whatever the wall clock does. */
static double
mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
stat_add(struct ppf_predict *pr, enum ppf_predict_stat s, uint64_t n)
{
    pr->stat[s - PPF_STAT_EVENTS] += n;
}

/* The local time zone's offset (s east of UTC), for time-of-day patterns. */
static double
tz_offset(void)
{
    time_t now = (time_t)ppf_clock_wall();
    struct tm tm;

    return localtime_r(&now, &tm) ? (double)tm.tm_gmtoff : 0;
}

static struct pr_img *
pr_img(struct ppf_predict *pr, uint32_t id)
{
    if (id >= pr->nimg) {
        uint32_t n = pr->nimg ? pr->nimg : 64;
        struct pr_img *v;

        while (n <= id)
            n *= 2;
        v = realloc(pr->img, (size_t)n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + pr->nimg, 0, (size_t)(n - pr->nimg) * sizeof *v);
        pr->img = v;
        pr->nimg = n;
    }
    return &pr->img[id];
}

/* --- engine and table from the policy ------------------------------------ */

static int
pr_build(const struct ppf_policy *p, const char *store_path, struct ppf_engine **ep,
         struct ppf_table **tp)
{
    struct ppf_engine_config ec;
    struct ppf_table_config tc;
    struct ppf_engine *e;
    struct ppf_table *t;
    double bw = p->prefetch.bandwidth ? (double)p->prefetch.bandwidth : 1e9;
    double lookahead;

    if (ppf_engine_config_from_policy(p, &ec) < 0)
        return -1;
    ec.tz_offset = tz_offset();
    e = ppf_engine_new(&ec);
    ppf_table_config_from_policy(p, &tc);
    t = e ? ppf_table_new(&tc) : NULL;
    if (!e || !t) {
        ppf_engine_free(e);
        return -1;
    }
    lookahead = (double)p->buffer.capacity / bw;
    if (lookahead > ec.horizon)
        lookahead = ec.horizon;
    if (lookahead < 1)
        lookahead = 1;
    ppf_engine_set_time_scale(e, lookahead);
    if (ppf_engine_load(e, store_path) < 0)
        ppf_warn("predict", "%s: the pattern store cannot be read; starting with an "
                 "empty model (the store is kept as it is)", store_path);
    *ep = e;
    *tp = t;
    return 0;
}

static void
pr_take_policy(struct ppf_predict *pr, const struct ppf_policy *p)
{
    pr->algorithm = p->learning.algorithm;
    pr->bw = p->prefetch.bandwidth ? (double)p->prefetch.bandwidth : 1e9;
    pr->concurrent = p->prefetch.concurrent ? p->prefetch.concurrent : 1;
    pr->priority = (int)p->prefetch.priority;
}

static void
pr_save(struct ppf_predict *pr)
{
    pr->last_save = mono_now();
    if (!pr->dirty)
        return;
    if (ppf_engine_save(pr->e, pr->store_path) < 0) {
        ppf_warn("predict", "%s: cannot save the pattern store: %m; what was learned "
                 "since the last save is kept in memory and saved again later",
                 pr->store_path);
        return;
    }
    pr->dirty = false;
    stat_add(pr, PPF_STAT_STORE_SAVES, 1);
}

/* --- schedules ----------------------------------------------------------- */

static void
pr_sched_free(struct pr_sched *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].when);
        free(v[i].image);
        free(v[i].tenant);
        free(v[i].before);
    }
    free(v);
}

/* The schedules of p, parsed.  0, or -1 (ENOMEM; *out untouched). */
static int
pr_sched_build(const struct ppf_policy *p, struct pr_sched **out, size_t *nout)
{
    struct pr_sched *v = p->nschedules ? calloc(p->nschedules, sizeof *v) : NULL;
    size_t n = 0;

    if (p->nschedules && !v)
        return -1;
    for (size_t i = 0; i < p->nschedules; i++) {
        const struct ppf_policy_schedule *ps = &p->schedules[i];
        struct pr_sched *s = &v[n];
        const char *tenant = ps->tenant ? ps->tenant : "default";

        /* the policy was checked: this only guards against a bad decoder */
        if (!ps->image || ppf_schedule_parse(ps->when, ps->before, &s->s) < 0) {
            ppf_warn("predict", "schedules[%zu]: \"%s\" before \"%s\" is not a schedule; "
                     "ignored", i, ps->when ? ps->when : "", ps->before ? ps->before : "");
            continue;
        }
        s->when = strdup(ps->when);
        s->image = strdup(ps->image);
        s->tenant = strdup(tenant);
        s->before = ps->before ? strdup(ps->before) : NULL;
        n++;
        if (!s->when || !s->image || !s->tenant || (ps->before && !s->before)) {
            pr_sched_free(v, n);
            return -1;
        }
        snprintf(s->source, sizeof s->source, "schedule %s", s->when);
    }
    *out = v;
    *nout = n;
    return 0;
}

static bool
pr_sched_same(const struct pr_sched *a, const struct pr_sched *b)
{
    return strcmp(a->when, b->when) == 0 && strcmp(a->image, b->image) == 0 &&
           strcmp(a->tenant, b->tenant) == 0 &&
           (a->before ? b->before && strcmp(a->before, b->before) == 0 : !b->before);
}

/* A new policy's schedules: the holds of schedules the policy dropped are
 * released; every schedule is looked at again by the next tick, at once
 * (after the buffer has taken the new policy and reloaded its entries: a
 * window already held is held again, which changes nothing, and is not
 * logged again). */
static void
pr_sched_reconfigure(struct ppf_predict *pr, const struct ppf_policy *p)
{
    struct pr_sched *v;
    size_t n;
    time_t now = (time_t)ppf_clock_wall();

    if (pr_sched_build(p, &v, &n) < 0) {
        ppf_warn("predict", "out of memory: the new policy's schedules are not in force; "
                 "the previous ones stay");
        return;
    }
    for (size_t i = 0; i < pr->nsched; i++) {
        struct pr_sched *old = &pr->sched[i];
        bool kept = false;

        for (size_t j = 0; j < n && !kept; j++)
            if (pr_sched_same(old, &v[j])) {
                v[j].told = old->told;
                kept = true;
            }
        if (!kept && old->held && old->held_end > now && pr->b &&
            ppf_buffer_unhold(pr->b, old->image, old->tenant, old->source))
            ppf_debug("predict", "schedule \"%s\" of %s for %s is no longer in the policy; "
                      "its hold is released", old->when, old->image, old->tenant);
    }
    pr_sched_free(pr->sched, pr->nsched);
    pr->sched = v;
    pr->nsched = n;
    pr->next_tick = 0;
}

/* The hint: the schedule predicts its image, like a DEFINED event; when it
 * brought the image in (started), the prefetch is tracked so that a deploy
 * counts as a hit of the row "schedule WHEN" and an eviction unused as a
 * miss. */
static void
pr_sched_hint(struct ppf_predict *pr, const struct pr_sched *s, bool started, double now)
{
    struct ppf_prediction p = { .probability = 1, .value = 1, .eta = now };
    struct pr_img *pi;

    if (pr->algorithm == PPF_ALGO_NONE ||
        ppf_engine_intern(pr->e, s->image, s->tenant, &p.image, &p.tenant) < 0 ||
        !(pi = pr_img(pr, p.image)))
        return;
    p.size = ppf_engine_image_size(pr->e, p.image);
    ppf_table_record(pr->t, s->source, &p, 1, now);
    if (!started)
        return;
    pi->tracked = true;
    pi->hint = true;
    snprintf(pi->key, sizeof pi->key, "%s", s->source);
    stat_add(pr, PPF_STAT_HINTS, 1);
}

/* A window of s opened at start: hold its image until end. */
static void
pr_sched_hold(struct ppf_predict *pr, struct pr_sched *s, time_t start, time_t end, double now)
{
    enum ppf_status_code sc;
    uint64_t size = 0;
    char msg[512], by[32];
    struct tm tm;
    int before;

    if (!localtime_r(&end, &tm) || !strftime(by, sizeof by, "%H:%M", &tm))
        snprintf(by, sizeof by, "%lld", (long long)end);
    before = ppf_buffer_entry_state(pr->b, s->image, s->tenant, NULL);
    sc = ppf_buffer_hold(pr->b, s->image, s->tenant, (uint64_t)end, s->source, msg, sizeof msg);
    ppf_buffer_entry_state(pr->b, s->image, s->tenant, &size);
    s->held = start;
    s->held_end = end;
    if (s->told == start)
        return;                 /* held again after a new policy: said already */
    s->told = start;
    /* the operations log also writes it to the log; without one, we do */
    if (pr->oplog)
        ppf_oplog_add(pr->oplog, PPF_OPLOG_SCHEDULE, s->image, s->tenant, size,
                      "schedule \"%s\": prefetching %s for %s before %s", s->when, s->image,
                      s->tenant, by);
    else
        ppf_info("predict", "schedule \"%s\": prefetching %s for %s before %s", s->when,
                 s->image, s->tenant, by);
    /* the buffer keeps a hold it could not honour yet and retries it */
    if (sc != PPF_SC_SUCCESS)
        ppf_warn("predict", "schedule \"%s\": %s for %s is not in the buffer yet: %s",
                 s->when, s->image, s->tenant, msg);
    pr_sched_hint(pr, s, sc == PPF_SC_SUCCESS && before != PPF_ENTRY_READY &&
                  before != PPF_ENTRY_INFLIGHT, now);
}

/* Ends the holds whose time is past, and holds the image of every
 * schedule whose window contains now (once per window). */
static void
pr_sched_tick(struct ppf_predict *pr, double now)
{
    time_t t = (time_t)now, start, end;

    if (!pr->b)
        return;
    ppf_buffer_holds_tick(pr->b, (uint64_t)now);
    for (size_t i = 0; i < pr->nsched; i++) {
        struct pr_sched *s = &pr->sched[i];

        if (ppf_schedule_window_at(&s->s, t, &start, &end) > 0 && s->held != start)
            pr_sched_hold(pr, s, start, end, now);
    }
}

int
ppf_predict_new(const struct ppf_policy *p, const char *state_dir, struct ppf_predict **out)
{
    struct ppf_predict *pr = calloc(1, sizeof *pr);

    *out = NULL;
    if (!pr || asprintf(&pr->store_path, "%s/patterns.nvm", state_dir) < 0) {
        free(pr);
        ppf_err("predict", "out of memory");
        return -1;
    }
    if (pr_build(p, pr->store_path, &pr->e, &pr->t) < 0) {
        ppf_err("predict", "cannot start the learning engine: %m");
        free(pr->store_path);
        free(pr);
        return -1;
    }
    pr_take_policy(pr, p);
    if (ppf_fed_new(p, &pr->fed) < 0)
        ppf_warn("predict", "federation could not start (out of memory); learning alone");
    pr->last_save = mono_now();
    if (pr_sched_build(p, &pr->sched, &pr->nsched) < 0)
        ppf_warn("predict", "out of memory: the policy's schedules are not in force");
    {
        struct ppf_engine_stats st;

        ppf_engine_get_stats(pr->e, &st);
        ppf_info("predict", "learning: %s, %" PRIu64 " images known from %s",
                 ppf_policy_algorithm_name(pr->algorithm), st.images, pr->store_path);
    }
    *out = pr;
    return 0;
}

void
ppf_predict_free(struct ppf_predict *pr)
{
    if (!pr)
        return;
    ppf_fed_free(pr->fed);
    pr_save(pr);
    pr_sched_free(pr->sched, pr->nsched);
    ppf_table_free(pr->t);
    ppf_engine_free(pr->e);
    free(pr->img);
    free(pr->store_path);
    free(pr);
}

int
ppf_predict_reconfigure(struct ppf_predict *pr, const struct ppf_policy *p)
{
    struct ppf_engine *e;
    struct ppf_table *t;

    pr_sched_reconfigure(pr, p);
    pr->dirty = true;           /* carry everything over through the store */
    pr_save(pr);
    if (pr->dirty || pr_build(p, pr->store_path, &e, &t) < 0) {
        ppf_warn("predict", "the new learning settings could not be put in force; the "
                 "previous ones stay");
        return -1;
    }
    ppf_table_free(pr->t);
    ppf_engine_free(pr->e);
    pr->e = e;
    pr->t = t;
    /* engine ids change with a new engine: forget per-id state */
    if (pr->img)
        memset(pr->img, 0, (size_t)pr->nimg * sizeof *pr->img);
    pr_take_policy(pr, p);
    /* federation: the new settings (peers, certificates) and engine */
    ppf_fed_free(pr->fed);
    pr->fed = NULL;
    if (ppf_fed_new(p, &pr->fed) < 0)
        ppf_warn("predict", "federation could not start (out of memory); learning alone");
    ppf_info("predict", "learning: %s", ppf_policy_algorithm_name(pr->algorithm));
    return 0;
}

/* --- the buffer's hooks ------------------------------------------------- */

/* Expected benefit per byte of having an image of size ready, from its
 * discounted value (0..1): the transfer and set-up a miss would cost. */
static double
pr_value_per_byte(const struct ppf_predict *pr, double value, uint64_t size)
{
    return value * (1 / pr->bw + PR_SETUP / (double)(size ? size : 1));
}

static double
hook_value(void *ctx, const char *image, const char *owner, uint64_t size, double now)
{
    struct ppf_predict *pr = ctx;
    uint32_t id;

    (void)owner;
    (void)now;                  /* monotonic; the engine runs on the wall clock */
    if (ppf_engine_find_image(pr->e, image, &id) < 0)
        return 0;
    return pr_value_per_byte(pr, ppf_engine_score(pr->e, id, ppf_clock_wall(), NULL), size);
}

static void
hook_evicted(void *ctx, const char *image, const char *owner, bool prefetched, bool used,
             bool by_admin)
{
    struct ppf_predict *pr = ctx;
    struct pr_img *pi;
    uint32_t id;

    (void)owner;
    (void)prefetched;
    if (ppf_engine_find_image(pr->e, image, &id) < 0 || !(pi = pr_img(pr, id)))
        return;
    /* the admin evicted it: bringing it straight back would undo that (room
     * made for something worth more needs no such pause: it comes back
     * only once it is worth more than what is there) */
    if (by_admin)
        pi->retry_at = ppf_clock_wall() + PR_RETRY_EVICTED;
    if (!pi->tracked)
        return;
    pi->tracked = false;
    if (!used) {
        stat_add(pr, PPF_STAT_PREDICTED_WASTED, 1);
        if (pi->key[0])
            ppf_table_feedback(pr->t, pi->key, id, false, ppf_clock_wall());
    }
}

void
ppf_predict_attach(struct ppf_predict *pr, struct ppf_buffer *b, struct ppf_monitor *mon)
{
    struct ppf_buffer_hooks h = { .ctx = pr, .value = hook_value, .evicted = hook_evicted };

    if (b != pr->b)             /* another buffer: it holds none of our windows */
        for (size_t i = 0; i < pr->nsched; i++)
            pr->sched[i].held = pr->sched[i].held_end = 0;
    pr->b = b;
    pr->mon = mon;
    if (b)
        ppf_buffer_set_hooks(b, &h);
}

/* --- decisions ---------------------------------------------------------- */

static const char *
pr_tenant_of(const struct ppf_predict *pr, uint32_t image)
{
    uint32_t tid = ppf_engine_image_tenant(pr->e, image);
    const char *t = tid != PPF_ENGINE_NO_ID ? ppf_engine_tenant_name(pr->e, tid) : NULL;

    return t ? t : "default";
}

/* Tries to prefetch image (worth value, 0..1, discounted) for the reason
 * key.  1 if a prefetch started, 0 if not. */
static int
pr_prefetch(struct ppf_predict *pr, uint32_t image, double value, double probability,
            const char *key, bool hint, double now)
{
    const char *name = ppf_engine_image_name(pr->e, image);
    const char *tenant = pr_tenant_of(pr, image);
    struct pr_img *pi = pr_img(pr, image);
    uint64_t size = 0;
    enum ppf_status_code sc;
    char msg[512], why[400];
    int state;

    if (!name || !pi || !pr->b || pi->retry_at > now)
        return 0;
    state = ppf_buffer_entry_state(pr->b, name, tenant, &size);
    if (state == PPF_ENTRY_READY || state == PPF_ENTRY_INFLIGHT)
        return 0;
    if (!size)
        size = ppf_engine_image_size(pr->e, image);
    if (hint)
        snprintf(why, sizeof why, "a domain that deploys it was defined");
    else
        snprintf(why, sizeof why, "p=%.2f, predicted %s", probability, key);
    sc = ppf_buffer_prefetch_limited(pr->b, name, tenant, pr->priority,
                                     hint ? INFINITY : pr_value_per_byte(pr, value, size),
                                     why, msg, sizeof msg);
    if (sc != PPF_SC_SUCCESS) {
        pi->retry_at = now + (sc == PPF_SC_NO_SPACE ? PR_RETRY_NOSPACE : PR_RETRY_FAILED);
        ppf_debug("predict", "not prefetching %s for %s (p=%.2f, %s): %s", name, tenant,
                  probability, key, msg);
        return 0;
    }
    pi->tracked = true;
    pi->hint = hint;
    snprintf(pi->key, sizeof pi->key, "%s", key);
    stat_add(pr, hint ? PPF_STAT_HINTS : PPF_STAT_PREDICTED, 1);
    if (hint)
        ppf_info("predict", "prefetching %s for %s: a domain that deploys it was defined",
                 name, tenant);
    else
        ppf_info("predict", "prefetching %s for %s: p=%.2f, predicted %s", name, tenant,
                 probability, key);
    return 1;
}

/* Asks the engine, records the predictions under key, and prefetches. */
static void
pr_decide(struct ppf_predict *pr, const char *key, double now)
{
    struct ppf_prediction p[PR_PREDICT_K];
    size_t n;

    if (pr->algorithm == PPF_ALGO_NONE)
        return;
    n = ppf_engine_predict(pr->e, now, p, PR_PREDICT_K);
    if (n == 0)
        return;
    ppf_table_record(pr->t, key, p, n, now);
    for (size_t i = 0; i < n; i++) {
        if (pr->b && ppf_buffer_prefetches_inflight(pr->b) >= pr->concurrent)
            break;
        pr_prefetch(pr, p[i].image, p[i].value, p[i].probability, key, false, now);
    }
}

/* Learns one deploy request.  0, or -1. */
static int
pr_learn(struct ppf_predict *pr, const char *image, const char *tenant, double when)
{
    struct ppf_engine_event ev = { .time = when };
    struct pr_img *pi;
    uint64_t size = 0;

    if (ppf_engine_intern(pr->e, image, tenant, &ev.image, &ev.tenant) < 0)
        return -1;
    if (pr->b)
        ppf_buffer_entry_state(pr->b, image, tenant, &size);
    ev.size = size;
    if (ppf_engine_observe(pr->e, &ev) < 0)
        return -1;
    pr->dirty = true;
    stat_add(pr, PPF_STAT_LEARNED, 1);
    pi = pr_img(pr, ev.image);
    if (pi && pi->tracked) {    /* one of ours was used */
        pi->tracked = false;
        stat_add(pr, PPF_STAT_PREDICTED_HITS, 1);
        if (pi->key[0])
            ppf_table_feedback(pr->t, pi->key, ev.image, true, when);
    }
    return 0;
}

static void
pr_after(struct ppf_predict *pr, const char *image, const char *tenant, double now)
{
    char key[PPF_TABLE_KEY];
    int n = snprintf(key, sizeof key, "after %s/%s", tenant, image);

    if (n >= (int)sizeof key)   /* long names: cut, marked */
        memcpy(key + sizeof key - 4, "...", 4);
    pr_decide(pr, key, now);
}

void
ppf_predict_deploy(struct ppf_predict *pr, const char *image, const char *tenant,
                   const char *domain)
{
    double now = ppf_clock_wall();

    if (domain && domain[0]) {
        struct pr_recent *r = &pr->recent[pr->recent_next++ % PR_RECENT];
        snprintf(r->domain, sizeof r->domain, "%s", domain);
        r->time = now;
    }
    if (pr_learn(pr, image, tenant, now) < 0) {
        ppf_warn("predict", "could not learn the deploy of %s: %m", image);
        return;
    }
    pr_after(pr, image, tenant, now);
}

static bool
pr_recently_deployed(const struct ppf_predict *pr, const char *domain, double now)
{
    for (unsigned i = 0; i < PR_RECENT; i++)
        if (pr->recent[i].domain[0] && strcmp(pr->recent[i].domain, domain) == 0 &&
            now - pr->recent[i].time < PR_DEDUP)
            return true;
    return false;
}

enum ppf_status_code
ppf_predict_event(struct ppf_predict *pr, const uint8_t *in, uint32_t len, uint32_t *result,
                  char *msg, size_t msglen)
{
    struct ppf_attr_reader r;
    struct ppf_attr at;
    char image[PPF_NAME_MAX + 1] = "", tenant[PPF_NAME_MAX + 1] = "default", domain[40] = "";
    uint32_t kind = 0;
    uint64_t us = 0;
    double now = ppf_clock_wall(), when;
    int k;

    *result = 0;
    ppf_attr_reader_init(&r, in, len);
    while ((k = ppf_attr_next(&r, &at)) > 0) {
        switch (at.type) {
        case PPF_A_EVENT:
            if (ppf_attr_get_u32(&at, &kind) < 0 || kind == 0 || kind >= PPF_EVENT__MAX) {
                snprintf(msg, msglen, "EVENT: the kind is not 1-%d (defined, started, stopped, "
                         "undefined, deploy)", PPF_EVENT__MAX - 1);
                return PPF_SC_INVALID_PAYLOAD;
            }
            break;
        case PPF_A_IMAGE:
            if (ppf_attr_get_str(&at, image, sizeof image) < 0 || !ppf_name_ok(image)) {
                snprintf(msg, msglen, "EVENT: the image name is not valid (1-255 letters, "
                         "digits, '.', '_' or '-')");
                return PPF_SC_INVALID_PAYLOAD;
            }
            break;
        case PPF_A_TENANT:
            if (ppf_attr_get_str(&at, tenant, sizeof tenant) < 0 || !ppf_name_ok(tenant)) {
                snprintf(msg, msglen, "EVENT: the tenant name is not valid");
                return PPF_SC_INVALID_PAYLOAD;
            }
            break;
        case PPF_A_DOMAIN:
            if (ppf_attr_get_str(&at, domain, sizeof domain) < 0 || !ppf_uuid_ok(domain)) {
                snprintf(msg, msglen, "EVENT: the domain is not a UUID");
                return PPF_SC_INVALID_PAYLOAD;
            }
            break;
        case PPF_A_TIME_US:
            if (ppf_attr_get_u64(&at, &us) < 0 || (double)us / 1e6 > now + PR_FUTURE_MAX) {
                snprintf(msg, msglen, "EVENT: the time is not a time in microseconds since "
                         "the epoch (or more than a day ahead)");
                return PPF_SC_INVALID_PAYLOAD;
            }
            break;
        default:
            break;
        }
    }
    if (k < 0) {
        snprintf(msg, msglen, "EVENT: malformed attributes");
        return PPF_SC_INVALID_PAYLOAD;
    }
    if (!kind) {
        snprintf(msg, msglen, "EVENT needs a kind (attribute %d)", PPF_A_EVENT);
        return PPF_SC_INVALID_PAYLOAD;
    }
    if (!image[0] && (kind == PPF_EVENT_DEFINED || kind == PPF_EVENT_STARTED ||
                      kind == PPF_EVENT_DEPLOY)) {
        snprintf(msg, msglen, "EVENT: this kind needs an image");
        return PPF_SC_INVALID_PAYLOAD;
    }
    stat_add(pr, PPF_STAT_EVENTS, 1);
    when = us ? (double)us / 1e6 : now;
    switch (kind) {
    case PPF_EVENT_DEFINED:
        if (pr->algorithm != PPF_ALGO_NONE) {
            uint32_t id, tid;

            if (ppf_engine_intern(pr->e, image, tenant, &id, &tid) == 0) {
                struct pr_img *pi = pr_img(pr, id);
                if (pi)
                    pi->retry_at = 0;   /* a definition is news: try again now */
                pr_prefetch(pr, id, 1, 1, "defined", true, now);
            }
        }
        break;
    case PPF_EVENT_STARTED:
        if (domain[0] && pr_recently_deployed(pr, domain, now))
            break;              /* its DEPLOY was learned already */
        /* fall through */
    case PPF_EVENT_DEPLOY:
        if (pr_learn(pr, image, tenant, when) == 0) {
            *result = 1;
            pr_after(pr, image, tenant, now);
        }
        break;
    default:
        break;
    }
    ppf_debug("predict", "event %u for %s (%s)%s", kind, image[0] ? image : "-", tenant,
              *result ? ": learned" : "");
    return PPF_SC_SUCCESS;
}

/* --- the table ----------------------------------------------------------- */

static void
put_num(struct ppf_attr_writer *w, uint16_t type, double v)
{
    char num[32];

    snprintf(num, sizeof num, "%.3g", v);
    ppf_attr_put_str(w, type, num);
}

void
ppf_predict_explain(struct ppf_predict *pr, const char *image, const char *tenant,
                    struct ppf_attr_writer *w)
{
    struct ppf_engine_opinion op[8];
    struct ppf_table_stats st;
    double now = ppf_clock_wall(), p = 0, value;
    uint64_t size;
    uint32_t id;
    size_t n;
    char text[300], a[64], b[64];
    int known = pr->e && ppf_engine_find_image(pr->e, image, &id) == 0;

    for (size_t i = 0; i < pr->nsched; i++) {
        const struct pr_sched *sc = &pr->sched[i];
        time_t start, end;
        struct tm tm;

        if (strcmp(sc->image, image) != 0 || strcmp(sc->tenant, tenant) != 0)
            continue;
        if (ppf_schedule_window_at(&sc->s, (time_t)now, &start, &end) == 1) {
            localtime_r(&end, &tm);
            strftime(b, sizeof b, "%Y-%m-%d %H:%M", &tm);
            snprintf(text, sizeof text, "%s%s%s: in its window now, held until %s", sc->when,
                     sc->before ? " before " : "", sc->before ? sc->before : "", b);
        } else if (ppf_schedule_next(&sc->s, (time_t)now, &start, &end) == 0) {
            localtime_r(&start, &tm);
            strftime(a, sizeof a, "%Y-%m-%d %H:%M", &tm);
            snprintf(text, sizeof text, "%s%s%s: next window opens %s", sc->when,
                     sc->before ? " before " : "", sc->before ? sc->before : "", a);
        } else {
            snprintf(text, sizeof text, "%s", sc->when);
        }
        ppf_attr_put_str(w, PPF_A_X_SCHEDULE, text);
    }
    ppf_attr_put_u32(w, PPF_A_X_KNOWN, known);
    snprintf(text, sizeof text, "%u of %u", ppf_buffer_prefetches_inflight(pr->b),
             pr->concurrent);
    ppf_attr_put_str(w, PPF_A_X_CONCURRENT, text);
    if (!known)
        return;
    value = ppf_engine_score(pr->e, id, now, &p);
    size = ppf_engine_image_size(pr->e, id);
    if (pr->b)
        ppf_buffer_entry_state(pr->b, image, tenant, &size);
    put_num(w, PPF_A_X_PROBABILITY, p);
    put_num(w, PPF_A_X_VALUE, pr_value_per_byte(pr, value, size));
    n = ppf_engine_explain(pr->e, id, now, op, sizeof op / sizeof *op);
    for (size_t i = 0; i < n; i++) {
        ppf_attr_put_str(w, PPF_A_X_MODEL, op[i].model);
        if (op[i].known) {
            put_num(w, PPF_A_X_PROB, op[i].probability);
            put_num(w, PPF_A_X_ETA, op[i].eta);
            put_num(w, PPF_A_X_MVALUE, op[i].value);
        }
        put_num(w, PPF_A_X_WEIGHT, op[i].weight);
    }
    if (id < pr->nimg && pr->img[id].retry_at > now) {
        time_t until = (time_t)pr->img[id].retry_at;
        struct tm tm;

        localtime_r(&until, &tm);
        strftime(a, sizeof a, "%H:%M:%S", &tm);
        snprintf(text, sizeof text, "prefetching it is paused until %s (after an "
                 "administrator's eviction, or a prefetch that found no room or failed)", a);
        ppf_attr_put_str(w, PPF_A_X_PAUSED, text);
    }
    ppf_table_get_stats(pr->t, &st);
    if (st.rows) {
        struct ppf_table_row *rows = calloc(st.rows, sizeof *rows);
        unsigned shown = 0;

        n = rows ? ppf_table_dump(pr->t, rows, st.rows) : 0;
        for (size_t i = 0; i < n && shown < 16; i++)
            for (unsigned j = 0; j < rows[i].n; j++)
                if (rows[i].e[j].image == id) {
                    snprintf(text, sizeof text, "%s: score %.2f (%" PRIu64 " hits, %" PRIu64
                             " misses)", rows[i].key, rows[i].e[j].score, rows[i].e[j].hits,
                             rows[i].e[j].misses);
                    ppf_attr_put_str(w, PPF_A_X_TABLE, text);
                    shown++;
                }
        free(rows);
    }
}

enum ppf_status_code
ppf_predict_table_dump(struct ppf_predict *pr, uint64_t start, struct ppf_attr_writer *w,
                       uint32_t *result)
{
    struct ppf_table_stats st;
    struct ppf_table_row *rows;
    size_t n;
    uint64_t shown = 0;

    ppf_table_get_stats(pr->t, &st);
    *result = st.rows;
    if (st.rows == 0 || start >= st.rows)
        return PPF_SC_SUCCESS;
    rows = calloc(st.rows, sizeof *rows);
    if (!rows)
        return PPF_SC_INTERNAL;
    n = ppf_table_dump(pr->t, rows, st.rows);
    for (size_t i = (size_t)start; i < n; i++) {
        const struct ppf_table_row *row = &rows[i];
        size_t mark = w->len;

        ppf_attr_put_str(w, PPF_A_KEY, row->key);
        ppf_attr_put_u64(w, PPF_A_HITS, row->hits);
        ppf_attr_put_u64(w, PPF_A_MISSES, row->misses);
        ppf_attr_put_u64(w, PPF_A_UPDATED_US, (uint64_t)(row->updated * 1e6));
        for (unsigned j = 0; j < row->n; j++) {
            const struct ppf_table_entry *te = &row->e[j];
            const char *name = ppf_engine_image_name(pr->e, te->image);
            uint32_t tid = ppf_engine_image_tenant(pr->e, te->image);
            const char *tn = tid != PPF_ENGINE_NO_ID ? ppf_engine_tenant_name(pr->e, tid) : NULL;
            double sc = te->score < 0 ? 0 : te->score > 1 ? 1 : te->score;

            ppf_attr_put_str(w, PPF_A_IMAGE, name ? name : "?");
            if (tn)
                ppf_attr_put_str(w, PPF_A_TENANT, tn);
            ppf_attr_put_u32(w, PPF_A_SCORE, (uint32_t)lround(sc * 1e6));
            ppf_attr_put_u64(w, PPF_A_HITS, te->hits);
            ppf_attr_put_u64(w, PPF_A_MISSES, te->misses);
        }
        if (w->overflow) {
            w->len = mark;      /* whole rows only; the host asks again */
            break;
        }
        shown++;
    }
    free(rows);
    if (w->overflow && shown == 0) {
        w->overflow = 0;
        return PPF_SC_DATA_TOO_LONG;
    }
    w->overflow = 0;
    return PPF_SC_SUCCESS;
}

/* --- periodic work ------------------------------------------------------- */

static void
pr_metrics(struct ppf_predict *pr)
{
    struct ppf_metrics_rec rec;
    struct ppf_metrics_sample s;

    if (!pr->mon || ppf_monitor_last(pr->mon, &rec, NULL) < 0 ||
        rec.time_ns == pr->last_metric_ns)
        return;
    pr->last_metric_ns = rec.time_ns;
    memset(&s, 0, sizeof s);
    s.time = (double)rec.time_ns / 1e9;
    s.n = 7;
    s.v[0] = rec.cpu_busy / 1000.0;
    s.v[1] = rec.mem_used / 1000.0;
    s.v[2] = rec.psi_cpu / 10000.0;
    s.v[3] = rec.psi_mem / 10000.0;
    s.v[4] = rec.psi_io / 10000.0;
    s.v[5] = fmin(1, (double)(rec.disk_read_bps + rec.disk_write_bps) / 1e9);
    s.v[6] = fmin(1, (double)(rec.net_rx_bps + rec.net_tx_bps) / 1e9);
    if (ppf_engine_metrics(pr->e, &s) == 0)
        pr->dirty = true;
}

void
ppf_predict_tick(struct ppf_predict *pr)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    double mono = mono_now(), now;
    const struct ppf_engine_config *c;
    char key[PPF_TABLE_KEY];
    time_t slot;
    struct tm tm;
    unsigned mins;

    /* paced by the monotonic clock: the wall clock may jump (a virtual
     * one in tests, or NTP), and reading a virtual one costs a file read */
    if (mono < pr->next_tick)
        return;
    pr->next_tick = mono + PR_TICK;
    now = ppf_clock_wall();
    pr_sched_tick(pr, now);
    pr_metrics(pr);
    if (pr->fed)
        ppf_fed_tick(pr->fed, pr->e, now);
    /* predictions by time: keyed by the slot of the day they were made in */
    c = ppf_engine_config(pr->e);
    mins = 1440 / (c->time_buckets ? c->time_buckets : 24);
    slot = (time_t)now;
    if (localtime_r(&slot, &tm)) {
        unsigned m = ((unsigned)(tm.tm_hour * 60 + tm.tm_min) / mins) * mins;
        snprintf(key, sizeof key, "at %s %02u:%02u", days[tm.tm_wday % 7], m / 60, m % 60);
        pr_decide(pr, key, now);
    }
    if (mono - pr->last_save >= PR_SAVE_EVERY)
        pr_save(pr);
}

struct ppf_fed *
ppf_predict_federation(struct ppf_predict *pr)
{
    return pr ? pr->fed : NULL;
}

void
ppf_predict_stats(struct ppf_predict *pr, struct ppf_attr_writer *w)
{
    struct ppf_table_stats st;

    ppf_table_get_stats(pr->t, &st);
    pr->stat[PPF_STAT_TABLE_ROWS - PPF_STAT_EVENTS] = st.rows;
    for (unsigned s = PPF_STAT_EVENTS; s < PPF_STAT_PREDICT__MAX; s++)
        ppf_attr_put_u64(w, (uint16_t)s, pr->stat[s - PPF_STAT_EVENTS]);
}

void
ppf_predict_set_oplog(struct ppf_predict *pr, struct ppf_oplog *log)
{
    if (pr)
        pr->oplog = log;
}

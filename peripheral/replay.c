/* Replay in virtual time (see replay.h).  An event loop over the trace's
 * requests; between two requests the fetch stream advances: demand jobs
 * in FIFO order, then a paused prefetch, then whatever the scheduler (or
 * the oracle) picks next.  No clock is read except for the wall time
 * reported, so results depend only on the inputs.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "peripheral/bufmodel.h"
#include "peripheral/replay.h"
#include "peripheral/sched.h"

#define RP_NONE         UINT32_MAX
#define RP_ORACLE_SCAN  4096    /* requests the oracle looks ahead per pick */

static const char *const rp_kind_names[] = { "engine", "lru", "belady", "oracle" };

const char *
ppf_replay_kind_name(enum ppf_replay_kind k)
{
    return (unsigned)k < PPF_REPLAY__MAX ? rp_kind_names[k] : NULL;
}

int
ppf_replay_kind_parse(const char *s)
{
    for (int i = PPF_REPLAY_LRU; i < PPF_REPLAY__MAX; i++)
        if (strcmp(s, rp_kind_names[i]) == 0)
            return i;
    return -1;
}

struct rp_job {
    uint32_t image, tenant;     /* buffer ids */
    uint64_t size;
    double remaining;           /* bytes */
    double pbytes;              /* bytes moved while a prefetch */
    uint32_t first_waiter;      /* request index, chained by next_waiter */
    uint32_t next;              /* demand FIFO / free list */
    bool demand, keep;
};

struct rp {
    const struct ppf_trace *t;
    const struct ppf_replay_config *c;
    struct ppf_replay_result *r;
    double bw;
    /* the engine run */
    struct ppf_engine *e;
    struct ppf_sched *s;
    uint32_t *eimg, *eten;      /* trace id -> engine id */
    /* belady and oracle */
    double *next_time;          /* per request: next request of its image */
    double *next_use;           /* per image: its next request from now */
    size_t cur;                 /* index of the request being handled */
    size_t scan;                /* oracle look-ahead start */
    /* common */
    struct ppf_bufmodel *b;
    struct rp_job *job;
    uint32_t njob, job_cap, free_job;
    uint32_t *job_of;           /* per buffer image id */
    uint32_t nimages;
    uint32_t running, paused, dq_head, dq_tail;
    double stream;              /* virtual time the stream has reached */
    double *lat;                /* per request */
    uint32_t *next_waiter;
    double demand_bytes, prefetch_bytes, useful_bytes;
    bool draining;              /* after the last request: demand only */
    size_t metric;              /* next metrics sample */
    struct timespec t0;         /* wall clock at the start */
};

static uint32_t
rp_job_new(struct rp *p)
{
    uint32_t j;

    if (p->free_job != RP_NONE) {
        j = p->free_job;
        p->free_job = p->job[j].next;
    } else {
        if (p->njob == p->job_cap) {
            uint32_t cap = p->job_cap ? p->job_cap * 2 : 64;
            struct rp_job *nj = realloc(p->job, cap * sizeof *nj);

            if (!nj)
                return RP_NONE;
            p->job = nj;
            p->job_cap = cap;
        }
        j = p->njob++;
    }
    memset(&p->job[j], 0, sizeof p->job[j]);
    p->job[j].first_waiter = RP_NONE;
    p->job[j].next = RP_NONE;
    return j;
}

static void
rp_dq_push(struct rp *p, uint32_t j)
{
    p->job[j].next = RP_NONE;
    if (p->dq_tail == RP_NONE)
        p->dq_head = j;
    else
        p->job[p->dq_tail].next = j;
    p->dq_tail = j;
}

static uint32_t
rp_dq_pop(struct rp *p)
{
    uint32_t j = p->dq_head;

    if (j != RP_NONE) {
        p->dq_head = p->job[j].next;
        if (p->dq_head == RP_NONE)
            p->dq_tail = RP_NONE;
    }
    return j;
}

/* The buffer's value for belady and oracle: sooner next use is worth more. */
static double
rp_future_value(void *ctx, const struct ppf_buf_entry *en, double now)
{
    struct rp *p = ctx;
    double t = p->next_use[en->image];

    (void)now;
    return isfinite(t) ? -t : -INFINITY;
}

static void
rp_complete(struct rp *p, uint32_t j, double at)
{
    struct rp_job *job = &p->job[j];

    if (job->keep)
        ppf_bufmodel_ready(p->b, job->image, at);
    for (uint32_t w = job->first_waiter; w != RP_NONE; w = p->next_waiter[w]) {
        p->lat[w] = at - p->t->ev[w].time;
        if (p->s)
            ppf_sched_note_wait(p->s, p->lat[w] - (double)job->size / p->bw);
    }
    p->job_of[job->image] = RP_NONE;
    job->next = p->free_job;
    p->free_job = j;
}

/* Starts a prefetch at the stream's time, if there is one worth it. */
static uint32_t
rp_pick_prefetch(struct rp *p)
{
    uint32_t image, tenant;
    uint64_t size;
    uint32_t j;

    if (p->c->kind == PPF_REPLAY_ENGINE) {
        struct ppf_sched_pick pk;

        if (!ppf_sched_next(p->s, p->stream, &pk))
            return RP_NONE;
        image = pk.image;
        tenant = pk.tenant == PPF_ENGINE_NO_ID ? PPF_BUF_PUBLIC : pk.tenant;
        size = pk.size;
    } else if (p->c->kind == PPF_REPLAY_ORACLE) {
        size_t i, end = p->scan + RP_ORACLE_SCAN;
        int found = 0;

        if (end > p->t->n)
            end = p->t->n;
        /* requests before cur are served; skip the prefix already covered */
        if (p->scan < p->cur)
            p->scan = p->cur;
        for (i = p->scan; i < end; i++) {
            const struct ppf_trace_event *ev = &p->t->ev[i];

            if (ppf_bufmodel_find(p->b, ev->image) || p->job_of[ev->image] != RP_NONE)
                continue;
            if (ppf_bufmodel_admit(p->b, ev->image, ev->tenant, ev->size, true, -ev->time,
                                   p->stream) == 0) {
                found = 1;
                break;
            }
            break;      /* the next needed image does not fit: wait */
        }
        if (!found)
            return RP_NONE;
        image = p->t->ev[i].image;
        tenant = p->t->ev[i].tenant;
        size = p->t->ev[i].size;
    } else {
        return RP_NONE;
    }
    j = rp_job_new(p);
    if (j == RP_NONE) {
        ppf_bufmodel_remove(p->b, image, p->stream);
        return RP_NONE;
    }
    p->job[j].image = image;
    p->job[j].tenant = tenant;
    p->job[j].size = size;
    p->job[j].remaining = (double)size;
    p->job[j].keep = true;
    p->job_of[image] = j;
    p->r->prefetches++;
    return j;
}

/* Runs the stream until virtual time `until`. */
static void
rp_advance(struct rp *p, double until)
{
    for (;;) {
        struct rp_job *job;
        double finish;

        if (p->running == RP_NONE) {
            p->running = rp_dq_pop(p);
            if (p->running == RP_NONE && p->paused != RP_NONE && !p->draining) {
                p->running = p->paused;
                p->paused = RP_NONE;
            }
            if (p->running == RP_NONE && p->stream < until && !p->draining)
                p->running = rp_pick_prefetch(p);
            if (p->running == RP_NONE) {
                double wake = p->s && !p->draining ? ppf_sched_next_poll(p->s, p->stream)
                                                   : INFINITY;

                if (wake < until) {
                    p->stream = wake;   /* idle until then, then ask again */
                    continue;
                }
                if (p->stream < until && isfinite(until))
                    p->stream = until;
                return;
            }
        }
        job = &p->job[p->running];
        finish = p->stream + job->remaining / p->bw;
        if (finish <= until) {
            if (job->demand)
                p->demand_bytes += job->remaining;
            else {
                p->prefetch_bytes += job->remaining;
                job->pbytes += job->remaining;
            }
            job->remaining = 0;
            p->stream = finish;
            rp_complete(p, p->running, finish);
            p->running = RP_NONE;
            continue;
        }
        if (until > p->stream) {
            double done = (until - p->stream) * p->bw;

            if (job->demand)
                p->demand_bytes += done;
            else {
                p->prefetch_bytes += done;
                job->pbytes += done;
            }
            job->remaining -= done;
            p->stream = until;
        }
        return;
    }
}

static void
rp_wait(struct rp *p, uint32_t j, uint32_t req)
{
    p->next_waiter[req] = p->job[j].first_waiter;
    p->job[j].first_waiter = req;
}

/* A request that missed: join a fetch of the image, or start one. */
static int
rp_miss(struct rp *p, uint32_t req, uint32_t image, uint32_t tenant, uint64_t size, double now)
{
    uint32_t j = p->job_of[image];

    if (j != RP_NONE) {
        struct rp_job *job = &p->job[j];

        if (!job->demand) {
            /* a prefetch too late: it becomes the demand fetch */
            job->demand = true;
            p->useful_bytes += job->pbytes;
            if (j == p->paused) {
                p->paused = RP_NONE;
                rp_dq_push(p, j);
            } else if (j != p->running) {
                rp_dq_push(p, j);
            }
        }
        rp_wait(p, j, req);
        return 0;
    }
    j = rp_job_new(p);
    if (j == RP_NONE)
        return -1;
    p->job[j].image = image;
    p->job[j].tenant = tenant;
    p->job[j].size = size;
    p->job[j].remaining = (double)size;
    p->job[j].demand = true;
    switch (p->c->kind) {
    case PPF_REPLAY_ENGINE:
        p->job[j].keep = ppf_sched_admit_demand(p->s, image, tenant, size, now);
        break;
    case PPF_REPLAY_LRU:
        p->job[j].keep = ppf_bufmodel_admit(p->b, image, tenant, size, false, INFINITY,
                                            now) == 0;
        break;
    default:
        p->job[j].keep = ppf_bufmodel_admit(p->b, image, tenant, size, false,
                                            isfinite(p->next_use[image])
                                            ? -p->next_use[image] : -INFINITY, now) == 0;
        break;
    }
    p->job_of[image] = j;
    rp_wait(p, j, req);
    rp_dq_push(p, j);
    if (p->running != RP_NONE && !p->job[p->running].demand) {
        /* demand first: the prefetch waits */
        p->paused = p->running;
        p->running = RP_NONE;
    }
    return 0;
}

static int
rp_dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
rp_pending(void *ctx, const struct ppf_buf_entry *en)
{
    uint64_t *pending = ctx;

    if (en->prefetched && !en->used && en->state == PPF_BUF_PREPARED)
        *pending += en->size;
}

static void
rp_progress(const struct rp *p, size_t i, int done)
{
    if (!p->c->progress)
        return;
    if (done)
        fprintf(stderr, "\r\033[K");
    else
        fprintf(stderr, "\rreplay %s %.0fGiB: %3zu%%", p->r->name,
                (double)p->c->capacity / (1ull << 30), i * 100 / p->t->n);
    fflush(stderr);
}

static int
rp_setup(struct rp *p)
{
    const struct ppf_trace *t = p->t;
    const struct ppf_replay_config *c = p->c;
    struct ppf_bufmodel_config bc = {
        .capacity = c->capacity,
        .eviction = c->kind == PPF_REPLAY_LRU ? PPF_EVICT_LRU
                  : c->kind == PPF_REPLAY_ENGINE ? c->eviction : PPF_EVICT_VALUE,
        .revalue_interval = c->kind == PPF_REPLAY_ENGINE ? c->engine.horizon / 120 : INFINITY,
    };
    uint32_t nimg = ppf_strtab_count(t->images), nten = ppf_strtab_count(t->tenants);

    p->b = ppf_bufmodel_new(&bc);
    p->lat = calloc(t->n, sizeof *p->lat);
    p->next_waiter = malloc(t->n * sizeof *p->next_waiter);
    p->job_of = malloc((nimg + 1) * sizeof *p->job_of);
    if (!p->b || !p->lat || !p->next_waiter || !p->job_of)
        return -1;
    for (uint32_t i = 0; i <= nimg; i++)
        p->job_of[i] = RP_NONE;
    p->nimages = nimg;
    if (c->kind == PPF_REPLAY_BELADY || c->kind == PPF_REPLAY_ORACLE) {
        CLEANUP_FREE double *seen = malloc((nimg + 1) * sizeof *seen);

        p->next_time = malloc(t->n * sizeof *p->next_time);
        p->next_use = malloc((nimg + 1) * sizeof *p->next_use);
        if (!seen || !p->next_time || !p->next_use)
            return -1;
        for (uint32_t i = 0; i <= nimg; i++)
            seen[i] = INFINITY;
        for (size_t i = t->n; i-- > 0;) {
            p->next_time[i] = seen[t->ev[i].image];
            seen[t->ev[i].image] = t->ev[i].time;
        }
        memcpy(p->next_use, seen, (nimg + 1) * sizeof *seen);
        ppf_bufmodel_set_callbacks(p->b, rp_future_value, NULL, p);
    }
    if (c->kind == PPF_REPLAY_ENGINE) {
        p->e = ppf_engine_new(&c->engine);
        if (!p->e)
            return -1;
        p->s = ppf_sched_new(&c->sched, p->e, p->b);
        p->eimg = malloc((nimg + 1) * sizeof *p->eimg);
        p->eten = malloc((nten + 1) * sizeof *p->eten);
        if (!p->s || !p->eimg || !p->eten)
            return -1;
        /* Intern in trace order so ids match the trace's (deterministic). */
        for (uint32_t i = 0; i < nten; i++)
            if (ppf_engine_intern_tenant(p->e, ppf_strtab_name(t->tenants, i), &p->eten[i]) < 0)
                return -1;
        for (uint32_t i = 0; i < nimg; i++) {
            uint32_t tid;

            if (ppf_engine_intern(p->e, ppf_strtab_name(t->images, i), NULL, &p->eimg[i],
                                  &tid) < 0)
                return -1;
        }
        if (c->policy) {
            for (size_t i = 0; i < c->policy->ntenants; i++) {
                const struct ppf_policy_tenant *pt = &c->policy->tenants[i];
                uint32_t tid;

                if (pt->quota && ppf_engine_intern_tenant(p->e, pt->name, &tid) == 0
                    && ppf_bufmodel_set_quota(p->b, tid, pt->quota) < 0)
                    return -1;
            }
        }
    } else if (c->policy) {
        for (size_t i = 0; i < c->policy->ntenants; i++) {
            const struct ppf_policy_tenant *pt = &c->policy->tenants[i];
            uint32_t tid;

            if (pt->quota && ppf_strtab_find(t->tenants, pt->name, strlen(pt->name), &tid) == 0
                && ppf_bufmodel_set_quota(p->b, tid, pt->quota) < 0)
                return -1;
        }
    }
    return 0;
}

static void
rp_teardown(struct rp *p)
{
    ppf_sched_free(p->s);
    ppf_engine_free(p->e);
    ppf_bufmodel_free(p->b);
    free(p->eimg);
    free(p->eten);
    free(p->next_time);
    free(p->next_use);
    free(p->job);
    free(p->job_of);
    free(p->lat);
    free(p->next_waiter);
}

/* One run, split so that several hosts can be interleaved in trace time
 * (ppf_replay_run_hosts): rp_begin, rp_step per request, rp_end. */
static int
rp_begin(struct rp *p, const struct ppf_trace *t, const struct ppf_replay_config *c,
         struct ppf_replay_result *r)
{
    memset(r, 0, sizeof *r);
    memset(p, 0, sizeof *p);
    if ((unsigned)c->kind >= PPF_REPLAY__MAX || c->capacity == 0 || c->bandwidth == 0
        || t->n == 0) {
        errno = EINVAL;
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    p->t = t;
    p->c = c;
    p->r = r;
    p->bw = (double)c->bandwidth;
    p->running = p->paused = p->dq_head = p->dq_tail = p->free_job = RP_NONE;
    snprintf(r->name, sizeof r->name, "%s", c->kind == PPF_REPLAY_ENGINE
             ? ppf_policy_algorithm_name(c->engine.algorithm) : ppf_replay_kind_name(c->kind));
    r->capacity = c->capacity;
    r->bandwidth = c->bandwidth;
    if (rp_setup(p) < 0) {
        int saved = errno ? errno : ENOMEM;

        rp_teardown(p);
        errno = saved;
        return -1;
    }
    p->stream = t->ev[0].time;
    return 0;
}

static int
rp_step(struct rp *p, size_t i)
{
    const struct ppf_trace *t = p->t;
    struct ppf_replay_result *r = p->r;
    const struct ppf_trace_event *ev = &t->ev[i];
    uint32_t image = ev->image, tenant = ev->tenant;
    const struct ppf_buf_entry *en;

    if (p->c->progress && (i & 0x3fff) == 0)
        rp_progress(p, i, 0);
    p->cur = i;
    rp_advance(p, ev->time);
    if (p->e) {
        struct ppf_engine_event eev;

        while (p->metric < t->nmetrics && t->metrics[p->metric].time <= ev->time)
            ppf_engine_metrics(p->e, &t->metrics[p->metric++]);
        image = p->eimg[ev->image];
        tenant = p->eten[ev->tenant];
        eev = (struct ppf_engine_event){ ev->time, image, tenant, ev->size };
        if (ppf_engine_observe(p->e, &eev) < 0)
            return -1;
    }
    if (p->next_use)
        p->next_use[ev->image] = p->next_time[i];
    ppf_bufmodel_revalue(p->b, image);  /* what we know of it changed */
    en = ppf_bufmodel_find(p->b, image);
    if (en && en->state == PPF_BUF_PREPARED) {
        if (en->prefetched && !en->used)
            p->useful_bytes += (double)en->size;
        ppf_bufmodel_use(p->b, image, ev->time);
        r->hits++;
        p->lat[i] = 0;
        return 0;
    }
    if (en)
        ppf_bufmodel_use(p->b, image, ev->time);
    return rp_miss(p, (uint32_t)i, image, tenant, ev->size, ev->time);
}

/* Finishes the run (ret: 0, or -1 if a step failed) and frees it. */
static int
rp_end(struct rp *p, int ret)
{
    const struct ppf_trace *t = p->t;
    struct ppf_replay_result *r = p->r;
    struct ppf_buf_stats bs;
    struct timespec t1;

    /* let the last demand fetches finish so every miss has its latency */
    if (ret == 0) {
        p->cur = t->n;
        p->draining = true;
        if (p->running != RP_NONE && !p->job[p->running].demand)
            p->running = RP_NONE;
        p->paused = RP_NONE;
        rp_advance(p, INFINITY);
    }
    rp_progress(p, t->n, 1);
    if (ret < 0) {
        rp_teardown(p);
        errno = ENOMEM;
        return -1;
    }
    r->requests = t->n;
    r->hit_ratio = (double)r->hits / (double)t->n;
    r->demand_bytes = (uint64_t)llround(p->demand_bytes);
    r->prefetch_bytes = (uint64_t)llround(p->prefetch_bytes);
    r->useful_bytes = (uint64_t)llround(p->useful_bytes);
    ppf_bufmodel_get_stats(p->b, &bs);
    r->wasted_bytes = bs.evicted_unused_bytes;
    ppf_bufmodel_foreach(p->b, rp_pending, &r->pending_bytes);
    {
        double sum = 0;

        for (size_t i = 0; i < t->n; i++)
            sum += p->lat[i];
        r->mean_latency = sum / (double)t->n;
        qsort(p->lat, t->n, sizeof *p->lat, rp_dbl_cmp);
        r->p99_latency = p->lat[(size_t)floor(0.99 * (double)(t->n - 1))];
    }
    if (p->e)
        ppf_engine_get_stats(p->e, &r->engine);
    rp_teardown(p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->wall_seconds = (double)(t1.tv_sec - p->t0.tv_sec) + (t1.tv_nsec - p->t0.tv_nsec) / 1e9;
    return 0;
}

int
ppf_replay_run(const struct ppf_trace *t, const struct ppf_replay_config *c,
               struct ppf_replay_result *r)
{
    struct rp p;
    int ret = 0;

    if (rp_begin(&p, t, c, r) < 0)
        return -1;
    for (size_t i = 0; i < t->n && ret == 0; i++)
        ret = rp_step(&p, i);
    return rp_end(&p, ret);
}

/* --- several hosts, with and without federation ------------------------- */

uint32_t
ppf_replay_host_of(const char *tenant, unsigned nhosts)
{
    uint32_t h = 2166136261u;

    for (const char *s = tenant; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    h ^= h >> 15;
    return nhosts ? h % nhosts : 0;
}

static bool
rp_share(void *ctx, const char *tenant)
{
    const struct ppf_policy *pol = ctx;

    if (!pol || !tenant)
        return true;
    for (size_t i = 0; i < pol->ntenants; i++)
        if (strcmp(pol->tenants[i].name, tenant) == 0)
            return pol->tenants[i].share;
    return true;
}

/* Every host's summary to every other host, through the wire format. */
static int
rp_exchange(struct rp *p, unsigned nhosts, double now, uint64_t *merged)
{
    for (unsigned h = 0; h < nhosts; h++) {
        struct ppf_fed_summary *s;
        uint8_t *buf;
        size_t len;
        char name[32], err[256];

        if (!p[h].e)
            continue;
        if (ppf_engine_export(p[h].e, now, rp_share, (void *)p[h].c->policy, &s) < 0)
            return -1;
        if (ppf_fed_summary_encode(s, &buf, &len) < 0) {
            ppf_fed_summary_free(s);
            return -1;
        }
        ppf_fed_summary_free(s);
        snprintf(name, sizeof name, "host%u", h);
        for (unsigned g = 0; g < nhosts; g++) {
            struct ppf_fed_merge res;

            if (g == h || !p[g].e)
                continue;
            if (ppf_fed_summary_decode(buf, len, &s, err, sizeof err) < 0
                || ppf_engine_federate(p[g].e, name, s, now, &res) < 0) {
                free(buf);
                errno = EIO;
                return -1;
            }
            *merged += res.images;
        }
        free(buf);
    }
    return 0;
}

int
ppf_replay_run_hosts(const struct ppf_trace *t, const struct ppf_replay_config *c,
                     unsigned nhosts, double interval, struct ppf_replay_result *r,
                     uint64_t *merged)
{
    CLEANUP_FREE uint32_t *host = NULL;
    CLEANUP_FREE size_t *next = NULL;
    CLEANUP_FREE struct ppf_trace *sub = NULL;
    CLEANUP_FREE struct rp *p = NULL;
    CLEANUP_FREE bool *live = NULL;
    struct ppf_replay_config hc = *c;
    double next_exchange;
    int ret = 0;

    *merged = 0;
    if (nhosts < 1 || nhosts > PPF_REPLAY_MAX_HOSTS || c->kind != PPF_REPLAY_ENGINE
        || t->n == 0 || !(interval >= 0)) {
        errno = EINVAL;
        return -1;
    }
    hc.engine.federated = interval > 0;
    hc.progress = 0;
    host = malloc(t->n * sizeof *host);
    next = calloc(nhosts, sizeof *next);
    sub = calloc(nhosts, sizeof *sub);
    p = calloc(nhosts, sizeof *p);
    live = calloc(nhosts, sizeof *live);
    if (!host || !next || !sub || !p || !live) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (c->split_requests) {
            char key[24];

            snprintf(key, sizeof key, "%zu", i);
            host[i] = ppf_replay_host_of(key, nhosts);
        } else {
            host[i] = ppf_replay_host_of(ppf_strtab_name(t->tenants, t->ev[i].tenant),
                                         nhosts);
        }
        sub[host[i]].n++;
    }
    for (unsigned h = 0; h < nhosts; h++) {
        size_t n = sub[h].n;

        sub[h] = *t;            /* the names and metrics are shared */
        sub[h].n = 0;
        sub[h].ev = n ? malloc(n * sizeof *sub[h].ev) : NULL;
        if (n && !sub[h].ev)
            ret = -1;
    }
    if (ret == 0)
        for (size_t i = 0; i < t->n; i++) {
            struct ppf_trace *s = &sub[host[i]];

            s->ev[s->n++] = t->ev[i];
        }
    for (unsigned h = 0; h < nhosts && ret == 0; h++) {
        if (sub[h].n == 0) {
            memset(&r[h], 0, sizeof r[h]);
            continue;
        }
        if (rp_begin(&p[h], &sub[h], &hc, &r[h]) < 0)
            ret = -1;
        else
            live[h] = true;
    }
    next_exchange = t->ev[0].time + interval;
    for (size_t i = 0; i < t->n && ret == 0; i++) {
        double now = t->ev[i].time;

        if (interval > 0 && now >= next_exchange) {
            if (rp_exchange(p, nhosts, now, merged) < 0)
                ret = -1;
            while (next_exchange <= now)
                next_exchange += interval;
        }
        if (ret == 0)
            ret = rp_step(&p[host[i]], next[host[i]]++);
    }
    for (unsigned h = 0; h < nhosts; h++) {
        if (live[h] && rp_end(&p[h], ret) < 0)
            ret = -1;
        free(sub[h].ev);
    }
    return ret;
}

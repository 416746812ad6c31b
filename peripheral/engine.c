/* The engine core (see engine.h): the string table, the configuration, the
 * image table with its memory bound, the ensemble that combines the models
 * by their recent accuracy, and saving/loading the learned state through
 * the NVM store.  The models themselves live in engine-<name>.c.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "peripheral/engine.h"
#include "peripheral/nvm.h"

/* --- string table ------------------------------------------------------ */

struct ppf_strtab {
    char **names;
    uint32_t *hashes;
    uint32_t n, cap;
    uint32_t *slots;            /* open addressing: id + 1, 0 = empty */
    uint32_t nslots;            /* power of two */
};

static uint32_t
st_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ? h : 1;
}

struct ppf_strtab *
ppf_strtab_new(void)
{
    struct ppf_strtab *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->nslots = 1024;
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void
ppf_strtab_free(struct ppf_strtab *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->hashes);
    free(t->slots);
    free(t);
}

static int
st_lookup(const struct ppf_strtab *t, const char *s, size_t len, uint32_t h, uint32_t *slot)
{
    uint32_t mask = t->nslots - 1, i = h & mask;

    for (;;) {
        uint32_t v = t->slots[i];

        if (v == 0) {
            *slot = i;
            return -1;
        }
        if (t->hashes[v - 1] == h && strncmp(t->names[v - 1], s, len) == 0
            && t->names[v - 1][len] == 0) {
            *slot = i;
            return (int)(v - 1);
        }
        i = (i + 1) & mask;
    }
}

static int
st_grow(struct ppf_strtab *t)
{
    uint32_t nslots = t->nslots * 2, *slots = calloc(nslots, sizeof *slots);

    if (!slots)
        return -1;
    for (uint32_t id = 0; id < t->n; id++) {
        uint32_t i = t->hashes[id] & (nslots - 1);

        while (slots[i])
            i = (i + 1) & (nslots - 1);
        slots[i] = id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

int
ppf_strtab_find(const struct ppf_strtab *t, const char *s, size_t len, uint32_t *id)
{
    uint32_t slot;
    int r;

    if (len == 0 || len > PPF_POLICY_MAX_IMAGE)
        return -1;
    r = st_lookup(t, s, len, st_hash(s, len), &slot);
    if (r < 0)
        return -1;
    *id = (uint32_t)r;
    return 0;
}

int
ppf_strtab_intern(struct ppf_strtab *t, const char *s, size_t len, uint32_t *id)
{
    uint32_t h, slot;
    int r;
    char *copy;

    if (len == 0 || len > PPF_POLICY_MAX_IMAGE || memchr(s, 0, len)) {
        errno = EINVAL;
        return -1;
    }
    h = st_hash(s, len);
    r = st_lookup(t, s, len, h, &slot);
    if (r >= 0) {
        *id = (uint32_t)r;
        return 0;
    }
    if (t->n == UINT32_MAX - 1) {
        errno = ENOMEM;
        return -1;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 256;
        char **nn = realloc(t->names, cap * sizeof *nn);
        uint32_t *nh;

        if (!nn)
            return -1;
        t->names = nn;
        nh = realloc(t->hashes, cap * sizeof *nh);
        if (!nh)
            return -1;
        t->hashes = nh;
        t->cap = cap;
    }
    copy = strndup(s, len);
    if (!copy)
        return -1;
    t->names[t->n] = copy;
    t->hashes[t->n] = h;
    t->slots[slot] = t->n + 1;
    *id = t->n++;
    if (t->n * 2 > t->nslots && st_grow(t) < 0) {
        /* Still consistent: the table is just fuller than we like. */
    }
    return 0;
}

const char *
ppf_strtab_name(const struct ppf_strtab *t, uint32_t id)
{
    return t && id < t->n ? t->names[id] : NULL;
}

uint32_t
ppf_strtab_count(const struct ppf_strtab *t)
{
    return t ? t->n : 0;
}

/* --- configuration ------------------------------------------------------ */

/* Bytes of learned state one tracked image costs, all models together:
 * how learning.store_size bounds the number of images kept in memory. */
#define ENG_BYTES_PER_IMAGE 256u

void
ppf_engine_config_default(struct ppf_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->algorithm = PPF_ALGO_ENSEMBLE;
    c->markov_order = 2;
    c->half_life = 7 * 86400.0;
    c->horizon = 3600.0;
    c->time_buckets = 24;
    c->adaptation_rate = 0.1;
    c->store_size = 16u << 20;
    c->max_images = (uint32_t)(c->store_size / ENG_BYTES_PER_IMAGE);
    c->max_contexts = 4 * c->max_images;
    c->min_probability = 0.5;
    c->tz_offset = 0;
}

int
ppf_engine_config_from_policy(const struct ppf_policy *p, struct ppf_engine_config *c)
{
    uint64_t imgs;

    ppf_engine_config_default(c);
    if (p->learning.algorithm >= PPF_ALGO__MAX || p->learning.markov_order < 1
        || p->learning.markov_order > 8 || p->learning.half_life_ms < 1000
        || p->learning.horizon_ms < 1000 || p->learning.time_buckets < 1
        || p->learning.time_buckets > 1440 || !(p->learning.adaptation_rate >= 0)
        || p->learning.adaptation_rate > 1 || p->learning.store_size < 4096) {
        errno = EINVAL;
        return -1;
    }
    c->algorithm = p->learning.algorithm;
    c->markov_order = p->learning.markov_order;
    c->half_life = p->learning.half_life_ms / 1000.0;
    c->horizon = p->learning.horizon_ms / 1000.0;
    c->time_buckets = p->learning.time_buckets;
    c->adaptation_rate = p->learning.adaptation_rate;
    c->store_size = p->learning.store_size;
    imgs = p->learning.store_size / ENG_BYTES_PER_IMAGE;
    if (imgs < 64)
        imgs = 64;
    if (imgs > (1u << 24))
        imgs = 1u << 24;
    c->max_images = (uint32_t)imgs;
    c->max_contexts = 4 * c->max_images;
    c->federated = p->federation.enabled;
    return 0;
}

/* --- the engine --------------------------------------------------------- */

#define ENG_MAX_MODELS  8
#define ENG_CANDIDATES  64      /* per model per predict */

struct eng_image {
    uint64_t size;
    uint32_t tenant;
    uint32_t count;
    double last;
    double evidence;            /* decayed request count, at last */
    uint32_t tracked_pos;       /* index in tracked[], or UINT32_MAX */
};

struct eng_claim {
    double deadline;            /* 0 = none pending */
    double p;
    uint32_t seq;
};

struct eng_claim_ref {
    double deadline;
    uint32_t image, seq;
    uint8_t model;
};

struct eng_model {
    const struct ppf_model_ops *ops;
    void *m;
    /* accuracy, decayed counts: claims resolved, claims hit, events,
     * events that a pending claim had foreseen */
    double claims, hits, events, foreseen;
    uint64_t nclaims, nhits;
    struct eng_claim *claim;    /* per image */
    uint32_t seq;
};

struct ppf_engine {
    struct ppf_engine_config cfg;
    struct ppf_strtab *images, *tenants;
    struct eng_image *img;
    uint32_t img_cap;
    uint32_t *tracked;
    uint32_t ntracked;
    struct eng_model model[ENG_MAX_MODELS];
    unsigned nmodels;
    bool ensemble;
    double now, acc_time;
    uint64_t events, metrics, evicted;
    uint64_t rng;
    /* claims waiting for their deadline, a FIFO ring (deadlines grow) */
    struct eng_claim_ref *cq;
    size_t cq_head, cq_len, cq_cap;
    /* scratch for predict */
    struct ppf_prediction *scratch;
    size_t scratch_cap;
    uint32_t *mark;
    uint32_t mark_stamp;
};

double
ppf_engine_decay(const struct ppf_engine *e, double dt)
{
    if (dt <= 0)
        return 1;
    return exp2(-dt / e->cfg.half_life);
}

double
ppf_engine_discount(const struct ppf_engine *e, double dt)
{
    double s = e->cfg.time_scale > 0 ? e->cfg.time_scale : e->cfg.horizon;

    if (dt <= 0)
        return 1;
    return s / (s + dt);
}

double
ppf_engine_window(const struct ppf_engine *e)
{
    double s = e->cfg.time_scale;

    return s > 0 && s < e->cfg.horizon ? s : e->cfg.horizon;
}

void
ppf_engine_set_time_scale(struct ppf_engine *e, double s)
{
    if (s > 0 && isfinite(s))
        e->cfg.time_scale = s;
}

double
ppf_engine_now(const struct ppf_engine *e)
{
    return e->now;
}

const struct ppf_engine_config *
ppf_engine_config(const struct ppf_engine *e)
{
    return &e->cfg;
}

static int
eng_add_model(struct ppf_engine *e, const struct ppf_model_ops *ops)
{
    struct eng_model *m = &e->model[e->nmodels];

    memset(m, 0, sizeof *m);
    m->ops = ops;
    m->m = ops->create(e);
    if (!m->m)
        return -1;
    e->nmodels++;
    return 0;
}

static int
eng_create_local_models(struct ppf_engine *e)
{
    switch (e->cfg.algorithm) {
    case PPF_ALGO_MARKOV: return eng_add_model(e, &ppf_model_markov);
    case PPF_ALGO_SEASONAL: return eng_add_model(e, &ppf_model_seasonal);
    case PPF_ALGO_HISTOGRAM: return eng_add_model(e, &ppf_model_histogram);
    case PPF_ALGO_WORKLOAD: return eng_add_model(e, &ppf_model_workload);
    case PPF_ALGO_LRU: return eng_add_model(e, &ppf_model_lru);
    case PPF_ALGO_NONE: return 0;
    case PPF_ALGO_ENSEMBLE:
        e->ensemble = true;
        if (eng_add_model(e, &ppf_model_histogram) < 0
            || eng_add_model(e, &ppf_model_markov) < 0
            || eng_add_model(e, &ppf_model_seasonal) < 0
            || eng_add_model(e, &ppf_model_workload) < 0)
            return -1;
        return 0;
    default:
        errno = EINVAL;
        return -1;
    }
}

/* The local models, and the federated one when federation is on (it
 * predicts from peers' summaries; see engine-federated.c). */
static int
eng_create_models(struct ppf_engine *e)
{
    if (eng_create_local_models(e) < 0)
        return -1;
    if (e->cfg.federated && e->cfg.algorithm != PPF_ALGO_NONE)
        return eng_add_model(e, &ppf_model_federated);
    return 0;
}

static void
eng_destroy_models(struct ppf_engine *e)
{
    for (unsigned i = 0; i < e->nmodels; i++) {
        e->model[i].ops->destroy(e->model[i].m);
        free(e->model[i].claim);
    }
    e->nmodels = 0;
    e->ensemble = false;
}

struct ppf_engine *
ppf_engine_new(const struct ppf_engine_config *cfg)
{
    struct ppf_engine *e;

    if (cfg->algorithm >= PPF_ALGO__MAX || cfg->markov_order < 1 || cfg->markov_order > 8
        || !(cfg->half_life > 0) || !(cfg->horizon > 0) || cfg->time_buckets < 1
        || cfg->time_buckets > 1440 || !(cfg->adaptation_rate >= 0)
        || cfg->adaptation_rate > 1 || cfg->max_images < 1) {
        errno = EINVAL;
        return NULL;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->cfg = *cfg;
    if (e->cfg.max_contexts < 16)
        e->cfg.max_contexts = 16;
    e->rng = 0x9e3779b97f4a7c15ull;
    e->images = ppf_strtab_new();
    e->tenants = ppf_strtab_new();
    if (!e->images || !e->tenants || eng_create_models(e) < 0) {
        ppf_engine_free(e);
        return NULL;
    }
    return e;
}

void
ppf_engine_free(struct ppf_engine *e)
{
    if (!e)
        return;
    eng_destroy_models(e);
    ppf_strtab_free(e->images);
    ppf_strtab_free(e->tenants);
    free(e->img);
    free(e->tracked);
    free(e->cq);
    free(e->scratch);
    free(e->mark);
    free(e);
}

/* Makes room for image ids below n in every per-image array. */
static int
eng_reserve_images(struct ppf_engine *e, uint32_t n)
{
    uint32_t cap = e->img_cap ? e->img_cap : 1024;
    struct eng_image *ni;
    uint32_t *nt, *nm;

    if (n <= e->img_cap)
        return 0;
    while (cap < n)
        cap *= 2;
    ni = realloc(e->img, cap * sizeof *ni);
    if (!ni)
        return -1;
    e->img = ni;
    for (uint32_t i = e->img_cap; i < cap; i++) {
        memset(&ni[i], 0, sizeof ni[i]);
        ni[i].tenant = PPF_ENGINE_NO_ID;
        ni[i].tracked_pos = UINT32_MAX;
    }
    nt = realloc(e->tracked, cap * sizeof *nt);
    if (!nt)
        return -1;
    e->tracked = nt;
    nm = realloc(e->mark, cap * sizeof *nm);
    if (!nm)
        return -1;
    memset(nm + e->img_cap, 0, (cap - e->img_cap) * sizeof *nm);
    e->mark = nm;
    for (unsigned k = 0; k < e->nmodels; k++) {
        struct eng_claim *c = realloc(e->model[k].claim, cap * sizeof *c);

        if (!c)
            return -1;
        memset(c + e->img_cap, 0, (cap - e->img_cap) * sizeof *c);
        e->model[k].claim = c;
    }
    e->img_cap = cap;
    return 0;
}

int
ppf_engine_intern(struct ppf_engine *e, const char *image, const char *tenant,
                  uint32_t *image_id, uint32_t *tenant_id)
{
    uint32_t id, tid = PPF_ENGINE_NO_ID;

    if (!image || ppf_strtab_intern(e->images, image, strlen(image), &id) < 0)
        return -1;
    if (tenant && ppf_strtab_intern(e->tenants, tenant, strlen(tenant), &tid) < 0)
        return -1;
    if (eng_reserve_images(e, id + 1) < 0)
        return -1;
    *image_id = id;
    if (tenant_id)
        *tenant_id = tid;
    return 0;
}

int
ppf_engine_intern_tenant(struct ppf_engine *e, const char *tenant, uint32_t *tenant_id)
{
    return ppf_strtab_intern(e->tenants, tenant, strlen(tenant), tenant_id);
}

int
ppf_engine_find_image(const struct ppf_engine *e, const char *image, uint32_t *image_id)
{
    return ppf_strtab_find(e->images, image, strlen(image), image_id);
}

const char *
ppf_engine_image_name(const struct ppf_engine *e, uint32_t image)
{
    return ppf_strtab_name(e->images, image);
}

const char *
ppf_engine_tenant_name(const struct ppf_engine *e, uint32_t tenant)
{
    return ppf_strtab_name(e->tenants, tenant);
}

uint64_t
ppf_engine_image_size(const struct ppf_engine *e, uint32_t image)
{
    return image < e->img_cap ? e->img[image].size : 0;
}

uint32_t
ppf_engine_image_tenant(const struct ppf_engine *e, uint32_t image)
{
    return image < e->img_cap ? e->img[image].tenant : PPF_ENGINE_NO_ID;
}

static uint64_t
eng_rand(struct ppf_engine *e)
{
    /* xorshift64*: deterministic, so replays are reproducible. */
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    return e->rng * 2685821657736338717ull;
}

static void
eng_untrack(struct ppf_engine *e, uint32_t id)
{
    uint32_t pos = e->img[id].tracked_pos, last;

    if (pos == UINT32_MAX)
        return;
    last = e->tracked[--e->ntracked];
    e->tracked[pos] = last;
    e->img[last].tracked_pos = pos;
    e->img[id].tracked_pos = UINT32_MAX;
}

/* Bounded memory: past max_images, forget the image with the least
 * evidence among a few sampled ones (never the one just seen). */
static void
eng_enforce_bound(struct ppf_engine *e, uint32_t keep)
{
    while (e->ntracked > e->cfg.max_images) {
        uint32_t victim = UINT32_MAX;
        double best = INFINITY;

        for (int s = 0; s < 8; s++) {
            uint32_t id = e->tracked[eng_rand(e) % e->ntracked];
            double ev = e->img[id].evidence * ppf_engine_decay(e, e->now - e->img[id].last);

            if (id != keep && ev < best) {
                best = ev;
                victim = id;
            }
        }
        if (victim == UINT32_MAX)
            return;
        for (unsigned k = 0; k < e->nmodels; k++) {
            e->model[k].ops->forget(e->model[k].m, victim);
            e->model[k].claim[victim].deadline = 0;
        }
        eng_untrack(e, victim);
        e->img[victim].evidence = 0;
        e->img[victim].count = 0;
        e->img[victim].last = 0;
        e->evicted++;
    }
}

/* Accuracy bookkeeping: decay, then expire the claims whose horizon has
 * passed without a request (false positives). */
static void
eng_account_time(struct ppf_engine *e, double now)
{
    double window = e->cfg.horizon / (e->cfg.adaptation_rate > 0.001
                                      ? e->cfg.adaptation_rate : 0.001);

    if (now > e->acc_time) {
        double f = exp2(-(now - e->acc_time) / window);

        for (unsigned k = 0; k < e->nmodels; k++) {
            struct eng_model *m = &e->model[k];

            m->claims *= f;
            m->hits *= f;
            m->events *= f;
            m->foreseen *= f;
        }
        e->acc_time = now;
    }
    while (e->cq_len && e->cq[e->cq_head].deadline < now) {
        struct eng_claim_ref *r = &e->cq[e->cq_head];
        struct eng_model *m = &e->model[r->model];

        if (r->image < e->img_cap && m->claim[r->image].deadline > 0
            && m->claim[r->image].seq == r->seq && m->claim[r->image].deadline < now) {
            m->claim[r->image].deadline = 0;
            m->claims += 1;
            m->nclaims++;
        }
        e->cq_head = (e->cq_head + 1) % e->cq_cap;
        e->cq_len--;
    }
}

static void
eng_claim(struct ppf_engine *e, unsigned k, uint32_t image, double p, double deadline)
{
    struct eng_model *m = &e->model[k];
    struct eng_claim *c = &m->claim[image];
    struct eng_claim_ref *r;

    if (c->deadline > 0) {
        /* Already pending: extend it, one outcome per claim. */
        if (deadline <= c->deadline)
            return;
    }
    if (e->cq_len == e->cq_cap) {
        size_t cap = e->cq_cap ? e->cq_cap * 2 : 1024;
        struct eng_claim_ref *nq = malloc(cap * sizeof *nq);

        if (!nq)
            return;
        for (size_t i = 0; i < e->cq_len; i++)
            nq[i] = e->cq[(e->cq_head + i) % e->cq_cap];
        free(e->cq);
        e->cq = nq;
        e->cq_head = 0;
        e->cq_cap = cap;
    }
    c->deadline = deadline;
    c->p = p;
    c->seq = ++m->seq;
    r = &e->cq[(e->cq_head + e->cq_len) % e->cq_cap];
    r->deadline = deadline;
    r->image = image;
    r->seq = c->seq;
    r->model = (uint8_t)k;
    e->cq_len++;
}

int
ppf_engine_observe(struct ppf_engine *e, const struct ppf_engine_event *ev0)
{
    struct ppf_engine_event ev = *ev0;
    struct eng_image *im;

    if (ev.image >= e->img_cap || ev.image >= ppf_strtab_count(e->images)
        || !isfinite(ev.time)) {
        errno = EINVAL;
        return -1;
    }
    if (ev.time < e->now)
        ev.time = e->now;
    e->now = ev.time;
    eng_account_time(e, ev.time);
    for (unsigned k = 0; k < e->nmodels; k++) {
        struct eng_model *m = &e->model[k];
        struct eng_claim *c = &m->claim[ev.image];

        m->events += 1;
        if (c->deadline > 0 && c->deadline >= ev.time) {
            m->hits += 1;
            m->claims += 1;
            m->foreseen += 1;
            m->nclaims++;
            m->nhits++;
        }
        c->deadline = 0;
    }

    im = &e->img[ev.image];
    if (ev.size)
        im->size = ev.size;
    if (ev.tenant != PPF_ENGINE_NO_ID)
        im->tenant = ev.tenant;
    im->evidence = im->evidence * ppf_engine_decay(e, ev.time - im->last) + 1;
    im->last = ev.time;
    im->count++;
    if (im->tracked_pos == UINT32_MAX) {
        im->tracked_pos = e->ntracked;
        e->tracked[e->ntracked++] = ev.image;
    }
    for (unsigned k = 0; k < e->nmodels; k++)
        e->model[k].ops->observe(e->model[k].m, &ev);
    e->events++;
    eng_enforce_bound(e, ev.image);
    return 0;
}

int
ppf_engine_metrics(struct ppf_engine *e, const struct ppf_metrics_sample *s)
{
    if (s->n > PPF_ENGINE_MAX_METRICS || !isfinite(s->time)) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned i = 0; i < s->n; i++)
        if (!isfinite(s->v[i])) {
            errno = EINVAL;
            return -1;
        }
    for (unsigned k = 0; k < e->nmodels; k++)
        if (e->model[k].ops->observe_metrics)
            e->model[k].ops->observe_metrics(e->model[k].m, s);
    e->metrics++;
    return 0;
}

/* Precision of a model's recent claims; an untried model is trusted until
 * its claims miss (one prior hit). */
static double
eng_precision(const struct eng_model *m)
{
    return (m->hits + 1) / (m->claims + 1);
}

static int
pred_cmp(const void *a, const void *b)
{
    const struct ppf_prediction *x = a, *y = b;

    if (x->value != y->value)
        return x->value > y->value ? -1 : 1;
    if (x->image != y->image)
        return x->image < y->image ? -1 : 1;
    return 0;
}

size_t
ppf_prediction_top(struct ppf_prediction *v, size_t n, size_t k)
{
    /* Candidate lists are short (a few hundred): sort and cut. */
    if (n > 1)
        qsort(v, n, sizeof *v, pred_cmp);
    return n < k ? n : k;
}

/* The ensemble's opinion on one image.  Each model is a detector with its
 * own recall: one that knows the image but is silent about the window
 * (an irregular image, to the histogram) is no evidence against a model
 * that has learned the chain leading to it.  So the opinion is that of
 * the most convinced model, discounted by the precision of its own recent
 * claims (a model that cries wolf counts for less).  Returns the value;
 * 0 with *p 0 if no model knows the image. */
static double
eng_combine(struct ppf_engine *e, uint32_t image, double now, double *p, double *eta)
{
    double best_p = 0, best_v = 0;
    int known = 0;

    *p = 0;
    *eta = INFINITY;
    for (unsigned k = 0; k < e->nmodels; k++) {
        struct eng_model *m = &e->model[k];
        double mp, meta, mv, prec;

        if (!m->ops->score(m->m, image, now, &mp, &meta, &mv))
            continue;
        known = 1;
        /* peers' evidence is always weighed by its record here */
        prec = e->ensemble || m->ops == &ppf_model_federated ? eng_precision(m) : 1;
        if (mp * prec > best_p) {
            best_p = mp * prec;
            *eta = meta;
        }
        if (mv * prec > best_v)
            best_v = mv * prec;
    }
    if (!known)
        return 0;
    *p = best_p;
    return best_v;
}

size_t
ppf_engine_explain(struct ppf_engine *e, uint32_t image, double now,
                   struct ppf_engine_opinion *out, size_t n)
{
    size_t k = 0;

    for (unsigned i = 0; i < e->nmodels && k < n; i++) {
        struct eng_model *m = &e->model[i];
        struct ppf_engine_opinion *o = &out[k++];
        double mp = 0, meta = INFINITY, mv = 0;

        o->model = m->ops->name;
        o->known = image < e->img_cap && m->ops->score(m->m, image, now, &mp, &meta, &mv);
        o->weight = e->ensemble || m->ops == &ppf_model_federated ? eng_precision(m) : 1;
        o->probability = o->known ? mp : 0;
        /* the models give the expected time of the request; say how far off */
        o->eta = o->known && isfinite(meta) ? (meta > now ? meta - now : 0) : INFINITY;
        o->value = o->known ? mv : 0;
    }
    return k;
}

double
ppf_engine_score(struct ppf_engine *e, uint32_t image, double now, double *p)
{
    double eta, pp;

    if (!p)
        p = &pp;
    *p = 0;
    if (image >= e->img_cap)
        return 0;
    return eng_combine(e, image, now, p, &eta);
}

static int
eng_scratch(struct ppf_engine *e, size_t n)
{
    struct ppf_prediction *s;

    if (n <= e->scratch_cap)
        return 0;
    s = realloc(e->scratch, n * sizeof *s);
    if (!s)
        return -1;
    e->scratch = s;
    e->scratch_cap = n;
    return 0;
}

size_t
ppf_engine_predict(struct ppf_engine *e, double now, struct ppf_prediction *out, size_t k)
{
    size_t n = 0, per = ENG_CANDIDATES;

    if (k == 0 || e->nmodels == 0)
        return 0;
    if (per < k)
        per = k;
    if (eng_scratch(e, (e->nmodels + 1) * per) < 0)
        return 0;
    eng_account_time(e, now);
    if (++e->mark_stamp == 0) {
        memset(e->mark, 0, e->img_cap * sizeof *e->mark);
        e->mark_stamp = 1;
    }
    /* Gather each model's candidates; record its claims for accuracy. */
    for (unsigned m = 0; m < e->nmodels; m++) {
        struct ppf_prediction *c = e->scratch + e->nmodels * per;
        size_t nc = e->model[m].ops->candidates(e->model[m].m, now, c, per);

        for (size_t i = 0; i < nc; i++) {
            uint32_t id = c[i].image;

            if (id >= e->img_cap)
                continue;
            if (c[i].probability >= e->cfg.min_probability)
                eng_claim(e, m, id, c[i].probability, now + ppf_engine_window(e));
            if (e->mark[id] == e->mark_stamp)
                continue;
            e->mark[id] = e->mark_stamp;
            e->scratch[n++].image = id;
        }
    }
    /* Score the union with every model. */
    {
        size_t kept = 0;

        for (size_t i = 0; i < n; i++) {
            struct ppf_prediction *pr = &e->scratch[kept];
            uint32_t id = e->scratch[i].image;
            double p, eta, v = eng_combine(e, id, now, &p, &eta);

            if (p < e->cfg.min_probability || v <= 0)
                continue;
            pr->image = id;
            pr->tenant = e->img[id].tenant;
            pr->size = e->img[id].size;
            pr->probability = p;
            pr->eta = eta;
            pr->value = v;
            kept++;
        }
        n = ppf_prediction_top(e->scratch, kept, k);
    }
    if (n)
        memcpy(out, e->scratch, n * sizeof *out);
    return n;
}

void
ppf_engine_get_stats(const struct ppf_engine *e, struct ppf_engine_stats *st)
{
    memset(st, 0, sizeof *st);
    st->events = e->events;
    st->metrics = e->metrics;
    st->images = e->ntracked;
    st->evicted_images = e->evicted;
    st->nmodels = e->nmodels;
    for (unsigned k = 0; k < e->nmodels; k++) {
        const struct eng_model *m = &e->model[k];

        st->model[k].name = m->ops->name;
        st->model[k].weight = e->ensemble || m->ops == &ppf_model_federated
            ? eng_precision(m) : 1;
        st->model[k].precision = eng_precision(m);
        st->model[k].recall = (m->foreseen + 0.5) / (m->events + 1);
        st->model[k].claims = m->nclaims;
        st->model[k].hits = m->nhits;
    }
}

/* --- federation (schemas/federation.md) --------------------------------- */

static int eng_evidence_cmp(const void *a, const void *b, void *arg);

int
ppf_engine_export(struct ppf_engine *e, double now,
                  bool (*share)(void *ctx, const char *tenant), void *ctx,
                  struct ppf_fed_summary **out)
{
    CLEANUP_FREE uint32_t *order = NULL;
    struct ppf_fed_builder *b;
    double saved_now = e->now;

    *out = NULL;
    order = malloc(((size_t)e->ntracked + 1) * sizeof *order);
    b = ppf_fed_builder_new(e->img_cap, now);
    if (!order || !b) {
        if (b)
            ppf_fed_summary_free(ppf_fed_builder_finish(b));
        errno = ENOMEM;
        return -1;
    }
    if (e->ntracked)
        memcpy(order, e->tracked, e->ntracked * sizeof *order);
    /* most evidence first, at now (eng_evidence_cmp reads e->now) */
    if (now > e->now)
        e->now = now;
    qsort_r(order, e->ntracked, sizeof *order, eng_evidence_cmp, e);
    e->now = saved_now;
    for (uint32_t i = 0; i < e->ntracked; i++) {
        const struct eng_image *im = &e->img[order[i]];
        const char *t = ppf_strtab_name(e->tenants, im->tenant);
        int r;

        if (share && !share(ctx, t))
            continue;
        r = ppf_fed_builder_image(b, order[i], ppf_strtab_name(e->images, order[i]), t,
                                  im->size, im->evidence * ppf_engine_decay(e, now - im->last),
                                  now > im->last ? now - im->last : 0);
        if (r < 0)
            break;
        if (r == 0 && i >= PPF_FED_MAX_IMAGES)
            break;
    }
    for (unsigned k = 0; k < e->nmodels; k++)
        if (e->model[k].ops->export_evidence)
            e->model[k].ops->export_evidence(e->model[k].m, now, b);
    *out = ppf_fed_builder_finish(b);
    if (!*out) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static struct eng_model *
eng_federated(struct ppf_engine *e)
{
    for (unsigned k = 0; k < e->nmodels; k++)
        if (e->model[k].ops == &ppf_model_federated)
            return &e->model[k];
    return NULL;
}

int
ppf_engine_federate(struct ppf_engine *e, const char *peer, struct ppf_fed_summary *s,
                    double now, struct ppf_fed_merge *res)
{
    struct eng_model *m = eng_federated(e);
    /* peers may make the engine know names it never tracks: bounded */
    uint32_t limit = e->cfg.max_images > UINT32_MAX / 2 ? UINT32_MAX - 1 : 2 * e->cfg.max_images;
    uint32_t *map;

    memset(res, 0, sizeof *res);
    if (!m) {
        ppf_fed_summary_free(s);
        return 0;
    }
    map = malloc(((size_t)s->nimages + 1) * sizeof *map);
    if (!map) {
        ppf_fed_summary_free(s);
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t i = 0; i < s->nimages; i++) {
        const struct ppf_fed_image *fi = &s->images[i];
        uint32_t id, tid = PPF_ENGINE_NO_ID;

        map[i] = PPF_ENGINE_NO_ID;
        if (ppf_strtab_find(e->images, fi->name, strlen(fi->name), &id) < 0
            && ppf_strtab_count(e->images) >= limit) {
            res->dropped++;
            continue;
        }
        if (ppf_engine_intern(e, fi->name, fi->tenant, &id, &tid) < 0) {
            res->dropped++;
            continue;
        }
        /* what the engine did not know yet: the image's owner and size */
        if (e->img[id].tenant == PPF_ENGINE_NO_ID)
            e->img[id].tenant = tid;
        if (!e->img[id].size)
            e->img[id].size = fi->size;
        map[i] = id;
        res->images++;
    }
    for (uint32_t i = 0; i < s->nedges; i++)
        if (map[s->edges[i].from] != PPF_ENGINE_NO_ID && map[s->edges[i].to] != PPF_ENGINE_NO_ID)
            res->edges++;
    /* claim arrays cover the new ids (ppf_engine_intern reserved them) */
    return ppf_fed_model_merge(m->m, peer, s, map, now);
}

int
ppf_engine_forget_peer(struct ppf_engine *e, const char *peer)
{
    struct eng_model *m = eng_federated(e);

    return m ? ppf_fed_model_forget_peer(m->m, peer) : -1;
}

/* --- saving and loading ------------------------------------------------- */

#define ENG_STORE_TAG 0x31474e45u   /* "ENG1" */

static int
eng_evidence_cmp(const void *a, const void *b, void *arg)
{
    const struct ppf_engine *e = arg;
    const uint32_t *x = a, *y = b;
    double ex = e->img[*x].evidence * ppf_engine_decay(e, e->now - e->img[*x].last);
    double ey = e->img[*y].evidence * ppf_engine_decay(e, e->now - e->img[*y].last);

    if (ex != ey)
        return ex > ey ? -1 : 1;
    return *x < *y ? -1 : *x > *y;
}

/* Serializes the n images of order[] with most evidence. */
static int
eng_serialize(struct ppf_engine *e, const uint32_t *order, uint32_t n, uint32_t *remap,
              struct ppf_nvm_writer *w)
{
    for (uint32_t i = 0; i < e->img_cap; i++)
        remap[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++)
        remap[order[i]] = i;
    ppf_nvm_put_u32(w, ENG_STORE_TAG);
    ppf_nvm_put_u32(w, e->cfg.algorithm);
    ppf_nvm_put_f64(w, e->acc_time > e->now ? e->acc_time : e->now);
    ppf_nvm_put_u32(w, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct eng_image *im = &e->img[order[i]];
        const char *t = ppf_strtab_name(e->tenants, im->tenant);

        ppf_nvm_put_str(w, ppf_strtab_name(e->images, order[i]));
        ppf_nvm_put_u8(w, t != NULL);
        if (t)
            ppf_nvm_put_str(w, t);
        ppf_nvm_put_u64(w, im->size);
        ppf_nvm_put_f64(w, im->last);
        ppf_nvm_put_f64(w, im->evidence);
        ppf_nvm_put_u32(w, im->count);
    }
    ppf_nvm_put_u32(w, e->nmodels);
    for (unsigned k = 0; k < e->nmodels; k++) {
        struct ppf_nvm_writer sub;

        ppf_nvm_writer_init(&sub, 0);
        if (e->model[k].ops->save(e->model[k].m, &sub, remap) < 0)
            sub.error = sub.error ? sub.error : EIO;
        ppf_nvm_put_str(w, e->model[k].ops->name);
        ppf_nvm_put_f64(w, e->model[k].claims);
        ppf_nvm_put_f64(w, e->model[k].hits);
        ppf_nvm_put_f64(w, e->model[k].events);
        ppf_nvm_put_f64(w, e->model[k].foreseen);
        ppf_nvm_put_u64(w, sub.len);
        ppf_nvm_put_bytes(w, sub.buf, sub.len);
        if (sub.error && !w->error)
            w->error = sub.error;
        ppf_nvm_writer_free(&sub);
    }
    return w->error ? -1 : 0;
}

int
ppf_engine_save(struct ppf_engine *e, const char *path)
{
    CLEANUP_FREE uint32_t *order = NULL;
    CLEANUP_FREE uint32_t *remap = NULL;
    uint64_t budget = e->cfg.store_size > PPF_NVM_HEADER + PPF_NVM_TRAILER
        ? e->cfg.store_size - PPF_NVM_HEADER - PPF_NVM_TRAILER : 0;
    uint32_t n = e->ntracked;

    order = malloc((e->ntracked + 1) * sizeof *order);
    remap = malloc((e->img_cap + 1) * sizeof *remap);
    if (!order || !remap) {
        ppf_err("engine", "%s: out of memory saving the learned state", path);
        return -1;
    }
    if (e->ntracked)
        memcpy(order, e->tracked, e->ntracked * sizeof *order);
    qsort_r(order, e->ntracked, sizeof *order, eng_evidence_cmp, e);
    /* Shrink until it fits the store: the least evidence goes first. */
    for (int tries = 0; tries < 32; tries++) {
        struct ppf_nvm_writer w;
        int r;

        ppf_nvm_writer_init(&w, 0);
        if (eng_serialize(e, order, n, remap, &w) < 0 && w.error != E2BIG) {
            ppf_nvm_writer_free(&w);
            ppf_err("engine", "%s: cannot serialize the learned state (out of memory)", path);
            return -1;
        }
        if (budget && w.len > budget && n > 0) {
            uint32_t nn = (uint32_t)((double)n * (double)budget / (double)w.len * 0.95);

            n = nn < n ? nn : n - 1;
            ppf_nvm_writer_free(&w);
            continue;
        }
        r = ppf_nvm_write_file(path, w.buf, w.len, e->cfg.store_size);
        ppf_nvm_writer_free(&w);
        return r;
    }
    ppf_err("engine", "%s: the learned state does not shrink to learning.store_size; "
            "raise learning.store_size", path);
    return -1;
}

static void
eng_reset(struct ppf_engine *e)
{
    enum ppf_policy_algorithm a = e->cfg.algorithm;

    eng_destroy_models(e);
    for (uint32_t i = 0; i < e->img_cap; i++) {
        e->img[i].size = 0;
        e->img[i].tenant = PPF_ENGINE_NO_ID;
        e->img[i].count = 0;
        e->img[i].last = 0;
        e->img[i].evidence = 0;
        e->img[i].tracked_pos = UINT32_MAX;
    }
    e->ntracked = 0;
    e->cq_len = e->cq_head = 0;
    e->cfg.algorithm = a;
    if (eng_create_models(e) < 0)
        ppf_err("engine", "out of memory recreating the models");
    /* claim arrays for the new models */
    {
        uint32_t cap = e->img_cap;

        e->img_cap = 0;
        free(e->mark);
        e->mark = NULL;
        free(e->tracked);
        e->tracked = NULL;
        {
            struct eng_image *old = e->img;

            e->img = NULL;
            if (eng_reserve_images(e, cap) < 0)
                ppf_err("engine", "out of memory resetting the engine");
            free(old);
        }
    }
}

static int
eng_deserialize(struct ppf_engine *e, const uint8_t *buf, size_t len)
{
    struct ppf_nvm_reader r;
    CLEANUP_FREE uint32_t *map = NULL;
    uint32_t tag, algo, n, nm;
    double now;
    char name[PPF_POLICY_MAX_IMAGE + 1], tenant[PPF_POLICY_MAX_IMAGE + 1];

    ppf_nvm_reader_init(&r, buf, len);
    if (ppf_nvm_get_u32(&r, &tag) < 0 || tag != ENG_STORE_TAG
        || ppf_nvm_get_u32(&r, &algo) < 0 || ppf_nvm_get_f64(&r, &now) < 0
        || ppf_nvm_get_count(&r, 1u << 26, 30, &n) < 0)
        return -1;
    map = malloc(((size_t)n + 1) * sizeof *map);
    if (!map)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t has_tenant;
        uint64_t size;
        double last, evidence;
        uint32_t count, id, tid;
        struct eng_image *im;

        if (ppf_nvm_get_str(&r, name, sizeof name) < 0
            || ppf_nvm_get_u8(&r, &has_tenant) < 0 || has_tenant > 1
            || (has_tenant && ppf_nvm_get_str(&r, tenant, sizeof tenant) < 0)
            || ppf_nvm_get_u64(&r, &size) < 0 || ppf_nvm_get_f64(&r, &last) < 0
            || ppf_nvm_get_f64(&r, &evidence) < 0 || ppf_nvm_get_u32(&r, &count) < 0
            || evidence < 0)
            return -1;
        if (ppf_engine_intern(e, name, has_tenant ? tenant : NULL, &id, &tid) < 0)
            return -1;
        map[i] = id;
        im = &e->img[id];
        im->size = size;
        im->tenant = tid;
        im->last = last;
        im->evidence = evidence;
        im->count = count;
        if (im->tracked_pos == UINT32_MAX) {
            im->tracked_pos = e->ntracked;
            e->tracked[e->ntracked++] = id;
        }
    }
    if (ppf_nvm_get_count(&r, ENG_MAX_MODELS, 12, &nm) < 0)
        return -1;
    for (uint32_t k = 0; k < nm; k++) {
        char mname[32];
        uint64_t slen;
        struct ppf_nvm_reader sub;

        double acc[4];

        if (ppf_nvm_get_str(&r, mname, sizeof mname) < 0)
            return -1;
        for (int a = 0; a < 4; a++)
            if (ppf_nvm_get_f64(&r, &acc[a]) < 0 || acc[a] < 0)
                return -1;
        if (ppf_nvm_get_u64(&r, &slen) < 0 || slen > r.len - r.pos)
            return -1;
        ppf_nvm_reader_init(&sub, r.buf + r.pos, (size_t)slen);
        r.pos += (size_t)slen;
        for (unsigned j = 0; j < e->nmodels; j++) {
            if (strcmp(e->model[j].ops->name, mname) != 0)
                continue;
            if (e->model[j].ops->load(e->model[j].m, &sub, map, n) < 0 || sub.error)
                return -1;
            e->model[j].claims = acc[0];
            e->model[j].hits = acc[1];
            e->model[j].events = acc[2];
            e->model[j].foreseen = acc[3];
        }
    }
    if (r.pos != r.len)
        return -1;
    if (now > e->now)
        e->now = now;
    if (now > e->acc_time)
        e->acc_time = now;
    (void)algo;
    return 0;
}

int
ppf_engine_load(struct ppf_engine *e, const char *path)
{
    CLEANUP_FREE uint8_t *buf = NULL;
    size_t len;
    int r = ppf_nvm_read_file(path, e->cfg.store_size, &buf, &len);

    if (r == 1)
        return 0;
    if (r == 2)
        return 1;
    if (r < 0)
        return -1;
    if (eng_deserialize(e, buf, len) < 0) {
        /* Checksum was right but the content is not: a bug or a forged
         * store.  Set it aside like a corrupt one. */
        eng_reset(e);
        {
            CLEANUP_FREE char *aside = NULL;

            if (asprintf(&aside, "%s.corrupt-bad-content", path) >= 0 && rename(path, aside) == 0)
                ppf_err("engine", "%s: the pattern store's content is invalid; moved to %s, "
                        "starting with an empty model", path, aside);
            else
                ppf_err("engine", "%s: the pattern store's content is invalid; starting with "
                        "an empty model (it will be replaced at the next save)", path);
        }
        return 1;
    }
    eng_enforce_bound(e, UINT32_MAX);
    return 0;
}

/* The markov model: order-k chains over deploy sequences, one chain per
 * tenant and one global.  A context is the last o images of a scope
 * (o = 1..k, for back-off); it counts its successors with weights that
 * decay by the half-life (so an abandoned A->B fades) and learns the usual
 * delay to each.  After A, a learned A->B predicts B at last + delay.
 * Contexts are bounded (learning.store_size); the least evidence goes.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

#define MK_SUCC     8           /* successors kept per context */
#define MK_MAXORD   8
#define MK_RECENT   32          /* scopes looked at for candidates */
#define MK_GLOBAL   0           /* scope index of the global chain */

struct mk_succ {
    uint32_t image;
    float w, delay;
};

struct mk_ctx {
    uint64_t hash;
    uint32_t scope, gen;
    int32_t next;               /* hash chain, or free list; -1 ends */
    uint8_t order, ns, used;
    uint32_t hist[MK_MAXORD];
    double last;
    float total;
    struct mk_succ s[MK_SUCC];
};

struct mk_ref {
    int32_t idx;
    uint32_t gen;
};

struct mk_scope {
    uint32_t hist[MK_MAXORD];
    uint8_t nh;
    double last;
    struct mk_ref cur[MK_MAXORD + 1];   /* context of each order now */
};

struct mk {
    struct ppf_engine *e;
    unsigned order;
    struct mk_ctx *ctx;
    uint32_t nctx, ctx_cap, used, max;
    int32_t free_head;
    int32_t *bucket;
    uint32_t nbucket;
    struct mk_scope *scope;     /* [0] global, [t + 1] tenant t */
    uint32_t nscope;
    uint32_t recent[MK_RECENT];
    unsigned nrecent;
    uint64_t rng;
};

static void *
mk_create(struct ppf_engine *e)
{
    struct mk *k = calloc(1, sizeof *k);

    if (!k)
        return NULL;
    k->e = e;
    k->order = ppf_engine_config(e)->markov_order;
    k->max = ppf_engine_config(e)->max_contexts;
    k->free_head = -1;
    k->nbucket = 4096;
    k->bucket = malloc(k->nbucket * sizeof *k->bucket);
    k->rng = 0x2545f4914f6cdd1dull;
    if (!k->bucket || !(k->scope = calloc(1, sizeof *k->scope))) {
        free(k->bucket);
        free(k);
        return NULL;
    }
    k->nscope = 1;
    for (uint32_t i = 0; i <= MK_MAXORD; i++)
        k->scope[0].cur[i].idx = -1;
    memset(k->bucket, 0xff, k->nbucket * sizeof *k->bucket);
    return k;
}

static void
mk_destroy(void *m)
{
    struct mk *k = m;

    if (!k)
        return;
    free(k->ctx);
    free(k->bucket);
    free(k->scope);
    free(k);
}

static uint64_t
mk_hash(uint32_t scope, unsigned order, const uint32_t *hist)
{
    uint64_t h = 1469598103934665603ull ^ scope;

    h = (h ^ order) * 1099511628211ull;
    for (unsigned i = 0; i < order; i++)
        h = (h ^ hist[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static struct mk_scope *
mk_scope_get(struct mk *k, uint32_t s)
{
    if (s >= k->nscope) {
        uint32_t n = k->nscope;
        struct mk_scope *ns;

        while (n <= s)
            n *= 2;
        ns = realloc(k->scope, n * sizeof *ns);
        if (!ns)
            return NULL;
        memset(ns + k->nscope, 0, (n - k->nscope) * sizeof *ns);
        for (uint32_t i = k->nscope; i < n; i++)
            for (uint32_t o = 0; o <= MK_MAXORD; o++)
                ns[i].cur[o].idx = -1;
        k->scope = ns;
        k->nscope = n;
    }
    return &k->scope[s];
}

static int32_t
mk_find(const struct mk *k, uint32_t scope, unsigned order, const uint32_t *hist, uint64_t h)
{
    for (int32_t i = k->bucket[h & (k->nbucket - 1)]; i >= 0; i = k->ctx[i].next) {
        const struct mk_ctx *c = &k->ctx[i];

        if (c->hash == h && c->scope == scope && c->order == order
            && memcmp(c->hist, hist, order * sizeof *hist) == 0)
            return i;
    }
    return -1;
}

static void
mk_unlink(struct mk *k, int32_t idx)
{
    struct mk_ctx *c = &k->ctx[idx];
    int32_t *pp = &k->bucket[c->hash & (k->nbucket - 1)];

    while (*pp >= 0 && *pp != idx)
        pp = &k->ctx[*pp].next;
    if (*pp == idx)
        *pp = c->next;
    c->used = 0;
    c->gen++;
    c->next = k->free_head;
    k->free_head = idx;
    k->used--;
}

static void
mk_evict_one(struct mk *k, double now)
{
    int32_t victim = -1;
    double best = INFINITY;

    for (int s = 0; s < 8; s++) {
        uint32_t i;

        k->rng ^= k->rng >> 12;
        k->rng ^= k->rng << 25;
        k->rng ^= k->rng >> 27;
        i = (uint32_t)((k->rng * 2685821657736338717ull) % k->nctx);
        if (k->ctx[i].used) {
            double ev = k->ctx[i].total * ppf_engine_decay(k->e, now - k->ctx[i].last);

            if (ev < best) {
                best = ev;
                victim = (int32_t)i;
            }
        }
    }
    if (victim >= 0)
        mk_unlink(k, victim);
}

static int32_t
mk_find_or_add(struct mk *k, uint32_t scope, unsigned order, const uint32_t *hist, double now)
{
    uint64_t h = mk_hash(scope, order, hist);
    int32_t i = mk_find(k, scope, order, hist, h);
    struct mk_ctx *c;

    if (i >= 0)
        return i;
    if (k->used >= k->max)
        mk_evict_one(k, now);
    if (k->free_head >= 0) {
        i = k->free_head;
        k->free_head = k->ctx[i].next;
    } else {
        if (k->nctx == k->ctx_cap) {
            uint32_t cap = k->ctx_cap ? k->ctx_cap * 2 : 1024;
            struct mk_ctx *nc = realloc(k->ctx, cap * sizeof *nc);

            if (!nc)
                return -1;
            k->ctx = nc;
            k->ctx_cap = cap;
        }
        i = (int32_t)k->nctx++;
        k->ctx[i].gen = 0;
    }
    c = &k->ctx[i];
    {
        uint32_t gen = c->gen;

        memset(c, 0, sizeof *c);
        c->gen = gen;
    }
    c->hash = h;
    c->scope = scope;
    c->order = (uint8_t)order;
    memcpy(c->hist, hist, order * sizeof *hist);
    c->last = now;
    c->used = 1;
    c->next = k->bucket[h & (k->nbucket - 1)];
    k->bucket[h & (k->nbucket - 1)] = i;
    k->used++;
    if (k->used > k->nbucket) {
        uint32_t nb = k->nbucket * 2;
        int32_t *b = malloc(nb * sizeof *b);

        if (b) {
            memset(b, 0xff, nb * sizeof *b);
            for (uint32_t j = 0; j < k->nctx; j++)
                if (k->ctx[j].used) {
                    k->ctx[j].next = b[k->ctx[j].hash & (nb - 1)];
                    b[k->ctx[j].hash & (nb - 1)] = (int32_t)j;
                }
            free(k->bucket);
            k->bucket = b;
            k->nbucket = nb;
        }
    }
    return i;
}

static void
mk_learn(struct mk *k, int32_t idx, uint32_t image, double now, double delay)
{
    struct mk_ctx *c = &k->ctx[idx];
    double f = ppf_engine_decay(k->e, now - c->last), ar;
    int slot = -1;

    ar = ppf_engine_config(k->e)->adaptation_rate;
    c->total = 0;
    for (int i = 0; i < c->ns; i++) {
        c->s[i].w *= (float)f;
        if (c->s[i].image == image)
            slot = i;
    }
    if (slot < 0) {
        if (c->ns < MK_SUCC) {
            slot = c->ns++;
        } else {
            slot = 0;
            for (int i = 1; i < c->ns; i++)
                if (c->s[i].w < c->s[slot].w)
                    slot = i;
        }
        c->s[slot] = (struct mk_succ){ image, 0, (float)delay };
    }
    {
        double a = 1.0 / (c->s[slot].w + 1);

        if (a < ar)
            a = ar;
        c->s[slot].delay += (float)(a * (delay - c->s[slot].delay));
    }
    c->s[slot].w += 1;
    for (int i = 0; i < c->ns; i++)
        c->total += c->s[i].w;
    c->last = now;
}

static void
mk_refresh(struct mk *k, uint32_t s)
{
    struct mk_scope *sc = &k->scope[s];

    for (unsigned o = 1; o <= k->order; o++) {
        int32_t i = -1;

        if (o <= sc->nh)
            i = mk_find(k, s, o, sc->hist, mk_hash(s, o, sc->hist));
        sc->cur[o].idx = i;
        sc->cur[o].gen = i >= 0 ? k->ctx[i].gen : 0;
    }
}

static void
mk_touch_recent(struct mk *k, uint32_t s)
{
    unsigned i;

    for (i = 0; i < k->nrecent && k->recent[i] != s; i++)
        ;
    if (i == k->nrecent && k->nrecent < MK_RECENT)
        k->nrecent++;
    if (i == MK_RECENT)
        i = MK_RECENT - 1;
    memmove(&k->recent[1], &k->recent[0], i * sizeof k->recent[0]);
    k->recent[0] = s;
}

static void
mk_observe(void *m, const struct ppf_engine_event *ev)
{
    struct mk *k = m;
    uint32_t scopes[2] = { MK_GLOBAL, ev->tenant == PPF_ENGINE_NO_ID ? MK_GLOBAL : ev->tenant + 1 };

    for (int n = 0; n < (scopes[1] == MK_GLOBAL ? 1 : 2); n++) {
        uint32_t s = scopes[n];
        struct mk_scope *sc = mk_scope_get(k, s);

        if (!sc)
            return;
        for (unsigned o = 1; o <= k->order && o <= sc->nh; o++) {
            int32_t i = mk_find_or_add(k, s, o, sc->hist, ev->time);

            sc = &k->scope[s];
            if (i >= 0)
                mk_learn(k, i, ev->image, ev->time, ev->time - sc->last);
        }
        memmove(&sc->hist[1], &sc->hist[0], (MK_MAXORD - 1) * sizeof sc->hist[0]);
        sc->hist[0] = ev->image;
        if (sc->nh < MK_MAXORD)
            sc->nh++;
        sc->last = ev->time;
        mk_refresh(k, s);
        if (s != MK_GLOBAL)
            mk_touch_recent(k, s);
    }
}

/* The deepest current context of scope s with evidence, or NULL. */
static const struct mk_ctx *
mk_current(const struct mk *k, uint32_t s)
{
    const struct mk_scope *sc;

    if (s >= k->nscope)
        return NULL;
    sc = &k->scope[s];
    for (unsigned o = k->order; o >= 1; o--) {
        const struct mk_ref *r = &sc->cur[o];

        if (r->idx >= 0 && k->ctx[r->idx].used && k->ctx[r->idx].gen == r->gen
            && k->ctx[r->idx].total >= 1)
            return &k->ctx[r->idx];
    }
    return NULL;
}

static int
mk_score_in(const struct mk *k, uint32_t s, uint32_t image, double now, double *p,
            double *eta, double *value)
{
    const struct mk_ctx *c = mk_current(k, s);
    double H = ppf_engine_window(k->e);

    if (!c)
        return 0;
    for (int i = 0; i < c->ns; i++) {
        double q, t, f = 1;

        if (c->s[i].image != image)
            continue;
        q = c->s[i].w / (c->total + 0.5);       /* 0.5: a successor never seen */
        t = k->scope[s].last + c->s[i].delay;
        if (t < now) {
            /* Overdue: the scope has not moved on, so it may still come. */
            f = ppf_engine_discount(k->e, now - t);
            *p = q * f;
            *eta = now;
        } else {
            *p = t <= now + H ? q : 0;
            *eta = t;
        }
        *value = q * ppf_engine_discount(k->e, *eta - now) * f;
        return 1;
    }
    return 0;
}

static int
mk_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct mk *k = m;
    uint32_t t = ppf_engine_image_tenant(k->e, image);
    double p2, eta2, v2;
    int a = 0, b;

    if (t != PPF_ENGINE_NO_ID)
        a = mk_score_in(k, t + 1, image, now, p, eta, value);
    b = mk_score_in(k, MK_GLOBAL, image, now, &p2, &eta2, &v2);
    if (b && (!a || v2 > *value)) {
        *p = p2;
        *eta = eta2;
        *value = v2;
    }
    return a || b;
}

static size_t
mk_candidates(void *m, double now, struct ppf_prediction *out, size_t k_max)
{
    struct mk *k = m;
    size_t n = 0;

    for (unsigned r = 0; r <= k->nrecent && n < k_max; r++) {
        uint32_t s = r < k->nrecent ? k->recent[r] : MK_GLOBAL;
        const struct mk_ctx *c = mk_current(k, s);

        if (!c)
            continue;
        for (int i = 0; i < c->ns && n < k_max; i++) {
            struct ppf_prediction *pr = &out[n];

            pr->image = c->s[i].image;
            if (mk_score_in(k, s, pr->image, now, &pr->probability, &pr->eta, &pr->value)
                && pr->value > 0)
                n++;
        }
    }
    return ppf_prediction_top(out, n, k_max);
}

static void
mk_forget(void *m, uint32_t image)
{
    struct mk *k = m;

    /* Successor slots naming it are dropped from their contexts. */
    for (uint32_t i = 0; i < k->nctx; i++) {
        struct mk_ctx *c = &k->ctx[i];

        if (!c->used)
            continue;
        for (int j = 0; j < c->ns; j++)
            if (c->s[j].image == image) {
                c->total -= c->s[j].w;
                c->s[j] = c->s[--c->ns];
                j--;
            }
        if (c->total < 0)
            c->total = 0;
    }
}

static int
mk_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    struct mk *k = m;
    uint32_t n = 0;

    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            ppf_nvm_put_u32(w, n);
        for (uint32_t i = 0; i < k->nctx; i++) {
            const struct mk_ctx *c = &k->ctx[i];
            const char *tn;
            int ok = c->used, ns = 0;

            for (unsigned o = 0; ok && o < c->order; o++)
                ok = remap[c->hist[o]] != UINT32_MAX;
            for (int j = 0; ok && j < c->ns; j++)
                ns += remap[c->s[j].image] != UINT32_MAX;
            if (!ok || ns == 0)
                continue;
            if (pass == 0) {
                n++;
                continue;
            }
            tn = c->scope == MK_GLOBAL ? NULL : ppf_engine_tenant_name(k->e, c->scope - 1);
            ppf_nvm_put_u8(w, tn != NULL);
            if (tn)
                ppf_nvm_put_str(w, tn);
            ppf_nvm_put_u8(w, c->order);
            for (unsigned o = 0; o < c->order; o++)
                ppf_nvm_put_u32(w, remap[c->hist[o]]);
            ppf_nvm_put_f64(w, c->last);
            ppf_nvm_put_u8(w, (uint8_t)ns);
            for (int j = 0; j < c->ns; j++)
                if (remap[c->s[j].image] != UINT32_MAX) {
                    ppf_nvm_put_u32(w, remap[c->s[j].image]);
                    ppf_nvm_put_f64(w, c->s[j].w);
                    ppf_nvm_put_f64(w, c->s[j].delay);
                }
        }
    }
    /* where each scope stands: its last images and time */
    ppf_nvm_put_u32(w, k->nscope);
    for (uint32_t sc = 0; sc < k->nscope; sc++) {
        const struct mk_scope *x = &k->scope[sc];
        const char *tn = sc == MK_GLOBAL ? NULL : ppf_engine_tenant_name(k->e, sc - 1);
        unsigned nh = 0;

        while (nh < x->nh && remap[x->hist[nh]] != UINT32_MAX)
            nh++;
        ppf_nvm_put_u8(w, sc == MK_GLOBAL ? 2 : tn != NULL);
        if (tn && sc != MK_GLOBAL)
            ppf_nvm_put_str(w, tn);
        ppf_nvm_put_u8(w, (uint8_t)nh);
        for (unsigned i = 0; i < nh; i++)
            ppf_nvm_put_u32(w, remap[x->hist[i]]);
        ppf_nvm_put_f64(w, x->last);
    }
    return w->error ? -1 : 0;
}

static int
mk_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    struct mk *k = m;
    uint32_t n;

    if (ppf_nvm_get_count(r, 1u << 26, 15, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t has_t, order, ns;
        uint32_t scope = MK_GLOBAL, hist[MK_MAXORD];
        char tn[PPF_POLICY_MAX_IMAGE + 1];
        double last;
        int32_t idx;
        struct mk_ctx *c;

        if (ppf_nvm_get_u8(r, &has_t) < 0 || has_t > 1)
            return -1;
        if (has_t) {
            uint32_t tid;

            if (ppf_nvm_get_str(r, tn, sizeof tn) < 0)
                return -1;
            if (ppf_engine_intern_tenant(k->e, tn, &tid) < 0)
                return -1;
            scope = tid + 1;
        }
        if (ppf_nvm_get_u8(r, &order) < 0 || order < 1 || order > MK_MAXORD)
            return -1;
        for (unsigned o = 0; o < order; o++) {
            uint32_t x;

            if (ppf_nvm_get_u32(r, &x) < 0 || x >= nmap)
                return -1;
            hist[o] = map[x];
        }
        if (ppf_nvm_get_f64(r, &last) < 0 || ppf_nvm_get_u8(r, &ns) < 0 || ns > MK_SUCC)
            return -1;
        if (!mk_scope_get(k, scope))
            return -1;
        idx = order <= k->order ? mk_find_or_add(k, scope, order, hist, last) : -1;
        c = idx >= 0 ? &k->ctx[idx] : NULL;
        if (c) {
            c->ns = 0;
            c->total = 0;
            c->last = last;
        }
        for (unsigned j = 0; j < ns; j++) {
            uint32_t x;
            double wt, d;

            if (ppf_nvm_get_u32(r, &x) < 0 || x >= nmap || ppf_nvm_get_f64(r, &wt) < 0
                || ppf_nvm_get_f64(r, &d) < 0 || wt < 0)
                return -1;
            if (c) {
                c->s[c->ns++] = (struct mk_succ){ map[x], (float)wt, (float)d };
                c->total += (float)wt;
            }
        }
    }
    if (ppf_nvm_get_count(r, 1u << 24, 10, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t kind, nh;
        uint32_t scope = MK_GLOBAL, tid;
        char tn[PPF_POLICY_MAX_IMAGE + 1];
        struct mk_scope *sc;
        double last;
        uint32_t hist[MK_MAXORD];

        if (ppf_nvm_get_u8(r, &kind) < 0 || kind > 2)
            return -1;
        if (kind == 1) {
            if (ppf_nvm_get_str(r, tn, sizeof tn) < 0
                || ppf_engine_intern_tenant(k->e, tn, &tid) < 0)
                return -1;
            scope = tid + 1;
        }
        if (ppf_nvm_get_u8(r, &nh) < 0 || nh > MK_MAXORD)
            return -1;
        for (unsigned j = 0; j < nh; j++) {
            uint32_t x;

            if (ppf_nvm_get_u32(r, &x) < 0 || x >= nmap)
                return -1;
            hist[j] = map[x];
        }
        if (ppf_nvm_get_f64(r, &last) < 0)
            return -1;
        if (kind == 0)
            continue;       /* a scope without a name: nothing to restore */
        sc = mk_scope_get(k, scope);
        if (!sc)
            return -1;
        memcpy(sc->hist, hist, nh * sizeof *hist);
        sc->nh = nh;
        sc->last = last;
        mk_refresh(k, scope);
    }
    return 0;
}

/* Federation: the first-order transitions of each tenant's chain between
 * that tenant's images, and of the global chain between public images
 * (never one tenant's sequence through another's images). */
static void
mk_export(void *m, double now, struct ppf_fed_builder *b)
{
    struct mk *k = m;

    for (uint32_t i = 0; i < k->nctx; i++) {
        const struct mk_ctx *c = &k->ctx[i];
        uint32_t owner = c->scope == MK_GLOBAL ? PPF_ENGINE_NO_ID : c->scope - 1;
        double f;

        if (!c->used || c->order != 1 || !(c->total > 0)
            || ppf_engine_image_tenant(k->e, c->hist[0]) != owner)
            continue;
        f = ppf_engine_decay(k->e, now - c->last);
        for (int j = 0; j < c->ns; j++)
            if (ppf_engine_image_tenant(k->e, c->s[j].image) == owner)
                ppf_fed_builder_edge(b, c->hist[0], c->s[j].image, c->s[j].w * f,
                                     c->total * f, c->s[j].delay);
    }
}

const struct ppf_model_ops ppf_model_markov = {
    .name = "markov",
    .create = mk_create,
    .destroy = mk_destroy,
    .observe = mk_observe,
    .candidates = mk_candidates,
    .score = mk_score,
    .forget = mk_forget,
    .save = mk_save,
    .load = mk_load,
    .export_evidence = mk_export,
};

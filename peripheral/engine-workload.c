/* The workload model: host metric states -> the images deployed in them.
 * Each metric is cut into three levels by an online k-means (k = 3,
 * sequential updates, the first distinct samples as seeds, so no sample is
 * stored and a bimodal metric, busy or idle, gets its own levels); the
 * tuple of levels is the state (at most 3^8).  Per state we
 * keep the decayed time spent in it and the decayed count of each image
 * deployed while in it: rate = count / time, and in the current state
 * P(request within H) = 1 - exp(-rate * H).  No recent sample (older than
 * the horizon), no opinion: the ensemble then ignores this model.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

#define WL_LEVELS   3
#define WL_INDEX    32          /* images kept per state */

struct wl_ref {
    uint32_t image;
    float w;
};

struct wl_state {
    double dwell, wtime;
    uint8_t n;
    struct wl_ref v[WL_INDEX];
};

struct wl {
    struct ppf_engine *e;
    unsigned dims;
    uint32_t nstates;
    double c[PPF_ENGINE_MAX_METRICS][WL_LEVELS];    /* centroids */
    double n[PPF_ENGINE_MAX_METRICS][WL_LEVELS];    /* their sample counts */
    uint64_t samples;
    double last;                /* time of the last sample */
    uint32_t cur;               /* current state */
    struct wl_state **state;    /* lazily allocated */
};

static void *
wl_create(struct ppf_engine *e)
{
    struct wl *w = calloc(1, sizeof *w);

    if (w)
        w->e = e;
    return w;
}

static void
wl_destroy(void *m)
{
    struct wl *w = m;

    if (!w)
        return;
    for (uint32_t i = 0; w->state && i < w->nstates; i++)
        free(w->state[i]);
    free(w->state);
    free(w);
}

static struct wl_state *
wl_get(struct wl *w, uint32_t s, int create)
{
    if (!w->state || s >= w->nstates)
        return NULL;
    if (!w->state[s] && create)
        w->state[s] = calloc(1, sizeof *w->state[s]);
    return w->state[s];
}

static void
wl_decay_state(struct wl *w, struct wl_state *st, double now)
{
    double f;

    if (now <= st->wtime)
        return;
    f = ppf_engine_decay(w->e, now - st->wtime);
    st->dwell *= f;
    for (unsigned i = 0; i < st->n; i++)
        st->v[i].w *= (float)f;
    st->wtime = now;
}

static void
wl_observe_metrics(void *m, const struct ppf_metrics_sample *s)
{
    struct wl *w = m;
    double ar = ppf_engine_config(w->e)->adaptation_rate, H = ppf_engine_config(w->e)->horizon;
    uint32_t state = 0;

    if (s->n == 0)
        return;
    if (w->dims == 0) {
        uint32_t n = 1;

        w->dims = s->n;
        for (unsigned d = 0; d < s->n; d++)
            n *= WL_LEVELS;
        w->state = calloc(n, sizeof *w->state);
        if (!w->state) {
            w->dims = 0;
            return;
        }
        w->nstates = n;
    }
    if (s->n != w->dims)
        return;                 /* a source must keep its layout */
    w->samples++;
    for (unsigned d = 0; d < w->dims; d++) {
        double x = s->v[d], *c = w->c[d], *cn = w->n[d], a;
        int best = -1, rank = 0;

        /* seeds: the first distinct values */
        for (int k = 0; k < WL_LEVELS && best < 0; k++)
            if (cn[k] == 0 || c[k] == x)
                best = k;
        if (best >= 0 && cn[best] == 0)
            c[best] = x;
        if (best < 0) {
            best = 0;
            for (int k = 1; k < WL_LEVELS; k++)
                if (fabs(x - c[k]) < fabs(x - c[best]))
                    best = k;
        }
        cn[best] += 1;
        a = 1 / cn[best];
        if (a < ar / 10)
            a = ar / 10;
        c[best] += a * (x - c[best]);
        for (int k = 0; k < WL_LEVELS; k++)
            rank += cn[k] > 0 && (c[k] < c[best] || (c[k] == c[best] && k < best));
        state = state * WL_LEVELS + (uint32_t)rank;
    }
    if (w->samples > 1 && s->time > w->last) {
        struct wl_state *prev = wl_get(w, w->cur, 1);
        double dt = s->time - w->last;

        if (prev) {
            wl_decay_state(w, prev, s->time);
            prev->dwell += dt < H ? dt : H;     /* a long gap is not evidence */
        }
    }
    w->cur = state;
    w->last = s->time;
}

static void
wl_observe(void *m, const struct ppf_engine_event *ev)
{
    struct wl *w = m;
    struct wl_state *st;
    unsigned i, min = 0;

    if (!w->dims || ev->time - w->last > ppf_engine_config(w->e)->horizon)
        return;
    st = wl_get(w, w->cur, 1);
    if (!st)
        return;
    wl_decay_state(w, st, ev->time);
    for (i = 0; i < st->n; i++) {
        if (st->v[i].image == ev->image) {
            st->v[i].w += 1;
            return;
        }
        if (st->v[i].w < st->v[min].w)
            min = i;
    }
    if (st->n < WL_INDEX)
        st->v[st->n++] = (struct wl_ref){ ev->image, 1 };
    else if (st->v[min].w < 1)
        st->v[min] = (struct wl_ref){ ev->image, 1 };
}

static int
wl_score_in(struct wl *w, const struct wl_state *st, unsigned i, double now, double *p,
            double *eta, double *value)
{
    double H = ppf_engine_window(w->e), dwell = st->dwell, rate;

    if (dwell < H / 60)
        dwell = H / 60;         /* a state just entered: do not divide by ~0 */
    rate = st->v[i].w / dwell;
    *p = 1 - exp(-rate * H);
    *eta = now + (rate > 0 ? fmin(1 / rate, H) : H) / 2;
    *value = *p * ppf_engine_discount(w->e, *eta - now);
    return 1;
}

static int
wl_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct wl *w = m;
    const struct wl_state *st;

    if (!w->dims || now - w->last > ppf_engine_config(w->e)->horizon)
        return 0;
    st = wl_get(w, w->cur, 0);
    if (!st)
        return 0;
    for (unsigned i = 0; i < st->n; i++)
        if (st->v[i].image == image)
            return wl_score_in(w, st, i, now, p, eta, value);
    return 0;
}

static size_t
wl_candidates(void *m, double now, struct ppf_prediction *out, size_t k)
{
    struct wl *w = m;
    const struct wl_state *st;
    struct ppf_prediction tmp[WL_INDEX];
    size_t n = 0;

    if (!w->dims || now - w->last > ppf_engine_config(w->e)->horizon)
        return 0;
    st = wl_get(w, w->cur, 0);
    if (!st)
        return 0;
    for (unsigned i = 0; i < st->n; i++) {
        tmp[n].image = st->v[i].image;
        wl_score_in(w, st, i, now, &tmp[n].probability, &tmp[n].eta, &tmp[n].value);
        n++;
    }
    n = ppf_prediction_top(tmp, n, k);
    if (n)
        memcpy(out, tmp, n * sizeof *out);
    return n;
}

static void
wl_forget(void *m, uint32_t image)
{
    struct wl *w = m;

    for (uint32_t s = 0; w->state && s < w->nstates; s++) {
        struct wl_state *st = w->state[s];

        for (unsigned i = 0; st && i < st->n; i++)
            if (st->v[i].image == image) {
                st->v[i] = st->v[--st->n];
                break;
            }
    }
}

static int
wl_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    struct wl *x = m;
    uint32_t n = 0;

    ppf_nvm_put_u32(w, x->dims);
    ppf_nvm_put_u64(w, x->samples);
    ppf_nvm_put_u32(w, x->cur);
    ppf_nvm_put_f64(w, x->last);
    for (unsigned d = 0; d < x->dims; d++)
        for (int k = 0; k < WL_LEVELS; k++) {
            ppf_nvm_put_f64(w, x->c[d][k]);
            ppf_nvm_put_f64(w, x->n[d][k]);
        }
    for (uint32_t s = 0; x->state && s < x->nstates; s++)
        n += x->state[s] != NULL;
    ppf_nvm_put_u32(w, n);
    for (uint32_t s = 0; x->state && s < x->nstates; s++) {
        const struct wl_state *st = x->state[s];
        unsigned k = 0;

        if (!st)
            continue;
        for (unsigned i = 0; i < st->n; i++)
            k += remap[st->v[i].image] != UINT32_MAX;
        ppf_nvm_put_u32(w, s);
        ppf_nvm_put_f64(w, st->dwell);
        ppf_nvm_put_f64(w, st->wtime);
        ppf_nvm_put_u8(w, (uint8_t)k);
        for (unsigned i = 0; i < st->n; i++)
            if (remap[st->v[i].image] != UINT32_MAX) {
                ppf_nvm_put_u32(w, remap[st->v[i].image]);
                ppf_nvm_put_f64(w, st->v[i].w);
            }
    }
    return w->error ? -1 : 0;
}

static int
wl_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    struct wl *x = m;
    uint32_t dims, n, nstates = 1;
    uint64_t samples;

    uint32_t cur;
    double last;

    if (ppf_nvm_get_u32(r, &dims) < 0 || dims > PPF_ENGINE_MAX_METRICS
        || ppf_nvm_get_u64(r, &samples) < 0 || ppf_nvm_get_u32(r, &cur) < 0
        || ppf_nvm_get_f64(r, &last) < 0)
        return -1;
    for (unsigned d = 0; d < dims; d++)
        nstates *= WL_LEVELS;
    for (unsigned d = 0; d < dims; d++)
        for (int k = 0; k < WL_LEVELS; k++)
            if (ppf_nvm_get_f64(r, &x->c[d][k]) < 0 || ppf_nvm_get_f64(r, &x->n[d][k]) < 0
                || x->n[d][k] < 0)
                return -1;
    if (ppf_nvm_get_count(r, nstates, 21, &n) < 0)
        return -1;
    if (dims) {
        x->state = calloc(nstates, sizeof *x->state);
        if (!x->state)
            return -1;
        x->nstates = nstates;
        x->dims = dims;
        x->samples = samples;
        if (cur >= nstates)
            return -1;
        x->cur = cur;
        x->last = last;
    } else if (n) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s;
        uint8_t k;
        struct wl_state *st;

        if (ppf_nvm_get_u32(r, &s) < 0 || s >= nstates || x->state[s])
            return -1;
        st = wl_get(x, s, 1);
        if (!st || ppf_nvm_get_f64(r, &st->dwell) < 0 || ppf_nvm_get_f64(r, &st->wtime) < 0
            || ppf_nvm_get_u8(r, &k) < 0 || k > WL_INDEX || st->dwell < 0)
            return -1;
        for (unsigned j = 0; j < k; j++) {
            uint32_t idx;
            double wt;

            if (ppf_nvm_get_u32(r, &idx) < 0 || idx >= nmap || ppf_nvm_get_f64(r, &wt) < 0
                || wt < 0)
                return -1;
            st->v[st->n++] = (struct wl_ref){ map[idx], (float)wt };
        }
    }
    return 0;
}

const struct ppf_model_ops ppf_model_workload = {
    .name = "workload",
    .create = wl_create,
    .destroy = wl_destroy,
    .observe = wl_observe,
    .observe_metrics = wl_observe_metrics,
    .candidates = wl_candidates,
    .score = wl_score,
    .forget = wl_forget,
    .save = wl_save,
    .load = wl_load,
};

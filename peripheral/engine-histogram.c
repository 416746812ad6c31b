/* The histogram model: per-image idle-time (inter-arrival) histograms, in
 * the spirit of the hybrid histogram policy of "Serverless in the Wild"
 * (Shahrad et al., USENIX ATC 2020).  Instead of fixed one-minute bins,
 * each image keeps a few adaptive bins (centre, spread, decayed weight):
 * periods from a second to weeks are then located to within their own
 * jitter, in ~100 bytes per image.  An image seen once falls back to the
 * global histogram of first idle times (log-spaced bins), as the paper
 * does for applications without history.
 *
 * P(request within [now, now+H]) is the weight of the windows
 * last + k*gap +- spread that overlap it, over all live weight plus a
 * pseudo-count for a gap never seen; a window that passed without a
 * request moves to the next multiple at half the weight, so an abandoned
 * pattern fades after a few periods.  Candidates come from an agenda (a
 * heap of window start times) so a prediction never scans every image.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

#define HG_BINS     6           /* adaptive bins per image */
#define HG_NOVEL    0.5         /* pseudo-count for an unseen gap */
#define HG_MIN_HALF 1.0         /* s: narrowest half window */
#define HG_REL_HALF 0.02        /* half window at least 2% of the gap */
#define HG_MATCH    0.10        /* a gap within 10% joins a bin */
#define HG_MAX_K    6           /* multiples of a gap still considered */
#define HG_GBINS    64          /* global first-gap histogram, 2 per octave */
#define HG_GMIN     (-8)        /* its first bin starts at 2^-4 s */

struct hg_bin {
    float gap, dev, w;
};

struct hg_img {
    double last;
    uint32_t ver;
    uint8_t nb, seen, active;
    struct hg_bin b[HG_BINS];
};

struct hg_agenda {
    double t;
    uint32_t image, ver;
};

struct hg {
    struct ppf_engine *e;
    struct hg_img *img;
    uint32_t cap;
    struct hg_agenda *heap;
    size_t nheap, heap_cap;
    uint32_t *active;
    size_t nactive, active_cap;
    struct ppf_prediction *scratch;
    size_t scratch_cap;
    /* global first-gap histogram (decayed), for images seen once */
    double g[HG_GBINS], gtime, firsts, seconds;
};

static void *
hg_create(struct ppf_engine *e)
{
    struct hg *h = calloc(1, sizeof *h);

    if (h)
        h->e = e;
    return h;
}

static void
hg_destroy(void *m)
{
    struct hg *h = m;

    if (!h)
        return;
    free(h->img);
    free(h->heap);
    free(h->active);
    free(h->scratch);
    free(h);
}

static struct hg_img *
hg_get(struct hg *h, uint32_t id)
{
    if (id >= h->cap) {
        uint32_t cap = h->cap ? h->cap : 1024;
        struct hg_img *ni;

        while (cap <= id)
            cap *= 2;
        ni = realloc(h->img, cap * sizeof *ni);
        if (!ni)
            return NULL;
        memset(ni + h->cap, 0, (cap - h->cap) * sizeof *ni);
        h->img = ni;
        h->cap = cap;
    }
    return &h->img[id];
}

static double
hg_half(const struct hg_bin *b, int k)
{
    /* The learned jitter; until a bin has evidence, a share of the gap. */
    double w = b->w > 1 ? b->w : 1;
    double d = HG_MIN_HALF, r = HG_REL_HALF * b->gap / (w * w), s = 3 * b->dev;

    if (r > d)
        d = r;
    if (s > d)
        d = s;
    return d * k;
}

/* The window of bin b around the first multiple k*gap not yet over at
 * now: returns k (0 if past HG_MAX_K), *centre and *half. */
static int
hg_window(const struct hg_img *im, const struct hg_bin *b, double now, double *centre,
          double *half)
{
    double a = now - im->last;
    int k = 1;

    if (b->gap <= 0)
        return 0;
    if (a > b->gap + hg_half(b, 1)) {
        k = (int)ceil((a - hg_half(b, 1)) / b->gap);
        if (k < 1)
            k = 1;
        while (k <= HG_MAX_K && im->last + k * (double)b->gap + hg_half(b, k) < now)
            k++;
    }
    if (k > HG_MAX_K)
        return 0;
    *centre = im->last + k * (double)b->gap;
    *half = hg_half(b, k);
    return k;
}

static void
hg_heap_push(struct hg *h, double t, uint32_t image, uint32_t ver)
{
    size_t i;

    if (h->nheap == h->heap_cap) {
        size_t cap = h->heap_cap ? h->heap_cap * 2 : 1024;
        struct hg_agenda *nh = realloc(h->heap, cap * sizeof *nh);

        if (!nh)
            return;
        h->heap = nh;
        h->heap_cap = cap;
    }
    i = h->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (h->heap[p].t <= t)
            break;
        h->heap[i] = h->heap[p];
        i = p;
    }
    h->heap[i] = (struct hg_agenda){ t, image, ver };
}

static void
hg_heap_pop(struct hg *h)
{
    struct hg_agenda x = h->heap[--h->nheap];
    size_t i = 0, n = h->nheap;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= n)
            break;
        if (c + 1 < n && h->heap[c + 1].t < h->heap[c].t)
            c++;
        if (h->heap[c].t >= x.t)
            break;
        h->heap[i] = h->heap[c];
        i = c;
    }
    if (n)
        h->heap[i] = x;
}

/* Earliest window start at or after now (INFINITY if none). */
static double
hg_next_start(const struct hg_img *im, double now)
{
    double best = INFINITY;

    for (int i = 0; i < im->nb; i++) {
        double c, half;

        if (hg_window(im, &im->b[i], now, &c, &half) && c - half < best)
            best = c - half;
    }
    return best;
}

static void
hg_schedule(struct hg *h, uint32_t id, double now)
{
    struct hg_img *im = &h->img[id];
    double t = hg_next_start(im, now);

    if (isfinite(t))
        hg_heap_push(h, t, id, im->ver);
}

static int
hg_gbin(double gap)
{
    int b;

    if (gap <= 0)
        return 0;
    b = (int)floor(2 * log2(gap)) - HG_GMIN;
    return b < 0 ? 0 : b >= HG_GBINS ? HG_GBINS - 1 : b;
}

static void
hg_global_decay(struct hg *h, double now)
{
    double f;

    if (now <= h->gtime)
        return;
    f = ppf_engine_decay(h->e, now - h->gtime);
    for (int i = 0; i < HG_GBINS; i++)
        h->g[i] *= f;
    h->firsts *= f;
    h->seconds *= f;
    h->gtime = now;
}

static void
hg_observe(void *m, const struct ppf_engine_event *ev)
{
    struct hg *h = m;
    struct hg_img *im = hg_get(h, ev->image);
    double gap, f, ar = ppf_engine_config(h->e)->adaptation_rate;
    int best = -1;

    if (!im)
        return;
    hg_global_decay(h, ev->time);
    if (!im->seen) {
        im->seen = 1;
        im->last = ev->time;
        im->ver++;
        h->firsts += 1;
        return;
    }
    gap = ev->time - im->last;
    if (im->nb == 0) {
        h->g[hg_gbin(gap)] += 1;
        h->seconds += 1;
    }
    f = ppf_engine_decay(h->e, gap);
    for (int i = 0; i < im->nb; i++) {
        struct hg_bin *b = &im->b[i];
        double tol = HG_MATCH * b->gap, d = fabs(gap - b->gap);

        b->w *= (float)f;
        if (3 * b->dev > tol)
            tol = 3 * b->dev;
        if (tol < HG_MIN_HALF)
            tol = HG_MIN_HALF;
        if (d <= tol && (best < 0 || d < fabs(gap - im->b[best].gap)))
            best = i;
    }
    if (best >= 0) {
        struct hg_bin *b = &im->b[best];
        double a = 1.0 / (b->w + 1);

        if (a < ar)
            a = ar;
        b->w += 1;
        b->dev += (float)(a * (fabs(gap - b->gap) - b->dev));
        b->gap += (float)(a * (gap - b->gap));
    } else {
        int slot = im->nb;

        if (slot == HG_BINS) {
            slot = 0;
            for (int i = 1; i < HG_BINS; i++)
                if (im->b[i].w < im->b[slot].w)
                    slot = i;
        } else {
            im->nb++;
        }
        im->b[slot] = (struct hg_bin){ (float)gap, 0, 1 };
    }
    im->last = ev->time;
    im->ver++;
    hg_schedule(h, ev->image, ev->time);
}

/* Images seen once: the global first-gap histogram, conditioned on the
 * time already waited. */
static int
hg_score_prior(struct hg *h, const struct hg_img *im, double now, double *p, double *eta,
               double *value)
{
    double H = ppf_engine_window(h->e), a = now - im->last;
    double total = 0, after = 0, within = 0, val = 0, pr;
    double first_eta = INFINITY;

    for (int i = 0; i < HG_GBINS; i++)
        total += h->g[i];
    if (total <= 0 || h->firsts <= 0)
        return 0;
    for (int i = 0; i < HG_GBINS; i++) {
        double lo = exp2((i + HG_GMIN) / 2.0), hi = exp2((i + HG_GMIN + 1) / 2.0);
        double w = h->g[i], s, e2;

        if (w <= 0 || hi <= a)
            continue;
        /* the part of this bin still ahead, assuming uniform spread */
        s = lo > a ? lo : a;
        w *= (hi - s) / (hi - lo);
        after += w;
        e2 = s < a + H ? (hi < a + H ? hi : a + H) : s;
        if (e2 > s)
            within += h->g[i] * (e2 - s) / (hi - lo);
        val += w * ppf_engine_discount(h->e, im->last + (s + hi) / 2 - now);
        if (im->last + s < first_eta && w > 0)
            first_eta = im->last + s;
    }
    pr = h->seconds / h->firsts;        /* share of images that came back */
    if (pr > 1)
        pr = 1;
    {
        double denom = pr * after / total + (1 - pr);

        if (denom <= 0)
            return 0;
        *p = pr * within / total / denom;
        *value = pr * val / total / denom;
    }
    *eta = first_eta > now ? first_eta : now;
    return 1;
}

static int
hg_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct hg *h = m;
    const struct hg_img *im;
    double H, wsum, pn = 0, vn = 0, bestw = -1, fade;

    if (image >= h->cap || !h->img[image].seen)
        return 0;
    im = &h->img[image];
    if (im->nb == 0)
        return hg_score_prior(h, im, now, p, eta, value);
    H = ppf_engine_window(h->e);
    fade = ppf_engine_decay(h->e, now - im->last);
    wsum = HG_NOVEL;
    *eta = INFINITY;
    for (int i = 0; i < im->nb; i++) {
        const struct hg_bin *b = &im->b[i];
        double c, half, w, lo, hi, ov;
        int k = hg_window(im, b, now, &c, &half);

        if (!k)
            continue;
        w = b->w * fade * exp2(1 - k);
        wsum += w;
        lo = c - half > now ? c - half : now;
        hi = c + half < now + H ? c + half : now + H;
        ov = hi > lo ? (hi - lo) / (c + half - (c - half > now ? c - half : now)) : 0;
        pn += w * ov;
        vn += w * ppf_engine_discount(h->e, c - half - now);
        if (w > bestw && (ov > 0 || !isfinite(*eta))) {
            bestw = w;
            *eta = c - half > now ? c - half : now;
        }
    }
    *p = pn / wsum;
    *value = vn / wsum;
    if (!isfinite(*eta))
        *eta = now;
    return 1;
}

static size_t
hg_candidates(void *m, double now, struct ppf_prediction *out, size_t k)
{
    struct hg *h = m;
    double H = ppf_engine_window(h->e);
    double pmin = ppf_engine_config(h->e)->min_probability / 2;
    size_t n = 0;

    /* Bring due agenda entries into the active set. */
    while (h->nheap && h->heap[0].t <= now + H) {
        struct hg_agenda a = h->heap[0];

        hg_heap_pop(h);
        if (a.image >= h->cap || h->img[a.image].ver != a.ver || h->img[a.image].active)
            continue;
        if (h->nactive == h->active_cap) {
            size_t cap = h->active_cap ? h->active_cap * 2 : 256;
            uint32_t *na = realloc(h->active, cap * sizeof *na);

            if (!na)
                break;
            h->active = na;
            h->active_cap = cap;
        }
        h->img[a.image].active = 1;
        h->active[h->nactive++] = a.image;
    }
    if (h->scratch_cap < h->nactive) {
        struct ppf_prediction *s = realloc(h->scratch, h->nactive * sizeof *s);

        if (!s)
            return 0;
        h->scratch = s;
        h->scratch_cap = h->nactive;
    }
    for (size_t i = 0; i < h->nactive;) {
        uint32_t id = h->active[i];
        struct hg_img *im = &h->img[id];
        double p = 0, eta = now, v = 0;
        double start = hg_next_start(im, now);

        hg_score(h, id, now, &p, &eta, &v);
        if (!(start <= now + H)) {
            /* Nothing due within the horizon any more: back to the agenda. */
            im->active = 0;
            h->active[i] = h->active[--h->nactive];
            if (isfinite(start))
                hg_heap_push(h, start, id, im->ver);
            continue;
        }
        if (p >= pmin) {
            struct ppf_prediction *pr = &h->scratch[n++];

            pr->image = id;
            pr->probability = p;
            pr->eta = eta;
            pr->value = v;
        }
        i++;
    }
    n = ppf_prediction_top(h->scratch, n, k);
    if (n)
        memcpy(out, h->scratch, n * sizeof *out);
    /* Keep the agenda from growing without bound when nobody predicts. */
    return n;
}

static void
hg_forget(void *m, uint32_t image)
{
    struct hg *h = m;

    if (image < h->cap) {
        uint8_t active = h->img[image].active;
        uint32_t ver = h->img[image].ver + 1;

        memset(&h->img[image], 0, sizeof h->img[image]);
        h->img[image].ver = ver;
        h->img[image].active = active;  /* dropped from the set lazily */
    }
}

static int
hg_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    struct hg *h = m;
    uint32_t n = 0;

    ppf_nvm_put_f64(w, h->gtime);
    ppf_nvm_put_f64(w, h->firsts);
    ppf_nvm_put_f64(w, h->seconds);
    for (int i = 0; i < HG_GBINS; i++)
        ppf_nvm_put_f64(w, h->g[i]);
    for (uint32_t i = 0; i < h->cap; i++)
        if (h->img[i].seen && remap[i] != UINT32_MAX)
            n++;
    ppf_nvm_put_u32(w, n);
    for (uint32_t i = 0; i < h->cap; i++) {
        const struct hg_img *im = &h->img[i];

        if (!im->seen || remap[i] == UINT32_MAX)
            continue;
        ppf_nvm_put_u32(w, remap[i]);
        ppf_nvm_put_f64(w, im->last);
        ppf_nvm_put_u8(w, im->nb);
        for (int b = 0; b < im->nb; b++) {
            ppf_nvm_put_f64(w, im->b[b].gap);
            ppf_nvm_put_f64(w, im->b[b].dev);
            ppf_nvm_put_f64(w, im->b[b].w);
        }
    }
    return w->error ? -1 : 0;
}

static int
hg_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    struct hg *h = m;
    uint32_t n;

    if (ppf_nvm_get_f64(r, &h->gtime) < 0 || ppf_nvm_get_f64(r, &h->firsts) < 0
        || ppf_nvm_get_f64(r, &h->seconds) < 0 || h->firsts < 0 || h->seconds < 0)
        return -1;
    for (int i = 0; i < HG_GBINS; i++)
        if (ppf_nvm_get_f64(r, &h->g[i]) < 0 || h->g[i] < 0)
            return -1;
    if (ppf_nvm_get_count(r, nmap, 13, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx;
        uint8_t nb;
        double last;
        struct hg_img *im;

        if (ppf_nvm_get_u32(r, &idx) < 0 || idx >= nmap || ppf_nvm_get_f64(r, &last) < 0
            || ppf_nvm_get_u8(r, &nb) < 0 || nb > HG_BINS)
            return -1;
        im = hg_get(h, map[idx]);
        if (!im)
            return -1;
        im->seen = 1;
        im->last = last;
        im->nb = nb;
        im->ver++;
        for (int b = 0; b < nb; b++) {
            double g, d, wt;

            if (ppf_nvm_get_f64(r, &g) < 0 || ppf_nvm_get_f64(r, &d) < 0
                || ppf_nvm_get_f64(r, &wt) < 0 || g < 0 || d < 0 || wt < 0)
                return -1;
            im->b[b] = (struct hg_bin){ (float)g, (float)d, (float)wt };
        }
        hg_schedule(h, map[idx], last);
    }
    return 0;
}

const struct ppf_model_ops ppf_model_histogram = {
    .name = "histogram",
    .create = hg_create,
    .destroy = hg_destroy,
    .observe = hg_observe,
    .candidates = hg_candidates,
    .score = hg_score,
    .forget = hg_forget,
    .save = hg_save,
    .load = hg_load,
};

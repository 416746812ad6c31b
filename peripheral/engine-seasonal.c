/* The seasonal model: per image, its requests by time-of-day bucket
 * (learning.time_buckets per day) and by day of week, with exponential
 * decay by the half-life.  Each image keeps a few sparse slots (bucket,
 * decayed count, mean offset into the bucket and its spread), so a job
 * that runs daily at 10:00 is expected at 10:00, not anywhere in 10-11.
 * Expected requests in [now, now+H] = sum over the slot occurrences in
 * that window of count/(days observed + 1) times the day-of-week factor;
 * an occurrence already served today is skipped.  P = min(1, expected).
 * Candidates come from a per-bucket index of the images most seen there.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

#define SE_SLOTS    8           /* time-of-day slots per image */
#define SE_INDEX    64          /* images indexed per bucket */
#define SE_DAY      86400.0
#define SE_MIN_HALF 60.0        /* s: narrowest half window */

struct se_slot {
    uint16_t bucket;
    float w, off, dev;
};

struct se_img {
    double first, wtime, last;
    float dow[7];
    uint8_t ns, seen;
    struct se_slot s[SE_SLOTS];
};

struct se_ref {
    uint32_t image;
    float w;
};

struct se {
    struct ppf_engine *e;
    unsigned nb;                /* buckets per day */
    double blen;                /* s per bucket */
    struct se_img *img;
    uint32_t cap;
    struct se_ref *index;       /* nb * SE_INDEX */
    uint8_t *nindex;
};

static void *
se_create(struct ppf_engine *e)
{
    struct se *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->e = e;
    s->nb = ppf_engine_config(e)->time_buckets;
    s->blen = SE_DAY / s->nb;
    s->index = calloc((size_t)s->nb * SE_INDEX, sizeof *s->index);
    s->nindex = calloc(s->nb, 1);
    if (!s->index || !s->nindex) {
        free(s->index);
        free(s->nindex);
        free(s);
        return NULL;
    }
    return s;
}

static void
se_destroy(void *m)
{
    struct se *s = m;

    if (!s)
        return;
    free(s->img);
    free(s->index);
    free(s->nindex);
    free(s);
}

static double
se_local(const struct se *s, double t)
{
    return t + ppf_engine_config(s->e)->tz_offset;
}

static struct se_img *
se_get(struct se *s, uint32_t id)
{
    if (id >= s->cap) {
        uint32_t cap = s->cap ? s->cap : 1024;
        struct se_img *ni;

        while (cap <= id)
            cap *= 2;
        ni = realloc(s->img, cap * sizeof *ni);
        if (!ni)
            return NULL;
        memset(ni + s->cap, 0, (cap - s->cap) * sizeof *ni);
        s->img = ni;
        s->cap = cap;
    }
    return &s->img[id];
}

static void
se_index_update(struct se *s, unsigned b, uint32_t image, float w)
{
    struct se_ref *v = &s->index[(size_t)b * SE_INDEX];
    unsigned n = s->nindex[b], min = 0;

    for (unsigned i = 0; i < n; i++) {
        if (v[i].image == image) {
            v[i].w = w;
            return;
        }
        if (v[i].w < v[min].w)
            min = i;
    }
    if (n < SE_INDEX) {
        v[n] = (struct se_ref){ image, w };
        s->nindex[b]++;
    } else if (w > v[min].w) {
        v[min] = (struct se_ref){ image, w };
    }
}

static void
se_observe(void *m, const struct ppf_engine_event *ev)
{
    struct se *s = m;
    struct se_img *im = se_get(s, ev->image);
    double lt = se_local(s, ev->time), f, ar = ppf_engine_config(s->e)->adaptation_rate;
    double day = floor(lt / SE_DAY), tod = lt - day * SE_DAY, off;
    unsigned b = (unsigned)(tod / s->blen);
    int slot = -1;

    if (!im)
        return;
    if (b >= s->nb)
        b = s->nb - 1;
    off = tod - b * s->blen;
    if (!im->seen) {
        im->seen = 1;
        im->first = ev->time;
        im->wtime = ev->time;
    }
    f = ppf_engine_decay(s->e, ev->time - im->wtime);
    im->wtime = ev->time;
    for (int d = 0; d < 7; d++)
        im->dow[d] *= (float)f;
    im->dow[((int64_t)day % 7 + 7) % 7] += 1;
    for (int i = 0; i < im->ns; i++) {
        im->s[i].w *= (float)f;
        if (im->s[i].bucket == b)
            slot = i;
    }
    /* Several requests in one bucket occurrence count once: a job that
     * runs every minute is the histogram model's, not a daily event. */
    if (slot >= 0 && im->last > 0 && floor(se_local(s, im->last) / s->blen) == floor(lt / s->blen)) {
        im->last = ev->time;
        return;
    }
    if (slot < 0) {
        if (im->ns < SE_SLOTS) {
            slot = im->ns++;
        } else {
            slot = 0;
            for (int i = 1; i < SE_SLOTS; i++)
                if (im->s[i].w < im->s[slot].w)
                    slot = i;
        }
        im->s[slot] = (struct se_slot){ (uint16_t)b, 0, (float)off, 0 };
    }
    {
        struct se_slot *sl = &im->s[slot];
        double a = 1.0 / (sl->w + 1);

        if (a < ar)
            a = ar;
        sl->dev += (float)(a * (fabs(off - sl->off) - sl->dev));
        sl->off += (float)(a * (off - sl->off));
        sl->w += 1;
        se_index_update(s, b, ev->image, sl->w);
    }
    im->last = ev->time;
}

/* Days of evidence, each weighted by its decay, at now. */
static double
se_days(const struct se *s, const struct se_img *im, double now)
{
    double hl = ppf_engine_config(s->e)->half_life, T = now - im->first;

    if (T <= 0)
        return 0;
    return hl / M_LN2 * (1 - exp2(-T / hl)) / SE_DAY;
}

static int
se_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct se *s = m;
    const struct se_img *im;
    double H = ppf_engine_window(s->e), lnow, day0, days, dsum = 0;
    double lam = 0, val = 0, fade;

    if (image >= s->cap || !s->img[image].seen || s->img[image].ns == 0)
        return 0;
    im = &s->img[image];
    days = se_days(s, im, now);
    fade = ppf_engine_decay(s->e, now - im->wtime);
    for (int d = 0; d < 7; d++)
        dsum += im->dow[d];
    lnow = se_local(s, now);
    day0 = floor(lnow / SE_DAY) * SE_DAY;
    *eta = INFINITY;
    for (int i = 0; i < im->ns; i++) {
        const struct se_slot *sl = &im->s[i];
        double rate = sl->w * fade / (days + 1);
        double half = 2 * sl->dev > SE_MIN_HALF ? 2 * sl->dev : SE_MIN_HALF;

        for (int k = -1; k <= 1 + (int)(H / SE_DAY); k++) {
            double lt = day0 + k * SE_DAY + sl->bucket * s->blen + sl->off;
            double t = lt - (lnow - now), lo, hi, r = rate;
            int wd = ((int64_t)floor(lt / SE_DAY) % 7 + 7) % 7;

            if (t + half < now)
                continue;
            if (im->last >= t - half - s->blen / 2)
                continue;       /* served already */
            if (dsum > 0 && days > 7) {
                /* day of week: phased in over the second week of data */
                double f = 7 * (im->dow[wd] * fade + 0.5) / (dsum * fade + 3.5);
                double c = days < 14 ? (days - 7) / 7 : 1;

                r *= 1 + c * (f - 1);
            }
            lo = t - half > now ? t - half : now;
            hi = t + half < now + H ? t + half : now + H;
            if (hi > lo)
                lam += r * (hi - lo) / (t + half - lo);
            val += (r < 1 ? r : 1) * ppf_engine_discount(s->e, t - half - now);
            if (hi > lo && lo < *eta)
                *eta = lo;
            break;          /* the next occurrence of this slot only */
        }
    }
    *p = lam < 1 ? lam : 1;
    *value = val < 1 ? val : 1;
    if (!isfinite(*eta))
        *eta = now + H;
    return 1;
}

static size_t
se_candidates(void *m, double now, struct ppf_prediction *out, size_t k)
{
    struct se *s = m;
    double H = ppf_engine_window(s->e), lnow = se_local(s, now);
    unsigned nbk = (unsigned)ceil(H / s->blen) + 1, b0;
    size_t n = 0, cap = k * 4;
    struct ppf_prediction tmp[256];

    if (cap > 256)
        cap = 256;
    if (nbk > s->nb)
        nbk = s->nb;
    b0 = (unsigned)(fmod(lnow, SE_DAY) / s->blen);
    for (unsigned j = 0; j < nbk; j++) {
        unsigned b = (b0 + j) % s->nb;
        const struct se_ref *v = &s->index[(size_t)b * SE_INDEX];

        for (unsigned i = 0; i < s->nindex[b] && n < cap; i++) {
            struct ppf_prediction *pr = &tmp[n];
            int dup = 0;

            for (size_t q = 0; q < n && !dup; q++)
                dup = tmp[q].image == v[i].image;
            if (dup)
                continue;
            pr->image = v[i].image;
            if (se_score(s, pr->image, now, &pr->probability, &pr->eta, &pr->value)
                && pr->probability > 0)
                n++;
        }
    }
    n = ppf_prediction_top(tmp, n, k);
    if (n)
        memcpy(out, tmp, n * sizeof *out);
    return n;
}

static void
se_forget(void *m, uint32_t image)
{
    struct se *s = m;

    if (image >= s->cap)
        return;
    for (int i = 0; i < s->img[image].ns; i++) {
        unsigned b = s->img[image].s[i].bucket;
        struct se_ref *v = &s->index[(size_t)b * SE_INDEX];

        for (unsigned j = 0; j < s->nindex[b]; j++)
            if (v[j].image == image) {
                v[j] = v[--s->nindex[b]];
                break;
            }
    }
    memset(&s->img[image], 0, sizeof s->img[image]);
}

static int
se_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    struct se *s = m;
    uint32_t n = 0;

    ppf_nvm_put_u32(w, s->nb);
    for (uint32_t i = 0; i < s->cap; i++)
        n += s->img[i].seen && remap[i] != UINT32_MAX;
    ppf_nvm_put_u32(w, n);
    for (uint32_t i = 0; i < s->cap; i++) {
        const struct se_img *im = &s->img[i];

        if (!im->seen || remap[i] == UINT32_MAX)
            continue;
        ppf_nvm_put_u32(w, remap[i]);
        ppf_nvm_put_f64(w, im->first);
        ppf_nvm_put_f64(w, im->wtime);
        ppf_nvm_put_f64(w, im->last);
        for (int d = 0; d < 7; d++)
            ppf_nvm_put_f64(w, im->dow[d]);
        ppf_nvm_put_u8(w, im->ns);
        for (int j = 0; j < im->ns; j++) {
            ppf_nvm_put_u32(w, im->s[j].bucket);
            ppf_nvm_put_f64(w, im->s[j].w);
            ppf_nvm_put_f64(w, im->s[j].off);
            ppf_nvm_put_f64(w, im->s[j].dev);
        }
    }
    return w->error ? -1 : 0;
}

static int
se_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    struct se *s = m;
    uint32_t nb, n;

    if (ppf_nvm_get_u32(r, &nb) < 0 || ppf_nvm_get_count(r, nmap, 85, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx;
        uint8_t ns;
        struct se_img *im, tmp;

        memset(&tmp, 0, sizeof tmp);
        if (ppf_nvm_get_u32(r, &idx) < 0 || idx >= nmap || ppf_nvm_get_f64(r, &tmp.first) < 0
            || ppf_nvm_get_f64(r, &tmp.wtime) < 0 || ppf_nvm_get_f64(r, &tmp.last) < 0)
            return -1;
        for (int d = 0; d < 7; d++) {
            double x;

            if (ppf_nvm_get_f64(r, &x) < 0 || x < 0)
                return -1;
            tmp.dow[d] = (float)x;
        }
        if (ppf_nvm_get_u8(r, &ns) < 0 || ns > SE_SLOTS)
            return -1;
        for (int j = 0; j < ns; j++) {
            uint32_t b;
            double wt, off, dev;

            if (ppf_nvm_get_u32(r, &b) < 0 || ppf_nvm_get_f64(r, &wt) < 0
                || ppf_nvm_get_f64(r, &off) < 0 || ppf_nvm_get_f64(r, &dev) < 0 || wt < 0)
                return -1;
            /* A store written with other time_buckets: drop its slots. */
            if (nb != s->nb || b >= s->nb)
                continue;
            tmp.s[tmp.ns++] = (struct se_slot){ (uint16_t)b, (float)wt, (float)off, (float)dev };
        }
        tmp.seen = 1;
        im = se_get(s, map[idx]);
        if (!im)
            return -1;
        *im = tmp;
        for (int j = 0; j < im->ns; j++)
            se_index_update(s, im->s[j].bucket, map[idx], im->s[j].w);
    }
    return 0;
}

/* Federation: each image's slots as UTC times of day with their daily
 * rates, and its weekday weights (Sunday first). */
static void
se_export(void *m, double now, struct ppf_fed_builder *b)
{
    struct se *s = m;
    double tz = ppf_engine_config(s->e)->tz_offset;

    for (uint32_t id = 0; id < s->cap; id++) {
        const struct se_img *im = &s->img[id];
        double fade, days, dow[7];

        if (!im->seen || im->ns == 0)
            continue;
        fade = ppf_engine_decay(s->e, now - im->wtime);
        days = se_days(s, im, now);
        for (int d = 0; d < 7; d++)     /* dow[] counts from a Thursday */
            dow[(d + 4) % 7] = im->dow[d] * fade;
        ppf_fed_builder_dow(b, id, dow);
        for (int i = 0; i < im->ns; i++) {
            const struct se_slot *sl = &im->s[i];

            ppf_fed_builder_slot(b, id, sl->bucket * s->blen + sl->off - tz,
                                 sl->w * fade / (days + 1), sl->dev);
        }
    }
}

const struct ppf_model_ops ppf_model_seasonal = {
    .name = "seasonal",
    .create = se_create,
    .destroy = se_destroy,
    .observe = se_observe,
    .candidates = se_candidates,
    .score = se_score,
    .forget = se_forget,
    .save = se_save,
    .load = se_load,
    .export_evidence = se_export,
};

/* The prefetch scheduler (see sched.h).  Predictions are cached between
 * engine events (they only change when the engine learns something, or
 * as time passes: at most every 1/60 of the horizon), so asking for the
 * next prefetch whenever the fetch path goes idle stays cheap.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/sched.h"

#define SCHED_K 64              /* predictions considered per refresh */

struct ppf_sched {
    struct ppf_sched_config cfg;
    struct ppf_engine *e;
    struct ppf_bufmodel *b;
    double bw, wait, horizon, lookahead;
    struct ppf_prediction pred[SCHED_K];
    double vpb[SCHED_K];
    bool refused[SCHED_K];
    size_t npred;
    uint64_t pred_events;
    double pred_time;
    struct ppf_sched_stats st;
};

void
ppf_sched_config_from_policy(const struct ppf_policy *p, struct ppf_sched_config *c)
{
    memset(c, 0, sizeof *c);
    c->bandwidth = p->prefetch.bandwidth;
    c->concurrent = p->prefetch.concurrent ? p->prefetch.concurrent : 1;
    c->priority = p->prefetch.priority;
    c->setup = 0;
}

static double
sched_buf_value(void *ctx, const struct ppf_buf_entry *en, double now)
{
    return ppf_sched_value_per_byte(ctx, en->image, en->size, now);
}

struct ppf_sched *
ppf_sched_new(const struct ppf_sched_config *c, struct ppf_engine *e, struct ppf_bufmodel *b)
{
    struct ppf_sched *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->cfg = *c;
    if (s->cfg.concurrent == 0)
        s->cfg.concurrent = 1;
    s->e = e;
    s->b = b;
    s->bw = c->bandwidth ? (double)c->bandwidth : 1e9;
    s->horizon = ppf_engine_config(e)->horizon;
    /* the time the fetch path needs to fill the buffer: the scale on
     * which the future is discounted and how far ahead to prefetch */
    s->lookahead = (double)ppf_bufmodel_capacity(b) / s->bw;
    if (s->lookahead > s->horizon)
        s->lookahead = s->horizon;
    ppf_engine_set_time_scale(e, s->lookahead);
    s->pred_time = -INFINITY;
    ppf_bufmodel_set_callbacks(b, sched_buf_value, NULL, s);
    return s;
}

void
ppf_sched_free(struct ppf_sched *s)
{
    free(s);
}

double
ppf_sched_value_per_byte(struct ppf_sched *s, uint32_t image, uint64_t size, double now)
{
    double v = ppf_engine_score(s->e, image, now, NULL);

    if (size == 0)
        size = 1;
    /* time saved per byte: transfer (1/bw) plus the wait and set-up a
     * miss adds, spread over the image's bytes */
    return v * (1 / s->bw + (s->wait + s->cfg.setup) / (double)size);
}

void
ppf_sched_note_wait(struct ppf_sched *s, double wait)
{
    double a = ppf_engine_config(s->e)->adaptation_rate;

    if (!(wait >= 0))
        return;
    if (a < 0.01)
        a = 0.01;
    s->wait += a * (wait - s->wait);
    s->st.wait = s->wait;
}

int
ppf_sched_admit_demand(struct ppf_sched *s, uint32_t image, uint32_t tenant, uint64_t size,
                       double now)
{
    double v = ppf_sched_value_per_byte(s, image, size, now);

    /* A deploy's result is kept unless everything it would displace is
     * worth more; ties go to the newcomer (least recently used leaves). */
    return ppf_bufmodel_admit(s->b, image, tenant, size, false, nextafter(v, INFINITY),
                              now) == 0;
}

/* How often predictions are refreshed when nothing new was observed: a
 * few times per prediction window, at most once a second. */
static double
sched_interval(const struct ppf_sched *s)
{
    double w = ppf_engine_window(s->e) / 4;

    return w < 1 ? 1 : w;
}

double
ppf_sched_next_poll(const struct ppf_sched *s, double now)
{
    /* Often right after an event (a chain's next step may be due soon),
     * then more and more rarely through a long quiet spell. */
    double i = sched_interval(s), quiet = (now - ppf_engine_now(s->e)) / 8;

    return now + (quiet > i ? quiet : i);
}

static void
sched_refresh(struct ppf_sched *s, double now)
{
    struct ppf_engine_stats es;

    ppf_engine_get_stats(s->e, &es);
    if (es.events == s->pred_events && now - s->pred_time < sched_interval(s))
        return;
    s->npred = ppf_engine_predict(s->e, now, s->pred, SCHED_K);
    for (size_t i = 0; i < s->npred; i++) {
        uint64_t size = s->pred[i].size ? s->pred[i].size : 1;

        s->vpb[i] = s->pred[i].value * (1 / s->bw + (s->wait + s->cfg.setup) / (double)size);
    }
    /* earliest expected request first: the fetch path is serial, so the
     * one needed soonest goes first (insertion sort: the list is short) */
    for (size_t i = 1; i < s->npred; i++) {
        struct ppf_prediction p = s->pred[i];
        double v = s->vpb[i];
        size_t j = i;

        for (; j > 0 && (s->pred[j - 1].eta > p.eta
                         || (s->pred[j - 1].eta == p.eta && s->pred[j - 1].image > p.image));
             j--) {
            s->pred[j] = s->pred[j - 1];
            s->vpb[j] = s->vpb[j - 1];
        }
        s->pred[j] = p;
        s->vpb[j] = v;
    }
    memset(s->refused, 0, sizeof s->refused);
    s->pred_events = es.events;
    s->pred_time = now;
    s->st.predictions++;
}

int
ppf_sched_next(struct ppf_sched *s, double now, struct ppf_sched_pick *out)
{
    double floor = NAN;

    if (ppf_bufmodel_inflight_prefetches(s->b) >= s->cfg.concurrent)
        return 0;
    sched_refresh(s, now);
    for (size_t i = 0; i < s->npred; i++) {
        const struct ppf_prediction *p = &s->pred[i];
        uint32_t tenant;

        if (s->refused[i] || p->size == 0 || ppf_bufmodel_find(s->b, p->image))
            continue;
        /* Further ahead than the buffer turns over, it would likely be
         * evicted before use. */
        if (p->eta - now > s->lookahead)
            continue;
        /* Cheap test first: with no free room, it must beat the cheapest
         * entry in the buffer. */
        if (p->size > ppf_bufmodel_free_bytes(s->b)) {
            if (isnan(floor))
                floor = ppf_bufmodel_floor(s->b, now);
            if (s->vpb[i] <= floor) {
                s->refused[i] = true;
                continue;
            }
        }
        tenant = p->tenant == PPF_ENGINE_NO_ID ? PPF_BUF_PUBLIC : p->tenant;
        if (ppf_bufmodel_admit(s->b, p->image, tenant, p->size, true, s->vpb[i], now) < 0) {
            s->refused[i] = true;
            s->st.refused++;
            continue;
        }
        out->image = p->image;
        out->tenant = p->tenant;
        out->size = p->size;
        out->probability = p->probability;
        out->eta = p->eta;
        out->value_per_byte = s->vpb[i];
        out->priority = s->cfg.priority;
        s->st.picks++;
        return 1;
    }
    return 0;
}

void
ppf_sched_get_stats(const struct ppf_sched *s, struct ppf_sched_stats *st)
{
    *st = s->st;
}

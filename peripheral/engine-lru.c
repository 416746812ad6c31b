/* The lru model, a baseline: what was deployed recently will be deployed
 * again.  Its score is the recency discount horizon/(horizon + idle time),
 * so a buffer ranked by it evicts least recently used first; candidates
 * are the most recent images (usually already in the buffer).
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"

#define LRU_NONE UINT32_MAX

struct lru_img {
    double last;
    uint32_t prev, next;        /* recency list, most recent at head */
    uint8_t seen;
};

struct lru {
    struct ppf_engine *e;
    struct lru_img *img;
    uint32_t cap, head, tail;
};

static void *
lru_create(struct ppf_engine *e)
{
    struct lru *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->e = e;
    l->head = l->tail = LRU_NONE;
    return l;
}

static void
lru_destroy(void *m)
{
    struct lru *l = m;

    if (l)
        free(l->img);
    free(l);
}

static void
lru_unlink(struct lru *l, uint32_t id)
{
    struct lru_img *im = &l->img[id];

    if (im->prev != LRU_NONE)
        l->img[im->prev].next = im->next;
    else
        l->head = im->next;
    if (im->next != LRU_NONE)
        l->img[im->next].prev = im->prev;
    else
        l->tail = im->prev;
    im->prev = im->next = LRU_NONE;
}

static void
lru_observe(void *m, const struct ppf_engine_event *ev)
{
    struct lru *l = m;
    struct lru_img *im;

    if (ev->image >= l->cap) {
        uint32_t cap = l->cap ? l->cap : 1024;
        struct lru_img *ni;

        while (cap <= ev->image)
            cap *= 2;
        ni = realloc(l->img, cap * sizeof *ni);
        if (!ni)
            return;
        memset(ni + l->cap, 0, (cap - l->cap) * sizeof *ni);
        l->img = ni;
        l->cap = cap;
    }
    im = &l->img[ev->image];
    if (im->seen)
        lru_unlink(l, ev->image);
    im->seen = 1;
    im->last = ev->time;
    im->prev = LRU_NONE;
    im->next = l->head;
    if (l->head != LRU_NONE)
        l->img[l->head].prev = ev->image;
    l->head = ev->image;
    if (l->tail == LRU_NONE)
        l->tail = ev->image;
}

static int
lru_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct lru *l = m;

    if (image >= l->cap || !l->img[image].seen)
        return 0;
    *p = *value = ppf_engine_discount(l->e, now - l->img[image].last);
    *eta = now;
    return 1;
}

static size_t
lru_candidates(void *m, double now, struct ppf_prediction *out, size_t k)
{
    struct lru *l = m;
    size_t n = 0;

    for (uint32_t id = l->head; id != LRU_NONE && n < k; id = l->img[id].next) {
        out[n].image = id;
        lru_score(l, id, now, &out[n].probability, &out[n].eta, &out[n].value);
        n++;
    }
    return n;
}

static void
lru_forget(void *m, uint32_t image)
{
    struct lru *l = m;

    if (image < l->cap && l->img[image].seen) {
        lru_unlink(l, image);
        l->img[image].seen = 0;
    }
}

static int
lru_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    struct lru *l = m;
    uint32_t n = 0;

    /* Oldest first, so that loading in order rebuilds the list. */
    for (uint32_t id = l->tail; id != LRU_NONE; id = l->img[id].prev)
        if (remap[id] != UINT32_MAX)
            n++;
    ppf_nvm_put_u32(w, n);
    for (uint32_t id = l->tail; id != LRU_NONE; id = l->img[id].prev)
        if (remap[id] != UINT32_MAX) {
            ppf_nvm_put_u32(w, remap[id]);
            ppf_nvm_put_f64(w, l->img[id].last);
        }
    return w->error ? -1 : 0;
}

static int
lru_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    uint32_t n;

    if (ppf_nvm_get_count(r, nmap, 12, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx;
        struct ppf_engine_event ev = { 0 };

        if (ppf_nvm_get_u32(r, &idx) < 0 || idx >= nmap || ppf_nvm_get_f64(r, &ev.time) < 0)
            return -1;
        ev.image = map[idx];
        lru_observe(m, &ev);
    }
    return 0;
}

const struct ppf_model_ops ppf_model_lru = {
    .name = "lru",
    .create = lru_create,
    .destroy = lru_destroy,
    .observe = lru_observe,
    .candidates = lru_candidates,
    .score = lru_score,
    .forget = lru_forget,
    .save = lru_save,
    .load = lru_load,
};

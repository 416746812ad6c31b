/* Buffer accounting (see bufmodel.h): entries in a dense array with an
 * index by image id; victims are found by scanning for the lowest cached
 * value, which is recomputed when older than revalue_interval.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/bufmodel.h"

struct ppf_bufmodel {
    struct ppf_bufmodel_config cfg;
    struct ppf_buf_entry *e;
    uint32_t n, cap;
    uint32_t *pos;              /* image -> index + 1, 0 = absent */
    uint32_t npos;
    uint64_t *quota, *tused;    /* per tenant */
    uint32_t ntenants;
    uint32_t inflight_prefetches;
    struct ppf_buf_stats st;
    ppf_buf_value_fn value;
    ppf_buf_evict_fn evict;
    void *ctx;
    uint32_t *victims;
    uint32_t victims_cap;
};

static double buf_value(struct ppf_bufmodel *b, struct ppf_buf_entry *e, double now);
static int buf_evictable(const struct ppf_buf_entry *e);

struct ppf_bufmodel *
ppf_bufmodel_new(const struct ppf_bufmodel_config *c)
{
    struct ppf_bufmodel *b;

    if (c->capacity == 0 || c->eviction >= PPF_EVICT__MAX || !(c->revalue_interval >= 0)) {
        errno = EINVAL;
        return NULL;
    }
    b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *c;
    return b;
}

void
ppf_bufmodel_free(struct ppf_bufmodel *b)
{
    if (!b)
        return;
    free(b->e);
    free(b->pos);
    free(b->quota);
    free(b->tused);
    free(b->victims);
    free(b);
}

void
ppf_bufmodel_set_callbacks(struct ppf_bufmodel *b, ppf_buf_value_fn value,
                           ppf_buf_evict_fn evict, void *ctx)
{
    b->value = value;
    b->evict = evict;
    b->ctx = ctx;
}

static int
buf_tenants(struct ppf_bufmodel *b, uint32_t t)
{
    uint32_t n = b->ntenants ? b->ntenants : 64;
    uint64_t *q, *u;

    if (t < b->ntenants)
        return 0;
    while (n <= t)
        n *= 2;
    q = realloc(b->quota, n * sizeof *q);
    if (!q)
        return -1;
    b->quota = q;
    u = realloc(b->tused, n * sizeof *u);
    if (!u)
        return -1;
    b->tused = u;
    memset(q + b->ntenants, 0, (n - b->ntenants) * sizeof *q);
    memset(u + b->ntenants, 0, (n - b->ntenants) * sizeof *u);
    b->ntenants = n;
    return 0;
}

int
ppf_bufmodel_set_quota(struct ppf_bufmodel *b, uint32_t tenant, uint64_t quota)
{
    if (tenant == PPF_BUF_PUBLIC) {
        errno = EINVAL;
        return -1;
    }
    if (buf_tenants(b, tenant) < 0)
        return -1;
    b->quota[tenant] = quota;
    return 0;
}

const struct ppf_buf_entry *
ppf_bufmodel_find(const struct ppf_bufmodel *b, uint32_t image)
{
    if (image >= b->npos || !b->pos[image])
        return NULL;
    return &b->e[b->pos[image] - 1];
}

uint64_t
ppf_bufmodel_capacity(const struct ppf_bufmodel *b)
{
    return b->cfg.capacity;
}

uint64_t
ppf_bufmodel_free_bytes(const struct ppf_bufmodel *b)
{
    return b->cfg.capacity > b->st.used ? b->cfg.capacity - b->st.used : 0;
}

double
ppf_bufmodel_floor(struct ppf_bufmodel *b, double now)
{
    double low = INFINITY;

    if (b->cfg.eviction != PPF_EVICT_VALUE)
        return -INFINITY;
    for (uint32_t i = 0; i < b->n; i++)
        if (buf_evictable(&b->e[i])) {
            double v = buf_value(b, &b->e[i], now);

            if (v < low)
                low = v;
        }
    return low;
}

uint64_t
ppf_bufmodel_tenant_used(const struct ppf_bufmodel *b, uint32_t tenant)
{
    return tenant < b->ntenants ? b->tused[tenant] : 0;
}

uint32_t
ppf_bufmodel_inflight_prefetches(const struct ppf_bufmodel *b)
{
    return b->inflight_prefetches;
}

void
ppf_bufmodel_get_stats(const struct ppf_bufmodel *b, struct ppf_buf_stats *st)
{
    *st = b->st;
    st->entries = b->n;
}

void
ppf_bufmodel_foreach(const struct ppf_bufmodel *b,
                     void (*fn)(void *ctx, const struct ppf_buf_entry *e), void *ctx)
{
    for (uint32_t i = 0; i < b->n; i++)
        fn(ctx, &b->e[i]);
}

static double
buf_value(struct ppf_bufmodel *b, struct ppf_buf_entry *e, double now)
{
    if (!b->value)
        return 0;
    if (e->value_time < 0 || now - e->value_time > b->cfg.revalue_interval
        || now < e->value_time) {
        e->value = b->value(b->ctx, e, now);
        e->value_time = now;
    }
    return e->value;
}

/* Eviction order: lower key goes first. */
static int
buf_before(struct ppf_bufmodel *b, struct ppf_buf_entry *x, struct ppf_buf_entry *y, double now)
{
    if (b->cfg.eviction == PPF_EVICT_VALUE) {
        double vx = buf_value(b, x, now), vy = buf_value(b, y, now);

        if (vx != vy)
            return vx < vy;
    }
    if (x->last_use != y->last_use)
        return x->last_use < y->last_use;
    return x->image < y->image;
}

static void
buf_drop(struct ppf_bufmodel *b, uint32_t idx, double now, bool notify)
{
    struct ppf_buf_entry *e = &b->e[idx];

    if (notify && b->evict)
        b->evict(b->ctx, e, now);
    if (e->state == PPF_BUF_INFLIGHT) {
        b->st.inflight -= e->size;
        if (e->prefetched)
            b->inflight_prefetches--;
    }
    if (e->pinned)
        b->st.pinned -= e->size;
    b->st.used -= e->size;
    if (e->tenant != PPF_BUF_PUBLIC && e->tenant < b->ntenants)
        b->tused[e->tenant] -= e->size;
    b->pos[e->image] = 0;
    if (idx != b->n - 1) {
        b->e[idx] = b->e[b->n - 1];
        b->pos[b->e[idx].image] = idx + 1;
    }
    b->n--;
}

static int
buf_evictable(const struct ppf_buf_entry *e)
{
    return e->state == PPF_BUF_PREPARED && !e->pinned;
}

uint32_t
ppf_bufmodel_victim(struct ppf_bufmodel *b, double limit, double now)
{
    int32_t best = -1;

    for (uint32_t i = 0; i < b->n; i++)
        if (buf_evictable(&b->e[i]) && (best < 0 || buf_before(b, &b->e[i], &b->e[best], now)))
            best = (int32_t)i;
    if (best < 0 || (b->cfg.eviction == PPF_EVICT_VALUE && buf_value(b, &b->e[best], now) >= limit))
        return 0;
    return b->e[best].image;
}

int
ppf_bufmodel_admit(struct ppf_bufmodel *b, uint32_t image, uint32_t tenant, uint64_t size,
                   bool prefetch, double limit, double now)
{
    uint64_t need_cap = 0, need_q = 0, quota = 0, tused = 0;
    uint32_t nv = 0;
    struct ppf_buf_entry *ne;

    if (size == 0) {
        errno = EINVAL;
        return -1;
    }
    if (ppf_bufmodel_find(b, image)) {
        errno = EEXIST;
        return -1;
    }
    if (tenant != PPF_BUF_PUBLIC) {
        if (buf_tenants(b, tenant) < 0)
            return -1;
        quota = b->quota[tenant];
        tused = b->tused[tenant];
    }
    if (size > b->cfg.capacity || (quota && size > quota)) {
        b->st.refused++;
        errno = ENOSPC;
        return -1;
    }
    if (b->st.used + size > b->cfg.capacity)
        need_cap = b->st.used + size - b->cfg.capacity;
    if (quota && tused + size > quota)
        need_q = tused + size - quota;
    /* Choose victims, lowest first, without touching anything yet. */
    while (need_cap > 0 || need_q > 0) {
        int32_t best = -1;

        for (uint32_t i = 0; i < b->n; i++) {
            struct ppf_buf_entry *e = &b->e[i];
            bool chosen = false;

            if (!buf_evictable(e))
                continue;
            if (need_q > 0 && e->tenant != tenant)
                continue;
            for (uint32_t v = 0; v < nv && !chosen; v++)
                chosen = b->victims[v] == i;
            if (chosen)
                continue;
            if (best < 0 || buf_before(b, e, &b->e[best], now))
                best = (int32_t)i;
        }
        if (best < 0 || (b->cfg.eviction == PPF_EVICT_VALUE
                         && buf_value(b, &b->e[best], now) >= limit)) {
            b->st.refused++;
            errno = ENOSPC;
            return -1;
        }
        if (nv == b->victims_cap) {
            uint32_t cap = b->victims_cap ? b->victims_cap * 2 : 16;
            uint32_t *nvv = realloc(b->victims, cap * sizeof *nvv);

            if (!nvv)
                return -1;
            b->victims = nvv;
            b->victims_cap = cap;
        }
        b->victims[nv++] = (uint32_t)best;
        {
            uint64_t s = b->e[best].size;

            need_cap = need_cap > s ? need_cap - s : 0;
            if (need_q > 0)
                need_q = need_q > s ? need_q - s : 0;
        }
    }
    /* Grow the tables before evicting, so a failure changes nothing. */
    if (image >= b->npos) {
        uint32_t n = b->npos ? b->npos : 1024;
        uint32_t *np;

        while (n <= image)
            n *= 2;
        np = realloc(b->pos, n * sizeof *np);
        if (!np)
            return -1;
        memset(np + b->npos, 0, (n - b->npos) * sizeof *np);
        b->pos = np;
        b->npos = n;
    }
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 256;
        struct ppf_buf_entry *ne2 = realloc(b->e, cap * sizeof *ne2);

        if (!ne2)
            return -1;
        b->e = ne2;
        b->cap = cap;
    }
    /* Evict, highest index first so swaps do not move pending victims. */
    for (uint32_t i = 0; i < nv; i++)
        for (uint32_t j = i + 1; j < nv; j++)
            if (b->victims[j] > b->victims[i]) {
                uint32_t t = b->victims[i];

                b->victims[i] = b->victims[j];
                b->victims[j] = t;
            }
    for (uint32_t i = 0; i < nv; i++) {
        struct ppf_buf_entry *e = &b->e[b->victims[i]];

        b->st.evictions++;
        b->st.evicted_bytes += e->size;
        if (e->prefetched && !e->used) {
            b->st.evicted_unused++;
            b->st.evicted_unused_bytes += e->size;
        }
        buf_drop(b, b->victims[i], now, true);
    }
    ne = &b->e[b->n];
    memset(ne, 0, sizeof *ne);
    ne->image = image;
    ne->tenant = tenant;
    ne->size = size;
    ne->state = PPF_BUF_INFLIGHT;
    ne->prefetched = prefetch;
    ne->inserted = ne->last_use = now;
    ne->value_time = -1;
    b->pos[image] = ++b->n;
    b->st.used += size;
    b->st.inflight += size;
    if (prefetch)
        b->inflight_prefetches++;
    if (tenant != PPF_BUF_PUBLIC)
        b->tused[tenant] += size;
    return 0;
}

static struct ppf_buf_entry *
buf_get(struct ppf_bufmodel *b, uint32_t image)
{
    return (struct ppf_buf_entry *)ppf_bufmodel_find(b, image);
}

int
ppf_bufmodel_ready(struct ppf_bufmodel *b, uint32_t image, double now)
{
    struct ppf_buf_entry *e = buf_get(b, image);

    if (!e || e->state != PPF_BUF_INFLIGHT) {
        errno = ENOENT;
        return -1;
    }
    e->state = PPF_BUF_PREPARED;
    b->st.inflight -= e->size;
    if (e->prefetched)
        b->inflight_prefetches--;
    e->value_time = -1;
    (void)now;
    return 0;
}

int
ppf_bufmodel_use(struct ppf_bufmodel *b, uint32_t image, double now)
{
    struct ppf_buf_entry *e = buf_get(b, image);

    if (!e)
        return 0;
    e->used = true;
    e->last_use = now;
    e->value_time = -1;
    return e->state == PPF_BUF_PREPARED;
}

void
ppf_bufmodel_revalue(struct ppf_bufmodel *b, uint32_t image)
{
    struct ppf_buf_entry *e = buf_get(b, image);

    if (e)
        e->value_time = -1;
}

int
ppf_bufmodel_remove(struct ppf_bufmodel *b, uint32_t image, double now)
{
    struct ppf_buf_entry *e = buf_get(b, image);

    if (!e) {
        errno = ENOENT;
        return -1;
    }
    if (e->pinned) {
        errno = EBUSY;
        return -1;
    }
    if (e->state == PPF_BUF_PREPARED) {
        b->st.evictions++;
        b->st.evicted_bytes += e->size;
        if (e->prefetched && !e->used) {
            b->st.evicted_unused++;
            b->st.evicted_unused_bytes += e->size;
        }
    }
    buf_drop(b, b->pos[image] - 1, now, true);
    return 0;
}

int
ppf_bufmodel_pin(struct ppf_bufmodel *b, uint32_t image, bool pin)
{
    struct ppf_buf_entry *e = buf_get(b, image);

    if (!e) {
        errno = ENOENT;
        return -1;
    }
    if (e->pinned != pin)
        b->st.pinned = pin ? b->st.pinned + e->size : b->st.pinned - e->size;
    e->pinned = pin;
    return 0;
}

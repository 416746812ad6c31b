/* The Image Prediction Table (see table.h): rows in an array with a
 * chained hash on the key; eviction scans for the least useful row, which
 * is cheap next to the prefetch that causes a record.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "peripheral/table.h"

struct tb_row {
    struct ppf_table_row r;
    uint32_t hash;
    int32_t next;
};

struct ppf_table {
    struct ppf_table_config cfg;
    uint32_t size;              /* current capacity in rows */
    struct tb_row *row;
    uint32_t n, cap;
    int32_t *bucket;
    uint32_t nbucket;
    struct ppf_table_stats st;
    uint64_t epoch_hits, epoch_misses, epoch_evictions, epoch_events;
};

void
ppf_table_config_from_policy(const struct ppf_policy *p, struct ppf_table_config *c)
{
    memset(c, 0, sizeof *c);
    c->size = p->table.size;
    c->dynamic = p->table.dynamic;
    c->min = p->table.min;
    c->max = p->table.max;
    c->memory_limit = p->learning.store_size;
    c->adaptation_rate = p->learning.adaptation_rate;
}

static uint32_t
tb_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t
tb_mem_rows(const struct ppf_table *t)
{
    uint64_t rows;

    if (!t->cfg.memory_limit)
        return UINT32_MAX;
    rows = t->cfg.memory_limit / sizeof(struct tb_row);
    return rows > UINT32_MAX ? UINT32_MAX : (uint32_t)rows;
}

struct ppf_table *
ppf_table_new(const struct ppf_table_config *c)
{
    struct ppf_table *t;

    if (c->size == 0 || (c->dynamic && (c->min == 0 || c->min > c->size || c->max < c->size))) {
        errno = EINVAL;
        return NULL;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cfg = *c;
    t->size = c->size < tb_mem_rows(t) ? c->size : tb_mem_rows(t);
    if (t->size == 0)
        t->size = 1;
    t->nbucket = 1024;
    t->bucket = malloc(t->nbucket * sizeof *t->bucket);
    if (!t->bucket) {
        free(t);
        return NULL;
    }
    memset(t->bucket, 0xff, t->nbucket * sizeof *t->bucket);
    return t;
}

void
ppf_table_free(struct ppf_table *t)
{
    if (!t)
        return;
    free(t->row);
    free(t->bucket);
    free(t);
}

static void
tb_rehash(struct ppf_table *t)
{
    memset(t->bucket, 0xff, t->nbucket * sizeof *t->bucket);
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t b = t->row[i].hash & (t->nbucket - 1);

        t->row[i].next = t->bucket[b];
        t->bucket[b] = (int32_t)i;
    }
}

static int32_t
tb_find(const struct ppf_table *t, const char *key, uint32_t h)
{
    for (int32_t i = t->bucket[h & (t->nbucket - 1)]; i >= 0; i = t->row[i].next)
        if (t->row[i].hash == h && strcmp(t->row[i].r.key, key) == 0)
            return i;
    return -1;
}

/* Usefulness of a row: smoothed hit rate, then recency. */
static int
tb_worse(const struct tb_row *a, const struct tb_row *b)
{
    double ua = (a->r.hits + 1.0) / (a->r.hits + a->r.misses + 2.0);
    double ub = (b->r.hits + 1.0) / (b->r.hits + b->r.misses + 2.0);

    if (ua != ub)
        return ua < ub;
    return a->r.updated < b->r.updated;
}

static void
tb_evict_one(struct ppf_table *t)
{
    uint32_t worst = 0;

    if (t->n == 0)
        return;
    for (uint32_t i = 1; i < t->n; i++)
        if (tb_worse(&t->row[i], &t->row[worst]))
            worst = i;
    t->row[worst] = t->row[--t->n];
    tb_rehash(t);
    t->st.evictions++;
    t->epoch_evictions++;
}

/* Dynamic sizing, once per `size` outcomes. */
static void
tb_adapt(struct ppf_table *t)
{
    uint64_t outcomes = t->epoch_hits + t->epoch_misses;
    double rate;

    if (!t->cfg.dynamic || t->epoch_events < t->size)
        return;
    rate = outcomes ? (double)t->epoch_hits / (double)outcomes : 0;
    if (t->epoch_evictions > 0 && rate >= 0.5 && t->size < t->cfg.max) {
        uint32_t ns = t->size + t->size / 4 + 1, lim = tb_mem_rows(t);

        if (ns > t->cfg.max)
            ns = t->cfg.max;
        if (ns > lim)
            ns = lim;
        if (ns > t->size) {
            t->size = ns;
            t->st.grows++;
        }
    } else if ((rate < 0.25 && outcomes > 0) || t->n < t->size / 2) {
        uint32_t ns = t->size - t->size / 5;

        if (ns < t->cfg.min)
            ns = t->cfg.min;
        if (ns < t->size) {
            t->size = ns;
            t->st.shrinks++;
            while (t->n > t->size)
                tb_evict_one(t);
        }
    }
    t->epoch_hits = t->epoch_misses = t->epoch_evictions = t->epoch_events = 0;
}

int
ppf_table_record(struct ppf_table *t, const char *key, const struct ppf_prediction *p,
                 size_t n, double now)
{
    uint32_t h;
    int32_t i;
    struct ppf_table_row *r;
    double a = t->cfg.adaptation_rate > 0 ? t->cfg.adaptation_rate : 0.1;

    if (!key || !*key || strlen(key) >= PPF_TABLE_KEY) {
        errno = EINVAL;
        return -1;
    }
    h = tb_hash(key);
    i = tb_find(t, key, h);
    if (i < 0) {
        while (t->n >= t->size)
            tb_evict_one(t);
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            struct tb_row *nr = realloc(t->row, cap * sizeof *nr);

            if (!nr)
                return -1;
            t->row = nr;
            t->cap = cap;
        }
        if (t->n >= t->nbucket) {
            int32_t *nb = realloc(t->bucket, t->nbucket * 2 * sizeof *nb);

            if (!nb)
                return -1;
            t->bucket = nb;
            t->nbucket *= 2;
            tb_rehash(t);
        }
        i = (int32_t)t->n++;
        memset(&t->row[i], 0, sizeof t->row[i]);
        strcpy(t->row[i].r.key, key);
        t->row[i].hash = h;
        t->row[i].next = t->bucket[h & (t->nbucket - 1)];
        t->bucket[h & (t->nbucket - 1)] = i;
    }
    r = &t->row[i].r;
    r->updated = now;
    for (size_t k = 0; k < n; k++) {
        unsigned j;

        for (j = 0; j < r->n && r->e[j].image != p[k].image; j++)
            ;
        if (j == r->n) {
            if (r->n < PPF_TABLE_RANK)
                r->n++;
            else
                j = r->n - 1;   /* replaces the lowest */
            memset(&r->e[j], 0, sizeof r->e[j]);
            r->e[j].image = p[k].image;
            r->e[j].score = p[k].probability;
        } else {
            r->e[j].score += a * (p[k].probability - r->e[j].score);
        }
        /* keep the row ranked: bubble the changed entry into place */
        while (j > 0 && r->e[j].score > r->e[j - 1].score) {
            struct ppf_table_entry x = r->e[j];

            r->e[j] = r->e[j - 1];
            r->e[--j] = x;
        }
        while (j + 1 < r->n && r->e[j].score < r->e[j + 1].score) {
            struct ppf_table_entry x = r->e[j];

            r->e[j] = r->e[j + 1];
            r->e[++j] = x;
        }
    }
    t->epoch_events++;
    tb_adapt(t);
    return 0;
}

int
ppf_table_feedback(struct ppf_table *t, const char *key, uint32_t image, bool hit, double now)
{
    int32_t i = key ? tb_find(t, key, tb_hash(key)) : -1;
    struct ppf_table_row *r;

    if (hit) {
        t->st.hits++;
        t->epoch_hits++;
    } else {
        t->st.misses++;
        t->epoch_misses++;
    }
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    r = &t->row[i].r;
    if (hit)
        r->hits++;
    else
        r->misses++;
    for (unsigned j = 0; j < r->n; j++)
        if (r->e[j].image == image) {
            if (hit)
                r->e[j].hits++;
            else
                r->e[j].misses++;
        }
    (void)now;
    return 0;
}

void
ppf_table_get_stats(const struct ppf_table *t, struct ppf_table_stats *st)
{
    *st = t->st;
    st->size = t->size;
    st->rows = t->n;
}

static int
tb_dump_cmp(const void *a, const void *b)
{
    const struct ppf_table_row *x = a, *y = b;

    if (x->hits != y->hits)
        return x->hits > y->hits ? -1 : 1;
    return strcmp(x->key, y->key);
}

size_t
ppf_table_dump(const struct ppf_table *t, struct ppf_table_row *out, size_t cap)
{
    struct ppf_table_row *all;
    size_t n = t->n < cap ? t->n : cap;

    all = malloc((t->n + 1) * sizeof *all);
    if (!all) {
        /* unsorted, but still the rows */
        for (size_t i = 0; i < n; i++)
            out[i] = t->row[i].r;
        return n;
    }
    for (uint32_t i = 0; i < t->n; i++)
        all[i] = t->row[i].r;
    qsort(all, t->n, sizeof *all, tb_dump_cmp);
    if (n)
        memcpy(out, all, n * sizeof *out);
    free(all);
    return n;
}

int
ppf_table_dump_json(const struct ppf_table *t, const struct ppf_engine *e, FILE *fp)
{
    struct ppf_table_row *rows = malloc((t->n + 1) * sizeof *rows);
    struct ppf_json j;
    size_t n;

    if (!rows)
        return -1;
    n = ppf_table_dump(t, rows, t->n);
    ppf_json_init(&j, fp);
    ppf_json_begin_object(&j, NULL);
    ppf_json_u64(&j, "size", t->size);
    ppf_json_u64(&j, "rows", t->n);
    ppf_json_u64(&j, "hits", t->st.hits);
    ppf_json_u64(&j, "misses", t->st.misses);
    ppf_json_begin_array(&j, "patterns");
    for (size_t i = 0; i < n; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "key", rows[i].key);
        ppf_json_u64(&j, "hits", rows[i].hits);
        ppf_json_u64(&j, "misses", rows[i].misses);
        ppf_json_begin_array(&j, "images");
        for (unsigned k = 0; k < rows[i].n; k++) {
            const char *name = e ? ppf_engine_image_name(e, rows[i].e[k].image) : NULL;
            char id[16];

            snprintf(id, sizeof id, "%u", rows[i].e[k].image);
            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "image", name ? name : id);
            ppf_json_double(&j, "score", rows[i].e[k].score);
            ppf_json_u64(&j, "hits", rows[i].e[k].hits);
            ppf_json_u64(&j, "misses", rows[i].e[k].misses);
            ppf_json_end_object(&j);
        }
        ppf_json_end_array(&j);
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    ppf_json_end_object(&j);
    fputc('\n', fp);
    free(rows);
    return ferror(fp) ? -1 : 0;
}

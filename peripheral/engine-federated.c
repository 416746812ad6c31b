/* Federated learning (issue 8, schemas/federation.md): the pattern summary
 * shared between peripherals (its codec, which checks every byte of an
 * untrusted summary, and its builder), and the federated model, which
 * predicts from the latest summary of every peer.  Each peer's summary
 * replaces the one it sent before, so merging is idempotent; evidence is
 * pooled across peers weighted by each peer's evidence and decayed by the
 * summary's age; the local models are never touched, and the ensemble
 * takes the most convinced model, so a peer can add evidence but never
 * lower what this host learned itself.  Peers' state is kept in memory
 * only: it is theirs, it comes back within one federation interval, and a
 * stale copy in the NVM store would outlive a peer that was removed.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peripheral/engine.h"
#include "peripheral/nvm.h"
#include "ppf/protocol.h"

#define FED_MAGIC       "PPFS"
#define FED_DAY         86400.0
#define FED_MAX_COUNT   1e9     /* bound of evidence, weights, sizes of counts */
#define FED_MAX_AGE     1e10    /* s */
#define FED_MAX_RATE    1000.0  /* requests per day in one slot */
#define FED_MAX_DELAY   (30 * FED_DAY)
#define FED_MAX_SIZE    (1ull << 50)
#define FED_EDGE_BYTES  24u     /* u32 from, u32 to, f64 weight, f64 delay */
#define FED_SLOT_BYTES  24u
#define FED_IMG_FIXED   (4 + 1 + 8 + 8 * 3 + 8 * 7 + 1)   /* without name, tenant, slots */
#define FED_HEADER      (4 + 4 + 8 + 4 + 4)

/* --- the summary --------------------------------------------------------- */

void
ppf_fed_summary_free(struct ppf_fed_summary *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nimages; i++) {
        free(s->images[i].name);
        free(s->images[i].tenant);
    }
    free(s->images);
    free(s->edges);
    free(s);
}

static size_t
fed_image_bytes(const char *name, const char *tenant, unsigned nslots)
{
    return FED_IMG_FIXED + 4 + strlen(name) + (tenant ? 4 + strlen(tenant) : 0)
        + (size_t)nslots * FED_SLOT_BYTES;
}

int
ppf_fed_summary_encode(const struct ppf_fed_summary *s, uint8_t **buf, size_t *len)
{
    struct ppf_nvm_writer w;

    *buf = NULL;
    *len = 0;
    if (s->nimages > PPF_FED_MAX_IMAGES || s->nedges > PPF_FED_MAX_EDGES) {
        errno = EINVAL;
        return -1;
    }
    ppf_nvm_writer_init(&w, PPF_FED_MAX_SUMMARY);
    ppf_nvm_put_bytes(&w, FED_MAGIC, 4);
    ppf_nvm_put_u32(&w, PPF_FED_VERSION);
    ppf_nvm_put_f64(&w, s->time);
    ppf_nvm_put_u32(&w, s->nimages);
    for (uint32_t i = 0; i < s->nimages; i++) {
        const struct ppf_fed_image *im = &s->images[i];

        ppf_nvm_put_str(&w, im->name);
        ppf_nvm_put_u8(&w, im->tenant != NULL);
        if (im->tenant)
            ppf_nvm_put_str(&w, im->tenant);
        ppf_nvm_put_u64(&w, im->size);
        ppf_nvm_put_f64(&w, im->evidence);
        ppf_nvm_put_f64(&w, im->age);
        ppf_nvm_put_f64(&w, im->ctx_total);
        for (int d = 0; d < 7; d++)
            ppf_nvm_put_f64(&w, im->dow[d]);
        ppf_nvm_put_u8(&w, (uint8_t)im->nslots);
        for (unsigned k = 0; k < im->nslots && k < PPF_FED_SLOTS; k++) {
            ppf_nvm_put_f64(&w, im->slot[k].tod);
            ppf_nvm_put_f64(&w, im->slot[k].rate);
            ppf_nvm_put_f64(&w, im->slot[k].dev);
        }
    }
    ppf_nvm_put_u32(&w, s->nedges);
    for (uint32_t i = 0; i < s->nedges; i++) {
        ppf_nvm_put_u32(&w, s->edges[i].from);
        ppf_nvm_put_u32(&w, s->edges[i].to);
        ppf_nvm_put_f64(&w, s->edges[i].weight);
        ppf_nvm_put_f64(&w, s->edges[i].delay);
    }
    if (w.error) {
        errno = w.error == E2BIG ? E2BIG : ENOMEM;
        ppf_nvm_writer_free(&w);
        return -1;
    }
    *buf = w.buf;
    *len = w.len;
    return 0;
}

/* Decoding: every value is checked; the first problem is reported. */
struct fed_dec {
    struct ppf_nvm_reader r;
    char *err;
    size_t errlen;
    int failed;
};

static int
dec_fail(struct fed_dec *d, const char *what)
{
    if (!d->failed)
        snprintf(d->err, d->errlen, "%s (at byte %zu)", what, d->r.pos);
    d->failed = 1;
    return -1;
}

static int
dec_f64(struct fed_dec *d, double lo, double hi, bool hi_open, double *v, const char *what)
{
    if (ppf_nvm_get_f64(&d->r, v) < 0)
        return dec_fail(d, d->r.pos + 8 > d->r.len ? "truncated" : what);
    if (*v < lo || *v > hi || (hi_open && *v >= hi))
        return dec_fail(d, what);
    return 0;
}

static int
dec_name(struct fed_dec *d, char **out, size_t cap, const char *what)
{
    char buf[PPF_POLICY_MAX_IMAGE + 1];
    size_t at = d->r.pos;

    if (ppf_nvm_get_str(&d->r, buf, cap) < 0) {
        d->r.pos = at;
        return dec_fail(d, at + 4 > d->r.len ? "truncated" : what);
    }
    if (!ppf_name_ok(buf))
        return dec_fail(d, what);
    if (!(*out = strdup(buf)))
        return dec_fail(d, "out of memory");
    return 0;
}

static int
dec_image_cmp(const void *a, const void *b, void *arg)
{
    const struct ppf_fed_image *v = arg;
    const struct ppf_fed_image *x = &v[*(const uint32_t *)a], *y = &v[*(const uint32_t *)b];
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    if (!x->tenant || !y->tenant)
        return !!x->tenant - !!y->tenant;
    return strcmp(x->tenant, y->tenant);
}

static int
dec_image(struct fed_dec *d, struct ppf_fed_image *im)
{
    uint8_t has_tenant, ns;

    if (dec_name(d, &im->name, PPF_POLICY_MAX_IMAGE + 1, "bad image name") < 0)
        return -1;
    if (ppf_nvm_get_u8(&d->r, &has_tenant) < 0)
        return dec_fail(d, "truncated");
    if (has_tenant > 1)
        return dec_fail(d, "bad tenant flag");
    if (has_tenant && dec_name(d, &im->tenant, PPF_POLICY_MAX_NAME + 1, "bad tenant name") < 0)
        return -1;
    if (ppf_nvm_get_u64(&d->r, &im->size) < 0)
        return dec_fail(d, "truncated");
    if (im->size > FED_MAX_SIZE)
        return dec_fail(d, "image size out of range");
    if (dec_f64(d, 0, FED_MAX_COUNT, false, &im->evidence, "evidence out of range") < 0
        || dec_f64(d, 0, FED_MAX_AGE, false, &im->age, "age out of range") < 0
        || dec_f64(d, 0, FED_MAX_COUNT, false, &im->ctx_total, "transition total out of range") < 0)
        return -1;
    for (int k = 0; k < 7; k++)
        if (dec_f64(d, 0, FED_MAX_COUNT, false, &im->dow[k], "weekday weight out of range") < 0)
            return -1;
    if (ppf_nvm_get_u8(&d->r, &ns) < 0)
        return dec_fail(d, "truncated");
    if (ns > PPF_FED_SLOTS)
        return dec_fail(d, "too many time slots");
    im->nslots = ns;
    for (unsigned k = 0; k < ns; k++)
        if (dec_f64(d, 0, FED_DAY, true, &im->slot[k].tod, "slot time out of range") < 0
            || dec_f64(d, 0, FED_MAX_RATE, false, &im->slot[k].rate, "slot rate out of range") < 0
            || dec_f64(d, 0, FED_DAY, false, &im->slot[k].dev, "slot spread out of range") < 0)
            return -1;
    return 0;
}

int
ppf_fed_summary_decode(const void *buf, size_t len, struct ppf_fed_summary **out, char *err,
                       size_t errlen)
{
    struct fed_dec d = { .err = err, .errlen = errlen };
    struct ppf_fed_summary *s;
    uint32_t version, *order = NULL;
    const uint8_t *magic;

    *out = NULL;
    if (errlen)
        err[0] = 0;
    if (len > PPF_FED_MAX_SUMMARY) {
        snprintf(err, errlen, "summary of %zu bytes is over the limit of %u", len,
                 PPF_FED_MAX_SUMMARY);
        return -1;
    }
    if (!(s = calloc(1, sizeof *s))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ppf_nvm_reader_init(&d.r, buf, len);
    magic = d.r.buf;
    if (len < FED_HEADER) {
        dec_fail(&d, "truncated header");
        goto bad;
    }
    if (memcmp(magic, FED_MAGIC, 4) != 0) {
        dec_fail(&d, "not a ppf pattern summary (bad magic)");
        goto bad;
    }
    d.r.pos = 4;
    ppf_nvm_get_u32(&d.r, &version);
    if (version != PPF_FED_VERSION) {
        dec_fail(&d, "unsupported summary version");
        goto bad;
    }
    if (dec_f64(&d, 0, 1e11, false, &s->time, "summary time out of range") < 0)
        goto bad;
    if (ppf_nvm_get_count(&d.r, PPF_FED_MAX_IMAGES, FED_IMG_FIXED + 5, &s->nimages) < 0) {
        dec_fail(&d, "image count too large or truncated");
        s->nimages = 0;
        goto bad;
    }
    if (s->nimages && !(s->images = calloc(s->nimages, sizeof *s->images))) {
        s->nimages = 0;
        dec_fail(&d, "out of memory");
        goto bad;
    }
    for (uint32_t i = 0; i < s->nimages; i++)
        if (dec_image(&d, &s->images[i]) < 0)
            goto bad;
    /* one record per (tenant, image) */
    if (s->nimages > 1) {
        if (!(order = malloc(s->nimages * sizeof *order))) {
            dec_fail(&d, "out of memory");
            goto bad;
        }
        for (uint32_t i = 0; i < s->nimages; i++)
            order[i] = i;
        qsort_r(order, s->nimages, sizeof *order, dec_image_cmp, s->images);
        for (uint32_t i = 1; i < s->nimages; i++)
            if (dec_image_cmp(&order[i - 1], &order[i], s->images) == 0) {
                dec_fail(&d, "an image is listed twice");
                goto bad;
            }
    }
    if (ppf_nvm_get_count(&d.r, PPF_FED_MAX_EDGES, FED_EDGE_BYTES, &s->nedges) < 0) {
        dec_fail(&d, "transition count too large or truncated");
        s->nedges = 0;
        goto bad;
    }
    if (s->nedges && !(s->edges = calloc(s->nedges, sizeof *s->edges))) {
        s->nedges = 0;
        dec_fail(&d, "out of memory");
        goto bad;
    }
    for (uint32_t i = 0; i < s->nedges; i++) {
        struct ppf_fed_edge *ed = &s->edges[i];

        if (ppf_nvm_get_u32(&d.r, &ed->from) < 0 || ppf_nvm_get_u32(&d.r, &ed->to) < 0) {
            dec_fail(&d, "truncated");
            goto bad;
        }
        if (ed->from >= s->nimages || ed->to >= s->nimages) {
            dec_fail(&d, "transition names an image not in the summary");
            goto bad;
        }
        if (dec_f64(&d, 0, FED_MAX_COUNT, false, &ed->weight, "transition weight out of range") < 0
            || dec_f64(&d, 0, FED_MAX_DELAY, false, &ed->delay, "transition delay out of range") < 0)
            goto bad;
        if (!(ed->weight > 0)
            || ed->weight > s->images[ed->from].ctx_total * (1 + 1e-6) + 1e-6) {
            dec_fail(&d, "transition weight inconsistent with its image's total");
            goto bad;
        }
    }
    if (d.r.pos != d.r.len) {
        dec_fail(&d, "trailing bytes after the summary");
        goto bad;
    }
    free(order);
    *out = s;
    return 0;
bad:
    free(order);
    ppf_fed_summary_free(s);
    return -1;
}

/* --- building a summary -------------------------------------------------- */

struct ppf_fed_builder {
    double now;
    uint32_t *idx;              /* engine id -> summary index, or UINT32_MAX */
    uint32_t cap;
    struct ppf_fed_summary *s;
    uint32_t images_cap, edges_cap;
    size_t bytes;               /* encoded size, images at their full slots */
    int error;
};

/* Bytes kept for the transitions; the images get the rest. */
#define FED_EDGE_BUDGET ((size_t)PPF_FED_MAX_EDGES * FED_EDGE_BYTES)

struct ppf_fed_builder *
ppf_fed_builder_new(uint32_t img_cap, double now)
{
    struct ppf_fed_builder *b = calloc(1, sizeof *b);

    if (!b)
        return NULL;
    b->now = now;
    b->cap = img_cap;
    b->idx = malloc(((size_t)img_cap + 1) * sizeof *b->idx);
    b->s = calloc(1, sizeof *b->s);
    if (!b->idx || !b->s) {
        free(b->idx);
        free(b->s);
        free(b);
        return NULL;
    }
    memset(b->idx, 0xff, ((size_t)img_cap + 1) * sizeof *b->idx);
    b->s->time = now;
    b->bytes = FED_HEADER + 4;
    return b;
}

int
ppf_fed_builder_image(struct ppf_fed_builder *b, uint32_t image, const char *name,
                      const char *tenant, uint64_t size, double evidence, double age)
{
    struct ppf_fed_summary *s = b->s;
    struct ppf_fed_image *im;
    size_t need;

    if (image >= b->cap || b->idx[image] != UINT32_MAX || !name || !ppf_name_ok(name)
        || (tenant && !ppf_name_ok(tenant)) || strlen(name) > PPF_POLICY_MAX_IMAGE
        || (tenant && strlen(tenant) > PPF_POLICY_MAX_NAME))
        return 0;
    need = fed_image_bytes(name, tenant, PPF_FED_SLOTS);
    if (s->nimages >= PPF_FED_MAX_IMAGES
        || b->bytes + need + FED_EDGE_BUDGET > PPF_FED_MAX_SUMMARY)
        return 0;
    if (s->nimages == b->images_cap) {
        uint32_t n = b->images_cap ? 2 * b->images_cap : 64;
        struct ppf_fed_image *v = realloc(s->images, n * sizeof *v);

        if (!v)
            return b->error = -1;
        s->images = v;
        b->images_cap = n;
    }
    im = &s->images[s->nimages];
    memset(im, 0, sizeof *im);
    im->name = strdup(name);
    im->tenant = tenant ? strdup(tenant) : NULL;
    if (!im->name || (tenant && !im->tenant)) {
        free(im->name);
        free(im->tenant);
        return b->error = -1;
    }
    im->size = size > FED_MAX_SIZE ? FED_MAX_SIZE : size;
    im->evidence = fmin(fmax(evidence, 0), FED_MAX_COUNT);
    im->age = fmin(fmax(age, 0), FED_MAX_AGE);
    b->idx[image] = s->nimages++;
    b->bytes += need;
    return 1;
}

static struct ppf_fed_image *
fb_image(struct ppf_fed_builder *b, uint32_t image)
{
    if (image >= b->cap || b->idx[image] == UINT32_MAX)
        return NULL;
    return &b->s->images[b->idx[image]];
}

void
ppf_fed_builder_slot(struct ppf_fed_builder *b, uint32_t image, double tod, double rate,
                     double dev)
{
    struct ppf_fed_image *im = fb_image(b, image);
    struct ppf_fed_slot *sl;

    if (!im || im->nslots >= PPF_FED_SLOTS || !isfinite(tod) || !(rate > 0)
        || !isfinite(dev))
        return;
    tod = fmod(tod, FED_DAY);
    if (tod < 0)
        tod += FED_DAY;
    if (tod >= FED_DAY)
        tod = 0;
    sl = &im->slot[im->nslots++];
    sl->tod = tod;
    sl->rate = fmin(rate, FED_MAX_RATE);
    sl->dev = fmin(fmax(dev, 0), FED_DAY);
}

void
ppf_fed_builder_dow(struct ppf_fed_builder *b, uint32_t image, const double dow[7])
{
    struct ppf_fed_image *im = fb_image(b, image);

    if (!im)
        return;
    for (int d = 0; d < 7; d++)
        im->dow[d] = isfinite(dow[d]) ? fmin(fmax(dow[d], 0), FED_MAX_COUNT) : 0;
}

void
ppf_fed_builder_edge(struct ppf_fed_builder *b, uint32_t from, uint32_t to, double w,
                     double total, double delay)
{
    struct ppf_fed_image *fi = fb_image(b, from);
    struct ppf_fed_summary *s = b->s;
    struct ppf_fed_edge *ed;

    if (!fi || !fb_image(b, to) || !(w > 0) || !isfinite(w) || !isfinite(total)
        || !isfinite(delay) || s->nedges >= PPF_FED_MAX_EDGES)
        return;
    if (s->nedges == b->edges_cap) {
        uint32_t n = b->edges_cap ? 2 * b->edges_cap : 256;
        struct ppf_fed_edge *v = realloc(s->edges, n * sizeof *v);

        if (!v) {
            b->error = -1;
            return;
        }
        s->edges = v;
        b->edges_cap = n;
    }
    w = fmin(w, FED_MAX_COUNT);
    total = fmin(fmax(total, w), FED_MAX_COUNT);
    if (total > fi->ctx_total)
        fi->ctx_total = total;
    ed = &s->edges[s->nedges++];
    ed->from = b->idx[from];
    ed->to = b->idx[to];
    ed->weight = w;
    ed->delay = fmin(fmax(delay, 0), FED_MAX_DELAY);
}

struct ppf_fed_summary *
ppf_fed_builder_finish(struct ppf_fed_builder *b)
{
    struct ppf_fed_summary *s = b->s;

    if (b->error) {
        ppf_fed_summary_free(s);
        s = NULL;
    }
    free(b->idx);
    free(b);
    return s;
}

/* --- the federated model ------------------------------------------------- */

#define FM_MAX_PEERS    128
#define FM_RECENT       32
#define FM_HOURS        24
#define FM_INDEX        64      /* images indexed per hour of the day */
#define FM_SERVED_SLACK 1800.0  /* s: a local request this close counts as the occurrence */
#define FM_MIN_HALF     60.0

struct fm_peer {
    char *name;
    struct ppf_fed_summary *s;
    uint32_t *map;              /* summary index -> engine id */
    double t0;                  /* when the summary was made (at most when merged) */
};

struct fm_rec {                 /* one peer's record of one image */
    uint32_t image;
    uint16_t peer;
    const struct ppf_fed_image *im;
};

struct fm_edge {
    uint32_t from, to;
    uint16_t peer;
    double w, delay;
};

struct fm_img {
    uint32_t rec_first, nrec, edge_first, nedge;
    double last_local;          /* the latest local request (s), 0 = none */
    uint32_t mark;              /* candidates: seen in this round */
};

struct fm_scope {
    uint32_t last_image;
    double last_time;           /* 0: nothing seen yet */
};

struct fm_hour_ref {
    uint32_t image;
    double rate;
};

struct fm {
    struct ppf_engine *e;
    struct fm_peer peer[FM_MAX_PEERS];
    unsigned npeers;
    struct fm_rec *rec;
    size_t nrec;
    struct fm_edge *edge;
    size_t nedge;
    struct fm_img *img;
    uint32_t cap;
    struct fm_scope *scope;     /* [0] public images, [t + 1] tenant t */
    uint32_t nscope;
    uint32_t recent[FM_RECENT];
    unsigned nrecent;
    uint32_t *hour[FM_HOURS];
    uint32_t nhour[FM_HOURS];
    struct ppf_prediction *scratch;
    size_t scratch_cap;
    uint32_t stamp;             /* candidates: the current round */
    bool dirty;                 /* peers changed: rebuild before use */
};

static void *
fm_create(struct ppf_engine *e)
{
    struct fm *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->e = e;
    return f;
}

static void
fm_peer_clear(struct fm_peer *p)
{
    free(p->name);
    ppf_fed_summary_free(p->s);
    free(p->map);
    memset(p, 0, sizeof *p);
}

static void
fm_destroy(void *m)
{
    struct fm *f = m;

    if (!f)
        return;
    for (unsigned i = 0; i < f->npeers; i++)
        fm_peer_clear(&f->peer[i]);
    for (int h = 0; h < FM_HOURS; h++)
        free(f->hour[h]);
    free(f->rec);
    free(f->edge);
    free(f->img);
    free(f->scope);
    free(f->scratch);
    free(f);
}

static struct fm_img *
fm_img(struct fm *f, uint32_t id)
{
    if (id == PPF_ENGINE_NO_ID)
        return NULL;
    if (id >= f->cap) {
        uint32_t cap = f->cap ? f->cap : 1024;
        struct fm_img *v;

        while (cap <= id)
            cap *= 2;
        v = realloc(f->img, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        memset(v + f->cap, 0, (size_t)(cap - f->cap) * sizeof *v);
        f->img = v;
        f->cap = cap;
    }
    return &f->img[id];
}

static struct fm_scope *
fm_scope(struct fm *f, uint32_t s)
{
    if (s >= f->nscope) {
        uint32_t n = f->nscope ? f->nscope : 16;
        struct fm_scope *v;

        while (n <= s)
            n *= 2;
        v = realloc(f->scope, (size_t)n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + f->nscope, 0, (size_t)(n - f->nscope) * sizeof *v);
        f->scope = v;
        f->nscope = n;
    }
    return &f->scope[s];
}

static uint32_t
fm_scope_of(const struct fm *f, uint32_t image)
{
    uint32_t t = ppf_engine_image_tenant(f->e, image);

    return t == PPF_ENGINE_NO_ID ? 0 : t + 1;
}

static void
fm_observe(void *m, const struct ppf_engine_event *ev)
{
    struct fm *f = m;
    uint32_t s = ev->tenant == PPF_ENGINE_NO_ID ? 0 : ev->tenant + 1;
    struct fm_img *im = fm_img(f, ev->image);
    struct fm_scope *sc = fm_scope(f, s);
    unsigned i;

    if (im)
        im->last_local = ev->time;
    if (!sc)
        return;
    sc->last_image = ev->image;
    sc->last_time = ev->time;
    for (i = 0; i < f->nrecent && f->recent[i] != s; i++)
        ;
    if (i == f->nrecent && f->nrecent < FM_RECENT)
        f->nrecent++;
    if (i == FM_RECENT)
        i = FM_RECENT - 1;
    memmove(&f->recent[1], &f->recent[0], i * sizeof f->recent[0]);
    f->recent[0] = s;
}

static double
fm_peer_decay(const struct fm *f, unsigned peer, double now)
{
    return ppf_engine_decay(f->e, now - f->peer[peer].t0);
}

/* The chain part: after the scope's last local deploy L, the peers'
 * pooled transitions L -> image. */
static int
fm_score_chain(const struct fm *f, uint32_t image, double now, double *p, double *eta,
               double *value)
{
    uint32_t s = fm_scope_of(f, image), L;
    const struct fm_scope *sc;
    const struct fm_img *li;
    double W = 0, D = 0, T = 0, q, t, fd = 1, H = ppf_engine_window(f->e);

    if (s >= f->nscope || f->scope[s].last_time <= 0)
        return 0;
    sc = &f->scope[s];
    L = sc->last_image;
    if (L >= f->cap)
        return 0;
    li = &f->img[L];
    for (uint32_t i = 0; i < li->nedge; i++) {
        const struct fm_edge *ed = &f->edge[li->edge_first + i];
        double d;

        if (ed->to != image)
            continue;
        d = fm_peer_decay(f, ed->peer, now);
        W += ed->w * d;
        D += ed->delay * ed->w * d;
    }
    if (!(W > 0))
        return 0;
    for (uint32_t i = 0; i < li->nrec; i++) {
        const struct fm_rec *r = &f->rec[li->rec_first + i];

        T += r->im->ctx_total * fm_peer_decay(f, r->peer, now);
    }
    q = W / (T + 0.5);          /* 0.5: a successor never seen, as in markov */
    if (q > 1)
        q = 1;
    t = sc->last_time + D / W;
    if (t < now) {
        fd = ppf_engine_discount(f->e, now - t);
        *p = q * fd;
        *eta = now;
    } else {
        *p = t <= now + H ? q : 0;
        *eta = t;
    }
    *value = q * ppf_engine_discount(f->e, *eta - now) * fd;
    return 1;
}

/* The time-of-day part: the peers' slots, each peer's rates weighted by
 * its share of the evidence about the image. */
static int
fm_score_season(const struct fm *f, uint32_t image, double now, double *p, double *eta,
                double *value)
{
    const struct fm_img *fi = &f->img[image];
    double H = ppf_engine_window(f->e), esum = 0, lam = 0, val = 0;
    double day0 = floor(now / FED_DAY) * FED_DAY;
    int any = 0;

    for (uint32_t i = 0; i < fi->nrec; i++) {
        const struct fm_rec *r = &f->rec[fi->rec_first + i];

        esum += r->im->evidence * fm_peer_decay(f, r->peer, now);
        any |= r->im->nslots > 0;
    }
    if (!any || !(esum > 0))
        return 0;
    *eta = INFINITY;
    for (uint32_t i = 0; i < fi->nrec; i++) {
        const struct fm_rec *r = &f->rec[fi->rec_first + i];
        const struct ppf_fed_image *im = r->im;
        double d = fm_peer_decay(f, r->peer, now), wgt = im->evidence * d / esum, dsum = 0;

        for (int k = 0; k < 7; k++)
            dsum += im->dow[k];
        for (unsigned k = 0; k < im->nslots; k++) {
            const struct ppf_fed_slot *sl = &im->slot[k];
            double rate = sl->rate * d * wgt;
            double half = 2 * sl->dev > FM_MIN_HALF ? 2 * sl->dev : FM_MIN_HALF;

            for (int j = -1; j <= 1 + (int)(H / FED_DAY); j++) {
                double t = day0 + j * FED_DAY + sl->tod, lo, hi, rr = rate;
                int wd = (int)((((int64_t)floor(t / FED_DAY) + 4) % 7 + 7) % 7);

                if (t + half < now)
                    continue;
                if (fi->last_local > 0 && fi->last_local >= t - half - FM_SERVED_SLACK)
                    break;      /* served already, here */
                if (dsum >= 7)  /* a week or more of evidence: the weekday */
                    rr *= 7 * (im->dow[wd] + 0.5) / (dsum + 3.5);
                lo = t - half > now ? t - half : now;
                hi = t + half < now + H ? t + half : now + H;
                if (hi > lo)
                    lam += rr * (hi - lo) / (t + half - lo);
                val += (rr < 1 ? rr : 1) * ppf_engine_discount(f->e, t - half - now);
                if (hi > lo && lo < *eta)
                    *eta = lo;
                break;
            }
        }
    }
    *p = lam < 1 ? lam : 1;
    *value = val < 1 ? val : 1;
    if (!isfinite(*eta))
        *eta = now + H;
    return 1;
}

static int fm_rebuild(struct fm *f);

/* The pooled view is rebuilt lazily: several peers' summaries usually
 * arrive together.  false if it cannot be (ENOMEM): no opinion then. */
static bool
fm_ready(struct fm *f)
{
    if (f->dirty && fm_rebuild(f) == 0)
        f->dirty = false;
    return !f->dirty;
}

static int
fm_score(void *m, uint32_t image, double now, double *p, double *eta, double *value)
{
    struct fm *f = m;
    double p2, eta2, v2;
    int a, b;

    if (!fm_ready(f))
        return 0;
    if (image >= f->cap || (f->img[image].nrec == 0 && f->nedge == 0))
        return 0;
    a = fm_score_chain(f, image, now, p, eta, value);
    b = f->img[image].nrec ? fm_score_season(f, image, now, &p2, &eta2, &v2) : 0;
    if (b && (!a || p2 > *p)) {
        *p = p2;
        *eta = eta2;
    }
    if (b && (!a || v2 > *value))
        *value = v2;
    return a || b;
}

static int
fm_scratch(struct fm *f, size_t n)
{
    struct ppf_prediction *v;

    if (n <= f->scratch_cap)
        return 0;
    v = realloc(f->scratch, n * sizeof *v);
    if (!v)
        return -1;
    f->scratch = v;
    f->scratch_cap = n;
    return 0;
}

static void
fm_candidate(struct fm *f, uint32_t image, double now, size_t *n)
{
    struct ppf_prediction *pr;

    if (image >= f->cap || f->img[image].mark == f->stamp)
        return;
    f->img[image].mark = f->stamp;
    if (fm_scratch(f, *n + 1) < 0)
        return;
    pr = &f->scratch[*n];
    memset(pr, 0, sizeof *pr);
    pr->image = image;
    if (fm_score(f, image, now, &pr->probability, &pr->eta, &pr->value) && pr->value > 0)
        (*n)++;
}

static size_t
fm_candidates(void *m, double now, struct ppf_prediction *out, size_t k_max)
{
    struct fm *f = m;
    double H = ppf_engine_window(f->e);
    size_t n = 0;

    if (f->npeers == 0 || !fm_ready(f))
        return 0;
    if (++f->stamp == 0) {
        for (uint32_t i = 0; i < f->cap; i++)
            f->img[i].mark = 0;
        f->stamp = 1;
    }
    /* chains: from the last deploy of each recently active scope */
    for (unsigned r = 0; r < f->nrecent; r++) {
        const struct fm_scope *sc = &f->scope[f->recent[r]];
        const struct fm_img *li;

        if (sc->last_time <= 0 || sc->last_image >= f->cap)
            continue;
        li = &f->img[sc->last_image];
        for (uint32_t i = 0; i < li->nedge && n < 4 * k_max; i++)
            fm_candidate(f, f->edge[li->edge_first + i].to, now, &n);
    }
    /* time of day: the hours from an hour ago to the end of the window */
    {
        int64_t h0 = (int64_t)floor(now / 3600) - 1, h1 = (int64_t)floor((now + H) / 3600);

        if (h1 - h0 >= FM_HOURS)
            h1 = h0 + FM_HOURS - 1;
        for (int64_t h = h0; h <= h1; h++) {
            unsigned hh = (unsigned)(((h % FM_HOURS) + FM_HOURS) % FM_HOURS);

            for (uint32_t i = 0; i < f->nhour[hh]; i++)
                fm_candidate(f, f->hour[hh][i], now, &n);
        }
    }
    n = ppf_prediction_top(f->scratch, n, k_max);
    if (n)
        memcpy(out, f->scratch, n * sizeof *out);
    return n;
}

static void
fm_forget(void *m, uint32_t image)
{
    struct fm *f = m;

    if (image < f->cap)
        f->img[image].last_local = 0;
}

/* Peers' evidence is not stored (see the top of this file). */
static int
fm_save(void *m, struct ppf_nvm_writer *w, const uint32_t *remap)
{
    (void)m;
    (void)w;
    (void)remap;
    return 0;
}

static int
fm_load(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap)
{
    (void)m;
    (void)map;
    (void)nmap;
    r->pos = r->len;            /* a store from a later version: ignored */
    return 0;
}

static int
href_cmp(const void *a, const void *b)
{
    const struct fm_hour_ref *x = a, *y = b;

    if (x->rate != y->rate)
        return x->rate > y->rate ? -1 : 1;
    return (x->image > y->image) - (x->image < y->image);
}

/* Rebuilds the pooled view from every peer's latest summary. */
static int
fm_rebuild(struct fm *f)
{
    size_t nrec = 0, nedge = 0, nh[FM_HOURS] = { 0 };
    struct fm_rec *rec = NULL;
    struct fm_edge *edge = NULL;
    struct fm_hour_ref *href[FM_HOURS] = { NULL };
    int rc = -1;

    for (unsigned p = 0; p < f->npeers; p++) {
        nrec += f->peer[p].s->nimages;
        nedge += f->peer[p].s->nedges;
    }
    if ((nrec && !(rec = malloc(nrec * sizeof *rec)))
        || (nedge && !(edge = malloc(nedge * sizeof *edge))))
        goto out;
    for (int h = 0; h < FM_HOURS; h++)
        if (nrec && !(href[h] = malloc(nrec * sizeof *href[h])))
            goto out;
    nrec = nedge = 0;
    for (unsigned p = 0; p < f->npeers; p++) {
        const struct fm_peer *pe = &f->peer[p];

        for (uint32_t i = 0; i < pe->s->nimages; i++) {
            const struct ppf_fed_image *im = &pe->s->images[i];

            if (pe->map[i] == PPF_ENGINE_NO_ID || !fm_img(f, pe->map[i]))
                continue;
            rec[nrec++] = (struct fm_rec){ pe->map[i], (uint16_t)p, im };
            for (unsigned k = 0; k < im->nslots; k++) {
                unsigned h = (unsigned)(im->slot[k].tod / 3600) % FM_HOURS;

                href[h][nh[h]++] = (struct fm_hour_ref){ pe->map[i], im->slot[k].rate };
            }
        }
        for (uint32_t i = 0; i < pe->s->nedges; i++) {
            const struct ppf_fed_edge *ed = &pe->s->edges[i];
            uint32_t from = pe->map[ed->from], to = pe->map[ed->to];

            if (from == PPF_ENGINE_NO_ID || to == PPF_ENGINE_NO_ID || !fm_img(f, from))
                continue;
            edge[nedge++] = (struct fm_edge){ from, to, (uint16_t)p, ed->weight, ed->delay };
        }
    }
    /* grouped by image (a counting sort: stable, so by peer within) */
    for (uint32_t i = 0; i < f->cap; i++) {
        f->img[i].rec_first = f->img[i].nrec = 0;
        f->img[i].edge_first = f->img[i].nedge = 0;
    }
    for (size_t i = 0; i < nrec; i++)
        f->img[rec[i].image].nrec++;
    for (size_t i = 0; i < nedge; i++)
        f->img[edge[i].from].nedge++;
    {
        uint32_t r = 0, e = 0;
        struct fm_rec *rs = nrec ? malloc(nrec * sizeof *rs) : NULL;
        struct fm_edge *es = nedge ? malloc(nedge * sizeof *es) : NULL;

        if ((nrec && !rs) || (nedge && !es)) {
            free(rs);
            free(es);
            goto out;
        }
        for (uint32_t i = 0; i < f->cap; i++) {
            f->img[i].rec_first = r;
            f->img[i].edge_first = e;
            r += f->img[i].nrec;
            e += f->img[i].nedge;
            f->img[i].nrec = f->img[i].nedge = 0;
        }
        for (size_t i = 0; i < nrec; i++) {
            struct fm_img *fi = &f->img[rec[i].image];

            rs[fi->rec_first + fi->nrec++] = rec[i];
        }
        for (size_t i = 0; i < nedge; i++) {
            struct fm_img *fi = &f->img[edge[i].from];

            es[fi->edge_first + fi->nedge++] = edge[i];
        }
        free(rec);
        free(edge);
        rec = rs;
        edge = es;
    }
    free(f->rec);
    free(f->edge);
    f->rec = rec;
    f->edge = edge;
    f->nrec = nrec;
    f->nedge = nedge;
    rec = NULL;
    edge = NULL;
    /* the hour index: the images with the highest rates, each once */
    for (int h = 0; h < FM_HOURS; h++) {
        uint32_t *v = NULL, n = 0;

        if (nh[h]) {
            qsort(href[h], nh[h], sizeof *href[h], href_cmp);
            if (!(v = malloc((nh[h] < FM_INDEX ? nh[h] : FM_INDEX) * sizeof *v)))
                goto out;
            for (size_t i = 0; i < nh[h] && n < FM_INDEX; i++) {
                uint32_t j;

                for (j = 0; j < n && v[j] != href[h][i].image; j++)
                    ;
                if (j == n)
                    v[n++] = href[h][i].image;
            }
        }
        free(f->hour[h]);
        f->hour[h] = v;
        f->nhour[h] = n;
    }
    rc = 0;
out:
    free(rec);
    free(edge);
    for (int h = 0; h < FM_HOURS; h++)
        free(href[h]);
    return rc;
}

int
ppf_fed_model_merge(void *m, const char *peer, struct ppf_fed_summary *s, uint32_t *map,
                    double now)
{
    struct fm *f = m;
    struct fm_peer *p = NULL;
    char *name;

    for (unsigned i = 0; i < f->npeers; i++)
        if (strcmp(f->peer[i].name, peer) == 0)
            p = &f->peer[i];
    if (!p) {
        if (f->npeers == FM_MAX_PEERS || !(name = strdup(peer))) {
            ppf_fed_summary_free(s);
            free(map);
            errno = f->npeers == FM_MAX_PEERS ? ENOSPC : ENOMEM;
            return -1;
        }
        p = &f->peer[f->npeers++];
        p->name = name;
    }
    ppf_fed_summary_free(p->s);
    free(p->map);
    p->s = s;
    p->map = map;
    p->t0 = s->time < now ? s->time : now;
    f->dirty = true;            /* rebuilt when next used */
    return 0;
}

int
ppf_fed_model_forget_peer(void *m, const char *peer)
{
    struct fm *f = m;

    for (unsigned i = 0; i < f->npeers; i++)
        if (strcmp(f->peer[i].name, peer) == 0) {
            fm_peer_clear(&f->peer[i]);
            f->peer[i] = f->peer[--f->npeers];
            memset(&f->peer[f->npeers], 0, sizeof f->peer[0]);
            f->dirty = true;
            return 0;
        }
    return -1;
}

const struct ppf_model_ops ppf_model_federated = {
    .name = "federated",
    .create = fm_create,
    .destroy = fm_destroy,
    .observe = fm_observe,
    .candidates = fm_candidates,
    .score = fm_score,
    .forget = fm_forget,
    .save = fm_save,
    .load = fm_load,
};

/* The operations log and usage accounting (see oplog.h and
 * schemas/device-protocol.md §5.9).  A ring of fixed-size records (no
 * allocation per record), a table of usage rows per tenant and per
 * (image, tenant) pair, both bounded, and the pipeline rate as an
 * exponentially weighted moving average; and the log's part of EXPLAIN.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "peripheral/clock.h"
#include "peripheral/oplog.h"

#define OPLOG_TEXT_MAX     300      /* bytes of a record's text */
#define OPLOG_MAX_TENANTS  1024     /* tenant rows; more fold into OPLOG_OTHER */
#define OPLOG_MAX_IMAGES   4096     /* (image, tenant) rows; more fold per tenant */
#define OPLOG_OTHER        "(other)" /* never a valid name (§5.6), so never a real one */
#define OPLOG_RATE_WEIGHT  0.3      /* weight of the newest sample in the rate */
#define OPLOG_NO_OUTCOME   (-1)

struct oplog_rec {
    uint64_t seq, time_us, wait_us, saved_us, bytes;
    uint32_t kind;
    int outcome;                /* PPF_OUTCOME_* or OPLOG_NO_OUTCOME */
    bool has_wait;
    char image[PPF_NAME_MAX + 1];   /* "" if none */
    char tenant[PPF_NAME_MAX + 1];
    char text[OPLOG_TEXT_MAX + 1];
};

/* The U_* counters of one row. */
struct oplog_usage {
    uint64_t deploys, hits, inflight, misses, fallbacks, wait_us, saved_us, prefetch_bytes,
        wasted_bytes;
};

struct oplog_row {
    char *image;                /* NULL for a tenant row */
    char *tenant;
    struct oplog_usage u;
};

struct ppf_oplog {
    struct oplog_rec *rec;
    size_t cap;
    uint64_t next_seq;          /* the sequence number of the next record (from 1) */
    struct oplog_row *tenants, *images;
    size_t ntenants, nimages, nimages_cap;  /* tenants has OPLOG_MAX_TENANTS + 1 slots */
    bool folded_tenants, folded_images; /* said once in the log */
    double rate;                /* bytes per second, 0 until measured */
    /* the last preparation, for the WAIT_US of the READY record about it */
    uint64_t ready_us;
    char ready_image[PPF_NAME_MAX + 1], ready_tenant[PPF_NAME_MAX + 1];
};

struct ppf_oplog *
ppf_oplog_new(size_t records)
{
    struct ppf_oplog *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->cap = records ? records : 1;
    l->next_seq = 1;
    /* calloc: pages of records not written yet cost no memory */
    l->rec = calloc(l->cap, sizeof *l->rec);
    l->tenants = calloc(OPLOG_MAX_TENANTS + 1, sizeof *l->tenants);
    if (!l->rec || !l->tenants) {
        ppf_oplog_free(l);
        return NULL;
    }
    return l;
}

void
ppf_oplog_free(struct ppf_oplog *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->ntenants; i++)
        free(l->tenants[i].tenant);
    for (size_t i = 0; i < l->nimages; i++) {
        free(l->images[i].image);
        free(l->images[i].tenant);
    }
    free(l->tenants);
    free(l->images);
    free(l->rec);
    free(l);
}

/* ---- usage rows --------------------------------------------------------- */

static void
oplog_say_folded(bool *said, int max, const char *what)
{
    if (*said)
        return;
    *said = true;
    ppf_warn("ops", "usage is accounted for at most %d %s: the others are counted together "
             "as \"%s\" (ppfctl stats)", max, what, OPLOG_OTHER);
}

/* The tenant's row, created if need be (folded into OPLOG_OTHER past the
 * bound); NULL only on ENOMEM. */
static struct oplog_row *
oplog_tenant(struct ppf_oplog *l, const char *tenant)
{
    struct oplog_row *row;

    for (size_t i = 0; i < l->ntenants; i++)
        if (strcmp(l->tenants[i].tenant, tenant) == 0)
            return &l->tenants[i];
    if (l->ntenants >= OPLOG_MAX_TENANTS) {
        oplog_say_folded(&l->folded_tenants, OPLOG_MAX_TENANTS, "tenants");
        if (strcmp(tenant, OPLOG_OTHER) != 0)
            return oplog_tenant(l, OPLOG_OTHER);
        if (l->ntenants > OPLOG_MAX_TENANTS)
            return NULL;        /* cannot happen: the first search found it */
    }
    row = &l->tenants[l->ntenants];
    memset(row, 0, sizeof *row);
    if (!(row->tenant = strdup(tenant)))
        return NULL;
    l->ntenants++;
    return row;
}

/* The (image, tenant) row, created if need be; past the bound, the
 * tenant's (OPLOG_OTHER, tenant) row.  tenant is already the name of a
 * tenant row.  NULL only on ENOMEM. */
static struct oplog_row *
oplog_image(struct ppf_oplog *l, const char *image, const char *tenant)
{
    struct oplog_row *row;

    for (size_t i = 0; i < l->nimages; i++)
        if (strcmp(l->images[i].image, image) == 0 && strcmp(l->images[i].tenant, tenant) == 0)
            return &l->images[i];
    if (l->nimages >= OPLOG_MAX_IMAGES && strcmp(image, OPLOG_OTHER) != 0) {
        oplog_say_folded(&l->folded_images, OPLOG_MAX_IMAGES, "image and tenant pairs");
        return oplog_image(l, OPLOG_OTHER, tenant);
    }
    if (l->nimages == l->nimages_cap) {
        size_t nc = l->nimages_cap ? 2 * l->nimages_cap : 64;
        struct oplog_row *nv = realloc(l->images, nc * sizeof *nv);

        if (!nv)
            return NULL;
        l->images = nv;
        l->nimages_cap = nc;
    }
    row = &l->images[l->nimages];
    memset(row, 0, sizeof *row);
    row->image = strdup(image);
    row->tenant = strdup(tenant);
    if (!row->image || !row->tenant) {
        free(row->image);
        free(row->tenant);
        return NULL;
    }
    l->nimages++;
    return row;
}

/* The usage counters to update for image and tenant: rows[0] the
 * tenant's, rows[1] the image's (NULL when out of memory: then that row
 * just misses the update).  A NULL tenant is "default". */
static void
oplog_rows(struct ppf_oplog *l, const char *image, const char *tenant,
           struct oplog_usage *rows[2])
{
    struct oplog_row *t = oplog_tenant(l, tenant ? tenant : "default");
    struct oplog_row *i = t && image ? oplog_image(l, image, t->tenant) : NULL;

    rows[0] = t ? &t->u : NULL;
    rows[1] = i ? &i->u : NULL;
    if (!t || (image && !i))
        ppf_warn("ops", "out of memory accounting the usage of %s for %s",
                 image ? image : "-", tenant ? tenant : "default");
}

/* ---- records ------------------------------------------------------------ */

/* Copies src into dst (cap bytes), truncated at a UTF-8 character
 * boundary, with control bytes (not allowed in attributes, §5.1) replaced
 * by spaces. */
static void
oplog_copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;                /* src[n] starts a character: cut before it */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    for (unsigned char *p = (unsigned char *)dst; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* A new record of kind with text; the caller fills the rest and logs it
 * (oplog_print). */
static struct oplog_rec *
oplog_append(struct ppf_oplog *l, enum ppf_oplog_kind kind, const char *image,
             const char *tenant, uint64_t bytes, const char *text)
{
    struct oplog_rec *r = &l->rec[(l->next_seq - 1) % l->cap];

    memset(r, 0, sizeof *r);
    r->seq = l->next_seq++;
    r->time_us = (uint64_t)(ppf_clock_wall() * 1e6);
    r->kind = (uint32_t)kind;
    r->outcome = OPLOG_NO_OUTCOME;
    r->bytes = bytes;
    oplog_copy_text(r->image, sizeof r->image, image ? image : "");
    oplog_copy_text(r->tenant, sizeof r->tenant, tenant ? tenant : "");
    oplog_copy_text(r->text, sizeof r->text, text);
    return r;
}

static void
oplog_print(const struct oplog_rec *r)
{
    ppf_info("ops", "%s", r->text);
}

void
ppf_oplog_add(struct ppf_oplog *l, enum ppf_oplog_kind kind, const char *image,
              const char *tenant, uint64_t bytes, const char *fmt, ...)
{
    char text[OPLOG_TEXT_MAX + 64];
    struct oplog_rec *r;
    va_list ap;

    if (!l)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r = oplog_append(l, kind, image, tenant, bytes, text);
    if (kind == PPF_OPLOG_READY && l->ready_image[0] &&
        strcmp(r->image, l->ready_image) == 0 && strcmp(r->tenant, l->ready_tenant) == 0) {
        r->has_wait = true;
        r->wait_us = l->ready_us;
        l->ready_image[0] = '\0';
    }
    oplog_print(r);
}

/* "850 us", "3.1 ms", "2.4 s", "12.5 min", "3.2 h". */
static void
oplog_fmt_us(uint64_t us, char *buf, size_t len)
{
    if (us < 1000)
        snprintf(buf, len, "%llu us", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(buf, len, "%.1f ms", (double)us / 1e3);
    else if (us < 120000000)
        snprintf(buf, len, "%.1f s", (double)us / 1e6);
    else if (us < 7200000000ull)
        snprintf(buf, len, "%.1f min", (double)us / 6e7);
    else
        snprintf(buf, len, "%.1f h", (double)us / 3.6e9);
}

static const char *
oplog_outcome_word(int outcome)
{
    switch (outcome) {
    case PPF_OUTCOME_HIT: return "hit";
    case PPF_OUTCOME_INFLIGHT: return "in flight";
    case PPF_OUTCOME_MISS: return "miss";
    case PPF_OUTCOME_FALLBACK: return "fallback";
    default: return "unknown outcome";
    }
}

uint64_t
ppf_oplog_miss_us(const struct ppf_oplog *l, uint64_t bytes)
{
    if (!l || l->rate <= 0)
        return 0;
    return (uint64_t)((double)bytes / l->rate * 1e6);
}

uint64_t
ppf_oplog_deploy(struct ppf_oplog *l, const char *image, const char *tenant, int outcome,
                 uint64_t size, uint64_t wait_us)
{
    struct oplog_usage *rows[2];
    struct oplog_rec *r;
    uint64_t saved = 0, miss = 0;
    char text[OPLOG_TEXT_MAX + 64], waited[32], saving[64] = "", who[PPF_NAME_MAX + 8] = "";
    bool served = outcome == PPF_OUTCOME_HIT || outcome == PPF_OUTCOME_INFLIGHT;

    if (!l)
        return 0;
    if (served && (miss = ppf_oplog_miss_us(l, size)) > wait_us)
        saved = miss - wait_us;
    if (served && !miss) {
        snprintf(saving, sizeof saving, ", saved unknown: no pipeline rate measured yet");
    } else if (served) {
        char s[32];

        oplog_fmt_us(saved, s, sizeof s);
        snprintf(saving, sizeof saving, ", saved %s", s);
    }
    oplog_fmt_us(wait_us, waited, sizeof waited);
    if (tenant)
        snprintf(who, sizeof who, " for %s", tenant);
    if (outcome == PPF_OUTCOME_FALLBACK)
        snprintf(text, sizeof text, "deployed %s%s on the host (fallback): the peripheral "
                 "did not serve it", image ? image : "?", who);
    else
        snprintf(text, sizeof text, "deployed %s%s: %s, waited %s%s", image ? image : "?", who,
                 oplog_outcome_word(outcome), waited, saving);
    r = oplog_append(l, PPF_OPLOG_DEPLOY, image, tenant, size, text);
    r->outcome = outcome;
    r->has_wait = outcome != PPF_OUTCOME_FALLBACK;
    r->wait_us = wait_us;
    r->saved_us = saved;
    oplog_print(r);

    oplog_rows(l, image, tenant, rows);
    for (int k = 0; k < 2; k++) {
        struct oplog_usage *u = rows[k];

        if (!u)
            continue;
        u->deploys++;
        switch (outcome) {
        case PPF_OUTCOME_HIT: u->hits++; break;
        case PPF_OUTCOME_INFLIGHT: u->inflight++; break;
        case PPF_OUTCOME_MISS: u->misses++; break;
        default: u->fallbacks++; break;
        }
        u->wait_us += wait_us;
        u->saved_us += saved;
    }
    return saved;
}

void
ppf_oplog_prepared(struct ppf_oplog *l, const char *image, const char *tenant, uint64_t bytes,
                   uint64_t us, bool prefetch, bool limited)
{
    struct oplog_usage *rows[2];

    if (!l)
        return;
    if (!limited && bytes > 0 && us > 0) {
        double sample = (double)bytes * 1e6 / (double)us;

        l->rate = l->rate > 0 ? OPLOG_RATE_WEIGHT * sample + (1 - OPLOG_RATE_WEIGHT) * l->rate
                              : sample;
    }
    /* the READY record the caller adds next carries the time taken */
    l->ready_us = us;
    oplog_copy_text(l->ready_image, sizeof l->ready_image, image ? image : "");
    oplog_copy_text(l->ready_tenant, sizeof l->ready_tenant, tenant ? tenant : "");
    if (!prefetch)
        return;
    oplog_rows(l, image, tenant, rows);
    for (int k = 0; k < 2; k++)
        if (rows[k])
            rows[k]->prefetch_bytes += bytes;
}

void
ppf_oplog_wasted(struct ppf_oplog *l, const char *image, const char *tenant, uint64_t bytes)
{
    struct oplog_usage *rows[2];

    if (!l)
        return;
    oplog_rows(l, image, tenant, rows);
    for (int k = 0; k < 2; k++)
        if (rows[k])
            rows[k]->wasted_bytes += bytes;
}

/* ---- LOG_READ and USAGE ------------------------------------------------- */

static void
oplog_put_rec(struct ppf_attr_writer *w, const struct oplog_rec *r)
{
    ppf_attr_put_u64(w, PPF_A_SEQ, r->seq);
    ppf_attr_put_u64(w, PPF_A_TIME_US, r->time_us);
    ppf_attr_put_u32(w, PPF_A_LOG_KIND, r->kind);
    if (r->image[0])
        ppf_attr_put_str(w, PPF_A_IMAGE, r->image);
    if (r->tenant[0])
        ppf_attr_put_str(w, PPF_A_TENANT, r->tenant);
    if (r->outcome != OPLOG_NO_OUTCOME)
        ppf_attr_put_u32(w, PPF_A_OUTCOME, (uint32_t)r->outcome);
    if (r->has_wait)
        ppf_attr_put_u64(w, PPF_A_WAIT_US, r->wait_us);
    if (r->kind == PPF_OPLOG_DEPLOY)
        ppf_attr_put_u64(w, PPF_A_SAVED_US, r->saved_us);
    if (r->bytes)
        ppf_attr_put_u64(w, PPF_A_BYTES, r->bytes);
    ppf_attr_put_str(w, PPF_A_TEXT, r->text);
}

/* Puts one group with put(ctx) unless it does not fit, then rolls back
 * to the group's start.  1 if it was written, 0 if not. */
static int
oplog_put_group(struct ppf_attr_writer *w, void (*put)(struct ppf_attr_writer *, const void *),
                const void *ctx)
{
    size_t mark = w->len;

    put(w, ctx);
    if (!w->overflow)
        return 1;
    w->len = mark;              /* whole groups only; the host asks again */
    w->overflow = 0;
    return 0;
}

static void
oplog_put_rec_cb(struct ppf_attr_writer *w, const void *ctx)
{
    oplog_put_rec(w, ctx);
}

enum ppf_status_code
ppf_oplog_read(struct ppf_oplog *l, uint64_t start, struct ppf_attr_writer *w, uint32_t *result)
{
    uint64_t newest, oldest;
    size_t shown = 0;

    *result = 0;
    if (!l)
        return PPF_SC_SUCCESS;
    newest = l->next_seq - 1;
    oldest = l->next_seq > l->cap ? l->next_seq - l->cap : 1;
    *result = (uint32_t)(newest > UINT32_MAX ? UINT32_MAX : newest);
    if (start < oldest)
        start = oldest;
    for (uint64_t s = start; s <= newest; s++) {
        if (!oplog_put_group(w, oplog_put_rec_cb, &l->rec[(s - 1) % l->cap]))
            return shown ? PPF_SC_SUCCESS : PPF_SC_DATA_TOO_LONG;
        shown++;
    }
    return PPF_SC_SUCCESS;
}

static void
oplog_put_row(struct ppf_attr_writer *w, const void *ctx)
{
    const struct oplog_row *row = ctx;
    const struct oplog_usage *u = &row->u;

    if (row->image)
        ppf_attr_put_str(w, PPF_A_IMAGE, row->image);
    ppf_attr_put_str(w, PPF_A_TENANT, row->tenant);
    ppf_attr_put_u64(w, PPF_A_U_DEPLOYS, u->deploys);
    ppf_attr_put_u64(w, PPF_A_U_HITS, u->hits);
    ppf_attr_put_u64(w, PPF_A_U_INFLIGHT, u->inflight);
    ppf_attr_put_u64(w, PPF_A_U_MISSES, u->misses);
    ppf_attr_put_u64(w, PPF_A_U_FALLBACKS, u->fallbacks);
    ppf_attr_put_u64(w, PPF_A_U_WAIT_US, u->wait_us);
    ppf_attr_put_u64(w, PPF_A_U_SAVED_US, u->saved_us);
    ppf_attr_put_u64(w, PPF_A_U_PREFETCH_BYTES, u->prefetch_bytes);
    ppf_attr_put_u64(w, PPF_A_U_WASTED_BYTES, u->wasted_bytes);
}

enum ppf_status_code
ppf_oplog_usage(struct ppf_oplog *l, uint64_t start, struct ppf_attr_writer *w,
                uint32_t *result)
{
    size_t total, shown = 0;

    *result = 0;
    if (!l)
        return PPF_SC_SUCCESS;
    total = l->ntenants + l->nimages;
    *result = (uint32_t)total;
    for (uint64_t i = start; i < total; i++) {
        const struct oplog_row *row = i < l->ntenants ? &l->tenants[i] :
                                      &l->images[i - l->ntenants];

        if (!oplog_put_group(w, oplog_put_row, row))
            return shown ? PPF_SC_SUCCESS : PPF_SC_DATA_TOO_LONG;
        shown++;
    }
    return PPF_SC_SUCCESS;
}

/* ---- EXPLAIN ------------------------------------------------------------ */

/* Puts "TIME: TEXT" of r (local time, as ppfctl events shows it). */
static void
oplog_put_when(struct ppf_attr_writer *w, uint16_t type, const struct oplog_rec *r)
{
    time_t t = (time_t)(r->time_us / 1000000);
    char when[32], line[sizeof r->text + sizeof when + 2];
    struct tm tm;

    if (!localtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(when, sizeof when, "%llu", (unsigned long long)t);
    snprintf(line, sizeof line, "%s: %s", when, r->text);
    ppf_attr_put_str(w, type, line);
}

void
ppf_oplog_explain(struct ppf_oplog *l, const char *image, struct ppf_attr_writer *w)
{
    const struct oplog_rec *prefetch = NULL, *evict = NULL;

    if (!l || !image)
        return;
    /* newest first, as far back as the ring goes */
    for (uint64_t s = l->next_seq - 1; s >= 1 && s + l->cap >= l->next_seq; s--) {
        const struct oplog_rec *r = &l->rec[(s - 1) % l->cap];

        if (strcmp(r->image, image) != 0)
            continue;
        if (!prefetch && r->kind == PPF_OPLOG_PREFETCH)
            prefetch = r;
        if (!evict && (r->kind == PPF_OPLOG_EVICT || r->kind == PPF_OPLOG_PURGE))
            evict = r;
        if (prefetch && evict)
            break;
    }
    if (prefetch)
        oplog_put_when(w, PPF_A_X_LAST_PREFETCH, prefetch);
    if (evict)
        oplog_put_when(w, PPF_A_X_LAST_EVICT, evict);
}

/* The pattern recognition engine: online models that learn from deploy
 * events (and host metric samples) which images will be deployed next,
 * and when.  Pure logic: time is always passed in (seconds, any origin),
 * the clock is never read, so a replay of the same events gives the same
 * predictions.  Models: markov, seasonal, histogram, workload, ensemble
 * (the default, which weights the others by their recent accuracy), lru
 * and none (baselines).  The peripheral's monitor feeds it live;
 * ppfctl replay feeds it from a trace (peripheral/replay.h).
 *
 * Images and tenants are interned to dense ids (uint32_t) by the engine;
 * every other module (table, scheduler, buffer model) speaks in those ids.
 */
#ifndef PPF_PERIPHERAL_ENGINE_H
#define PPF_PERIPHERAL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy/policy.h"

#define PPF_ENGINE_NO_ID        UINT32_MAX
#define PPF_ENGINE_MAX_METRICS  8

/* --- string table: names <-> dense ids ------------------------------- */

struct ppf_strtab;

/* A new, empty table, or NULL (ENOMEM). */
struct ppf_strtab *ppf_strtab_new(void);
void ppf_strtab_free(struct ppf_strtab *t);
/* The id of s[0..len), added if new; 0, or -1 (ENOMEM, or EINVAL if
 * len is 0 or more than PPF_POLICY_MAX_IMAGE). */
int ppf_strtab_intern(struct ppf_strtab *t, const char *s, size_t len, uint32_t *id);
/* 0 and *id if s is known, else -1. */
int ppf_strtab_find(const struct ppf_strtab *t, const char *s, size_t len, uint32_t *id);
/* The name of id (owned by the table), or NULL if out of range. */
const char *ppf_strtab_name(const struct ppf_strtab *t, uint32_t id);
uint32_t ppf_strtab_count(const struct ppf_strtab *t);

/* --- configuration ---------------------------------------------------- */

struct ppf_engine_config {
    enum ppf_policy_algorithm algorithm;
    unsigned markov_order;      /* 1..8 previous deploys */
    double half_life;           /* s: evidence this old counts half */
    double horizon;             /* s: how far ahead predictions look */
    unsigned time_buckets;      /* seasonal slots per day, 1..1440 */
    double adaptation_rate;     /* 0..1: how fast estimates follow change */
    uint64_t store_size;        /* bytes: NVM pattern store bound */
    uint32_t max_images;        /* images tracked (bounded memory) */
    uint32_t max_contexts;      /* markov contexts tracked */
    double min_probability;     /* below this, never prefetch */
    double tz_offset;           /* s added to event time for time of day */
    double time_scale;          /* s: discount scale of future requests
                                 * (0 = horizon); the scheduler sets it to
                                 * the time the fetch path needs to refill
                                 * the buffer (capacity / bandwidth) */
    bool federated;             /* add the federated model (peers' evidence,
                                 * peripheral/engine-federated.c) */
};

/* The policy defaults (ppf-policy(5)), without a policy. */
void ppf_engine_config_default(struct ppf_engine_config *c);
/* From a checked policy: learning.*, with the memory bounds derived from
 * learning.store_size.  0, or -1 (EINVAL) if p holds an out-of-range value. */
int ppf_engine_config_from_policy(const struct ppf_policy *p, struct ppf_engine_config *c);

/* --- events, samples, predictions ------------------------------------- */

struct ppf_engine_event {
    double time;                /* s */
    uint32_t image, tenant;     /* interned ids */
    uint64_t size;              /* bytes of the prepared image, 0 if unknown */
};

/* A host metrics sample: n values, in the order the source defines
 * (ppfd: cpu, memory, pressure, disk, net as enabled). */
struct ppf_metrics_sample {
    double time;
    unsigned n;
    double v[PPF_ENGINE_MAX_METRICS];
};

struct ppf_prediction {
    uint32_t image, tenant;
    uint64_t size;
    double probability;         /* of a request within the window (below) */
    double eta;                 /* expected time of that request (s) */
    double value;               /* probability discounted by distance, 0..1 */
};

/* --- the engine ------------------------------------------------------- */

struct ppf_engine;

/* A new engine with the models cfg->algorithm needs, or NULL (ENOMEM, or
 * EINVAL for a bad configuration).  Free with ppf_engine_free (NULL ok). */
struct ppf_engine *ppf_engine_new(const struct ppf_engine_config *cfg);
void ppf_engine_free(struct ppf_engine *e);
const struct ppf_engine_config *ppf_engine_config(const struct ppf_engine *e);
/* Changes the discount scale (see time_scale); s > 0. */
void ppf_engine_set_time_scale(struct ppf_engine *e, double s);

/* Interns an image and its tenant (tenant may be NULL: public image);
 * 0 and ids, or -1 (EINVAL: empty or too long name; ENOMEM). */
int ppf_engine_intern(struct ppf_engine *e, const char *image, const char *tenant,
                      uint32_t *image_id, uint32_t *tenant_id);
/* Interns a tenant alone (for quotas); 0 or -1. */
int ppf_engine_intern_tenant(struct ppf_engine *e, const char *tenant, uint32_t *tenant_id);
const char *ppf_engine_image_name(const struct ppf_engine *e, uint32_t image);
/* 0 and *image_id if the engine knows the image, else -1 (nothing added). */
int ppf_engine_find_image(const struct ppf_engine *e, const char *image, uint32_t *image_id);
const char *ppf_engine_tenant_name(const struct ppf_engine *e, uint32_t tenant);
/* Last known size and tenant of an image (0 / PPF_ENGINE_NO_ID if unknown). */
uint64_t ppf_engine_image_size(const struct ppf_engine *e, uint32_t image);
uint32_t ppf_engine_image_tenant(const struct ppf_engine *e, uint32_t image);

/* A deploy request happened: every model learns from it.  Events must come
 * in time order (an earlier time is treated as the latest one seen).
 * 0, or -1 (EINVAL: unknown id; ENOMEM). */
int ppf_engine_observe(struct ppf_engine *e, const struct ppf_engine_event *ev);
/* A host metrics sample (the live monitor, or a replay metrics file). */
int ppf_engine_metrics(struct ppf_engine *e, const struct ppf_metrics_sample *s);

/* Up to k images most worth having ready at now, best first (by value);
 * only those with probability >= min_probability.  Returns the count. */
size_t ppf_engine_predict(struct ppf_engine *e, double now,
                          struct ppf_prediction *out, size_t k);
/* One image's outlook at now: *p probability of a request within the
 * horizon, returns the discounted value (0..1) used to rank the buffer. */
double ppf_engine_score(struct ppf_engine *e, uint32_t image, double now, double *p);

/* What each model thinks of one image (ppfctl explain). */
struct ppf_engine_opinion {
    const char *model;          /* "markov", "seasonal", ... */
    bool known;                 /* the model has an opinion on the image */
    double probability;         /* of a request within the horizon */
    double eta;                 /* s from now to the expected request (INFINITY: unknown) */
    double value;               /* discounted value, 0..1 */
    double weight;              /* the precision its opinion is weighed by */
};
/* Fills up to n opinions, one per model of the engine; returns the count. */
size_t ppf_engine_explain(struct ppf_engine *e, uint32_t image, double now,
                          struct ppf_engine_opinion *out, size_t n);

/* Counters and per-model weights, for status and tests. */
struct ppf_engine_stats {
    uint64_t events, metrics, images, evicted_images;
    unsigned nmodels;
    struct {
        const char *name;
        double weight;          /* ensemble discount: claim precision (1 alone) */
        double precision, recall;
        uint64_t claims, hits;
    } model[8];
};
void ppf_engine_get_stats(const struct ppf_engine *e, struct ppf_engine_stats *st);

/* Learned state to and from the NVM store (peripheral/nvm.h): atomic
 * replace, checksummed, bounded by store_size (least evidence dropped
 * first).  load: a missing store is not an error (empty model, returns 0);
 * a corrupt or foreign one is reported, renamed to PATH.corrupt-N, and the
 * engine starts empty (returns 1).  -1 only on I/O errors that leave the
 * old store in place. */
int ppf_engine_save(struct ppf_engine *e, const char *path);
int ppf_engine_load(struct ppf_engine *e, const char *path);

/* --- for the model files (engine-*.c) --------------------------------- */

struct ppf_nvm_writer;
struct ppf_nvm_reader;
struct ppf_fed_builder;

struct ppf_model_ops {
    const char *name;
    void *(*create)(struct ppf_engine *e);
    void (*destroy)(void *m);
    void (*observe)(void *m, const struct ppf_engine_event *ev);
    void (*observe_metrics)(void *m, const struct ppf_metrics_sample *s);
    /* Up to k candidates at now (probability, eta, value, image set). */
    size_t (*candidates)(void *m, double now, struct ppf_prediction *out, size_t k);
    /* One image: 1 if the model has evidence about it (and fills *p, *eta,
     * *value), else 0. */
    int (*score)(void *m, uint32_t image, double now, double *p, double *eta,
                 double *value);
    void (*forget)(void *m, uint32_t image);
    /* Serialize the images for which keep[image] is set (remap[image] is
     * the index written to the store), or read back (map[index] is the id). */
    int (*save)(void *m, struct ppf_nvm_writer *w, const uint32_t *remap);
    int (*load)(void *m, struct ppf_nvm_reader *r, const uint32_t *map, uint32_t nmap);
    /* Optional (federation): hands what the model knows that is safe to
     * share to b (ppf_fed_builder_slot/_edge below), as of now. */
    void (*export_evidence)(void *m, double now, struct ppf_fed_builder *b);
};

extern const struct ppf_model_ops ppf_model_markov;
extern const struct ppf_model_ops ppf_model_seasonal;
extern const struct ppf_model_ops ppf_model_histogram;
extern const struct ppf_model_ops ppf_model_workload;
extern const struct ppf_model_ops ppf_model_lru;
extern const struct ppf_model_ops ppf_model_federated;

/* Helpers shared by the models. */
/* 2^(-dt/half_life): the weight left of evidence dt seconds old. */
double ppf_engine_decay(const struct ppf_engine *e, double dt);
/* Discount of a request expected dt seconds ahead: scale/(scale+dt), where
 * scale is time_scale (or the horizon). */
double ppf_engine_discount(const struct ppf_engine *e, double dt);
/* The window predicted probabilities refer to: the horizon, or the
 * time_scale if that is shorter (a prefetch further ahead than the buffer
 * turns over would be evicted before use). */
double ppf_engine_window(const struct ppf_engine *e);
/* The latest event time seen. */
double ppf_engine_now(const struct ppf_engine *e);
/* Partial selection: keeps the k best predictions (by value, then image id
 * for determinism) at the front of v[0..n), sorted; returns min(n, k). */
size_t ppf_prediction_top(struct ppf_prediction *v, size_t n, size_t k);

/* --- federation: pattern summaries shared between peripherals ---------
 * (schemas/federation.md).  A summary is what one engine learned, per
 * (tenant, image): decayed evidence, time-of-day slots with their daily
 * rates, weekday weights, and first-order transitions between images of
 * the same tenant.  Never events, domains, paths or keys.  Pure logic like
 * the rest of the engine; peripheral/federation.c carries the bytes. */

#define PPF_FED_MAX_SUMMARY  (1u << 20)     /* bytes of an encoded summary */
#define PPF_FED_MAX_IMAGES   4096
#define PPF_FED_MAX_EDGES    16384
#define PPF_FED_SLOTS        8
#define PPF_FED_VERSION      1u

struct ppf_fed_slot {
    double tod;                 /* s after 00:00 UTC, [0, 86400) */
    double rate;                /* expected requests per day in this slot */
    double dev;                 /* s: spread around tod */
};

struct ppf_fed_image {
    char *name;
    char *tenant;               /* NULL: a public image */
    uint64_t size;
    double evidence;            /* decayed request count at the summary's time */
    double age;                 /* s since its last request */
    double ctx_total;           /* decayed transitions out of it (markov) */
    double dow[7];              /* decayed requests by weekday (Sun = 0) */
    unsigned nslots;
    struct ppf_fed_slot slot[PPF_FED_SLOTS];
};

struct ppf_fed_edge {
    uint32_t from, to;          /* indices into images[] */
    double weight;              /* decayed count of from -> to */
    double delay;               /* s: usual time from `from` to `to` */
};

struct ppf_fed_summary {
    double time;                /* s since the epoch, when it was made */
    uint32_t nimages, nedges;
    struct ppf_fed_image *images;
    struct ppf_fed_edge *edges;
};

void ppf_fed_summary_free(struct ppf_fed_summary *s);
/* Encodes s (at most PPF_FED_MAX_SUMMARY bytes): 0 and a malloc'd *buf,
 * or -1 (ENOMEM, E2BIG, EINVAL for a summary decode would refuse). */
int ppf_fed_summary_encode(const struct ppf_fed_summary *s, uint8_t **buf, size_t *len);
/* Decodes and fully checks an untrusted summary: 0 and *out (free with
 * ppf_fed_summary_free), or -1 with the first problem found in err. */
int ppf_fed_summary_decode(const void *buf, size_t len, struct ppf_fed_summary **out,
                           char *err, size_t errlen);

/* Building a summary from an engine (engine.c and the models' export). */
struct ppf_fed_builder;
/* The model knows image's time-of-day slot (UTC seconds of the day). */
void ppf_fed_builder_slot(struct ppf_fed_builder *b, uint32_t image, double tod,
                          double rate, double dev);
void ppf_fed_builder_dow(struct ppf_fed_builder *b, uint32_t image, const double dow[7]);
/* A transition from -> to with decayed weight w, out of a context whose
 * decayed total is total, usually delay s apart. */
void ppf_fed_builder_edge(struct ppf_fed_builder *b, uint32_t from, uint32_t to, double w,
                          double total, double delay);

/* What this engine learned, for peers: the images of tenants that share
 * (share(ctx, tenant) true; tenant NULL for public images; share NULL =
 * all), most evidence first, within the limits above.  0 and *out, or -1
 * (ENOMEM).  Only local knowledge: what peers taught is never re-sent. */
int ppf_engine_export(struct ppf_engine *e, double now,
                      bool (*share)(void *ctx, const char *tenant), void *ctx,
                      struct ppf_fed_summary **out);

struct ppf_fed_merge {
    uint32_t images;            /* known to the engine now */
    uint32_t edges;
    uint32_t dropped;           /* images not taken: the engine's bound */
};
/* Peer's latest summary s replaces the one it sent before (so merging the
 * same summary twice changes nothing); the federated model predicts from
 * the evidence of all peers, weighted by evidence and decayed by age.  The
 * local models are never touched.  Takes ownership of s.  0 (also when the
 * engine has no federated model: nothing merged), or -1 (ENOMEM). */
int ppf_engine_federate(struct ppf_engine *e, const char *peer, struct ppf_fed_summary *s,
                        double now, struct ppf_fed_merge *res);
/* Drops what peer taught (0, or -1 if nothing was known from it). */
int ppf_engine_forget_peer(struct ppf_engine *e, const char *peer);

/* Between engine.c and engine-federated.c only. */
struct ppf_fed_builder *ppf_fed_builder_new(uint32_t img_cap, double now);
/* Adds an image (1), or 0 if the summary is full; -1 on ENOMEM. */
int ppf_fed_builder_image(struct ppf_fed_builder *b, uint32_t image, const char *name,
                          const char *tenant, uint64_t size, double evidence, double age);
/* The summary built (NULL on ENOMEM); frees b. */
struct ppf_fed_summary *ppf_fed_builder_finish(struct ppf_fed_builder *b);
/* map[i]: the engine id of s->images[i], or PPF_ENGINE_NO_ID; both owned
 * by the model from now on. */
int ppf_fed_model_merge(void *m, const char *peer, struct ppf_fed_summary *s, uint32_t *map,
                        double now);
int ppf_fed_model_forget_peer(void *m, const char *peer);

#endif /* PPF_PERIPHERAL_ENGINE_H */

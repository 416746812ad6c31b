/* The prefetch buffer (issue 5, schemas/device-protocol.md §5.6): images
 * prepared ahead of time in a directory (policy buffer.path), one entry
 * per image and owner (the tenant whose key opened it, or "@public" for an
 * unencrypted image, shared by all tenants and charged once), accounted by
 * bufmodel (capacity, quotas, pins, eviction), prepared by a pool of
 * pipeline workers (image/), and served to DEPLOY in O(1) when ready.
 *
 * Layout under buffer.path:
 *   entries/OWNER/KEY.raw      the prepared disk (read-only base); KEY is
 *                              IMAGE@DIGEST16, the version it was made from
 *                              (IMAGE alone in buffers made before versions)
 *   entries/OWNER/KEY.meta     its record, written after the .raw is in place
 *   pins/DOMAIN-UUID           entries a running domain uses ("entry OWNER/KEY")
 *   refs/HASH                  a non-ephemeral overlay disk and its base
 *   admin-pins                 the administrator's pins (ppfctl pin)
 * Two versions of an image may be there at once: a stale one (its store
 * holds another version, or none) is never served and stays only while a
 * disk or a domain uses it.
 * A .raw without its .meta (a crash between the two) and any temporary
 * file are partial and removed at open; finished entries are checked and
 * kept.  All of it is touched only by the core's thread, except the
 * workers' temporary files.
 */
#ifndef PPF_PERIPHERAL_BUFFER_H
#define PPF_PERIPHERAL_BUFFER_H

#include <stdbool.h>
#include <stdint.h>

#include "peripheral/core.h"
#include "policy/policy.h"
#include "ppf/protocol.h"

struct ppf_buffer;

/* A DEPLOY or PREFETCH, its strings checked by the caller. */
struct ppf_buf_req {
    const char *image;
    const char *tenant;         /* never NULL ("default") */
    int priority;               /* PPF_PRIO_*, -1 = the tenant's */
    const char *domain;         /* NULL if none */
    const char *target;         /* DEPLOY only */
    int mode;                   /* PPF_DEPLOY_OVERLAY / COPY, -1 = policy */
    int ephemeral;              /* -1 = policy */
    int placeholder;            /* 1: an empty file at the target is replaced */
    /* where to complete a pending DEPLOY */
    uint32_t q, gen;
    uint16_t cid;
};

/* Opens (creating) the buffer of policy p, or, with state_dir non-NULL
 * (no policy applied yet), STATE_DIR/buffer; kick(ctx) is called from
 * worker threads when something finished, to wake the core.  0 or -1
 * (logged). */
int ppf_buffer_open(const struct ppf_policy *p, const char *state_dir, void (*kick)(void *),
                    void *kick_ctx, struct ppf_buffer **out);
/* Stops the workers (cancelling what runs) and frees; NULL is fine. */
void ppf_buffer_free(struct ppf_buffer *b);
/* A new policy: capacity, quotas, stores, keys, deploy dirs.  A new path
 * reopens the buffer there (the old one stays on disk).  0 or -1. */
int ppf_buffer_reconfigure(struct ppf_buffer *b, const struct ppf_policy *p);

/* Each command returns a status; on failure msg holds a one-line reason.
 * PPF_CORE_PENDING: the DEPLOY completes later through ppf_buffer_poll. */
enum ppf_status_code ppf_buffer_prefetch(struct ppf_buffer *b, const struct ppf_buf_req *r,
                                         struct ppf_attr_writer *w, uint32_t *result,
                                         char *msg, size_t msglen);
enum ppf_status_code ppf_buffer_deploy(struct ppf_buffer *b, const struct ppf_buf_req *r,
                                       struct ppf_attr_writer *w, uint32_t *result,
                                       char *msg, size_t msglen);
enum ppf_status_code ppf_buffer_release(struct ppf_buffer *b, const char *domain,
                                        uint32_t *result, char *msg, size_t msglen);
enum ppf_status_code ppf_buffer_evict(struct ppf_buffer *b, const char *image,
                                      const char *tenant, uint32_t *result, char *msg,
                                      size_t msglen);
/* BUFFER_LIST from entry index start: as many groups as fit in w;
 * *result = total entries. */
enum ppf_status_code ppf_buffer_list(struct ppf_buffer *b, uint64_t start,
                                     struct ppf_attr_writer *w, uint32_t *result);
/* Completes what the workers finished (on the core's thread). */
unsigned ppf_buffer_poll(struct ppf_buffer *b, struct ppf_core *core);
/* What the predictor (peripheral/predict.h) learns from the buffer and
 * tells it.  Every callback runs on the core's thread. */
struct ppf_buffer_hooks {
    void *ctx;
    /* value per byte of keeping image for owner (NULL: a public image) at
     * now (s, monotonic); higher = keep.  Used for eviction when the policy
     * says buffer.eviction: value. */
    double (*value)(void *ctx, const char *image, const char *owner, uint64_t size, double now);
    /* an entry leaves the buffer; prefetched: brought in by a prefetch;
     * used: a deploy used it since; by_admin: an EVICT command, not room
     * made for something worth more */
    void (*evicted)(void *ctx, const char *image, const char *owner, bool prefetched,
                    bool used, bool by_admin);
};
void ppf_buffer_set_hooks(struct ppf_buffer *b, const struct ppf_buffer_hooks *h);

/* A prefetch the predictor chose: like PREFETCH, but room is made only by
 * evicting unpinned entries worth less than limit per byte (as the hooks'
 * value function says).  why (one line, may be NULL) goes to the operations
 * log ("p=0.83, predicted after alice/web").  PPF_SC_SUCCESS (started, or already there),
 * PPF_SC_NO_SPACE (nothing that cheap to evict), or another status with
 * msg set. */
enum ppf_status_code ppf_buffer_prefetch_limited(struct ppf_buffer *b, const char *image,
                                                 const char *tenant, int priority,
                                                 double limit, const char *why, char *msg,
                                                 size_t msglen);

/* The state of image as tenant would get it (its own entry, else the
 * public one): PPF_ENTRY_*, or 0 if absent; *size its size if known. */
int ppf_buffer_entry_state(struct ppf_buffer *b, const char *image, const char *tenant,
                           uint64_t *size);

/* Prefetches in flight (not yet ready), for the concurrency limit. */
unsigned ppf_buffer_prefetches_inflight(struct ppf_buffer *b);

/* The operations log the buffer reports to (peripheral/oplog.h); may be
 * NULL.  The buffer does not own it. */
struct ppf_oplog;
void ppf_buffer_set_oplog(struct ppf_buffer *b, struct ppf_oplog *log);

/* Holds image for tenant in the buffer until until_s (wall clock, seconds
 * since the epoch; 0 = until released): prefetched now if absent (room is
 * made from unheld, unpinned entries), never evicted while held, charged
 * to its owner's quota like any entry.  source says who asked ("pin",
 * "policy pin", "schedule weekdays 08:30") for the operations log.  A
 * second hold of the same image and tenant by the same source replaces
 * the first.  PPF_SC_SUCCESS, or a status with msg set (NO_SPACE: it
 * cannot fit; the hold is kept and retried by ppf_buffer_holds_tick). */
enum ppf_status_code ppf_buffer_hold(struct ppf_buffer *b, const char *image,
                                     const char *tenant, uint64_t until_s, const char *source,
                                     char *msg, size_t msglen);
/* PIN (§5.9): pin (until_s as for holds) or unpin image for tenant by the
 * administrator; persisted in the buffer (BUFFER/admin-pins) and restored
 * at open.  *result = the entry's PPF_ENTRY_* state after a pin (0 if it
 * could not be brought in yet: w then holds a TEXT saying why), 1 after an
 * unpin. */
enum ppf_status_code ppf_buffer_pin_cmd(struct ppf_buffer *b, const char *image,
                                        const char *tenant, bool pin, uint64_t until_s,
                                        struct ppf_attr_writer *w, uint32_t *result,
                                        char *msg, size_t msglen);
/* Drops source's hold of image for tenant.  1 if there was one, else 0. */
int ppf_buffer_unhold(struct ppf_buffer *b, const char *image, const char *tenant,
                      const char *source);
/* Expires holds whose time is past and retries holds that did not fit;
 * now_s is the wall clock.  Called by the predictor's tick. */
void ppf_buffer_holds_tick(struct ppf_buffer *b, uint64_t now_s);

/* EXPLAIN (§5.9), the buffer's part: the entry of image for tenant (or a
 * stale one), its holds, the tenant's quota and the buffer's fill, the
 * eviction floor. */
void ppf_buffer_explain(struct ppf_buffer *b, const char *image, const char *tenant,
                        struct ppf_attr_writer *w);

/* Appends PPF_STAT_DEPLOYS.. counters. */
void ppf_buffer_stats(struct ppf_buffer *b, struct ppf_attr_writer *w);


#endif /* PPF_PERIPHERAL_BUFFER_H */

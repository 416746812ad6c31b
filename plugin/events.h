/* ppfd's queue of host events for the peripheral (EVENT, schemas/
 * device-protocol.md §5.7).  The libvirt thread pushes; ppfd's main thread
 * sends.  The queue is bounded: while the peripheral is away it keeps the
 * newest events and drops the oldest, counting them, so that a peripheral
 * that comes back learns what happened meanwhile without ppfd's memory
 * growing.
 */
#ifndef PPF_PLUGIN_EVENTS_H
#define PPF_PLUGIN_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "ppf/ppf.h"

#define PPF_EVQ_DEFAULT_CAP 256
#define PPF_EVQ_UUID_LEN    36
#define PPF_EVQ_NAME_MAX    255         /* image and tenant names (§5.6) */
#define PPF_EVQ_DOMAIN_MAX  127         /* domain names, for messages only */

/* One domain lifecycle event of a ppf domain. */
struct ppf_host_event {
    uint32_t kind;                      /* PPF_EVENT_* */
    uint64_t time_us;                   /* when ppfd saw it, us since the epoch */
    char uuid[PPF_EVQ_UUID_LEN + 1];    /* the domain's */
    char domain[PPF_EVQ_DOMAIN_MAX + 1];/* its name (messages; truncated) */
    char image[PPF_EVQ_NAME_MAX + 1];
    char tenant[PPF_EVQ_NAME_MAX + 1];  /* "" = default */
};

/* What the queue did so far. */
struct ppf_evq_stats {
    uint64_t forwarded;                 /* accepted by the peripheral */
    uint64_t dropped;                   /* the queue was full: oldest dropped */
    uint64_t refused;                   /* the peripheral refused them (any status) */
    size_t queued;                      /* waiting now */
};

struct ppf_evq;

/* A queue holding at most cap events (0: PPF_EVQ_DEFAULT_CAP).  NULL on
 * allocation failure (reported). */
struct ppf_evq *ppf_evq_new(size_t cap);
/* Frees q and what it still holds.  NULL is fine. */
void ppf_evq_free(struct ppf_evq *q);

/* Any thread: appends a copy of *ev; when full, drops the oldest event
 * (the first drop of a run is logged, every one counted).  Then calls
 * wake(opaque) if set, so that the sender runs soon. */
void ppf_evq_push(struct ppf_evq *q, const struct ppf_host_event *ev);
void ppf_evq_set_wake(struct ppf_evq *q, void (*wake)(void *), void *opaque);

/* One thread only (ppfd's main): sends the queued events in order with
 * EVENT on an I/O pair of dev, waiting up to timeout_ms per command.
 * Events the peripheral answers are done (a refusal is logged and counted;
 * INVALID_OPCODE, a peripheral without EVENT, is logged once at info).
 * Returns 0 when the queue is empty, or -1 if dev could not be used (the
 * unsent events stay queued; ppf_error() says why). */
int ppf_evq_flush(struct ppf_evq *q, struct ppf_dev *dev, int timeout_ms);

/* Copies the counters (any thread). */
void ppf_evq_get_stats(struct ppf_evq *q, struct ppf_evq_stats *st);

/* PPF_EVENT_* as a word for messages ("DEFINED"); never NULL. */
const char *ppf_event_kind_name(uint32_t kind);

#endif /* PPF_PLUGIN_EVENTS_H */

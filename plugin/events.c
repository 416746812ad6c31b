/* The bounded queue of host events and its sender (see events.h).  A ring
 * under one mutex; the sender takes a batch out, sends it with the lock
 * released, and puts back at the front what the peripheral did not get,
 * so a push never waits for the device.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "plugin/events.h"
#include "ppf/protocol.h"

#define EVQ_BATCH 16
#define EVQ_PAYLOAD_MAX 2048    /* 4 attributes of at most 260 bytes: fits */

struct ppf_evq {
    pthread_mutex_t lock;
    struct ppf_host_event *ring;
    size_t cap, head, len;
    struct ppf_evq_stats st;
    int drop_warned;            /* the current run of drops was logged */
    int no_event_op;            /* the peripheral answered INVALID_OPCODE (logged) */
    void (*wake)(void *);
    void *wake_opaque;
    struct ppf_host_event batch[EVQ_BATCH];     /* the sender's, outside the lock */
};

static const char *const kind_names[PPF_EVENT__MAX] = {
    [PPF_EVENT_DEFINED] = "DEFINED",
    [PPF_EVENT_STARTED] = "STARTED",
    [PPF_EVENT_STOPPED] = "STOPPED",
    [PPF_EVENT_UNDEFINED] = "UNDEFINED",
    [PPF_EVENT_DEPLOY] = "DEPLOY",
};

const char *
ppf_event_kind_name(uint32_t kind)
{
    return kind < PPF_EVENT__MAX && kind_names[kind] ? kind_names[kind] : "UNKNOWN";
}

struct ppf_evq *
ppf_evq_new(size_t cap)
{
    struct ppf_evq *q = calloc(1, sizeof *q);

    if (cap == 0)
        cap = PPF_EVQ_DEFAULT_CAP;
    if (!q || !(q->ring = calloc(cap, sizeof *q->ring))) {
        ppf_err("events", "out of memory for a queue of %zu events", cap);
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    q->cap = cap;
    return q;
}

void
ppf_evq_free(struct ppf_evq *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

void
ppf_evq_set_wake(struct ppf_evq *q, void (*wake)(void *), void *opaque)
{
    pthread_mutex_lock(&q->lock);
    q->wake = wake;
    q->wake_opaque = opaque;
    pthread_mutex_unlock(&q->lock);
}

void
ppf_evq_push(struct ppf_evq *q, const struct ppf_host_event *ev)
{
    void (*wake)(void *);
    void *opaque;
    int warn = 0;

    pthread_mutex_lock(&q->lock);
    if (q->len == q->cap) {
        q->head = (q->head + 1) % q->cap;
        q->len--;
        q->st.dropped++;
        warn = !q->drop_warned;
        q->drop_warned = 1;
    }
    q->ring[(q->head + q->len) % q->cap] = *ev;
    q->len++;
    wake = q->wake;
    opaque = q->wake_opaque;
    pthread_mutex_unlock(&q->lock);
    if (warn)
        ppf_warn("events", "%zu events wait for the peripheral: dropping the oldest from now "
                 "on (counted in ppfd_events_dropped_total)", q->cap);
    if (wake)
        wake(opaque);
}

/* Takes up to EVQ_BATCH events from the front into q->batch. */
static size_t
evq_take(struct ppf_evq *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->len < EVQ_BATCH ? q->len : EVQ_BATCH;
    for (size_t i = 0; i < n; i++)
        q->batch[i] = q->ring[(q->head + i) % q->cap];
    q->head = (q->head + n) % q->cap;
    q->len -= n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* Puts q->batch[from..n) back at the front; the oldest of them are
 * dropped if newer events took the room meanwhile. */
static void
evq_untake(struct ppf_evq *q, size_t from, size_t n)
{
    size_t room, k;

    pthread_mutex_lock(&q->lock);
    room = q->cap - q->len;
    k = n - from < room ? n - from : room;
    q->st.dropped += n - from - k;
    for (size_t i = 0; i < k; i++) {
        q->head = (q->head + q->cap - 1) % q->cap;
        q->ring[q->head] = q->batch[n - 1 - i];
        q->len++;
    }
    pthread_mutex_unlock(&q->lock);
}

/* Encodes one EVENT payload (§5.7); its length, or 0 if it did not fit. */
static size_t
evq_encode(const struct ppf_host_event *ev, uint8_t *buf, size_t cap)
{
    struct ppf_attr_writer w;

    ppf_attr_writer_init(&w, buf, cap);
    ppf_attr_put_u32(&w, PPF_A_EVENT, ev->kind);
    if (ev->image[0])
        ppf_attr_put_str(&w, PPF_A_IMAGE, ev->image);
    if (ev->tenant[0])
        ppf_attr_put_str(&w, PPF_A_TENANT, ev->tenant);
    if (ev->uuid[0])
        ppf_attr_put_str(&w, PPF_A_DOMAIN, ev->uuid);
    if (ev->time_us)
        ppf_attr_put_u64(&w, PPF_A_TIME_US, ev->time_us);
    return w.overflow ? 0 : w.len;
}

/* Handles a completed EVENT (logs, counts). */
static void
evq_done(struct ppf_evq *q, const struct ppf_host_event *ev, const struct ppf_cmd *cmd)
{
    char msg[256];
    int first = 0;

    if (cmd->status == PPF_SC_SUCCESS) {
        pthread_mutex_lock(&q->lock);
        q->st.forwarded++;
        q->no_event_op = 0;
        pthread_mutex_unlock(&q->lock);
        ppf_debug("events", "sent %s of domain %s (%s) to the peripheral: image %s, %s",
                  ppf_event_kind_name(ev->kind), ev->domain, ev->uuid, ev->image,
                  cmd->result ? "learned" : "counted");
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->st.refused++;
    if (cmd->status == PPF_SC_INVALID_OPCODE) {
        first = !q->no_event_op;
        q->no_event_op = 1;
    }
    pthread_mutex_unlock(&q->lock);
    if (cmd->status == PPF_SC_INVALID_OPCODE) {
        if (first)
            ppf_info("events", "the peripheral does not take EVENT yet (%s): domain events "
                     "are not forwarded until it does (update ppf-peripheral)",
                     ppf_status_name(cmd->status));
        else
            ppf_debug("events", "%s of domain %s not taken (no EVENT in the peripheral)",
                      ppf_event_kind_name(ev->kind), ev->domain);
        return;
    }
    ppf_cmd_reason(cmd, msg, sizeof msg);
    ppf_warn("events", "the peripheral refused %s of domain %s (image %s): %s%s%s",
             ppf_event_kind_name(ev->kind), ev->domain, ev->image[0] ? ev->image : "-",
             ppf_status_text(cmd->status), msg[0] ? ": " : "", msg);
}

int
ppf_evq_flush(struct ppf_evq *q, struct ppf_dev *dev, int timeout_ms)
{
    uint8_t in[EVQ_PAYLOAD_MAX], out[512];
    struct ppf_qp *qp = NULL;
    size_t n;

    while ((n = evq_take(q)) > 0) {
        if (ppf_qp_claim(dev, PPF_QP_IO, timeout_ms, &qp) < 0) {
            evq_untake(q, 0, n);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            struct ppf_cmd cmd = { .opcode = PPF_OP_EVENT, .in = in, .out = out,
                                   .out_cap = sizeof out };

            cmd.in_len = (uint32_t)evq_encode(&q->batch[i], in, sizeof in);
            if (cmd.in_len == 0) {      /* cannot happen with checked names */
                ppf_err("events", "%s of domain %s does not fit in an EVENT; dropped",
                        ppf_event_kind_name(q->batch[i].kind), q->batch[i].domain);
                continue;
            }
            if (ppf_exec(qp, &cmd, timeout_ms) < 0) {
                evq_untake(q, i, n);
                ppf_qp_release(qp);
                return -1;
            }
            evq_done(q, &q->batch[i], &cmd);
        }
        ppf_qp_release(qp);
        qp = NULL;
    }
    pthread_mutex_lock(&q->lock);
    if (q->drop_warned && q->len == 0) {
        ppf_info("events", "the queue is empty again; %llu events were dropped so far",
                 (unsigned long long)q->st.dropped);
        q->drop_warned = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void
ppf_evq_get_stats(struct ppf_evq *q, struct ppf_evq_stats *st)
{
    pthread_mutex_lock(&q->lock);
    *st = q->st;
    st->queued = q->len;
    pthread_mutex_unlock(&q->lock);
}

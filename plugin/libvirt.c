/* The libvirt plugin of ppfd (see libvirt.h).  Everything that touches
 * libvirt runs on one thread, the one running virEventRunDefaultImpl: the
 * connection is opened, watched and re-opened from a timer of that loop,
 * lifecycle callbacks read the domain XML there, and the connection is
 * closed there when ppfd stops.  The main thread only starts the plugin,
 * asks it to stop, and reads the connected flag.  Events of ppf domains
 * leave through the emit callback (ppfd queues them for the peripheral);
 * nothing here waits for the peripheral.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "hooks/hook.h"
#include "plugin/libvirt.h"
#include "ppf/protocol.h"

#define LV_KEEPALIVE_S     5    /* ping an idle libvirtd every 5 s ... */
#define LV_KEEPALIVE_COUNT 3    /* ... and drop it after 3 unanswered */
#define LV_DRAIN_TICKS     5    /* loop turns after the close (deferred frees) */
#define LV_DRAIN_MS        10

enum lv_state { LV_NEW, LV_UP, LV_DOWN };

/* A ppf domain we know, so that its UNDEFINED (and the STOPPED of a
 * transient one), whose XML is gone by then, can still be forwarded. */
struct lv_dom {
    char uuid[PPF_EVQ_UUID_LEN + 1];
    char name[PPF_EVQ_DOMAIN_MAX + 1];
    char image[PPF_EVQ_NAME_MAX + 1];
    char tenant[PPF_EVQ_NAME_MAX + 1];
    int seen;                   /* found by the current walk */
};

struct ppf_lv {
    char *uri;
    ppf_lv_emit_fn emit;
    void *opaque;
    pthread_t thread;
    pthread_mutex_t lock;       /* timer, between stop and the loop thread */
    int timer;                  /* the connect/stop timer; -1 once removed */
    int ptimer;                 /* the periodic work's timer; -1: none */
    ppf_lv_periodic_fn pfn;
    void *popaque;
    /* the loop thread's own */
    virConnectPtr conn;
    int lifecycle_id;           /* -1: not registered */
    int close_registered;
    int lost;                   /* the close callback fired: drop conn */
    unsigned backoff_s;
    enum lv_state state;
    int closing, drain;
    struct lv_dom *doms;
    size_t ndoms, capdoms;
    /* shared, atomic */
    int quit, done, connected;
};

static int lv_loop_registered;

/* libvirt prints every error on stderr unless told otherwise; ppfd
 * reports them itself, once, with virGetLastErrorMessage(). */
static void
lv_silent(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

static uint64_t
lv_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
lv_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ---- the table of ppf domains -------------------------------------------- */

static struct lv_dom *
lv_dom_find(struct ppf_lv *lv, const char *uuid)
{
    for (size_t i = 0; i < lv->ndoms; i++)
        if (strcmp(lv->doms[i].uuid, uuid) == 0)
            return &lv->doms[i];
    return NULL;
}

static void
lv_dom_remove(struct ppf_lv *lv, const char *uuid)
{
    struct lv_dom *e = lv_dom_find(lv, uuid);

    if (e)
        *e = lv->doms[--lv->ndoms];
}

/* Remembers (or updates) a ppf domain; NULL if out of memory (reported). */
static struct lv_dom *
lv_dom_put(struct ppf_lv *lv, const char *name, const struct ppf_hook_deploy *dep)
{
    struct lv_dom *e = lv_dom_find(lv, dep->uuid);

    if (!e) {
        if (lv->ndoms == lv->capdoms) {
            size_t cap = lv->capdoms ? lv->capdoms * 2 : 16;
            struct lv_dom *n = realloc(lv->doms, cap * sizeof *n);

            if (!n) {
                ppf_err("libvirt", "out of memory remembering domain %s", name);
                return NULL;
            }
            lv->doms = n;
            lv->capdoms = cap;
        }
        e = &lv->doms[lv->ndoms++];
        lv_copy(e->uuid, sizeof e->uuid, dep->uuid);
    }
    lv_copy(e->name, sizeof e->name, name);
    lv_copy(e->image, sizeof e->image, dep->image);
    lv_copy(e->tenant, sizeof e->tenant, dep->tenant);
    return e;
}

/* Hands one event to ppfd; logged at level (the walks log a summary). */
static void
lv_emit(struct ppf_lv *lv, uint32_t kind, const struct lv_dom *e, const char *why,
        enum ppf_log_level level)
{
    struct ppf_host_event ev;

    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.time_us = lv_now_us();
    lv_copy(ev.uuid, sizeof ev.uuid, e->uuid);
    lv_copy(ev.domain, sizeof ev.domain, e->name);
    lv_copy(ev.image, sizeof ev.image, e->image);
    lv_copy(ev.tenant, sizeof ev.tenant, e->tenant);
    ppf_log(level, "libvirt", "domain %s (%s) %s%s: image %s, tenant %s: forwarding to the "
            "peripheral", e->name, e->uuid, ppf_event_kind_name(kind), why, e->image,
            e->tenant);
    lv->emit(&ev, lv->opaque);
}

/* Reads dom's XML and whether it is a ppf domain: 1 (*dep filled), 0 not
 * ppf's, -1 unusable ppf metadata (reported), -2 no XML (domain gone). */
static int
lv_read_domain(virDomainPtr dom, unsigned int flags, struct ppf_hook_deploy *dep)
{
    const char *name = virDomainGetName(dom);
    char err[PPF_HOOK_ERR_MAX];
    char *xml = virDomainGetXMLDesc(dom, flags);
    int rc;

    if (!xml) {
        ppf_debug("libvirt", "domain %s: no XML: %s", name ? name : "?",
                  virGetLastErrorMessage());
        virResetLastError();
        return -2;
    }
    rc = ppf_hook_parse_domain(xml, strlen(xml), dep, err, sizeof err);
    free(xml);
    if (rc < 0)
        ppf_warn("libvirt", "domain %s: %s; its events are not forwarded (fix its ppf "
                 "metadata, see ppf-qemu-hook(8))", name ? name : "?", err);
    return rc;
}

/* ---- domain lifecycle events --------------------------------------------- */

static int
lv_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct ppf_lv *lv = opaque;
    struct ppf_hook_deploy dep;
    struct lv_dom *e;
    char uuid[VIR_UUID_STRING_BUFLEN];
    const char *name = virDomainGetName(dom);
    uint32_t kind;
    int rc;

    (void)conn;
    (void)detail;
    switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED: kind = PPF_EVENT_DEFINED; break;
    case VIR_DOMAIN_EVENT_UNDEFINED: kind = PPF_EVENT_UNDEFINED; break;
    case VIR_DOMAIN_EVENT_STARTED: kind = PPF_EVENT_STARTED; break;
    case VIR_DOMAIN_EVENT_STOPPED: kind = PPF_EVENT_STOPPED; break;
    default: return 0;
    }
    if (!name || virDomainGetUUIDString(dom, uuid) < 0) {
        virResetLastError();
        return 0;
    }
    if (kind == PPF_EVENT_UNDEFINED) {
        /* the definition is gone: what we remember is all there is */
        if ((e = lv_dom_find(lv, uuid))) {
            lv_emit(lv, kind, e, "", PPF_LOG_INFO);
            /* a running domain stays, transient, until it stops */
            if (virDomainIsActive(dom) != 1)
                lv_dom_remove(lv, uuid);
            virResetLastError();
        } else {
            ppf_debug("libvirt", "domain %s UNDEFINED: not a ppf domain", name);
        }
        return 0;
    }
    rc = lv_read_domain(dom, kind == PPF_EVENT_DEFINED ? VIR_DOMAIN_XML_INACTIVE : 0, &dep);
    if (rc == 1) {
        if ((e = lv_dom_put(lv, name, &dep)))
            lv_emit(lv, kind, e, "", PPF_LOG_INFO);
    } else if (rc == -2 && (e = lv_dom_find(lv, uuid))) {
        /* a transient domain that stopped is gone at once */
        lv_emit(lv, kind, e, " (remembered)", PPF_LOG_INFO);
        if (kind == PPF_EVENT_STOPPED)
            lv_dom_remove(lv, uuid);
    } else if (rc != -2) {
        if (rc == 0)
            ppf_debug("libvirt", "domain %s %s: not a ppf domain", name,
                      ppf_event_kind_name(kind));
        lv_dom_remove(lv, uuid);        /* redefined without (usable) ppf metadata */
    }
    return 0;
}

/* At each connect: DEFINED for every defined ppf domain, UNDEFINED for a
 * known one that is gone.  Running transient ppf domains are remembered
 * (for their STOPPED) without an event. */
static void
lv_walk(struct ppf_lv *lv)
{
    virDomainPtr *doms = NULL;
    struct ppf_hook_deploy dep;
    size_t nppf = 0, ndefined = 0;
    int n;

    n = virConnectListAllDomains(lv->conn, &doms, 0);
    if (n < 0) {
        ppf_warn("libvirt", "%s: cannot list the domains: %s; only new events are "
                 "forwarded", lv->uri, virGetLastErrorMessage());
        virResetLastError();
        return;
    }
    for (size_t i = 0; i < lv->ndoms; i++)
        lv->doms[i].seen = 0;
    for (int i = 0; i < n; i++) {
        int persistent = virDomainIsPersistent(doms[i]) == 1;
        struct lv_dom *e;

        ndefined += persistent;
        if (lv_read_domain(doms[i], persistent ? VIR_DOMAIN_XML_INACTIVE : 0, &dep) == 1 &&
            (e = lv_dom_put(lv, virDomainGetName(doms[i]), &dep))) {
            e->seen = 1;
            if (persistent) {
                nppf++;
                lv_emit(lv, PPF_EVENT_DEFINED, e, " (already defined)", PPF_LOG_DEBUG);
            }
        }
        virDomainFree(doms[i]);
    }
    virResetLastError();
    free(doms);
    for (size_t i = 0; i < lv->ndoms;) {
        if (lv->doms[i].seen) {
            i++;
            continue;
        }
        lv_emit(lv, PPF_EVENT_UNDEFINED, &lv->doms[i], " (while disconnected)",
                PPF_LOG_INFO);
        lv->doms[i] = lv->doms[--lv->ndoms];
    }
    ppf_info("libvirt", "%s: %zu of %zu defined domains are ppf domains%s", lv->uri, nppf,
             ndefined, nppf ? ": DEFINED sent for each" : "");
}

/* ---- the connection ------------------------------------------------------- */

static void lv_close_cb(virConnectPtr conn, int reason, void *opaque);

static void
lv_disconnect(struct ppf_lv *lv)
{
    if (!lv->conn)
        return;
    /* on a dead connection these fail after dropping the local state */
    if (lv->lifecycle_id >= 0)
        virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_id);
    if (lv->close_registered)
        virConnectUnregisterCloseCallback(lv->conn, lv_close_cb);
    virConnectClose(lv->conn);
    virResetLastError();
    lv->conn = NULL;
    lv->lifecycle_id = -1;
    lv->ptimer = -1;
    lv->close_registered = 0;
    __atomic_store_n(&lv->connected, 0, __ATOMIC_RELEASE);
}

static void
lv_close_cb(virConnectPtr conn, int reason, void *opaque)
{
    struct ppf_lv *lv = opaque;
    static const char *const reasons[] = {
        [VIR_CONNECT_CLOSE_REASON_ERROR] = "I/O error",
        [VIR_CONNECT_CLOSE_REASON_EOF] = "libvirtd closed it",
        [VIR_CONNECT_CLOSE_REASON_KEEPALIVE] = "libvirtd stopped answering",
        [VIR_CONNECT_CLOSE_REASON_CLIENT] = "closed by ppfd",
    };

    (void)conn;
    __atomic_store_n(&lv->connected, 0, __ATOMIC_RELEASE);
    if (lv->state == LV_UP)
        ppf_warn("libvirt", "lost the connection to %s (%s); reconnecting every %d..%d s, "
                 "ppfd goes on without libvirt meanwhile", lv->uri,
                 reason >= 0 && (size_t)reason < sizeof reasons / sizeof reasons[0]
                     ? reasons[reason] : "unknown reason",
                 PPF_LV_BACKOFF_MIN_S, PPF_LV_BACKOFF_MAX_S);
    lv->state = LV_DOWN;
    lv->lost = 1;
    lv->backoff_s = PPF_LV_BACKOFF_MIN_S;
    /* the connection is dropped from the timer, not inside libvirt's callback */
    virEventUpdateTimeout(lv->timer, 0);
}

/* A failure to connect: a warning on the first of a run, debug after. */
static void
lv_failed(struct ppf_lv *lv, const char *what)
{
    if (lv->state != LV_DOWN)
        ppf_warn("libvirt", "%s: %s: %s; retrying every %d..%d s (ppfd works without "
                 "libvirt meanwhile; --no-libvirt turns this off)", lv->uri, what,
                 virGetLastErrorMessage(), PPF_LV_BACKOFF_MIN_S, PPF_LV_BACKOFF_MAX_S);
    else
        ppf_debug("libvirt", "%s: %s: %s; next try in %u s", lv->uri, what,
                  virGetLastErrorMessage(), lv->backoff_s);
    virResetLastError();
    lv->state = LV_DOWN;
}

static int
lv_connect(struct ppf_lv *lv)
{
    enum lv_state was = lv->state;

    lv->conn = virConnectOpen(lv->uri);
    if (!lv->conn) {
        lv_failed(lv, "cannot connect");
        return -1;
    }
    if (virConnectSetKeepAlive(lv->conn, LV_KEEPALIVE_S, LV_KEEPALIVE_COUNT) < 0) {
        ppf_debug("libvirt", "%s: no keepalive: %s", lv->uri, virGetLastErrorMessage());
        virResetLastError();
    }
    if (virConnectRegisterCloseCallback(lv->conn, lv_close_cb, lv, NULL) < 0) {
        lv_failed(lv, "cannot watch the connection");
        lv_disconnect(lv);
        return -1;
    }
    lv->close_registered = 1;
    lv->lifecycle_id = virConnectDomainEventRegisterAny(
        lv->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(lv_lifecycle_cb), lv, NULL);
    if (lv->lifecycle_id < 0) {
        lv_failed(lv, "cannot subscribe to domain events");
        lv_disconnect(lv);
        return -1;
    }
    __atomic_store_n(&lv->connected, 1, __ATOMIC_RELEASE);
    lv->state = LV_UP;
    ppf_info("libvirt", "%s %s: forwarding the lifecycle events of ppf domains",
             was == LV_DOWN ? "reconnected to" : "connected to", lv->uri);
    lv_walk(lv);    /* after subscribing: nothing falls in between */
    return 0;
}

/* Sets the timer to ms unless a stop came in meanwhile (then it fires at
 * once): ppf_lv_stop arms it under the same lock, so its wake-up is never
 * overwritten by a connect attempt that was running at the time. */
static void
lv_rearm(struct ppf_lv *lv, int timer, int ms)
{
    pthread_mutex_lock(&lv->lock);
    virEventUpdateTimeout(timer, __atomic_load_n(&lv->quit, __ATOMIC_ACQUIRE) ? 0 : ms);
    pthread_mutex_unlock(&lv->lock);
}

/* The one timer: connects, reconnects with backoff, and stops. */
static void
lv_timer_cb(int timer, void *opaque)
{
    struct ppf_lv *lv = opaque;

    if (__atomic_load_n(&lv->quit, __ATOMIC_ACQUIRE)) {
        if (!lv->closing) {
            pthread_mutex_lock(&lv->lock);
            if (lv->ptimer >= 0)
                virEventRemoveTimeout(lv->ptimer);
            lv->ptimer = -1;
            pthread_mutex_unlock(&lv->lock);
            lv_disconnect(lv);
            lv->closing = 1;
            lv->drain = LV_DRAIN_TICKS;
            virEventUpdateTimeout(timer, LV_DRAIN_MS);
        } else if (--lv->drain <= 0) {
            pthread_mutex_lock(&lv->lock);
            virEventRemoveTimeout(timer);
            lv->timer = -1;
            pthread_mutex_unlock(&lv->lock);
            __atomic_store_n(&lv->done, 1, __ATOMIC_RELEASE);
        }
        return;
    }
    if (lv->lost) {
        lv_disconnect(lv);
        lv->lost = 0;
    }
    if (lv->conn || lv_connect(lv) == 0) {
        lv->backoff_s = PPF_LV_BACKOFF_MIN_S;
        lv_rearm(lv, timer, -1);
        return;
    }
    lv_rearm(lv, timer, (int)lv->backoff_s * 1000);
    lv->backoff_s = lv->backoff_s * 2 > PPF_LV_BACKOFF_MAX_S ? PPF_LV_BACKOFF_MAX_S
                                                            : lv->backoff_s * 2;
}

static void
lv_periodic_cb(int timer, void *opaque)
{
    struct ppf_lv *lv = opaque;

    (void)timer;
    if (lv->conn && !lv->lost && !__atomic_load_n(&lv->quit, __ATOMIC_ACQUIRE))
        lv->pfn(lv->conn, lv->popaque);
}

int
ppf_lv_add_periodic(struct ppf_lv *lv, int interval_ms, ppf_lv_periodic_fn fn, void *opaque)
{
    int t;

    pthread_mutex_lock(&lv->lock);
    lv->pfn = fn;
    lv->popaque = opaque;
    t = lv->timer >= 0 ? virEventAddTimeout(interval_ms, lv_periodic_cb, lv, NULL) : -1;
    lv->ptimer = t;
    pthread_mutex_unlock(&lv->lock);
    if (t < 0) {
        ppf_err("libvirt", "cannot add a periodic timer: %s", virGetLastErrorMessage());
        return -1;
    }
    return 0;
}

static void *
lv_thread(void *opaque)
{
    struct ppf_lv *lv = opaque;

    while (!__atomic_load_n(&lv->done, __ATOMIC_ACQUIRE)) {
        if (virEventRunDefaultImpl() < 0) {
            ppf_err("libvirt", "libvirt's event loop failed: %s", virGetLastErrorMessage());
            virResetLastError();
            nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
        }
    }
    return NULL;
}

struct ppf_lv *
ppf_lv_start(const char *uri, ppf_lv_emit_fn emit, void *opaque)
{
    struct ppf_lv *lv;
    int rc;

    if (virInitialize() < 0) {
        ppf_err("libvirt", "cannot initialise libvirt: %s", virGetLastErrorMessage());
        return NULL;
    }
    virSetErrorFunc(NULL, lv_silent);
    /* once per process: libvirt cannot change or stop its event loop */
    if (!lv_loop_registered) {
        if (virEventRegisterDefaultImpl() < 0) {
            ppf_err("libvirt", "cannot set up libvirt's event loop: %s",
                    virGetLastErrorMessage());
            return NULL;
        }
        lv_loop_registered = 1;
    }
    lv = calloc(1, sizeof *lv);
    if (!lv || !(lv->uri = strdup(uri))) {
        ppf_err("libvirt", "out of memory");
        free(lv);
        return NULL;
    }
    lv->emit = emit;
    lv->opaque = opaque;
    lv->lifecycle_id = -1;
    lv->ptimer = -1;
    lv->backoff_s = PPF_LV_BACKOFF_MIN_S;
    lv->state = LV_NEW;
    pthread_mutex_init(&lv->lock, NULL);
    lv->timer = virEventAddTimeout(0, lv_timer_cb, lv, NULL);
    if (lv->timer < 0) {
        ppf_err("libvirt", "cannot add a timer to libvirt's event loop: %s",
                virGetLastErrorMessage());
        goto fail;
    }
    rc = pthread_create(&lv->thread, NULL, lv_thread, lv);
    if (rc != 0) {
        ppf_err("libvirt", "cannot start the libvirt thread: %s", strerror(rc));
        virEventRemoveTimeout(lv->timer);
        goto fail;
    }
    return lv;

fail:
    pthread_mutex_destroy(&lv->lock);
    free(lv->uri);
    free(lv);
    return NULL;
}

int
ppf_lv_connected(struct ppf_lv *lv)
{
    return lv && __atomic_load_n(&lv->connected, __ATOMIC_ACQUIRE);
}

void
ppf_lv_stop(struct ppf_lv *lv)
{
    if (!lv)
        return;
    pthread_mutex_lock(&lv->lock);
    __atomic_store_n(&lv->quit, 1, __ATOMIC_RELEASE);
    if (lv->timer >= 0)
        virEventUpdateTimeout(lv->timer, 0);    /* wakes the loop */
    pthread_mutex_unlock(&lv->lock);
    /* the loop stops within a few of its ticks; if the wake-up got lost,
     * wake it again rather than wait forever */
    for (int i = 0;; i++) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        if (pthread_timedjoin_np(lv->thread, NULL, &ts) == 0)
            break;
        if (i == 5) {
            ppf_err("libvirt", "libvirt's event loop does not stop; exiting without it");
            return;
        }
        ppf_warn("libvirt", "libvirt's event loop is slow to stop; waking it again");
        pthread_mutex_lock(&lv->lock);
        if (lv->timer >= 0)
            virEventUpdateTimeout(lv->timer, 0);
        pthread_mutex_unlock(&lv->lock);
    }
    pthread_mutex_destroy(&lv->lock);
    free(lv->doms);
    free(lv->uri);
    free(lv);
}

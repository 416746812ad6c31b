/* ppfd's libvirt plugin: a connection to libvirtd through the public API
 * (one thread running libvirt's default event loop) that follows domain
 * lifecycle events and hands those of ppf domains — domains whose
 * <metadata> carries a valid ppf:deploy (hooks/hook.h) — to a callback.
 *
 * The connection is kept up: when libvirtd goes away (close callback,
 * keepalive) the plugin reconnects with a backoff of 1 s doubling to 30 s,
 * logging once per change of state, never per retry.  At each (re)connect
 * it walks the defined domains once and reports DEFINED for every ppf
 * domain, and UNDEFINED for a ppf domain it knew that is gone, so the
 * peripheral catches up with what happened while ppfd was not listening.
 */
#ifndef PPF_PLUGIN_LIBVIRT_H
#define PPF_PLUGIN_LIBVIRT_H

#include <libvirt/libvirt.h>

#include "plugin/events.h"

#define PPF_LV_DEFAULT_URI   "qemu:///system"
#define PPF_LV_BACKOFF_MIN_S 1
#define PPF_LV_BACKOFF_MAX_S 30

struct ppf_lv;

/* Called on the plugin's thread for each event of a ppf domain; ev is
 * only valid during the call. */
typedef void (*ppf_lv_emit_fn)(const struct ppf_host_event *ev, void *opaque);

/* Starts the plugin on uri (copied): registers libvirt's default event
 * loop (once per process), starts its thread and a first connection
 * attempt.  Must be called after any fork and with the signals the main
 * thread waits for already blocked.  NULL on failure (reported). */
struct ppf_lv *ppf_lv_start(const char *uri, ppf_lv_emit_fn emit, void *opaque);

/* Work to do every interval_ms on the plugin's thread while connected
 * (conn is the live connection; fn must not block for long).  Call once,
 * right after ppf_lv_start.  0, or -1 (reported). */
typedef void (*ppf_lv_periodic_fn)(virConnectPtr conn, void *opaque);
int ppf_lv_add_periodic(struct ppf_lv *lv, int interval_ms, ppf_lv_periodic_fn fn,
                        void *opaque);
/* 1 while connected to libvirtd, else 0 (any thread). */
int ppf_lv_connected(struct ppf_lv *lv);

/* Closes the connection (event callbacks deregistered), stops and joins
 * the thread and frees lv.  NULL is fine. */
void ppf_lv_stop(struct ppf_lv *lv);

#endif /* PPF_PLUGIN_LIBVIRT_H */

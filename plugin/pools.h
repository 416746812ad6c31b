/* ppf pools on the libvirt side: the prepared images of the peripheral's
 * buffer appear as volumes of ppf's libvirt dir pools, as symbolic links
 * IMAGE.raw in the pool's directory to the read-only prepared file.  A
 * refresh reads the buffer (BUFFER_LIST) and the policy in force (for
 * buffer.path), adds the links of READY entries of the pool's tenant and
 * the public ones, removes links whose entry is gone, never touches any
 * other file, and refreshes libvirt's pool if anything changed.  Used by
 * ppfctl pool-refresh and pool-undefine; ppfd can call
 * ppf_pools_refresh_all periodically (see ppf-pool(5)).
 */
#ifndef PPF_PLUGIN_POOLS_H
#define PPF_PLUGIN_POOLS_H

#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "ppf/ppf.h"
#include "tools/pool-xml.h"

/* One READY entry of the buffer. */
struct ppf_pools_entry {
    char image[PPF_POOL_NAME_MAX + 1];
    char tenant[PPF_POOL_NAME_MAX + 1];     /* owner; "" for a public entry */
    int pub;
    uint64_t size;
    char file[PPF_POOL_NAME_MAX + 32];      /* its file's name in entries/OWNER/:
                                             * IMAGE@DIGEST16.raw, or IMAGE.raw */
};

/* What the pools need of the buffer: where it is and what is ready. */
struct ppf_pools_buffer {
    char root[PPF_POOL_PATH_MAX + 1];       /* the policy's buffer.path */
    struct ppf_pools_entry *v;
    size_t n, cap;
};

/* What a sync did to one pool. */
struct ppf_pools_result {
    unsigned volumes;       /* prepared images linked after the sync */
    unsigned added;         /* links made or re-pointed */
    unsigned removed;       /* links of entries that are gone */
    unsigned conflicts;     /* names taken by files ppf did not make: left alone */
    int inactive;           /* the libvirt pool is not running: nothing done */
    int refreshed;          /* virStoragePoolRefresh was called */
};

/* Reads the buffer's READY entries (BUFFER_LIST on an I/O pair) and the
 * policy's buffer.path (CONFIGURE GET on the admin pair) from dev, each
 * pair claimed and released here, waiting up to timeout_ms.  Every name
 * the device sends is checked.  b is cleared first; free it with
 * ppf_pools_buffer_clear.  0, or -1 with err set. */
int ppf_pools_buffer_fetch(struct ppf_dev *dev, int timeout_ms, struct ppf_pools_buffer *b,
                           char *err, size_t errlen);
void ppf_pools_buffer_clear(struct ppf_pools_buffer *b);

/* 1 if the symbolic link name -> target is one ppf makes: name is
 * IMAGE.raw and target ends in /entries/OWNER/IMAGE@DIGEST.raw (or, from
 * buffers made before versions were kept, /entries/OWNER/IMAGE.raw), OWNER
 * a tenant or @public, whatever the buffer's directory; else 0. */
int ppf_pools_link_is_ours(const char *name, const char *target);

/* Makes the links of directory dir match b for the pool conf (its tenant
 * and volumes= setting; NULL b: no entries, i.e. remove every ppf link).
 * No libvirt call.  0 with *res filled, or -1 with err set. */
int ppf_pools_sync_dir(const struct ppf_pools_buffer *b, const struct ppf_pool_conf *conf,
                       const char *dir, struct ppf_pools_result *res, char *err,
                       size_t errlen);

#define PPF_POOLS_REFRESH_ALWAYS 0x1u   /* refresh libvirt's pool even if nothing changed */

/* Syncs the ppf pool conf (a state file's content): finds libvirt's pool by
 * name, checks it is the one ppf defined (uuid), skips it if inactive,
 * syncs the links in libvirt's target directory and refreshes the pool
 * (flags: PPF_POOLS_REFRESH_*).  0 with *res filled, or -1 with err. */
int ppf_pools_sync(virConnectPtr conn, const struct ppf_pools_buffer *b,
                   const struct ppf_pool_conf *conf, unsigned flags,
                   struct ppf_pools_result *res, char *err, size_t errlen);

/* Syncs every ppf pool of pool_dir (the state files NAME.xml): fetches the
 * buffer once, then ppf_pools_sync each pool, refreshing libvirt only where
 * links changed.  Cheap when nothing changed (two device commands, one
 * directory scan per pool) and idempotent.  A pool that fails does not
 * stop the others.  Returns the number of pools synced, or -1 with err
 * holding "NAME: reason" for the failures (joined by "; ").
 *
 * For ppfd: open the device and a libvirt connection once, then call
 *   ppf_pools_refresh_all(conn, dev, PPF_POOL_STATE_DIR, 5000, err, sizeof err)
 * every few seconds (and after a PREFETCH completes), logging err on -1. */
int ppf_pools_refresh_all(virConnectPtr conn, struct ppf_dev *dev, const char *pool_dir,
                          int timeout_ms, char *err, size_t errlen);

#endif /* PPF_PLUGIN_POOLS_H */

/* ppf-qemu-hook's parse cache: what ppf_hook_parse_domain_full found in a
 * domain XML, kept under a hash of that XML, so that the next start of
 * the same domain does not load libxml2 at all (with ICU and libstdc++ it
 * is most of the hook's own time).  One small text file per domain XML in
 * $PPF_HOOK_CACHE_DIR, default /run/ppf/hook-cache (mode 0700, root's: a
 * tmpfs, gone at reboot).  Every value read back is checked as the parser
 * checks it; an unreadable or odd file is a miss, never an error.
 */
#ifndef PPF_HOOK_DOMCACHE_H
#define PPF_HOOK_DOMCACHE_H

#include <stddef.h>

#include "hooks/hook.h"

#define PPF_HOOK_CACHE_DIR   "/run/ppf/hook-cache"
#define PPF_HOOK_CACHE_MAX   4096    /* files; beyond that the cache starts over */

/* The cache directory: $PPF_HOOK_CACHE_DIR if set and absolute, else the
 * default. */
const char *ppf_hook_cache_dir(void);
/* 1 and *dom filled (free it with ppf_hook_domain_free) if xml was parsed
 * before, else 0 (*dom cleared). */
int ppf_hook_cache_load(const char *dir, const char *xml, size_t len,
                        struct ppf_hook_domain *dom);
/* Remembers dom for xml (best effort: nothing is reported). */
void ppf_hook_cache_store(const char *dir, const char *xml, size_t len,
                          const struct ppf_hook_domain *dom);

#endif /* PPF_HOOK_DOMCACHE_H */

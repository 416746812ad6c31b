/* ppf-qemu-hook's private interface: reading the domain XML libvirt hands
 * the hook on stdin (bounded) and extracting what a deploy needs from it
 * (hooks/domxml.c, pure logic, unit-tested without a peripheral), plus the
 * names the hook's parts share.
 *
 * A domain opts in with, in its <metadata>:
 *   <ppf:deploy xmlns:ppf="urn:ppf:libvirt:1.0" image="NAME" [tenant="T"]
 *               [ephemeral="yes|no"] [mode="overlay|copy"] [disk="vda"]/>
 * (schemas/ppf-domain.rng), or with a disk that is a volume of a ppf pool
 * made by ppfctl vol-create:
 *   <disk type='volume' device='disk'>
 *     <driver name='qemu' type='qcow2'/> <source pool='P' volume='V'/> ...
 * whose record POOL_DIR/P.volumes/V (hooks/volrec.h) says what to deploy.
 * libvirt hands the prepare hook such a disk unresolved (pool and volume,
 * no path) and resolves it only after the hook, so the volume must exist
 * by then: vol-create makes an empty placeholder, which the deploy
 * replaces.  Everything else in the domain is libvirt's.
 */
#ifndef PPF_HOOK_H
#define PPF_HOOK_H

#include <stddef.h>

#define PPF_HOOK_NS          "urn:ppf:libvirt:1.0"
#define PPF_HOOK_XML_MAX     (4u * 1024 * 1024)  /* bytes of domain XML accepted */
#define PPF_HOOK_NAME_MAX    255                 /* image and tenant names (§5.6) */
#define PPF_HOOK_PATH_MAX    4095                /* a disk's source file */
#define PPF_HOOK_DEV_MAX     63                  /* a disk's <target dev=...> */
#define PPF_HOOK_UUID_LEN    36
#define PPF_HOOK_ERR_MAX     512

/* What one ppf:deploy asks for.  mode and ephemeral are -1 when the
 * metadata leaves them to the policy (deploy.mode, deploy.ephemeral). */
struct ppf_hook_deploy {
    char uuid[PPF_HOOK_UUID_LEN + 1];
    char image[PPF_HOOK_NAME_MAX + 1];
    char tenant[PPF_HOOK_NAME_MAX + 1];         /* "default" unless given */
    char dev[PPF_HOOK_DEV_MAX + 1];             /* the chosen disk's target dev */
    char target[PPF_HOOK_PATH_MAX + 1];         /* the chosen disk's source file */
    int mode;                                   /* -1, 0 overlay, 1 copy */
    int ephemeral;                              /* -1, 0, 1 */
    int placeholder;                            /* 1: an empty file at target is
                                                 * replaced (a pool volume) */
};

/* A <disk type='volume' device='disk'> of the domain whose pool and volume
 * are ppf names (candidates: the pool state decides whether it is ppf's). */
struct ppf_hook_voldisk {
    char pool[PPF_HOOK_NAME_MAX + 1];
    char volume[PPF_HOOK_NAME_MAX + 1];
    char dev[PPF_HOOK_DEV_MAX + 1];             /* <target dev>; "" if absent */
    char format[16];                            /* <driver type>; "" if absent */
};

/* What a domain may ask of ppf: its ppf:deploy metadata and its volume
 * disks.  Free with ppf_hook_domain_free. */
struct ppf_hook_domain {
    char uuid[PPF_HOOK_UUID_LEN + 1];           /* "" if absent or not a UUID */
    int has_deploy;                             /* deploy holds ppf:deploy */
    struct ppf_hook_deploy deploy;
    struct ppf_hook_voldisk *vols;
    size_t nvols;
};

/* Reads all of fd into a new NUL-terminated buffer (*bufp, the caller
 * frees it; *lenp its length without the NUL).  Refuses more than max
 * bytes.  0, or -1 with a one-line message in err (errlen bytes). */
int ppf_hook_read_all(int fd, size_t max, char **bufp, size_t *lenp, char *err,
                      size_t errlen);

/* Quick test, no parsing: 0 if buf cannot hold a ppf:deploy element (the
 * namespace or the element name is absent), 1 if it may.  libvirt writes
 * the domain XML normalised, so the namespace appears literally. */
int ppf_hook_maybe_ppf(const char *buf, size_t len);

/* Parses a domain XML (libxml2: no network, no DTD, no entity expansion,
 * default size limits; a DOCTYPE is refused) and fills *d.  Returns 1 if
 * the domain carries a valid ppf:deploy, 0 if it carries none (not ppf's),
 * -1 with a one-line message in err if it is ppf's but unusable or the
 * XML cannot be read.  *d is cleared on entry. */
int ppf_hook_parse_domain(const char *buf, size_t len, struct ppf_hook_deploy *d, char *err,
                          size_t errlen);

/* Quick scan, no parsing: finds the next pool='NAME' (or pool="NAME") in
 * buf at or after *off whose NAME is a ppf name, copies NAME into name
 * (cap bytes) and moves *off past it.  1 if found, 0 if none is left.
 * The hook stats each pool's state file before deciding to parse. */
int ppf_hook_next_pool(const char *buf, size_t len, size_t *off, char *name, size_t cap);

/* Parses a domain XML like ppf_hook_parse_domain and also lists its volume
 * disks (dom->vols).  dom is cleared on entry; free it with
 * ppf_hook_domain_free even after a failure.  0 (look at has_deploy and
 * nvols), or -1 with a one-line message in err. */
int ppf_hook_parse_domain_full(const char *buf, size_t len, struct ppf_hook_domain *dom,
                               char *err, size_t errlen);
void ppf_hook_domain_free(struct ppf_hook_domain *dom);

/* Releases libxml2's global state at exit (for leak checkers).  With
 * PPF_HOOK_DLOPEN_XML libxml2 is loaded on the first parse only. */
void ppf_hook_xml_cleanup(void);

#endif /* PPF_HOOK_H */

/* Volume records: the disks of ppf pools (ppf-pool(5), VOLUMES).  ppfctl
 * vol-create writes one small plain-text file per volume,
 * POOL_DIR/POOL.volumes/VOLUME:
 *
 *   image web
 *   tenant acme
 *   mode overlay
 *   target /var/lib/libvirt/images/gold/vm1
 *
 * and an empty placeholder file at the target, so that libvirt lists the
 * volume; ppf-qemu-hook reads the record when a domain's
 * <disk type='volume'> names POOL and VOLUME and deploys the image to the
 * target, replacing the placeholder.  Plain text, so that the hook needs
 * no XML parser for it.  Shared by ppfctl and the hook; libc only.
 */
#ifndef PPF_HOOKS_VOLREC_H
#define PPF_HOOKS_VOLREC_H

#include <stddef.h>

#define PPF_VOLREC_POOL_DIR  "/var/lib/ppf/pools"   /* as ppfctl's pool-* */
#define PPF_VOLREC_ENV_DIR   "PPF_POOL_DIR"
#define PPF_VOLREC_SUFFIX    ".volumes"             /* POOL.volumes/ */
#define PPF_VOLREC_MAX       8192                   /* bytes of a record */
#define PPF_VOLREC_NAME_MAX  255
#define PPF_VOLREC_PATH_MAX  4095
#define PPF_VOLREC_PREPARED  ".raw"                 /* names of prepared images */
#define PPF_VOLREC_OVERLAY   0                      /* modes, as PPF_A_MODE (§5.6) */
#define PPF_VOLREC_COPY      1

/* One volume.  mode is -1 when the record leaves it to the policy. */
struct ppf_volrec {
    char image[PPF_VOLREC_NAME_MAX + 1];
    char tenant[PPF_VOLREC_NAME_MAX + 1];       /* "default" unless given */
    char target[PPF_VOLREC_PATH_MAX + 1];       /* the disk: DIR/VOLUME */
    int mode;                                   /* -1 or PPF_VOLREC_OVERLAY, _COPY */
};

/* The directory of ppf's pool state: $PPF_POOL_DIR if it is an absolute
 * path, else PPF_VOLREC_POOL_DIR.  Never NULL. */
const char *ppf_volrec_pool_dir(void);

/* 1 if name can be a ppf volume: a ppf name (1 to 255 of A-Z a-z 0-9 . _ -,
 * not starting with '.') not ending in ".raw", which ppf pools keep for
 * prepared images; else 0. */
int ppf_volrec_name_ok(const char *name);

/* 1 if name is a ppf name ending in ".raw" (the name of a prepared image
 * in a ppf pool); else 0. */
int ppf_volrec_is_prepared(const char *name);

/* POOL_DIR/POOL.volumes into buf (the records' directory); -1 if it does
 * not fit. */
int ppf_volrec_dir(const char *pool_dir, const char *pool, char *buf, size_t len);
/* POOL_DIR/POOL.volumes/VOLUME into buf; -1 if it does not fit. */
int ppf_volrec_path(const char *pool_dir, const char *pool, const char *volume, char *buf,
                    size_t len);
/* POOL_DIR/POOL.xml, the pool's state file, into buf; -1 if it does not fit. */
int ppf_volrec_pool_state(const char *pool_dir, const char *pool, char *buf, size_t len);

/* Parses a record's text (len bytes, NUL not required): lines "KEY VALUE"
 * with the keys image (required), tenant, mode (overlay or copy) and
 * target (required, an absolute path); blank lines and lines starting
 * with '#' are skipped; an unknown key, a repeated key or a bad value is
 * an error.  *r is cleared first.  0, or -1 with "line N: what is wrong"
 * in err. */
int ppf_volrec_parse(const char *buf, size_t len, struct ppf_volrec *r, char *err,
                     size_t errlen);

/* The text of r into buf (len bytes; mode written only if >= 0).  Returns
 * its length, or -1 if it does not fit. */
int ppf_volrec_format(const struct ppf_volrec *r, char *buf, size_t len);

/* Reads and parses the record at path (no symlink followed, at most
 * PPF_VOLREC_MAX bytes).  1 and *r filled; 0 if there is no record
 * (ENOENT or ENOTDIR); -1 with "PATH: reason" in err. */
int ppf_volrec_load(const char *path, struct ppf_volrec *r, char *err, size_t errlen);

#endif /* PPF_HOOKS_VOLREC_H */

/* The XML of ppf pools (ppf-pool(5)), without libvirt: read a pool-define
 * document safely, validate it against schemas/ppf-pool.rng, split it into
 * the plain libvirt pool XML and ppf's settings, write and read ppf's state
 * file (/var/lib/ppf/pools/NAME.xml), and merge the settings back into the
 * XML libvirt returns.  Pure functions over buffers, except the key file
 * check and the file helpers at the end; ppfctl and ppfd share them.
 */
#ifndef PPF_TOOLS_POOL_XML_H
#define PPF_TOOLS_POOL_XML_H

#include <stddef.h>
#include <stdint.h>

#define PPF_POOL_NS           "urn:ppf:libvirt:1.0"
#define PPF_POOL_NS_PREFIX    "ppf"
#define PPF_POOL_SCHEMA       "ppf-pool.rng"
#define PPF_POOL_XML_MAX      (1024 * 1024)     /* bytes of a pool document */
#define PPF_POOL_NAME_MAX     255               /* §5.6 names: pool, store, tenant */
#define PPF_POOL_PATH_MAX     4095
#define PPF_POOL_KEY_SIZE     32                /* AES-256, as the policy's key files */
#define PPF_POOL_DEFAULT_TENANT "default"
#define PPF_POOL_STATE_DIR    "/var/lib/ppf/pools"

enum ppf_pool_volumes {
    PPF_POOL_VOLUMES_PREPARED,  /* ready images of the tenant appear as volumes */
    PPF_POOL_VOLUMES_NONE,      /* only what is deployed in the pool */
};

/* ppf's part of a pool, and the libvirt facts ppf keeps beside it. */
struct ppf_pool_conf {
    char name[PPF_POOL_NAME_MAX + 1];       /* libvirt's <name> */
    char uuid[37];                          /* libvirt's, in state files; "" else */
    char target[PPF_POOL_PATH_MAX + 1];     /* <target><path> */
    char store[PPF_POOL_NAME_MAX + 1];
    char tenant[PPF_POOL_NAME_MAX + 1];     /* PPF_POOL_DEFAULT_TENANT if absent */
    char quota_text[32];                    /* as written; "" if absent */
    uint64_t quota;                         /* bytes; 0 if absent */
    char keyfile[PPF_POOL_PATH_MAX + 1];    /* "" if absent */
    enum ppf_pool_volumes volumes;
    unsigned line;                          /* of the ppf element; 0 if unknown */
    unsigned name_line, target_line;        /* of <name> and <path>; 0 if unknown */
};

/* Splits a pool-define document.  file names it in messages; buf/len is its
 * text (at most PPF_POOL_XML_MAX bytes; a DOCTYPE is refused, nothing is
 * fetched from the network, no entity is expanded); schema is the path of
 * ppf-pool.rng.  On success returns 0, fills *conf (uuid empty) and sets
 * *plain to the libvirt pool XML without the ppf element (caller frees).
 * On failure returns -1, *plain is NULL and err holds one or more lines
 * "FILE:LINE: what is wrong; what to do". */
int ppf_pool_xml_split(const char *file, const char *buf, size_t len, const char *schema,
                       struct ppf_pool_conf *conf, char **plain, char *err, size_t errlen);

/* Checks the values of conf that no schema can: names (ppf_name_ok),
 * the quota (a size above 0), absolute paths.  file names the document in
 * messages.  0, or -1 with err set. */
int ppf_pool_conf_check(const struct ppf_pool_conf *conf, const char *file, char *err,
                        size_t errlen);

/* Checks conf's key file on this host: a regular file of PPF_POOL_KEY_SIZE
 * bytes, not readable or writable by group or others.  No key file: 0.
 * 0, or -1 with err set. */
int ppf_pool_conf_check_keyfile(const struct ppf_pool_conf *conf, const char *file,
                                char *err, size_t errlen);

/* The ppf element alone, one line, no declaration:
 * <ppf:pool xmlns:ppf="urn:ppf:libvirt:1.0" store=".." .../>.  *out is
 * malloc'd (caller frees).  0 or -1 (out of memory). */
int ppf_pool_xml_element(const struct ppf_pool_conf *conf, char **out);

/* Inserts the ppf element into libvirt's pool XML (after <uuid>, else
 * after <name>), as pool-dumpxml shows it.  *out is malloc'd.  0, or -1
 * with err set (libvirt's XML is not a pool). */
int ppf_pool_xml_merge(const char *libvirt_xml, const struct ppf_pool_conf *conf,
                       char **out, char *err, size_t errlen);

/* Extracts <name>, <uuid> and <target><path> from libvirt's pool XML into
 * conf (the ppf fields are left alone); type is set to the pool's type
 * attribute (bounded).  0, or -1 with err set. */
int ppf_pool_xml_libvirt_facts(const char *libvirt_xml, struct ppf_pool_conf *conf,
                               char *type, size_t typelen, char *err, size_t errlen);

/* The state file of a pool: a small document in ppf's namespace holding the
 * libvirt name, uuid and target and the ppf element.  *out is malloc'd. */
int ppf_pool_state_format(const struct ppf_pool_conf *conf, char **out);
/* Parses a state file (file names it in messages) and checks every value
 * as ppf_pool_conf_check does.  0, or -1 with err set. */
int ppf_pool_state_parse(const char *file, const char *buf, size_t len,
                         struct ppf_pool_conf *conf, char *err, size_t errlen);

/* --- files ------------------------------------------------------------ */

/* Reads at most max bytes of path into a malloc'd, NUL-terminated buffer.
 * 0, or -1 with err set ("PATH: reason; what to do"); errno is kept (ENOENT
 * for a missing file, EFBIG for a longer one). */
int ppf_pool_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                       size_t errlen);
/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory; mode 0644.  0, or -1 with err. */
int ppf_pool_write_file(const char *path, const char *data, size_t len, char *err,
                        size_t errlen);
/* dir/NAME.xml into buf; -1 if it does not fit. */
int ppf_pool_state_path(const char *dir, const char *name, char *buf, size_t len);

#endif /* PPF_TOOLS_POOL_XML_H */

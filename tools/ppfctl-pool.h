/* What ppfctl's pool commands (tools/ppfctl-pool.c) share with its volume
 * commands (tools/ppfctl-vol.c): option parsing, the pool's state file,
 * and the libvirt connection and pool lookup, each reporting its own
 * errors ("ppfctl: ..." on stderr) once.  Not installed.
 */
#ifndef PPF_TOOLS_PPFCTL_POOL_H
#define PPF_TOOLS_PPFCTL_POOL_H

#include <libvirt/libvirt.h>

#include "tools/pool-xml.h"

/* Options of the pool and volume commands (each takes the ones it needs). */
struct pool_opts {
    const char *uri;
    const char *pool_dir;
    const char *policy;         /* pool-define --policy FILE */
    int inactive;               /* pool-dumpxml --inactive */
    int keep_libvirt;           /* pool-undefine --keep-libvirt */
    const char *image;          /* vol-create --image IMAGE */
    const char *tenant;         /* vol-create --tenant T; NULL: the pool's */
    int mode;                   /* vol-create --mode: 0 overlay (default), 1 copy */
    int keep_disk;              /* vol-delete --keep-disk */
    const char *arg;            /* FILE, NAME or POOL; NULL if none */
    const char *arg2;           /* VOLUME; NULL if none */
};

/* Option letters for pool_parse's allowed (long options only, but -c). */
enum { OPT_CONNECT = 'c', OPT_POOL_DIR = 'P', OPT_POLICY = 'p', OPT_INACTIVE = 'i',
       OPT_KEEP = 'k', OPT_IMAGE = 'I', OPT_TENANT = 'T', OPT_MODE = 'M',
       OPT_KEEP_DISK = 'D' };

/* Parses argv (argv[0] the command) into o.  allowed: the option letters
 * the command takes; need: 2 two arguments required, 1 one, 0 one
 * optional, -1 none.  0, or 2 (usage error, reported). */
int pool_parse(int argc, char **argv, const char *allowed, int need, struct pool_opts *o);

/* Starts a command's JSON answer on stdout: an object whose first member
 * is "pool". */
struct ppf_json;
void pool_json_begin(struct ppf_json *j, const char *pool);

/* One subcommand of a family (pool-*, vol-*): its name, pool_parse's
 * allowed letters and argument count, and what runs it. */
struct ctl;
struct pool_cmd {
    const char *name;
    const char *allowed;
    int need;
    int (*run)(struct ctl *c, const struct pool_opts *o);
};
/* Parses and runs argv[0] from cmds; an unknown name is a usage error
 * listing the family's commands. */
int pool_dispatch(struct ctl *c, int argc, char **argv, const struct pool_cmd *cmds, size_t n,
                  const char *family);

/* 0 if name is a ppf pool name, else 2 (usage error, reported). */
int pool_check_name(const char *cmd, const char *name);

/* Loads the state of ppf pool name from o->pool_dir.  0; 1 error
 * (reported); with missing_ok, -2 if there is none. */
int pool_load(const struct pool_opts *o, const char *name, struct ppf_pool_conf *conf,
              int missing_ok);

/* libvirt's last error on one line (a static buffer). */
const char *pool_virt_error(void);

/* Connects to o->uri; NULL if it cannot (reported). */
virConnectPtr pool_connect(const struct pool_opts *o);
void pool_disconnect(virConnectPtr *conn);
void pool_free_pool(virStoragePoolPtr *p);
#define CLEANUP_CONN __attribute__((cleanup(pool_disconnect)))
#define CLEANUP_POOL __attribute__((cleanup(pool_free_pool)))

/* Looks up the libvirt pool of conf; NULL with *why set if it is missing
 * (why "missing") or not the one ppf defined ("foreign"). */
virStoragePoolPtr pool_lookup(virConnectPtr conn, const struct ppf_pool_conf *conf,
                              const char **why);
/* Reports pool_lookup's why for conf, with what to do. */
void pool_report_lookup(const struct ppf_pool_conf *conf, const char *why);

/* Sets conf->target to the directory libvirt's pool uses now (it may have
 * been redefined with virsh since pool-define); left alone if libvirt's
 * XML cannot be read. */
void pool_libvirt_target(virStoragePoolPtr pool, struct ppf_pool_conf *conf);

/* mkdir -p dir (mode 0755); 0 or -1 with errno. */
int pool_mkdirs(const char *dir);

/* Removes the volume records of pool name (tools/ppfctl-vol.c), never
 * their disks; used by pool-undefine.  Sets *n to the number removed.
 * 0, or -1 (reported). */
int vol_forget_all(const struct pool_opts *o, const char *name, unsigned *n);

#endif /* PPF_TOOLS_PPFCTL_POOL_H */

/* ppfctl vol-create | vol-delete | vol-list: the disks of ppf pools
 * (ppf-pool(5), VOLUMES).  A volume is a record POOL_DIR/POOL.volumes/VOLUME
 * (hooks/volrec.h: image, tenant, mode, target) plus a file at the target,
 * in the pool's directory: an empty placeholder until the first start of a
 * domain whose <disk type='volume'> names the volume, when ppf-qemu-hook
 * deploys the image over it.  libvirt resolves a volume disk only after
 * the prepare hook, and refuses one its pool does not list: hence the
 * placeholder and the pool refresh here.  vol-create also tells the
 * peripheral that the image will be wanted (EVENT DEFINED), so that it can
 * be prefetched before the first start.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "common/json.h"
#include "hooks/volrec.h"
#include "ppf/protocol.h"
#include "tools/ppfctl-pool.h"
#include "tools/ppfctl.h"

#define VOL_ERR_MAX 1024

/* What a volume's disk is now. */
static const char *
vol_disk_state(const char *target)
{
    struct stat st;

    if (lstat(target, &st) < 0)
        return errno == ENOENT ? "missing" : "unreadable";
    if (!S_ISREG(st.st_mode))
        return "other";         /* not a file ppf makes */
    return st.st_size == 0 ? "placeholder" : "deployed";
}

/* Checks POOL and VOLUME and loads the pool's state.  0, 1 or 2
 * (reported). */
static int
vol_check(const char *cmd, const struct pool_opts *o, struct ppf_pool_conf *conf)
{
    int r;

    if ((r = pool_check_name(cmd, o->arg)) != 0)
        return r;
    if (o->arg2 && !ppf_volrec_name_ok(o->arg2))
        return usage_error("'%s' is not a volume name (1 to %d of A-Z a-z 0-9 . _ -, not "
                           "starting with '.', not ending in %s: those are the pool's "
                           "prepared images)", o->arg2, PPF_VOLREC_NAME_MAX,
                           PPF_VOLREC_PREPARED);
    return pool_load(o, o->arg, conf, 0);
}

/* Refreshes libvirt's pool so that its volumes match the directory; a
 * failure is a warning (the change is made).  pool may be NULL (looked up). */
static void
vol_refresh(const struct pool_opts *o, const struct ppf_pool_conf *conf,
            virStoragePoolPtr pool)
{
    CLEANUP_CONN virConnectPtr conn = NULL;
    CLEANUP_POOL virStoragePoolPtr own = NULL;
    const char *why = NULL;

    if (!pool) {
        if (!(conn = pool_connect(o)))
            return;
        if (!(pool = own = pool_lookup(conn, conf, &why))) {
            pool_report_lookup(conf, why);
            return;
        }
    }
    if (virStoragePoolIsActive(pool) <= 0)
        fprintf(stderr, "ppfctl: note: pool %s is not running; libvirt lists the change "
                "once it is (virsh pool-start %s)\n", conf->name, conf->name);
    else if (virStoragePoolRefresh(pool, 0) < 0)
        fprintf(stderr, "ppfctl: warning: libvirt did not refresh pool %s: %s; run virsh "
                "pool-refresh %s\n", conf->name, pool_virt_error(), conf->name);
}

/* Tells the peripheral that a disk of r's image will be wanted (EVENT
 * DEFINED: it may prefetch it).  Best effort: 1 if it took it, else 0
 * with a note; the image is fetched at the first start anyway. */
static int
vol_hint(struct ctl *c, const struct ppf_volrec *r)
{
    struct ppf_cmd cmd = { .opcode = PPF_OP_EVENT };
    struct ppf_attr_writer w;
    uint8_t in[1024], out[512];
    char why[600] = "";
    int ok = 0;

    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_u32(&w, PPF_A_EVENT, PPF_EVENT_DEFINED);
    ppf_attr_put_str(&w, PPF_A_IMAGE, r->image);
    ppf_attr_put_str(&w, PPF_A_TENANT, r->tenant);
    cmd.in = w.buf;
    cmd.in_len = (uint32_t)w.len;
    cmd.out = out;
    cmd.out_cap = sizeof out;
    if (ppf_dev_open(c->device, &c->dev) < 0 ||
        ppf_qp_claim(c->dev, PPF_QP_IO, c->timeout_ms, &c->qp) < 0 ||
        ppf_exec(c->qp, &cmd, c->timeout_ms) < 0)
        snprintf(why, sizeof why, "%s", ppf_error());
    else if (cmd.status != PPF_SC_SUCCESS)
        ppf_cmd_reason(&cmd, why, sizeof why);
    else
        ok = 1;
    if (!ok)
        fprintf(stderr, "ppfctl: note: the peripheral was not asked to prefetch %s (%s); "
                "it is fetched at the volume's first start\n", r->image,
                why[0] ? why : ppf_status_text(cmd.status));
    ctl_disconnect(c);
    return ok;
}

/* ---- vol-create ------------------------------------------------------- */

static int
vol_create(struct ctl *c, const struct pool_opts *o)
{
    char rec[PATH_MAX], dir[PATH_MAX], text[PPF_VOLREC_MAX], err[VOL_ERR_MAX];
    CLEANUP_CONN virConnectPtr conn = NULL;
    CLEANUP_POOL virStoragePoolPtr pool = NULL;
    struct ppf_pool_conf conf;
    struct ppf_volrec r = { .mode = o->mode };
    struct stat st;
    const char *why;
    int k, fd, len, hinted;

    if ((k = vol_check("vol-create", o, &conf)) != 0)
        return k;
    if (!o->image)
        return usage_error("vol-create needs --image IMAGE (the image the disk is made "
                           "from)");
    if (!ppf_name_ok(o->image))
        return usage_error("--image '%s' is not an image name (1 to %d of A-Z a-z 0-9 . _ -, "
                           "not starting with '.')", o->image, PPF_VOLREC_NAME_MAX);
    if (o->tenant && !ppf_name_ok(o->tenant))
        return usage_error("--tenant '%s' is not a tenant name", o->tenant);
    if (!(conn = pool_connect(o)))
        return 1;
    if (!(pool = pool_lookup(conn, &conf, &why))) {
        pool_report_lookup(&conf, why);
        return 1;
    }
    pool_libvirt_target(pool, &conf);
    snprintf(r.image, sizeof r.image, "%s", o->image);
    snprintf(r.tenant, sizeof r.tenant, "%s", o->tenant ? o->tenant : conf.tenant);
    if (snprintf(r.target, sizeof r.target, "%s/%s", conf.target, o->arg2) >=
        (int)sizeof r.target ||
        ppf_volrec_dir(o->pool_dir, conf.name, dir, sizeof dir) < 0 ||
        ppf_volrec_path(o->pool_dir, conf.name, o->arg2, rec, sizeof rec) < 0 ||
        (len = ppf_volrec_format(&r, text, sizeof text)) < 0) {
        fprintf(stderr, "ppfctl: vol-create: the path of volume %s is too long; choose a "
                "shorter name\n", o->arg2);
        return 1;
    }
    if (lstat(rec, &st) == 0) {
        fprintf(stderr, "ppfctl: pool %s has a volume %s already (%s); ppfctl vol-delete %s "
                "%s first, or choose another name; nothing was changed\n", conf.name, o->arg2,
                rec, conf.name, o->arg2);
        return 1;
    }
    if (pool_mkdirs(dir) < 0) {
        fprintf(stderr, "ppfctl: cannot create %s: %s; nothing was changed\n", dir,
                strerror(errno));
        return 1;
    }
    /* the placeholder claims the name: O_EXCL, so an existing disk is never touched */
    if ((fd = open(r.target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        if (errno == EEXIST)
            fprintf(stderr, "ppfctl: %s exists already; a volume is only made where there is "
                    "no file (choose another name, or remove the file); nothing was "
                    "changed\n", r.target);
        else
            fprintf(stderr, "ppfctl: cannot create the volume's placeholder %s: %s; nothing "
                    "was changed\n", r.target, strerror(errno));
        return 1;
    }
    close(fd);
    if (ppf_pool_write_file(rec, text, (size_t)len, err, sizeof err) < 0) {
        unlink(r.target);
        fprintf(stderr, "ppfctl: %s; nothing was changed\n", err);
        return 1;
    }
    vol_refresh(o, &conf, pool);
    hinted = vol_hint(c, &r);
    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_str(&j, "volume", o->arg2);
        ppf_json_str(&j, "image", r.image);
        ppf_json_str(&j, "tenant", r.tenant);
        ppf_json_str(&j, "mode", r.mode == PPF_VOLREC_COPY ? "copy" : "overlay");
        ppf_json_str(&j, "target", r.target);
        ppf_json_str(&j, "record", rec);
        ppf_json_bool(&j, "prefetch_hint", hinted);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        printf("Volume %s created in pool %s: image %s, tenant %s, %s; the disk is deployed "
               "at the first start of a domain with\n"
               "  <disk type='volume' device='disk'><driver name='qemu' type='%s'/>"
               "<source pool='%s' volume='%s'/>...\n", o->arg2, conf.name, r.image, r.tenant,
               r.mode == PPF_VOLREC_COPY ? "copy" : "qcow2 overlay",
               r.mode == PPF_VOLREC_COPY ? "raw" : "qcow2", conf.name, o->arg2);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- vol-delete ------------------------------------------------------- */

static int
vol_delete(struct ctl *c, const struct pool_opts *o)
{
    char rec[PATH_MAX], dir[PATH_MAX], err[VOL_ERR_MAX];
    struct ppf_pool_conf conf;
    struct ppf_volrec r;
    const char *disk = "unknown";
    int k, removed = 0;

    if ((k = vol_check("vol-delete", o, &conf)) != 0)
        return k;
    if (ppf_volrec_path(o->pool_dir, conf.name, o->arg2, rec, sizeof rec) < 0 ||
        ppf_volrec_dir(o->pool_dir, conf.name, dir, sizeof dir) < 0) {
        fprintf(stderr, "ppfctl: vol-delete: --pool-dir is too long\n");
        return 1;
    }
    if ((k = ppf_volrec_load(rec, &r, err, sizeof err)) == 0) {
        fprintf(stderr, "ppfctl: pool %s has no volume %s (ppfctl vol-list %s shows them)\n",
                conf.name, o->arg2, conf.name);
        return 1;
    }
    if (k < 0) {
        /* a broken record can still go; its disk cannot be known */
        fprintf(stderr, "ppfctl: warning: %s; removing the record, no disk\n", err);
        r.target[0] = '\0';
    } else {
        disk = vol_disk_state(r.target);
        if (!o->keep_disk && (!strcmp(disk, "placeholder") || !strcmp(disk, "deployed"))) {
            if (unlink(r.target) < 0) {
                fprintf(stderr, "ppfctl: cannot remove the disk %s: %s; nothing was "
                        "removed\n", r.target, strerror(errno));
                return 1;
            }
            removed = 1;
        }
    }
    if (unlink(rec) < 0) {
        fprintf(stderr, "ppfctl: cannot remove %s: %s\n", rec, strerror(errno));
        return 1;
    }
    rmdir(dir);                 /* only if that was the last one */
    if (removed)
        vol_refresh(o, &conf, NULL);
    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_str(&j, "volume", o->arg2);
        ppf_json_bool(&j, "record_removed", 1);
        ppf_json_str(&j, "target", r.target);
        ppf_json_str(&j, "disk", disk);
        ppf_json_bool(&j, "disk_removed", removed);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else if (removed) {
        printf("Volume %s deleted from pool %s: record removed, %s %s removed\n", o->arg2,
               conf.name, !strcmp(disk, "placeholder") ? "placeholder" : "disk", r.target);
    } else {
        printf("Volume %s deleted from pool %s: record removed; disk %s %s\n", o->arg2,
               conf.name, r.target[0] ? r.target : "(unknown)",
               o->keep_disk && strcmp(disk, "missing") ? "kept (--keep-disk)" :
               !strcmp(disk, "missing") ? "was not there" : "left alone (not a regular file)");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- vol-list ----------------------------------------------------------- */

struct vol_row {
    char name[PPF_VOLREC_NAME_MAX + 1];
    struct ppf_volrec r;
    const char *disk;           /* vol_disk_state, or "broken" (a bad record) */
};

static int
vol_filter(const struct dirent *de)
{
    return ppf_volrec_name_ok(de->d_name);
}

/* The records of pool name: *rows (caller frees) and *n.  0, or -1 with
 * errno (ENOENT: no volumes yet).  Bad records are reported and listed as
 * "broken" (*bad set). */
static int
vol_read_all(const char *dir, struct vol_row **rows, size_t *n, int *bad)
{
    struct dirent **names = NULL;
    char path[PATH_MAX], err[VOL_ERR_MAX];
    int k = scandir(dir, &names, vol_filter, alphasort);

    *rows = NULL;
    *n = 0;
    if (k < 0)
        return -1;
    if (k > 0 && !(*rows = calloc((size_t)k, sizeof **rows))) {
        for (int i = 0; i < k; i++)
            free(names[i]);
        free(names);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < k; i++) {
        struct vol_row *w = &(*rows)[*n];

        snprintf(w->name, sizeof w->name, "%s", names[i]->d_name);
        free(names[i]);
        if (snprintf(path, sizeof path, "%s/%s", dir, w->name) >= (int)sizeof path)
            continue;
        switch (ppf_volrec_load(path, &w->r, err, sizeof err)) {
        case 0:
            continue;           /* gone meanwhile */
        case 1:
            w->disk = vol_disk_state(w->r.target);
            break;
        default:
            fprintf(stderr, "ppfctl: %s\n", err);
            w->disk = "broken";
            *bad = 1;
        }
        (*n)++;
    }
    free(names);
    return 0;
}

static int
vol_list(struct ctl *c, const struct pool_opts *o)
{
    char dir[PATH_MAX];
    struct ppf_pool_conf conf;
    struct vol_row *rows = NULL;
    size_t n = 0;
    int k, bad = 0;

    if ((k = vol_check("vol-list", o, &conf)) != 0)
        return k;
    if (ppf_volrec_dir(o->pool_dir, conf.name, dir, sizeof dir) < 0) {
        fprintf(stderr, "ppfctl: vol-list: --pool-dir is too long\n");
        return 1;
    }
    if (vol_read_all(dir, &rows, &n, &bad) < 0 && errno != ENOENT) {
        fprintf(stderr, "ppfctl: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_begin_array(&j, "volumes");
        for (size_t i = 0; i < n; i++) {
            const struct vol_row *w = &rows[i];

            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "name", w->name);
            ppf_json_str(&j, "image", w->r.image);
            ppf_json_str(&j, "tenant", w->r.tenant);
            ppf_json_str(&j, "mode", w->r.mode < 0 ? "policy" :
                         w->r.mode == PPF_VOLREC_COPY ? "copy" : "overlay");
            ppf_json_str(&j, "target", w->r.target);
            ppf_json_str(&j, "disk", w->disk);
            ppf_json_end_object(&j);
        }
        ppf_json_end_array(&j);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else if (n == 0 && !bad) {
        printf("pool %s has no volumes (ppfctl vol-create %s NAME --image IMAGE makes one)\n",
               conf.name, conf.name);
    } else {
        int wn = 6, wi = 5, wt = 6;

        for (size_t i = 0; i < n; i++) {
            int a = (int)strlen(rows[i].name), b = (int)strlen(rows[i].r.image),
                d = (int)strlen(rows[i].r.tenant);

            wn = a > wn ? a : wn;
            wi = b > wi ? b : wi;
            wt = d > wt ? d : wt;
        }
        printf("%-*s  %-*s  %-*s  %-7s  %-11s  %s\n", wn, "VOLUME", wi, "IMAGE", wt, "TENANT",
               "MODE", "DISK", "TARGET");
        for (size_t i = 0; i < n; i++) {
            const struct vol_row *w = &rows[i];

            printf("%-*s  %-*s  %-*s  %-7s  %-11s  %s\n", wn, w->name, wi, w->r.image, wt,
                   w->r.tenant, w->r.mode < 0 ? "policy" :
                   w->r.mode == PPF_VOLREC_COPY ? "copy" : "overlay", w->disk, w->r.target);
        }
    }
    free(rows);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the volume list: %s\n", strerror(errno));
        return 1;
    }
    return bad;
}

/* ---- pool-undefine's part ------------------------------------------------ */

int
vol_forget_all(const struct pool_opts *o, const char *name, unsigned *n)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct dirent *de;
    DIR *d;

    *n = 0;
    if (ppf_volrec_dir(o->pool_dir, name, dir, sizeof dir) < 0)
        return 0;               /* cannot exist */
    if (!(d = opendir(dir))) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "ppfctl: %s: %s; remove it by hand\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < (int)sizeof path &&
            unlink(path) == 0)
            (*n)++;
    }
    closedir(d);
    if (rmdir(dir) < 0) {
        fprintf(stderr, "ppfctl: cannot remove %s: %s; remove it by hand, or the hook still "
                "takes its volumes for ppf's\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- dispatch ----------------------------------------------------------- */

int
cmd_vol(struct ctl *c, int argc, char **argv)
{
    static const struct pool_cmd cmds[] = {
        { "vol-create", "cPITM", 2, vol_create },
        { "vol-delete", "cPD", 2, vol_delete },
        { "vol-list", "cP", 1, vol_list },
    };

    return pool_dispatch(c, argc, argv, cmds, sizeof cmds / sizeof *cmds, "volume");
}

/* ppf pools on the libvirt side (see pools.h): the buffer's prepared
 * images as volumes of ppf's dir pools.  A volume is a symbolic link
 * IMAGE.raw -> BUFFER/entries/OWNER/IMAGE@DIGEST.raw: libvirt's dir backend
 * follows links when it refreshes a pool (checked with libvirt 9.0), so the
 * volume shows the prepared file's size and format, and vol-delete removes
 * only the link.  Links are made and removed relative to a descriptor of
 * the pool's directory, never following a link, so nothing outside the
 * directory is touched, and a name held by any file ppf did not make is
 * left alone.  BUFFER_LIST answers are untrusted: every name is checked
 * before it becomes part of a path.
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

#include <libvirt/virterror.h>

#include "plugin/policy-send.h"
#include "plugin/pools.h"
#include "policy/policy.h"
#include "ppf/protocol.h"

#define POOLS_LINK_SUFFIX   ".raw"
#define POOLS_PUBLIC_OWNER  "@public"       /* the buffer's directory of public entries */
#define POOLS_TMP_PREFIX    ".ppf-link."    /* never an image name: those never start with '.' */
#define POOLS_LIST_MAX      1000000         /* entries accepted from BUFFER_LIST */

/* ---- the buffer --------------------------------------------------------- */

void
ppf_pools_buffer_clear(struct ppf_pools_buffer *b)
{
    if (!b)
        return;
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* One BUFFER_LIST group as sent. */
struct pools_group {
    struct ppf_pools_entry e;
    uint32_t state;
    int have_state;
};

/* 1 if file is the name of image's prepared file: IMAGE.raw, or
 * IMAGE@HEX.raw with 1 to 64 hex digits. */
static int
pools_file_ok(const char *image, const char *file)
{
    size_t il = strlen(image), fl = strlen(file), sl = sizeof POOLS_LINK_SUFFIX - 1;
    size_t hex;

    if (fl < il + sl || strncmp(file, image, il) != 0 ||
        strcmp(file + fl - sl, POOLS_LINK_SUFFIX) != 0)
        return 0;
    if (fl == il + sl)
        return 1;
    if (file[il] != '@')
        return 0;
    hex = fl - sl - il - 1;
    return hex >= 1 && hex <= 64 && strspn(file + il + 1, "0123456789abcdef") == hex;
}

/* Keeps g if it is READY.  0, -1 malformed (reported), -2 no memory. */
static int
pools_keep(struct ppf_pools_buffer *b, struct pools_group *g, char *err, size_t errlen)
{
    if (!g->e.pub && !g->e.tenant[0])
        snprintf(g->e.tenant, sizeof g->e.tenant, "%s", PPF_POOL_DEFAULT_TENANT);
    if (!ppf_name_ok(g->e.image) || !g->have_state ||
        (!g->e.pub && !ppf_name_ok(g->e.tenant))) {
        snprintf(err, errlen, "the peripheral's BUFFER_LIST answer holds a malformed entry "
                 "(image or tenant name, or no state); restart ppf-peripheral");
        return -1;
    }
    if (g->state != PPF_ENTRY_READY)
        return 0;
    if (!pools_file_ok(g->e.image, g->e.file))
        snprintf(g->e.file, sizeof g->e.file, "%s" POOLS_LINK_SUFFIX, g->e.image);
    if (g->e.pub)
        g->e.tenant[0] = '\0';
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 32;
        struct ppf_pools_entry *v;

        if (b->n >= POOLS_LIST_MAX || !(v = realloc(b->v, ncap * sizeof *v))) {
            snprintf(err, errlen, "cannot hold more than %zu buffer entries", b->n);
            return -2;
        }
        b->v = v;
        b->cap = ncap;
    }
    b->v[b->n++] = g->e;
    return 0;
}

/* Appends the READY entries of one answer to b; returns the number of
 * groups seen, or -1 (err set). */
static long
pools_decode(const uint8_t *buf, uint32_t len, struct ppf_pools_buffer *b, char *err,
             size_t errlen)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct pools_group g;
    long groups = 0;
    int k = 0, bad = 0, open = 0;

    memset(&g, 0, sizeof g);
    ppf_attr_reader_init(&r, buf, len);
    while (!bad && (k = ppf_attr_next(&r, &a)) > 0) {
        if (a.type == PPF_A_IMAGE) {
            if (open && pools_keep(b, &g, err, errlen) < 0)
                return -1;
            memset(&g, 0, sizeof g);
            open = 1;
            groups++;
            bad = ppf_attr_get_str(&a, g.e.image, sizeof g.e.image) < 0;
            continue;
        }
        if (!open)
            bad = 1;            /* every group starts with IMAGE */
        else if (a.type == PPF_A_TENANT)
            bad = ppf_attr_get_str(&a, g.e.tenant, sizeof g.e.tenant) < 0;
        else if (a.type == PPF_A_PUBLIC) {
            uint32_t v;

            bad = ppf_attr_get_u32(&a, &v) < 0 || v > 1;
            g.e.pub = v == 1;
        } else if (a.type == PPF_A_SIZE)
            bad = ppf_attr_get_u64(&a, &g.e.size) < 0;
        else if (a.type == PPF_A_STATE) {
            bad = ppf_attr_get_u32(&a, &g.state) < 0;
            g.have_state = 1;
        } else if (a.type == PPF_A_PATH) {
            char path[PPF_POOL_PATH_MAX + 1];
            const char *base;

            /* only its last component is used, and checked in pools_keep */
            bad = ppf_attr_get_str(&a, path, sizeof path) < 0;
            base = strrchr(path, '/');
            if (!bad && base && strlen(base + 1) < sizeof g.e.file)
                snprintf(g.e.file, sizeof g.e.file, "%s", base + 1);
        }
        /* others (PINS, HITS, DONE, DIGEST, unknown): not needed */
    }
    if (bad || k < 0) {
        snprintf(err, errlen, "the peripheral's BUFFER_LIST answer is malformed; restart "
                 "ppf-peripheral or update it to match ppfctl");
        return -1;
    }
    if (open && pools_keep(b, &g, err, errlen) < 0)
        return -1;
    return groups;
}

static int
pools_list(struct ppf_dev *dev, int timeout_ms, struct ppf_pools_buffer *b, char *err,
           size_t errlen)
{
    struct ppf_dev_info info;
    struct ppf_qp *qp = NULL;
    uint8_t *out;
    uint64_t idx = 0;
    int rc = -1;

    ppf_dev_get_info(dev, &info);
    if (!(out = malloc(info.slot_size ? info.slot_size : 1))) {
        snprintf(err, errlen, "out of memory for a %u-byte answer", info.slot_size);
        return -1;
    }
    if (ppf_qp_claim(dev, PPF_QP_IO, timeout_ms, &qp) < 0) {
        snprintf(err, errlen, "%s", ppf_error());
        free(out);
        return -1;
    }
    for (;;) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_BUFFER_LIST, .arg = { idx },
                               .out = out, .out_cap = info.slot_size };
        long groups;

        if (ppf_exec(qp, &cmd, timeout_ms) < 0) {
            snprintf(err, errlen, "BUFFER_LIST: %s", ppf_error());
            break;
        }
        if (cmd.status != PPF_SC_SUCCESS) {
            snprintf(err, errlen, "BUFFER_LIST failed: %s", ppf_status_text(cmd.status));
            break;
        }
        if ((groups = pools_decode(out, cmd.out_len, b, err, errlen)) < 0)
            break;
        idx += (uint64_t)groups;
        if (idx >= cmd.result) {
            rc = 0;
            break;
        }
        if (groups == 0) {
            snprintf(err, errlen, "the peripheral listed no entries from index %llu although "
                     "it holds %u; restart ppf-peripheral", (unsigned long long)idx,
                     cmd.result);
            break;
        }
    }
    ppf_qp_release(qp);
    free(out);
    return rc;
}

int
ppf_pools_buffer_fetch(struct ppf_dev *dev, int timeout_ms, struct ppf_pools_buffer *b,
                       char *err, size_t errlen)
{
    struct ppf_policy *p = NULL;
    uint32_t gen;
    size_t l;

    memset(b, 0, sizeof *b);
    if (ppf_policy_fetch(dev, timeout_ms, &p, &gen, err, errlen) < 0)
        return -1;
    l = p->buffer.path ? strlen(p->buffer.path) : 0;
    while (l > 1 && p->buffer.path[l - 1] == '/')
        l--;
    if (l == 0 || l >= sizeof b->root || p->buffer.path[0] != '/') {
        snprintf(err, errlen, "the policy in force has no usable buffer.path");
        ppf_policy_free(p);
        return -1;
    }
    memcpy(b->root, p->buffer.path, l);
    b->root[l] = '\0';
    ppf_policy_free(p);
    if (pools_list(dev, timeout_ms, b, err, errlen) < 0) {
        ppf_pools_buffer_clear(b);
        return -1;
    }
    return 0;
}

/* ---- links -------------------------------------------------------------- */

/* 1 if name is IMAGE.raw with IMAGE a valid image name. */
static int
pools_link_name_ok(const char *name)
{
    size_t n = strlen(name), s = strlen(POOLS_LINK_SUFFIX);
    char image[PPF_POOL_NAME_MAX + 1];

    if (n <= s || n - s > PPF_POOL_NAME_MAX || strcmp(name + n - s, POOLS_LINK_SUFFIX) != 0)
        return 0;
    memcpy(image, name, n - s);
    image[n - s] = '\0';
    return ppf_name_ok(image);
}

int
ppf_pools_link_is_ours(const char *name, const char *target)
{
    const char *base, *owner, *entries;
    size_t ol;
    char o[PPF_POOL_NAME_MAX + 2];

    if (!pools_link_name_ok(name) || target[0] != '/' ||
        !(base = strrchr(target, '/')) || base == target)
        return 0;
    {
        char image[PPF_POOL_NAME_MAX + 1];
        size_t n = strlen(name) - (sizeof POOLS_LINK_SUFFIX - 1);

        memcpy(image, name, n);
        image[n] = '\0';
        if (!pools_file_ok(image, base + 1))
            return 0;
    }
    for (owner = base - 1; owner > target && *owner != '/'; owner--)
        ;
    ol = (size_t)(base - owner - 1);
    if (ol == 0 || ol >= sizeof o)
        return 0;
    memcpy(o, owner + 1, ol);
    o[ol] = '\0';
    if (strcmp(o, POOLS_PUBLIC_OWNER) != 0 && !ppf_name_ok(o))
        return 0;
    if (owner == target)
        return 0;
    for (entries = owner - 1; entries > target && *entries != '/'; entries--)
        ;
    return (size_t)(owner - entries) == sizeof "/entries" - 1 &&
           strncmp(entries, "/entries/", sizeof "/entries/" - 1) == 0;
}

/* The link target of e in buffer root; -1 if it does not fit. */
static int
pools_target(const char *root, const struct ppf_pools_entry *e, char *buf, size_t len)
{
    int k = e->file[0] ?
            snprintf(buf, len, "%s/entries/%s/%s", root,
                     e->pub ? POOLS_PUBLIC_OWNER : e->tenant, e->file) :
            snprintf(buf, len, "%s/entries/%s/%s" POOLS_LINK_SUFFIX, root,
                     e->pub ? POOLS_PUBLIC_OWNER : e->tenant, e->image);

    return k < 0 || (size_t)k >= len ? -1 : 0;
}

/* readlinkat into buf; 0 or -1. */
static int
pools_readlink(int dfd, const char *name, char *buf, size_t len)
{
    ssize_t k = readlinkat(dfd, name, buf, len - 1);

    if (k < 0 || (size_t)k >= len - 1)
        return -1;
    buf[k] = '\0';
    return 0;
}

/* 1 if the pool shows entry i of b: the pool's tenant's or a public one,
 * the tenant's own winning over the public one of the same image. */
static int
pools_wanted(const struct ppf_pools_buffer *b, const struct ppf_pool_conf *conf, size_t i)
{
    const struct ppf_pools_entry *e = &b->v[i];

    if (!e->pub && strcmp(e->tenant, conf->tenant) != 0)
        return 0;
    for (size_t j = 0; j < b->n; j++) {
        const struct ppf_pools_entry *o = &b->v[j];

        if (j == i || strcmp(o->image, e->image) != 0)
            continue;
        if (e->pub && !o->pub && strcmp(o->tenant, conf->tenant) == 0)
            return 0;           /* the tenant's own wins */
        if (o->pub == e->pub && strcmp(o->tenant, e->tenant) == 0 && j < i)
            return 0;           /* listed twice (the list is not a snapshot) */
    }
    return 1;
}

/* Points name at target: a new link, or an existing ppf link re-pointed
 * through a temporary link and rename.  1 changed, 0 already right,
 * 2 the name is held by something ppf did not make, -1 error (err). */
static int
pools_link(int dfd, const char *dir, const char *name, const char *target, char *err,
           size_t errlen)
{
    char cur[PATH_MAX], tmp[NAME_MAX + 1];
    struct stat st;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
            return -1;
        }
        if (symlinkat(target, dfd, name) == 0)
            return 1;
        if (errno == EEXIST)
            return 2;           /* someone made it just now: theirs */
        snprintf(err, errlen, "%s/%s: cannot make the link: %s", dir, name, strerror(errno));
        return -1;
    }
    if (!S_ISLNK(st.st_mode) || pools_readlink(dfd, name, cur, sizeof cur) < 0 ||
        !ppf_pools_link_is_ours(name, cur))
        return 2;
    if (strcmp(cur, target) == 0)
        return 0;
    snprintf(tmp, sizeof tmp, POOLS_TMP_PREFIX "%ld", (long)getpid());
    unlinkat(dfd, tmp, 0);
    if (symlinkat(target, dfd, tmp) < 0 || renameat(dfd, tmp, dfd, name) < 0) {
        snprintf(err, errlen, "%s/%s: cannot re-point the link: %s", dir, name,
                 strerror(errno));
        unlinkat(dfd, tmp, 0);
        return -1;
    }
    return 1;
}

/* 1 if name (IMAGE.raw) is among the links wanted[0..n). */
static int
pools_in(char *const *wanted, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(wanted[i], name) == 0)
            return 1;
    return 0;
}

int
ppf_pools_sync_dir(const struct ppf_pools_buffer *b, const struct ppf_pool_conf *conf,
                   const char *dir, struct ppf_pools_result *res, char *err, size_t errlen)
{
    char **wanted = NULL;
    size_t nwanted = 0;
    DIR *d = NULL;
    struct dirent *de;
    int dfd, rc = -1;

    memset(res, 0, sizeof *res);
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s: %s; the pool's directory must exist (virsh pool-build %s)",
                 dir, strerror(errno), conf->name);
        return -1;
    }
    if (b && b->n && conf->volumes == PPF_POOL_VOLUMES_PREPARED &&
        !(wanted = calloc(b->n, sizeof *wanted))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; wanted && i < b->n; i++) {
        char target[PATH_MAX], name[NAME_MAX + 1];
        struct stat st;
        int k;

        if (!pools_wanted(b, conf, i) || pools_target(b->root, &b->v[i], target,
                                                      sizeof target) < 0 ||
            snprintf(name, sizeof name, "%s" POOLS_LINK_SUFFIX, b->v[i].image) >=
                (int)sizeof name)
            continue;
        /* only a prepared file that is there, and a regular file */
        if (lstat(target, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if ((k = pools_link(dfd, dir, name, target, err, errlen)) < 0)
            goto out;
        if (k == 2) {
            res->conflicts++;
            continue;
        }
        res->added += (unsigned)k;
        res->volumes++;
        if (!(wanted[nwanted++] = strdup(name))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }

    /* remove the links ppf made whose entry is gone; nothing else */
    {
        int dfd2 = dup(dfd);

        if (dfd2 < 0 || !(d = fdopendir(dfd2))) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno));
            if (dfd2 >= 0)
                close(dfd2);
            goto out;
        }
    }
    while ((errno = 0, de = readdir(d))) {
        char cur[PATH_MAX];

        if (strncmp(de->d_name, POOLS_TMP_PREFIX, sizeof POOLS_TMP_PREFIX - 1) == 0) {
            struct stat st;

            /* a temporary link left by a killed sync */
            if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                unlinkat(dfd, de->d_name, 0);
            continue;
        }
        if ((de->d_type != DT_LNK && de->d_type != DT_UNKNOWN) ||
            pools_in(wanted, nwanted, de->d_name) ||
            pools_readlink(dfd, de->d_name, cur, sizeof cur) < 0 ||
            !ppf_pools_link_is_ours(de->d_name, cur))
            continue;
        if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s/%s: cannot remove the link: %s", dir, de->d_name,
                     strerror(errno));
            goto out;
        }
        res->removed++;
    }
    if (errno) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    for (size_t i = 0; i < nwanted; i++)
        free(wanted[i]);
    free(wanted);
    close(dfd);
    return rc;
}

/* ---- libvirt ------------------------------------------------------------ */

static const char *
pools_virt_error(void)
{
    const char *m = virGetLastErrorMessage();

    return m ? m : "unknown libvirt error";
}

int
ppf_pools_sync(virConnectPtr conn, const struct ppf_pools_buffer *b,
               const struct ppf_pool_conf *conf, unsigned flags, struct ppf_pools_result *res,
               char *err, size_t errlen)
{
    struct ppf_pool_conf lv;
    char uuid[VIR_UUID_STRING_BUFLEN], type[32], xerr[512];
    virStoragePoolPtr pool;
    char *xml = NULL;
    int active, rc = -1;

    memset(res, 0, sizeof *res);
    if (!(pool = virStoragePoolLookupByName(conn, conf->name))) {
        snprintf(err, errlen, "libvirt has no pool %s (%s); define it again with ppfctl "
                 "pool-define, or forget it with ppfctl pool-undefine %s", conf->name,
                 pools_virt_error(), conf->name);
        return -1;
    }
    if (virStoragePoolGetUUIDString(pool, uuid) < 0) {
        snprintf(err, errlen, "%s: %s", conf->name, pools_virt_error());
        goto out;
    }
    if (conf->uuid[0] && strcmp(uuid, conf->uuid) != 0) {
        snprintf(err, errlen, "libvirt's pool %s (uuid %s) is not the one ppf defined (uuid "
                 "%s); run ppfctl pool-undefine %s, then pool-define it again", conf->name,
                 uuid, conf->uuid, conf->name);
        goto out;
    }
    if ((active = virStoragePoolIsActive(pool)) < 0) {
        snprintf(err, errlen, "%s: %s", conf->name, pools_virt_error());
        goto out;
    }
    if (!active) {
        res->inactive = 1;
        rc = 0;
        goto out;
    }
    memset(&lv, 0, sizeof lv);
    if (!(xml = virStoragePoolGetXMLDesc(pool, 0))) {
        snprintf(err, errlen, "%s: %s", conf->name, pools_virt_error());
        goto out;
    }
    if (ppf_pool_xml_libvirt_facts(xml, &lv, type, sizeof type, xerr, sizeof xerr) < 0) {
        snprintf(err, errlen, "%s: %s", conf->name, xerr);
        goto out;
    }
    if (strcmp(type, "dir") != 0) {
        snprintf(err, errlen, "libvirt's pool %s is of type %s now, not dir; ppfctl "
                 "pool-undefine %s, then define it again", conf->name, type, conf->name);
        goto out;
    }
    if (ppf_pools_sync_dir(b, conf, lv.target, res, err, errlen) < 0)
        goto out;
    if (res->added || res->removed || (flags & PPF_POOLS_REFRESH_ALWAYS)) {
        if (virStoragePoolRefresh(pool, 0) < 0) {
            snprintf(err, errlen, "%s: refresh: %s", conf->name, pools_virt_error());
            goto out;
        }
        res->refreshed = 1;
    }
    rc = 0;
out:
    free(xml);
    virStoragePoolFree(pool);
    return rc;
}

/* Appends "what" to err, "; "-separated, bounded. */
static void
pools_append(char *err, size_t errlen, const char *name, const char *what)
{
    size_t used = strlen(err);

    if (used + 1 >= errlen)
        return;
    snprintf(err + used, errlen - used, "%s%s: %s", used ? "; " : "", name, what);
}

static int
pools_is_state_name(const char *n)
{
    size_t l = strlen(n);
    char name[PPF_POOL_NAME_MAX + 1];

    if (l <= 4 || l - 4 > PPF_POOL_NAME_MAX || strcmp(n + l - 4, ".xml") != 0)
        return 0;
    memcpy(name, n, l - 4);
    name[l - 4] = '\0';
    return ppf_name_ok(name);
}

int
ppf_pools_refresh_all(virConnectPtr conn, struct ppf_dev *dev, const char *pool_dir,
                      int timeout_ms, char *err, size_t errlen)
{
    struct ppf_pools_buffer b;
    DIR *d;
    struct dirent *de;
    char perr[1024];
    int synced = 0, failed = 0;

    if (errlen)
        err[0] = '\0';
    if (!(d = opendir(pool_dir))) {
        if (errno == ENOENT)
            return 0;           /* no ppf pool defined yet */
        snprintf(err, errlen, "%s: %s", pool_dir, strerror(errno));
        return -1;
    }
    if (ppf_pools_buffer_fetch(dev, timeout_ms, &b, err, errlen) < 0) {
        closedir(d);
        return -1;
    }
    while ((de = readdir(d))) {
        struct ppf_pool_conf conf;
        struct ppf_pools_result res;
        char path[PATH_MAX], *buf = NULL;
        size_t len;

        if (!pools_is_state_name(de->d_name) ||
            snprintf(path, sizeof path, "%s/%s", pool_dir, de->d_name) >= (int)sizeof path)
            continue;
        if (ppf_pool_read_file(path, PPF_POOL_XML_MAX, &buf, &len, perr, sizeof perr) < 0 ||
            ppf_pool_state_parse(path, buf, len, &conf, perr, sizeof perr) < 0 ||
            ppf_pools_sync(conn, &b, &conf, 0, &res, perr, sizeof perr) < 0) {
            pools_append(err, errlen, de->d_name, perr);
            failed++;
        } else {
            synced++;
        }
        free(buf);
    }
    closedir(d);
    ppf_pools_buffer_clear(&b);
    return failed ? -1 : synced;
}

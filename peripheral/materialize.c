/* Materializing a deployed disk (see materialize.h): safe resolution of a
 * deploy target to a parent directory fd and a name, a qcow2 overlay
 * written by hand in O(1), an independent reflink or sparse copy, and a
 * hardened reader of a qcow2's backing file name.  Everything lands in a
 * temporary file beside the target and is renamed into place; nothing is
 * overwritten unless the caller asks for it.  The qcow2 layout follows
 * qemu's docs/interop/qcow2.txt (section numbers cited below).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#include "common/cleanup.h"
#include "peripheral/materialize.h"

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

/* qcow2.txt "Header": version 3, 64 KiB clusters, 16-bit refcounts. */
#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_VERSION 3
#define QCOW2_CLUSTER_BITS 16
#define QCOW2_CLUSTER ((uint64_t)1 << QCOW2_CLUSTER_BITS)
#define QCOW2_L2_ENTRIES (QCOW2_CLUSTER / 8)
#define QCOW2_L1_COVER (QCOW2_CLUSTER * QCOW2_L2_ENTRIES) /* 512 MiB per L1 entry */
#define QCOW2_MAX_L1_BYTES ((uint64_t)32 << 20)           /* qemu's QCOW_MAX_L1_SIZE */
#define QCOW2_REFCOUNT_ORDER 4                            /* 16-bit refcounts */
#define QCOW2_HEADER_LEN 112 /* v3 header incl. compression type + padding */
/* qcow2.txt "Header extensions": backing file format name, end marker. */
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_END 0u
/* Cluster layout of a new overlay: header, refcount table, refcount
 * block, then the L1 table (as qemu-img create lays it out). */
#define OV_REFTABLE_CLUSTER 1
#define OV_REFBLOCK_CLUSTER 2
#define OV_L1_CLUSTER 3
#define OV_MAX_CLUSTERS (OV_L1_CLUSTER + QCOW2_MAX_L1_BYTES / QCOW2_CLUSTER)

#define COPY_BUF (1u << 20)

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = saved;
}

/* The target's directory as text, for messages: "/a/b" for "/a/b/c". */
static int
dir_len(const struct ppf_target *t)
{
    const char *s = strrchr(t->path, '/');

    return s && s != t->path ? (int)(s - t->path) : 1;
}

static bool
is_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

void
ppf_target_close(struct ppf_target *t)
{
    if (!t)
        return;
    if (t->dirfd >= 0)
        close(t->dirfd);
    t->dirfd = -1;
}

int
ppf_target_exists(const struct ppf_target *t)
{
    struct stat st;

    if (!t || t->dirfd < 0) {
        errno = EBADF;
        return -1;
    }
    if (fstatat(t->dirfd, t->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 1;
    return errno == ENOENT ? 0 : -1;
}

/* Checks path's syntax: absolute, no empty, "." or ".." component, no
 * trailing '/', no control character, components ≤ 255 bytes. */
static int
check_syntax(const char *path, char *err, size_t errlen)
{
    const char *p, *e;
    size_t n;

    if (!path || path[0] != '/') {
        errno = EINVAL;
        set_err(err, errlen,
                "deploy target %s: not an absolute path; give the full path "
                "under one of the policy's deploy directories",
                path ? path : "(null)");
        return -1;
    }
    if (strlen(path) >= sizeof((struct ppf_target *)0)->path) {
        errno = ENAMETOOLONG;
        set_err(err, errlen,
                "deploy target %.64s...: path longer than 4095 bytes; "
                "choose a shorter path",
                path);
        return -1;
    }
    for (p = path; *p; p++) {
        if (is_ctrl((unsigned char)*p)) {
            errno = EINVAL;
            set_err(err, errlen,
                    "deploy target %.*s...: contains a control character; "
                    "choose a plain file name",
                    (int)(p - path), path);
            return -1;
        }
    }
    for (p = path + 1;; p = e + 1) {
        e = strchr(p, '/');
        n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0) {
            errno = EINVAL;
            set_err(err, errlen,
                    "deploy target %s: empty path component (\"//\" or a "
                    "trailing \"/\"); give a normalized path to a file",
                    path);
            return -1;
        }
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            errno = EINVAL;
            set_err(err, errlen,
                    "deploy target %s: \".\" and \"..\" components are refused; "
                    "give a normalized absolute path",
                    path);
            return -1;
        }
        if (n > NAME_MAX) {
            errno = ENAMETOOLONG;
            set_err(err, errlen,
                    "deploy target %s: a component is longer than %d bytes; "
                    "choose shorter names",
                    path, NAME_MAX);
            return -1;
        }
        if (!e)
            return 0;
    }
}

int
ppf_target_resolve(const char *path, const char *const *allowed, size_t n_allowed,
                   struct ppf_target *t, char *err, size_t errlen)
{
    char real[PATH_MAX], best[PATH_MAX];
    size_t best_len = 0, alen;
    bool found = false;
    CLEANUP_CLOSE int fd = -1;
    const char *p, *e;
    struct stat st;

    if (err && errlen)
        err[0] = '\0';
    if (!t) {
        errno = EINVAL;
        set_err(err, errlen, "deploy target: no target structure given");
        return -1;
    }
    t->dirfd = -1;
    t->name[0] = '\0';
    t->path[0] = '\0';
    if (check_syntax(path, err, errlen) == -1)
        return -1;
    p = strrchr(path, '/') + 1;
    if (strstr(p, PPF_MATERIALIZE_TMP_INFIX)) {
        errno = EINVAL;
        set_err(err, errlen,
                "deploy target %s: names containing \"" PPF_MATERIALIZE_TMP_INFIX
                "\" are reserved for ppf's temporary files; choose another name",
                path);
        return -1;
    }

    /* The longest allowed directory (after realpath) that path lies
     * strictly under. */
    for (size_t i = 0; i < n_allowed; i++) {
        if (!allowed || !allowed[i] || allowed[i][0] != '/' || !realpath(allowed[i], real))
            continue;
        alen = strcmp(real, "/") == 0 ? 0 : strlen(real);
        if (strncmp(path, real, alen) != 0 || path[alen] != '/')
            continue;
        if (!found || alen > best_len) {
            memcpy(best, real, alen + 1);
            best_len = alen;
            found = true;
        }
    }
    if (!found) {
        errno = EACCES;
        set_err(err, errlen,
                "deploy target %s: not under any allowed deploy directory; "
                "choose a path under one of them or add its directory to the policy",
                path);
        return -1;
    }

    fd = open(best_len ? best : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        set_err(err, errlen, "deploy directory %s: %s; check that it exists and is readable",
                best_len ? best : "/", strerror(errno));
        return -1;
    }

    /* Walk down to the parent, one real directory at a time. */
    for (p = path + best_len + 1; (e = strchr(p, '/')) != NULL; p = e + 1) {
        char comp[NAME_MAX + 1];
        int nfd;

        memcpy(comp, p, (size_t)(e - p));
        comp[e - p] = '\0';
        if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == -1) {
            if (errno == ENOENT)
                set_err(err, errlen,
                        "deploy target %s: directory %.*s does not exist; "
                        "create it first",
                        path, (int)(e - path), path);
            else
                set_err(err, errlen, "deploy target %s: %.*s: %s", path, (int)(e - path), path,
                        strerror(errno));
            return -1;
        }
        if (S_ISLNK(st.st_mode)) {
            errno = ELOOP;
            set_err(err, errlen,
                    "deploy target %s: %.*s is a symbolic link, and symlinks are "
                    "never followed in deploy targets; give the real path",
                    path, (int)(e - path), path);
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            set_err(err, errlen,
                    "deploy target %s: %.*s is not a directory; choose another "
                    "path",
                    path, (int)(e - path), path);
            return -1;
        }
        nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd == -1 || fstat(nfd, &st) == -1 || !S_ISDIR(st.st_mode)) {
            if (nfd >= 0) {
                close(nfd);
                errno = ENOTDIR;
            }
            set_err(err, errlen,
                    "deploy target %s: %.*s changed while it was opened (%s); "
                    "retry, and check who else writes there",
                    path, (int)(e - path), path, strerror(errno));
            return -1;
        }
        close(fd);
        fd = nfd;
    }

    /* p is the final name: it must not be a symlink. */
    if (fstatat(fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) {
            errno = ELOOP;
            set_err(err, errlen,
                    "deploy target %s: is a symbolic link, and symlinks are never "
                    "followed in deploy targets; remove it or give the real path",
                    path);
            return -1;
        }
    } else if (errno != ENOENT) {
        set_err(err, errlen, "deploy target %s: %s", path, strerror(errno));
        return -1;
    }

    snprintf(t->name, sizeof t->name, "%s", p);
    snprintf(t->path, sizeof t->path, "%s", path);
    t->dirfd = fd;
    fd = -1;
    return 0;
}

/* --- temporary file, fsync, rename ------------------------------------- */

/* Creates a new temporary file beside the target with exactly mode. */
static int
tmp_create(const struct ppf_target *t, mode_t mode, char *tmpname, size_t tmplen, char *err,
           size_t errlen)
{
    static unsigned counter;
    uint32_t r;
    int fd;

    for (int tries = 0; tries < 64; tries++) {
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
            struct timespec ts;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            r = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16) ^
                __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        }
        snprintf(tmpname, tmplen, ".%.200s" PPF_MATERIALIZE_TMP_INFIX "%08x", t->name, r);
        fd = openat(t->dirfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0) {
            if (fchmod(fd, mode) == -1) {
                set_err(err, errlen, "%.*s/%s: cannot set mode %04o: %s", dir_len(t), t->path,
                        tmpname, (unsigned)mode, strerror(errno));
                close(fd);
                unlinkat(t->dirfd, tmpname, 0);
                return -1;
            }
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    set_err(err, errlen,
            "deploy target %s: cannot create a temporary file in %.*s: %s; "
            "check the directory's permissions and free space",
            t->path, dir_len(t), t->path, strerror(errno));
    return -1;
}

static void report_exists(const struct ppf_target *t, char *err, size_t errlen);

/* 1 if an empty regular file at path-less dirfd/name is a placeholder. */
static int
is_placeholder(int dirfd, const char *name)
{
    struct stat st;

    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_size == 0;
}

int
ppf_target_blocks(const struct ppf_target *t, int replace)
{
    int r;

    if (replace == PPF_REPLACE_ALWAYS)
        return 0;
    r = ppf_target_exists(t);
    if (r != 1 || replace != PPF_REPLACE_PLACEHOLDER)
        return r;
    return is_placeholder(t->dirfd, t->name) ? 0 : 1;
}

/* Puts tmpname in place of a placeholder target: exchanges the two
 * atomically, then checks that what came out is still empty (nothing wrote
 * to it meanwhile) and removes it; if it is not, exchanges them back
 * (EEXIST).  A target that is absent by now is created with
 * RENAME_NOREPLACE.  0 or -1 (errno). */
static int
replace_placeholder(const struct ppf_target *t, const char *tmpname)
{
    if (renameat2(t->dirfd, tmpname, t->dirfd, t->name, RENAME_EXCHANGE) == -1) {
        if (errno == ENOENT)
            return renameat2(t->dirfd, tmpname, t->dirfd, t->name, RENAME_NOREPLACE);
        return -1;
    }
    if (is_placeholder(t->dirfd, tmpname)) {
        unlinkat(t->dirfd, tmpname, 0);
        return 0;
    }
    renameat2(t->dirfd, tmpname, t->dirfd, t->name, RENAME_EXCHANGE);
    errno = EEXIST;
    return -1;
}

/* The start of every materialization: refuses an existing target unless
 * replace, then creates the temporary file (mode 0: 0600). */
static int
tmp_begin(const struct ppf_target *t, int replace, mode_t mode, char *tmpname, size_t tmplen,
          char *err, size_t errlen)
{
    if (replace != PPF_REPLACE_ALWAYS) {
        int r = ppf_target_blocks(t, replace);

        if (r == 1) {
            report_exists(t, err, errlen);
            return -1;
        }
        if (r == -1) {
            set_err(err, errlen, "deploy target %s: %s", t->path, strerror(errno));
            return -1;
        }
    }
    if (mode == 0)
        mode = 0600;
    return tmp_create(t, mode & 07777, tmpname, tmplen, err, errlen);
}

static void
tmp_discard(const struct ppf_target *t, const char *tmpname)
{
    int saved = errno;

    unlinkat(t->dirfd, tmpname, 0);
    errno = saved;
}

static void
report_write_error(const struct ppf_target *t, const char *what, char *err, size_t errlen)
{
    if (errno == ENOSPC || errno == EDQUOT)
        set_err(err, errlen,
                "deploy target %s: disk full while writing the %s (%s); free "
                "space in %.*s, nothing was left behind",
                t->path, what, strerror(errno), dir_len(t), t->path);
    else
        set_err(err, errlen, "deploy target %s: writing the %s: %s; nothing was left behind",
                t->path, what, strerror(errno));
}

static void
report_exists(const struct ppf_target *t, char *err, size_t errlen)
{
    errno = EEXIST;
    set_err(err, errlen,
            "deploy target %s: already exists and is never overwritten (only an "
            "ephemeral domain's disk is replaced); remove it or choose another path",
            t->path);
}

/* fsyncs fd, renames tmpname onto the target (never over an existing
 * file unless replace) and fsyncs the directory.  On failure the target
 * is as it was and the caller removes tmpname. */
static int
tmp_commit(const struct ppf_target *t, int fd, const char *tmpname, int replace, char *err,
           size_t errlen)
{
    CLEANUP_CLOSE int dfd = -1;
    int r;

    if (fsync(fd) == -1) {
        report_write_error(t, "new disk (fsync)", err, errlen);
        return -1;
    }
    dfd = openat(t->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1) {
        set_err(err, errlen, "deploy target %s: opening its directory: %s", t->path,
                strerror(errno));
        return -1;
    }
    if (replace == PPF_REPLACE_ALWAYS) {
        r = renameat(t->dirfd, tmpname, t->dirfd, t->name);
    } else if (replace == PPF_REPLACE_PLACEHOLDER) {
        r = replace_placeholder(t, tmpname);
    } else {
        r = renameat2(t->dirfd, tmpname, t->dirfd, t->name, RENAME_NOREPLACE);
        if (r == -1 && (errno == EINVAL || errno == ENOSYS)) {
            /* No RENAME_NOREPLACE here: link(2) never overwrites either. */
            r = linkat(t->dirfd, tmpname, t->dirfd, t->name, 0);
            if (r == 0)
                unlinkat(t->dirfd, tmpname, 0);
        }
    }
    if (r == -1) {
        if (errno == EEXIST)
            report_exists(t, err, errlen);
        else
            set_err(err, errlen, "deploy target %s: renaming the new disk into place: %s", t->path,
                    strerror(errno));
        return -1;
    }
    if (fsync(dfd) == -1) {
        int saved = errno;

        if (replace != PPF_REPLACE_ALWAYS)
            unlinkat(t->dirfd, t->name, 0); /* ours: we made it (the placeholder is gone) */
        errno = saved;
        set_err(err, errlen, "deploy target %s: fsync of %.*s failed (%s)%s", t->path, dir_len(t),
                t->path, strerror(errno),
                replace == PPF_REPLACE_ALWAYS ?
                "; the new disk is in place but may not survive a crash" : "");
        return -1;
    }
    return 0;
}

static int
pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    ssize_t r;

    while (n > 0) {
        r = pwrite(fd, p, n, off);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* --- qcow2 overlay ------------------------------------------------------- */

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* Writes the overlay's metadata into fd (an empty file): the image is
 * (OV_L1_CLUSTER + l1_clusters) clusters long, all but a few hundred
 * bytes of it holes. */
static int
overlay_write(int fd, const char *base, size_t blen, uint64_t size)
{
    uint8_t hdr[QCOW2_HEADER_LEN + 24 + PPF_QCOW2_BACKING_MAX];
    uint8_t reftable[8];
    uint8_t refblock[OV_MAX_CLUSTERS * 2];
    uint64_t l1_size = (size + QCOW2_L1_COVER - 1) / QCOW2_L1_COVER;
    uint64_t l1_clusters = (l1_size * 8 + QCOW2_CLUSTER - 1) / QCOW2_CLUSTER;
    uint64_t n_clusters, off;

    if (l1_clusters == 0)
        l1_clusters = 1;
    n_clusters = OV_L1_CLUSTER + l1_clusters;

    /* qcow2.txt "Header" (bytes 0-103, v3) + compression type (104). */
    memset(hdr, 0, sizeof hdr);
    put32(hdr + 0, QCOW2_MAGIC);
    put32(hdr + 4, QCOW2_VERSION);
    /* backing_file_offset (8) and _size (16): after the extensions. */
    put32(hdr + 20, QCOW2_CLUSTER_BITS);
    put64(hdr + 24, size);
    put32(hdr + 32, 0); /* crypt_method: none */
    put32(hdr + 36, (uint32_t)l1_size);
    put64(hdr + 40, OV_L1_CLUSTER * QCOW2_CLUSTER);       /* l1_table_offset */
    put64(hdr + 48, OV_REFTABLE_CLUSTER * QCOW2_CLUSTER); /* refcount_table_offset */
    put32(hdr + 56, 1);                                   /* refcount_table_clusters */
    /* nb_snapshots, snapshots_offset, incompatible/compatible/autoclear
     * features: all 0 (60-95). */
    put32(hdr + 96, QCOW2_REFCOUNT_ORDER);
    put32(hdr + 100, QCOW2_HEADER_LEN);
    /* 104: compression type 0 (zlib), 105-111 padding. */
    off = QCOW2_HEADER_LEN;
    /* qcow2.txt "Header extensions": backing file format name "raw",
     * padded to 8 bytes, then the end marker. */
    put32(hdr + off, QCOW2_EXT_BACKING_FMT);
    put32(hdr + off + 4, 3);
    memcpy(hdr + off + 8, "raw", 3);
    off += 16;
    put32(hdr + off, QCOW2_EXT_END);
    put32(hdr + off + 4, 0);
    off += 8;
    /* The backing file name, not NUL-terminated. */
    put64(hdr + 8, off);
    put32(hdr + 16, (uint32_t)blen);
    memcpy(hdr + off, base, blen);
    off += blen;

    /* One refcount block covers 32768 clusters; entry 0 points at it. */
    put64(reftable, OV_REFBLOCK_CLUSTER * QCOW2_CLUSTER);
    for (uint64_t i = 0; i < n_clusters; i++)
        put16(refblock + 2 * i, 1);

    if (ftruncate(fd, (off_t)(n_clusters * QCOW2_CLUSTER)) == -1 ||
        pwrite_all(fd, hdr, (size_t)off, 0) == -1 ||
        pwrite_all(fd, reftable, sizeof reftable, (off_t)(OV_REFTABLE_CLUSTER * QCOW2_CLUSTER)) ==
            -1 ||
        pwrite_all(fd, refblock, (size_t)(2 * n_clusters),
                   (off_t)(OV_REFBLOCK_CLUSTER * QCOW2_CLUSTER)) == -1)
        return -1;
    return 0;
}

int
ppf_overlay_create(const struct ppf_target *t, const char *base_path, uint64_t size, int replace,
                   mode_t mode, char *err, size_t errlen)
{
    char tmpname[NAME_MAX + 1];
    CLEANUP_CLOSE int fd = -1;
    struct stat st;
    size_t blen;

    if (err && errlen)
        err[0] = '\0';
    if (!t || t->dirfd < 0) {
        errno = EBADF;
        set_err(err, errlen, "overlay: deploy target not resolved");
        return -1;
    }
    if (!base_path || base_path[0] != '/') {
        errno = EINVAL;
        set_err(err, errlen, "deploy target %s: base %s is not an absolute path", t->path,
                base_path ? base_path : "(null)");
        return -1;
    }
    blen = strlen(base_path);
    if (blen > PPF_QCOW2_BACKING_MAX) {
        errno = ENAMETOOLONG;
        set_err(err, errlen,
                "deploy target %s: base path longer than %d bytes, which qcow2 "
                "cannot hold; keep the prefetch buffer at a shorter path",
                t->path, PPF_QCOW2_BACKING_MAX);
        return -1;
    }
    if (stat(base_path, &st) == -1) {
        set_err(err, errlen,
                "deploy target %s: base %s: %s; the prepared image must exist "
                "before an overlay is made over it",
                t->path, base_path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        errno = EINVAL;
        set_err(err, errlen,
                "deploy target %s: base %s is not a regular file or block "
                "device",
                t->path, base_path);
        return -1;
    }
    if (size > UINT64_MAX - 511) {
        errno = EFBIG;
        set_err(err, errlen, "deploy target %s: size %" PRIu64 " is too large", t->path, size);
        return -1;
    }
    size = (size + 511) & ~(uint64_t)511;
    if (size > INT64_MAX || (size + QCOW2_L1_COVER - 1) / QCOW2_L1_COVER * 8 > QCOW2_MAX_L1_BYTES) {
        errno = EFBIG;
        set_err(err, errlen,
                "deploy target %s: a qcow2 overlay of %" PRIu64 " bytes is too "
                "large (the limit is 2 PiB); deploy as a copy",
                t->path, size);
        return -1;
    }
    fd = tmp_begin(t, replace, mode, tmpname, sizeof tmpname, err, errlen);
    if (fd == -1)
        return -1;
    if (overlay_write(fd, base_path, blen, size) == -1) {
        report_write_error(t, "qcow2 overlay", err, errlen);
        tmp_discard(t, tmpname);
        return -1;
    }
    if (tmp_commit(t, fd, tmpname, replace, err, errlen) == -1) {
        tmp_discard(t, tmpname);
        return -1;
    }
    return 0;
}

/* --- copy ---------------------------------------------------------------- */

static bool
all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copies [off, off + n) of sfd to the same offsets of fd. *use_cfr is
 * cleared when copy_file_range cannot be used here; the read/write path
 * leaves zero blocks as holes (fd was already extended). */
static int
copy_range(int sfd, int fd, off_t off, uint64_t n, bool *use_cfr, char **buf)
{
    while (n > 0) {
        size_t want = n > COPY_BUF ? COPY_BUF : (size_t)n;
        ssize_t r;

        if (*use_cfr) {
            loff_t in = off, out = off;

            r = copy_file_range(sfd, &in, fd, &out, want, 0);
            if (r > 0) {
                off += r;
                n -= (uint64_t)r;
                continue;
            }
            if (r == 0) {
                errno = ENODATA; /* the source shrank under us */
                return -1;
            }
            if (errno == EINTR)
                continue;
            if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL &&
                errno != EBADF && errno != EPERM)
                return -1;
            *use_cfr = false;
        }
        if (!*buf && !(*buf = malloc(COPY_BUF)))
            return -1;
        r = pread(sfd, *buf, want, off);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = ENODATA;
            return -1;
        }
        if (!all_zero(*buf, (size_t)r) && pwrite_all(fd, *buf, (size_t)r, off) == -1)
            return -1;
        off += r;
        n -= (uint64_t)r;
    }
    return 0;
}

/* Sparse copy of sfd (size bytes) into fd (empty). */
static int
copy_sparse(int sfd, int fd, off_t size)
{
    CLEANUP_FREE char *buf = NULL;
    bool use_cfr = true;
    off_t off = 0, data, hole;

    if (ftruncate(fd, size) == -1)
        return -1;
    while (off < size) {
        data = lseek(sfd, off, SEEK_DATA);
        if (data == -1) {
            if (errno == ENXIO)
                break; /* only a hole is left */
            if (errno != EINVAL && errno != EOPNOTSUPP)
                return -1;
            /* No SEEK_DATA here: everything is data; zero blocks still
             * become holes on the read/write path. */
            use_cfr = false;
            return copy_range(sfd, fd, off, (uint64_t)(size - off), &use_cfr, &buf);
        }
        if (data >= size)
            break;
        hole = lseek(sfd, data, SEEK_HOLE);
        if (hole == -1 || hole > size)
            hole = size;
        if (copy_range(sfd, fd, data, (uint64_t)(hole - data), &use_cfr, &buf) == -1)
            return -1;
        off = hole;
    }
    return 0;
}

int
ppf_copy_create(const struct ppf_target *t, const char *src_path, int replace, mode_t mode,
                char *err, size_t errlen)
{
    char tmpname[NAME_MAX + 1];
    CLEANUP_CLOSE int sfd = -1;
    CLEANUP_CLOSE int fd = -1;
    struct stat st;

    if (err && errlen)
        err[0] = '\0';
    if (!t || t->dirfd < 0) {
        errno = EBADF;
        set_err(err, errlen, "copy: deploy target not resolved");
        return -1;
    }
    if (!src_path) {
        errno = EINVAL;
        set_err(err, errlen, "deploy target %s: no source image given", t->path);
        return -1;
    }
    sfd = open(src_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (sfd == -1 || fstat(sfd, &st) == -1) {
        set_err(err, errlen, "deploy target %s: source %s: %s; the prepared image must exist",
                t->path, src_path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        set_err(err, errlen, "deploy target %s: source %s is not a regular file", t->path,
                src_path);
        return -1;
    }
    fd = tmp_begin(t, replace, mode, tmpname, sizeof tmpname, err, errlen);
    if (fd == -1)
        return -1;
    if (ioctl(fd, FICLONE, sfd) == -1) {
        if (errno == ENOSPC || errno == EDQUOT || errno == EIO || ftruncate(fd, 0) == -1 ||
            copy_sparse(sfd, fd, st.st_size) == -1) {
            if (errno == ENODATA)
                set_err(err, errlen,
                        "deploy target %s: source %s shrank during the copy; "
                        "nothing was left behind",
                        t->path, src_path);
            else
                report_write_error(t, "copy", err, errlen);
            tmp_discard(t, tmpname);
            return -1;
        }
    }
    if (tmp_commit(t, fd, tmpname, replace, err, errlen) == -1) {
        tmp_discard(t, tmpname);
        return -1;
    }
    return 0;
}

/* --- reading a qcow2's backing file ------------------------------------- */

static ssize_t
pread_full(int fd, void *buf, size_t n, off_t off)
{
    size_t got = 0;
    ssize_t r;

    while (got < n) {
        r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int
ppf_qcow2_backing_file(const char *path, char *name, size_t len)
{
    CLEANUP_CLOSE int fd = -1;
    uint8_t h[104];
    uint64_t boff;
    uint32_t blen, version, cbits;
    struct stat st;
    ssize_t r;

    if (name && len)
        name[0] = '\0';
    if (!path || !name) {
        errno = EINVAL;
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd == -1 || fstat(fd, &st) == -1)
        return -1;
    if (!S_ISREG(st.st_mode))
        return 0;
    r = pread_full(fd, h, sizeof h, 0);
    if (r == -1)
        return -1;
    /* qcow2.txt "Header": v2 has 72 bytes, v3 at least 104. */
    if (r < 72 || get32(h) != QCOW2_MAGIC)
        return 0;
    version = get32(h + 4);
    if (version != 2 && version != 3)
        return 0;
    if (version == 3 && (r < 104 || get32(h + 100) < 104))
        return 0;
    cbits = get32(h + 20);
    if (cbits < 9 || cbits > 21) /* qemu's MIN/MAX_CLUSTER_BITS */
        return 0;
    boff = get64(h + 8);
    blen = get32(h + 16);
    if (boff == 0 || blen == 0)
        return 0;
    /* qemu refuses an offset beyond the first cluster and a longer name. */
    if (blen > PPF_QCOW2_BACKING_MAX || boff > ((uint64_t)1 << cbits) || boff < 72 ||
        boff + blen > (uint64_t)st.st_size)
        return 0;
    if (len < (size_t)blen + 1) {
        errno = ERANGE;
        return -1;
    }
    r = pread_full(fd, name, blen, (off_t)boff);
    if (r == -1) {
        name[0] = '\0';
        return -1;
    }
    if ((size_t)r != blen || memchr(name, '\0', blen)) {
        name[0] = '\0';
        return 0;
    }
    name[blen] = '\0';
    return 1;
}

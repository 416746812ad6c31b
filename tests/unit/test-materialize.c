/* cmocka tests for peripheral/materialize.c in private mkdtemp trees:
 * target resolution (normal paths accepted; relative, ".", "..", "//",
 * outside and prefix-trick paths, symlinked components and final names,
 * missing parents refused), overlays and copies that never overwrite
 * unless asked and never leave a temporary file (also on a full tmpfs
 * when one can be mounted), copies that keep holes and content, the
 * backing-file reader on real, garbage and hostile files, and the time a
 * 1 TiB overlay takes (printed as TAP comments).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "peripheral/materialize.h"

static char root[256];    /* the private tree */
static char allowed[300]; /* root/allowed: the one deploy directory */
static char other[300];   /* root/other: outside it */
static char mnt[300];     /* root/mnt: a small tmpfs, when mounted */
static int mounted;
static const char *allow[1];
static char err[1024];

static void pathf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < len);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s/ppf-mat.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root))
        return -1;
    snprintf(allowed, sizeof allowed, "%s/allowed", root);
    snprintf(other, sizeof other, "%s/other", root);
    if (mkdir(allowed, 0755) == -1 || mkdir(other, 0755) == -1)
        return -1;
    allow[0] = allowed;
    return 0;
}

static int
teardown(void **state)
{
    char cmd[600];

    (void)state;
    if (mounted && umount(mnt) == 0)
        mounted = 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes n bytes of a pattern (seeded by seed) at off into path. */
static void
write_at(const char *path, off_t off, size_t n, unsigned seed)
{
    char *buf = malloc(n);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);

    assert_non_null(buf);
    assert_true(fd >= 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(((i * 2654435761u) >> 13) ^ seed ^ (i >> 9));
    assert_int_equal(pwrite(fd, buf, n, off), (ssize_t)n);
    close(fd);
    free(buf);
}

static void
make_sparse(const char *path, off_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
}

static void
write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(s, f);
    assert_int_equal(fclose(f), 0);
}

static int
same_content(const char *a, const char *b)
{
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    char ba[65536], bb[65536];
    size_t na, nb;
    int same = 1;

    assert_non_null(fa);
    assert_non_null(fb);
    do {
        na = fread(ba, 1, sizeof ba, fa);
        nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            same = 0;
    } while (same && na > 0);
    fclose(fa);
    fclose(fb);
    return same;
}

/* Number of temporary files (ours) left in dir. */
static int
count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, PPF_MATERIALIZE_TMP_INFIX))
            n++;
    closedir(d);
    return n;
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void
resolve_ok(const char *path, struct ppf_target *t)
{
    int r = ppf_target_resolve(path, allow, 1, t, err, sizeof err);

    if (r != 0)
        print_error("unexpected refusal: %s\n", err);
    assert_int_equal(r, 0);
    assert_true(t->dirfd >= 0);
}

static void
resolve_fails(const char *path, int want_errno)
{
    struct ppf_target t;

    err[0] = '\0';
    errno = 0;
    if (ppf_target_resolve(path, allow, 1, &t, err, sizeof err) != -1) {
        ppf_target_close(&t);
        fail_msg("%s was accepted", path ? path : "(null)");
    }
    assert_int_equal(t.dirfd, -1);
    assert_true(err[0] != '\0');
    if (want_errno)
        assert_int_equal(errno, want_errno);
}

/* --- resolution ----------------------------------------------------------- */

static void
test_resolve_accepts(void **state)
{
    struct ppf_target t;
    char p[600], sub[600];

    (void)state;
    pathf(p, sizeof p, "%s/disk.qcow2", allowed);
    resolve_ok(p, &t);
    assert_string_equal(t.name, "disk.qcow2");
    assert_string_equal(t.path, p);
    assert_int_equal(ppf_target_exists(&t), 0);
    write_text(p, "x");
    assert_int_equal(ppf_target_exists(&t), 1);
    ppf_target_close(&t);
    assert_int_equal(t.dirfd, -1);
    ppf_target_close(&t); /* twice is harmless */
    ppf_target_close(NULL);

    pathf(sub, sizeof sub, "%s/a", allowed);
    assert_int_equal(mkdir(sub, 0755), 0);
    pathf(sub, sizeof sub, "%s/a/b", allowed);
    assert_int_equal(mkdir(sub, 0755), 0);
    pathf(p, sizeof p, "%s/a/b/vm-1.img", allowed);
    resolve_ok(p, &t);
    assert_string_equal(t.name, "vm-1.img");
    ppf_target_close(&t);

    /* Names that merely start with dots are names. */
    pathf(p, sizeof p, "%s/...", allowed);
    resolve_ok(p, &t);
    ppf_target_close(&t);
    pathf(p, sizeof p, "%s/..disk", allowed);
    resolve_ok(p, &t);
    ppf_target_close(&t);
}

static void
test_resolve_rejects_syntax(void **state)
{
    char p[600];

    (void)state;
    resolve_fails(NULL, EINVAL);
    resolve_fails("", EINVAL);
    resolve_fails("disk.qcow2", EINVAL);
    resolve_fails("allowed/disk.qcow2", EINVAL);
    pathf(p, sizeof p, "%s/../allowed/disk", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/..", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/./disk", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/.", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s//disk", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "/%s/disk", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/disk/", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/", allowed);
    resolve_fails(p, EINVAL);
    resolve_fails("/", EINVAL);
    pathf(p, sizeof p, "%s/di\nsk", allowed);
    resolve_fails(p, EINVAL);
    pathf(p, sizeof p, "%s/.disk" PPF_MATERIALIZE_TMP_INFIX "0000abcd", allowed);
    resolve_fails(p, EINVAL);
    {
        struct ppf_target t;

        assert_int_equal(ppf_target_resolve(allowed, allow, 1, NULL, err, sizeof err), -1);
        assert_int_equal(ppf_target_resolve("/x", NULL, 1, &t, err, sizeof err), -1);
    }
    {
        char longp[700];
        int n = snprintf(longp, sizeof longp, "%s/", allowed);

        memset(longp + n, 'x', 300);
        longp[n + 300] = '\0';
        resolve_fails(longp, ENAMETOOLONG);
    }
    {
        char *huge = malloc(5000);

        assert_non_null(huge);
        memset(huge, 'a', 4999);
        huge[0] = '/';
        huge[4999] = '\0';
        resolve_fails(huge, ENAMETOOLONG);
        free(huge);
    }
}

static void
test_resolve_rejects_place(void **state)
{
    char p[600], q[600];
    const char *two[3];
    struct ppf_target t;

    (void)state;
    /* Outside, and the allowed directory itself. */
    pathf(p, sizeof p, "%s/disk", other);
    resolve_fails(p, EACCES);
    pathf(p, sizeof p, "%s/disk", root);
    resolve_fails(p, EACCES);
    resolve_fails(allowed, EACCES);
    resolve_fails("/etc/passwd", EACCES);

    /* Prefix trick: /x/allowedX is not under /x/allowed. */
    pathf(q, sizeof q, "%sX", allowed);
    assert_int_equal(mkdir(q, 0755), 0);
    pathf(p, sizeof p, "%sX/disk", allowed);
    resolve_fails(p, EACCES);

    /* A symlinked component (to inside or outside) and a symlinked final
     * name (to a file, dangling, to a directory) are refused. */
    pathf(q, sizeof q, "%s/lnk-out", allowed);
    assert_int_equal(symlink(other, q), 0);
    pathf(p, sizeof p, "%s/lnk-out/disk", allowed);
    resolve_fails(p, ELOOP);
    pathf(q, sizeof q, "%s/real", allowed);
    assert_int_equal(mkdir(q, 0755), 0);
    pathf(q, sizeof q, "%s/lnk-in", allowed);
    assert_int_equal(symlink("real", q), 0);
    pathf(p, sizeof p, "%s/lnk-in/disk", allowed);
    resolve_fails(p, ELOOP);
    pathf(q, sizeof q, "%s/victim", other);
    write_text(q, "precious");
    pathf(p, sizeof p, "%s/final-lnk", allowed);
    assert_int_equal(symlink(q, p), 0);
    resolve_fails(p, ELOOP);
    pathf(p, sizeof p, "%s/dangling", allowed);
    assert_int_equal(symlink("/nonexistent/ppf", p), 0);
    resolve_fails(p, ELOOP);
    pathf(p, sizeof p, "%s/dir-lnk", allowed);
    assert_int_equal(symlink(other, p), 0);
    resolve_fails(p, ELOOP);

    /* Missing parents and a file used as a directory. */
    pathf(p, sizeof p, "%s/missing/disk", allowed);
    resolve_fails(p, ENOENT);
    assert_non_null(strstr(err, "does not exist"));
    pathf(p, sizeof p, "%s/missing/deeper/disk", allowed);
    resolve_fails(p, ENOENT);
    pathf(q, sizeof q, "%s/plain", allowed);
    write_text(q, "x");
    pathf(p, sizeof p, "%s/plain/disk", allowed);
    resolve_fails(p, ENOTDIR);

    /* No allowed directory at all, relative or missing ones are ignored. */
    pathf(p, sizeof p, "%s/disk", allowed);
    assert_int_equal(ppf_target_resolve(p, allow, 0, &t, err, sizeof err), -1);
    two[0] = "allowed";
    two[1] = "/nonexistent/ppf-allowed";
    two[2] = NULL;
    assert_int_equal(ppf_target_resolve(p, two, 3, &t, err, sizeof err), -1);
    assert_int_equal(t.dirfd, -1);
    two[2] = allowed;
    assert_int_equal(ppf_target_resolve(p, two, 3, &t, NULL, 0), 0);
    ppf_target_close(&t);
}

/* The allowed directory is compared after realpath(): a symlinked
 * allowed directory admits its real path, and the symlink path itself
 * is not a way in. */
static void
test_resolve_allowed_symlink(void **state)
{
    char alink[600], p[600];
    const char *a[1];
    struct ppf_target t;

    (void)state;
    pathf(alink, sizeof alink, "%s/alink", root);
    assert_int_equal(symlink(allowed, alink), 0);
    a[0] = alink;
    pathf(p, sizeof p, "%s/disk", allowed);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    ppf_target_close(&t);
    pathf(p, sizeof p, "%s/disk", alink);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), -1);
    /* Allowed "/" admits any absolute path (still no symlinks). */
    a[0] = "/";
    pathf(p, sizeof p, "%s/disk", allowed);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    ppf_target_close(&t);
}

/* A component swapped for a symlink after resolution does not redirect
 * the write: the parent is held by fd. */
static void
test_resolve_swap(void **state)
{
    char d[600], moved[600], p[600], base[600], inside[600], outside[600];
    struct ppf_target t;

    (void)state;
    pathf(d, sizeof d, "%s/swap", allowed);
    assert_int_equal(mkdir(d, 0755), 0);
    pathf(p, sizeof p, "%s/swap/disk", allowed);
    pathf(base, sizeof base, "%s/base-swap", other);
    make_sparse(base, 1 << 20);
    resolve_ok(p, &t);
    pathf(moved, sizeof moved, "%s/swap-moved", allowed);
    assert_int_equal(rename(d, moved), 0);
    assert_int_equal(symlink(other, d), 0);
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 20, 0, 0, err, sizeof err), 0);
    ppf_target_close(&t);
    pathf(inside, sizeof inside, "%s/disk", moved);
    pathf(outside, sizeof outside, "%s/disk", other);
    assert_int_equal(access(inside, F_OK), 0);
    assert_int_equal(access(outside, F_OK), -1);
}

/* --- overlay --------------------------------------------------------------- */

static uint64_t
be64_at(const char *path, off_t off)
{
    unsigned char b[8];
    uint64_t v = 0;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 8, off), 8);
    close(fd);
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void
test_overlay_basic(void **state)
{
    char p[600], base[600], name[PPF_QCOW2_BACKING_MAX + 1];
    struct ppf_target t;
    struct stat st;

    (void)state;
    pathf(base, sizeof base, "%s/base.raw", other);
    make_sparse(base, 10 << 20);
    write_at(base, 0, 4096, 1);
    pathf(p, sizeof p, "%s/ov.qcow2", allowed);
    resolve_ok(p, &t);
    assert_int_equal(ppf_overlay_create(&t, base, 10 << 20, 0, 0, err, sizeof err), 0);
    assert_int_equal(ppf_target_exists(&t), 1);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_true(st.st_blocks * 512 <= 64 * 1024); /* metadata only, the rest holes */
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 1);
    assert_string_equal(name, base);
    assert_int_equal(be64_at(p, 24), 10 << 20);
    assert_int_equal(count_tmp(allowed), 0);

    /* A given mode is kept exactly (no umask); sizes round up to 512. */
    pathf(p, sizeof p, "%s/ov2.qcow2", allowed);
    ppf_target_close(&t);
    resolve_ok(p, &t);
    assert_int_equal(ppf_overlay_create(&t, base, 1000, 0, 0666, err, sizeof err), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0666);
    assert_int_equal(be64_at(p, 24), 1024);
    ppf_target_close(&t);
}

static void
test_overlay_never_overwrites(void **state)
{
    char p[600], base[600], q[600], name[PPF_QCOW2_BACKING_MAX + 1];
    struct ppf_target t;

    (void)state;
    pathf(base, sizeof base, "%s/base-nr.raw", other);
    make_sparse(base, 1 << 20);
    pathf(p, sizeof p, "%s/user-disk", allowed);
    write_text(p, "precious");
    resolve_ok(p, &t);
    errno = 0;
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 20, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, EEXIST);
    assert_non_null(strstr(err, "never overwritten"));
    assert_non_null(strstr(err, p));
    assert_int_equal(ppf_copy_create(&t, base, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, EEXIST);
    pathf(q, sizeof q, "%s/expected", other);
    write_text(q, "precious");
    assert_true(same_content(p, q));
    assert_int_equal(count_tmp(allowed), 0);

    /* Ephemeral: replace. */
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 20, 1, 0, err, sizeof err), 0);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 1);
    assert_int_equal(ppf_copy_create(&t, base, 1, 0, err, sizeof err), 0);
    assert_true(same_content(p, base));
    ppf_target_close(&t);

    /* A symlink planted after resolution is an existing target too, and
     * its destination is not touched. */
    pathf(p, sizeof p, "%s/later-lnk", allowed);
    resolve_ok(p, &t);
    pathf(q, sizeof q, "%s/victim2", other);
    write_text(q, "precious");
    assert_int_equal(symlink(q, p), 0);
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 20, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(ppf_copy_create(&t, base, 0, 0, err, sizeof err), -1);
    pathf(p, sizeof p, "%s/expected", other);
    assert_true(same_content(q, p));
    assert_int_equal(count_tmp(allowed), 0);
    ppf_target_close(&t);
}

static void
test_overlay_errors(void **state)
{
    char p[600], base[600], longb[1100];
    struct ppf_target t, none = {.dirfd = -1};

    (void)state;
    pathf(base, sizeof base, "%s/base-e.raw", other);
    make_sparse(base, 1 << 20);
    pathf(p, sizeof p, "%s/ov-err", allowed);
    resolve_ok(p, &t);
    assert_int_equal(ppf_overlay_create(&t, "relative.raw", 1, 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_overlay_create(&t, NULL, 1, 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_overlay_create(&t, "/nonexistent/ppf.raw", 1, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "must exist"));
    assert_int_equal(ppf_overlay_create(&t, other, 1, 0, 0, err, sizeof err), -1);
    memset(longb, 'b', sizeof longb - 1);
    longb[0] = '/';
    longb[sizeof longb - 1] = '\0';
    assert_int_equal(ppf_overlay_create(&t, longb, 1, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(ppf_overlay_create(&t, base, UINT64_MAX, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(ppf_overlay_create(&t, base, (uint64_t)4 << 50, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(ppf_overlay_create(&none, base, 1, 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_copy_create(&none, base, 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_copy_create(&t, "/nonexistent/ppf.raw", 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_copy_create(&t, other, 0, 0, err, sizeof err), -1);
    assert_int_equal(ppf_target_exists(&t), 0);
    assert_int_equal(count_tmp(allowed), 0);
    /* The largest size qcow2 can describe with our L1 limit works. */
    assert_int_equal(ppf_overlay_create(&t, base, (uint64_t)2 << 50, 0, 0, err, sizeof err), 0);
    ppf_target_close(&t);
}

/* --- copy ---------------------------------------------------------------- */

static void
test_copy_sparse(void **state)
{
    char p[600], src[600];
    struct ppf_target t;
    struct stat ss, cs;
    const off_t size = (64 << 20) + 100;
    struct timespec t0, t1;

    (void)state;
    pathf(src, sizeof src, "%s/src.raw", other);
    make_sparse(src, size);
    write_at(src, 0, 1 << 20, 2);
    write_at(src, 32 << 20, 4096, 3);
    write_at(src, size - 100, 100, 4);
    pathf(p, sizeof p, "%s/copy.raw", allowed);
    resolve_ok(p, &t);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ppf_copy_create(&t, src, 0, 0640, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("# copy of a 64 MiB file with 1 MiB of data: %.3f ms (incl. fsync)\n",
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_int_equal(stat(src, &ss), 0);
    assert_int_equal(stat(p, &cs), 0);
    assert_int_equal(cs.st_size, size);
    assert_int_equal(cs.st_mode & 07777, 0640);
    assert_true(same_content(src, p));
    printf("# st_blocks: source %lld, copy %lld\n", (long long)ss.st_blocks,
           (long long)cs.st_blocks);
    assert_true(cs.st_blocks <= ss.st_blocks + 64); /* holes kept (some fs slack) */
    assert_true(cs.st_blocks < (size / 512) / 8);
    assert_int_equal(count_tmp(allowed), 0);
    ppf_target_close(&t);

    /* An empty and an all-hole source. */
    pathf(src, sizeof src, "%s/empty.raw", other);
    make_sparse(src, 0);
    pathf(p, sizeof p, "%s/copy-empty", allowed);
    resolve_ok(p, &t);
    assert_int_equal(ppf_copy_create(&t, src, 0, 0, err, sizeof err), 0);
    assert_int_equal(stat(p, &cs), 0);
    assert_int_equal(cs.st_size, 0);
    ppf_target_close(&t);
    pathf(src, sizeof src, "%s/holes.raw", other);
    make_sparse(src, (off_t)1 << 40);
    pathf(p, sizeof p, "%s/copy-holes", allowed);
    resolve_ok(p, &t);
    assert_int_equal(ppf_copy_create(&t, src, 0, 0, err, sizeof err), 0);
    assert_int_equal(stat(p, &cs), 0);
    assert_int_equal(cs.st_size, (off_t)1 << 40);
    assert_true(cs.st_blocks < 64);
    ppf_target_close(&t);
}

/* --- a full disk ----------------------------------------------------------- */

static int
mount_small_tmpfs(void)
{
    if (mounted)
        return 1;
    if (geteuid() != 0)
        return 0;
    snprintf(mnt, sizeof mnt, "%s/mnt", root);
    if (mkdir(mnt, 0755) == -1 && errno != EEXIST)
        return 0;
    if (mount("ppf-test", mnt, "tmpfs", 0, "size=64k") == -1)
        return 0;
    mounted = 1;
    return 1;
}

static void
test_enospc(void **state)
{
    char p[600], src[600], base[600], filler[600], buf[4096];
    const char *a[1];
    struct ppf_target t;
    int fd;

    (void)state;
    if (!mount_small_tmpfs()) {
        printf("# cannot mount a 64k tmpfs (needs root): full-disk cases skipped\n");
        skip();
    }
    a[0] = mnt;

    /* A copy larger than the filesystem. */
    pathf(src, sizeof src, "%s/big.raw", other);
    make_sparse(src, 1 << 20);
    write_at(src, 0, 1 << 20, 5);
    pathf(p, sizeof p, "%s/copy", mnt);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    errno = 0;
    assert_int_equal(ppf_copy_create(&t, src, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, ENOSPC);
    assert_non_null(strstr(err, "disk full"));
    assert_int_equal(count_entries(mnt), 0);
    ppf_target_close(&t);

    /* An overlay on a filesystem already full. */
    pathf(filler, sizeof filler, "%s/filler", mnt);
    fd = open(filler, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    memset(buf, 0x55, sizeof buf);
    while (write(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    pathf(base, sizeof base, "%s/base-full.raw", other);
    make_sparse(base, 1 << 30);
    pathf(p, sizeof p, "%s/ov", mnt);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    errno = 0;
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 30, 0, 0, err, sizeof err), -1);
    assert_int_equal(errno, ENOSPC);
    assert_non_null(strstr(err, "disk full"));
    assert_int_equal(count_entries(mnt), 1); /* the filler only */
    ppf_target_close(&t);
    assert_int_equal(unlink(filler), 0);

    /* With room again, both work. */
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 30, 0, 0, err, sizeof err), 0);
    ppf_target_close(&t);
    assert_int_equal(count_tmp(mnt), 0);
}

/* A copy onto another filesystem (ext4 or whatever TMPDIR is, to tmpfs):
 * copy_file_range says EXDEV there, so the read/write path runs, which
 * must keep holes and turn written zero blocks into holes too. */
static void
test_copy_cross_fs(void **state)
{
    char p[600], src[600];
    const char *a[1];
    struct ppf_target t;
    struct stat ss, cs;
    int fd;

    (void)state;
    if (!mount_small_tmpfs()) {
        printf("# cannot mount a tmpfs (needs root): cross-filesystem copy skipped\n");
        skip();
    }
    a[0] = mnt;
    pathf(src, sizeof src, "%s/xfs-src.raw", other);
    make_sparse(src, 4 << 20);
    write_at(src, 0, 8192, 6);
    write_at(src, 1 << 20, 4096, 7);
    write_at(src, (4 << 20) - 10, 10, 8);
    fd = open(src, O_WRONLY);
    assert_true(fd >= 0);
    {
        static const char zeros[65536];

        assert_int_equal(pwrite(fd, zeros, sizeof zeros, 2 << 20), (ssize_t)sizeof zeros);
    }
    close(fd);
    pathf(p, sizeof p, "%s/xcopy", mnt);
    assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
    if (ppf_copy_create(&t, src, 0, 0, err, sizeof err) != 0)
        fail_msg("%s", err);
    ppf_target_close(&t);
    assert_true(same_content(src, p));
    assert_int_equal(stat(src, &ss), 0);
    assert_int_equal(stat(p, &cs), 0);
    printf("# cross-fs copy st_blocks: source %lld (with 64 KiB of written zeros), copy %lld\n",
           (long long)ss.st_blocks, (long long)cs.st_blocks);
    assert_true(cs.st_blocks < ss.st_blocks);
    assert_true(cs.st_blocks * 512 <= 32 * 1024);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(count_tmp(mnt), 0);
}

/* --- backing file reader --------------------------------------------------- */

static void
write_bytes(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A minimal qcow2 header: version, backing offset/length, name. */
static size_t
fake_qcow2(unsigned char *b, size_t cap, uint32_t version, uint64_t boff, uint32_t blen,
           const char *bname)
{
    size_t n = 512;

    assert_true(cap >= n);
    memset(b, 0, n);
    put32(b, 0x514649fb);
    put32(b + 4, version);
    put32(b + 8, (uint32_t)(boff >> 32));
    put32(b + 12, (uint32_t)boff);
    put32(b + 16, blen);
    put32(b + 20, 16);
    put32(b + 100, 104);
    if (bname && boff + strlen(bname) <= n)
        memcpy(b + boff, bname, strlen(bname));
    return n;
}

static void
test_backing_reader(void **state)
{
    char p[600], base[600], name[PPF_QCOW2_BACKING_MAX + 1], small[4];
    unsigned char b[4096];
    struct ppf_target t;
    size_t n;

    (void)state;
    pathf(base, sizeof base, "%s/base-b.raw", other);
    make_sparse(base, 1 << 20);
    pathf(p, sizeof p, "%s/ov-b", allowed);
    resolve_ok(p, &t);
    assert_int_equal(ppf_overlay_create(&t, base, 1 << 20, 0, 0, err, sizeof err), 0);
    ppf_target_close(&t);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 1);
    assert_string_equal(name, base);
    errno = 0;
    assert_int_equal(ppf_qcow2_backing_file(p, small, sizeof small), -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(ppf_qcow2_backing_file("/nonexistent/ppf", name, sizeof name), -1);
    assert_int_equal(ppf_qcow2_backing_file(other, name, sizeof name), 0);
    assert_int_equal(ppf_qcow2_backing_file(base, name, sizeof name), 0);
    assert_int_equal(ppf_qcow2_backing_file("/dev/null", name, sizeof name), 0);

    pathf(p, sizeof p, "%s/fake", other);
    write_bytes(p, "", 0);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    write_bytes(p, "QFI\xfb", 4);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    for (int i = 0; i < (int)sizeof b; i++)
        b[i] = (unsigned char)(i * 7 + 3);
    write_bytes(p, b, sizeof b);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);

    /* Valid v2 and v3 headers with and without a backing file. */
    n = fake_qcow2(b, sizeof b, 3, 200, 6, "/a/b.c");
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 1);
    assert_string_equal(name, "/a/b.c");
    n = fake_qcow2(b, sizeof b, 2, 72, 6, "/a/b.c");
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 1);
    n = fake_qcow2(b, sizeof b, 3, 0, 0, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);

    /* Hostile: another version, offsets past the end, in the header, past
     * the first cluster or wrapping, over-long names, a NUL in the name. */
    n = fake_qcow2(b, sizeof b, 4, 200, 6, "/a/b.c");
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, 510, 6, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, 8, 6, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, UINT64_MAX - 2, 6, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, (uint64_t)1 << 20, 6, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, 200, 1024, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, 200, UINT32_MAX, NULL);
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    n = fake_qcow2(b, sizeof b, 3, 200, 6, "/a\0b.c");
    b[202] = '\0';
    write_bytes(p, b, n);
    assert_int_equal(ppf_qcow2_backing_file(p, name, sizeof name), 0);
    assert_string_equal(name, "");

    /* Random damage to a real overlay's header never reads out of bounds
     * (ASan) and never yields an over-long name. */
    pathf(p, sizeof p, "%s/ov-b", allowed);
    {
        int fd = open(p, O_RDONLY);
        char q[600];
        unsigned seed = 12345;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
        close(fd);
        pathf(q, sizeof q, "%s/fuzz", other);
        for (int iter = 0; iter < 3000; iter++) {
            unsigned char m[4096];
            int r;

            memcpy(m, b, sizeof m);
            for (int k = 0; k < 1 + iter % 4; k++) {
                seed = seed * 1103515245u + 12345u;
                m[(seed >> 8) % 256] = (unsigned char)(seed >> 20);
            }
            seed = seed * 1103515245u + 12345u;
            write_bytes(q, m, 64 + (seed >> 8) % (sizeof m - 64));
            r = ppf_qcow2_backing_file(q, name, sizeof name);
            assert_true(r == 0 || r == 1);
            if (r == 1)
                assert_true(strlen(name) > 0 && strlen(name) <= PPF_QCOW2_BACKING_MAX);
            else
                assert_string_equal(name, "");
        }
    }
}

/* --- timing ---------------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Times n overlays of a 1 TiB base in dir; medians in wall[0], cpu[0],
 * maxima in wall[1], cpu[1]. */
static void
time_overlays(const char *dir, const char *base, int n, double wall[2], double cpu[2])
{
    double w[64], c[64];
    const char *a[1] = {dir};

    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        struct ppf_target t;
        struct timespec w0, w1, c0, c1;
        char p[600];

        pathf(p, sizeof p, "%s/tb-%d.qcow2", dir, i);
        assert_int_equal(ppf_target_resolve(p, a, 1, &t, err, sizeof err), 0);
        clock_gettime(CLOCK_MONOTONIC, &w0);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        assert_int_equal(ppf_overlay_create(&t, base, (uint64_t)1 << 40, 0, 0, err, sizeof err), 0);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        clock_gettime(CLOCK_MONOTONIC, &w1);
        ppf_target_close(&t);
        w[i] = ms_between(&w0, &w1);
        c[i] = ms_between(&c0, &c1);
        assert_int_equal(unlink(p), 0);
    }
    qsort(w, (size_t)n, sizeof *w, cmp_double);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    wall[0] = w[n / 2];
    wall[1] = w[n - 1];
    cpu[0] = c[n / 2];
    cpu[1] = c[n - 1];
}

static void
test_overlay_timing(void **state)
{
    char base[600];
    double wall[2], cpu[2];

    (void)state;
    pathf(base, sizeof base, "%s/base-1t.raw", other);
    make_sparse(base, (off_t)1 << 40);

    time_overlays(allowed, base, 21, wall, cpu);
    printf("# 1 TiB overlay on the test filesystem, fsync included: wall median %.3f ms "
           "max %.3f ms; CPU median %.3f ms max %.3f ms\n",
           wall[0], wall[1], cpu[0], cpu[1]);
    /* Here the CPU time includes the kernel's share of the two fsyncs and
     * the wall time waits for the disk: loose bounds only.  The module's
     * own cost is the tmpfs figure below. */
    assert_true(cpu[0] < 5.0);
    assert_true(wall[0] < 1000.0);

    if (mount_small_tmpfs()) {
        time_overlays(mnt, base, 21, wall, cpu);
        printf("# 1 TiB overlay on tmpfs (fsync is free): wall median %.3f ms max %.3f ms; "
               "CPU median %.3f ms\n",
               wall[0], wall[1], cpu[0]);
        assert_true(cpu[0] < 1.0);
        assert_true(wall[0] < 5.0);
    } else {
        printf("# no tmpfs: the fsync-free timing is skipped\n");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_accepts),
        cmocka_unit_test(test_resolve_rejects_syntax),
        cmocka_unit_test(test_resolve_rejects_place),
        cmocka_unit_test(test_resolve_allowed_symlink),
        cmocka_unit_test(test_resolve_swap),
        cmocka_unit_test(test_overlay_basic),
        cmocka_unit_test(test_overlay_never_overwrites),
        cmocka_unit_test(test_overlay_errors),
        cmocka_unit_test(test_copy_sparse),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_copy_cross_fs),
        cmocka_unit_test(test_backing_reader),
        cmocka_unit_test(test_overlay_timing),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

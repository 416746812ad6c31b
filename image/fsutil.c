/* File-system helpers for libppfimage: temporary files beside the
 * destination, the fsync-and-rename that makes an output appear only when
 * it is complete, writes that name a full disk as such, running qemu-img,
 * and loading keys from files that only their owner can read.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "image/image-priv.h"

extern char **environ;

double
img_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
ppf_img_wipe(void *p, size_t n)
{
    if (p)
        gnutls_memset(p, 0, n);
}

int
ppf_img_key_load(const char *path, uint8_t key[PPF_IMG_KEY_SIZE], struct ppf_img_err *err)
{
    CLEANUP_CLOSE int fd = -1;
    struct stat st;
    uint8_t buf[PPF_IMG_KEY_SIZE + 1];
    size_t got = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return img_fail_sys(err, errno, "key file %s: cannot open it", path);
    if (fstat(fd, &st) < 0)
        return img_fail_sys(err, errno, "key file %s", path);
    if (!S_ISREG(st.st_mode))
        return img_fail(err, PPF_IMG_EUSAGE, "key file %s: not a regular file", path);
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return img_fail(err, PPF_IMG_EUSAGE, "key file %s: readable or writable by group or "
                        "others (mode %03o): run 'chmod 600 %s'", path,
                        (unsigned)(st.st_mode & 0777), path);
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ppf_img_wipe(buf, sizeof buf);
            return img_fail_sys(err, errno, "key file %s: reading", path);
        }
        if (n == 0)
            break;
        got += n;
    }
    if (got != PPF_IMG_KEY_SIZE) {
        ppf_img_wipe(buf, sizeof buf);
        return img_fail(err, PPF_IMG_EUSAGE, "key file %s: must hold exactly %d raw bytes, "
                        "it holds %s%zu: make one with 'head -c 32 /dev/urandom'", path,
                        PPF_IMG_KEY_SIZE, got > PPF_IMG_KEY_SIZE ? "more than " : "",
                        got > PPF_IMG_KEY_SIZE ? (size_t)PPF_IMG_KEY_SIZE : got);
    }
    memcpy(key, buf, PPF_IMG_KEY_SIZE);
    ppf_img_wipe(buf, sizeof buf);
    return 0;
}

int
img_check_dst(const char *dst, int overwrite, struct ppf_img_err *err)
{
    struct stat st;

    if (lstat(dst, &st) == 0) {
        if (!overwrite)
            return img_fail(err, PPF_IMG_EUSAGE, "%s: already exists: remove it or use "
                            "--force", dst);
        if (!S_ISREG(st.st_mode))
            return img_fail(err, PPF_IMG_EUSAGE, "%s: exists and is not a regular file", dst);
    }
    return 0;
}

int
img_tmp_create(const char *dst, mode_t mode, char **tmp, struct ppf_img_err *err)
{
    char *name;
    int fd;

    *tmp = NULL;
    if (asprintf(&name, "%s.tmp.XXXXXX", dst) < 0)
        return img_fail_sys(err, ENOMEM, "%s", dst);
    fd = mkostemp(name, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(name);
        return img_fail_sys(err, e, "%s: cannot create a temporary file beside it", dst);
    }
    if (mode != 0600)
        (void)fchmod(fd, mode);
    *tmp = name;
    return fd;
}

static int
img_fsync_dir(const char *path)
{
    CLEANUP_FREE char *copy = strdup(path);
    CLEANUP_CLOSE int fd = -1;

    if (!copy)
        return -1;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -1 : fsync(fd);
}

int
img_commit(int fd, const char *tmp, const char *dst, int overwrite, int no_sync,
           struct ppf_img_err *err)
{
    if (!no_sync && fsync(fd) < 0)
        return img_fail_sys(err, errno, "%s: flushing to disk", dst);
    if (overwrite ? rename(tmp, dst) : renameat2(AT_FDCWD, tmp, AT_FDCWD, dst,
                                                  RENAME_NOREPLACE)) {
        if (errno == EEXIST)
            return img_fail(err, PPF_IMG_EUSAGE, "%s: appeared while it was being written: "
                            "remove it or use --force", dst);
        return img_fail_sys(err, errno, "%s: renaming %s into place", dst, tmp);
    }
    if (!no_sync)
        img_fsync_dir(dst);
    return 0;
}

int
img_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name,
               struct ppf_img_err *err)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, off + done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == ENOSPC || errno == EDQUOT)) {
            int e = errno;
            img_fail(err, PPF_IMG_EIO, "%s: disk full (%s) at offset %" PRIu64 ": free space "
                     "on its file system or write elsewhere", name,
                     e == ENOSPC ? "no space left on device" : "quota exceeded", off + done);
            if (err)
                err->sys_errno = e;
            return -1;
        }
        if (n <= 0)
            return img_fail_sys(err, n < 0 ? errno : EIO, "%s: writing %zu bytes at %" PRIu64,
                                name, len, off);
        done += n;
    }
    return 0;
}

const char *
img_qemu_img(void)
{
    const char *env = getenv("PPF_QEMU_IMG");

    if (env && *env)
        return env;
#ifdef PPF_QEMU_IMG
    if (strcmp(PPF_QEMU_IMG, "no") != 0)
        return PPF_QEMU_IMG;
#endif
    return "qemu-img";
}

int
img_run(char *const argv[], struct ppf_img_err *err)
{
    pid_t pid;
    int status, rc;

    rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0)
        return img_fail_sys(err, rc, "cannot run %s (install qemu-utils)", argv[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return img_fail_sys(err, errno, "waiting for %s", argv[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return img_fail(err, PPF_IMG_EFAIL, "%s %s failed (exit %d): see its message above",
                        argv[0], argv[1], WEXITSTATUS(status));
    return img_fail(err, PPF_IMG_EFAIL, "%s %s was killed by signal %d", argv[0], argv[1],
                    WTERMSIG(status));
}

/* The NVM pattern store (see nvm.h): payload codec with bounds checks,
 * atomic replace via temp file + fsync + rename, and the checks on load
 * that turn a damaged store into a report and an empty model.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "peripheral/nvm.h"

void
ppf_nvm_writer_init(struct ppf_nvm_writer *w, size_t limit)
{
    memset(w, 0, sizeof *w);
    w->limit = limit;
}

void
ppf_nvm_writer_free(struct ppf_nvm_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

void
ppf_nvm_put_bytes(struct ppf_nvm_writer *w, const void *p, size_t n)
{
    if (w->error || n == 0)
        return;
    if (w->limit && (n > w->limit || w->len > w->limit - n)) {
        w->error = E2BIG;
        return;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        uint8_t *nb;

        while (cap < w->len + n)
            cap *= 2;
        nb = realloc(w->buf, cap);
        if (!nb) {
            w->error = ENOMEM;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void
ppf_nvm_put_u8(struct ppf_nvm_writer *w, uint8_t v)
{
    ppf_nvm_put_bytes(w, &v, 1);
}

void
ppf_nvm_put_u32(struct ppf_nvm_writer *w, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

    ppf_nvm_put_bytes(w, b, 4);
}

void
ppf_nvm_put_u64(struct ppf_nvm_writer *w, uint64_t v)
{
    ppf_nvm_put_u32(w, (uint32_t)v);
    ppf_nvm_put_u32(w, (uint32_t)(v >> 32));
}

void
ppf_nvm_put_f64(struct ppf_nvm_writer *w, double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof u);
    ppf_nvm_put_u64(w, u);
}

void
ppf_nvm_put_str(struct ppf_nvm_writer *w, const char *s)
{
    size_t n = strlen(s);

    ppf_nvm_put_u32(w, (uint32_t)n);
    ppf_nvm_put_bytes(w, s, n);
}

void
ppf_nvm_reader_init(struct ppf_nvm_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->error = 0;
}

static int
nvm_take(struct ppf_nvm_reader *r, size_t n, const uint8_t **p)
{
    if (r->error || n > r->len - r->pos) {
        r->error = 1;
        return -1;
    }
    *p = r->buf + r->pos;
    r->pos += n;
    return 0;
}

int
ppf_nvm_get_u8(struct ppf_nvm_reader *r, uint8_t *v)
{
    const uint8_t *p;

    if (nvm_take(r, 1, &p) < 0)
        return -1;
    *v = p[0];
    return 0;
}

int
ppf_nvm_get_u32(struct ppf_nvm_reader *r, uint32_t *v)
{
    const uint8_t *p;

    if (nvm_take(r, 4, &p) < 0)
        return -1;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

int
ppf_nvm_get_u64(struct ppf_nvm_reader *r, uint64_t *v)
{
    uint32_t lo, hi;

    if (ppf_nvm_get_u32(r, &lo) < 0 || ppf_nvm_get_u32(r, &hi) < 0)
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int
ppf_nvm_get_f64(struct ppf_nvm_reader *r, double *v)
{
    uint64_t u;
    double d;

    if (ppf_nvm_get_u64(r, &u) < 0)
        return -1;
    memcpy(&d, &u, sizeof d);
    if (!isfinite(d)) {
        r->error = 1;
        return -1;
    }
    *v = d;
    return 0;
}

int
ppf_nvm_get_str(struct ppf_nvm_reader *r, char *buf, size_t cap)
{
    const uint8_t *p;
    uint32_t n;

    if (ppf_nvm_get_u32(r, &n) < 0)
        return -1;
    if (n == 0 || n >= cap || nvm_take(r, n, &p) < 0 || memchr(p, 0, n)) {
        r->error = 1;
        return -1;
    }
    memcpy(buf, p, n);
    buf[n] = 0;
    return 0;
}

int
ppf_nvm_get_count(struct ppf_nvm_reader *r, uint32_t max, size_t min_each, uint32_t *v)
{
    uint32_t n;

    if (ppf_nvm_get_u32(r, &n) < 0)
        return -1;
    if (n > max || (min_each && n > (r->len - r->pos) / min_each)) {
        r->error = 1;
        return -1;
    }
    *v = n;
    return 0;
}

uint32_t
ppf_nvm_crc32(const void *buf, size_t len)
{
    static uint32_t table[256];
    static int ready;
    const uint8_t *p = buf;
    uint32_t c = 0xffffffffu;

    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t x = i;

            for (int k = 0; k < 8; k++)
                x = x & 1 ? 0xedb88320u ^ (x >> 1) : x >> 1;
            table[i] = x;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static int
nvm_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void
nvm_fsync_dir(const char *path)
{
    CLEANUP_FREE char *dir = strdup(path);
    char *slash;
    int fd;

    if (!dir)
        return;
    slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        slash[1] = 0;
    else
        *slash = 0;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int
ppf_nvm_write_file(const char *path, const void *payload, size_t len, uint64_t max_bytes)
{
    struct ppf_nvm_writer w;
    CLEANUP_FREE char *tmp = NULL;
    CLEANUP_CLOSE int fd = -1;
    uint32_t crc;

    if (max_bytes && (uint64_t)len + PPF_NVM_HEADER + PPF_NVM_TRAILER > max_bytes) {
        ppf_err("nvm", "%s: the learned state (%zu bytes) does not fit learning.store_size "
                "(%llu bytes); raise learning.store_size", path, len,
                (unsigned long long)max_bytes);
        errno = E2BIG;
        return -1;
    }
    ppf_nvm_writer_init(&w, 0);
    ppf_nvm_put_bytes(&w, PPF_NVM_MAGIC, 4);
    ppf_nvm_put_u32(&w, PPF_NVM_VERSION);
    ppf_nvm_put_u64(&w, len);
    ppf_nvm_put_bytes(&w, payload, len);
    crc = ppf_nvm_crc32(w.buf, w.len);
    ppf_nvm_put_u32(&w, crc);
    if (w.error) {
        ppf_nvm_writer_free(&w);
        ppf_err("nvm", "%s: out of memory while saving the learned state", path);
        errno = ENOMEM;
        return -1;
    }
    if (asprintf(&tmp, "%s.tmp-%ld", path, (long)getpid()) < 0) {
        tmp = NULL;
        ppf_nvm_writer_free(&w);
        errno = ENOMEM;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ppf_err("nvm", "%s: cannot create: %m; check that the state directory exists "
                "and is writable", tmp);
        ppf_nvm_writer_free(&w);
        return -1;
    }
    if (nvm_write_all(fd, w.buf, w.len) < 0 || fsync(fd) < 0) {
        int saved = errno;

        ppf_err("nvm", "%s: write failed: %s; the previous store is kept", tmp,
                strerror(saved));
        unlink(tmp);
        ppf_nvm_writer_free(&w);
        errno = saved;
        return -1;
    }
    ppf_nvm_writer_free(&w);
    if (close(fd) < 0) {
        fd = -1;
        ppf_err("nvm", "%s: close failed: %m; the previous store is kept", tmp);
        unlink(tmp);
        return -1;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        int saved = errno;

        ppf_err("nvm", "%s: cannot rename to %s: %s; the previous store is kept", tmp,
                path, strerror(saved));
        unlink(tmp);
        errno = saved;
        return -1;
    }
    nvm_fsync_dir(path);
    return 0;
}

/* Renames a bad store aside so the next save does not destroy evidence. */
static void
nvm_set_aside(const char *path, const char *why)
{
    char aside[PATH_MAX];

    for (int n = 1; n < 1000; n++) {
        struct stat st;

        if (snprintf(aside, sizeof aside, "%s.corrupt-%d", path, n) >= (int)sizeof aside)
            break;
        if (lstat(aside, &st) == 0)
            continue;
        if (rename(path, aside) == 0) {
            ppf_err("nvm", "%s: %s; moved to %s, starting with an empty model", path, why,
                    aside);
            return;
        }
        break;
    }
    ppf_err("nvm", "%s: %s; could not move it aside (%m), starting with an empty model "
            "(it will be replaced at the next save)", path, why);
}

int
ppf_nvm_read_file(const char *path, uint64_t max_bytes, uint8_t **payload, size_t *len)
{
    CLEANUP_CLOSE int fd = -1;
    CLEANUP_FREE uint8_t *buf = NULL;
    struct stat st;
    size_t size, got = 0;
    uint64_t plen;
    uint32_t ver, crc, want;

    *payload = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        ppf_err("nvm", "%s: cannot open: %m; check the state directory's permissions", path);
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ppf_err("nvm", "%s: not a regular file; remove it", path);
        return -1;
    }
    if (max_bytes && (uint64_t)st.st_size > max_bytes + max_bytes / 2 + 4096) {
        close(fd);
        fd = -1;
        nvm_set_aside(path, "larger than learning.store_size allows");
        return 2;
    }
    size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        ppf_err("nvm", "%s: out of memory reading %zu bytes", path, size);
        return -1;
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ppf_err("nvm", "%s: read failed: %m", path);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    fd = -1;
    if (got < PPF_NVM_HEADER + PPF_NVM_TRAILER || memcmp(buf, PPF_NVM_MAGIC, 4) != 0) {
        nvm_set_aside(path, got < PPF_NVM_HEADER + PPF_NVM_TRAILER
                      ? "truncated (shorter than its header)" : "not a ppf pattern store");
        return 2;
    }
    ver = (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16
        | (uint32_t)buf[7] << 24;
    plen = 0;
    for (int i = 7; i >= 0; i--)
        plen = plen << 8 | buf[8 + i];
    if (ver != PPF_NVM_VERSION) {
        char why[96];

        snprintf(why, sizeof why, "store version %u, this ppf reads version %u", ver,
                 PPF_NVM_VERSION);
        nvm_set_aside(path, why);
        return 2;
    }
    if (plen != got - PPF_NVM_HEADER - PPF_NVM_TRAILER) {
        nvm_set_aside(path, plen > got ? "truncated" : "length does not match the file");
        return 2;
    }
    crc = ppf_nvm_crc32(buf, got - PPF_NVM_TRAILER);
    want = (uint32_t)buf[got - 4] | (uint32_t)buf[got - 3] << 8
        | (uint32_t)buf[got - 2] << 16 | (uint32_t)buf[got - 1] << 24;
    if (crc != want) {
        nvm_set_aside(path, "checksum mismatch (corrupted)");
        return 2;
    }
    memmove(buf, buf + PPF_NVM_HEADER, (size_t)plen);
    *payload = buf;
    *len = (size_t)plen;
    buf = NULL;
    return 0;
}

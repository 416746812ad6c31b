/* Volume records of ppf pools (hooks/volrec.h): where they live, their
 * plain-text format, and reading one safely.  Used by ppfctl's vol-*
 * commands (writing) and by ppf-qemu-hook (reading, on every start of a
 * domain with a disk in a ppf pool), so nothing here allocates or needs
 * more than libc.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "hooks/volrec.h"
#include "ppf/protocol.h"

static void __attribute__((format(printf, 3, 4)))
vr_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *
ppf_volrec_pool_dir(void)
{
    const char *d = getenv(PPF_VOLREC_ENV_DIR);

    return d && d[0] == '/' ? d : PPF_VOLREC_POOL_DIR;
}

int
ppf_volrec_is_prepared(const char *name)
{
    size_t n = strlen(name), s = strlen(PPF_VOLREC_PREPARED);

    return ppf_name_ok(name) && n > s && strcmp(name + n - s, PPF_VOLREC_PREPARED) == 0;
}

int
ppf_volrec_name_ok(const char *name)
{
    return ppf_name_ok(name) && !ppf_volrec_is_prepared(name);
}

static int
vr_fits(int k, size_t len)
{
    return k >= 0 && (size_t)k < len ? 0 : -1;
}

int
ppf_volrec_dir(const char *pool_dir, const char *pool, char *buf, size_t len)
{
    return vr_fits(snprintf(buf, len, "%s/%s%s", pool_dir, pool, PPF_VOLREC_SUFFIX), len);
}

int
ppf_volrec_path(const char *pool_dir, const char *pool, const char *volume, char *buf,
                size_t len)
{
    return vr_fits(snprintf(buf, len, "%s/%s%s/%s", pool_dir, pool, PPF_VOLREC_SUFFIX, volume),
                   len);
}

int
ppf_volrec_pool_state(const char *pool_dir, const char *pool, char *buf, size_t len)
{
    return vr_fits(snprintf(buf, len, "%s/%s.xml", pool_dir, pool), len);
}

/* Stores one "KEY VALUE" line into r; seen tracks repeated keys.  0 or -1. */
static int
vr_line(const char *key, const char *v, struct ppf_volrec *r, unsigned *seen, unsigned line,
        char *err, size_t errlen)
{
    static const char *const keys[] = { "image", "tenant", "mode", "target" };
    unsigned k;

    for (k = 0; k < 4; k++)
        if (strcmp(key, keys[k]) == 0)
            break;
    if (k == 4) {
        vr_err(err, errlen, "line %u: unknown key '%.32s' (known: image, tenant, mode, "
               "target)", line, key);
        return -1;
    }
    if (*seen & (1u << k)) {
        vr_err(err, errlen, "line %u: %s is given twice", line, key);
        return -1;
    }
    *seen |= 1u << k;
    switch (k) {
    case 0:
    case 1:
        if (!ppf_name_ok(v) || strlen(v) > PPF_VOLREC_NAME_MAX) {
            vr_err(err, errlen, "line %u: %s '%.64s' is not a name (1 to %d of A-Z a-z 0-9 "
                   ". _ -, not starting with '.')", line, key, v, PPF_VOLREC_NAME_MAX);
            return -1;
        }
        strcpy(k == 0 ? r->image : r->tenant, v);
        return 0;
    case 2:
        if (strcmp(v, "overlay") == 0)
            r->mode = PPF_VOLREC_OVERLAY;
        else if (strcmp(v, "copy") == 0)
            r->mode = PPF_VOLREC_COPY;
        else {
            vr_err(err, errlen, "line %u: mode '%.32s': expected overlay or copy", line, v);
            return -1;
        }
        return 0;
    default:
        if (v[0] != '/' || ppf_has_control(v) || strlen(v) > PPF_VOLREC_PATH_MAX) {
            vr_err(err, errlen, "line %u: target '%.64s' is not an absolute path of at most "
                   "%d bytes", line, v, PPF_VOLREC_PATH_MAX);
            return -1;
        }
        strcpy(r->target, v);
        return 0;
    }
}

int
ppf_volrec_parse(const char *buf, size_t len, struct ppf_volrec *r, char *err,
                 size_t errlen)
{
    char text[PPF_VOLREC_MAX + 1];
    char *p, *nl;
    unsigned line = 0, seen = 0;

    memset(r, 0, sizeof *r);
    r->mode = -1;
    snprintf(r->tenant, sizeof r->tenant, "default");
    if (len > PPF_VOLREC_MAX) {
        vr_err(err, errlen, "more than %d bytes; not a volume record", PPF_VOLREC_MAX);
        return -1;
    }
    if (memchr(buf, '\0', len)) {
        vr_err(err, errlen, "holds a NUL byte; not a volume record");
        return -1;
    }
    memcpy(text, buf, len);
    text[len] = '\0';
    for (p = text; *p; p = nl ? nl + 1 : p + strlen(p)) {
        char *key = p, *v, *end;

        line++;
        if ((nl = strchr(p, '\n')))
            *nl = '\0';
        end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            *--end = '\0';
        while (*key == ' ' || *key == '\t')
            key++;
        if (!*key || *key == '#')
            continue;
        if (!(v = strpbrk(key, " \t"))) {
            vr_err(err, errlen, "line %u: '%.32s' has no value (expected KEY VALUE)", line,
                   key);
            return -1;
        }
        *v++ = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        if (vr_line(key, v, r, &seen, line, err, errlen) < 0)
            return -1;
        if (!nl)
            break;
    }
    if (!r->image[0] || !r->target[0]) {
        vr_err(err, errlen, "no %s line; a record names the image and the target",
               r->image[0] ? "target" : "image");
        return -1;
    }
    return 0;
}

int
ppf_volrec_format(const struct ppf_volrec *r, char *buf, size_t len)
{
    int k = snprintf(buf, len, "image %s\ntenant %s\n%s%s%starget %s\n", r->image, r->tenant,
                     r->mode >= 0 ? "mode " : "",
                     r->mode < 0 ? "" : r->mode == PPF_VOLREC_COPY ? "copy" : "overlay",
                     r->mode >= 0 ? "\n" : "", r->target);

    return vr_fits(k, len) < 0 ? -1 : k;
}

int
ppf_volrec_load(const char *path, struct ppf_volrec *r, char *err, size_t errlen)
{
    CLEANUP_CLOSE int fd = -1;
    char buf[PPF_VOLREC_MAX + 1], why[256];
    struct stat st;
    size_t n = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        vr_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        vr_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        vr_err(err, errlen, "%s: not a regular file; remove it", path);
        return -1;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, sizeof buf - n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            vr_err(err, errlen, "%s: read: %s", path, strerror(errno));
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n == sizeof buf)
            break;              /* too long: parse says so */
    }
    if (ppf_volrec_parse(buf, n, r, why, sizeof why) < 0) {
        vr_err(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 1;
}

/* ppf-qemu-hook's parse cache (see domcache.h).
 *
 * File name: two 64-bit FNV-1a hashes of the XML (different offsets) and
 * its length.  Content, one record a line, names never hold spaces
 * (ppf_name_ok), the target comes last and may:
 *   ppf-hook-cache 1
 *   uuid UUID|-
 *   deploy IMAGE TENANT DEV|- MODE EPHEMERAL PLACEHOLDER TARGET
 *   vol POOL VOLUME DEV|- FORMAT|-
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks/domcache.h"
#include "ppf/protocol.h"

#define DC_MAGIC "ppf-hook-cache 1"

const char *
ppf_hook_cache_dir(void)
{
    const char *d = getenv("PPF_HOOK_CACHE_DIR");

    return d && d[0] == '/' ? d : PPF_HOOK_CACHE_DIR;
}

static uint64_t
dc_fnv(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int
dc_path(const char *dir, const char *xml, size_t len, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "%s/%016" PRIx64 "%016" PRIx64 "-%zu", dir,
                     dc_fnv(xml, len, 0xcbf29ce484222325ull),
                     dc_fnv(xml, len, 0x84222325cbf29ce4ull), len);

    return k > 0 && (size_t)k < cap ? 0 : -1;
}

/* "-" stands for an empty field. */
static const char *
dc_out(const char *s)
{
    return s[0] ? s : "-";
}

static int
dc_in(const char *s, char *dst, size_t cap)
{
    if (strcmp(s, "-") == 0)
        s = "";
    if (strlen(s) >= cap || ppf_has_control(s))
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int
dc_line(char *line, struct ppf_hook_domain *dom)
{
    char a[300], b[300], c[300], d[300];
    int mode, eph, ph, n = 0;

    if (sscanf(line, "uuid %299s", a) == 1) {
        if (strcmp(a, "-") != 0 && !ppf_uuid_ok(a))
            return -1;
        return dc_in(a, dom->uuid, sizeof dom->uuid);
    }
    if (sscanf(line, "deploy %299s %299s %299s %d %d %d %n", a, b, c, &mode, &eph, &ph,
               &n) == 6 && n > 0) {
        struct ppf_hook_deploy *p = &dom->deploy;
        char *target = line + n;

        target[strcspn(target, "\n")] = '\0';
        if (!ppf_name_ok(a) || !ppf_name_ok(b) || mode < -1 || mode > 1 || eph < -1 ||
            eph > 1 || ph < 0 || ph > 1 || target[0] != '/' ||
            dc_in(a, p->image, sizeof p->image) < 0 || dc_in(b, p->tenant, sizeof p->tenant) < 0 ||
            dc_in(c, p->dev, sizeof p->dev) < 0 || dc_in(target, p->target, sizeof p->target) < 0)
            return -1;
        p->mode = mode;
        p->ephemeral = eph;
        p->placeholder = ph;
        memcpy(p->uuid, dom->uuid, sizeof p->uuid);
        dom->has_deploy = 1;
        return 0;
    }
    if (sscanf(line, "vol %299s %299s %299s %299s", a, b, c, d) == 4) {
        struct ppf_hook_voldisk *v, *nv;

        if (!ppf_name_ok(a) || !ppf_name_ok(b) || dom->nvols >= 256)
            return -1;
        nv = realloc(dom->vols, (dom->nvols + 1) * sizeof *nv);
        if (!nv)
            return -1;
        dom->vols = nv;
        v = &dom->vols[dom->nvols];
        memset(v, 0, sizeof *v);
        if (dc_in(a, v->pool, sizeof v->pool) < 0 || dc_in(b, v->volume, sizeof v->volume) < 0 ||
            dc_in(c, v->dev, sizeof v->dev) < 0 || dc_in(d, v->format, sizeof v->format) < 0)
            return -1;
        dom->nvols++;
        return 0;
    }
    return -1;
}

int
ppf_hook_cache_load(const char *dir, const char *xml, size_t len, struct ppf_hook_domain *dom)
{
    char path[4096], line[PPF_HOOK_PATH_MAX + 1200];
    FILE *fp;
    int ok;

    memset(dom, 0, sizeof *dom);
    dom->deploy.mode = dom->deploy.ephemeral = -1;
    if (dc_path(dir, xml, len, path, sizeof path) < 0 || !(fp = fopen(path, "re")))
        return 0;
    ok = fgets(line, sizeof line, fp) && strncmp(line, DC_MAGIC "\n", sizeof DC_MAGIC) == 0;
    while (ok && fgets(line, sizeof line, fp))
        ok = strchr(line, '\n') && dc_line(line, dom) == 0;
    fclose(fp);
    if (!ok) {
        ppf_hook_domain_free(dom);
        memset(dom, 0, sizeof *dom);
        dom->deploy.mode = dom->deploy.ephemeral = -1;
        return 0;
    }
    return 1;
}

/* Starts over when the cache holds too many files. */
static void
dc_trim(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    unsigned n = 0;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    if (n >= PPF_HOOK_CACHE_MAX) {
        rewinddir(d);
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

void
ppf_hook_cache_store(const char *dir, const char *xml, size_t len,
                     const struct ppf_hook_domain *dom)
{
    char path[4096], tmp[4200];
    struct stat st;
    FILE *fp;
    int fd, bad = 0;

    if (dc_path(dir, xml, len, path, sizeof path) < 0)
        return;
    /* the default lives in /run/ppf; ours alone */
    if (mkdir(dir, 0700) < 0 && errno == ENOENT) {
        char parent[4096];
        char *slash;

        snprintf(parent, sizeof parent, "%s", dir);
        if ((slash = strrchr(parent, '/')) && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0755);
        }
        mkdir(dir, 0700);
    }
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077))
        return;                 /* not a directory only we can write: no cache */
    dc_trim(dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || !(fp = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        return;
    }
    fprintf(fp, DC_MAGIC "\nuuid %s\n", dc_out(dom->uuid));
    if (dom->has_deploy) {
        const struct ppf_hook_deploy *p = &dom->deploy;

        bad |= strchr(p->dev, ' ') != NULL || strchr(p->target, '\n') != NULL;
        fprintf(fp, "deploy %s %s %s %d %d %d %s\n", p->image, p->tenant, dc_out(p->dev),
                p->mode, p->ephemeral, p->placeholder, p->target);
    }
    for (size_t i = 0; i < dom->nvols; i++) {
        const struct ppf_hook_voldisk *v = &dom->vols[i];

        bad |= strchr(v->dev, ' ') != NULL || strchr(v->format, ' ') != NULL;
        fprintf(fp, "vol %s %s %s %s\n", v->pool, v->volume, dc_out(v->dev),
                dc_out(v->format));
    }
    if (fclose(fp) != 0 || bad || rename(tmp, path) < 0)
        unlink(tmp);
}

/* The card's configuration store (see config.h).  The file is a small
 * frame around the encoded policy: "PPFS", u32 frame version, u64
 * generation, u32 length, u32 reserved, u64 FNV-1a of the blob, the blob.
 * It is replaced atomically (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves the old or the new policy, never a mix; a
 * frame that does not check out is set aside and reported.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "peripheral/config.h"

#define CFG_MAGIC "PPFS"
#define CFG_FRAME_VERSION 1u
#define CFG_HDR 32u
#define CFG_MAX (CFG_HDR + PPF_POLICY_MAX_ENCODED)

struct ppf_fw_config {
    char *dir;
    char *path;
    struct ppf_policy *policy;
    uint64_t generation;
    uint8_t *blob;              /* the encoded policy in force */
    size_t blob_len;
};

static uint64_t
cfg_fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Makes the encoded form of c->policy current in c->blob. */
static int
cfg_encode_current(struct ppf_fw_config *c)
{
    uint8_t *buf = malloc(PPF_POLICY_MAX_ENCODED);
    size_t len;

    if (!buf)
        return -1;
    if (ppf_policy_encode(c->policy, buf, PPF_POLICY_MAX_ENCODED, &len) < 0) {
        free(buf);
        return -1;
    }
    free(c->blob);
    c->blob = buf;
    c->blob_len = len;
    return 0;
}

static void
cfg_set_aside(struct ppf_fw_config *c, const char *why)
{
    char aside[4096];

    snprintf(aside, sizeof aside, "%s.corrupt-%lld", c->path, (long long)time(NULL));
    if (rename(c->path, aside) == 0)
        ppf_err("config", "%s: %s; moved it to %s and started with the default policy: "
                "apply a policy again with 'ppfctl policy apply FILE'", c->path, why, aside);
    else
        ppf_err("config", "%s: %s; using the default policy (could not move it aside: %m)",
                c->path, why);
}

/* Reads the frame; 0 loaded, 1 no file, -1 corrupt (reported). */
static int
cfg_load(struct ppf_fw_config *c)
{
    uint8_t *buf = NULL;
    struct ppf_policy *p = NULL;
    char err[256];
    uint32_t ver, len;
    uint64_t gen, sum;
    ssize_t n;
    int fd, r = -1;

    fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        ppf_err("config", "%s: cannot read: %m; using the default policy", c->path);
        return -1;
    }
    buf = malloc(CFG_MAX + 1);
    if (!buf) {
        close(fd);
        return -1;
    }
    n = read(fd, buf, CFG_MAX + 1);
    close(fd);
    if (n < (ssize_t)CFG_HDR || memcmp(buf, CFG_MAGIC, 4) != 0) {
        cfg_set_aside(c, n < 0 ? "unreadable" : "not a ppf policy store");
        goto out;
    }
    memcpy(&ver, buf + 4, 4);
    memcpy(&gen, buf + 8, 8);
    memcpy(&len, buf + 16, 4);
    memcpy(&sum, buf + 24, 8);
    if (ver != CFG_FRAME_VERSION) {
        cfg_set_aside(c, "written by an unknown version of ppf");
        goto out;
    }
    if (len > PPF_POLICY_MAX_ENCODED || (size_t)n != CFG_HDR + len ||
        cfg_fnv1a(buf + CFG_HDR, len) != sum) {
        cfg_set_aside(c, "truncated or damaged (checksum mismatch)");
        goto out;
    }
    if (ppf_policy_decode(buf + CFG_HDR, len, &p, err, sizeof err) < 0) {
        cfg_set_aside(c, err);
        goto out;
    }
    ppf_policy_free(c->policy);
    c->policy = p;
    c->generation = gen;
    r = cfg_encode_current(c) < 0 ? -1 : 0;
out:
    free(buf);
    return r;
}

/* Writes blob as the new store, atomically. */
static int
cfg_store(struct ppf_fw_config *c, const uint8_t *blob, uint32_t len, uint64_t gen,
          char *err, size_t errlen)
{
    char tmp[4096];
    uint8_t hdr[CFG_HDR] = { 0 };
    uint32_t ver = CFG_FRAME_VERSION;
    uint64_t sum = cfg_fnv1a(blob, len);
    int fd, dfd;

    memcpy(hdr, CFG_MAGIC, 4);
    memcpy(hdr + 4, &ver, 4);
    memcpy(hdr + 8, &gen, 8);
    memcpy(hdr + 16, &len, 4);
    memcpy(hdr + 24, &sum, 8);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", c->path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    if (write(fd, hdr, sizeof hdr) != (ssize_t)sizeof hdr ||
        write(fd, blob, len) != (ssize_t)len || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved ? saved : EIO;
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp, c->path) < 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    snprintf(err, errlen, "the peripheral cannot save the policy in %s: %s; nothing "
             "was changed", c->dir, strerror(errno));
    ppf_err("config", "%s", err);
    return -1;
}

int
ppf_fw_config_open(const char *state_dir, struct ppf_fw_config **out)
{
    struct ppf_fw_config *c = calloc(1, sizeof *c);

    *out = NULL;
    if (!c)
        return -1;
    c->dir = strdup(state_dir);
    if (c->dir && asprintf(&c->path, "%s/%s", state_dir, PPF_CONFIG_FILE) < 0)
        c->path = NULL;
    c->policy = ppf_policy_new();
    if (!c->dir || !c->path || !c->policy || cfg_encode_current(c) < 0) {
        ppf_fw_config_free(c);
        errno = ENOMEM;
        return -1;
    }
    switch (cfg_load(c)) {
    case 0:
        ppf_info("config", "policy generation %" PRIu64 " loaded from %s", c->generation,
                 c->path);
        break;
    case 1:
        ppf_info("config", "no policy in %s yet: using the defaults", c->dir);
        break;
    default:
        break;                  /* reported; defaults in force */
    }
    *out = c;
    return 0;
}

void
ppf_fw_config_free(struct ppf_fw_config *c)
{
    if (!c)
        return;
    ppf_policy_free(c->policy);
    free(c->blob);
    free(c->path);
    free(c->dir);
    free(c);
}

const struct ppf_policy *
ppf_fw_config_policy(const struct ppf_fw_config *c)
{
    return c->policy;
}

uint64_t
ppf_fw_config_generation(const struct ppf_fw_config *c)
{
    return c->generation;
}

static uint32_t
cfg_reply(uint8_t *out, uint32_t cap, const char *msg)
{
    size_t n = strlen(msg);

    if (cap == 0)
        return 0;
    if (n > cap)
        n = cap;
    memcpy(out, msg, n);
    return (uint32_t)n;
}

enum ppf_status_code
ppf_fw_config_configure(struct ppf_fw_config *c, const struct ppf_sqe *e, const uint8_t *in,
                        uint8_t *out, uint32_t *result, uint32_t *out_len)
{
    struct ppf_policy *p = NULL;
    char err[512];

    *result = 0;
    *out_len = 0;
    switch (e->arg[0]) {
    case PPF_CONFIGURE_GET:
        *result = (uint32_t)c->generation;
        if (c->blob_len > e->out_cap) {
            *result = (uint32_t)c->blob_len;        /* what it takes */
            return PPF_SC_DATA_TOO_LONG;
        }
        memcpy(out, c->blob, c->blob_len);
        *out_len = (uint32_t)c->blob_len;
        return PPF_SC_SUCCESS;
    case PPF_CONFIGURE_SET:
        break;
    default:
        *out_len = cfg_reply(out, e->out_cap, "CONFIGURE: arg[0] must be 0 (set) or 1 (get)");
        return PPF_SC_INVALID_FIELD;
    }
    if (ppf_policy_decode(in, e->in_len, &p, err, sizeof err) < 0) {
        ppf_warn("config", "refused a policy: %s", err);
        *out_len = cfg_reply(out, e->out_cap, err);
        return PPF_SC_INVALID_PAYLOAD;
    }
    /* persist first: what is in force is always what a restart finds */
    if (cfg_store(c, in, e->in_len, c->generation + 1, err, sizeof err) < 0) {
        ppf_policy_free(p);
        *out_len = cfg_reply(out, e->out_cap, err);
        return PPF_SC_NO_SPACE;
    }
    ppf_policy_free(c->policy);
    c->policy = p;
    c->generation++;
    if (cfg_encode_current(c) < 0) {
        *out_len = cfg_reply(out, e->out_cap, "out of memory");
        return PPF_SC_INTERNAL;
    }
    ppf_info("config", "policy generation %" PRIu64 " applied and saved in %s",
             c->generation, c->path);
    *result = (uint32_t)c->generation;
    return PPF_SC_SUCCESS;
}

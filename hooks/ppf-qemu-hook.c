/* ppf-qemu-hook: libvirt's qemu hook for ppf (installed in
 * /etc/libvirt/hooks/qemu.d/).  libvirt runs it as NAME OP SUBOP EXTRA with
 * the domain XML on stdin and only LC_ALL, PATH and HOME in the
 * environment.  On "prepare" it deploys the disk a domain's ppf:deploy
 * metadata asks for, and each of its disks that is a volume of a ppf pool
 * made by ppfctl vol-create (hooks/volrec.h: the record says what image;
 * the empty placeholder vol-create left is replaced), by DEPLOY to the
 * peripheral, or on the host with image/ and materialize when the
 * peripheral is down and the policy allows it; on "release" it unpins what
 * the domain pinned; on "reconnect" (libvirtd restarted and found the
 * domain running) it pins its disks' bases for the domain again.  Domains
 * with neither, and every other operation, exit 0 at once.  It never calls
 * libvirt (a hook that calls the QEMU driver deadlocks).
 *
 * Output: nothing on success (virsh would not show it); on a failed
 * prepare exactly one line, "ppf: domain NAME: disk PATH: reason", which
 * virsh prints, and exit 1.  release never fails a stop, and reconnect
 * never fails either (libvirt kills a domain whose reconnect hook fails):
 * their problems are one line on stderr and exit 0.
 *
 * Two programs are built from this file.  ppf-qemu-hook links only libc,
 * libxml2 and libppf, because libvirt runs it for every domain and loading
 * libcurl and GnuTLS alone costs ~18 ms; it deploys through the
 * peripheral.  When the peripheral cannot be reached it hands the domain
 * XML (in a memfd on stdin) to ppf-qemu-hook-fallback (built with
 * PPF_HOOK_FALLBACK_WORKER), which links image/, policy/ and materialize
 * and deploys on the host.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "hooks/domcache.h"
#include "hooks/hook.h"
#include "hooks/volrec.h"
#include "ppf/ppf.h"
#include "ppf/protocol.h"
#ifdef PPF_HOOK_FALLBACK_WORKER
#include "image/image.h"
#include "peripheral/materialize.h"
#include "policy/policy.h"
#endif

#ifndef PPF_HOOK_FALLBACK_PATH
#define PPF_HOOK_FALLBACK_PATH "/usr/local/libexec/ppf-qemu-hook-fallback"
#endif
#define HOOK_ENV_FALLBACK     "PPF_HOOK_FALLBACK"   /* tests: the worker to run */

#define HOOK_DEFAULT_POLICY   "/etc/ppf/policy.yaml"
#define HOOK_ENV_POLICY       "PPF_POLICY"
#define HOOK_DEPLOY_MS        600000      /* a miss fetches the whole image */
#define HOOK_CLAIM_MS         30000       /* all I/O pairs busy */
#define HOOK_RELEASE_MS       30000
/* reconnect holds libvirtd's job on a running domain: answer within
 * seconds (an EXISTS takes microseconds) rather than wait on a stuck
 * peripheral */
#define HOOK_RECONNECT_CLAIM_MS 5000
#define HOOK_RECONNECT_MS     10000
#define HOOK_IN_MAX           8192
#define HOOK_FALLBACK_DIR     "hostfallback"

struct hook {
    const char *name;           /* the domain, as libvirt named it (argv[1]) */
    const char *pool_dir;       /* ppf's pool state: $PPF_POOL_DIR or the default */
    struct ppf_hook_deploy d;   /* the deploy at hand (messages name its disk) */
    struct ppf_hook_deploy *v;  /* every deploy the domain asks for */
    size_t n;
};

/* The one line virsh shows: "ppf: domain NAME: disk PATH: reason". */
static void __attribute__((format(printf, 2, 3)))
hook_fail(const struct hook *h, const char *fmt, ...)
{
    char msg[1024], line[1024 + PPF_HOOK_PATH_MAX + 300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h->d.target[0])
        snprintf(line, sizeof line, "ppf: domain %.255s: disk %s: %s", h->name, h->d.target,
                 msg);
    else
        snprintf(line, sizeof line, "ppf: domain %.255s: %s", h->name, msg);
    for (char *p = line; *p; p++)       /* one line, whatever the name holds */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "%s\n", line);
}

/* ---- host-side fallback (the peripheral is not running) ----------------- */
#ifdef PPF_HOOK_FALLBACK_WORKER

/* The policy in force for the fallback: $PPF_POLICY or /etc/ppf/policy.yaml,
 * the defaults if the file does not exist.  NULL if unusable (reported). */
static struct ppf_policy *
hook_policy(const struct hook *h)
{
    const char *path = getenv(HOOK_ENV_POLICY);
    struct ppf_policy_diags diags;
    struct ppf_policy *p = NULL;

    if (!path || !path[0])
        path = HOOK_DEFAULT_POLICY;
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        if (!(p = ppf_policy_new()))
            hook_fail(h, "out of memory for the default policy");
        return p;
    }
    ppf_policy_diags_init(&diags);
    if (ppf_policy_parse_file(path, &p, &diags) < 0) {
        const struct ppf_policy_diag *g = diags.n ? &diags.v[0] : NULL;

        if (g && g->line)
            hook_fail(h, "the peripheral is not running and the policy is unusable: "
                      "%s:%u:%u: %s%s%s", g->file ? g->file : path, g->line, g->column,
                      g->path ? g->path : "", g->path && g->path[0] ? ": " : "", g->msg);
        else
            hook_fail(h, "the peripheral is not running and the policy %s is unusable: %s",
                      path, g ? g->msg : "unknown error");
        p = NULL;
    }
    ppf_policy_diags_free(&diags);
    return p;
}

/* Opens image for tenant t from the first store that has it (as the
 * peripheral does).  0 and *img, or -1 with msg set. */
static int
hook_open_image(const struct ppf_policy *p, const struct ppf_policy_tenant *t,
                const char *image, struct ppf_img **img, char *msg, size_t msglen)
{
    uint8_t key[PPF_IMG_KEY_SIZE];
    struct ppf_img_err err = { 0 };
    int have_key = 0, rc = -1;

    *img = NULL;
    if (t->keyfile) {
        if (ppf_img_key_load(t->keyfile, key, &err) < 0) {
            snprintf(msg, msglen, "tenant %s: %s", t->name, err.msg);
            return -1;
        }
        have_key = 1;
    }
    snprintf(msg, msglen, "image %s is in none of the policy's stores", image);
    for (size_t i = 0; i < p->nstores; i++) {
        const struct ppf_policy_store *s = &p->stores[i];
        struct ppf_img_open_opts o = { .ca_file = s->ca_file, .pinned_pubkey = s->pinned_cert };
        char src[PATH_MAX + 300];

        snprintf(src, sizeof src, "%s/%s.ppfi", s->url, image);
        if (strncmp(s->url, "file://", 7) == 0 && access(src + 7, F_OK) < 0)
            continue;
        if (ppf_img_open(src, have_key ? key : NULL, &o, img, &err) == 0) {
            rc = 0;
            break;
        }
        snprintf(msg, msglen, "%s", err.msg);
        if (err.code == PPF_IMG_EBAD)
            break;              /* found, but bad or the wrong key */
    }
    if (have_key)
        ppf_img_wipe(key, sizeof key);
    return rc;
}

/* mkdir -p of a directory we own, 0700.  0 or -1 (errno). */
static int
hook_mkdirs(const char *path)
{
    char tmp[PATH_MAX];

    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == '\0')
                return 0;
        }
    }
}

/* Writes text to path through a temporary file and a rename.  0 or -1. */
static int
hook_write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 16];
    FILE *fp;
    int fd, ok;

    if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0)
        return -1;
    if (!(fp = fdopen(fd, "w"))) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    ok = fputs(text, fp) >= 0 && fflush(fp) == 0 && fsync(fd) == 0;
    ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The prepared base for (tenant, image) on the host:
 * BUFFER/hostfallback/TENANT/IMAGE.raw, unpacked (every chunk and the
 * content digest verified) unless a copy whose recorded digest and size
 * match the image's is already there.  Sets base and *size.  0 or -1
 * (reported). */
static int
hook_host_base(const struct hook *h, const struct ppf_policy *p,
               const struct ppf_policy_tenant *t, char *base, size_t baselen, uint64_t *size)
{
    char dir[PATH_MAX], digfile[PATH_MAX + 16], lockfile[PATH_MAX + 16];
    char hex[2 * PPF_IMG_DIGEST_SIZE + 2], have[sizeof hex + 2], msg[600];
    struct ppf_img_info info;
    struct ppf_img_err err = { 0 };
    struct ppf_img *img;
    struct stat st;
    CLEANUP_CLOSE int lockfd = -1;
    FILE *fp;
    long nproc;

    if (hook_open_image(p, t, h->d.image, &img, msg, sizeof msg) < 0) {
        hook_fail(h, "the peripheral is not running; host fallback: %s", msg);
        return -1;
    }
    ppf_img_info(img, &info);
    *size = info.size;
    ppf_img_hex(info.digest, sizeof info.digest, hex);
    strcat(hex, "\n");
    if (snprintf(dir, sizeof dir, "%s/%s/%s", p->buffer.path, HOOK_FALLBACK_DIR,
                 t->name) >= (int)sizeof dir ||
        snprintf(base, baselen, "%s/%s.raw", dir, h->d.image) >= (int)baselen) {
        hook_fail(h, "host fallback: the path under buffer.path %s is too long",
                  p->buffer.path);
        goto fail;
    }
    snprintf(digfile, sizeof digfile, "%s.digest", base);
    snprintf(lockfile, sizeof lockfile, "%s.lock", base);
    if (hook_mkdirs(dir) < 0) {
        hook_fail(h, "host fallback: cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* concurrent hooks for one image unpack it once */
    if ((lockfd = open(lockfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0 ||
        flock(lockfd, LOCK_EX) < 0) {
        hook_fail(h, "host fallback: cannot lock %s: %s", lockfile, strerror(errno));
        goto fail;
    }
    have[0] = '\0';
    if ((fp = fopen(digfile, "re"))) {
        if (!fgets(have, sizeof have, fp))
            have[0] = '\0';
        fclose(fp);
    }
    if (strcmp(have, hex) == 0 && lstat(base, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size == info.size) {
        ppf_img_close(img);
        return 0;               /* already there, from this very image */
    }
    unlink(digfile);
    nproc = sysconf(_SC_NPROCESSORS_ONLN);
    {
        struct ppf_img_unpack_opts o = {
            .threads = nproc < 1 ? 1 : nproc > 8 ? 8 : (unsigned)nproc,
            .format = PPF_IMG_FORMAT_RAW, .overwrite = 1, .verify_digest = 1,
        };

        if (ppf_img_unpack(img, base, &o, &err) < 0) {
            hook_fail(h, "the peripheral is not running; host fallback: %s", err.msg);
            goto fail;
        }
    }
    if (hook_write_file(digfile, hex) < 0) {
        hook_fail(h, "host fallback: cannot write %s: %s", digfile, strerror(errno));
        goto fail;
    }
    ppf_img_close(img);
    return 0;
fail:
    ppf_img_close(img);
    return -1;
}

/* 1 if the target is an empty regular file: a pool volume's placeholder. */
static int
hook_is_placeholder(const struct ppf_target *tg)
{
    struct stat st;

    return fstatat(tg->dirfd, tg->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode) && st.st_size == 0;
}

/* Deploys h->d on the host with policy p.  0 or 1 (reported). */
static int
hook_fallback_one(const struct hook *h, const struct ppf_policy *p)
{
    const struct ppf_policy_tenant *t;
    struct ppf_target tg = { .dirfd = -1 };
    char base[PATH_MAX], msg[600];
    uint64_t size = 0;
    int ephemeral, mode, replace, ex, rc = 1;

    if (!(t = ppf_policy_find_tenant(p, h->d.tenant))) {
        hook_fail(h, "the peripheral is not running, and tenant %s is not in the policy; "
                  "add it under tenants:", h->d.tenant);
        return 1;
    }
    ephemeral = h->d.ephemeral >= 0 ? h->d.ephemeral : p->deploy.ephemeral;
    mode = h->d.mode >= 0 ? h->d.mode : (int)p->deploy.mode;
    replace = ephemeral ? PPF_REPLACE_ALWAYS :
              h->d.placeholder ? PPF_REPLACE_PLACEHOLDER : PPF_REPLACE_NEVER;
    if (ppf_target_resolve(h->d.target, (const char *const *)p->deploy.dirs, p->deploy.ndirs,
                           &tg, msg, sizeof msg) < 0) {
        hook_fail(h, "host fallback: %s", msg);
        goto out;
    }
    if ((ex = ppf_target_exists(&tg)) < 0) {
        hook_fail(h, "host fallback: cannot check the disk: %s", strerror(errno));
        goto out;
    }
    if (ex == 1 && replace == PPF_REPLACE_NEVER) {
        rc = 0;                 /* the user's disk: kept, as the peripheral would */
        goto out;
    }
    if (ex == 1 && replace == PPF_REPLACE_PLACEHOLDER && !hook_is_placeholder(&tg)) {
        rc = 0;                 /* the volume was deployed before: kept */
        goto out;
    }
    if (hook_host_base(h, p, t, base, sizeof base, &size) < 0)
        goto out;
    if (mode == PPF_DEPLOY_COPY ?
        ppf_copy_create(&tg, base, replace, 0600, msg, sizeof msg) :
        ppf_overlay_create(&tg, base, size, replace, 0600, msg, sizeof msg)) {
        if (errno == EEXIST && replace != PPF_REPLACE_ALWAYS)
            rc = 0;             /* appeared (or was written) meanwhile: kept */
        else
            hook_fail(h, "host fallback: %s", msg);
        goto out;
    }
    rc = 0;
out:
    ppf_target_close(&tg);
    return rc;
}

/* Deploys every disk of h on the host with the policy's stores, keys and
 * deploy.dirs.  Returns the exit status. */
static int
hook_fallback(struct hook *h, const char *why)
{
    struct ppf_policy *p;
    int rc = 0;

    if (h->n)
        h->d = h->v[0];         /* messages before the loop name the first disk */
    if (!(p = hook_policy(h)))
        return 1;
    if (p->deploy.fallback == PPF_FALLBACK_FAIL) {
        hook_fail(h, "the peripheral is not running and deploy.fallback is fail (%s); "
                  "start ppf-peripheral", why);
        rc = 1;
    }
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        h->d = h->v[i];
        rc = hook_fallback_one(h, p);
    }
    ppf_policy_free(p);
    return rc;
}

#else /* !PPF_HOOK_FALLBACK_WORKER */

/* Runs ppf-qemu-hook-fallback in this process (exec) with the same
 * arguments, the reason the peripheral is unreachable as a fifth, and the
 * domain XML on stdin.  Returns only on failure (reported), with 1. */
static int
hook_exec_fallback(const struct hook *h, int argc, char **argv, const char *xml,
                   size_t len, const char *why)
{
    const char *worker = getenv(HOOK_ENV_FALLBACK);
    char *args[7];
    int fd;

    if (!worker || !worker[0])
        worker = PPF_HOOK_FALLBACK_PATH;
    fd = memfd_create("ppf-domain-xml", MFD_CLOEXEC);
    if (fd < 0) {
        hook_fail(h, "the peripheral is not running (%s), and the host fallback cannot "
                  "start: memfd_create: %s", why, strerror(errno));
        return 1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, xml + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            hook_fail(h, "the peripheral is not running (%s), and the host fallback cannot "
                      "start: writing the domain XML: %s", why, strerror(errno));
            close(fd);
            return 1;
        }
        off += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, STDIN_FILENO) < 0) {
        hook_fail(h, "the peripheral is not running (%s), and the host fallback cannot "
                  "start: %s", why, strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    args[0] = (char *)worker;
    for (int i = 1; i < 5; i++)
        args[i] = i < argc ? argv[i] : (char *)"-";
    args[5] = (char *)why;
    args[6] = NULL;
    execv(worker, args);
    hook_fail(h, "the peripheral is not running (%s), and the host fallback %s cannot be "
              "run: %s; reinstall ppf", why, worker, strerror(errno));
    return 1;
}

/* ---- talking to the peripheral ------------------------------------------ */

/* Opens the device and claims an I/O pair.  1 if the peripheral cannot be
 * reached (why set), 0 on success, -1 on another failure (why set). */
static int
hook_connect(struct ppf_dev **devp, struct ppf_qp **qpp, int claim_ms, char *why,
             size_t whylen)
{
    *qpp = NULL;
    if (ppf_dev_open(NULL, devp) < 0) {
        snprintf(why, whylen, "%s", ppf_error());
        return 1;
    }
    if (ppf_qp_claim(*devp, PPF_QP_IO, claim_ms, qpp) < 0) {
        snprintf(why, whylen, "%s", ppf_error());
        ppf_dev_close(*devp);
        *devp = NULL;
        return errno == ENODEV ? 1 : -1;
    }
    return 0;
}

static uint8_t *
hook_alloc_out(struct ppf_dev *dev, uint32_t *cap)
{
    struct ppf_dev_info info;

    ppf_dev_get_info(dev, &info);
    *cap = info.slot_size;
    return malloc(*cap ? *cap : 1);
}

/* Sends h->d's DEPLOY on qp and waits up to ms.  For a reconnect never
 * as ephemeral and never replacing a placeholder: a running domain's disk
 * is left as it is.  The answer is in *cmd (its output in out, cap bytes).
 * 0, or -1 with a one-line reason in why. */
static int
hook_deploy(const struct hook *h, struct ppf_dev *dev, struct ppf_qp *qp, int reconnect,
            int ms, struct ppf_cmd *cmd, uint8_t *out, uint32_t cap, char *why,
            size_t whylen)
{
    struct ppf_dev_info info;
    struct ppf_attr_writer w;
    uint8_t in[HOOK_IN_MAX];
    int ephemeral = reconnect ? 0 : h->d.ephemeral;

    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, h->d.image);
    ppf_attr_put_str(&w, PPF_A_TENANT, h->d.tenant);
    ppf_attr_put_str(&w, PPF_A_DOMAIN, h->d.uuid);
    ppf_attr_put_str(&w, PPF_A_TARGET, h->d.target);
    if (h->d.mode >= 0)
        ppf_attr_put_u32(&w, PPF_A_MODE, (uint32_t)h->d.mode);
    if (ephemeral >= 0)
        ppf_attr_put_u32(&w, PPF_A_EPHEMERAL, (uint32_t)ephemeral);
    if (h->d.placeholder && !reconnect)
        ppf_attr_put_u32(&w, PPF_A_PLACEHOLDER, 1);
    ppf_dev_get_info(dev, &info);
    if (w.overflow || w.len > info.slot_size) {
        snprintf(why, whylen, "the DEPLOY request does not fit the peripheral's %u-byte "
                 "command slot; use a shorter path", info.slot_size);
        return -1;
    }
    memset(cmd, 0, sizeof *cmd);
    cmd->opcode = PPF_OP_DEPLOY;
    cmd->in = w.buf;
    cmd->in_len = (uint32_t)w.len;
    cmd->out = out;
    cmd->out_cap = cap;
    if (ppf_exec(qp, cmd, ms) < 0) {
        snprintf(why, whylen, "deploying image %s: %s", h->d.image, ppf_error());
        return -1;
    }
    return 0;
}

/* The peripheral's refusal of a DEPLOY, as one line in why. */
static void
hook_refusal(const struct hook *h, const struct ppf_cmd *cmd, char *why, size_t whylen)
{
    char reason[PPF_HOOK_ERR_MAX - 128];     /* room for the status text */

    ppf_cmd_reason(cmd, reason, sizeof reason);
    if (reason[0])
        snprintf(why, whylen, "%s (%s)", reason, ppf_status_text(cmd->status));
    else
        snprintf(why, whylen, "the peripheral refused to deploy image %s: %s", h->d.image,
                 ppf_status_text(cmd->status));
}

static int
hook_prepare(struct hook *h, int argc, char **argv, const char *xml, size_t len)
{
    struct ppf_dev *dev = NULL;
    struct ppf_qp *qp = NULL;
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_cmd cmd;
    char why[PPF_HOOK_ERR_MAX];
    uint32_t cap;
    int rc = 1, c;

    if ((c = hook_connect(&dev, &qp, HOOK_CLAIM_MS, why, sizeof why)) == 1)
        return hook_exec_fallback(h, argc, argv, xml, len, why);
    if (c < 0) {
        hook_fail(h, "cannot reach the peripheral: %s", why);
        return 1;
    }
    if (!(out = hook_alloc_out(dev, &cap))) {
        hook_fail(h, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < h->n; i++) {
        h->d = h->v[i];
        if (hook_deploy(h, dev, qp, 0, HOOK_DEPLOY_MS, &cmd, out, cap, why, sizeof why) < 0) {
            hook_fail(h, "%s", why);
            goto out;
        }
        /* EXISTS: the disk is there and the deploy is not ephemeral, e.g.
         * a persistent domain restarting: it is the user's disk, keep it */
        if (cmd.status != PPF_SC_SUCCESS && cmd.status != PPF_SC_EXISTS) {
            hook_refusal(h, &cmd, why, sizeof why);
            hook_fail(h, "%s", why);
            goto out;
        }
    }
    rc = 0;
out:
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    return rc;
}

/* libvirtd restarted and reconnected to the running domain: pins the
 * bases its disks are overlays of for the domain again (pins are kept in
 * the peripheral's state, but a peripheral that lost its state, or a
 * release that went astray, leaves a running domain's base evictable).
 * The same DEPLOY as prepare, except that it is sent only if the disk
 * exists (a reconnect never creates a disk) and never as ephemeral or
 * replacing a placeholder (the peripheral must not replace a running
 * domain's disk), so the answer is
 * EXISTS and the peripheral records the pin on the way.  libvirt kills
 * the domain if this hook fails (docs/hooks.rst, qemuProcessReconnect):
 * so it never does; a problem is one line on stderr. */
static int
hook_reconnect(struct hook *h)
{
    struct ppf_dev *dev = NULL;
    struct ppf_qp *qp = NULL;
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_cmd cmd;
    char why[PPF_HOOK_ERR_MAX];
    struct stat st;
    uint32_t cap;

    for (size_t i = 0; i < h->n; i++) {
        h->d = h->v[i];
        if (lstat(h->d.target, &st) < 0) {
            hook_fail(h, "reconnect: the disk is not there (%s); nothing to pin, the domain "
                      "keeps running", strerror(errno));
            continue;
        }
        if (!dev && hook_connect(&dev, &qp, HOOK_RECONNECT_CLAIM_MS, why, sizeof why) != 0) {
            hook_fail(h, "reconnect: cannot reach the peripheral (%s); the domain keeps "
                      "running, but the base of its disk is not pinned for it again", why);
            return 0;
        }
        if (!out && !(out = hook_alloc_out(dev, &cap))) {
            hook_fail(h, "reconnect: out of memory");
            break;
        }
        if (hook_deploy(h, dev, qp, 1, HOOK_RECONNECT_MS, &cmd, out, cap, why, sizeof why) < 0)
            hook_fail(h, "reconnect: %s; the domain keeps running", why);
        else if (cmd.status == PPF_SC_SUCCESS)
            hook_fail(h, "reconnect: the disk vanished meanwhile and was deployed again; "
                      "the running domain still uses the old one");
        else if (cmd.status != PPF_SC_EXISTS) {
            hook_refusal(h, &cmd, why, sizeof why);
            hook_fail(h, "reconnect: %s; the domain keeps running", why);
        }
    }
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    return 0;
}

/* Unpins what the domain pinned.  Never fails the stop: problems are one
 * line on stderr (libvirt keeps it only for a failing hook, see
 * ppf-qemu-hook(8) LOGGING) and 0 returned. */
static int
hook_release(struct hook *h)
{
    struct ppf_dev *dev = NULL;
    struct ppf_qp *qp = NULL;
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_RELEASE };
    uint8_t in[256], out[1024];
    char why[PPF_HOOK_ERR_MAX];

    if (hook_connect(&dev, &qp, HOOK_CLAIM_MS, why, sizeof why) != 0) {
        fprintf(stderr, "ppf: domain %.255s: release: cannot reach the peripheral (%s); "
                "its pins stay until `ppfctl release %s`\n", h->name, why, h->d.uuid);
        return 0;
    }
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_DOMAIN, h->d.uuid);
    cmd.in = w.buf;
    cmd.in_len = (uint32_t)w.len;
    cmd.out = out;
    cmd.out_cap = sizeof out;
    if (ppf_exec(qp, &cmd, HOOK_RELEASE_MS) < 0)
        fprintf(stderr, "ppf: domain %.255s: release: %s\n", h->name, ppf_error());
    else if (cmd.status != PPF_SC_SUCCESS) {
        ppf_cmd_reason(&cmd, why, sizeof why);
        fprintf(stderr, "ppf: domain %.255s: release refused: %s (%s)\n", h->name,
                why[0] ? why : "no reason given", ppf_status_text(cmd.status));
    }
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    return 0;
}

#endif /* !PPF_HOOK_FALLBACK_WORKER */

/* ---- which disks are ppf's ---------------------------------------------- */

/* 1 if pool is a ppf pool: ppfctl pool-define left its state file. */
static int
hook_is_ppf_pool(const char *pool_dir, const char *pool)
{
    char path[PATH_MAX];
    struct stat st;

    return ppf_volrec_pool_state(pool_dir, pool, path, sizeof path) == 0 &&
           stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Before any parsing: 1 if the XML may name a ppf pool (a pool='P' whose
 * state file exists), so that domains using other pools skip libxml2. */
static int
hook_maybe_volumes(const char *pool_dir, const char *xml, size_t len)
{
    char pool[PPF_HOOK_NAME_MAX + 1];
    size_t off = 0;

    while (ppf_hook_next_pool(xml, len, &off, pool, sizeof pool))
        if (hook_is_ppf_pool(pool_dir, pool))
            return 1;
    return 0;
}

/* The mode a volume disk is deployed in: the record's, which the disk's
 * <driver type> must match (libvirt opens a disk without one as raw), or,
 * if the record leaves it to the policy, the driver type's.  -1 with why
 * set. */
static int
hook_volume_mode(const struct ppf_hook_voldisk *vd, const struct ppf_volrec *r, char *why,
                 size_t whylen)
{
    int qcow2 = strcmp(vd->format, "qcow2") == 0;
    int raw = !vd->format[0] || strcmp(vd->format, "raw") == 0;
    const char *dev = vd->dev[0] ? vd->dev : "?";

    if ((r->mode == PPF_VOLREC_OVERLAY || r->mode < 0) && qcow2)
        return PPF_VOLREC_OVERLAY;
    if ((r->mode == PPF_VOLREC_COPY && raw) || (r->mode < 0 && raw && vd->format[0]))
        return PPF_VOLREC_COPY;
    if (r->mode == PPF_VOLREC_OVERLAY)
        snprintf(why, whylen, "volume %s of pool %s is deployed as a qcow2 overlay; give disk "
                 "%s <driver name='qemu' type='qcow2'/> (libvirt would open it as %s)",
                 vd->volume, vd->pool, dev, vd->format[0] ? vd->format : "raw");
    else if (r->mode == PPF_VOLREC_COPY)
        snprintf(why, whylen, "volume %s of pool %s is deployed as a raw copy; give disk %s "
                 "<driver name='qemu' type='raw'/>, not type='%s'", vd->volume, vd->pool, dev,
                 vd->format);
    else
        snprintf(why, whylen, "volume %s of pool %s leaves the mode to the policy; give disk "
                 "%s <driver name='qemu' type='qcow2'/> for an overlay or type='raw' for a "
                 "copy", vd->volume, vd->pool, dev);
    return -1;
}

/* Fills h->v with what dom asks for: its ppf:deploy, then every volume
 * disk with a record in h->pool_dir (deployed to the record's target, over
 * the placeholder, never ephemeral).  A volume named IMAGE.raw in a ppf
 * pool without a record is the pool's read-only prepared image, never a
 * domain's disk: refused.  0; -1 with why set (h->d names the disk in
 * question, h->v holds what was resolved before it). */
static int
hook_collect(struct hook *h, const struct ppf_hook_domain *dom, char *why, size_t whylen)
{
    memset(&h->d, 0, sizeof h->d);
    h->n = 0;
    if (!(h->v = calloc(1 + dom->nvols, sizeof *h->v))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (dom->has_deploy)
        h->v[h->n++] = dom->deploy;
    for (size_t i = 0; i < dom->nvols; i++) {
        const struct ppf_hook_voldisk *vd = &dom->vols[i];
        struct ppf_hook_deploy *d = &h->d;
        struct ppf_volrec r;
        char path[PATH_MAX], err[PPF_HOOK_ERR_MAX];
        int k, mode;

        memset(d, 0, sizeof *d);        /* messages name this disk, once known */
        if (ppf_volrec_path(h->pool_dir, vd->pool, vd->volume, path, sizeof path) < 0)
            continue;           /* no such record can exist */
        if ((k = ppf_volrec_load(path, &r, err, sizeof err)) < 0) {
            snprintf(why, whylen, "volume %s of pool %s: %s; correct the record, or make the "
                     "volume again (ppfctl vol-delete, vol-create)", vd->volume, vd->pool, err);
            return -1;
        }
        if (k == 0) {
            if (!ppf_volrec_is_prepared(vd->volume) || !hook_is_ppf_pool(h->pool_dir, vd->pool))
                continue;       /* not ppf's */
            snprintf(why, whylen, "volume %s in pool %s is ppf's read-only prepared image; "
                     "create a disk from it with: ppfctl vol-create %s NAME --image %.*s",
                     vd->volume, vd->pool, vd->pool,
                     (int)(strlen(vd->volume) - strlen(PPF_VOLREC_PREPARED)), vd->volume);
            return -1;
        }
        memcpy(d->uuid, dom->uuid, sizeof d->uuid);
        snprintf(d->image, sizeof d->image, "%s", r.image);
        snprintf(d->tenant, sizeof d->tenant, "%s", r.tenant);
        snprintf(d->dev, sizeof d->dev, "%s", vd->dev);
        snprintf(d->target, sizeof d->target, "%s", r.target);
        d->ephemeral = 0;       /* a volume is a persistent disk */
        d->placeholder = 1;
        if (!dom->uuid[0]) {
            snprintf(why, whylen, "the domain has no usable <uuid>");
            return -1;
        }
        if ((mode = hook_volume_mode(vd, &r, why, whylen)) < 0)
            return -1;
        d->mode = mode;
        h->v[h->n++] = *d;
    }
    memset(&h->d, 0, sizeof h->d);
    return 0;
}

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: ppf-qemu-hook DOMAIN OPERATION SUB-OPERATION EXTRA < domain.xml\n"
            "libvirt's qemu hook for ppf (in /etc/libvirt/hooks/qemu.d/).  For a domain\n"
            "with ppf:deploy metadata, or disks that are volumes of ppf pools (ppfctl\n"
            "vol-create):\n"
            "  prepare    deploy its disks (DEPLOY to the peripheral; the host fallback\n"
            "             if the peripheral is down and the policy allows it); on\n"
            "             failure one line on stderr and exit 1: the domain does not start\n"
            "  release    unpin what the domain pinned; never fails\n"
            "  reconnect  libvirtd restarted with the domain running: pin its disks'\n"
            "             bases for it again (DEPLOY of the existing disks, answered\n"
            "             EXISTS); never fails, since libvirt kills a domain whose\n"
            "             reconnect hook fails; problems are one line on stderr\n"
            "Every other operation, and every other domain, exits 0 at once.\n"
            "Environment (tests; libvirt passes none): PPF_DEVICE, PPF_POLICY,\n"
            "PPF_HOOK_FALLBACK, PPF_POOL_DIR.  See ppf-qemu-hook(8).\n");
}

/* Runs operation op for h once the domain is parsed; the exit status. */
static int
hook_run(struct hook *h, const struct ppf_hook_domain *dom, int argc, char **argv,
         const char *xml, size_t len)
{
    const char *op = argv[2];
    int prepare = strcmp(op, "prepare") == 0;
    char why[4 * PPF_HOOK_ERR_MAX];     /* names pool, volume, record and reason */

    if (hook_collect(h, dom, why, sizeof why) < 0) {
        hook_fail(h, "%s%s%s", prepare ? "" : op, prepare ? "" : ": ", why);
        if (prepare)
            return 1;           /* release and reconnect go on with what resolved */
    }
    memset(&h->d, 0, sizeof h->d);
#ifdef PPF_HOOK_FALLBACK_WORKER
    (void)xml;
    (void)len;
    return h->n ? hook_fallback(h, argc > 5 ? argv[5] : "unreachable") : 0;
#else
    if (prepare)
        return h->n ? hook_prepare(h, argc, argv, xml, len) : 0;
    if (strcmp(op, "reconnect") == 0)
        return hook_reconnect(h);
    /* release: whatever resolved, a domain with a disk in a ppf pool may
     * hold pins; releasing a domain that holds none is harmless */
    if (!dom->uuid[0] || (!h->n && !dom->nvols))
        return 0;
    memcpy(h->d.uuid, dom->uuid, sizeof h->d.uuid);
    return hook_release(h);
#endif
}

int
main(int argc, char **argv)
{
    struct hook h = { .name = argc > 1 ? argv[1] : "?" };
    struct ppf_hook_domain dom = { .nvols = 0 };
    CLEANUP_FREE char *xml = NULL;
    char err[PPF_HOOK_ERR_MAX];
    size_t len;
    int prepare, reconnect, rc;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("ppf-qemu-hook %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    /* stopped: release follows it.  Anything else is not ours. */
    prepare = strcmp(argv[2], "prepare") == 0;
    reconnect = strcmp(argv[2], "reconnect") == 0;
#ifdef PPF_HOOK_FALLBACK_WORKER
    (void)reconnect;
    if (!prepare)
        return 0;
#else
    if (!prepare && !reconnect && strcmp(argv[2], "release") != 0)
        return 0;
#endif

    if (ppf_hook_read_all(STDIN_FILENO, PPF_HOOK_XML_MAX, &xml, &len, err, sizeof err) < 0) {
        hook_fail(&h, "%s%s%s", prepare ? "" : argv[2], prepare ? "" : ": ", err);
        return prepare;
    }
    h.pool_dir = ppf_volrec_pool_dir();
    if (!ppf_hook_maybe_ppf(xml, len) && !hook_maybe_volumes(h.pool_dir, xml, len))
        return 0;               /* not ppf's: no parse */

    /* the same domain XML parsed before: no libxml2 at all */
    if (ppf_hook_cache_load(ppf_hook_cache_dir(), xml, len, &dom) == 1) {
        rc = 0;
    } else {
        ppf_hook_domain_free(&dom);
        rc = ppf_hook_parse_domain_full(xml, len, &dom, err, sizeof err);
        ppf_hook_xml_cleanup();
        if (rc == 0)
            ppf_hook_cache_store(ppf_hook_cache_dir(), xml, len, &dom);
    }
    if (rc < 0) {
        hook_fail(&h, "%s%s%s", prepare ? "" : argv[2], prepare ? "" : ": ", err);
        rc = prepare;           /* release and reconnect never fail */
    } else {
        rc = hook_run(&h, &dom, argc, argv, xml, len);
    }
    ppf_hook_domain_free(&dom);
    free(h.v);
    return rc;
}

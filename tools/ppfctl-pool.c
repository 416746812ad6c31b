/* ppfctl pool-define | pool-dumpxml | pool-undefine | pool-list |
 * pool-refresh: ppf pools (ppf-pool(5)), libvirt dir pools carrying ppf
 * settings in ppf's namespace.  libvirt silently drops foreign elements in
 * pool XML, so pool-define validates the document (schemas/ppf-pool.rng),
 * strips the ppf element, defines, builds and starts the plain pool through
 * libvirt's public API and keeps the ppf element in a state file
 * (/var/lib/ppf/pools/NAME.xml, or --pool-dir / $PPF_POOL_DIR);
 * pool-dumpxml puts it back.  The buffer's prepared images appear as the
 * pool's volumes through plugin/pools.c; the disks ppf deploys into the
 * pool are made with the vol-* commands (tools/ppfctl-vol.c), which share
 * the helpers here (tools/ppfctl-pool.h).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "plugin/policy-send.h"
#include "plugin/pools.h"
#include "policy/policy.h"
#include "ppf/protocol.h"
#include "tools/pool-xml.h"
#include "tools/ppfctl-pool.h"
#include "tools/ppfctl.h"

#ifndef PPF_SCHEMA_DIR
#define PPF_SCHEMA_DIR "/usr/local/share/ppf/schemas"
#endif

#define POOL_DEFAULT_URI "qemu:///system"
#define POOL_ERR_MAX     4096

/* ---- helpers -------------------------------------------------------------- */

static void
pool_virt_quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;                    /* reported once, by us, with what to do */
}

/* libvirt's last error on one line (its schema errors span several). */
const char *
pool_virt_error(void)
{
    static char buf[1024];
    const char *m = virGetLastErrorMessage();
    size_t n = 0;

    for (const char *p = m ? m : "unknown libvirt error"; *p && n + 3 < sizeof buf; p++) {
        if (*p != '\n')
            buf[n++] = *p;
        else if (p[1]) {
            buf[n++] = ';';
            buf[n++] = ' ';
        }
    }
    buf[n] = '\0';
    return buf;
}

virConnectPtr
pool_connect(const struct pool_opts *o)
{
    virConnectPtr conn;

    virSetErrorFunc(NULL, pool_virt_quiet);
    if (!(conn = virConnectOpen(o->uri)))
        fprintf(stderr, "ppfctl: cannot connect to libvirt at %s: %s; start libvirtd "
                "(scripts/libvirt-up.sh) or name another with --connect URI\n", o->uri,
                pool_virt_error());
    return conn;
}

void
pool_disconnect(virConnectPtr *conn)
{
    if (*conn)
        virConnectClose(*conn);
    *conn = NULL;
}

void
pool_free_pool(virStoragePoolPtr *p)
{
    if (*p)
        virStoragePoolFree(*p);
    *p = NULL;
}

static void
pool_free_policy(struct ppf_policy **p)
{
    ppf_policy_free(*p);
    *p = NULL;
}

/* Prints err's lines, each prefixed "ppfctl: ". */
static void
pool_print_err(const char *err)
{
    const char *p = err, *nl;

    while (*p) {
        nl = strchr(p, '\n');
        fprintf(stderr, "ppfctl: %.*s\n", (int)(nl ? nl - p : (long)strlen(p)), p);
        if (!nl)
            break;
        p = nl + 1;
    }
}

static const char *
pool_schema(char *buf, size_t len)
{
    const char *dir = getenv("PPF_SCHEMA_DIR");

    snprintf(buf, len, "%s/%s", dir && dir[0] ? dir : PPF_SCHEMA_DIR, PPF_POOL_SCHEMA);
    return buf;
}

static const char *
pool_usage_text(const char *cmd)
{
    if (strcmp(cmd, "pool-define") == 0)
        return "pool-define FILE.xml [--policy FILE] [--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "pool-dumpxml") == 0)
        return "pool-dumpxml NAME [--inactive] [--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "pool-undefine") == 0)
        return "pool-undefine NAME [--keep-libvirt] [--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "pool-list") == 0)
        return "pool-list [--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "vol-create") == 0)
        return "vol-create POOL VOLUME --image IMAGE [--tenant T] [--mode overlay|copy] "
               "[--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "vol-delete") == 0)
        return "vol-delete POOL VOLUME [--keep-disk] [--connect URI] [--pool-dir DIR]";
    if (strcmp(cmd, "vol-list") == 0)
        return "vol-list POOL [--connect URI] [--pool-dir DIR]";
    return "pool-refresh [NAME] [--connect URI] [--pool-dir DIR]";
}

int
pool_parse(int argc, char **argv, const char *allowed, int need, struct pool_opts *o)
{
    static const struct option opts[] = {
        { "connect", required_argument, NULL, OPT_CONNECT },
        { "pool-dir", required_argument, NULL, OPT_POOL_DIR },
        { "policy", required_argument, NULL, OPT_POLICY },
        { "inactive", no_argument, NULL, OPT_INACTIVE },
        { "keep-libvirt", no_argument, NULL, OPT_KEEP },
        { "image", required_argument, NULL, OPT_IMAGE },
        { "tenant", required_argument, NULL, OPT_TENANT },
        { "mode", required_argument, NULL, OPT_MODE },
        { "keep-disk", no_argument, NULL, OPT_KEEP_DISK },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = argv[0], *env = getenv("PPF_POOL_DIR");
    int opt;

    memset(o, 0, sizeof *o);
    o->uri = POOL_DEFAULT_URI;
    o->pool_dir = env && env[0] ? env : PPF_POOL_STATE_DIR;
    optind = 0;                 /* options may follow the argument */
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (opt == '?' || !strchr(allowed, opt))
            return usage_error("usage: %s", pool_usage_text(cmd));
        switch (opt) {
        case OPT_CONNECT: o->uri = optarg; break;
        case OPT_POOL_DIR: o->pool_dir = optarg; break;
        case OPT_POLICY: o->policy = optarg; break;
        case OPT_INACTIVE: o->inactive = 1; break;
        case OPT_KEEP: o->keep_libvirt = 1; break;
        case OPT_IMAGE: o->image = optarg; break;
        case OPT_TENANT: o->tenant = optarg; break;
        case OPT_KEEP_DISK: o->keep_disk = 1; break;
        case OPT_MODE:
            if (strcmp(optarg, "overlay") != 0 && strcmp(optarg, "copy") != 0)
                return usage_error("%s --mode '%s': expected overlay or copy", cmd, optarg);
            o->mode = strcmp(optarg, "copy") == 0;
            break;
        }
    }
    if (optind < argc)
        o->arg = argv[optind++];
    if (need == 2 && optind < argc)
        o->arg2 = argv[optind++];
    if (optind < argc)
        return usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
    if ((need > 0 && !o->arg) || (need == 2 && !o->arg2))
        return usage_error("usage: %s", pool_usage_text(cmd));
    if (need < 0 && o->arg)
        return usage_error("%s: unexpected argument '%s'", cmd, o->arg);
    if (!o->pool_dir[0] || o->pool_dir[0] != '/')
        return usage_error("%s --pool-dir '%s': expected an absolute directory", cmd,
                           o->pool_dir);
    return 0;
}

int
pool_check_name(const char *cmd, const char *name)
{
    if (!ppf_name_ok(name))
        return usage_error("%s: '%s' is not a ppf pool name (1 to %d of A-Z a-z 0-9 . _ -, "
                           "not starting with '.')", cmd, name, PPF_POOL_NAME_MAX);
    return 0;
}

int
pool_load(const struct pool_opts *o, const char *name, struct ppf_pool_conf *conf,
          int missing_ok)
{
    char path[PATH_MAX], err[POOL_ERR_MAX];
    CLEANUP_FREE char *buf = NULL;
    size_t len;

    if (ppf_pool_state_path(o->pool_dir, name, path, sizeof path) < 0) {
        fprintf(stderr, "ppfctl: %s: --pool-dir too long\n", o->pool_dir);
        return 1;
    }
    if (ppf_pool_read_file(path, PPF_POOL_XML_MAX, &buf, &len, err, sizeof err) < 0) {
        if (errno == ENOENT) {
            if (missing_ok)
                return -2;
            fprintf(stderr, "ppfctl: %s is not a ppf pool (no %s); ppfctl pool-list shows "
                    "them, and plain libvirt pools are virsh's\n", name, path);
        } else {
            pool_print_err(err);
        }
        return 1;
    }
    if (ppf_pool_state_parse(path, buf, len, conf, err, sizeof err) < 0) {
        pool_print_err(err);
        return 1;
    }
    if (strcmp(conf->name, name) != 0) {
        fprintf(stderr, "ppfctl: %s names the pool '%s', not '%s'; remove the file\n", path,
                conf->name, name);
        return 1;
    }
    return 0;
}

virStoragePoolPtr
pool_lookup(virConnectPtr conn, const struct ppf_pool_conf *conf, const char **why)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(conn, conf->name);
    char uuid[VIR_UUID_STRING_BUFLEN];

    *why = NULL;
    if (!p) {
        *why = "missing";
        return NULL;
    }
    if (conf->uuid[0] && (virStoragePoolGetUUIDString(p, uuid) < 0 ||
                          strcmp(uuid, conf->uuid) != 0)) {
        virStoragePoolFree(p);
        *why = "foreign";
        return NULL;
    }
    return p;
}

void
pool_report_lookup(const struct ppf_pool_conf *conf, const char *why)
{
    if (strcmp(why, "missing") == 0)
        fprintf(stderr, "ppfctl: libvirt has no pool %s any more (undefined with virsh?); "
                "ppfctl pool-undefine %s forgets ppf's part, pool-define makes it again\n",
                conf->name, conf->name);
    else
        fprintf(stderr, "ppfctl: libvirt's pool %s is not the one ppf defined (its uuid is "
                "not %s); ppfctl pool-undefine %s forgets ppf's part\n", conf->name,
                conf->uuid, conf->name);
}

void
pool_libvirt_target(virStoragePoolPtr pool, struct ppf_pool_conf *conf)
{
    CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc(pool, 0);
    struct ppf_pool_conf lv = *conf;
    char err[POOL_ERR_MAX], type[32];

    if (xml && ppf_pool_xml_libvirt_facts(xml, &lv, type, sizeof type, err, sizeof err) == 0)
        snprintf(conf->target, sizeof conf->target, "%s", lv.target);
}

/* ---- pool-define -------------------------------------------------------- */

static int
pool_path_under(const char *path, const char *dir)
{
    size_t l = strlen(dir);

    while (l > 1 && dir[l - 1] == '/')
        l--;
    return strncmp(path, dir, l) == 0 && (path[l] == '/' || path[l] == '\0');
}

/* Checks conf against the policy: the store and tenant exist, the target
 * is not inside the buffer.  Warns about what will not work as hoped.
 * 0 or 1 (reported). */
static int
pool_check_policy(const char *file, const struct ppf_pool_conf *conf,
                  const struct ppf_policy *p, const char *whence, int *outside)
{
    const struct ppf_policy_tenant *t;
    size_t i;
    int ok = 0;

    for (i = 0; i < p->nstores; i++)
        if (strcmp(p->stores[i].name, conf->store) == 0)
            break;
    if (i == p->nstores) {
        fprintf(stderr, "ppfctl: %s:%u: store=\"%s\": %s has no such store (it has:", file,
                conf->line, conf->store, whence);
        for (i = 0; i < p->nstores; i++)
            fprintf(stderr, " %s", p->stores[i].name);
        fprintf(stderr, "); use one of them or add it to the policy's stores:\n");
        ok = 1;
    }
    if (!(t = ppf_policy_find_tenant(p, conf->tenant))) {
        fprintf(stderr, "ppfctl: %s:%u: tenant=\"%s\": %s has no such tenant; add it to the "
                "policy's tenants: (ppfctl policy apply) or name another\n", file,
                conf->line, conf->tenant, whence);
        ok = 1;
    } else if (conf->keyfile[0] && t->keyfile && strcmp(t->keyfile, conf->keyfile) != 0) {
        fprintf(stderr, "ppfctl: warning: %s:%u: keyfile=\"%s\" differs from tenant %s's "
                "key file in the policy (%s); the peripheral uses the policy's\n", file,
                conf->line, conf->keyfile, conf->tenant, t->keyfile);
    }
    if (p->buffer.path && pool_path_under(conf->target, p->buffer.path)) {
        fprintf(stderr, "ppfctl: %s: target path %s is inside the prefetch buffer (%s); "
                "choose a directory outside it\n", file, conf->target, p->buffer.path);
        ok = 1;
    }
    for (i = 0; i < p->deploy.ndirs; i++)
        if (pool_path_under(conf->target, p->deploy.dirs[i]))
            break;
    *outside = i == p->deploy.ndirs;
    return ok;
}

/* The policy pool-define checks against: --policy FILE, else the one in
 * force on the peripheral.  0 or 1 (reported). */
static int
pool_get_policy(struct ctl *c, const struct pool_opts *o, struct ppf_policy **p)
{
    char err[600];
    uint32_t gen;

    *p = NULL;
    if (o->policy) {
        struct ppf_policy_diags d;
        int r;

        ppf_policy_diags_init(&d);
        r = ppf_policy_parse_file_flags(o->policy, PPF_POLICY_NO_FILE_CHECKS, p, &d);
        if (r < 0) {
            ppf_policy_diags_print(&d, stderr);
            fprintf(stderr, "ppfctl: %s: the policy is not valid; nothing was defined\n",
                    o->policy);
        }
        ppf_policy_diags_free(&d);
        return r < 0 ? 1 : 0;
    }
    if (ppf_dev_open(c->device, &c->dev) < 0 ||
        ppf_policy_fetch(c->dev, c->timeout_ms, p, &gen, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: cannot check the pool against the policy in force: %s "
                "(or check it against a policy file with --policy FILE)\n",
                c->dev ? err : ppf_error());
        return 1;
    }
    return 0;
}

int
pool_mkdirs(const char *dir)
{
    char buf[PATH_MAX], c;
    size_t n = strlen(dir);

    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        if (!(*p = c))
            return 0;
    }
}

/* Undoes a half-made pool-define. */
static void
pool_rollback(virStoragePoolPtr p, int started, const char *built_dir)
{
    if (started)
        virStoragePoolDestroy(p);
    virStoragePoolUndefine(p);
    if (built_dir)
        rmdir(built_dir);       /* only if still empty */
}

static void
pool_print_sync(const struct ppf_pool_conf *conf, const struct ppf_pools_result *r)
{
    if (r->inactive) {
        printf("%s: inactive, not refreshed (virsh pool-start %s)\n", conf->name, conf->name);
        return;
    }
    printf("%s: %u prepared image%s (%u added, %u removed)", conf->name, r->volumes,
           r->volumes == 1 ? "" : "s", r->added, r->removed);
    if (r->conflicts)
        printf("; %u name%s held by files ppf did not make, left alone", r->conflicts,
               r->conflicts == 1 ? "" : "s");
    printf("\n");
}

static int
pool_define(struct ctl *c, const struct pool_opts *o)
{
    const char *file = o->arg;
    char err[POOL_ERR_MAX], schema[PATH_MAX], state[PATH_MAX], uuid[VIR_UUID_STRING_BUFLEN];
    CLEANUP_FREE char *buf = NULL;
    CLEANUP_FREE char *plain = NULL;
    CLEANUP_FREE char *text = NULL;
    __attribute__((cleanup(pool_free_policy))) struct ppf_policy *policy = NULL;
    CLEANUP_CONN virConnectPtr conn = NULL;
    CLEANUP_POOL virStoragePoolPtr pool = NULL;
    struct ppf_pool_conf conf;
    struct stat st;
    const char *built = NULL;
    size_t len;
    int r, outside = 0;

    if (ppf_pool_read_file(file, PPF_POOL_XML_MAX, &buf, &len, err, sizeof err) < 0) {
        pool_print_err(err);
        return 1;
    }
    if (ppf_pool_xml_split(file, buf, len, pool_schema(schema, sizeof schema), &conf, &plain,
                           err, sizeof err) < 0 ||
        ppf_pool_conf_check_keyfile(&conf, file, err, sizeof err) < 0) {
        pool_print_err(err);
        fprintf(stderr, "ppfctl: %s: nothing was defined\n", file);
        return 1;
    }
    if ((r = pool_get_policy(c, o, &policy)) != 0)
        return r;
    if (pool_check_policy(file, &conf, policy, o->policy ? o->policy :
                          "the policy in force", &outside) != 0) {
        fprintf(stderr, "ppfctl: %s: nothing was defined\n", file);
        return 1;
    }
    if (ppf_pool_state_path(o->pool_dir, conf.name, state, sizeof state) < 0) {
        fprintf(stderr, "ppfctl: %s: --pool-dir too long\n", o->pool_dir);
        return 1;
    }
    if (lstat(state, &st) == 0) {
        fprintf(stderr, "ppfctl: %s: ppf pool %s exists already (%s); ppfctl pool-undefine "
                "%s first, or choose another <name>\n", file, conf.name, state, conf.name);
        return 1;
    }
    if (pool_mkdirs(o->pool_dir) < 0) {
        fprintf(stderr, "ppfctl: cannot create %s: %s; create it or choose another with "
                "--pool-dir\n", o->pool_dir, strerror(errno));
        return 1;
    }
    if (!(conn = pool_connect(o)))
        return 1;
    if ((pool = virStoragePoolLookupByName(conn, conf.name))) {
        fprintf(stderr, "ppfctl: %s: libvirt already has a pool %s; choose another <name>, "
                "or remove it first (virsh pool-destroy/pool-undefine)\n", file, conf.name);
        return 1;
    }
    if (!(pool = virStoragePoolDefineXML(conn, plain, VIR_STORAGE_POOL_DEFINE_VALIDATE))) {
        fprintf(stderr, "ppfctl: %s: libvirt refused the pool: %s; nothing was defined\n",
                file, pool_virt_error());
        return 1;
    }
    if (stat(conf.target, &st) < 0 && errno == ENOENT)
        built = conf.target;
    if (virStoragePoolCreate(pool, built ? VIR_STORAGE_POOL_CREATE_WITH_BUILD : 0) < 0) {
        fprintf(stderr, "ppfctl: %s: libvirt cannot %s pool %s: %s; nothing was defined\n",
                file, built ? "build and start" : "start", conf.name, pool_virt_error());
        pool_rollback(pool, 0, NULL);
        return 1;
    }
    if (virStoragePoolSetAutostart(pool, 1) < 0 || virStoragePoolGetUUIDString(pool, uuid) < 0) {
        fprintf(stderr, "ppfctl: %s: pool %s: %s; nothing was defined\n", file, conf.name,
                pool_virt_error());
        pool_rollback(pool, 1, built);
        return 1;
    }
    snprintf(conf.uuid, sizeof conf.uuid, "%s", uuid);
    if (ppf_pool_state_format(&conf, &text) < 0 ||
        ppf_pool_write_file(state, text, strlen(text), err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s: cannot keep ppf's part: %s; nothing was defined\n", file,
                text ? err : "out of memory");
        pool_rollback(pool, 1, built);
        return 1;
    }

    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_str(&j, "uuid", conf.uuid);
        ppf_json_bool(&j, "defined", 1);
        ppf_json_bool(&j, "active", 1);
        ppf_json_str(&j, "state_file", state);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        printf("Pool %s defined from %s and started (store %s, tenant %s); ppf's part is in "
               "%s\n", conf.name, file, conf.store, conf.tenant, state);
    }
    if (outside)
        fprintf(stderr, "ppfctl: note: %s is not under the policy's deploy.dirs, so the "
                "peripheral will not deploy disks into this pool; add it there to deploy "
                "into it\n", conf.target);
    /* show what is ready now; the pool is defined whatever happens here */
    if (c->dev && conf.volumes == PPF_POOL_VOLUMES_PREPARED) {
        struct ppf_pools_buffer b;
        struct ppf_pools_result res;

        if (ppf_pools_buffer_fetch(c->dev, c->timeout_ms, &b, err, sizeof err) < 0 ||
            ppf_pools_sync(conn, &b, &conf, PPF_POOLS_REFRESH_ALWAYS, &res, err,
                           sizeof err) < 0)
            fprintf(stderr, "ppfctl: warning: %s: prepared images not linked yet: %s; run "
                    "ppfctl pool-refresh %s\n", conf.name, err, conf.name);
        else if (!c->json)
            pool_print_sync(&conf, &res);
        ppf_pools_buffer_clear(&b);
    }
    return 0;
}

/* ---- pool-dumpxml ------------------------------------------------------- */

static int
pool_dumpxml(struct ctl *c, const struct pool_opts *o)
{
    char err[POOL_ERR_MAX];
    CLEANUP_CONN virConnectPtr conn = NULL;
    CLEANUP_POOL virStoragePoolPtr pool = NULL;
    CLEANUP_FREE char *xml = NULL;
    CLEANUP_FREE char *merged = NULL;
    struct ppf_pool_conf conf;
    const char *why;
    int r;

    (void)c;
    if ((r = pool_check_name("pool-dumpxml", o->arg)) != 0 ||
        (r = pool_load(o, o->arg, &conf, 0)) != 0)
        return r;
    if (!(conn = pool_connect(o)))
        return 1;
    if (!(pool = pool_lookup(conn, &conf, &why))) {
        pool_report_lookup(&conf, why);
        return 1;
    }
    if (!(xml = virStoragePoolGetXMLDesc(pool, o->inactive ? VIR_STORAGE_XML_INACTIVE : 0))) {
        fprintf(stderr, "ppfctl: %s: %s\n", conf.name, pool_virt_error());
        return 1;
    }
    if (ppf_pool_xml_merge(xml, &conf, &merged, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s: %s\n", conf.name, err);
        return 1;
    }
    fputs(merged, stdout);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the pool XML: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- pool-undefine ------------------------------------------------------ */

/* Entries of dir other than . and ..; -1 if it cannot be read. */
static long
pool_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    long n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int
pool_undefine(struct ctl *c, const struct pool_opts *o)
{
    char err[POOL_ERR_MAX], state[PATH_MAX];
    CLEANUP_CONN virConnectPtr conn = NULL;
    CLEANUP_POOL virStoragePoolPtr pool = NULL;
    struct ppf_pool_conf conf;
    struct ppf_pools_result res = { 0 };
    const char *why = NULL, *dir;
    unsigned records = 0;
    long left;
    int r, libvirt_done = 0;

    if ((r = pool_check_name("pool-undefine", o->arg)) != 0 ||
        (r = pool_load(o, o->arg, &conf, 0)) != 0)
        return r;
    if (!(conn = pool_connect(o)))
        return 1;
    dir = conf.target;
    pool = pool_lookup(conn, &conf, &why);
    if (pool) {
        pool_libvirt_target(pool, &conf);
    } else if (strcmp(why, "foreign") == 0) {
        fprintf(stderr, "ppfctl: warning: libvirt's pool %s is not the one ppf defined; "
                "leaving it and its directory alone\n", conf.name);
        dir = NULL;
    }
    if (dir) {
        struct stat st;

        if (lstat(dir, &st) < 0 && errno == ENOENT)
            dir = NULL;         /* no directory, no links */
    }
    /* ppf's links go first: they are ppf's, the rest of the directory is not */
    if (dir && ppf_pools_sync_dir(NULL, &conf, dir, &res, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s: %s; nothing was undefined\n", conf.name, err);
        return 1;
    }
    if (pool && !o->keep_libvirt) {
        int active = virStoragePoolIsActive(pool);

        if ((active > 0 && virStoragePoolDestroy(pool) < 0) ||
            virStoragePoolUndefine(pool) < 0) {
            fprintf(stderr, "ppfctl: %s: libvirt cannot stop or undefine the pool: %s; "
                    "ppf's part is kept, run pool-undefine again\n", conf.name,
                    pool_virt_error());
            return 1;
        }
        libvirt_done = 1;
    } else if (pool && virStoragePoolIsActive(pool) > 0) {
        virStoragePoolRefresh(pool, 0);     /* the links are gone from its volumes */
    }
    if (ppf_pool_state_path(o->pool_dir, conf.name, state, sizeof state) < 0 ||
        unlink(state) < 0) {
        fprintf(stderr, "ppfctl: %s: cannot remove %s: %s\n", conf.name, state,
                strerror(errno));
        return 1;
    }
    /* the hook must no longer take the disks for ppf's; they stay */
    if (vol_forget_all(o, conf.name, &records) < 0)
        return 1;
    left = dir ? pool_count_files(dir) : -1;
    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_bool(&j, "undefined", 1);
        ppf_json_bool(&j, "libvirt_undefined", libvirt_done);
        ppf_json_u64(&j, "links_removed", res.removed);
        ppf_json_u64(&j, "volume_records_removed", records);
        if (left >= 0)
            ppf_json_u64(&j, "files_left", (uint64_t)left);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        printf("Pool %s undefined%s; %u prepared-image link%s removed", conf.name,
               libvirt_done ? "" : pool ? " for ppf (libvirt's pool kept)" :
               " for ppf (libvirt's pool was gone already)", res.removed,
               res.removed == 1 ? "" : "s");
        if (records)
            printf("; %u volume record%s removed", records, records == 1 ? "" : "s");
        if (left > 0)
            printf("; %s keeps %ld file%s (ppf never deletes disks)", dir, left,
                   left == 1 ? "" : "s");
        printf("\n");
    }
    return 0;
}

/* ---- pool-list ---------------------------------------------------------- */

struct pool_row {
    struct ppf_pool_conf conf;
    const char *state;          /* running, inactive, missing, foreign, broken */
    int autostart;
    unsigned prepared, disks;
    uint64_t used;              /* allocation of the disks */
};

/* Counts the volumes of an active pool: ppf's links and the rest. */
static void
pool_count_volumes(virStoragePoolPtr p, struct pool_row *row)
{
    virStorageVolPtr *vols = NULL;
    int n = virStoragePoolListAllVolumes(p, &vols, 0);

    for (int i = 0; i < n; i++) {
        CLEANUP_FREE char *path = virStorageVolGetPath(vols[i]);
        const char *name = virStorageVolGetName(vols[i]);
        char cur[PATH_MAX];
        ssize_t k;
        virStorageVolInfo info;

        if (path && name && (k = readlink(path, cur, sizeof cur - 1)) > 0 &&
            (size_t)k < sizeof cur - 1) {
            cur[k] = '\0';
            if (ppf_pools_link_is_ours(name, cur)) {
                row->prepared++;
                virStorageVolFree(vols[i]);
                continue;
            }
        }
        row->disks++;
        if (virStorageVolGetInfo(vols[i], &info) == 0)
            row->used += info.allocation;
        virStorageVolFree(vols[i]);
    }
    free(vols);
}

static int
pool_state_filter(const struct dirent *de)
{
    size_t l = strlen(de->d_name);

    return l > 4 && strcmp(de->d_name + l - 4, ".xml") == 0 && de->d_name[0] != '.';
}

static int
pool_list(struct ctl *c, const struct pool_opts *o)
{
    CLEANUP_CONN virConnectPtr conn = NULL;
    struct dirent **names = NULL;
    struct pool_row *rows = NULL;
    size_t nrows = 0;
    int n, r, bad = 0;

    n = scandir(o->pool_dir, &names, pool_state_filter, alphasort);
    if (n < 0 && errno != ENOENT) {
        fprintf(stderr, "ppfctl: %s: %s\n", o->pool_dir, strerror(errno));
        return 1;
    }
    if (n > 0 && (!(rows = calloc((size_t)n, sizeof *rows)) || !(conn = pool_connect(o)))) {
        if (!rows)
            fprintf(stderr, "ppfctl: out of memory\n");
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        free(rows);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct pool_row *row = &rows[nrows];
        char name[PPF_POOL_NAME_MAX + 1];
        size_t l = strlen(names[i]->d_name) - 4;
        const char *why;
        virStoragePoolPtr p;

        snprintf(name, sizeof name, "%.*s", (int)l, names[i]->d_name);
        free(names[i]);
        if (!ppf_name_ok(name))
            continue;           /* not a state file of ours */
        if ((r = pool_load(o, name, &row->conf, 1)) != 0) {
            bad |= r == 1;      /* reported; the others are still listed */
            continue;
        }
        nrows++;
        if (!(p = pool_lookup(conn, &row->conf, &why))) {
            row->state = why;
            continue;
        }
        row->state = virStoragePoolIsActive(p) > 0 ? "running" : "inactive";
        if (virStoragePoolGetAutostart(p, &row->autostart) < 0)
            row->autostart = 0;
        if (strcmp(row->state, "running") == 0)
            pool_count_volumes(p, row);
        virStoragePoolFree(p);
    }
    free(names);

    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_begin_array(&j, "pools");
        for (size_t i = 0; i < nrows; i++) {
            const struct pool_row *w = &rows[i];

            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "name", w->conf.name);
            ppf_json_str(&j, "uuid", w->conf.uuid);
            ppf_json_str(&j, "state", w->state);
            ppf_json_bool(&j, "autostart", w->autostart);
            ppf_json_str(&j, "target", w->conf.target);
            ppf_json_str(&j, "store", w->conf.store);
            ppf_json_str(&j, "tenant", w->conf.tenant);
            ppf_json_u64(&j, "quota", w->conf.quota);
            ppf_json_str(&j, "keyfile", w->conf.keyfile);
            ppf_json_str(&j, "volumes", w->conf.volumes == PPF_POOL_VOLUMES_NONE ? "none" :
                         "prepared");
            ppf_json_u64(&j, "prepared", w->prepared);
            ppf_json_u64(&j, "disks", w->disks);
            ppf_json_u64(&j, "used", w->used);
            ppf_json_bool(&j, "over_quota", w->conf.quota && w->used > w->conf.quota);
            ppf_json_end_object(&j);
        }
        ppf_json_end_array(&j);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else if (nrows == 0 && !bad) {
        printf("no ppf pools (ppfctl pool-define FILE.xml makes one)\n");
    } else if (nrows) {
        int wn = 4, ws = 5, wt = 6;

        for (size_t i = 0; i < nrows; i++) {
            int a = (int)strlen(rows[i].conf.name), b = (int)strlen(rows[i].conf.store),
                d = (int)strlen(rows[i].conf.tenant);

            wn = a > wn ? a : wn;
            ws = b > ws ? b : ws;
            wt = d > wt ? d : wt;
        }
        printf("%-*s  %-8s  %-*s  %-*s  %8s  %5s  %10s  %10s  %s\n", wn, "NAME", "STATE", ws,
               "STORE", wt, "TENANT", "PREPARED", "DISKS", "USED", "QUOTA", "TARGET");
        for (size_t i = 0; i < nrows; i++) {
            const struct pool_row *w = &rows[i];
            char used[32], quota[32];

            ppf_policy_format_size(w->used, used, sizeof used);
            if (w->conf.quota)
                ppf_policy_format_size(w->conf.quota, quota, sizeof quota);
            else
                snprintf(quota, sizeof quota, "-");
            printf("%-*s  %-8s  %-*s  %-*s  %8u  %5u  %10s  %10s  %s%s\n", wn, w->conf.name,
                   w->state, ws, w->conf.store, wt, w->conf.tenant, w->prepared, w->disks,
                   used, quota, w->conf.target,
                   w->conf.quota && w->used > w->conf.quota ? "  (over quota)" : "");
        }
    }
    free(rows);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the pool list: %s\n", strerror(errno));
        return 1;
    }
    return bad;
}

/* ---- pool-refresh ------------------------------------------------------- */

static int
pool_refresh(struct ctl *c, const struct pool_opts *o)
{
    char err[POOL_ERR_MAX];
    CLEANUP_CONN virConnectPtr conn = NULL;
    struct ppf_pool_conf conf;
    struct ppf_pools_buffer b;
    struct ppf_pools_result res;
    int r;

    if (o->arg && ((r = pool_check_name("pool-refresh", o->arg)) != 0 ||
                   (r = pool_load(o, o->arg, &conf, 0)) != 0))
        return r;
    if (ppf_dev_open(c->device, &c->dev) < 0)
        return fail(NULL);
    if (!(conn = pool_connect(o)))
        return 1;
    if (!o->arg) {
        /* every pool: what ppfd runs periodically */
        int n = ppf_pools_refresh_all(conn, c->dev, o->pool_dir, c->timeout_ms, err,
                                      sizeof err);

        if (n < 0) {
            fprintf(stderr, "ppfctl: pool-refresh: %s\n", err);
            return 1;
        }
        if (c->json) {
            struct ppf_json j;

            ppf_json_init(&j, stdout);
            ppf_json_begin_object(&j, NULL);
            ppf_json_u64(&j, "pools", (uint64_t)n);
            ppf_json_end_object(&j);
            fputc('\n', stdout);
        } else {
            printf("%d ppf pool%s refreshed\n", n, n == 1 ? "" : "s");
        }
        return 0;
    }
    if (ppf_pools_buffer_fetch(c->dev, c->timeout_ms, &b, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s: %s\n", conf.name, err);
        return 1;
    }
    r = ppf_pools_sync(conn, &b, &conf, PPF_POOLS_REFRESH_ALWAYS, &res, err, sizeof err);
    ppf_pools_buffer_clear(&b);
    if (r < 0) {
        fprintf(stderr, "ppfctl: %s: %s\n", conf.name, err);
        return 1;
    }
    if (c->json) {
        struct ppf_json j;

        pool_json_begin(&j, conf.name);
        ppf_json_bool(&j, "active", !res.inactive);
        ppf_json_u64(&j, "prepared", res.volumes);
        ppf_json_u64(&j, "added", res.added);
        ppf_json_u64(&j, "removed", res.removed);
        ppf_json_u64(&j, "conflicts", res.conflicts);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        pool_print_sync(&conf, &res);
    }
    return 0;
}

/* ---- dispatch ----------------------------------------------------------- */

void
pool_json_begin(struct ppf_json *j, const char *pool)
{
    ppf_json_init(j, stdout);
    ppf_json_begin_object(j, NULL);
    ppf_json_str(j, "pool", pool);
}

int
pool_dispatch(struct ctl *c, int argc, char **argv, const struct pool_cmd *cmds, size_t n,
              const char *family)
{
    struct pool_opts o;
    char names[256] = "";
    int r;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[0], cmds[i].name) == 0) {
            if ((r = pool_parse(argc, argv, cmds[i].allowed, cmds[i].need, &o)) != 0)
                return r;
            return cmds[i].run(c, &o);
        }
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 cmds[i].name);
    }
    return usage_error("unknown command '%s' (%s commands: %s)", argv[0], family, names);
}

int
cmd_pool(struct ctl *c, int argc, char **argv)
{
    static const struct pool_cmd cmds[] = {
        { "pool-define", "cPp", 1, pool_define },
        { "pool-dumpxml", "cPi", 1, pool_dumpxml },
        { "pool-undefine", "cPk", 1, pool_undefine },
        { "pool-list", "cP", -1, pool_list },
        { "pool-refresh", "cP", 0, pool_refresh },
    };

    return pool_dispatch(c, argc, argv, cmds, sizeof cmds / sizeof *cmds, "pool");
}

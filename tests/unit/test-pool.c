/* Unit tests of ppf pools without libvirtd or a peripheral: the XML split,
 * validation, merge and state file of tools/pool-xml.c (fixtures in
 * tests/pool-data), and the link sync of plugin/pools.c against a fake
 * buffer in a temporary directory.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin/pools.h"
#include "tools/pool-xml.h"

#define SCHEMA PPF_TEST_SCHEMA_DIR "/" PPF_POOL_SCHEMA

/* snprintf for paths under the temporary directory (they fit) */
static void __attribute__((format(printf, 3, 4)))
pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static char *
slurp(const char *name, size_t *len)
{
    char path[PATH_MAX], err[512];
    char *buf;

    pathf(path, sizeof path, "%s/%s", PPF_TEST_DATA_DIR, name);
    if (ppf_pool_read_file(path, PPF_POOL_XML_MAX, &buf, len, err, sizeof err) < 0)
        fail_msg("%s", err);
    return buf;
}

/* Splits fixture name; returns the result, err and plain for inspection. */
static int
split(const char *name, struct ppf_pool_conf *conf, char **plain, char *err, size_t errlen)
{
    size_t len;
    char *buf = slurp(name, &len);
    int r = ppf_pool_xml_split(name, buf, len, SCHEMA, conf, plain, err, errlen);

    free(buf);
    return r;
}

static const char ok_xml[] =
    "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' store='s'/>"
    "<target><path>/p</path></target></pool>";

static int
split_with(const char *file, const char *text, const char *schema, struct ppf_pool_conf *conf,
           char **plain, char *err, size_t errlen)
{
    return ppf_pool_xml_split(file, text, strlen(text), schema, conf, plain, err, errlen);
}

static int
split_str(const char *text, struct ppf_pool_conf *conf, char **plain, char *err,
          size_t errlen)
{
    return ppf_pool_xml_split("t.xml", text, strlen(text), SCHEMA, conf, plain, err, errlen);
}

/* ---- split and validate ------------------------------------------------- */

static void
test_split_valid(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain = NULL;

    (void)state;
    assert_int_equal(split("valid.xml", &c, &plain, err, sizeof err), 0);
    assert_string_equal(c.name, "ppf-unit");
    assert_string_equal(c.target, "/var/lib/libvirt/images/ppf-unit");
    assert_string_equal(c.store, "local");
    assert_string_equal(c.tenant, "acme");
    assert_string_equal(c.quota_text, "64GiB");
    assert_true(c.quota == 64ull << 30);
    assert_string_equal(c.keyfile, "");
    assert_int_equal(c.volumes, PPF_POOL_VOLUMES_PREPARED);
    assert_int_equal(c.line, 5);     /* libxml2: where the start tag ends */
    /* libvirt gets the rest, without ppf's element or namespace */
    assert_non_null(plain);
    assert_null(strstr(plain, "ppf:"));
    assert_null(strstr(plain, PPF_POOL_NS));
    assert_non_null(strstr(plain, "<name>ppf-unit</name>"));
    assert_non_null(strstr(plain, "<mode>0755</mode>"));
    assert_true(strncmp(plain, "<pool type=\"dir\">", 17) == 0);
    free(plain);
}

static void
test_split_defaults(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain = NULL;

    (void)state;
    /* namespace declared on <pool>; tenant and volumes defaulted */
    assert_int_equal(split_str("<pool type='dir' xmlns:ppf='urn:ppf:libvirt:1.0'>"
                               "<target><path>/srv/p</path></target><name>p1</name>"
                               "<ppf:pool store='s1' volumes='none'/></pool>",
                               &c, &plain, err, sizeof err), 0);
    assert_string_equal(c.tenant, "default");
    assert_int_equal(c.volumes, PPF_POOL_VOLUMES_NONE);
    assert_int_equal(c.quota, 0);
    assert_null(strstr(plain, "xmlns:ppf"));
    free(plain);
}

/* err holds a line "FILE:LINE:" and the fragment */
static void
assert_err(const char *err, const char *where, const char *fragment)
{
    if (!strstr(err, where) || !strstr(err, fragment))
        fail_msg("expected '%s' and '%s' in: %s", where, fragment, err);
}

static void
test_split_bad_attr(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain = (char *)1;

    (void)state;
    assert_int_equal(split("bad-attr.xml", &c, &plain, err, sizeof err), -1);
    assert_null(plain);
    assert_err(err, "bad-attr.xml:4:", "colour");
    assert_err(err, "bad-attr.xml", "ppf-pool(5)");
}

static void
test_split_not_dir(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain;

    (void)state;
    assert_int_equal(split("not-dir.xml", &c, &plain, err, sizeof err), -1);
    assert_err(err, "not-dir.xml:1:", "type 'dir'");
}

static void
test_split_no_ppf(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain;

    (void)state;
    assert_int_equal(split("no-ppf.xml", &c, &plain, err, sizeof err), -1);
    assert_err(err, "no-ppf.xml:1:", "no ppf settings");
}

static void
test_split_doctype(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain;

    (void)state;
    assert_int_equal(split("doctype.xml", &c, &plain, err, sizeof err), -1);
    assert_err(err, "doctype.xml:2:", "DOCTYPE");
    /* however it is spelled: the parser refuses an internal subset too */
    assert_int_equal(split_str("<?xml version='1.0'?>\n<!DOCTYPE\tpool>\n<pool/>", &c, &plain,
                               err, sizeof err), -1);
    assert_err(err, "t.xml", "DOCTYPE");
}

static void
test_split_foreign(void **state)
{
    struct ppf_pool_conf c;
    char err[2048], *plain;

    (void)state;
    assert_int_equal(split("foreign.xml", &c, &plain, err, sizeof err), -1);
    assert_err(err, "foreign.xml:5:", "urn:example:other");
}

static void
test_split_values(void **state)
{
    static const struct { const char *xml, *where, *fragment; } cases[] = {
        { "<pool type='dir'><name>.hidden</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s'/><target><path>/p</path></target></pool>", "t.xml:1:", "name" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s' quota='0'/><target><path>/p</path></target></pool>", "t.xml:1:",
          "quota" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s' quota='99999999999999999999T'/><target><path>/p</path></target></pool>",
          "t.xml:1:", "quota" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='../etc'/><target><path>/p</path></target></pool>", "t.xml:1:", "store" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s' keyfile='key'/><target><path>/p</path></target></pool>", "t.xml:1:",
          "keyfile" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s'/><target><path>/a/../b</path></target></pool>", "t.xml", "target" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s'/><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' store='t'/>"
          "<target><path>/p</path></target></pool>", "t.xml:1:", "second" },
        { "<pool type='dir'><name>p</name><ppf:pool xmlns:ppf='urn:ppf:libvirt:1.0' "
          "store='s'/></pool>", "t.xml:1:", "<target><path>" },
        { "<domain type='kvm'/>", "t.xml:1:", "not a libvirt <pool>" },
        { "<pool type='dir'><name>p</name>", "t.xml:1:", "" },
        { "", "t.xml", "empty" },
    };
    struct ppf_pool_conf c;
    char err[2048], *plain;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (split_str(cases[i].xml, &c, &plain, err, sizeof err) != -1)
            fail_msg("case %zu accepted", i);
        assert_err(err, cases[i].where, cases[i].fragment);
    }
}

static void
test_split_limits(void **state)
{
    struct ppf_pool_conf c;
    char err[512], *plain, *big;
    size_t n = PPF_POOL_XML_MAX + 1;

    (void)state;
    big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(ppf_pool_xml_split("big.xml", big, n, SCHEMA, &c, &plain, err,
                                        sizeof err), -1);
    assert_err(err, "big.xml", "at most");
    free(big);
    /* a missing schema is named, with what to do */
    assert_int_equal(split_with("v.xml", ok_xml, "/nonexistent/ppf-pool.rng", &c, &plain, err,
                                sizeof err), -1);
    assert_err(err, "v.xml", "PPF_SCHEMA_DIR");
}

/* ---- merge, element, state ---------------------------------------------- */

static void
test_merge(void **state)
{
    static const char lv[] =
        "<pool type='dir'>\n  <name>p1</name>\n  <uuid>0b3b2f26-1c1e-4f8e-9a39-6d6f9a0e3a11"
        "</uuid>\n  <capacity unit='bytes'>0</capacity>\n  <target>\n    <path>/srv/p1</path>"
        "\n  </target>\n</pool>\n";
    struct ppf_pool_conf c = { .store = "local", .tenant = "a&b", .quota_text = "1G",
                               .quota = 1u << 30 };
    struct ppf_pool_conf back;
    char err[512], type[16], *out = NULL, *el = NULL, *plain = NULL;
    const char *u, *p;

    (void)state;
    assert_int_equal(ppf_pool_xml_merge(lv, &c, &out, err, sizeof err), 0);
    u = strstr(out, "</uuid>");
    p = strstr(out, "<ppf:pool xmlns:ppf=\"urn:ppf:libvirt:1.0\" store=\"local\" "
                    "tenant=\"a&amp;b\" quota=\"1G\" volumes=\"prepared\"/>");
    assert_non_null(u);
    assert_non_null(p);
    assert_true(u < p && p < strstr(out, "<capacity"));
    assert_non_null(strstr(out, "</uuid>\n  <ppf:pool"));
    assert_non_null(strstr(out, "/>\n  <capacity"));
    /* facts of libvirt's XML */
    memset(&back, 0, sizeof back);
    assert_int_equal(ppf_pool_xml_libvirt_facts(lv, &back, type, sizeof type, err,
                                                sizeof err), 0);
    assert_string_equal(type, "dir");
    assert_string_equal(back.name, "p1");
    assert_string_equal(back.uuid, "0b3b2f26-1c1e-4f8e-9a39-6d6f9a0e3a11");
    assert_string_equal(back.target, "/srv/p1");

    assert_int_equal(ppf_pool_xml_element(&c, &el), 0);
    assert_non_null(strstr(el, "xmlns:ppf=\"urn:ppf:libvirt:1.0\""));
    assert_null(strchr(el, '\n'));
    free(el);

    /* what pool-dumpxml prints is valid pool-define input (a round trip),
     * once the tenant is a valid name */
    free(out);
    snprintf(c.tenant, sizeof c.tenant, "acme");
    assert_int_equal(ppf_pool_xml_merge(lv, &c, &out, err, sizeof err), 0);
    assert_int_equal(split_str(out, &back, &plain, err, sizeof err), 0);
    assert_string_equal(back.tenant, "acme");
    assert_string_equal(back.quota_text, "1G");
    assert_null(strstr(plain, "ppf"));
    free(plain);
    free(out);
}

static void
test_state_roundtrip(void **state)
{
    struct ppf_pool_conf c = { .name = "gold", .uuid = "0b3b2f26-1c1e-4f8e-9a39-6d6f9a0e3a11",
                               .target = "/srv/gold", .store = "local", .tenant = "acme",
                               .quota_text = "64GiB", .quota = 64ull << 30,
                               .keyfile = "/etc/ppf/acme.key",
                               .volumes = PPF_POOL_VOLUMES_NONE };
    struct ppf_pool_conf back;
    static const char bad[] = "<ppf:state xmlns:ppf='urn:ppf:libvirt:1.0' version='1'>"
        "<ppf:libvirt name='../x' target='/t'/><ppf:pool store='s'/></ppf:state>";
    char err[512], *text = NULL;

    (void)state;
    assert_int_equal(ppf_pool_state_format(&c, &text), 0);
    assert_int_equal(ppf_pool_state_parse("s.xml", text, strlen(text), &back, err,
                                          sizeof err), 0);
    assert_string_equal(back.name, c.name);
    assert_string_equal(back.uuid, c.uuid);
    assert_string_equal(back.target, c.target);
    assert_string_equal(back.store, c.store);
    assert_string_equal(back.tenant, c.tenant);
    assert_true(back.quota == c.quota);
    assert_string_equal(back.keyfile, c.keyfile);
    assert_int_equal(back.volumes, PPF_POOL_VOLUMES_NONE);
    free(text);

    /* a state file is checked like input */
    assert_int_equal(ppf_pool_state_parse("s.xml", bad, strlen(bad), &back, err, sizeof err),
                     -1);
    assert_err(err, "s.xml", "name");
    assert_int_equal(ppf_pool_state_parse("s.xml", "<state/>", 8, &back, err, sizeof err), -1);
    assert_err(err, "s.xml", "version 1");
}

/* ---- files -------------------------------------------------------------- */

static char tmp[PATH_MAX];

static int
setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "%s/ppf-unit-pool.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") :
             "/tmp");
    return mkdtemp(tmp) ? 0 : -1;
}

static int
teardown_tmp(void **state)
{
    char cmd[PATH_MAX + 16];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void
write_bytes(const char *path, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    char b[64] = { 0 };

    assert_true(fd >= 0);
    assert_true(n <= sizeof b);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_keyfile(void **state)
{
    struct ppf_pool_conf c = { .line = 7 };
    char err[512];

    (void)state;
    assert_int_equal(ppf_pool_conf_check_keyfile(&c, "k.xml", err, sizeof err), 0);
    pathf(c.keyfile, sizeof c.keyfile, "%s/missing.key", tmp);
    assert_int_equal(ppf_pool_conf_check_keyfile(&c, "k.xml", err, sizeof err), -1);
    assert_err(err, "k.xml:7:", "No such file");
    pathf(c.keyfile, sizeof c.keyfile, "%s/k.key", tmp);
    write_bytes(c.keyfile, 32, 0644);
    assert_int_equal(ppf_pool_conf_check_keyfile(&c, "k.xml", err, sizeof err), -1);
    assert_err(err, "k.xml:7:", "chmod 600");
    write_bytes(c.keyfile, 16, 0600);
    assert_int_equal(ppf_pool_conf_check_keyfile(&c, "k.xml", err, sizeof err), -1);
    assert_err(err, "k.xml:7:", "16 bytes");
    write_bytes(c.keyfile, 32, 0600);
    assert_int_equal(ppf_pool_conf_check_keyfile(&c, "k.xml", err, sizeof err), 0);
}

static void
test_write_read(void **state)
{
    char path[PATH_MAX], err[512], *buf;
    size_t len;
    struct stat st;

    (void)state;
    pathf(path, sizeof path, "%s/state.xml", tmp);
    assert_int_equal(ppf_pool_write_file(path, "hello", 5, err, sizeof err), 0);
    assert_int_equal(ppf_pool_write_file(path, "hello again", 11, err, sizeof err), 0);
    assert_int_equal(ppf_pool_read_file(path, 100, &buf, &len, err, sizeof err), 0);
    assert_int_equal(len, 11);
    assert_string_equal(buf, "hello again");
    free(buf);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(ppf_pool_read_file(path, 5, &buf, &len, err, sizeof err), -1);
    assert_int_equal(errno, EFBIG);
    pathf(path, sizeof path, "%s/nope.xml", tmp);
    assert_int_equal(ppf_pool_read_file(path, 5, &buf, &len, err, sizeof err), -1);
    assert_int_equal(errno, ENOENT);
    pathf(path, sizeof path, "%s/no-dir/state.xml", tmp);
    assert_int_equal(ppf_pool_write_file(path, "x", 1, err, sizeof err), -1);
    assert_err(err, "no-dir", "--pool-dir");
}

/* ---- links -------------------------------------------------------------- */

static void
test_link_is_ours(void **state)
{
    (void)state;
    assert_true(ppf_pools_link_is_ours("deb.raw", "/b/entries/acme/deb.raw"));
    assert_true(ppf_pools_link_is_ours("deb.raw", "/var/lib/ppf/buffer/entries/@public/deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/b/entries/acme/other.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/b/stuff/acme/deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/b/xentries/acme/deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/entries/deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/b/entries/../deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "b/entries/acme/deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.qcow2", "/b/entries/acme/deb.qcow2"));
    assert_false(ppf_pools_link_is_ours(".deb.raw", "/b/entries/acme/.deb.raw"));
    assert_false(ppf_pools_link_is_ours("deb.raw", "/b/entries//deb.raw"));
}

static void
add_entry(struct ppf_pools_buffer *b, const char *image, const char *tenant, int pub)
{
    char path[PATH_MAX];

    b->v = realloc(b->v, (b->n + 1) * sizeof *b->v);
    assert_non_null(b->v);
    memset(&b->v[b->n], 0, sizeof b->v[b->n]);
    snprintf(b->v[b->n].image, sizeof b->v[b->n].image, "%s", image);
    snprintf(b->v[b->n].tenant, sizeof b->v[b->n].tenant, "%s", pub ? "" : tenant);
    b->v[b->n].pub = pub;
    b->n++;
    pathf(path, sizeof path, "%s/entries/%s", b->root, pub ? "@public" : tenant);
    mkdir(path, 0755);
    pathf(path, sizeof path, "%s/entries/%s/%s.raw", b->root, pub ? "@public" : tenant,
             image);
    write_bytes(path, 8, 0444);
}

static int
link_points(const char *dir, const char *name, const char *to)
{
    char path[PATH_MAX], cur[PATH_MAX];
    ssize_t k;

    pathf(path, sizeof path, "%s/%s", dir, name);
    if ((k = readlink(path, cur, sizeof cur - 1)) < 0)
        return 0;
    cur[k] = '\0';
    return strstr(cur, to) != NULL;
}

static void
test_sync_dir(void **state)
{
    struct ppf_pools_buffer b;
    struct ppf_pools_result r;
    struct ppf_pool_conf c = { .name = "p", .tenant = "acme",
                               .volumes = PPF_POOL_VOLUMES_PREPARED };
    char dir[PATH_MAX], path[PATH_MAX], err[512];
    struct stat st;

    (void)state;
    memset(&b, 0, sizeof b);
    pathf(b.root, sizeof b.root, "%s/buffer", tmp);
    pathf(path, sizeof path, "%s/entries", b.root);
    assert_int_equal(mkdir(b.root, 0755), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    pathf(dir, sizeof dir, "%s/pool", tmp);
    assert_int_equal(mkdir(dir, 0755), 0);

    add_entry(&b, "deb", "acme", 0);
    add_entry(&b, "deb", NULL, 1);          /* the tenant's own wins */
    add_entry(&b, "alpine", NULL, 1);
    add_entry(&b, "secret", "other", 0);    /* another tenant's: never shown */
    add_entry(&b, "mine", "acme", 0);
    /* files that are not ppf's: a disk, a user's link, one named like an image */
    pathf(path, sizeof path, "%s/disk.qcow2", dir);
    write_bytes(path, 8, 0600);
    pathf(path, sizeof path, "%s/user.raw", dir);
    assert_int_equal(symlink("/somewhere/else.raw", path), 0);
    pathf(path, sizeof path, "%s/mine.raw", dir);
    write_bytes(path, 4, 0600);

    assert_int_equal(ppf_pools_sync_dir(&b, &c, dir, &r, err, sizeof err), 0);
    assert_int_equal(r.volumes, 2);
    assert_int_equal(r.added, 2);
    assert_int_equal(r.removed, 0);
    assert_int_equal(r.conflicts, 1);       /* mine.raw is the user's */
    assert_true(link_points(dir, "deb.raw", "/entries/acme/deb.raw"));
    assert_true(link_points(dir, "alpine.raw", "/entries/@public/alpine.raw"));
    pathf(path, sizeof path, "%s/secret.raw", dir);
    assert_int_equal(lstat(path, &st), -1);
    pathf(path, sizeof path, "%s/mine.raw", dir);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode) && st.st_size == 4);

    /* again: nothing changes (idempotent) */
    assert_int_equal(ppf_pools_sync_dir(&b, &c, dir, &r, err, sizeof err), 0);
    assert_int_equal(r.added + r.removed, 0);
    assert_int_equal(r.volumes, 2);

    /* the tenant's deb is evicted: the public one takes its place; alpine
     * goes; a link left from an old buffer location goes too */
    b.v[0] = b.v[1];
    b.n = 1;                                /* the public deb only */
    pathf(path, sizeof path, "%s/old.raw", dir);
    assert_int_equal(symlink("/old/buffer/entries/acme/old.raw", path), 0);
    assert_int_equal(ppf_pools_sync_dir(&b, &c, dir, &r, err, sizeof err), 0);
    assert_int_equal(r.volumes, 1);
    assert_int_equal(r.added, 1);           /* deb re-pointed */
    assert_int_equal(r.removed, 2);         /* alpine, old */
    assert_true(link_points(dir, "deb.raw", "/entries/@public/deb.raw"));
    pathf(path, sizeof path, "%s/alpine.raw", dir);
    assert_int_equal(lstat(path, &st), -1);

    /* volumes="none", and undefine (no buffer): only ppf's links go */
    c.volumes = PPF_POOL_VOLUMES_NONE;
    assert_int_equal(ppf_pools_sync_dir(&b, &c, dir, &r, err, sizeof err), 0);
    assert_int_equal(r.removed, 1);
    assert_int_equal(ppf_pools_sync_dir(NULL, &c, dir, &r, err, sizeof err), 0);
    assert_int_equal(r.removed, 0);
    pathf(path, sizeof path, "%s/disk.qcow2", dir);
    assert_int_equal(lstat(path, &st), 0);
    pathf(path, sizeof path, "%s/user.raw", dir);
    assert_int_equal(lstat(path, &st), 0);
    pathf(path, sizeof path, "%s/mine.raw", dir);
    assert_int_equal(lstat(path, &st), 0);

    /* a missing directory is named */
    pathf(path, sizeof path, "%s/nope", tmp);
    assert_int_equal(ppf_pools_sync_dir(&b, &c, path, &r, err, sizeof err), -1);
    assert_err(err, "nope", "pool-build");
    ppf_pools_buffer_clear(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_valid),
        cmocka_unit_test(test_split_defaults),
        cmocka_unit_test(test_split_bad_attr),
        cmocka_unit_test(test_split_not_dir),
        cmocka_unit_test(test_split_no_ppf),
        cmocka_unit_test(test_split_doctype),
        cmocka_unit_test(test_split_foreign),
        cmocka_unit_test(test_split_values),
        cmocka_unit_test(test_split_limits),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test_setup_teardown(test_keyfile, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_write_read, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_link_is_ours),
        cmocka_unit_test_setup_teardown(test_sync_dir, setup_tmp, teardown_tmp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

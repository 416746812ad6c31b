/* Unit tests of hooks/domxml.c: finding ppf:deploy in a domain XML, the
 * disk it names, and refusing bad metadata, DOCTYPE/entity tricks,
 * oversized and non-UTF-8 input; listing volume disks (ppf pools) and the
 * quick pool scan; and of hooks/volrec.c, the volume records of ppf pools
 * (format, parsing, loading).  Domain XMLs live in tests/hook-data/
 * ($top_srcdir, set by the test harness). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "hooks/domcache.h"
#include "hooks/hook.h"
#include "hooks/volrec.h"
#include "ppf/protocol.h"

/* Reads tests/hook-data/NAME into a new buffer. */
static char *
load(const char *name, size_t *len)
{
    const char *top = getenv("top_srcdir");
    char path[4096], err[PPF_HOOK_ERR_MAX];
    char *buf;
    int fd;

    snprintf(path, sizeof path, "%s/tests/hook-data/%s", top ? top : ".", name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open %s (set top_srcdir)", path);
    assert_int_equal(ppf_hook_read_all(fd, PPF_HOOK_XML_MAX, &buf, len, err, sizeof err), 0);
    close(fd);
    return buf;
}

/* Parses NAME; returns the result, d and err filled. */
static int
parse(const char *name, struct ppf_hook_deploy *d, char *err)
{
    size_t len;
    char *buf = load(name, &len);
    int rc = ppf_hook_parse_domain(buf, len, d, err, PPF_HOOK_ERR_MAX);

    free(buf);
    return rc;
}

static void
expect_error(const char *name, const char *needle)
{
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX] = "";

    assert_int_equal(parse(name, &d, err), -1);
    if (!strstr(err, needle))
        fail_msg("%s: message '%s' lacks '%s'", name, err, needle);
    assert_null(strchr(err, '\n'));
}

static void
test_no_metadata(void **state)
{
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];
    size_t len;
    char *buf = load("no-metadata.xml", &len);

    (void)state;
    assert_int_equal(ppf_hook_maybe_ppf(buf, len), 0);
    free(buf);
    assert_int_equal(parse("no-metadata.xml", &d, err), 0);
    assert_int_equal(parse("other-metadata.xml", &d, err), 0);
}

static void
test_defaults(void **state)
{
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];

    (void)state;
    assert_int_equal(parse("defaults.xml", &d, err), 1);
    assert_string_equal(d.image, "debian-12");
    assert_string_equal(d.tenant, "default");
    assert_string_equal(d.uuid, "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b");
    assert_string_equal(d.target, "/var/lib/libvirt/images/vm1.qcow2");   /* not the cdrom */
    assert_string_equal(d.dev, "vda");
    assert_int_equal(d.mode, -1);
    assert_int_equal(d.ephemeral, -1);
}

static void
test_all_attrs(void **state)
{
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];

    (void)state;
    assert_int_equal(parse("all-attrs.xml", &d, err), 1);
    assert_string_equal(d.tenant, "acme");
    assert_string_equal(d.target, "/var/lib/libvirt/images/vm1-data.qcow2");
    assert_string_equal(d.dev, "vdb");
    assert_int_equal(d.mode, 1);
    assert_int_equal(d.ephemeral, 1);
    /* any prefix bound to the namespace */
    assert_int_equal(parse("other-prefix.xml", &d, err), 1);
    assert_string_equal(d.tenant, "bob");
}

static void
test_disk_errors(void **state)
{
    (void)state;
    expect_error("disk-absent.xml", "no disk with <target dev='vdz'>");
    expect_error("disk-not-file.xml", "not <disk type='file' device='disk'>");
    expect_error("no-disk.xml", "no <disk type='file' device='disk'>");
}

static void
test_bad_attributes(void **state)
{
    (void)state;
    expect_error("bad-mode.xml", "mode='foo': expected overlay or copy");
    expect_error("bad-ephemeral.xml", "ephemeral='maybe': expected yes or no");
    expect_error("bad-image.xml", "image='../etc/passwd' is not an image name");
    expect_error("bad-attr.xml", "unknown attribute 'tennant'");
    expect_error("no-image.xml", "no image attribute");
    expect_error("bad-uuid.xml", "no usable <uuid>");
}

static void
test_entities(void **state)
{
    (void)state;
    expect_error("entities.xml", "DOCTYPE");
    expect_error("external-entity.xml", "DOCTYPE");
}

static void
test_non_utf8(void **state)
{
    (void)state;
    expect_error("non-utf8.xml", "cannot parse the domain XML");
}

static void
test_oversized(void **state)
{
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];
    size_t len, big = PPF_HOOK_XML_MAX + 100;
    char *buf = malloc(big), *got = NULL;
    int p[2];

    (void)state;
    assert_non_null(buf);
    memset(buf, ' ', big);
    assert_int_equal(ppf_hook_parse_domain(buf, big, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));

    /* read_all refuses more than max bytes from a pipe */
    assert_int_equal(pipe(p), 0);
    if (fork() == 0) {
        close(p[0]);
        for (size_t off = 0; off < big;) {
            ssize_t n = write(p[1], buf + off, big - off);
            if (n <= 0)
                _exit(0);
            off += (size_t)n;
        }
        _exit(0);
    }
    close(p[1]);
    assert_int_equal(ppf_hook_read_all(p[0], PPF_HOOK_XML_MAX, &got, &len, err, sizeof err),
                     -1);
    assert_null(got);
    assert_non_null(strstr(err, "larger than"));
    close(p[0]);
    free(buf);
}

static void
test_garbage(void **state)
{
    static const char *const bad[] = {
        "<domain><metadata><ppf:deploy xmlns:ppf='urn:ppf:libvirt:1.0' image='x'",
        "<notdomain xmlns:ppf='urn:ppf:libvirt:1.0'><deploy/></notdomain>",
        "",
    };
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];

    (void)state;
    assert_int_equal(ppf_hook_parse_domain(bad[0], strlen(bad[0]), &d, err, sizeof err), -1);
    assert_int_equal(ppf_hook_parse_domain(bad[1], strlen(bad[1]), &d, err, sizeof err), -1);
    assert_int_equal(ppf_hook_parse_domain(bad[2], 0, &d, err, sizeof err), 0);
    assert_int_equal(ppf_name_ok("a.b-c_d"), 1);
    assert_int_equal(ppf_name_ok(".hidden"), 0);
    assert_int_equal(ppf_name_ok("a/b"), 0);
    assert_int_equal(ppf_uuid_ok("6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"), 1);
    assert_int_equal(ppf_uuid_ok("6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5"), 0);
}

/* Parses NAME with its volume disks into dom (free it). */
static int
parse_full(const char *name, struct ppf_hook_domain *dom, char *err)
{
    size_t len;
    char *buf = load(name, &len);
    int rc = ppf_hook_parse_domain_full(buf, len, dom, err, PPF_HOOK_ERR_MAX);

    free(buf);
    return rc;
}

static void
test_volume_disks(void **state)
{
    struct ppf_hook_domain dom;
    struct ppf_hook_deploy d;
    char err[PPF_HOOK_ERR_MAX];

    (void)state;
    assert_int_equal(parse_full("volume-disks.xml", &dom, err), 0);
    assert_int_equal(dom.has_deploy, 0);
    assert_string_equal(dom.uuid, "6864a9e0-36c1-49b8-915c-9a739b055cc0");
    /* not the cdrom, not the pool that is no ppf name, not the file disk */
    assert_int_equal(dom.nvols, 3);
    assert_string_equal(dom.vols[0].pool, "gold");
    assert_string_equal(dom.vols[0].volume, "vm2-root");
    assert_string_equal(dom.vols[0].dev, "vda");
    assert_string_equal(dom.vols[0].format, "qcow2");
    /* device defaults to disk; no driver type */
    assert_string_equal(dom.vols[1].volume, "vm2-data");
    assert_string_equal(dom.vols[1].format, "");
    assert_string_equal(dom.vols[2].volume, "web.raw");
    assert_string_equal(dom.vols[2].format, "raw");
    ppf_hook_domain_free(&dom);
    ppf_hook_domain_free(&dom);         /* twice is fine */
    /* the metadata-only parse does not look at it: no ppf namespace */
    assert_int_equal(parse("volume-disks.xml", &d, err), 0);

    assert_int_equal(parse_full("volume-and-metadata.xml", &dom, err), 0);
    assert_int_equal(dom.has_deploy, 1);
    assert_string_equal(dom.deploy.image, "debian-12");
    assert_string_equal(dom.deploy.target, "/var/lib/libvirt/images/vm3.qcow2");
    assert_string_equal(dom.deploy.uuid, dom.uuid);
    assert_int_equal(dom.nvols, 1);
    assert_string_equal(dom.vols[0].volume, "vm3-data");
    ppf_hook_domain_free(&dom);

    /* no uuid: listed, the hook refuses to deploy without one */
    assert_int_equal(parse_full("volume-no-uuid.xml", &dom, err), 0);
    assert_string_equal(dom.uuid, "");
    assert_int_equal(dom.nvols, 1);
    ppf_hook_domain_free(&dom);

    /* bad metadata still fails the full parse, the list is freed */
    assert_int_equal(parse_full("bad-mode.xml", &dom, err), -1);
    assert_non_null(strstr(err, "expected overlay or copy"));
    ppf_hook_domain_free(&dom);
    assert_int_equal(ppf_hook_parse_domain_full("", 0, &dom, err, sizeof err), 0);
    assert_int_equal(dom.nvols, 0);
}

static void
test_next_pool(void **state)
{
    static const char xml[] = "<disk type='volume'><source pool='gold' volume='a'/>"
                              "<source pool=\"silver\" volume='b'/><x pool=bare/>"
                              "<source pool='no/name' volume='c'/><source pool='' />"
                              "<source pool='last";
    char name[PPF_HOOK_NAME_MAX + 1];
    size_t off = 0, len = strlen(xml);

    (void)state;
    assert_int_equal(ppf_hook_next_pool(xml, len, &off, name, sizeof name), 1);
    assert_string_equal(name, "gold");
    assert_int_equal(ppf_hook_next_pool(xml, len, &off, name, sizeof name), 1);
    assert_string_equal(name, "silver");
    assert_int_equal(ppf_hook_next_pool(xml, len, &off, name, sizeof name), 0);
    assert_int_equal(off, len);
    assert_int_equal(ppf_hook_next_pool(xml, len, &off, name, sizeof name), 0);
    /* a name longer than the buffer is skipped, not cut */
    off = 0;
    assert_int_equal(ppf_hook_next_pool("pool='abcdefgh'", 15, &off, name, 4), 0);
}

/* Parses text as a record; returns the result, r and err filled. */
static int
rec(const char *text, struct ppf_volrec *r, char *err)
{
    return ppf_volrec_parse(text, strlen(text), r, err, PPF_HOOK_ERR_MAX);
}

static void
expect_rec_error(const char *text, const char *needle)
{
    struct ppf_volrec r;
    char err[PPF_HOOK_ERR_MAX] = "";

    assert_int_equal(rec(text, &r, err), -1);
    if (!strstr(err, needle))
        fail_msg("record '%s': message '%s' lacks '%s'", text, err, needle);
    assert_null(strchr(err, '\n'));
}

static void
test_volrec(void **state)
{
    struct ppf_volrec r, back;
    char err[PPF_HOOK_ERR_MAX], text[PPF_VOLREC_MAX];
    char big[PPF_VOLREC_MAX + 10];
    int n;

    (void)state;
    assert_int_equal(rec("image web\ntenant acme\nmode overlay\n"
                         "target /pool/target/vm1\n", &r, err), 0);
    assert_string_equal(r.image, "web");
    assert_string_equal(r.tenant, "acme");
    assert_int_equal(r.mode, PPF_VOLREC_OVERLAY);
    assert_string_equal(r.target, "/pool/target/vm1");
    /* defaults; comments, blank lines, spaces, CRLF and no final newline */
    assert_int_equal(rec("# made by hand\r\n\n  image   web  \r\ntarget\t/p/v", &r, err), 0);
    assert_string_equal(r.tenant, "default");
    assert_int_equal(r.mode, -1);
    assert_string_equal(r.target, "/p/v");
    assert_int_equal(rec("image w\nmode copy\ntarget /p/v\n", &r, err), 0);
    assert_int_equal(r.mode, PPF_VOLREC_COPY);

    expect_rec_error("image web\ncolour blue\ntarget /p/v\n", "line 2: unknown key 'colour'");
    expect_rec_error("image web\nimage web\ntarget /p/v\n", "line 2: image is given twice");
    expect_rec_error("image ../web\ntarget /p/v\n", "line 1: image '../web' is not a name");
    expect_rec_error("image web\ntenant a/b\ntarget /p/v\n", "tenant 'a/b' is not a name");
    expect_rec_error("image web\nmode fast\ntarget /p/v\n", "mode 'fast': expected overlay");
    expect_rec_error("image web\ntarget p/v\n", "target 'p/v' is not an absolute path");
    expect_rec_error("image web\ntarget /p/\tv\n", "is not an absolute path");
    expect_rec_error("image web\n", "no target line");
    expect_rec_error("target /p/v\n", "no image line");
    expect_rec_error("image\ntarget /p/v\n", "line 1: 'image' has no value");
    expect_rec_error("", "no image line");
    assert_int_equal(ppf_volrec_parse("image w\0x\ntarget /p\n", 17, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
    memset(big, '#', sizeof big);
    assert_int_equal(ppf_volrec_parse(big, sizeof big, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));

    /* format and parse agree, with and without a mode */
    assert_int_equal(rec("image web\ntenant acme\nmode copy\ntarget /p/v\n", &r, err), 0);
    n = ppf_volrec_format(&r, text, sizeof text);
    assert_true(n > 0);
    assert_string_equal(text, "image web\ntenant acme\nmode copy\ntarget /p/v\n");
    assert_int_equal(rec(text, &back, err), 0);
    assert_memory_equal(&r, &back, sizeof r);
    r.mode = -1;
    assert_true(ppf_volrec_format(&r, text, sizeof text) > 0);
    assert_null(strstr(text, "mode"));
    assert_int_equal(ppf_volrec_format(&r, text, 8), -1);

    assert_int_equal(ppf_volrec_name_ok("vm1-root.qcow2"), 1);
    assert_int_equal(ppf_volrec_name_ok("web.raw"), 0);
    assert_int_equal(ppf_volrec_name_ok(".raw"), 0);
    assert_int_equal(ppf_volrec_name_ok("a/b"), 0);
    assert_int_equal(ppf_volrec_is_prepared("web.raw"), 1);
    assert_int_equal(ppf_volrec_is_prepared(".raw"), 0);
    assert_int_equal(ppf_volrec_is_prepared("web.raw2"), 0);
    assert_int_equal(ppf_volrec_path("/d", "gold", "vm1", text, sizeof text), 0);
    assert_string_equal(text, "/d/gold.volumes/vm1");
    assert_int_equal(ppf_volrec_pool_state("/d", "gold", text, sizeof text), 0);
    assert_string_equal(text, "/d/gold.xml");
    assert_int_equal(ppf_volrec_dir("/d", "gold", text, 8), -1);
}

static void
test_volrec_load(void **state)
{
    char dir[] = "/tmp/test-volrec-XXXXXX", path[256], link[256], err[PPF_HOOK_ERR_MAX];
    struct ppf_volrec r;
    FILE *fp;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/vm1", dir);
    snprintf(link, sizeof link, "%s/vm2", dir);
    assert_int_equal(ppf_volrec_load(path, &r, err, sizeof err), 0);      /* none */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("image web\ntarget /p/vm1\n", fp);
    fclose(fp);
    assert_int_equal(ppf_volrec_load(path, &r, err, sizeof err), 1);
    assert_string_equal(r.image, "web");
    /* a symbolic link is not followed */
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(ppf_volrec_load(link, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, link));
    unlink(link);
    /* a directory, and a bad record, name the file */
    assert_int_equal(mkdir(link, 0700), 0);
    assert_int_equal(ppf_volrec_load(link, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    rmdir(link);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("image web\n", fp);
    fclose(fp);
    assert_int_equal(ppf_volrec_load(path, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "no target line"));
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
    /* $PPF_POOL_DIR, if absolute */
    setenv("PPF_POOL_DIR", "relative", 1);
    assert_string_equal(ppf_volrec_pool_dir(), PPF_VOLREC_POOL_DIR);
    setenv("PPF_POOL_DIR", "/srv/pools", 1);
    assert_string_equal(ppf_volrec_pool_dir(), "/srv/pools");
    unsetenv("PPF_POOL_DIR");
    assert_string_equal(ppf_volrec_pool_dir(), PPF_VOLREC_POOL_DIR);
}

/* The parse cache: a parse stored is loaded back equal; another XML, a
 * damaged file or a directory others can write are misses. */
static void
test_cache(void **state)
{
    char dir[] = "/tmp/ppf-domcache-XXXXXX", err[PPF_HOOK_ERR_MAX], path[4200];
    struct ppf_hook_domain dom, back;
    size_t len, len2;
    char *xml, *other;
    struct dirent *de;
    DIR *d;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0700), 0);
    xml = load("volume-and-metadata.xml", &len);
    other = load("defaults.xml", &len2);
    assert_int_equal(ppf_hook_parse_domain_full(xml, len, &dom, err, sizeof err), 0);
    assert_int_equal(ppf_hook_cache_load(dir, xml, len, &back), 0);
    ppf_hook_cache_store(dir, xml, len, &dom);
    assert_int_equal(ppf_hook_cache_load(dir, xml, len, &back), 1);
    assert_string_equal(back.uuid, dom.uuid);
    assert_int_equal(back.has_deploy, dom.has_deploy);
    assert_memory_equal(&back.deploy, &dom.deploy, sizeof dom.deploy);
    assert_int_equal(back.nvols, dom.nvols);
    for (size_t i = 0; i < dom.nvols; i++)
        assert_memory_equal(&back.vols[i], &dom.vols[i], sizeof dom.vols[i]);
    ppf_hook_domain_free(&back);
    assert_int_equal(ppf_hook_cache_load(dir, other, len2, &back), 0);

    /* a damaged record is a miss */
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            FILE *fp;

            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            fp = fopen(path, "a");
            assert_non_null(fp);
            fputs("deploy ../x default - 0 0 0 relative\n", fp);
            fclose(fp);
        }
    closedir(d);
    assert_int_equal(ppf_hook_cache_load(dir, xml, len, &back), 0);
    assert_int_equal(back.nvols, 0);

    /* a directory others may write: nothing stored */
    assert_int_equal(chmod(dir, 0777), 0);
    unlink(path);
    ppf_hook_cache_store(dir, xml, len, &dom);
    assert_int_equal(ppf_hook_cache_load(dir, xml, len, &back), 0);
    assert_int_equal(rmdir(dir), 0);
    ppf_hook_domain_free(&dom);
    free(xml);
    free(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_metadata),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_attrs),
        cmocka_unit_test(test_disk_errors),
        cmocka_unit_test(test_bad_attributes),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_non_utf8),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_volume_disks),
        cmocka_unit_test(test_next_pool),
        cmocka_unit_test(test_volrec),
        cmocka_unit_test(test_volrec_load),
        cmocka_unit_test(test_cache),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    ppf_hook_xml_cleanup();
    return rc;
}

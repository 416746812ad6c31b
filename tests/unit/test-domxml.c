/* Unit tests of hooks/domxml.c: finding ppf:deploy in a domain XML, the
 * disk it names, and refusing bad metadata, DOCTYPE/entity tricks,
 * oversized and non-UTF-8 input.  Domain XMLs live in tests/hook-data/
 * ($top_srcdir, set by the test harness). */
#include <config.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hooks/hook.h"
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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    ppf_hook_xml_cleanup();
    return rc;
}

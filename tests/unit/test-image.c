/* cmocka tests for libppfimage (image/): bit-exact round trips at the
 * sizes around a chunk boundary, encrypted and public; every byte of the
 * header and chunk table flipped, sampled bytes of chunks flipped,
 * truncations, a wrong or missing key, crafted headers with absurd sizes,
 * a table pointing outside the file, an unknown version; key file checks;
 * cancellation; and a bound on memory.  Files live in a private temporary
 * directory removed at the end.
 */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/image-priv.h"

#define CHUNK PPF_IMG_CHUNK_MIN

static char dir[] = "/tmp/ppf-test-image.XXXXXX";
static uint8_t key[PPF_IMG_KEY_SIZE];
static uint8_t other_key[PPF_IMG_KEY_SIZE];

static char *
path(const char *name)
{
    static char buf[4][512];
    static int n;
    char *p = buf[n++ & 3];

    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Deterministic, compressible content with a zero run in the middle. */
static void
make_content(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (x & 7) ? "ppf image test "[x % 15] : (uint8_t)(x >> 8);
    }
    if (n > 3 * CHUNK)
        memset(p + CHUNK, 0, CHUNK + 4096 + 17);   /* a whole zero chunk and a hole */
}

static void
write_file(const char *name, const void *p, size_t n)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static uint8_t *
read_file(const char *name, size_t *n)
{
    struct stat st;
    uint8_t *p;
    int fd = open(name, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    p = malloc(st.st_size + 1);
    assert_non_null(p);
    assert_int_equal(read(fd, p, st.st_size), st.st_size);
    close(fd);
    *n = st.st_size;
    return p;
}

/* Nothing named prefix* is left in dir (no temporary files after failures). */
static void
assert_nothing_left(const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            fail_msg("left behind: %s", e->d_name);
    closedir(d);
}

static void
pack(const char *src, const char *dst, const uint8_t *k, uint32_t chunk, unsigned threads)
{
    struct ppf_img_pack_opts o = { .key = k, .chunk_size = chunk, .threads = threads,
                                   .overwrite = 1 };
    struct ppf_img_err err = { 0 };

    if (ppf_img_pack(src, dst, &o, &err) < 0)
        fail_msg("pack %s: %s", src, err.msg);
}

static int
open_img(const char *src, const uint8_t *k, struct ppf_img **img, struct ppf_img_err *err)
{
    memset(err, 0, sizeof *err);
    return ppf_img_open(src, k, NULL, img, err);
}

/* Opens and verifies; returns the error class (PPF_IMG_OK when good). */
static enum ppf_img_errc
check_image(const char *src, const uint8_t *k, struct ppf_img_err *err)
{
    struct ppf_img *img;
    int rc;

    if (open_img(src, k, &img, err) < 0)
        return err->code;
    rc = ppf_img_verify(img, NULL, err);
    ppf_img_close(img);
    return rc < 0 ? err->code : PPF_IMG_OK;
}

static void
round_trip(size_t size, const uint8_t *k, unsigned threads)
{
    uint8_t *in = malloc(size + 1), *out;
    struct ppf_img_unpack_opts uo = { .threads = threads, .overwrite = 1, .no_sync = 1,
                                      .verify_digest = 1 };
    struct ppf_img_err err = { 0 };
    struct ppf_img *img;
    struct ppf_img_info info;
    size_t n;

    assert_non_null(in);
    make_content(in, size, (uint32_t)size);
    write_file(path("rt.raw"), in, size);
    pack(path("rt.raw"), path("rt.ppfi"), k, CHUNK, threads);
    assert_int_equal(open_img(path("rt.ppfi"), k, &img, &err), 0);
    ppf_img_info(img, &info);
    assert_int_equal(info.size, size);
    assert_int_equal(info.chunk_count, (size + CHUNK - 1) / CHUNK);
    assert_int_equal(info.encrypted, k != NULL);
    if (ppf_img_unpack(img, path("rt.out"), &uo, &err) < 0)
        fail_msg("unpack: %s", err.msg);
    assert_int_equal(ppf_img_verify(img, &uo, &err), 0);
    ppf_img_close(img);
    out = read_file(path("rt.out"), &n);
    assert_int_equal(n, size);
    assert_memory_equal(in, out, size);
    assert_nothing_left("rt.out.tmp");
    free(in);
    free(out);
}

static void
test_round_trips(void **state)
{
    static const size_t sizes[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 77 };

    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        round_trip(sizes[i], NULL, 1);
        round_trip(sizes[i], key, 1);
        round_trip(sizes[i], key, 3);
    }
}

/* Packs the standard damaged-image subject; returns its bytes. */
static uint8_t *
subject(const uint8_t *k, size_t *n, struct img_hdr *h)
{
    size_t size = 4 * CHUNK + 1000;
    uint8_t *in = malloc(size), *img;
    struct ppf_img_err err = { 0 };

    assert_non_null(in);
    make_content(in, size, 42);
    write_file(path("subj.raw"), in, size);
    free(in);
    pack(path("subj.raw"), path("subj.ppfi"), k, CHUNK, 2);
    img = read_file(path("subj.ppfi"), n);
    assert_int_equal(img_hdr_decode("subj", img, *n, h, &err), 0);
    return img;
}

static void
flip_and_check(const uint8_t *img, size_t n, size_t at, const uint8_t *k, uint8_t mask)
{
    uint8_t *copy = malloc(n);
    struct ppf_img_err err = { 0 };
    enum ppf_img_errc code;

    memcpy(copy, img, n);
    copy[at] ^= mask;
    write_file(path("flip.ppfi"), copy, n);
    code = check_image(path("flip.ppfi"), k, &err);
    if (code == PPF_IMG_OK)
        fail_msg("flipping byte %zu (mask %02x) went unnoticed", at, mask);
    if (code != PPF_IMG_EBAD && code != PPF_IMG_EFAIL)
        fail_msg("flipping byte %zu: unexpected class %d: %s", at, code, err.msg);
    assert_non_null(strstr(err.msg, "flip.ppfi"));
    free(copy);
}

static void
damage(const uint8_t *k)
{
    struct img_hdr h;
    size_t n;
    uint8_t *img = subject(k, &n, &h);
    struct ppf_img_err err = { 0 };

    assert_int_equal(check_image(path("subj.ppfi"), k, &err), PPF_IMG_OK);
    for (size_t i = 0; i < IMG_HDR_SIZE; i++) {
        flip_and_check(img, n, i, k, 0x01);
        flip_and_check(img, n, i, k, 0x80);
    }
    for (size_t i = h.table_off; i < h.table_off + h.table_len; i++)
        flip_and_check(img, n, i, k, 0x10);
    for (size_t i = IMG_HDR_SIZE; i < h.table_off; i += 89)
        flip_and_check(img, n, i, k, 0x04);
    flip_and_check(img, n, h.table_off - 1, k, 0x04);
    free(img);
}

static void
test_flips_public(void **state)
{
    (void)state;
    damage(NULL);
}

static void
test_flips_encrypted(void **state)
{
    (void)state;
    damage(key);
}

static void
test_truncation(void **state)
{
    struct img_hdr h;
    size_t n;
    uint8_t *img = subject(key, &n, &h);
    size_t cuts[] = { 0, 1, 8, 100, IMG_HDR_SIZE - 1, IMG_HDR_SIZE, IMG_HDR_SIZE + 1000,
                      h.table_off, h.table_off + 1, n - 1 };
    struct ppf_img_err err;

    (void)state;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(path("cut.ppfi"), img, cuts[i]);
        memset(&err, 0, sizeof err);
        assert_int_equal(check_image(path("cut.ppfi"), key, &err), PPF_IMG_EBAD);
        assert_non_null(strstr(err.msg, "cut.ppfi"));
    }
    free(img);
}

static void
test_keys(void **state)
{
    struct img_hdr h;
    size_t n;
    uint8_t *img = subject(key, &n, &h);
    struct ppf_img_err err = { 0 };
    struct ppf_img *pi;
    char hex[2 * PPF_IMG_KEY_SIZE + 1];
    uint8_t loaded[PPF_IMG_KEY_SIZE];
    struct ppf_img_unpack_opts uo = { .no_sync = 1 };

    (void)state;
    free(img);
    assert_int_equal(check_image(path("subj.ppfi"), other_key, &err), PPF_IMG_EBAD);
    assert_non_null(strstr(err.msg, "wrong key"));
    ppf_img_hex(other_key, sizeof other_key, hex);
    assert_null(strstr(err.msg, hex));
    hex[8] = '\0';
    assert_null(strstr(err.msg, hex));
    ppf_img_hex(key, 4, hex);
    assert_null(strstr(err.msg, hex));

    /* encrypted without a key: refused, but info-only opening works */
    assert_int_equal(check_image(path("subj.ppfi"), NULL, &err), PPF_IMG_EUSAGE);
    {
        struct ppf_img_open_opts oo = { .allow_no_key = 1 };
        struct ppf_img_info info;

        memset(&err, 0, sizeof err);
        assert_int_equal(ppf_img_open(path("subj.ppfi"), NULL, &oo, &pi, &err), 0);
        ppf_img_info(pi, &info);
        assert_true(info.encrypted);
        assert_false(info.authenticated);
        assert_int_equal(ppf_img_unpack(pi, path("nokey.out"), &uo, &err), -1);
        assert_int_equal(err.code, PPF_IMG_EUSAGE);
        ppf_img_close(pi);
        assert_nothing_left("nokey.out");
    }

    /* key files */
    write_file(path("k.good"), key, sizeof key);
    assert_int_equal(ppf_img_key_load(path("k.good"), loaded, &err), 0);
    assert_memory_equal(loaded, key, sizeof key);
    chmod(path("k.good"), 0640);
    memset(&err, 0, sizeof err);
    assert_int_equal(ppf_img_key_load(path("k.good"), loaded, &err), -1);
    assert_int_equal(err.code, PPF_IMG_EUSAGE);
    assert_non_null(strstr(err.msg, "chmod 600"));
    write_file(path("k.short"), key, sizeof key - 1);
    memset(&err, 0, sizeof err);
    assert_int_equal(ppf_img_key_load(path("k.short"), loaded, &err), -1);
    {
        uint8_t longer[PPF_IMG_KEY_SIZE + 1] = { 0 };
        write_file(path("k.long"), longer, sizeof longer);
    }
    memset(&err, 0, sizeof err);
    assert_int_equal(ppf_img_key_load(path("k.long"), loaded, &err), -1);
    memset(&err, 0, sizeof err);
    assert_int_equal(ppf_img_key_load(path("k.missing"), loaded, &err), -1);
    assert_int_equal(err.code, PPF_IMG_EIO);
}

/* Writes a crafted public image: header h (digests computed) + table. */
static void
craft(const char *name, struct img_hdr *h, const struct img_entry *entries, size_t extra)
{
    uint8_t hdr[IMG_HDR_SIZE];
    size_t tlen = h->chunk_count < 16 ? h->chunk_count * IMG_ENTRY_SIZE : 0;
    uint8_t *file = calloc(1, IMG_HDR_SIZE + tlen + extra);

    if (entries)
        for (uint64_t i = 0; i * IMG_ENTRY_SIZE < tlen; i++)
            img_entry_encode(&entries[i], file + IMG_HDR_SIZE + extra + i * IMG_ENTRY_SIZE);
    img_sha256(file + IMG_HDR_SIZE + extra, tlen, h->table_digest);
    img_hdr_encode(h, hdr);
    img_sha256(hdr, IMG_HDR_DIGESTED, hdr + IMG_OFF_HDR_DIGEST);
    memcpy(file, hdr, IMG_HDR_SIZE);
    write_file(name, file, IMG_HDR_SIZE + tlen + extra);
    free(file);
}

static void
base_hdr(struct img_hdr *h, uint64_t size, size_t extra)
{
    memset(h, 0, sizeof *h);
    h->major = 1;
    h->chunk_size = CHUNK;
    h->compression = IMG_COMP_ZSTD;
    h->size = size;
    h->chunk_count = (size + CHUNK - 1) / CHUNK;
    h->table_off = IMG_HDR_SIZE + extra;
    h->table_len = h->chunk_count * IMG_ENTRY_SIZE;
}

static void
expect_bad(const char *what, enum ppf_img_errc code, const char *needle)
{
    struct ppf_img_err err = { 0 };
    enum ppf_img_errc got = check_image(path("craft.ppfi"), NULL, &err);

    if (got != code || (needle && !strstr(err.msg, needle)))
        fail_msg("%s: class %d, message '%s'", what, got, err.msg);
}

static void
test_crafted(void **state)
{
    struct img_hdr h;
    struct img_entry e[16];

    (void)state;
    /* a valid crafted image: two zero chunks */
    base_hdr(&h, 2 * CHUNK, 0);
    memset(e, 0, sizeof e);
    e[0].flags = e[1].flags = IMG_CHUNK_ZERO;
    craft(path("craft.ppfi"), &h, e, 0);
    {
        struct ppf_img_err err = { 0 };
        struct ppf_img *img;

        assert_int_equal(open_img(path("craft.ppfi"), NULL, &img, &err), 0);
        ppf_img_close(img);
    }

    base_hdr(&h, 2 * CHUNK, 0);
    h.major = 2;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("version 2", PPF_IMG_EFAIL, "upgrade ppf");

    base_hdr(&h, UINT64_MAX - 5, 0);
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("absurd size", PPF_IMG_EBAD, "absurd size");

    base_hdr(&h, 1ull << 49, 0);
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("too many chunks", PPF_IMG_EBAD, NULL);

    base_hdr(&h, 2 * CHUNK, 0);
    h.chunk_count = 3;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("count", PPF_IMG_EBAD, "chunks");

    base_hdr(&h, 2 * CHUNK, 0);
    h.chunk_size = CHUNK + 1;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("chunk size", PPF_IMG_EBAD, "power of two");

    base_hdr(&h, 2 * CHUNK, 0);
    h.chunk_size = 4096;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("small chunk", PPF_IMG_EBAD, "power of two");

    base_hdr(&h, 2 * CHUNK, 0);
    h.table_off = 1ull << 40;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("table outside", PPF_IMG_EBAD, "outside the file");

    base_hdr(&h, 2 * CHUNK, 0);
    h.table_off = UINT64_MAX - 10;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("table offset overflow", PPF_IMG_EBAD, "outside the file");

    base_hdr(&h, 2 * CHUNK, 100);
    e[1].flags = 0;
    e[1].off = 1ull << 33;
    e[1].len = 100;
    craft(path("craft.ppfi"), &h, e, 100);
    expect_bad("chunk outside", PPF_IMG_EBAD, "outside the file");

    e[1].off = IMG_HDR_SIZE;
    e[1].len = UINT32_MAX;
    craft(path("craft.ppfi"), &h, e, 100);
    expect_bad("chunk length", PPF_IMG_EBAD, "outside the file");

    e[1].len = 100;
    e[1].flags = 0x80;
    craft(path("craft.ppfi"), &h, e, 100);
    expect_bad("chunk flags", PPF_IMG_EBAD, "entry 1");

    /* a stored chunk whose digest is right but whose zstd frame is junk */
    e[1].flags = 0;
    memset(e[1].check, 0, sizeof e[1].check);
    {
        uint8_t junk[100] = { 0 };
        img_sha256(junk, sizeof junk, e[1].check);
    }
    craft(path("craft.ppfi"), &h, e, 100);
    expect_bad("junk frame", PPF_IMG_EBAD, "does not decompress");

    base_hdr(&h, 2 * CHUNK, 0);
    h.flags = 0x4;
    craft(path("craft.ppfi"), &h, e, 0);
    expect_bad("unknown flag", PPF_IMG_EFAIL, "upgrade");
}

static void
test_cancel_and_existing(void **state)
{
    int cancel = 1;
    struct ppf_img_unpack_opts uo = { .no_sync = 1, .cancel = &cancel, .threads = 2 };
    struct ppf_img_err err = { 0 };
    struct img_hdr h;
    struct ppf_img *img;
    size_t n;

    (void)state;
    free(subject(NULL, &n, &h));
    assert_int_equal(open_img(path("subj.ppfi"), NULL, &img, &err), 0);
    assert_int_equal(ppf_img_unpack(img, path("cancel.out"), &uo, &err), -1);
    assert_int_equal(err.code, PPF_IMG_ECANCELED);
    assert_nothing_left("cancel.out");
    /* an existing destination is never replaced without overwrite */
    write_file(path("exists.out"), "keep", 4);
    cancel = 0;
    memset(&err, 0, sizeof err);
    assert_int_equal(ppf_img_unpack(img, path("exists.out"), &uo, &err), -1);
    assert_int_equal(err.code, PPF_IMG_EUSAGE);
    ppf_img_close(img);
    {
        uint8_t *p = read_file(path("exists.out"), &n);
        assert_int_equal(n, 4);
        free(p);
    }
}

static long
max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 96 MiB of data through pack and unpack with 1 MiB chunks and 2 threads:
 * peak memory grows by a few chunks, never by the image. */
static void
test_bounded_memory(void **state)
{
    const size_t mb = 1024 * 1024, total = 96 * mb;
    uint8_t *buf = malloc(mb);
    struct ppf_img_unpack_opts uo = { .threads = 2, .overwrite = 1, .no_sync = 1 };
    struct ppf_img_err err = { 0 };
    struct ppf_img *img;
    long before, after;
    int fd;

    (void)state;
    fd = open(path("big.raw"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    for (size_t off = 0; off < total; off += mb) {
        make_content(buf, mb, off / mb + 7);
        assert_int_equal(write(fd, buf, mb), (ssize_t)mb);
    }
    close(fd);
    free(buf);
    before = max_rss_kib();
    pack(path("big.raw"), path("big.ppfi"), key, 0, 2);
    assert_int_equal(open_img(path("big.ppfi"), key, &img, &err), 0);
    assert_int_equal(ppf_img_unpack(img, path("big.out"), &uo, &err), 0);
    ppf_img_close(img);
    after = max_rss_kib();
    if (after - before > 48 * 1024)
        fail_msg("peak RSS grew by %ld KiB for a 96 MiB image", after - before);
    unlink(path("big.raw"));
    unlink(path("big.ppfi"));
    unlink(path("big.out"));
}

static int
setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)(i * 7 + 1);
        other_key[i] = (uint8_t)(i * 11 + 3);
    }
    return 0;
}

static int
teardown(void **state)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    (void)state;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            unlink(path(e->d_name));
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_flips_public),
        cmocka_unit_test(test_flips_encrypted),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_cancel_and_existing),
        cmocka_unit_test(test_bounded_memory),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

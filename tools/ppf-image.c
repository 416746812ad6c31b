/* ppf-image: pack, unpack, inspect and verify .ppfi images with
 * libppfimage.  Progress goes to stderr only when it is a terminal; the
 * exit status tells usage errors, bad images and I/O failures apart (see
 * ppf-image(1)).  Key files are read by the library and never echoed.
 */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "image/image.h"

enum { EXIT_USAGE = 2, EXIT_BAD = 3, EXIT_IO = 4, EXIT_INTR = 130 };

static volatile int interrupted;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct cli {
    const char *cmd;
    const char *key_file, *ca_file, *pinned, *format;
    int level, json, force, no_sync, verify_digest;
    uint64_t chunk, threads;
    uint8_t key[PPF_IMG_KEY_SIZE];
    int have_key;
    int tty;
    double t0;
};

static void
usage(FILE *fp)
{
    fprintf(fp,
"Usage: ppf-image COMMAND [OPTIONS] ARGS\n"
"Pack, unpack, inspect and verify ppf images (.ppfi).\n"
"\n"
"Commands:\n"
"  pack SRC DST      pack a raw, .zst or qcow2 disk image into the image DST\n"
"      [--key FILE] [--level N] [--chunk SIZE] [--threads N] [--force]\n"
"  unpack SRC DST    write the disk in image SRC to DST (sparse raw or qcow2)\n"
"      [--key FILE] [--format raw|qcow2] [--threads N] [--ca-file F]\n"
"      [--pinned-pubkey P] [--force] [--no-sync] [--verify-digest]\n"
"  info SRC          show the header of image SRC [--json] [--key FILE]\n"
"  verify SRC        check every chunk and the content digest [--key FILE]\n"
"      [--threads N] [--ca-file F]\n"
"\n"
"SRC of unpack, info and verify is a path, file:///PATH or https://HOST/PATH.\n"
"\n"
"Options:\n"
"  -k, --key FILE        32-byte key file (mode 0600 or stricter)\n"
"  -l, --level N         zstd level (default 3)\n"
"  -c, --chunk SIZE      chunk size, a power of two from 64K to 64M (default 1M)\n"
"  -t, --threads N       worker threads (default 1)\n"
"  -f, --format FMT      output format of unpack: raw (default) or qcow2\n"
"      --ca-file F       trust the CAs in PEM file F for https:// sources\n"
"      --pinned-pubkey P also require this server key (sha256//BASE64 or a file)\n"
"      --force           replace DST if it exists\n"
"      --no-sync         do not fsync DST before renaming it into place\n"
"      --verify-digest   unpack: also check the content SHA-256 (slower)\n"
"  -j, --json            info: machine-readable output\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 failure, 2 usage error, 3 the image is corrupt,\n"
"truncated, tampered with or the key is wrong, 4 I/O error (read, write,\n"
"network, disk full), 130 interrupted.  See ppf-image(1).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ppf-image: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'ppf-image --help' for more information.\n");
    return EXIT_USAGE;
}

static int
report(const struct ppf_img_err *err)
{
    if (err->code == PPF_IMG_ECANCELED) {
        fprintf(stderr, "ppf-image: interrupted; nothing was left behind\n");
        return EXIT_INTR;
    }
    fprintf(stderr, "ppf-image: %s\n", err->msg[0] ? err->msg : "failed");
    switch (err->code) {
    case PPF_IMG_EUSAGE: return EXIT_USAGE;
    case PPF_IMG_EBAD: return EXIT_BAD;
    case PPF_IMG_EIO: return EXIT_IO;
    default: return 1;
    }
}

static void
human(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = n;
    unsigned u = 0;

    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void
progress(void *opaque, uint64_t done, uint64_t total)
{
    struct cli *c = opaque;
    struct timespec ts;
    char d[32], t[32];
    double el;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    el = ts.tv_sec + ts.tv_nsec / 1e9 - c->t0;
    human(done, d, sizeof d);
    human(total, t, sizeof t);
    if (total)
        fprintf(stderr, "\r%s: %5.1f%%  %s of %s  %.0f MB/s   ", c->cmd,
                100.0 * done / total, d, t, el > 0 ? done / el / 1e6 : 0.0);
    else
        fprintf(stderr, "\r%s: %s  %.0f MB/s   ", c->cmd, d, el > 0 ? done / el / 1e6 : 0.0);
    if (total && done >= total)
        fputc('\n', stderr);
}

static void
wipe_key(struct cli *c)
{
    ppf_img_wipe(c->key, sizeof c->key);
    c->have_key = 0;
}

static int
load_key(struct cli *c)
{
    struct ppf_img_err err = { 0 };

    if (!c->key_file)
        return 0;
    if (ppf_img_key_load(c->key_file, c->key, &err) < 0)
        return report(&err);
    c->have_key = 1;
    return 0;
}

static int
open_image(struct cli *c, const char *src, int allow_no_key, struct ppf_img **img)
{
    struct ppf_img_open_opts oo = { 0 };
    struct ppf_img_err err = { 0 };
    int rc;

    oo.ca_file = c->ca_file;
    oo.pinned_pubkey = c->pinned;
    oo.allow_no_key = allow_no_key;
    rc = ppf_img_open(src, c->have_key ? c->key : NULL, &oo, img, &err);
    wipe_key(c);
    return rc < 0 ? report(&err) : 0;
}

static int
cmd_pack(struct cli *c, const char *src, const char *dst)
{
    struct ppf_img_pack_opts o = { 0 };
    struct ppf_img_err err = { 0 };
    int rc;

    if ((rc = load_key(c)) != 0)
        return rc;
    o.key = c->have_key ? c->key : NULL;
    o.level = c->level;
    o.chunk_size = c->chunk;
    o.threads = c->threads;
    o.overwrite = c->force;
    o.progress = c->tty ? progress : NULL;
    o.opaque = c;
    o.cancel = (const int *)&interrupted;
    rc = ppf_img_pack(src, dst, &o, &err);
    wipe_key(c);
    return rc < 0 ? report(&err) : 0;
}

static int
cmd_unpack(struct cli *c, const char *src, const char *dst, int verify_only)
{
    struct ppf_img_unpack_opts o = { 0 };
    struct ppf_img_err err = { 0 };
    struct ppf_img *img = NULL;
    int rc;

    if ((rc = load_key(c)) != 0 || (rc = open_image(c, src, 0, &img)) != 0)
        return rc;
    o.threads = c->threads;
    o.overwrite = c->force;
    o.no_sync = c->no_sync;
    o.verify_digest = c->verify_digest;
    o.progress = c->tty ? progress : NULL;
    o.opaque = c;
    o.cancel = (const int *)&interrupted;
    if (c->format && strcmp(c->format, "qcow2") == 0)
        o.format = PPF_IMG_FORMAT_QCOW2;
    rc = verify_only ? ppf_img_verify(img, &o, &err) : ppf_img_unpack(img, dst, &o, &err);
    ppf_img_close(img);
    if (rc < 0)
        return report(&err);
    if (verify_only)
        printf("%s: ok\n", src);
    return 0;
}

static int
cmd_info(struct cli *c, const char *src)
{
    struct ppf_img *img = NULL;
    struct ppf_img_info i;
    char kid[2 * PPF_IMG_KEY_ID_SIZE + 1], dig[2 * PPF_IMG_DIGEST_SIZE + 1], h1[32], h2[32];
    int rc;

    if ((rc = load_key(c)) != 0 || (rc = open_image(c, src, 1, &img)) != 0)
        return rc;
    ppf_img_info(img, &i);
    ppf_img_close(img);
    ppf_img_hex(i.key_id, sizeof i.key_id, kid);
    ppf_img_hex(i.digest, sizeof i.digest, dig);
    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", src);
        ppf_json_u64(&j, "version_major", i.version_major);
        ppf_json_u64(&j, "version_minor", i.version_minor);
        ppf_json_u64(&j, "size", i.size);
        ppf_json_u64(&j, "chunk_size", i.chunk_size);
        ppf_json_u64(&j, "chunks", i.chunk_count);
        ppf_json_u64(&j, "zero_chunks", i.zero_chunks);
        ppf_json_u64(&j, "stored_bytes", i.stored_bytes);
        ppf_json_u64(&j, "file_size", i.file_size);
        ppf_json_str(&j, "compression", i.compression);
        ppf_json_str(&j, "cipher", i.cipher);
        ppf_json_bool(&j, "encrypted", i.encrypted);
        ppf_json_bool(&j, "authenticated", i.authenticated);
        if (i.encrypted)
            ppf_json_str(&j, "key_id", kid);
        ppf_json_str(&j, "sha256", dig);
        ppf_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        human(i.size, h1, sizeof h1);
        human(i.stored_bytes, h2, sizeof h2);
        printf("image:        %s\n", src);
        printf("format:       ppfi %u.%u\n", i.version_major, i.version_minor);
        printf("size:         %llu (%s)\n", (unsigned long long)i.size, h1);
        printf("chunk size:   %u\n", i.chunk_size);
        printf("chunks:       %llu (%llu all-zero, not stored)\n",
               (unsigned long long)i.chunk_count, (unsigned long long)i.zero_chunks);
        printf("stored:       %llu (%s)\n", (unsigned long long)i.stored_bytes, h2);
        printf("file size:    %llu\n", (unsigned long long)i.file_size);
        printf("compression:  %s\n", i.compression);
        printf("cipher:       %s\n", i.cipher);
        if (i.encrypted)
            printf("key id:       %s%s\n", kid,
                   i.authenticated ? "" : " (not checked: give --key to authenticate)");
        printf("sha256:       %s\n", dig);
    }
    if (fflush(stdout) != 0) {
        perror("ppf-image: writing the output");
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    enum { OPT_CA = 256, OPT_PIN, OPT_FORCE, OPT_NOSYNC, OPT_VDIGEST };
    static const struct option longopts[] = {
        { "key", required_argument, NULL, 'k' },
        { "level", required_argument, NULL, 'l' },
        { "chunk", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "format", required_argument, NULL, 'f' },
        { "ca-file", required_argument, NULL, OPT_CA },
        { "pinned-pubkey", required_argument, NULL, OPT_PIN },
        { "force", no_argument, NULL, OPT_FORCE },
        { "no-sync", no_argument, NULL, OPT_NOSYNC },
        { "verify-digest", no_argument, NULL, OPT_VDIGEST },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct cli c = { 0 };
    struct sigaction sa = { 0 };
    struct timespec ts;
    uint64_t v;
    int opt, nargs;
    const char *cmd;

    c.threads = 1;
    while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': usage(stdout); return 0;
        case 'V': printf("ppf-image %s\n", PACKAGE_VERSION); return 0;
        default: return usage_error("unknown option before the command");
        }
    }
    if (optind >= argc)
        return usage_error("no command given");
    cmd = c.cmd = argv[optind];
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "pack") && strcmp(cmd, "unpack") && strcmp(cmd, "info") &&
        strcmp(cmd, "verify"))
        return usage_error("unknown command '%s'", cmd);
    /* Options may follow the arguments: parse the rest anew, permuting. */
    argc -= optind;
    argv += optind;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "k:l:c:t:f:jhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'k': c.key_file = optarg; break;
        case 'l':
            if (ppf_parse_u64(optarg, 1, 22, &v) < 0)
                return usage_error("--level: '%s' is not a number from 1 to 22", optarg);
            c.level = v;
            break;
        case 'c':
            if (ppf_parse_size(optarg, PPF_IMG_CHUNK_MIN, PPF_IMG_CHUNK_MAX, &c.chunk) < 0 ||
                (c.chunk & (c.chunk - 1)))
                return usage_error("--chunk: '%s' is not a power of two from 64K to 64M",
                                   optarg);
            break;
        case 't':
            if (ppf_parse_u64(optarg, 1, PPF_IMG_THREADS_MAX, &c.threads) < 0)
                return usage_error("--threads: '%s' is not a number from 1 to %d", optarg,
                                   PPF_IMG_THREADS_MAX);
            break;
        case 'f':
            if (strcmp(optarg, "raw") && strcmp(optarg, "qcow2"))
                return usage_error("--format: '%s' is neither raw nor qcow2", optarg);
            c.format = optarg;
            break;
        case OPT_CA: c.ca_file = optarg; break;
        case OPT_PIN: c.pinned = optarg; break;
        case OPT_FORCE: c.force = 1; break;
        case OPT_NOSYNC: c.no_sync = 1; break;
        case OPT_VDIGEST: c.verify_digest = 1; break;
        case 'j': c.json = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ppf-image %s\n", PACKAGE_VERSION); return 0;
        default: return usage_error("bad option for %s", cmd);
        }
    }
    nargs = argc - optind;
    if (nargs != (strcmp(cmd, "pack") == 0 || strcmp(cmd, "unpack") == 0 ? 2 : 1))
        return usage_error("%s takes %s", cmd, nargs < 2 && (!strcmp(cmd, "pack") ||
                           !strcmp(cmd, "unpack")) ? "SRC and DST" : "exactly the arguments "
                           "shown in --help");
    if ((c.json && strcmp(cmd, "info")) || (c.format && strcmp(cmd, "unpack")) ||
        ((c.level || c.chunk) && strcmp(cmd, "pack")) ||
        ((c.no_sync || c.verify_digest) && strcmp(cmd, "unpack")) ||
        (c.force && strcmp(cmd, "pack") && strcmp(cmd, "unpack")) ||
        ((c.ca_file || c.pinned) && strcmp(cmd, "pack") == 0))
        return usage_error("an option given does not apply to %s", cmd);

    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    c.tty = isatty(STDERR_FILENO);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c.t0 = ts.tv_sec + ts.tv_nsec / 1e9;

    if (strcmp(cmd, "pack") == 0)
        return cmd_pack(&c, argv[optind], argv[optind + 1]);
    if (strcmp(cmd, "unpack") == 0)
        return cmd_unpack(&c, argv[optind], argv[optind + 1], 0);
    if (strcmp(cmd, "verify") == 0)
        return cmd_unpack(&c, argv[optind], NULL, 1);
    return cmd_info(&c, argv[optind]);
}

/* ppfctl: the administrator's tool.  Talks to the peripheral through
 * libppf.  Commands so far: status (IDENTIFY + GET_STATS) and nop (round
 * trips with latency).  Every command has --json for scripts.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/util.h"
#include "ppf/ppf.h"
#include "tools/ppfctl.h"

#define DEFAULT_TIMEOUT_MS 5000


static void
usage(FILE *fp)
{
    fprintf(fp,
"Usage: ppfctl [--device SPEC] [--timeout MS] [--json] COMMAND [ARGS]\n"
"Administer the ppf peripheral.\n"
"\n"
"Commands:\n"
"  status              identity, geometry, uptime and counters of the peripheral\n"
"  nop [--count N]     N round trips (default 1000); prints their latency\n"
"  policy validate FILE  check a policy file (no peripheral needed)\n"
"  policy apply FILE   validate, send to the peripheral, which keeps it\n"
"  policy show [--file FILE]  the policy in force (or FILE's), defaults filled in\n"
"  prefetch IMAGE [--tenant T] [--priority low|normal|high] [--wait]\n"
"                      prepare IMAGE in the prefetch buffer (--wait: until ready)\n"
"  deploy IMAGE --dest PATH [--tenant T] [--mode overlay|copy] [--ephemeral]\n"
"         [--domain UUID]  create the disk PATH from the buffer (fetching on a miss)\n"
"  release UUID        unpin what domain UUID's deploys pinned\n"
"  evict IMAGE [--tenant T]  drop IMAGE from the buffer (admin)\n"
"  pin IMAGE [--tenant T] [--until WHEN]\n"
"                            keep IMAGE prepared, never evicted (admin; persisted)\n"
"  unpin IMAGE [--tenant T]  undo ppfctl pin (admin)\n"
"  explain IMAGE [--tenant T]\n"
"                            why IMAGE is or is not in the buffer now\n"
"  buffer              the buffer's entries: image, tenant, size, state, pins, hits\n"
"  stats [--prometheus]  deploy and buffer counters, hit ratio; usage per tenant\n"
"                      and image: outcomes, mean wait, time saved, bytes wasted\n"
"  events [--follow] [--since SEQ] [--limit N]\n"
"                      the operations log: what the peripheral did and why\n"
"  table               the Image Prediction Table: patterns and the images they rank\n"
"  event KIND IMAGE [--tenant T] [--domain UUID] [--time EPOCH-SECONDS]\n"
"                      tell the learning engine about host history (KIND: defined,\n"
"                      started, stopped, undefined, deploy)\n"
"  pool-define FILE.xml [--policy F]  define and start a ppf pool (ppf-pool(5))\n"
"  pool-dumpxml NAME [--inactive]  the pool's libvirt XML with ppf's element\n"
"  pool-list           ppf pools: libvirt state, prepared images, disks, quota\n"
"  pool-refresh [NAME]  show the buffer's ready images as the pools' volumes now\n"
"  pool-undefine NAME [--keep-libvirt]  remove a ppf pool (never its disks)\n"
"  vol-create POOL VOLUME --image IMAGE [--tenant T] [--mode overlay|copy]\n"
"                      a disk in a ppf pool, deployed from IMAGE at its first start\n"
"  vol-delete POOL VOLUME [--keep-disk]  remove the volume and its disk\n"
"  vol-list POOL       the pool's volumes: image, tenant, placeholder or deployed\n"
"                      pool-* and vol-* take --connect URI (default qemu:///system)\n"
"                      and --pool-dir DIR (default $PPF_POOL_DIR, /var/lib/ppf/pools)\n"
"  replay TRACE [--policy F] [--algorithm A] [--capacity SIZE] [--bandwidth RATE]\n"
"         [--baselines lru,belady,oracle] [--plot F.svg]  evaluate the predictor offline\n"
"         [--hosts N [--federation] [--federation-interval S] [--split tenant|request]]\n"
"                      (N simulated hosts, learning alone or sharing summaries)\n"
"  federation status   peers, last exchange, what was merged, errors\n"
"  help                show this help\n"
"\n"
"Options:\n"
"  -d, --device SPEC   auto (default: $PPF_DEVICE, else a UIO card named ppf,\n"
"                      else emu:" PPF_DEFAULT_EMU_PATH "), emu:PATH or uio:/dev/uioN\n"
"  -t, --timeout MS    how long to wait for the peripheral (default %d)\n"
"  -j, --json          machine-readable output\n"
"  -h, --help          show this help and exit\n"
"  -V, --version       show the version and exit\n"
"\n"
"Exit status: 0 success, 1 failure (peripheral unreachable, command failed),\n"
"2 usage error.  See ppfctl(8).\n", DEFAULT_TIMEOUT_MS);
}

int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ppfctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'ppfctl --help' for more information.\n");
    return 2;
}

int
fail(const char *what)
{
    fprintf(stderr, "ppfctl: %s%s%s\n", what ? what : "", what ? ": " : "", ppf_error());
    return 1;
}

int
ctl_connect_kind(struct ctl *c, enum ppf_qp_kind kind)
{
    if (ppf_dev_open(c->device, &c->dev) < 0)
        return fail(NULL);
    if (ppf_qp_claim(c->dev, kind, c->timeout_ms, &c->qp) < 0)
        return fail(kind == PPF_QP_ADMIN ? "the admin queue" : NULL);
    return 0;
}

static int
ctl_connect(struct ctl *c)
{
    return ctl_connect_kind(c, PPF_QP_IO);
}

void
ctl_disconnect(struct ctl *c)
{
    ppf_qp_release(c->qp);
    c->qp = NULL;
    ppf_dev_close(c->dev);
    c->dev = NULL;
}

/* Runs a command that returns attributes into buf; 0 or exit status. */
static int
ctl_query(struct ctl *c, uint8_t op, void *buf, uint32_t cap, uint32_t *len)
{
    struct ppf_cmd cmd = { .opcode = op, .out = buf, .out_cap = cap };
    struct ppf_dev_info info;

    ppf_dev_get_info(c->dev, &info);
    if (cmd.out_cap > info.slot_size)
        cmd.out_cap = info.slot_size;

    if (ppf_exec(c->qp, &cmd, c->timeout_ms) < 0)
        return fail(ppf_opcode_name(op));
    if (cmd.status != PPF_SC_SUCCESS) {
        fprintf(stderr, "ppfctl: %s failed: %s\n", ppf_opcode_name(op),
                ppf_status_text(cmd.status));
        return 1;
    }
    *len = cmd.out_len;
    return 0;
}

struct identity {
    char vendor[128], model[128], firmware[64], serial[128], state_dir[4096];
    uint64_t features;
    uint32_t pid;
};

static int
decode_identify(const uint8_t *buf, uint32_t len, struct identity *id)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    int k, bad = 0;

    memset(id, 0, sizeof *id);
    ppf_attr_reader_init(&r, buf, len);
    while ((k = ppf_attr_next(&r, &a)) > 0) {
        switch (a.type) {
        case PPF_ID_VENDOR: bad |= ppf_attr_get_str(&a, id->vendor, sizeof id->vendor); break;
        case PPF_ID_MODEL: bad |= ppf_attr_get_str(&a, id->model, sizeof id->model); break;
        case PPF_ID_FIRMWARE:
            bad |= ppf_attr_get_str(&a, id->firmware, sizeof id->firmware);
            break;
        case PPF_ID_SERIAL: bad |= ppf_attr_get_str(&a, id->serial, sizeof id->serial); break;
        case PPF_ID_STATE_DIR:
            bad |= ppf_attr_get_str(&a, id->state_dir, sizeof id->state_dir);
            break;
        case PPF_ID_FEATURES: bad |= ppf_attr_get_u64(&a, &id->features); break;
        case PPF_ID_PID: bad |= ppf_attr_get_u32(&a, &id->pid); break;
        default: break;     /* geometry is read from the window; unknown: skip */
        }
    }
    return k < 0 || bad ? -1 : 0;
}

static void
format_duration(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;

    if (s >= 86400)
        snprintf(buf, len, "%llud %lluh %llum", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600), (unsigned long long)(s % 3600 / 60));
    else if (s >= 3600)
        snprintf(buf, len, "%lluh %llum %llus", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60), (unsigned long long)(s % 60));
    else
        snprintf(buf, len, "%llum %llu.%03llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60), (unsigned long long)(ms % 1000));
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
    static uint8_t idbuf[16384], stbuf[16384];
    uint32_t idlen, stlen;
    struct ppf_dev_info info;
    struct identity id;
    struct ppf_attr_reader r;
    struct ppf_attr a;
    uint64_t stats[PPF_STAT_METRICS__MAX] = { 0 };
    int r0, k;

    if (argc > 1)
        return usage_error("status takes no arguments, got '%s'", argv[1]);
    if ((r0 = ctl_connect(c)) != 0)
        return r0;
    if ((r0 = ctl_query(c, PPF_OP_IDENTIFY, idbuf, sizeof idbuf, &idlen)) != 0 ||
        (r0 = ctl_query(c, PPF_OP_GET_STATS, stbuf, sizeof stbuf, &stlen)) != 0)
        return r0;
    ppf_dev_get_info(c->dev, &info);
    if (decode_identify(idbuf, idlen, &id) < 0) {
        fprintf(stderr, "ppfctl: %s: the peripheral's IDENTIFY answer is malformed; "
                "restart ppf-peripheral\n", info.path);
        return 1;
    }
    ppf_attr_reader_init(&r, stbuf, stlen);
    while ((k = ppf_attr_next(&r, &a)) > 0)
        if (a.type < PPF_STAT_METRICS__MAX && ppf_attr_get_u64(&a, &stats[a.type]) < 0)
            k = -1;
    if (k < 0) {
        fprintf(stderr, "ppfctl: %s: the peripheral's GET_STATS answer is malformed; "
                "restart ppf-peripheral\n", info.path);
        return 1;
    }

    if (c->json) {
        struct ppf_json j;
        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_begin_object(&j, "device");
        ppf_json_str(&j, "backend", info.backend);
        ppf_json_str(&j, "path", info.path);
        ppf_json_u64(&j, "protocol_major", info.version >> 16);
        ppf_json_u64(&j, "protocol_minor", info.version & 0xffff);
        ppf_json_u64(&j, "queue_pairs", info.num_qps);
        ppf_json_u64(&j, "queue_size", info.qsize);
        ppf_json_u64(&j, "slots", info.slots);
        ppf_json_u64(&j, "slot_size", info.slot_size);
        ppf_json_end_object(&j);
        ppf_json_begin_object(&j, "identify");
        ppf_json_str(&j, "vendor", id.vendor);
        ppf_json_str(&j, "model", id.model);
        ppf_json_str(&j, "firmware", id.firmware);
        ppf_json_str(&j, "serial", id.serial);
        ppf_json_str(&j, "state_dir", id.state_dir);
        ppf_json_u64(&j, "features", id.features);
        ppf_json_bool(&j, "emulated", (id.features & PPF_FEAT_EMULATED) != 0);
        ppf_json_u64(&j, "pid", id.pid);
        ppf_json_end_object(&j);
        ppf_json_begin_object(&j, "stats");
        for (unsigned s = 1; s < PPF_STAT_METRICS__MAX; s++)
            if (ppf_stat_name(s))
                ppf_json_u64(&j, ppf_stat_name(s), stats[s]);
        ppf_json_end_object(&j);
        ppf_json_end_object(&j);
    } else {
        char up[64];
        format_duration(stats[PPF_STAT_UPTIME_MS], up, sizeof up);
        printf("device      %s:%s%s\n", info.backend, info.path,
               id.features & PPF_FEAT_EMULATED ? " (emulated)" : "");
        printf("model       %s, firmware %s, serial %s\n", id.model, id.firmware, id.serial);
        if (id.pid)
            printf("pid         %u\n", id.pid);
        printf("protocol    %u.%u\n", info.version >> 16, info.version & 0xffff);
        printf("queues      %u pairs (1 admin + %u I/O), %u entries, %u slots of %u KiB\n",
               info.num_qps, info.num_qps - 1, info.qsize, info.slots, info.slot_size / 1024);
        printf("state dir   %s\n", id.state_dir);
        printf("uptime      %s\n", up);
        printf("clients     %llu attached, %llu pairs claimed\n",
               (unsigned long long)stats[PPF_STAT_CLIENTS],
               (unsigned long long)stats[PPF_STAT_QPS_CLAIMED]);
        printf("commands    %llu (%llu errors, %llu rejected)\n",
               (unsigned long long)stats[PPF_STAT_COMMANDS],
               (unsigned long long)stats[PPF_STAT_ERRORS],
               (unsigned long long)stats[PPF_STAT_REJECTED]);
        printf("pairs       %llu claims, %llu resets, %llu reclaimed, %llu stopped\n",
               (unsigned long long)stats[PPF_STAT_CLAIMS],
               (unsigned long long)stats[PPF_STAT_RESETS],
               (unsigned long long)stats[PPF_STAT_RECLAIMS],
               (unsigned long long)stats[PPF_STAT_QUEUE_FATAL]);
        printf("interrupts  %llu raised, %llu wake-ups\n",
               (unsigned long long)stats[PPF_STAT_IRQS],
               (unsigned long long)stats[PPF_STAT_WAKEUPS]);
        printf("deploys     %llu (%llu hits, %llu in flight, %llu misses); buffer %llu entries\n",
               (unsigned long long)stats[PPF_STAT_DEPLOYS],
               (unsigned long long)stats[PPF_STAT_HITS],
               (unsigned long long)stats[PPF_STAT_INFLIGHT_HITS],
               (unsigned long long)stats[PPF_STAT_MISSES],
               (unsigned long long)stats[PPF_STAT_BUFFER_ENTRIES]);
        if (stats[PPF_STAT_METRICS_PRODUCER])
            printf("host metrics %llu records from pid %llu (%llu dropped, %llu invalid)\n",
                   (unsigned long long)stats[PPF_STAT_METRICS_RECORDS],
                   (unsigned long long)stats[PPF_STAT_METRICS_PRODUCER],
                   (unsigned long long)stats[PPF_STAT_METRICS_DROPPED],
                   (unsigned long long)stats[PPF_STAT_METRICS_INVALID]);
        else
            printf("host metrics none yet (start ppfd)\n");
    }
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
cmd_nop(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t count = 1000, *lat, sum = 0;
    struct timespec t0, t1;
    int o, r0;

    optind = 1;
    while ((o = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
        if (o != 'n' || ppf_parse_u64(optarg, 1, 100000000, &count) < 0)
            return o == 'n' ? usage_error("nop --count '%s': expected 1 to 100000000", optarg)
                            : usage_error("%s", "nop takes only --count N");
    }
    if (optind < argc)
        return usage_error("nop: unexpected argument '%s'", argv[optind]);
    lat = calloc(count, sizeof *lat);
    if (!lat) {
        fprintf(stderr, "ppfctl: out of memory for %llu samples\n", (unsigned long long)count);
        return 1;
    }
    if ((r0 = ctl_connect(c)) != 0) {
        free(lat);
        return r0;
    }
    for (uint64_t i = 0; i < count; i++) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_NOP };
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (ppf_exec(c->qp, &cmd, c->timeout_ms) < 0 || cmd.status != PPF_SC_SUCCESS) {
            free(lat);
            return cmd.status ? (fprintf(stderr, "ppfctl: NOP failed: %s\n",
                                         ppf_status_text(cmd.status)), 1) : fail("NOP");
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        lat[i] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)t1.tv_nsec -
                 (uint64_t)t0.tv_nsec;
        sum += lat[i];
    }
    qsort(lat, count, sizeof *lat, cmp_u64);
    double p50 = lat[count / 2] / 1e3, p99 = lat[count * 99 / 100] / 1e3;
    double mean = (double)sum / count / 1e3;
    if (c->json) {
        struct ppf_json j;
        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_u64(&j, "count", count);
        ppf_json_double(&j, "p50_us", p50);
        ppf_json_double(&j, "p99_us", p99);
        ppf_json_double(&j, "mean_us", mean);
        ppf_json_double(&j, "max_us", lat[count - 1] / 1e3);
        ppf_json_end_object(&j);
    } else {
        printf("%llu NOP round trips: p50 %.1f us, p99 %.1f us, mean %.1f us, max %.1f us\n",
               (unsigned long long)count, p50, p99, mean, lat[count - 1] / 1e3);
    }
    free(lat);
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "device", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl c = { .device = NULL, .timeout_ms = DEFAULT_TIMEOUT_MS };
    uint64_t v;
    int o, r;

    /* '+': stop at the command name; its options are its own */
    while ((o = getopt_long(argc, argv, "+d:t:jhV", opts, NULL)) != -1) {
        switch (o) {
        case 'd': c.device = optarg; break;
        case 't':
            if (ppf_parse_u64(optarg, 1, 86400000, &v) < 0)
                return usage_error("--timeout '%s': expected milliseconds, 1 to 86400000",
                                   optarg);
            c.timeout_ms = (int)v;
            break;
        case 'j': c.json = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ppfctl %s (protocol %u.%u)\n", PACKAGE_VERSION, PPF_VERSION_MAJOR,
                         PPF_VERSION_MINOR); return 0;
        default: fprintf(stderr, "Try 'ppfctl --help' for more information.\n"); return 2;
        }
    }
    if (optind >= argc)
        return usage_error("%s", "no command given (try: ppfctl status)");
    argc -= optind;
    argv += optind;
    /* allow --json after the command name too */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0) {
            c.json = 1;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
            argc--;
            i--;
        }

    if (strcmp(argv[0], "status") == 0)
        r = cmd_status(&c, argc, argv);
    else if (strcmp(argv[0], "nop") == 0)
        r = cmd_nop(&c, argc, argv);
    else if (strcmp(argv[0], "policy") == 0)
        r = cmd_policy(&c, argc, argv);
    else if (strcmp(argv[0], "prefetch") == 0)
        r = cmd_prefetch(&c, argc, argv);
    else if (strcmp(argv[0], "deploy") == 0)
        r = cmd_deploy(&c, argc, argv);
    else if (strcmp(argv[0], "release") == 0)
        r = cmd_release(&c, argc, argv);
    else if (strcmp(argv[0], "evict") == 0)
        r = cmd_evict(&c, argc, argv);
    else if (strcmp(argv[0], "pin") == 0 || strcmp(argv[0], "unpin") == 0)
        r = cmd_pin(&c, argc, argv);
    else if (strcmp(argv[0], "explain") == 0)
        r = cmd_explain(&c, argc, argv);
    else if (strcmp(argv[0], "buffer") == 0)
        r = cmd_buffer(&c, argc, argv);
    else if (strcmp(argv[0], "stats") == 0)
        r = cmd_stats(&c, argc, argv);
    else if (strcmp(argv[0], "replay") == 0)
        r = cmd_replay(&c, argc, argv);
    else if (strcmp(argv[0], "table") == 0)
        r = cmd_table(&c, argc, argv);
    else if (strcmp(argv[0], "event") == 0)
        r = cmd_event(&c, argc, argv);
    else if (strcmp(argv[0], "events") == 0)
        r = cmd_events(&c, argc, argv);
    else if (strcmp(argv[0], "federation") == 0)
        r = cmd_federation(&c, argc, argv);
    else if (strncmp(argv[0], "pool-", 5) == 0)
        r = cmd_pool(&c, argc, argv);
    else if (strncmp(argv[0], "vol-", 4) == 0)
        r = cmd_vol(&c, argc, argv);
    else if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        r = 0;
    } else
        return usage_error("unknown command '%s' (commands: status, nop, policy, prefetch, deploy, release, evict, pin, unpin, explain, buffer, stats, events, table, event, replay, pool-define, pool-dumpxml, pool-list, pool-refresh, pool-undefine, vol-create, vol-delete, vol-list, help)", argv[0]);
    ctl_disconnect(&c);
    return r;
}

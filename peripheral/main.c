/* ppf-peripheral: the card's firmware.  On machines without a ppf card it
 * emulates one (--emulate, the default): it creates the device window,
 * listens for host clients on the device socket and serves their queue
 * pairs until SIGTERM.  Daemonizes unless --foreground; the pidfile is
 * written only once clients can attach, so scripts can wait for it.  The
 * window carries a metrics ring (§6) that ppfd fills and the monitor reads
 * at every poll of the core.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "peripheral/clock.h"
#include "peripheral/core.h"
#include "peripheral/emu_server.h"
#include "peripheral/firmware.h"
#include "peripheral/monitor.h"
#include "ppf/ppf.h"

#define DEFAULT_STATE_DIR "/var/lib/ppf"
#define DEFAULT_GROUP     "ppf"

static volatile int stop_flag;
static struct ppf_core *the_core;

/* The firmware's command ops, with the monitor's poll and counters added. */
static struct ppf_core_cmd_ops fw_ops;
static struct ppf_monitor *the_monitor;

static unsigned
main_poll(void *opaque)
{
    (void)opaque;
    /* new samples are not commands: they do not keep the core spinning */
    ppf_monitor_poll(the_monitor);
    return fw_ops.poll ? fw_ops.poll(fw_ops.opaque) : 0;
}

static void
main_stats(void *opaque, struct ppf_attr_writer *w)
{
    (void)opaque;
    if (fw_ops.stats)
        fw_ops.stats(fw_ops.opaque, w);
    ppf_monitor_stats(the_monitor, w);
}

static enum ppf_status_code
main_exec(void *opaque, uint32_t qid, const struct ppf_sqe *e, const uint8_t *in,
          uint8_t *out, uint32_t *result, uint32_t *out_len)
{
    (void)opaque;
    return fw_ops.exec(fw_ops.opaque, qid, e, in, out, result, out_len);
}

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
    if (the_core)
        ppf_core_kick(the_core);
}

static void
usage(FILE *fp)
{
    fprintf(fp,
"Usage: ppf-peripheral [OPTION]...\n"
"The ppf peripheral's firmware; without a ppf card it emulates one.\n"
"\n"
"  --emulate             emulate the card (the default: no card driver here)\n"
"  --dev PATH            device socket to create (default " PPF_DEFAULT_EMU_PATH ")\n"
"  --state-dir DIR       where learned state is kept (default " DEFAULT_STATE_DIR ")\n"
"  --foreground          do not daemonize; log to stderr\n"
"  --log-file FILE       where to log once detached (default /var/log/ppf/ppf-peripheral.log)\n"
"  --pidfile FILE        write the pid here once clients can attach\n"
"  --exit-with-parent    stop when the parent process exits (implies --foreground)\n"
"  --queues N            queue pairs, admin pair included (2..64, default 17)\n"
"  --queue-size N        entries per queue, a power of two (4..4096, default 64)\n"
"  --slots N             commands in flight per pair (1..queue-size-1, default 32)\n"
"  --slot-size BYTES     payload bytes per command, multiple of 4096\n"
"                        (4KiB..1MiB, default 64KiB)\n"
"  --poll-us N           spin this long when idle before sleeping (default 50)\n"
"  --metrics-records N   records in the host metrics ring, a power of two\n"
"                        (2..1048576, default 64; 0: no ring)\n"
"  --group NAME          open the device to this group if it exists (default ppf)\n"
"  --log-level LEVEL     error, warn, info or debug (default info)\n"
"  --virtual-clock FILE  for tests: read the wall clock (seconds since the\n"
"                        epoch) from FILE instead of the system clock\n"
"  -v, --verbose         same as --log-level debug\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Exit status: 0 stopped cleanly, 1 runtime error, 2 usage error.\n"
"See ppf-peripheral(8).\n");
}

static int
bad_option(const char *opt, const char *val, const char *expect)
{
    fprintf(stderr, "ppf-peripheral: %s '%s' is not valid: expected %s\n", opt, val, expect);
    fprintf(stderr, "Try 'ppf-peripheral --help' for more information.\n");
    return 2;
}

int
main(int argc, char **argv)
{
    enum { OPT_DEV = 256, OPT_STATE, OPT_FG, OPT_LOGFILE, OPT_PID, OPT_EWP, OPT_QUEUES, OPT_QSIZE,
           OPT_SLOTS, OPT_SLOTSIZE, OPT_POLL, OPT_GROUP, OPT_EMU, OPT_LOG, OPT_METRICS,
           OPT_VCLOCK };
    static const struct option opts[] = {
        { "emulate", no_argument, NULL, OPT_EMU },
        { "dev", required_argument, NULL, OPT_DEV },
        { "state-dir", required_argument, NULL, OPT_STATE },
        { "foreground", no_argument, NULL, OPT_FG },
        { "log-file", required_argument, NULL, OPT_LOGFILE },
        { "pidfile", required_argument, NULL, OPT_PID },
        { "exit-with-parent", no_argument, NULL, OPT_EWP },
        { "queues", required_argument, NULL, OPT_QUEUES },
        { "queue-size", required_argument, NULL, OPT_QSIZE },
        { "slots", required_argument, NULL, OPT_SLOTS },
        { "slot-size", required_argument, NULL, OPT_SLOTSIZE },
        { "poll-us", required_argument, NULL, OPT_POLL },
        { "metrics-records", required_argument, NULL, OPT_METRICS },
        { "group", required_argument, NULL, OPT_GROUP },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "virtual-clock", required_argument, NULL, OPT_VCLOCK },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *dev_path = PPF_DEFAULT_EMU_PATH, *state_dir = DEFAULT_STATE_DIR;
    const char *log_file = "/var/log/ppf/ppf-peripheral.log";
    const char *pidfile = NULL, *group = DEFAULT_GROUP;
    int foreground = 0, exit_with_parent = 0, level = PPF_LOG_INFO, c;
    struct ppf_core_config cfg;
    struct ppf_fw *fw = NULL;
    struct ppf_core_cmd_ops ops;
    struct ppf_regs layout;
    struct emu_server *srv = NULL;
    struct sigaction sa;
    char serial[64];
    int ready_fd = -1;
    pid_t parent = getppid();
    uint64_t v, win_size;
    uint32_t metrics_records = PPF_METRICS_DEFAULT_RECORDS;

    ppf_core_config_default(&cfg);
    while ((c = getopt_long(argc, argv, "vhV", opts, NULL)) != -1) {
        switch (c) {
        case OPT_EMU: break;
        case OPT_DEV:
            if (!*optarg)
                return bad_option("--dev", optarg, "a path");
            dev_path = optarg;
            break;
        case OPT_STATE:
            if (!*optarg)
                return bad_option("--state-dir", optarg, "a directory");
            state_dir = optarg;
            break;
        case OPT_FG: foreground = 1; break;
        case OPT_LOGFILE: log_file = optarg; break;
        case OPT_PID: pidfile = optarg; break;
        case OPT_EWP: exit_with_parent = foreground = 1; break;
        case OPT_QUEUES:
            if (ppf_parse_u64(optarg, 2, PPF_MAX_QPS, &v) < 0)
                return bad_option("--queues", optarg, "a number from 2 to 64");
            cfg.num_qps = (uint32_t)v;
            break;
        case OPT_QSIZE:
            if (ppf_parse_u64(optarg, PPF_MIN_QSIZE, PPF_MAX_QSIZE, &v) < 0 || (v & (v - 1)))
                return bad_option("--queue-size", optarg, "a power of two from 4 to 4096");
            cfg.qsize = (uint32_t)v;
            break;
        case OPT_SLOTS:
            if (ppf_parse_u64(optarg, 1, PPF_MAX_QSIZE - 1, &v) < 0)
                return bad_option("--slots", optarg, "a number below --queue-size");
            cfg.slots = (uint32_t)v;
            break;
        case OPT_SLOTSIZE:
            if (ppf_parse_size(optarg, PPF_MIN_SLOT_SIZE, PPF_MAX_SLOT_SIZE, &v) < 0 ||
                (v & 4095))
                return bad_option("--slot-size", optarg,
                                  "a multiple of 4096 from 4KiB to 1MiB, e.g. 64KiB");
            cfg.slot_size = (uint32_t)v;
            break;
        case OPT_POLL:
            if (ppf_parse_u64(optarg, 0, 10000000, &v) < 0)
                return bad_option("--poll-us", optarg, "microseconds from 0 to 10000000");
            cfg.poll_us = (int)v;
            break;
        case OPT_METRICS:
            if (ppf_parse_u64(optarg, 0, PPF_METRICS_MAX_RECORDS, &v) < 0 || v == 1 ||
                (v & (v - 1)))
                return bad_option("--metrics-records", optarg,
                                  "0 or a power of two from 2 to 1048576");
            metrics_records = (uint32_t)v;
            break;
        case OPT_GROUP: group = optarg; break;
        case OPT_LOG:
            level = ppf_log_level_parse(optarg);
            if (level < 0)
                return bad_option("--log-level", optarg, "error, warn, info or debug");
            break;
        case OPT_VCLOCK:
            if (!*optarg || ppf_clock_set_virtual(optarg) < 0)
                return bad_option("--virtual-clock", optarg, "a file name (for tests)");
            break;
        case 'v': level = PPF_LOG_DEBUG; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ppf-peripheral %s (protocol %u.%u)\n", PACKAGE_VERSION,
                         PPF_VERSION_MAJOR, PPF_VERSION_MINOR); return 0;
        default:
            fprintf(stderr, "Try 'ppf-peripheral --help' for more information.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppf-peripheral: unexpected argument '%s'\n"
                "Try 'ppf-peripheral --help' for more information.\n", argv[optind]);
        return 2;
    }
    if (cfg.slots >= cfg.qsize) {
        fprintf(stderr, "ppf-peripheral: --slots %u must be below --queue-size %u\n",
                cfg.slots, cfg.qsize);
        return 2;
    }
    ppf_log_init("ppf-peripheral", (enum ppf_log_level)level);

    if (exit_with_parent && ppf_exit_with_parent(parent) < 0)
        return 0;               /* the parent is already gone */

    if (ppf_mkdir_p(state_dir, 0700) < 0) {
        ppf_err("main", "cannot create state directory %s: %m; choose one with --state-dir",
                state_dir);
        return 1;
    }

    /* Daemonize before creating threads; the parent exits once we are ready. */
    if (!foreground && ppf_daemonize(&ready_fd, log_file) < 0)
        return 1;

    cfg.features = PPF_FEAT_EMULATED | PPF_FEAT_FUTEX_IRQ;
    if (metrics_records) {
        cfg.features |= PPF_FEAT_METRICS;
        cfg.metrics_size = ppf_metrics_ring_size(metrics_records);
    }
    cfg.device_pid = (uint32_t)getpid();
    cfg.state_dir = state_dir;
    {
        struct utsname un;
        uname(&un);
        snprintf(serial, sizeof serial, "emu-%.40s-%d", un.nodename, (int)getpid());
    }
    cfg.serial = serial;
    win_size = ppf_core_window_size(&cfg);
    if (win_size == 0) {
        ppf_err("main", "queue geometry out of range; see --help");
        return 2;
    }

    if (ppf_fw_new(state_dir, &fw) < 0)
        return 1;
    if (emu_server_new(dev_path, group, win_size, &srv) < 0) {
        ppf_fw_free(fw);
        return 1;
    }
    struct ppf_core_irq_ops irq = emu_server_irq_ops(srv);
    if (ppf_core_new(emu_server_window(srv), win_size, &cfg, &irq, &the_core) < 0) {
        emu_server_free(srv);
        ppf_fw_free(fw);
        return 1;
    }
    /* the ring lies in the zeroed window the core was given; hosts cannot
     * attach before emu_server_start */
    if (metrics_records &&
        (ppf_window_layout(&layout, cfg.num_qps, cfg.qsize, cfg.slots, cfg.slot_size,
                           cfg.metrics_size) == 0 ||
         ppf_monitor_new((uint8_t *)emu_server_window(srv) + layout.metrics_off,
                         layout.metrics_size, &the_monitor) < 0)) {
        ppf_core_shutdown(the_core);
        emu_server_free(srv);
        ppf_fw_free(fw);
        ppf_core_free(the_core);
        return 1;
    }
    fw_ops = ppf_fw_cmd_ops(fw);
    ops = fw_ops;
    ops.poll = main_poll;
    ops.stats = main_stats;
    ops.exec = main_exec;
    ops.opaque = NULL;
    ppf_core_set_cmd_ops(the_core, &ops);
    fw->monitor = the_monitor;
    ppf_fw_attach(fw, the_core);        /* a broken buffer is reported, not fatal */

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (emu_server_start(srv, the_core) < 0 || (pidfile && ppf_write_pidfile(pidfile) < 0)) {
        ppf_core_shutdown(the_core);
        emu_server_free(srv);
        ppf_fw_free(fw);
        ppf_core_free(the_core);
        ppf_monitor_free(the_monitor);
        return 1;
    }
    ppf_info("main", "ready: %u queue pairs of %u entries, %u slots of %u bytes; "
             "state in %s", cfg.num_qps, cfg.qsize, cfg.slots, cfg.slot_size, state_dir);
    ppf_daemon_ready(ready_fd);

    ppf_core_run(the_core, &stop_flag);

    ppf_info("main", "stopping");
    ppf_core_shutdown(the_core);
    emu_server_free(srv);
    ppf_fw_free(fw);            /* stops its workers before the core goes */
    ppf_core_free(the_core);
    ppf_monitor_free(the_monitor);
    if (pidfile)
        unlink(pidfile);
    ppf_info("main", "stopped");
    return 0;
}

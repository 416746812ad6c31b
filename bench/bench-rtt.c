/* bench-rtt: measures the device command round trip (a NOP submitted by
 * the host until its completion is seen by the host) through libppf, in
 * polling mode (the host spins on the completion queue) and in interrupt
 * mode (the host sleeps on the interrupt at once), and the throughput of
 * P processes each keeping D NOPs in flight on its own queue pair.  In the
 * same program, the baseline a user would otherwise write: a request/
 * response over an AF_UNIX SOCK_SEQPACKET socket to a server process, with
 * the same sizes as an SQE (64-byte request) and a CQE (16-byte response).
 * bench/run starts an emulated peripheral, runs every mode and writes the
 * results; see bench/README.md for what each figure means.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ppf/ppf.h"
#include "common/json.h"

#define REQ_SIZE        64      /* sizeof(struct ppf_sqe) */
#define RESP_SIZE       16      /* sizeof(struct ppf_cqe) */
#define WARMUP          2000
#define TIMEOUT_MS      10000   /* one command or one claim; far above any RTT */
#define MAX_PROCS       64
#define MAX_DEPTH       4096
#define CLOCK_EVERY     64      /* throughput loops read the clock this often */
#define MAX_SOCK_DEPTH  128     /* pipelined requests that surely fit the socket
                                 * buffers (else client and server both block) */

_Static_assert(sizeof(struct ppf_sqe) == REQ_SIZE, "SQE size");
_Static_assert(sizeof(struct ppf_cqe) == RESP_SIZE, "CQE size");

enum mode { M_PPF_POLL, M_PPF_IRQ, M_PPF_TPUT, M_SOCK_RTT, M_SOCK_TPUT };

static const char *const mode_names[] = {
    [M_PPF_POLL] = "ppf-poll",
    [M_PPF_IRQ] = "ppf-irq",
    [M_PPF_TPUT] = "ppf-tput",
    [M_SOCK_RTT] = "sock-rtt",
    [M_SOCK_TPUT] = "sock-tput",
};

struct opts {
    const char *device;
    enum mode mode;
    unsigned long count;
    unsigned procs;
    unsigned depth;
    double seconds;
    int json;
};

/* What one throughput worker sends back through the result pipe (smaller
 * than PIPE_BUF, so the writes of all workers never interleave). */
struct worker_result {
    uint64_t ops;
    double secs;
    int32_t ok;
    int32_t pad;
};

/* Device counters (GET_STATS) over a run, when the device answered. */
struct dev_delta {
    int valid;
    uint64_t commands, irqs, wakeups;
};

struct latency {
    unsigned long n;
    double p50, p90, p99, p999, mean, min, max;    /* µs */
    double total_secs;
    struct dev_delta dev;
};

struct tput {
    uint64_t ops;
    double ops_per_s;
    double min_proc, max_proc;  /* slowest and fastest worker, ops/s */
    struct dev_delta dev;
};

static const char *prog = "bench-rtt";

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
usage(FILE *fp)
{
    fprintf(fp,
"Usage: %s [OPTION]...\n"
"Measure the ppf device command round trip and throughput, and the same\n"
"over a Unix socket as the baseline.\n"
"\n"
"  -d, --device SPEC   device for the ppf modes (as ppf_dev_open: \"emu:PATH\",\n"
"                      \"uio:/dev/uioN\", \"auto\"; default: auto)\n"
"  -m, --mode MODE     ppf-poll   round trip of NOPs, host spins on the CQ\n"
"                      ppf-irq    round trip of NOPs, host sleeps on the irq\n"
"                      ppf-tput   NOPs/s from --procs processes, --depth each\n"
"                      sock-rtt   round trip of 64-byte request/16-byte reply\n"
"                                 over an AF_UNIX SOCK_SEQPACKET socketpair\n"
"                      sock-tput  the same from --procs clients, pipelined\n"
"                      (default: ppf-poll)\n"
"  -n, --count N       round trips timed in the rtt modes (default 100000),\n"
"                      after %d untimed warm-up ones\n"
"  -p, --procs P       submitting processes in the tput modes (default 1)\n"
"  -D, --depth D       commands in flight per process (default 16)\n"
"  -s, --seconds S     duration of the tput modes (default 3)\n"
"  -j, --json          print one JSON object instead of a table\n"
"  -h, --help          print this help and exit\n"
"\n"
"Times are in microseconds, from CLOCK_MONOTONIC around each round trip.\n",
            prog, WARMUP);
}

static int
parse_ulong(const char *opt, const char *s, unsigned long lo, unsigned long hi,
            unsigned long *v)
{
    char *end;

    errno = 0;
    *v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || *v < lo || *v > hi) {
        fprintf(stderr, "%s: %s: '%s' is not a number from %lu to %lu\n",
                prog, opt, s, lo, hi);
        return -1;
    }
    return 0;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"device", required_argument, NULL, 'd'},
        {"mode", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'n'},
        {"procs", required_argument, NULL, 'p'},
        {"depth", required_argument, NULL, 'D'},
        {"seconds", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long v;
    char *end;
    size_t i;
    int c;

    *o = (struct opts){.device = "auto", .mode = M_PPF_POLL, .count = 100000,
                       .procs = 1, .depth = 16, .seconds = 3};
    while ((c = getopt_long(argc, argv, "d:m:n:p:D:s:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->device = optarg;
            break;
        case 'm':
            for (i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
                if (strcmp(optarg, mode_names[i]) == 0)
                    break;
            if (i == sizeof mode_names / sizeof mode_names[0]) {
                fprintf(stderr, "%s: --mode: unknown mode '%s' (try --help)\n",
                        prog, optarg);
                return -1;
            }
            o->mode = (enum mode)i;
            break;
        case 'n':
            if (parse_ulong("--count", optarg, 1, 100000000, &o->count) < 0)
                return -1;
            break;
        case 'p':
            if (parse_ulong("--procs", optarg, 1, MAX_PROCS, &v) < 0)
                return -1;
            o->procs = (unsigned)v;
            break;
        case 'D':
            if (parse_ulong("--depth", optarg, 1, MAX_DEPTH, &v) < 0)
                return -1;
            o->depth = (unsigned)v;
            break;
        case 's':
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->seconds > 0 && o->seconds <= 3600)) {
                fprintf(stderr, "%s: --seconds: '%s' is not a duration from 0 to 3600\n",
                        prog, optarg);
                return -1;
            }
            break;
        case 'j':
            o->json = 1;
            break;
        case 'h':
            usage(stdout);
            exit(EXIT_SUCCESS);
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", prog, argv[optind]);
        return -1;
    }
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples, in µs. */
static double
pct_us(const uint64_t *s, unsigned long n, double p)
{
    unsigned long rank = (unsigned long)(p / 100.0 * (double)n + 0.999999);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)s[rank - 1] / 1000.0;
}

static void
latency_summarise(uint64_t *samples, unsigned long n, uint64_t total_ns,
                  struct latency *l)
{
    double sum = 0;
    unsigned long i;

    for (i = 0; i < n; i++)
        sum += (double)samples[i];
    qsort(samples, n, sizeof *samples, cmp_u64);
    l->n = n;
    l->p50 = pct_us(samples, n, 50);
    l->p90 = pct_us(samples, n, 90);
    l->p99 = pct_us(samples, n, 99);
    l->p999 = pct_us(samples, n, 99.9);
    l->min = (double)samples[0] / 1000.0;
    l->max = (double)samples[n - 1] / 1000.0;
    l->mean = sum / (double)n / 1000.0;
    l->total_secs = (double)total_ns / 1e9;
}

/* --- ppf modes ---------------------------------------------------------- */

static int
ppf_open_pair(const char *spec, struct ppf_dev **devp, struct ppf_qp **qpp)
{
    *qpp = NULL;
    if (ppf_dev_open(spec, devp) < 0) {
        fprintf(stderr, "%s: %s\n", prog, ppf_error());
        return -1;
    }
    if (ppf_qp_claim(*devp, PPF_QP_IO, TIMEOUT_MS, qpp) < 0) {
        fprintf(stderr, "%s: %s\n", prog, ppf_error());
        ppf_dev_close(*devp);
        *devp = NULL;
        return -1;
    }
    return 0;
}

static int
ppf_nop(struct ppf_qp *qp)
{
    struct ppf_cmd cmd = {.opcode = PPF_OP_NOP};

    if (ppf_exec(qp, &cmd, TIMEOUT_MS) < 0) {
        fprintf(stderr, "%s: NOP: %s\n", prog, ppf_error());
        return -1;
    }
    if (cmd.status != PPF_SC_SUCCESS) {
        fprintf(stderr, "%s: NOP completed with %s: %s\n", prog,
                ppf_status_name(cmd.status), ppf_status_text(cmd.status));
        return -1;
    }
    return 0;
}

/* Reads the device's counters with GET_STATS on qp (it is not an admin
 * command); stats[PPF_STAT_*].  0 or -1 (the counters are then left out
 * of the report, nothing else). */
static int
ppf_read_stats(struct ppf_qp *qp, uint64_t stats[PPF_STAT__MAX])
{
    uint8_t buf[4096];
    struct ppf_cmd cmd = {.opcode = PPF_OP_GET_STATS, .out = buf, .out_cap = sizeof buf};
    struct ppf_attr_reader r;
    struct ppf_attr a;
    uint64_t v;
    int k;

    memset(stats, 0, PPF_STAT__MAX * sizeof *stats);
    if (ppf_exec(qp, &cmd, TIMEOUT_MS) < 0 || cmd.status != PPF_SC_SUCCESS)
        return -1;
    ppf_attr_reader_init(&r, buf, cmd.out_len);
    while ((k = ppf_attr_next(&r, &a)) > 0)
        if (a.type < PPF_STAT__MAX && ppf_attr_get_u64(&a, &v) == 0)
            stats[a.type] = v;
    return k;
}

/* The same through a pair of its own (the tput parent holds none). */
static int
ppf_read_stats_spec(const char *spec, uint64_t stats[PPF_STAT__MAX])
{
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    int r;

    if (ppf_dev_open(spec, &dev) < 0)
        return -1;
    if (ppf_qp_claim(dev, PPF_QP_IO, 1000, &qp) < 0) {
        ppf_dev_close(dev);
        return -1;
    }
    r = ppf_read_stats(qp, stats);
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    return r;
}

static void
dev_delta_set(struct dev_delta *d, const uint64_t *before, const uint64_t *after)
{
    d->valid = 1;
    d->commands = after[PPF_STAT_COMMANDS] - before[PPF_STAT_COMMANDS];
    d->irqs = after[PPF_STAT_IRQS] - before[PPF_STAT_IRQS];
    d->wakeups = after[PPF_STAT_WAKEUPS] - before[PPF_STAT_WAKEUPS];
}

/* ppf-poll and ppf-irq: count individually timed NOPs on one pair. */
static int
run_ppf_rtt(const struct opts *o, int poll_us, struct latency *l)
{
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    uint64_t *samples, t0, t1, start, end;
    uint64_t before[PPF_STAT__MAX], after[PPF_STAT__MAX];
    unsigned long i;
    int r = -1, have_stats;

    samples = malloc(o->count * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "%s: out of memory for %lu samples\n", prog, o->count);
        return -1;
    }
    if (ppf_open_pair(o->device, &dev, &qp) < 0)
        goto out;
    ppf_qp_set_poll_us(qp, poll_us);
    for (i = 0; i < WARMUP; i++)
        if (ppf_nop(qp) < 0)
            goto out_close;
    have_stats = ppf_read_stats(qp, before) == 0;
    start = now_ns();
    for (i = 0; i < o->count; i++) {
        t0 = now_ns();
        if (ppf_nop(qp) < 0)
            goto out_close;
        t1 = now_ns();
        samples[i] = t1 - t0;
    }
    end = now_ns();
    latency_summarise(samples, o->count, end - start, l);
    l->dev.valid = 0;
    if (have_stats && ppf_read_stats(qp, after) == 0)
        dev_delta_set(&l->dev, before, after);
    r = 0;
out_close:
    ppf_qp_release(qp);
    ppf_dev_close(dev);
out:
    free(samples);
    return r;
}

/* One ppf-tput worker: D NOPs in flight on its own pair until the
 * deadline, then waits for every command still in flight.  The commands
 * in flight are cmds[(oldest + k) % D] for k < inflight. */
static int
ppf_tput_worker(const struct opts *o, struct ppf_qp *qp, struct worker_result *res)
{
    struct ppf_cmd *cmds;
    uint64_t start, deadline, t = 0, ops = 0;
    unsigned i, inflight = 0, oldest = 0, slot;

    cmds = calloc(o->depth, sizeof *cmds);
    if (cmds == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    /* On failure cmds is not freed: libppf may still point at commands
     * in flight until the pair is released, and the worker then exits. */
    start = now_ns();
    deadline = start + (uint64_t)(o->seconds * 1e9);
    for (; inflight < o->depth; inflight++) {
        cmds[inflight] = (struct ppf_cmd){.opcode = PPF_OP_NOP};
        if (ppf_submit(qp, &cmds[inflight], TIMEOUT_MS) < 0) {
            fprintf(stderr, "%s: submit: %s\n", prog, ppf_error());
            return -1;
        }
    }
    for (;;) {
        slot = oldest;
        if (ppf_wait(qp, &cmds[slot], TIMEOUT_MS) < 0) {
            fprintf(stderr, "%s: wait: %s\n", prog, ppf_error());
            return -1;
        }
        if (cmds[slot].status != PPF_SC_SUCCESS) {
            fprintf(stderr, "%s: NOP completed with %s: %s\n", prog,
                    ppf_status_name(cmds[slot].status),
                    ppf_status_text(cmds[slot].status));
            return -1;
        }
        inflight--;
        oldest = (oldest + 1) % o->depth;
        ops++;
        if (ops % CLOCK_EVERY == 0 && (t = now_ns()) >= deadline)
            break;
        cmds[slot] = (struct ppf_cmd){.opcode = PPF_OP_NOP};
        if (ppf_submit(qp, &cmds[slot], TIMEOUT_MS) < 0) {
            fprintf(stderr, "%s: submit: %s\n", prog, ppf_error());
            return -1;
        }
        inflight++;
    }
    res->ops = ops;
    res->secs = (double)(t - start) / 1e9;
    for (i = 0; i < inflight; i++) {
        if (ppf_wait(qp, &cmds[(oldest + i) % o->depth], TIMEOUT_MS) < 0) {
            fprintf(stderr, "%s: wait: %s\n", prog, ppf_error());
            return -1;
        }
    }
    free(cmds);
    return 0;
}

/* --- socket baseline ------------------------------------------------------ */

/* sock-rtt's server: what a user writes first, a blocking read and write
 * per request (two system calls per round trip on this side). */
static void
sock_serve_one(int fd)
{
    char req[REQ_SIZE], resp[RESP_SIZE];
    ssize_t n;

    memset(resp, 0, sizeof resp);
    while ((n = read(fd, req, sizeof req)) > 0) {
        memcpy(resp, req, sizeof resp);
        if (write(fd, resp, sizeof resp) != (ssize_t)sizeof resp)
            break;
    }
}

/* sock-tput's server: one process serving every client with poll(), the
 * way the peripheral serves every queue pair; it drains each readable
 * socket (MSG_DONTWAIT) before polling again. */
static void
sock_serve_many(int *fds, unsigned nfds)
{
    struct pollfd pfd[MAX_PROCS];
    char req[REQ_SIZE], resp[RESP_SIZE];
    unsigned i, open = nfds;
    ssize_t n;

    memset(resp, 0, sizeof resp);
    for (i = 0; i < nfds; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    while (open > 0) {
        if (poll(pfd, nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (i = 0; i < nfds; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            while ((n = recv(pfd[i].fd, req, sizeof req, MSG_DONTWAIT)) > 0) {
                memcpy(resp, req, sizeof resp);
                if (send(pfd[i].fd, resp, sizeof resp, 0) != (ssize_t)sizeof resp)
                    break;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open--;
            }
        }
    }
}

static int
sock_request(int fd, uint64_t seq)
{
    char req[REQ_SIZE];

    memset(req, 0, sizeof req);
    memcpy(req, &seq, sizeof seq);
    if (send(fd, req, sizeof req, 0) != (ssize_t)sizeof req) {
        fprintf(stderr, "%s: socket send: %m\n", prog);
        return -1;
    }
    return 0;
}

static int
sock_response(int fd)
{
    char resp[RESP_SIZE];
    ssize_t n = recv(fd, resp, sizeof resp, 0);

    if (n != (ssize_t)sizeof resp) {
        if (n < 0)
            fprintf(stderr, "%s: socket recv: %m\n", prog);
        else
            fprintf(stderr, "%s: socket recv: short reply (%zd bytes)\n", prog, n);
        return -1;
    }
    return 0;
}

/* Forks the server over the server ends of npairs socketpairs; fills the
 * client ends.  Returns the server's pid or -1. */
static pid_t
sock_start_server(unsigned npairs, int *client_fds, int many)
{
    int server_fds[MAX_PROCS];
    unsigned i;
    pid_t pid;

    for (i = 0; i < npairs; i++) {
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            fprintf(stderr, "%s: socketpair: %m\n", prog);
            while (i-- > 0) {
                close(server_fds[i]);
                close(client_fds[i]);
            }
            return -1;
        }
        client_fds[i] = sv[0];
        server_fds[i] = sv[1];
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %m\n", prog);
    } else if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (i = 0; i < npairs; i++)
            close(client_fds[i]);
        if (many)
            sock_serve_many(server_fds, npairs);
        else
            sock_serve_one(server_fds[0]);
        _exit(0);
    }
    for (i = 0; i < npairs; i++)
        close(server_fds[i]);
    if (pid < 0) {
        for (i = 0; i < npairs; i++)
            close(client_fds[i]);
        return -1;
    }
    return pid;
}

static int
reap(pid_t pid)
{
    int st;

    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
run_sock_rtt(const struct opts *o, struct latency *l)
{
    uint64_t *samples, t0, t1, start;
    unsigned long i;
    int fd, r = -1;
    pid_t server;

    samples = malloc(o->count * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "%s: out of memory for %lu samples\n", prog, o->count);
        return -1;
    }
    server = sock_start_server(1, &fd, 0);
    if (server < 0)
        goto out;
    for (i = 0; i < WARMUP; i++)
        if (sock_request(fd, i) < 0 || sock_response(fd) < 0)
            goto out_close;
    start = now_ns();
    for (i = 0; i < o->count; i++) {
        t0 = now_ns();
        if (sock_request(fd, i) < 0 || sock_response(fd) < 0)
            goto out_close;
        t1 = now_ns();
        samples[i] = t1 - t0;
    }
    latency_summarise(samples, o->count, now_ns() - start, l);
    r = 0;
out_close:
    close(fd);                  /* EOF ends the server */
    if (reap(server) < 0 && r == 0) {
        fprintf(stderr, "%s: socket server failed\n", prog);
        r = -1;
    }
out:
    free(samples);
    return r;
}

/* One sock-tput client: D requests in flight until the deadline. */
static int
sock_tput_worker(const struct opts *o, int fd, struct worker_result *res)
{
    uint64_t start, deadline, t = 0, ops = 0, seq = 0;
    unsigned inflight = 0;

    start = now_ns();
    deadline = start + (uint64_t)(o->seconds * 1e9);
    for (; inflight < o->depth; inflight++)
        if (sock_request(fd, seq++) < 0)
            return -1;
    for (;;) {
        if (sock_response(fd) < 0)
            return -1;
        inflight--;
        ops++;
        if (ops % CLOCK_EVERY == 0 && (t = now_ns()) >= deadline)
            break;
        if (sock_request(fd, seq++) < 0)
            return -1;
        inflight++;
    }
    res->ops = ops;
    res->secs = (double)(t - start) / 1e9;
    for (; inflight > 0; inflight--)
        if (sock_response(fd) < 0)
            return -1;
    return 0;
}

/* --- throughput harness (both kinds) --------------------------------------- */

/* What one forked worker does: set up (ppf: open the device and claim its
 * own pair), say 'r' (or 'e') on the ready pipe, wait for the start signal
 * (EOF on the go pipe) so that all workers run at once, run, and send a
 * worker_result on the out pipe.  Never returns. */
static void __attribute__((noreturn))
tput_worker(const struct opts *o, int sock_fd, int ready_w, int go_r, int out_w)
{
    struct worker_result res = {0};
    struct ppf_dev_info info;
    struct ppf_dev *dev = NULL;
    struct ppf_qp *qp = NULL;
    int ok = 1;
    char c;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (sock_fd < 0) {
        ok = ppf_open_pair(o->device, &dev, &qp) == 0;
        if (ok) {
            ppf_dev_get_info(dev, &info);
            if (o->depth > info.slots) {
                fprintf(stderr, "%s: --depth %u is more than the %u commands a pair "
                        "of %s can hold in flight\n", prog, o->depth, info.slots,
                        info.path);
                ok = 0;
            }
        }
    }
    c = ok ? 'r' : 'e';
    if (write(ready_w, &c, 1) != 1 || !ok)
        _exit(1);
    if (read(go_r, &c, 1) != 0)
        _exit(1);               /* the parent gave up */
    if (sock_fd >= 0)
        res.ok = sock_tput_worker(o, sock_fd, &res) == 0;
    else
        res.ok = ppf_tput_worker(o, qp, &res) == 0;
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    if (write(out_w, &res, sizeof res) != (ssize_t)sizeof res)
        _exit(1);
    _exit(res.ok ? 0 : 1);
}

/* Forks P workers (and for sock-tput the one server first, so that it
 * holds none of the pipes) and sums the rates they report. */
static int
run_tput(const struct opts *o, struct tput *t)
{
    int ready[2] = {-1, -1}, go[2] = {-1, -1}, out[2] = {-1, -1};
    int client_fds[MAX_PROCS];
    pid_t pids[MAX_PROCS], server = -1;
    unsigned i, j, started = 0, nready = 0, failed = 0;
    uint64_t before[PPF_STAT__MAX], after[PPF_STAT__MAX];
    int sock = o->mode == M_SOCK_TPUT, r = -1, have_stats = 0;
    char c;

    *t = (struct tput){.min_proc = -1};
    if (sock && o->depth > MAX_SOCK_DEPTH) {
        fprintf(stderr, "%s: --depth %u: sock-tput pipelines at most %d requests per "
                "client\n", prog, o->depth, MAX_SOCK_DEPTH);
        return -1;
    }
    for (i = 0; i < o->procs; i++)
        client_fds[i] = -1;
    if (sock && (server = sock_start_server(o->procs, client_fds, 1)) < 0)
        return -1;
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
        pipe2(out, O_CLOEXEC) < 0) {
        fprintf(stderr, "%s: pipe: %m\n", prog);
        goto out;
    }
    if (!sock)
        have_stats = ppf_read_stats_spec(o->device, before) == 0;
    fflush(NULL);
    for (i = 0; i < o->procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            fprintf(stderr, "%s: fork: %m\n", prog);
            goto out;
        }
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            close(out[0]);
            for (j = 0; j < o->procs; j++)
                if (j != i && client_fds[j] >= 0)
                    close(client_fds[j]);
            tput_worker(o, client_fds[i], ready[1], go[0], out[1]);
        }
        started++;
    }
    close(ready[1]);
    ready[1] = -1;
    close(out[1]);
    out[1] = -1;
    for (i = 0; i < o->procs; i++) {
        if (read(ready[0], &c, 1) != 1 || c != 'r')
            break;
        nready++;
    }
    if (nready < o->procs) {
        fprintf(stderr, "%s: %u of %u workers failed to start\n", prog,
                o->procs - nready, o->procs);
        goto out;
    }
    close(go[1]);               /* go */
    go[1] = -1;
    for (i = 0; i < o->procs; i++) {
        struct worker_result res;
        double rate;

        if (read(out[0], &res, sizeof res) != (ssize_t)sizeof res ||
            !res.ok || res.secs <= 0) {
            failed++;
            continue;
        }
        rate = (double)res.ops / res.secs;
        t->ops += res.ops;
        t->ops_per_s += rate;
        if (t->min_proc < 0 || rate < t->min_proc)
            t->min_proc = rate;
        if (rate > t->max_proc)
            t->max_proc = rate;
    }
    if (have_stats && ppf_read_stats_spec(o->device, after) == 0)
        dev_delta_set(&t->dev, before, after);
    if (failed == 0)
        r = 0;
    else
        fprintf(stderr, "%s: %u of %u workers failed\n", prog, failed, o->procs);
out:
    for (i = 0; i < o->procs; i++)
        if (client_fds[i] >= 0)
            close(client_fds[i]);     /* EOF ends the socket server */
    if (r < 0)
        for (i = 0; i < started; i++)
            kill(pids[i], SIGKILL);
    for (i = 0; i < started; i++)
        if (reap(pids[i]) < 0)
            r = -1;
    if (server > 0 && reap(server) < 0 && r == 0) {
        fprintf(stderr, "%s: socket server failed\n", prog);
        r = -1;
    }
    for (i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (go[i] >= 0)
            close(go[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return r;
}

/* --- output ------------------------------------------------------------------ */

/* The device's own view of a run: how many commands it completed, how
 * many interrupts it raised and how often it was woken from sleep.  Shows
 * whether "interrupt mode" really slept.  Includes the one GET_STATS. */
static void
json_dev_delta(struct ppf_json *j, const struct dev_delta *d)
{
    if (!d->valid)
        return;
    ppf_json_u64(j, "dev_commands", d->commands);
    ppf_json_u64(j, "dev_irqs", d->irqs);
    ppf_json_u64(j, "dev_wakeups", d->wakeups);
}

static void
print_dev_delta(const struct dev_delta *d)
{
    if (d->valid)
        printf("device: %" PRIu64 " commands, %" PRIu64 " interrupts raised, "
               "woken %" PRIu64 " times\n", d->commands, d->irqs, d->wakeups);
}

static void
print_latency(const struct opts *o, const struct latency *l)
{
    struct ppf_json j;

    if (!o->json) {
        /* "µ" is two bytes but one column: widths of 9 print 8 columns. */
        printf("%-9s %8s %9s %9s %9s %9s %9s %9s %10s\n", "mode", "count",
               "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "mean µs", "max µs", "ops/s");
        printf("%-9s %8lu %8.2f %8.2f %8.2f %8.2f %8.2f %8.1f %10.0f\n",
               mode_names[o->mode], l->n, l->p50, l->p90, l->p99, l->p999,
               l->mean, l->max, (double)l->n / l->total_secs);
        print_dev_delta(&l->dev);
        return;
    }
    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_str(&j, "mode", mode_names[o->mode]);
    if (o->mode != M_SOCK_RTT)
        ppf_json_str(&j, "device", o->device);
    ppf_json_u64(&j, "count", l->n);
    ppf_json_u64(&j, "warmup", WARMUP);
    ppf_json_double(&j, "p50_us", l->p50);
    ppf_json_double(&j, "p90_us", l->p90);
    ppf_json_double(&j, "p99_us", l->p99);
    ppf_json_double(&j, "p999_us", l->p999);
    ppf_json_double(&j, "mean_us", l->mean);
    ppf_json_double(&j, "min_us", l->min);
    ppf_json_double(&j, "max_us", l->max);
    ppf_json_double(&j, "ops_per_s", (double)l->n / l->total_secs);
    json_dev_delta(&j, &l->dev);
    ppf_json_end_object(&j);
}

static void
print_tput(const struct opts *o, const struct tput *t)
{
    struct ppf_json j;

    if (!o->json) {
        printf("%-9s %5s %5s %7s %12s %12s %12s %12s\n", "mode", "procs", "depth",
               "seconds", "ops", "ops/s", "min/proc", "max/proc");
        printf("%-9s %5u %5u %7.1f %12" PRIu64 " %12.0f %12.0f %12.0f\n",
               mode_names[o->mode], o->procs, o->depth, o->seconds, t->ops,
               t->ops_per_s, t->min_proc, t->max_proc);
        print_dev_delta(&t->dev);
        return;
    }
    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_str(&j, "mode", mode_names[o->mode]);
    if (o->mode == M_PPF_TPUT)
        ppf_json_str(&j, "device", o->device);
    ppf_json_u64(&j, "procs", o->procs);
    ppf_json_u64(&j, "depth", o->depth);
    ppf_json_double(&j, "seconds", o->seconds);
    ppf_json_u64(&j, "ops", t->ops);
    ppf_json_double(&j, "ops_per_s", t->ops_per_s);
    ppf_json_double(&j, "min_proc_ops_per_s", t->min_proc);
    ppf_json_double(&j, "max_proc_ops_per_s", t->max_proc);
    json_dev_delta(&j, &t->dev);
    ppf_json_end_object(&j);
}

int
main(int argc, char **argv)
{
    struct opts o;
    struct latency l = {0};
    struct tput t;
    int r;

    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    /* A client that goes away mid-request must not kill us silently. */
    signal(SIGPIPE, SIG_IGN);

    switch (o.mode) {
    case M_PPF_POLL:
    case M_PPF_IRQ:
        r = run_ppf_rtt(&o, o.mode == M_PPF_POLL ? -1 : 0, &l);
        if (r == 0)
            print_latency(&o, &l);
        break;
    case M_SOCK_RTT:
        r = run_sock_rtt(&o, &l);
        if (r == 0)
            print_latency(&o, &l);
        break;
    default:
        r = run_tput(&o, &t);
        if (r == 0)
            print_tput(&o, &t);
        break;
    }
    return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ppfd: the host daemon.  So far it owns the administrator's policy: at
 * start and on every SIGHUP it reads the YAML policy file, checks it, and
 * sends it to the peripheral with CONFIGURE; an invalid file is reported
 * (every problem, FILE:LINE:COLUMN) and changes nothing; an unreachable
 * peripheral is retried until it answers.  It is also the metrics agent:
 * it samples the host at the policy's monitoring.interval and writes the
 * samples into the metrics ring of the device window (§6), re-attaching
 * whenever the peripheral restarts.  And it is the libvirt plugin
 * (plugin/libvirt.c): a thread follows libvirtd's domain lifecycle events
 * and queues those of ppf domains (plugin/events.c), which the main loop
 * sends to the peripheral with EVENT; libvirt and the peripheral may each
 * come and go without stopping the rest.  With --prometheus-file it also
 * writes the peripheral's counters for a node exporter's textfile
 * collector (common/prom.c).
 *
 * Threads: the main thread owns the policy, the metrics ring, the device
 * handle used for EVENT and GET_STATS, and the Prometheus file; it sleeps
 * in sigtimedwait, and the libvirt thread wakes it with SIGUSR1 when it
 * queued an event.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/prom.h"
#include "plugin/events.h"
#include "plugin/libvirt.h"
#include "plugin/metrics.h"
#include "plugin/policy-send.h"
#include "plugin/pools.h"
#include "plugin/usage.h"
#include "policy/policy.h"
#include "ppf/ppf.h"

#define DEFAULT_POLICY SYSCONFDIR "/ppf/policy.yaml"
#define RETRY_S 2
#define DEVICE_TIMEOUT_MS 5000
#define STOP_FLUSH_MS 1000      /* for the events still queued at stop */
#define PROM_DEFAULT_S 15
#define PROM_MAX_S 86400

struct ppfd {
    const char *device;
    const char *policy_file;
    struct ppf_policy *policy;  /* the last valid policy read */
    int pending;                /* read but not yet accepted by the peripheral */
    int device_down;            /* the last attempt could not reach it */
    /* the metrics agent */
    struct ppf_sampler *sampler;
    struct ppf_dev *mdev;       /* device whose ring we write; NULL if detached */
    struct ppf_metrics_writer mw;
    uint64_t interval_ms;       /* monitoring.interval; 0: off */
    uint32_t metrics;           /* monitoring.metrics, PPF_METRIC_* */
    uint64_t next_sample_ns, next_attach_ns;
    int ring_warned;            /* the last attach failure was reported */
    /* the libvirt plugin and EVENT */
    const char *uri;            /* NULL: --no-libvirt */
    struct ppf_lv *lv;
    struct ppf_evq *evq;
    pthread_t main_thread;      /* woken with SIGUSR1 when an event is queued */
    struct ppf_dev *edev;       /* device for EVENT and GET_STATS; NULL if away */
    int edev_down;              /* its loss was reported */
    uint64_t next_edev_ns;      /* next attempt to open it */
    /* the Prometheus textfile */
    const char *prom_file;
    char *prom_tmp;             /* PATH.tmp */
    unsigned prom_interval_s;
    uint64_t next_prom_ns;
    int prom_warned;            /* the last write failure was reported */
    /* ppf pools: ready images shown as volumes (on the libvirt thread) */
    const char *pool_dir;
    struct ppf_dev *pdev;       /* the libvirt thread's own device handle */
    char pool_err[512];         /* the last failure reported (not repeated) */
};

#define POOL_REFRESH_S 5
#define PPF_STR_(x) #x
#define PPF_STR(x) PPF_STR_(x)

/* On the libvirt thread: the buffer's ready images as volumes of the ppf
 * pools (plugin/pools.h).  A failure is logged once until it changes. */
static void
ppfd_pools_refresh(virConnectPtr conn, void *opaque)
{
    struct ppfd *d = opaque;
    char err[512];
    struct stat st;

    if (stat(d->pool_dir, &st) < 0)
        return;                 /* no ppf pool was ever defined */
    if (!d->pdev && ppf_dev_open(d->device, &d->pdev) < 0) {
        d->pdev = NULL;
        return;                 /* the main thread reports a missing peripheral */
    }
    if (ppf_pools_refresh_all(conn, d->pdev, d->pool_dir, 5000, err, sizeof err) < 0) {
        if (strcmp(err, d->pool_err) != 0)
            ppf_warn("pools", "refreshing the ppf pools' volumes: %s", err);
        snprintf(d->pool_err, sizeof d->pool_err, "%s", err);
        ppf_dev_close(d->pdev);         /* the peripheral may have restarted */
        d->pdev = NULL;
        return;
    }
    if (d->pool_err[0])
        ppf_info("pools", "the ppf pools' volumes are refreshed again");
    d->pool_err[0] = '\0';
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
usage(FILE *fp)
{
    fprintf(fp,
"Usage: ppfd [OPTIONS]\n"
"The ppf host daemon: keeps the peripheral configured with the policy file\n"
"(re-read on SIGHUP), and feeds it host metrics and libvirt domain events.\n"
"\n"
"  -p, --policy FILE     the YAML policy (default " DEFAULT_POLICY ")\n"
"  -d, --device SPEC     the peripheral: auto (default), emu:PATH, uio:/dev/uioN\n"
"  -c, --connect URI     libvirt to follow (default " PPF_LV_DEFAULT_URI "): lifecycle\n"
"                        events of ppf domains go to the peripheral\n"
"  --no-libvirt          do not connect to libvirt\n"
"  --prometheus-file FILE  write the peripheral's counters there in Prometheus\n"
"                        text format (for a node exporter's textfile collector)\n"
"  --prometheus-interval SECONDS  how often to rewrite it (default 15)\n"
"  --pool-dir DIR        ppf pools' state (default $PPF_POOL_DIR, else\n"
"                        " PPF_POOL_STATE_DIR "): every " PPF_STR(POOL_REFRESH_S) " s the buffer's ready\n"
"                        images are shown as volumes of those pools\n"
"  --foreground          do not detach; log to stderr\n"
"  --log-file FILE       where to log once detached (default /var/log/ppf/ppfd.log)\n"
"  --pidfile FILE        write the pid here once running\n"
"  --exit-with-parent    stop when the parent process exits (implies --foreground)\n"
"  --log-level LEVEL     error, warn, info or debug (default info)\n"
"  -v, --verbose         same as --log-level debug\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Signals: SIGHUP re-reads the policy; SIGTERM and SIGINT stop; SIGUSR1 is\n"
"used internally.\n"
"Exit status: 0 stopped cleanly, 1 runtime error (e.g. an invalid policy at\n"
"start), 2 usage error.  See ppfd(8) and ppf-policy(5).\n");
}

static int
usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "ppfd: %s%s%s\nTry 'ppfd --help' for more information.\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* Reads and checks the policy file.  1 read (d->policy replaced), 0 no
 * file (at start only: keep the peripheral's), -1 invalid (reported). */
static int
ppfd_read_policy(struct ppfd *d, int at_start)
{
    struct ppf_policy_diags diags;
    struct ppf_policy *p = NULL;

    if (at_start && access(d->policy_file, F_OK) < 0 && errno == ENOENT) {
        ppf_info("policy", "%s does not exist: the peripheral keeps the policy it has; "
                 "write one (see ppf-policy(5)) and send SIGHUP", d->policy_file);
        return 0;
    }
    ppf_policy_diags_init(&diags);
    if (ppf_policy_parse_file(d->policy_file, &p, &diags) < 0) {
        for (size_t i = 0; i < diags.n; i++)
            ppf_err("policy", "%s:%u:%u: %s: %s",
                    diags.v[i].file ? diags.v[i].file : d->policy_file, diags.v[i].line,
                    diags.v[i].column, diags.v[i].path ? diags.v[i].path : "",
                    diags.v[i].msg ? diags.v[i].msg : "");
        ppf_err("policy", "%s: %zu problem%s; %s", d->policy_file, diags.n + diags.dropped,
                diags.n + diags.dropped == 1 ? "" : "s",
                d->policy ? "keeping the policy in force" : "nothing was applied");
        ppf_policy_diags_free(&diags);
        return -1;
    }
    ppf_policy_diags_free(&diags);
    ppf_policy_free(d->policy);
    d->policy = p;
    d->pending = 1;
    return 1;
}

/* Sends the pending policy; keeps it pending if the peripheral is away. */
static void
ppfd_apply(struct ppfd *d)
{
    struct ppf_dev *dev;
    uint32_t gen;
    char err[600];

    if (!d->pending || !d->policy)
        return;
    if (ppf_dev_open(d->device, &dev) < 0) {
        if (!d->device_down)
            ppf_warn("policy", "%s; will send the policy when the peripheral answers "
                     "(retrying every %d s)", ppf_error(), RETRY_S);
        d->device_down = 1;
        return;
    }
    if (ppf_policy_send(dev, d->policy, DEVICE_TIMEOUT_MS, &gen, err, sizeof err) < 0) {
        ppf_err("policy", "%s: %s", d->policy_file, err);
        /* a refusal is final for this file; a lost device is retried */
        if (strstr(err, "refused"))
            d->pending = 0;
        else
            d->device_down = 1;
    } else {
        ppf_info("policy", "%s applied: policy generation %u", d->policy_file, gen);
        d->pending = 0;
        d->device_down = 0;
    }
    ppf_dev_close(dev);
}

/* Takes monitoring.* from the policy read (the defaults if none was). */
static void
ppfd_metrics_config(struct ppfd *d)
{
    struct ppf_policy *def = NULL;
    const struct ppf_policy *p = d->policy;
    uint64_t old = d->interval_ms;

    if (!p)
        p = def = ppf_policy_new();
    if (p) {
        d->interval_ms = p->monitoring.interval_ms;
        d->metrics = p->monitoring.metrics & PPF_METRIC__ALL;
    }
    ppf_policy_free(def);
    if (d->interval_ms && d->interval_ms < 10)
        d->interval_ms = 10;    /* the policy checks this; a floor anyway */
    if (d->interval_ms > UINT32_MAX)
        d->interval_ms = UINT32_MAX;
    if (d->interval_ms != old && d->interval_ms && d->metrics)
        ppf_info("metrics", "sampling every %llu ms", (unsigned long long)d->interval_ms);
    else if (d->interval_ms != old)
        ppf_info("metrics", "monitoring is off in the policy");
    d->next_sample_ns = mono_ns();
}

static void
ppfd_metrics_detach(struct ppfd *d)
{
    ppf_metrics_writer_detach(&d->mw);
    ppf_dev_close(d->mdev);
    d->mdev = NULL;
}

/* Opens the device and claims its metrics ring; 0 or -1 (reported once
 * per run of failures). */
static int
ppfd_metrics_attach(struct ppfd *d)
{
    struct ppf_regs regs;
    struct ppf_dev *dev;
    struct ppf_dev_info info;
    uint8_t *win;
    uint64_t size;
    uint32_t holder;
    char why[256];
    int rc;

    if (ppf_dev_open(d->device, &dev) < 0) {
        if (!d->ring_warned)
            ppf_debug("metrics", "%s; will retry every %d s", ppf_error(), RETRY_S);
        d->ring_warned = 1;
        return -1;
    }
    ppf_dev_get_info(dev, &info);
    win = ppf_dev_window(dev, &size);
    memcpy(&regs, win, sizeof regs);    /* one copy, checked: the device is not trusted */
    if (!(regs.features & PPF_FEAT_METRICS) || regs.metrics_off == 0) {
        snprintf(why, sizeof why, "the peripheral has no metrics ring; samples are not "
                 "sent (upgrade ppf-peripheral)");
        rc = -1;
    } else if (ppf_window_check(&regs, size, why, sizeof why) < 0) {
        rc = -1;
    } else {
        rc = ppf_metrics_writer_attach(&d->mw, win + regs.metrics_off, regs.metrics_size,
                                       (uint32_t)getpid(), &holder, why, sizeof why);
        /* a producer that died without letting go is taken over */
        if (rc == -2 && kill((pid_t)holder, 0) < 0 && errno == ESRCH &&
            ppf_metrics_writer_steal(&d->mw, holder) == 0) {
            ppf_info("metrics", "%s: took the metrics ring over from dead producer pid %u",
                     info.path, holder);
            rc = 0;
        }
        if (rc == -2)
            strncat(why, "; is another ppfd running?", sizeof why - strlen(why) - 1);
    }
    if (rc < 0) {
        if (!d->ring_warned)
            ppf_warn("metrics", "%s: %s", info.path, why);
        d->ring_warned = 1;
        ppf_metrics_writer_detach(&d->mw);
        ppf_dev_close(dev);
        return -1;
    }
    d->mdev = dev;
    d->ring_warned = 0;
    ppf_info("metrics", "%s: writing samples every %llu ms into its metrics ring (%u "
             "records)", info.path, (unsigned long long)d->interval_ms, d->mw.nrecs);
    return 0;
}

/* Takes and publishes a sample if one is due; re-attaches to a restarted
 * peripheral. */
static void
ppfd_metrics_tick(struct ppfd *d, uint64_t now)
{
    struct ppf_metrics_rec rec;

    if (!d->interval_ms || !d->metrics) {
        if (d->mdev)
            ppfd_metrics_detach(d);
        return;
    }
    if (now < d->next_sample_ns)
        return;
    d->next_sample_ns += d->interval_ms * 1000000u;
    if (d->next_sample_ns <= now)
        d->next_sample_ns = now + d->interval_ms * 1000000u;
    if (d->mdev && ppf_dev_check_alive(d->mdev) < 0) {
        ppf_info("metrics", "%s; will re-attach when it is back", ppf_error());
        ppfd_metrics_detach(d);
        d->next_attach_ns = now + RETRY_S * 1000000000ull;
        return;
    }
    if (!d->mdev) {
        if (now < d->next_attach_ns)
            return;
        d->next_attach_ns = now + RETRY_S * 1000000000ull;
        if (ppfd_metrics_attach(d) < 0)
            return;
    }
    ppf_sampler_sample(d->sampler, d->metrics, (uint32_t)d->interval_ms, &rec);
    if (ppf_metrics_writer_put(&d->mw, &rec) < 0) {
        ppf_warn("metrics", "another producer took the metrics ring over; stopping "
                 "(is another ppfd running?)");
        ppfd_metrics_detach(d);
    }
}

/* ---- EVENT and GET_STATS: one device handle, kept while it answers ---- */

static void
ppfd_edev_close(struct ppfd *d)
{
    ppf_dev_close(d->edev);
    d->edev = NULL;
}

/* The device for EVENT and GET_STATS, opened when needed (at most every
 * RETRY_S unless force) and dropped when the peripheral went away; NULL
 * if it cannot be reached (reported once per outage). */
static struct ppf_dev *
ppfd_edev_get(struct ppfd *d, uint64_t now, int force)
{
    if (d->edev && ppf_dev_check_alive(d->edev) < 0) {
        ppf_debug("events", "%s; reopening", ppf_error());
        ppfd_edev_close(d);
    }
    if (d->edev)
        return d->edev;
    if (!force && now < d->next_edev_ns)
        return NULL;
    d->next_edev_ns = now + RETRY_S * 1000000000ull;
    if (ppf_dev_open(d->device, &d->edev) < 0) {
        if (!d->edev_down && d->evq)
            ppf_warn("events", "%s; domain events wait for it (at most %d kept, retrying "
                     "every %d s)", ppf_error(), PPF_EVQ_DEFAULT_CAP, RETRY_S);
        else if (!d->edev_down)
            ppf_warn("prometheus", "%s; %s says ppfd_peripheral_up 0 meanwhile",
                     ppf_error(), d->prom_file);
        d->edev_down = 1;
        return NULL;
    }
    if (d->edev_down)
        ppf_info(d->evq ? "events" : "prometheus", "the peripheral answers again");
    d->edev_down = 0;
    return d->edev;
}

/* Sends the queued domain events, if any. */
static void
ppfd_events_tick(struct ppfd *d, uint64_t now, int timeout_ms)
{
    struct ppf_evq_stats st;
    struct ppf_dev *dev;

    if (!d->evq)
        return;
    ppf_evq_get_stats(d->evq, &st);
    if (st.queued == 0 || !(dev = ppfd_edev_get(d, now, 0)))
        return;
    if (ppf_evq_flush(d->evq, dev, timeout_ms) < 0) {
        ppf_evq_get_stats(d->evq, &st);
        if (!d->edev_down)
            ppf_warn("events", "%s; %zu domain events kept for when it answers (retrying "
                     "every %d s)", ppf_error(), st.queued, RETRY_S);
        d->edev_down = 1;
        ppfd_edev_close(d);
    }
}

/* The libvirt thread's way in: queue, then wake the main thread. */
static void
ppfd_wake(void *opaque)
{
    struct ppfd *d = opaque;

    pthread_kill(d->main_thread, SIGUSR1);
}

static void
ppfd_emit(const struct ppf_host_event *ev, void *opaque)
{
    struct ppfd *d = opaque;

    ppf_evq_push(d->evq, ev);
}

/* GET_STATS, then USAGE (§5.9; *u empty if the peripheral predates it),
 * on an I/O pair of dev; 0 (free *u after), or -1 with the reason logged
 * at debug (the caller says once that the peripheral is away). */
static int
ppfd_get_stats(struct ppf_dev *dev, struct ppf_prom_stats *s, struct ppf_prom_usage *u)
{
    struct ppf_dev_info info;
    struct ppf_cmd cmd = { .opcode = PPF_OP_GET_STATS };
    struct ppf_qp *qp;
    uint8_t *out;
    char why[512];
    int rc = -1;

    ppf_dev_get_info(dev, &info);
    if (!(out = malloc(info.slot_size)))
        return -1;
    cmd.out = out;
    cmd.out_cap = info.slot_size;
    if (ppf_qp_claim(dev, PPF_QP_IO, DEVICE_TIMEOUT_MS, &qp) == 0) {
        if (ppf_exec(qp, &cmd, DEVICE_TIMEOUT_MS) < 0)
            ppf_debug("prometheus", "GET_STATS: %s", ppf_error());
        else if (cmd.status != PPF_SC_SUCCESS)
            ppf_debug("prometheus", "GET_STATS: %s", ppf_status_text(cmd.status));
        else if (ppf_prom_stats_parse(s, out, cmd.out_len) < 0)
            ppf_debug("prometheus", "GET_STATS: the answer is malformed");
        else
            rc = 0;
        /* without usage the counters are still worth writing */
        if (rc == 0 && ppf_usage_fetch(dev, qp, DEVICE_TIMEOUT_MS, u, why, sizeof why) < 0)
            ppf_debug("prometheus", "%s", why);
        ppf_qp_release(qp);
    } else {
        ppf_debug("prometheus", "%s", ppf_error());
    }
    free(out);
    return rc;
}

/* ppfd's own metrics, after the peripheral's. */
static int
ppfd_prom_own(struct ppfd *d, FILE *fp, int up)
{
    struct ppf_evq_stats st = { 0 };
    int rc = 0;

    if (d->evq)
        ppf_evq_get_stats(d->evq, &st);
    rc |= ppf_prom_write_one(fp, "ppfd_peripheral_up", "gauge",
                             "1 if ppfd read the peripheral's counters at this refresh.", up);
    if (d->uri)
        rc |= ppf_prom_write_one(fp, "ppfd_libvirt_connected", "gauge",
                                 "1 while ppfd is connected to libvirt.",
                                 ppf_lv_connected(d->lv));
    rc |= ppf_prom_write_one(fp, "ppfd_events_forwarded_total", "counter",
                             "Domain events the peripheral accepted.", (double)st.forwarded);
    rc |= ppf_prom_write_one(fp, "ppfd_events_refused_total", "counter",
                             "Domain events the peripheral refused or does not take.",
                             (double)st.refused);
    rc |= ppf_prom_write_one(fp, "ppfd_events_dropped_total", "counter",
                             "Domain events dropped: the queue was full while the "
                             "peripheral was away.", (double)st.dropped);
    rc |= ppf_prom_write_one(fp, "ppfd_events_queued", "gauge",
                             "Domain events waiting for the peripheral.", (double)st.queued);
    return rc;
}

/* Rewrites the textfile atomically: PATH.tmp, fsync, rename.  -1 with a
 * message in why on failure. */
static int
ppfd_prom_write(struct ppfd *d, uint64_t now, char *why, size_t whylen)
{
    struct ppf_prom_stats s;
    struct ppf_prom_usage u = { 0 };
    struct ppf_dev *dev = ppfd_edev_get(d, now, 1);
    int up = 0, fd, rc;
    FILE *fp;

    if (dev && ppfd_get_stats(dev, &s, &u) == 0)
        up = 1;
    else if (dev)
        ppfd_edev_close(d);     /* reopened next time */
    fd = open(d->prom_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || !(fp = fdopen(fd, "w"))) {
        snprintf(why, whylen, "%s: %s", d->prom_tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        ppf_prom_usage_free(&u);
        return -1;
    }
    rc = up ? ppf_prom_write(fp, &s) : 0;
    if (up)
        rc |= ppf_prom_usage_write(fp, &u);
    ppf_prom_usage_free(&u);
    rc |= ppfd_prom_own(d, fp, up);
    if (rc < 0 || fflush(fp) != 0 || fsync(fd) < 0) {
        snprintf(why, whylen, "%s: %s", d->prom_tmp, strerror(errno));
        fclose(fp);
        unlink(d->prom_tmp);
        return -1;
    }
    if (fclose(fp) != 0) {
        snprintf(why, whylen, "%s: %s", d->prom_tmp, strerror(errno));
        unlink(d->prom_tmp);
        return -1;
    }
    if (rename(d->prom_tmp, d->prom_file) < 0) {
        snprintf(why, whylen, "renaming %s to %s: %s", d->prom_tmp, d->prom_file,
                 strerror(errno));
        unlink(d->prom_tmp);
        return -1;
    }
    ppf_debug("prometheus", "%s written (peripheral %s)", d->prom_file,
              up ? "up" : "not answering");
    return 0;
}

static void
ppfd_prom_tick(struct ppfd *d, uint64_t now)
{
    char why[600];

    if (!d->prom_file || now < d->next_prom_ns)
        return;
    d->next_prom_ns = now + (uint64_t)d->prom_interval_s * 1000000000u;
    if (ppfd_prom_write(d, now, why, sizeof why) < 0) {
        if (!d->prom_warned)
            ppf_warn("prometheus", "%s; retrying every %u s", why, d->prom_interval_s);
        d->prom_warned = 1;
    } else if (d->prom_warned) {
        ppf_info("prometheus", "%s written again", d->prom_file);
        d->prom_warned = 0;
    }
}

static void
ppfd_free(struct ppfd *d)
{
    ppf_lv_stop(d->lv);
    d->lv = NULL;
    ppf_dev_close(d->pdev);
    d->pdev = NULL;
    ppf_evq_free(d->evq);
    d->evq = NULL;
    ppfd_edev_close(d);
    free(d->prom_tmp);
    d->prom_tmp = NULL;
    ppf_policy_free(d->policy);
    d->policy = NULL;
}

int
main(int argc, char **argv)
{
    enum { OPT_FG, OPT_LOGFILE = 256, OPT_PID, OPT_EWP, OPT_LOG, OPT_NOLV, OPT_PROM,
           OPT_PROMINT, OPT_POOLDIR };
    static const struct option opts[] = {
        { "policy", required_argument, NULL, 'p' },
        { "device", required_argument, NULL, 'd' },
        { "connect", required_argument, NULL, 'c' },
        { "no-libvirt", no_argument, NULL, OPT_NOLV },
        { "prometheus-file", required_argument, NULL, OPT_PROM },
        { "prometheus-interval", required_argument, NULL, OPT_PROMINT },
        { "pool-dir", required_argument, NULL, OPT_POOLDIR },
        { "foreground", no_argument, NULL, OPT_FG },
        { "log-file", required_argument, NULL, OPT_LOGFILE },
        { "pidfile", required_argument, NULL, OPT_PID },
        { "exit-with-parent", no_argument, NULL, OPT_EWP },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ppfd d = { .device = NULL, .policy_file = DEFAULT_POLICY,
                      .uri = PPF_LV_DEFAULT_URI, .prom_interval_s = PROM_DEFAULT_S };
    const char *log_file = "/var/log/ppf/ppfd.log";
    const char *pidfile = NULL;
    int foreground = 0, exit_with_parent = 0, level = PPF_LOG_INFO, o, ready_fd = -1;
    int no_libvirt = 0;
    pid_t parent = getppid();
    sigset_t set;
    int running = 1;
    uint64_t next_retry;
    char *end;
    unsigned long n;

    while ((o = getopt_long(argc, argv, "p:d:c:vhV", opts, NULL)) != -1) {
        switch (o) {
        case 'p': d.policy_file = optarg; break;
        case 'd': d.device = optarg; break;
        case 'c':
            if (!optarg[0])
                return usage_error("--connect needs a libvirt URI", NULL);
            d.uri = optarg;
            break;
        case OPT_NOLV: no_libvirt = 1; break;
        case OPT_POOLDIR:
            if (!optarg[0])
                return usage_error("--pool-dir needs a directory", NULL);
            d.pool_dir = optarg;
            break;
        case OPT_PROM:
            if (!optarg[0])
                return usage_error("--prometheus-file needs a file name", NULL);
            d.prom_file = optarg;
            break;
        case OPT_PROMINT:
            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > PROM_MAX_S)
                return usage_error("--prometheus-interval must be 1 to 86400 seconds",
                                   optarg);
            d.prom_interval_s = (unsigned)n;
            break;
        case OPT_FG: foreground = 1; break;
        case OPT_LOGFILE: log_file = optarg; break;
        case OPT_PID: pidfile = optarg; break;
        case OPT_EWP: exit_with_parent = foreground = 1; break;
        case OPT_LOG:
            level = ppf_log_level_parse(optarg);
            if (level < 0)
                return usage_error("--log-level must be error, warn, info or debug", optarg);
            break;
        case 'v': level = PPF_LOG_DEBUG; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ppfd %s\n", PACKAGE_VERSION); return 0;
        default: fprintf(stderr, "Try 'ppfd --help' for more information.\n"); return 2;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (no_libvirt)
        d.uri = NULL;
    ppf_log_init("ppfd", (enum ppf_log_level)level);
    if (exit_with_parent && ppf_exit_with_parent(parent) < 0)
        return 0;
    if (d.prom_file && asprintf(&d.prom_tmp, "%s.tmp", d.prom_file) < 0) {
        ppf_err("main", "out of memory");
        return 1;
    }

    /* an invalid policy at start is an error the starting command sees */
    if (ppfd_read_policy(&d, 1) < 0) {
        ppfd_free(&d);
        return 1;
    }
    if (!foreground && ppf_daemonize(&ready_fd, log_file) < 0) {
        ppfd_free(&d);
        return 1;
    }

    /* blocked before any thread starts, so that every thread inherits it */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* a libvirtd (or a proxy) that goes away mid-write must not kill us */
    signal(SIGPIPE, SIG_IGN);
    d.main_thread = pthread_self();

    ppfd_apply(&d);
    d.sampler = ppf_sampler_new();
    if (!d.sampler) {
        ppfd_free(&d);
        return 1;
    }
    ppfd_metrics_config(&d);
    if (d.uri) {
        if (!(d.evq = ppf_evq_new(PPF_EVQ_DEFAULT_CAP)) ||
            !(d.lv = ppf_lv_start(d.uri, ppfd_emit, &d))) {
            ppf_sampler_free(d.sampler);
            ppfd_free(&d);
            return 1;
        }
        ppf_evq_set_wake(d.evq, ppfd_wake, &d);
        if (!d.pool_dir) {
            const char *env = getenv("PPF_POOL_DIR");
            d.pool_dir = env && env[0] ? env : PPF_POOL_STATE_DIR;
        }
        ppf_lv_add_periodic(d.lv, POOL_REFRESH_S * 1000, ppfd_pools_refresh, &d);
    }
    if (pidfile && ppf_write_pidfile(pidfile) < 0) {
        ppf_sampler_free(d.sampler);
        ppfd_free(&d);
        return 1;
    }
    ppf_info("main", "running; policy %s, device %s, libvirt %s%s%s", d.policy_file,
             d.device ? d.device : "auto", d.uri ? d.uri : "off",
             d.prom_file ? ", Prometheus file " : "", d.prom_file ? d.prom_file : "");
    ppf_daemon_ready(ready_fd);

    next_retry = mono_ns() + RETRY_S * 1000000000ull;
    d.next_prom_ns = mono_ns();
    while (running) {
        uint64_t now = mono_ns(), until = next_retry;
        struct timespec ts;
        int sig;

        ppfd_metrics_tick(&d, now);
        ppfd_events_tick(&d, now, DEVICE_TIMEOUT_MS);
        ppfd_prom_tick(&d, now);
        if (d.interval_ms && d.metrics && d.next_sample_ns < until)
            until = d.next_sample_ns;
        if (d.prom_file && d.next_prom_ns < until)
            until = d.next_prom_ns;
        now = mono_ns();
        until = until > now ? until - now : 0;
        ts.tv_sec = (time_t)(until / 1000000000u);
        ts.tv_nsec = (long)(until % 1000000000u);
        sig = sigtimedwait(&set, NULL, &ts);
        switch (sig) {
        case SIGHUP:
            ppf_info("main", "SIGHUP: re-reading %s", d.policy_file);
            if (ppfd_read_policy(&d, 0) > 0) {
                ppfd_apply(&d);
                ppfd_metrics_config(&d);
            }
            break;
        case SIGTERM:
        case SIGINT:
            running = 0;
            break;
        default:        /* a timeout, or SIGUSR1: an event was queued */
            if (mono_ns() >= next_retry) {
                ppfd_apply(&d);     /* retry a pending policy */
                next_retry = mono_ns() + RETRY_S * 1000000000ull;
            }
            break;
        }
    }
    /* libvirt first, so that nothing is queued behind the last flush */
    ppf_lv_stop(d.lv);
    d.lv = NULL;
    ppf_dev_close(d.pdev);
    d.pdev = NULL;
    if (d.evq) {
        struct ppf_evq_stats st;

        d.next_edev_ns = 0;
        ppfd_events_tick(&d, mono_ns(), STOP_FLUSH_MS);
        ppf_evq_get_stats(d.evq, &st);
        if (st.queued)
            ppf_warn("events", "stopping with %zu domain events the peripheral did not get",
                     st.queued);
    }
    ppfd_metrics_detach(&d);
    ppf_sampler_free(d.sampler);
    ppf_info("main", "stopped");
    ppfd_free(&d);
    if (pidfile)
        unlink(pidfile);
    return 0;
}

/* ppfd's metrics sampler (plugin/metrics.h).  Each /proc file is opened
 * once and re-read with pread at offset 0 into a buffer owned by the
 * sampler; rates are deltas over CLOCK_MONOTONIC since the last sample.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/metrics.h"
#include "policy/policy.h"

#define BUF_SIZE   (256 * 1024)
#define MAX_DISKS  128

enum { F_STAT, F_MEMINFO, F_PSI_CPU, F_PSI_MEM, F_PSI_IO, F_DISK, F_NET, F__N };

static const char *const file_names[F__N] = {
    "stat", "meminfo", "pressure/cpu", "pressure/memory", "pressure/io", "diskstats",
    "net/dev",
};

struct disk {
    char name[32];
    int whole;                  /* a physical whole disk (has a device link) */
};

struct ppf_sampler {
    char proc[512], sysfs[512];
    int fd[F__N];
    int absent[F__N];           /* open failed once: not on this host */
    char *buf;
    struct disk disks[MAX_DISKS];
    unsigned ndisks;
    /* previous sample, per group; have_* = 0 until one was taken */
    int have_cpu, have_disk, have_net;
    uint64_t cpu_total, cpu_idle, cpu_ns;
    uint64_t disk_rd, disk_wr, disk_ns;
    uint64_t net_rx, net_tx, net_ns;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct ppf_sampler *
ppf_sampler_new(void)
{
    struct ppf_sampler *s = calloc(1, sizeof *s);
    const char *p = getenv("PPF_PROC_ROOT"), *y = getenv("PPF_SYSFS_ROOT");

    if (!s || !(s->buf = malloc(BUF_SIZE))) {
        free(s);
        ppf_err("metrics", "out of memory for the sampler");
        return NULL;
    }
    snprintf(s->proc, sizeof s->proc, "%s", p && *p ? p : "/proc");
    snprintf(s->sysfs, sizeof s->sysfs, "%s", y && *y ? y : "/sys");
    for (int i = 0; i < F__N; i++)
        s->fd[i] = -1;
    return s;
}

void
ppf_sampler_free(struct ppf_sampler *s)
{
    if (!s)
        return;
    for (int i = 0; i < F__N; i++)
        if (s->fd[i] >= 0)
            close(s->fd[i]);
    free(s->buf);
    free(s);
}

/* Reads file f (from offset 0) into s->buf, NUL-terminated; at most cap
 * bytes.  Returns the text or NULL (reported once). */
static const char *
read_file(struct ppf_sampler *s, int f, size_t cap)
{
    char path[600];
    ssize_t n;

    if (s->absent[f])
        return NULL;
    if (s->fd[f] < 0) {
        snprintf(path, sizeof path, "%s/%s", s->proc, file_names[f]);
        s->fd[f] = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd[f] < 0) {
            s->absent[f] = 1;
            if (f < F_PSI_CPU || f > F_PSI_IO)
                ppf_warn("metrics", "cannot open %s: %m; that metric is left out", path);
            return NULL;
        }
    }
    if (cap > BUF_SIZE)
        cap = BUF_SIZE;
    n = pread(s->fd[f], s->buf, cap - 1, 0);
    if (n < 0) {
        /* e.g. EOPNOTSUPP: PSI compiled in but disabled at boot */
        if (errno != EOPNOTSUPP)
            ppf_warn("metrics", "cannot read %s/%s: %m; that metric is left out", s->proc,
                     file_names[f]);
        close(s->fd[f]);
        s->fd[f] = -1;
        s->absent[f] = 1;
        return NULL;
    }
    s->buf[n] = '\0';
    return s->buf;
}

int
ppf_parse_proc_stat(const char *text, uint64_t *total, uint64_t *idle)
{
    unsigned long long v[8] = { 0 };
    int n = sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);

    if (n < 4)
        return -1;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];         /* guest time is already inside user */
    *idle = v[3] + v[4];        /* idle + iowait */
    return 0;
}

static int
meminfo_field(const char *text, const char *key, uint64_t *kb)
{
    const char *p = strstr(text, key);
    unsigned long long v;

    while (p && p != text && p[-1] != '\n')
        p = strstr(p + 1, key);
    if (!p || sscanf(p + strlen(key), " %llu", &v) != 1)
        return -1;
    *kb = v;
    return 0;
}

int
ppf_parse_meminfo(const char *text, uint64_t *total_kb, uint64_t *avail_kb)
{
    if (meminfo_field(text, "MemTotal:", total_kb) < 0 || *total_kb == 0)
        return -1;
    if (meminfo_field(text, "MemAvailable:", avail_kb) < 0 &&
        meminfo_field(text, "MemFree:", avail_kb) < 0)
        return -1;
    if (*avail_kb > *total_kb)
        *avail_kb = *total_kb;
    return 0;
}

int
ppf_parse_psi_avg10(const char *text, uint16_t *hundredths)
{
    unsigned whole, frac;
    const char *p = strstr(text, "some avg10=");

    if (!p || sscanf(p + 11, "%u.%2u", &whole, &frac) != 2 || whole > 100)
        return -1;
    *hundredths = (uint16_t)(whole * 100 + frac);
    if (*hundredths > PPF_MREC_MAX_PSI)
        *hundredths = PPF_MREC_MAX_PSI;
    return 0;
}

int
ppf_parse_net_dev(const char *text, uint64_t *rx, uint64_t *tx)
{
    const char *line = text;
    int found = 0;

    *rx = *tx = 0;
    for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char name[64];
        unsigned long long r, t, skip;
        const char *colon = strchr(line, ':'), *nl = strchr(line, '\n');
        size_t len;

        if (!colon || (nl && colon > nl))
            continue;           /* the two header lines */
        while (*line == ' ')
            line++;
        len = (size_t)(colon - line);
        if (len == 0 || len >= sizeof name)
            continue;
        memcpy(name, line, len);
        name[len] = '\0';
        if (strcmp(name, "lo") == 0)
            continue;
        /* rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes */
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &r, &skip,
                   &skip, &skip, &skip, &skip, &skip, &skip, &t) != 9)
            continue;
        *rx += r;
        *tx += t;
        found = 1;
    }
    return found || strstr(text, "Inter-") ? 0 : -1;
}

static int
disk_is_whole(struct ppf_sampler *s, const char *name)
{
    char path[700];
    unsigned i;

    for (i = 0; i < s->ndisks; i++)
        if (strcmp(s->disks[i].name, name) == 0)
            return s->disks[i].whole;
    snprintf(path, sizeof path, "%s/block/%s/device", s->sysfs, name);
    i = access(path, F_OK) == 0;
    if (s->ndisks < MAX_DISKS && strlen(name) < sizeof s->disks[0].name) {
        snprintf(s->disks[s->ndisks].name, sizeof s->disks[0].name, "%s", name);
        s->disks[s->ndisks++].whole = (int)i;
    }
    return (int)i;
}

static int
sample_disks(struct ppf_sampler *s, uint64_t *rd, uint64_t *wr)
{
    const char *line = read_file(s, F_DISK, BUF_SIZE);

    *rd = *wr = 0;
    if (!line)
        return -1;
    for (; *line; ) {
        unsigned maj, min;
        char name[64];
        unsigned long long rio, rmerge, rsect, rticks, wio, wmerge, wsect;
        const char *nl = strchr(line, '\n');

        if (sscanf(line, "%u %u %63s %llu %llu %llu %llu %llu %llu %llu", &maj, &min, name,
                   &rio, &rmerge, &rsect, &rticks, &wio, &wmerge, &wsect) == 10 &&
            disk_is_whole(s, name)) {
            *rd += rsect * 512;
            *wr += wsect * 512;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    return 0;
}

static uint64_t
rate(uint64_t now, uint64_t prev, uint64_t dns)
{
    if (now < prev || dns == 0)
        return 0;
    return (uint64_t)((double)(now - prev) * 1e9 / (double)dns);
}

int
ppf_sampler_sample(struct ppf_sampler *s, uint32_t mask, uint32_t interval_ms,
                   struct ppf_metrics_rec *rec)
{
    struct timespec ts;
    const char *t;
    uint64_t now = mono_ns(), a, b;

    memset(rec, 0, sizeof *rec);
    clock_gettime(CLOCK_REALTIME, &ts);
    rec->time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    rec->interval_ms = interval_ms ? interval_ms : 1;

    if (mask & PPF_METRIC_CPU) {
        if ((t = read_file(s, F_STAT, 1024)) && ppf_parse_proc_stat(t, &a, &b) == 0) {
            if (s->have_cpu && a > s->cpu_total) {
                uint64_t dt = a - s->cpu_total, di = b >= s->cpu_idle ? b - s->cpu_idle : 0;
                rec->cpu_busy = (uint16_t)(di >= dt ? 0 : (dt - di) * 1000 / dt);
                rec->flags |= PPF_MREC_CPU;
            }
            s->cpu_total = a;
            s->cpu_idle = b;
            s->have_cpu = 1;
        }
    } else {
        s->have_cpu = 0;
    }
    if (mask & PPF_METRIC_MEMORY) {
        if ((t = read_file(s, F_MEMINFO, 8192)) && ppf_parse_meminfo(t, &a, &b) == 0) {
            rec->mem_used = (uint16_t)((a - b) * 1000 / a);
            rec->mem_avail = b * 1024;
            rec->flags |= PPF_MREC_MEMORY;
        }
    }
    if (mask & PPF_METRIC_PRESSURE) {
        uint16_t *dst[3] = { &rec->psi_cpu, &rec->psi_mem, &rec->psi_io };
        int ok = 0;

        for (int i = 0; i < 3; i++)
            if ((t = read_file(s, F_PSI_CPU + i, 1024)) && ppf_parse_psi_avg10(t, dst[i]) == 0)
                ok++;
        rec->flags |= ok ? PPF_MREC_PRESSURE : PPF_MREC_NO_PSI;
    }
    if (mask & PPF_METRIC_DISK) {
        if (sample_disks(s, &a, &b) == 0) {
            if (s->have_disk) {
                rec->disk_read_bps = rate(a, s->disk_rd, now - s->disk_ns);
                rec->disk_write_bps = rate(b, s->disk_wr, now - s->disk_ns);
                rec->flags |= PPF_MREC_DISK;
            }
            s->disk_rd = a;
            s->disk_wr = b;
            s->disk_ns = now;
            s->have_disk = 1;
        }
    } else {
        s->have_disk = 0;
    }
    if (mask & PPF_METRIC_NET) {
        if ((t = read_file(s, F_NET, BUF_SIZE)) && ppf_parse_net_dev(t, &a, &b) == 0) {
            if (s->have_net) {
                rec->net_rx_bps = rate(a, s->net_rx, now - s->net_ns);
                rec->net_tx_bps = rate(b, s->net_tx, now - s->net_ns);
                rec->flags |= PPF_MREC_NET;
            }
            s->net_rx = a;
            s->net_tx = b;
            s->net_ns = now;
            s->have_net = 1;
        }
    } else {
        s->have_net = 0;
    }
    return 0;
}

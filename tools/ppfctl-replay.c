/* ppfctl replay: runs the engine, scheduler and buffer model in virtual
 * time over a trace of deploy requests and reports what a host would have
 * seen (peripheral/replay.h), beside the lru, belady and oracle baselines.
 * Needs no peripheral.  Output: a table, --json (one object per run), and
 * --plot FILE.svg (hit ratio per run and capacity, hand-written SVG).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "peripheral/engine.h"
#include "peripheral/replay.h"
#include "peripheral/trace.h"
#include "policy/policy.h"
#include "tools/ppfctl.h"

#define RP_MAX_CAPS 16
#define RP_DEFAULT_CAPACITY (256ull << 30)
#define RP_DEFAULT_BANDWIDTH 1000000000ull
#define RP_DEFAULT_FED_INTERVAL 300.0

struct rp_opts {
    const char *trace, *policy, *algorithm, *metrics, *plot;
    uint64_t caps[RP_MAX_CAPS];
    unsigned ncaps;
    uint64_t bandwidth;
    int baseline[PPF_REPLAY__MAX];
    int json, quiet;
    unsigned hosts;             /* --hosts: split over this many (issue 8) */
    int federation, split_requests;
    double fed_interval;        /* s of trace time between exchanges */
};

static void
rp_fmt_bytes(double v, char *buf, size_t len)
{
    static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    int i = 0;

    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

static void
rp_fmt_cap(uint64_t v, char *buf, size_t len)
{
    if (v % (1ull << 40) == 0)
        snprintf(buf, len, "%lluTiB", (unsigned long long)(v >> 40));
    else if (v % (1ull << 30) == 0)
        snprintf(buf, len, "%lluGiB", (unsigned long long)(v >> 30));
    else
        rp_fmt_bytes((double)v, buf, len);
}

static int
rp_parse_caps(const char *s, struct rp_opts *o)
{
    CLEANUP_FREE char *copy = strdup(s);
    char *save = NULL;

    if (!copy)
        return -1;
    o->ncaps = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;

        if (o->ncaps == RP_MAX_CAPS || ppf_policy_parse_size(tok, &v) < 0 || v < (1u << 20))
            return -1;
        o->caps[o->ncaps++] = v;
    }
    return o->ncaps ? 0 : -1;
}

static int
rp_parse_bandwidth(const char *s, uint64_t *out)
{
    char buf[64];
    size_t n = strlen(s);

    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n + 1);
    if (n > 2 && strcmp(buf + n - 2, "/s") == 0)
        buf[n - 2] = 0;
    if (ppf_policy_parse_size(buf, out) < 0 || *out < 4096)
        return -1;
    return 0;
}

static int
rp_parse_baselines(const char *s, struct rp_opts *o)
{
    CLEANUP_FREE char *copy = strdup(s);
    char *save = NULL;

    if (!copy)
        return -1;
    memset(o->baseline, 0, sizeof o->baseline);
    if (strcmp(s, "none") == 0)
        return 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k;

        if (strcmp(tok, "all") == 0) {
            for (k = PPF_REPLAY_LRU; k < PPF_REPLAY__MAX; k++)
                o->baseline[k] = 1;
            continue;
        }
        k = ppf_replay_kind_parse(tok);
        if (k < 0)
            return -1;
        o->baseline[k] = 1;
    }
    return 0;
}

static int
rp_algorithm(const char *s)
{
    for (unsigned i = 0; i < PPF_ALGO__MAX; i++)
        if (strcmp(ppf_policy_algorithm_name(i), s) == 0)
            return (int)i;
    return -1;
}

static void
rp_print_table(const struct ppf_trace *t, const struct rp_opts *o,
               const struct ppf_replay_result *r, size_t n)
{
    char bw[32];
    double span = t->ev[t->n - 1].time - t->ev[0].time;

    rp_fmt_bytes((double)o->bandwidth, bw, sizeof bw);
    printf("%s: %zu requests, %u images, %u tenants over %.1f days; bandwidth %s/s\n",
           o->trace, t->n, ppf_strtab_count(t->images), ppf_strtab_count(t->tenants),
           span / 86400, bw);
    printf("%-10s %9s %9s %10s %10s %10s %10s %9s %9s\n", "run", "capacity", "hit ratio",
           "demand", "prefetch", "useful", "wasted", "mean wait", "p99 wait");
    for (size_t i = 0; i < n; i++) {
        char cap[32], d[32], p[32], u[32], w[32];

        rp_fmt_cap(r[i].capacity, cap, sizeof cap);
        rp_fmt_bytes((double)r[i].demand_bytes, d, sizeof d);
        rp_fmt_bytes((double)r[i].prefetch_bytes, p, sizeof p);
        rp_fmt_bytes((double)r[i].useful_bytes, u, sizeof u);
        rp_fmt_bytes((double)r[i].wasted_bytes, w, sizeof w);
        printf("%-10s %9s %9.4f %10s %10s %10s %10s %8.2fs %8.2fs\n", r[i].name, cap,
               r[i].hit_ratio, d, p, u, w, r[i].mean_latency, r[i].p99_latency);
    }
}

static void
rp_print_json(const struct ppf_trace *t, const struct ppf_replay_result *r, size_t n)
{
    struct ppf_json j;

    ppf_json_init(&j, stdout);
    ppf_json_begin_array(&j, NULL);
    for (size_t i = 0; i < n; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "name", r[i].name);
        ppf_json_str(&j, "trace", t->path);
        ppf_json_u64(&j, "capacity", r[i].capacity);
        ppf_json_u64(&j, "bandwidth", r[i].bandwidth);
        ppf_json_u64(&j, "requests", r[i].requests);
        ppf_json_u64(&j, "hits", r[i].hits);
        ppf_json_double(&j, "hit_ratio", r[i].hit_ratio);
        ppf_json_u64(&j, "demand_bytes", r[i].demand_bytes);
        ppf_json_u64(&j, "prefetch_bytes", r[i].prefetch_bytes);
        ppf_json_u64(&j, "useful_prefetch_bytes", r[i].useful_bytes);
        ppf_json_u64(&j, "wasted_prefetch_bytes", r[i].wasted_bytes);
        ppf_json_u64(&j, "pending_prefetch_bytes", r[i].pending_bytes);
        ppf_json_u64(&j, "prefetches", r[i].prefetches);
        ppf_json_double(&j, "mean_latency_s", r[i].mean_latency);
        ppf_json_double(&j, "p99_latency_s", r[i].p99_latency);
        if (r[i].engine.nmodels) {
            ppf_json_begin_array(&j, "models");
            for (unsigned k = 0; k < r[i].engine.nmodels; k++) {
                ppf_json_begin_object(&j, NULL);
                ppf_json_str(&j, "name", r[i].engine.model[k].name);
                ppf_json_double(&j, "weight", r[i].engine.model[k].weight);
                ppf_json_double(&j, "precision", r[i].engine.model[k].precision);
                ppf_json_double(&j, "recall", r[i].engine.model[k].recall);
                ppf_json_end_object(&j);
            }
            ppf_json_end_array(&j);
        }
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    fputc('\n', stdout);
}

static void
rp_svg_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", fp);
        else if (*s == '>')
            fputs("&gt;", fp);
        else if (*s == '&')
            fputs("&amp;", fp);
        else
            fputc(*s, fp);
    }
}

/* Grouped bars: one group per capacity, one bar per run, hit ratio 0..1. */
static int
rp_plot(const char *path, const struct ppf_trace *t, const struct rp_opts *o,
        const struct ppf_replay_result *r, size_t n)
{
    static const char *const colors[] = { "#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                                          "#66a61e", "#e6ab02", "#a6761d", "#666666" };
    size_t runs = n / o->ncaps;
    double W = 720, Hh = 420, left = 60, right = 150, top = 40, bottom = 50;
    double pw = W - left - right, ph = Hh - top - bottom, gw = pw / o->ncaps;
    double bw = gw * 0.8 / (double)runs;
    CLEANUP_FREE char *tmp = NULL;
    FILE *fp;
    const char *base = strrchr(t->path, '/');

    if (asprintf(&tmp, "%s.tmp", path) < 0) {
        tmp = NULL;
        return -1;
    }
    fp = fopen(tmp, "we");
    if (!fp) {
        fprintf(stderr, "ppfctl: %s: cannot create: %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, Hh, W, Hh);
    fprintf(fp, "<text x=\"%.0f\" y=\"22\" font-size=\"14\">hit ratio: ", left);
    rp_svg_text(fp, base ? base + 1 : t->path);
    fprintf(fp, "</text>\n");
    for (int k = 0; k <= 10; k += 2) {
        double y = top + ph - ph * k / 10.0;

        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                left, y, left + pw, y, left - 6, y + 4, k / 10.0);
    }
    for (unsigned g = 0; g < o->ncaps; g++) {
        char cap[32];
        double gx = left + gw * g + gw * 0.1;

        rp_fmt_cap(o->caps[g], cap, sizeof cap);
        for (size_t i = 0; i < runs; i++) {
            const struct ppf_replay_result *x = &r[g * runs + i];
            double h = ph * x->hit_ratio, x0 = gx + bw * (double)i;

            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"%s\"><title>%s %s: %.3f</title></rect>\n"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\">"
                    "%.2f</text>\n", x0, top + ph - h, bw * 0.92, h, colors[i % 8], x->name,
                    cap, x->hit_ratio, x0 + bw * 0.46, top + ph - h - 3, x->hit_ratio);
        }
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                left + gw * g + gw / 2, top + ph + 18, cap);
    }
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
            left, top + ph, left + pw, top + ph);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">buffer capacity "
            "(bandwidth %.2f GB/s)</text>\n", left + pw / 2, Hh - 12, o->bandwidth / 1e9);
    for (size_t i = 0; i < runs; i++) {
        double y = top + 20 * (double)i;

        fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%.1f\">", W - right + 16, y, colors[i % 8],
                W - right + 34, y + 10);
        rp_svg_text(fp, r[i].name);
        fprintf(fp, "</text>\n");
    }
    fprintf(fp, "</svg>\n");
    if (fclose(fp) != 0 || rename(tmp, path) < 0) {
        fprintf(stderr, "ppfctl: %s: cannot write: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int
rp_load_policy(const char *file, struct ppf_policy **p)
{
    struct ppf_policy_diags d;
    int r;

    ppf_policy_diags_init(&d);
    r = ppf_policy_parse_file_flags(file, PPF_POLICY_NO_FILE_CHECKS, p, &d);
    if (r < 0) {
        ppf_policy_diags_print(&d, stderr);
        fprintf(stderr, "ppfctl: %s: not a valid policy; fix it or leave out --policy\n", file);
    }
    ppf_policy_diags_free(&d);
    return r;
}

/* --hosts N [--federation]: each host's hit ratio learning alone and, with
 * --federation, sharing pattern summaries (peripheral/replay.h). */
static int
rp_hosts(const struct ppf_trace *t, const struct rp_opts *o, struct ppf_replay_config *rc)
{
    CLEANUP_FREE struct ppf_replay_result *alone = calloc(o->hosts, sizeof *alone);
    CLEANUP_FREE struct ppf_replay_result *fed = calloc(o->hosts, sizeof *fed);
    struct ppf_json j;
    uint64_t merged = 0, m0;

    if (!alone || !fed) {
        fprintf(stderr, "ppfctl: out of memory\n");
        return 1;
    }
    if (o->json) {
        ppf_json_init(&j, stdout);
        ppf_json_begin_array(&j, NULL);
    }
    for (unsigned g = 0; g < o->ncaps; g++) {
        uint64_t req = 0, hits[2] = { 0, 0 };
        char cap[32];

        rc->kind = PPF_REPLAY_ENGINE;
        rc->capacity = o->caps[g];
        rc->split_requests = o->split_requests;
        if (ppf_replay_run_hosts(t, rc, o->hosts, 0, alone, &m0) < 0
            || (o->federation
                && ppf_replay_run_hosts(t, rc, o->hosts, o->fed_interval, fed, &merged) < 0)) {
            fprintf(stderr, "ppfctl: replay of %s over %u hosts failed: %s\n", o->trace,
                    o->hosts, strerror(errno));
            return 1;
        }
        rp_fmt_bytes((double)o->caps[g], cap, sizeof cap);
        if (!o->json) {
            if (o->federation)
                printf("%s over %u hosts (%s split by hash), %s buffer each, "
                       "federation every %.0f s of trace time\n", alone[0].name, o->hosts,
                       o->split_requests ? "requests" : "tenants", cap, o->fed_interval);
            else
                printf("%s over %u hosts (%s split by hash), %s buffer each\n", alone[0].name,
                       o->hosts, o->split_requests ? "requests" : "tenants", cap);
            printf("%-6s %10s %12s %12s\n", "host", "requests", "alone",
                   o->federation ? "federated" : "");
        }
        for (unsigned h = 0; h < o->hosts; h++) {
            req += alone[h].requests;
            hits[0] += alone[h].hits;
            hits[1] += fed[h].hits;
            if (o->json) {
                ppf_json_begin_object(&j, NULL);
                ppf_json_u64(&j, "host", h);
                ppf_json_u64(&j, "capacity", o->caps[g]);
                ppf_json_u64(&j, "requests", alone[h].requests);
                ppf_json_double(&j, "hit_ratio_alone", alone[h].hit_ratio);
                if (o->federation)
                    ppf_json_double(&j, "hit_ratio_federated", fed[h].hit_ratio);
                ppf_json_end_object(&j);
            } else if (o->federation) {
                printf("%-6u %10" PRIu64 " %12.3f %12.3f\n", h, alone[h].requests,
                       alone[h].hit_ratio, fed[h].hit_ratio);
            } else {
                printf("%-6u %10" PRIu64 " %12.3f\n", h, alone[h].requests,
                       alone[h].hit_ratio);
            }
        }
        if (!o->json && req) {
            if (o->federation)
                printf("%-6s %10" PRIu64 " %12.3f %12.3f\n(%" PRIu64 " image records "
                       "merged)\n", "all", req, (double)hits[0] / (double)req,
                       (double)hits[1] / (double)req, merged);
            else
                printf("%-6s %10" PRIu64 " %12.3f\n", "all", req,
                       (double)hits[0] / (double)req);
        }
    }
    if (o->json)
        ppf_json_end_array(&j);
    return fflush(stdout) == 0 ? 0 : 1;
}

int
cmd_replay(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "policy", required_argument, NULL, 'p' },
        { "algorithm", required_argument, NULL, 'a' },
        { "capacity", required_argument, NULL, 'c' },
        { "bandwidth", required_argument, NULL, 'b' },
        { "baselines", required_argument, NULL, 'B' },
        { "metrics", required_argument, NULL, 'm' },
        { "json", no_argument, NULL, 'j' },
        { "plot", required_argument, NULL, 'P' },
        { "quiet", no_argument, NULL, 'q' },
        { "hosts", required_argument, NULL, 'H' },
        { "federation", no_argument, NULL, 'F' },
        { "federation-interval", required_argument, NULL, 'I' },
        { "split", required_argument, NULL, 'S' },
        { NULL, 0, NULL, 0 },
    };
    struct rp_opts o;
    struct ppf_policy *pol = NULL;
    struct ppf_trace *t = NULL;
    struct ppf_replay_result *res = NULL;
    struct ppf_replay_config rc;
    const char *cap_arg = NULL, *bw_arg = NULL;
    char err[512];
    size_t nres = 0;
    int opt, ret = 1, algo = -1;

    memset(&o, 0, sizeof o);
    o.json = c->json;
    o.fed_interval = RP_DEFAULT_FED_INTERVAL;
    optind = 0;     /* 0: re-initialize, so options may follow TRACE */
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p': o.policy = optarg; break;
        case 'a': o.algorithm = optarg; break;
        case 'c': cap_arg = optarg; break;
        case 'b': bw_arg = optarg; break;
        case 'B':
            if (rp_parse_baselines(optarg, &o) < 0)
                return usage_error("replay: --baselines '%s': write a list of lru, belady, "
                                   "oracle (or all, none)", optarg);
            break;
        case 'm': o.metrics = optarg; break;
        case 'j': o.json = 1; break;
        case 'P': o.plot = optarg; break;
        case 'q': o.quiet = 1; break;
        case 'H': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);

            if (*end || end == optarg || v < 1 || v > PPF_REPLAY_MAX_HOSTS)
                return usage_error("replay: --hosts '%s': 1 to %d", optarg,
                                   PPF_REPLAY_MAX_HOSTS);
            o.hosts = (unsigned)v;
            break;
        }
        case 'F': o.federation = 1; break;
        case 'S':
            if (strcmp(optarg, "tenant") && strcmp(optarg, "request"))
                return usage_error("replay: --split '%s': tenant or request", optarg);
            o.split_requests = strcmp(optarg, "request") == 0;
            break;
        case 'I': {
            char *end;
            double v = strtod(optarg, &end);

            if (*end || end == optarg || !(v >= 1) || v > 86400 * 7)
                return usage_error("replay: --federation-interval '%s': seconds of trace "
                                   "time, 1 to 604800", optarg);
            o.fed_interval = v;
            break;
        }
        default: return usage_error("replay: unknown option");
        }
    }
    if (optind + 1 != argc)
        return usage_error(optind >= argc ? "replay: which trace? ppfctl replay TRACE [OPTIONS]"
                           : "replay: unexpected argument '%s'", argv[optind + 1]);
    o.trace = argv[optind];
    if (o.algorithm && (algo = rp_algorithm(o.algorithm)) < 0)
        return usage_error("replay: --algorithm '%s': one of markov, seasonal, histogram, "
                           "workload, ensemble, lru, none", o.algorithm);
    if (cap_arg && rp_parse_caps(cap_arg, &o) < 0)
        return usage_error("replay: --capacity '%s': write sizes like 256GiB (up to %d, "
                           "comma-separated, at least 1MiB)", cap_arg, RP_MAX_CAPS);
    if (bw_arg && rp_parse_bandwidth(bw_arg, &o.bandwidth) < 0)
        return usage_error("replay: --bandwidth '%s': write a rate like 1GB/s or 500MiB/s",
                           bw_arg);

    if (o.policy && rp_load_policy(o.policy, &pol) < 0)
        return 1;
    if (!pol && !(pol = ppf_policy_new())) {
        fprintf(stderr, "ppfctl: out of memory\n");
        return 1;
    }
    memset(&rc, 0, sizeof rc);
    if (ppf_engine_config_from_policy(pol, &rc.engine) < 0) {
        fprintf(stderr, "ppfctl: %s: learning settings out of range\n",
                o.policy ? o.policy : "default policy");
        goto out;
    }
    if (algo >= 0)
        rc.engine.algorithm = (enum ppf_policy_algorithm)algo;
    ppf_sched_config_from_policy(pol, &rc.sched);
    rc.eviction = pol->buffer.eviction;
    rc.policy = pol;
    if (!cap_arg) {
        o.caps[0] = o.policy ? pol->buffer.capacity : RP_DEFAULT_CAPACITY;
        o.ncaps = 1;
    }
    if (!bw_arg)
        o.bandwidth = o.policy && pol->prefetch.bandwidth ? pol->prefetch.bandwidth
                                                          : RP_DEFAULT_BANDWIDTH;
    rc.bandwidth = o.bandwidth;
    rc.sched.bandwidth = o.bandwidth;
    rc.progress = !o.quiet && isatty(STDERR_FILENO);

    if (ppf_trace_read(o.trace, &t, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s\n", err);
        goto out;
    }
    if (o.metrics && ppf_trace_read_metrics(t, o.metrics, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s\n", err);
        goto out;
    }
    if (o.federation && !o.hosts)
        o.hosts = 4;
    if (o.hosts) {
        ret = rp_hosts(t, &o, &rc);
        goto out;
    }
    {
        size_t runs = 1;

        for (int k = PPF_REPLAY_LRU; k < PPF_REPLAY__MAX; k++)
            runs += o.baseline[k] != 0;
        res = calloc(runs * o.ncaps, sizeof *res);
        if (!res) {
            fprintf(stderr, "ppfctl: out of memory\n");
            goto out;
        }
    }
    for (unsigned g = 0; g < o.ncaps; g++) {
        for (int k = PPF_REPLAY_ENGINE; k < PPF_REPLAY__MAX; k++) {
            if (k != PPF_REPLAY_ENGINE && !o.baseline[k])
                continue;
            rc.kind = (enum ppf_replay_kind)k;
            rc.capacity = o.caps[g];
            if (ppf_replay_run(t, &rc, &res[nres]) < 0) {
                fprintf(stderr, "ppfctl: replay of %s failed: %s\n", o.trace, strerror(errno));
                goto out;
            }
            nres++;
        }
    }
    if (o.json)
        rp_print_json(t, res, nres);
    else
        rp_print_table(t, &o, res, nres);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ppfctl: writing the results failed: %s\n", strerror(errno));
        goto out;
    }
    if (o.plot && rp_plot(o.plot, t, &o, res, nres) < 0)
        goto out;
    ret = 0;
out:
    free(res);
    ppf_trace_free(t);
    ppf_policy_free(pol);
    return ret;
}

/* ppfctl events: the peripheral's operations log (LOG_READ,
 * schemas/device-protocol.md §5.9), oldest record first, as text or one
 * JSON object per line, optionally following new records as they come;
 * and the per-tenant and per-image usage (USAGE) that ppfctl stats prints
 * after its counters.  Everything the peripheral returns is untrusted:
 * attributes go through the checking reader, strings are copied bounded.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/prom.h"
#include "common/util.h"
#include "plugin/usage.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

#define EV_POLL_MS    200           /* --follow asks for new records this often */
#define EV_LIMIT_MAX  100000000u

/* What a record holds besides SEQ, TIME_US, LOG_KIND and TEXT. */
#define EV_OUTCOME (1u << 0)
#define EV_WAIT    (1u << 1)
#define EV_SAVED   (1u << 2)
#define EV_BYTES   (1u << 3)

struct ev_rec {
    uint64_t seq, time_us, wait_us, saved_us, bytes;
    uint32_t kind, outcome;
    unsigned have;                  /* EV_* */
    char image[PPF_NAME_MAX + 1];   /* "" if none */
    char tenant[PPF_NAME_MAX + 1];
    char text[PPF_ATTR_MAX_STR + 1];
};

struct ev_reader {
    struct ctl *c;
    uint8_t *out;
    uint32_t cap;
    uint64_t next;                  /* the next sequence number wanted */
    uint64_t left;                  /* records still to print */
    int gaps;                       /* say when records were dropped */
    int header;                     /* the text header was printed */
    uint64_t printed;
};

static const char *const ev_kinds[PPF_OPLOG__MAX] = {
    [PPF_OPLOG_PREFETCH] = "prefetch",
    [PPF_OPLOG_READY] = "ready",
    [PPF_OPLOG_DEPLOY] = "deploy",
    [PPF_OPLOG_EVICT] = "evict",
    [PPF_OPLOG_PIN] = "pin",
    [PPF_OPLOG_UNPIN] = "unpin",
    [PPF_OPLOG_SCHEDULE] = "schedule",
    [PPF_OPLOG_PURGE] = "purge",
    [PPF_OPLOG_ERROR] = "error",
    [PPF_OPLOG_STALE] = "stale",
};

static const char *
ev_kind_name(uint32_t k)
{
    return k < PPF_OPLOG__MAX && ev_kinds[k] ? ev_kinds[k] : "other";
}

/* "2024-05-01T09:00:00" in local time; with ms and the UTC offset
 * ("2024-05-01T09:00:00.123+02:00") if precise. */
static void
ev_fmt_time(uint64_t us, int precise, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char off[8];
    size_t n;

    if (!localtime_r(&t, &tm) || !(n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm))) {
        snprintf(buf, len, "%" PRIu64, us / 1000000);
        return;
    }
    if (!precise || strftime(off, sizeof off, "%z", &tm) != 5)
        return;
    snprintf(buf + n, len - n, ".%03u%.3s:%s", (unsigned)(us / 1000 % 1000), off, off + 3);
}

static void
ev_print(struct ev_reader *st, const struct ev_rec *r)
{
    char when[48];

    if (st->c->json) {
        struct ppf_json j;

        ev_fmt_time(r->time_us, 1, when, sizeof when);
        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_u64(&j, "seq", r->seq);
        ppf_json_str(&j, "time", when);
        ppf_json_u64(&j, "time_us", r->time_us);
        ppf_json_str(&j, "kind", ev_kind_name(r->kind));
        if (r->image[0])
            ppf_json_str(&j, "image", r->image);
        if (r->tenant[0])
            ppf_json_str(&j, "tenant", r->tenant);
        if (r->have & EV_OUTCOME)
            ppf_json_str(&j, "outcome", buf_outcome_name(r->outcome));
        if (r->have & EV_WAIT)
            ppf_json_double(&j, "wait_ms", (double)r->wait_us / 1e3);
        if (r->have & EV_SAVED)
            ppf_json_double(&j, "saved_ms", (double)r->saved_us / 1e3);
        if (r->have & EV_BYTES)
            ppf_json_u64(&j, "bytes", r->bytes);
        ppf_json_str(&j, "text", r->text);
        ppf_json_end_object(&j);
    } else {
        if (!st->header)
            printf("%-7s %-19s %-8s %-16s %-12s %s\n", "SEQ", "TIME", "KIND", "IMAGE",
                   "TENANT", "TEXT");
        st->header = 1;
        ev_fmt_time(r->time_us, 0, when, sizeof when);
        printf("%-7" PRIu64 " %-19s %-8s %-16s %-12s %s\n", r->seq, when,
               ev_kind_name(r->kind), r->image[0] ? r->image : "-",
               r->tenant[0] ? r->tenant : "-", r->text);
    }
    st->printed++;
}

/* Prints one decoded record unless it is older than wanted or over the
 * limit; reports a gap before it. */
static void
ev_take(struct ev_reader *st, const struct ev_rec *r)
{
    if (r->seq < st->next || st->left == 0)
        return;                 /* repeated, or more than --limit asked for */
    if (r->seq > st->next && st->gaps)
        fprintf(st->c->json ? stderr : stdout,
                "(%" PRIu64 " record%s dropped before %s read)\n", r->seq - st->next,
                r->seq - st->next == 1 ? " was" : "s were",
                r->seq - st->next == 1 ? "it was" : "they were");
    ev_print(st, r);
    st->next = r->seq + 1;
    st->left--;
}

/* Decodes and prints the records of one LOG_READ answer; the number of
 * records it held, or -1 if it is malformed. */
static int
ev_decode(struct ev_reader *st, const uint8_t *buf, uint32_t len)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct ev_rec rec;
    int k = 0, n = 0, bad = 0;

    ppf_attr_reader_init(&r, buf, len);
    while (!bad && (k = ppf_attr_next(&r, &a)) > 0) {
        if (a.type == PPF_A_SEQ) {
            if (n++)
                ev_take(st, &rec);
            memset(&rec, 0, sizeof rec);
            bad = ppf_attr_get_u64(&a, &rec.seq) < 0 || rec.seq == 0;
            continue;
        }
        if (!n)
            return -1;          /* every record starts with its SEQ */
        switch (a.type) {
        case PPF_A_TIME_US: bad = ppf_attr_get_u64(&a, &rec.time_us) < 0; break;
        case PPF_A_LOG_KIND: bad = ppf_attr_get_u32(&a, &rec.kind) < 0; break;
        case PPF_A_IMAGE: bad = ppf_attr_get_str(&a, rec.image, sizeof rec.image) < 0; break;
        case PPF_A_TENANT: bad = ppf_attr_get_str(&a, rec.tenant, sizeof rec.tenant) < 0; break;
        case PPF_A_TEXT: bad = ppf_attr_get_str(&a, rec.text, sizeof rec.text) < 0; break;
        case PPF_A_OUTCOME:
            bad = ppf_attr_get_u32(&a, &rec.outcome) < 0;
            rec.have |= EV_OUTCOME;
            break;
        case PPF_A_WAIT_US:
            bad = ppf_attr_get_u64(&a, &rec.wait_us) < 0;
            rec.have |= EV_WAIT;
            break;
        case PPF_A_SAVED_US:
            bad = ppf_attr_get_u64(&a, &rec.saved_us) < 0;
            rec.have |= EV_SAVED;
            break;
        case PPF_A_BYTES:
            bad = ppf_attr_get_u64(&a, &rec.bytes) < 0;
            rec.have |= EV_BYTES;
            break;
        default:
            break;              /* newer attributes: skipped (§5.1) */
        }
    }
    if (bad || k < 0)
        return -1;
    if (n)
        ev_take(st, &rec);
    return n;
}

/* One LOG_READ from st->next; *newest = the peripheral's newest sequence
 * number, *got = records in the answer.  0 or 1 (reported). */
static int
ev_page(struct ev_reader *st, uint64_t *newest, int *got)
{
    struct ppf_cmd cmd = { .opcode = PPF_OP_LOG_READ, .arg = { st->next }, .out = st->out,
                           .out_cap = st->cap };

    if (ctl_exec(st->c, &cmd, "events") != 0)
        return 1;
    *newest = cmd.result;
    if ((*got = ev_decode(st, st->out, cmd.out_len)) < 0) {
        ctl_malformed("events", PPF_OP_LOG_READ);
        return 1;
    }
    return 0;
}

/* Prints every record from st->next up to the newest (or the limit).
 * 0 or 1 (reported). */
static int
ev_drain(struct ev_reader *st)
{
    uint64_t newest, before;
    int got, r;

    do {
        before = st->next;
        if ((r = ev_page(st, &newest, &got)) != 0)
            return r;
        st->gaps = 1;           /* from the second page on, a gap is a loss */
    } while (got > 0 && st->next != before && st->next <= newest && st->left > 0);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the events: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* --follow: new records every EV_POLL_MS until SIGINT or SIGTERM (blocked
 * here and taken synchronously, so a signal never interrupts a command
 * half way).  0, or 1 (reported). */
static int
ev_follow(struct ev_reader *st)
{
    const struct timespec tick = { 0, EV_POLL_MS * 1000000L };
    sigset_t stop;
    int r;

    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    for (;;) {
        if (sigtimedwait(&stop, NULL, &tick) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "ppfctl: events --follow: %s\n", strerror(errno));
            return 1;
        }
        if ((r = ev_drain(st)) != 0)
            return r;
    }
}

int
cmd_events(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "follow", no_argument, NULL, 'f' },
        { "since", required_argument, NULL, 's' },
        { "limit", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    CLEANUP_FREE uint8_t *out = NULL;
    struct ev_reader st = { .c = c, .next = 1, .left = UINT64_MAX };
    uint64_t since = 0, limit = 0, newest;
    int o, r, follow = 0, got;
    sigset_t stop;

    optind = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "fs:n:", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            follow = 1;
            break;
        case 's':
            if (ppf_parse_u64(optarg, 1, UINT64_MAX, &since) < 0)
                return usage_error("events --since '%s': expected a record's sequence number "
                                   "(1 or more; the SEQ column)", optarg);
            break;
        case 'n':
            if (ppf_parse_u64(optarg, 1, EV_LIMIT_MAX, &limit) < 0)
                return usage_error("events --limit '%s': expected a number of records, 1 to "
                                   "%u", optarg, EV_LIMIT_MAX);
            break;
        default:
            return usage_error("usage: events [--follow] [--json] [--since SEQ] [--limit N] "
                               "(unknown option '%s')", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("events: unexpected argument '%s'", argv[optind]);
    if (follow) {
        /* before anything else: a SIGINT now ends the command cleanly */
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, NULL);
    }
    if ((r = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return r;
    if (!(st.out = out = ctl_alloc_out(c, &st.cap)))
        return 1;
    if (limit)
        st.left = limit;
    if (since) {
        st.next = since;
        st.gaps = 1;            /* records from SEQ on were asked for */
    } else if (limit) {
        /* the newest `limit` records: ask where the log ends first */
        st.next = UINT64_MAX;
        if ((r = ev_page(&st, &newest, &got)) != 0)
            return r;
        st.next = newest >= limit ? newest - limit + 1 : 1;
    }
    if ((r = ev_drain(&st)) != 0)
        return r;
    if (!follow) {
        if (!st.printed && !c->json)
            printf("no records%s\n", since ? " from that sequence number" : " yet");
        return fflush(stdout) == 0 ? 0 : 1;
    }
    st.left = UINT64_MAX;       /* --limit bounds the backlog, not what follows */
    return ev_follow(&st);
}

/* ---- USAGE, for ppfctl stats ------------------------------------------- */

int
ctl_usage_get(struct ctl *c, struct ppf_prom_usage *u)
{
    char err[512];

    if (ppf_usage_fetch(c->dev, c->qp, c->timeout_ms, u, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: stats: %s\n", err);
        return 1;
    }
    return 0;
}

/* Mean wait of the deploys the device served ("-" if none). */
static void
usage_fmt_wait(const struct ppf_prom_usage_row *r, char *buf, size_t len)
{
    uint64_t served = r->deploys > r->fallbacks ? r->deploys - r->fallbacks : 0;

    if (served)
        buf_fmt_us(r->wait_us / served, buf, len);
    else
        snprintf(buf, len, "-");
}

static void
usage_print_table(const struct ppf_prom_usage *u, size_t from, size_t to, int images)
{
    int wi = 5, wt = 6;

    for (size_t i = from; i < to; i++) {
        int li = (int)strlen(u->row[i].image), lt = (int)strlen(u->row[i].tenant);

        wi = li > wi ? (li < 32 ? li : 32) : wi;
        wt = lt > wt ? (lt < 32 ? lt : 32) : wt;
    }
    printf("\n");
    if (images)
        printf("%-*s  ", wi, "IMAGE");
    printf("%-*s  %7s  %6s  %9s  %6s  %9s  %9s  %9s  %10s  %10s\n", wt, "TENANT", "DEPLOYS",
           "HIT%", "IN-FLIGHT", "MISSES", "FALLBACKS", "MEAN WAIT", "SAVED", "PREFETCHED",
           "WASTED");
    for (size_t i = from; i < to; i++) {
        const struct ppf_prom_usage_row *r = &u->row[i];
        char ratio[16] = "-", wait[32], saved[32], pre[32], wasted[32];

        if (r->deploys)
            snprintf(ratio, sizeof ratio, "%.1f", ppf_prom_usage_hit_ratio(r) * 100);
        usage_fmt_wait(r, wait, sizeof wait);
        buf_fmt_us(r->saved_us, saved, sizeof saved);
        buf_fmt_size(r->prefetch_bytes, pre, sizeof pre);
        buf_fmt_size(r->wasted_bytes, wasted, sizeof wasted);
        if (images)
            printf("%-*s  ", wi, r->image);
        printf("%-*s  %7" PRIu64 "  %6s  %9" PRIu64 "  %6" PRIu64 "  %9" PRIu64
               "  %9s  %9s  %10s  %10s\n", wt, r->tenant, r->deploys, ratio, r->inflight,
               r->misses, r->fallbacks, wait, saved, pre, wasted);
    }
}

void
ctl_usage_print_text(const struct ppf_prom_usage *u)
{
    if (!u->have)
        return;
    if (u->n == 0) {
        printf("usage       nothing deployed or prefetched yet\n");
        return;
    }
    usage_print_table(u, 0, u->ntenants, 0);
    if (u->ntenants < u->n)
        usage_print_table(u, u->ntenants, u->n, 1);
}

static void
usage_json_rows(struct ppf_json *j, const struct ppf_prom_usage *u, size_t from, size_t to,
                const char *key)
{
    ppf_json_begin_array(j, key);
    for (size_t i = from; i < to; i++) {
        const struct ppf_prom_usage_row *r = &u->row[i];
        uint64_t served = r->deploys > r->fallbacks ? r->deploys - r->fallbacks : 0;

        ppf_json_begin_object(j, NULL);
        if (r->image[0])
            ppf_json_str(j, "image", r->image);
        ppf_json_str(j, "tenant", r->tenant);
        ppf_json_u64(j, "deploys", r->deploys);
        ppf_json_u64(j, "hits", r->hits);
        ppf_json_u64(j, "in_flight", r->inflight);
        ppf_json_u64(j, "misses", r->misses);
        ppf_json_u64(j, "fallbacks", r->fallbacks);
        ppf_json_double(j, "hit_ratio", ppf_prom_usage_hit_ratio(r));
        ppf_json_double(j, "mean_wait_ms", served ? (double)r->wait_us / 1e3 / served : 0);
        ppf_json_double(j, "saved_ms", (double)r->saved_us / 1e3);
        ppf_json_u64(j, "prefetched_bytes", r->prefetch_bytes);
        ppf_json_u64(j, "wasted_bytes", r->wasted_bytes);
        ppf_json_end_object(j);
    }
    ppf_json_end_array(j);
}

void
ctl_usage_print_json(struct ppf_json *j, const struct ppf_prom_usage *u)
{
    if (!u->have)
        return;
    usage_json_rows(j, u, 0, u->ntenants, "tenants");
    usage_json_rows(j, u, u->ntenants, u->n, "images");
}

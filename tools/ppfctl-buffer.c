/* ppfctl prefetch|deploy|release|evict|buffer|stats: the administrator's
 * side of the peripheral's prefetch buffer (issue 5, protocol §5.6).  Each
 * command builds a TLV payload, runs one command (BUFFER_LIST and
 * prefetch --wait run several) and prints the answer as text or, with
 * --json, as one JSON object.  Everything the peripheral returns is
 * untrusted: attributes are read with the checking reader, strings are
 * copied bounded, and a refusal's reason is printed with control bytes
 * replaced.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/prom.h"
#include "ppf/ppf.h"
#include "policy/policy.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

/* §5.6 values of PRIORITY and MODE (protocol.h names them in comments). */
enum { BUF_PRIO_LOW = 0, BUF_PRIO_NORMAL = 1, BUF_PRIO_HIGH = 2 };
enum { BUF_MODE_OVERLAY = 0, BUF_MODE_COPY = 1 };

#define BUF_NAME_MAX        255         /* image and tenant names (§5.6) */
#define BUF_UUID_LEN        36
#define BUF_IN_MAX          8192        /* request payloads; clamped to the slot */
#define BUF_DEPLOY_MIN_MS   600000      /* a miss fetches the whole image */
#define BUF_POLL_NS         200000000L  /* prefetch --wait polls every 200 ms */
#define BUF_LIST_MAX        1000000     /* entries ppfctl buffer accepts */
#define BUF_REASON_MAX      512

/* ---- checks on what the user typed ------------------------------------ */

/* An image or tenant name: 1..255 bytes of [A-Za-z0-9._-], not starting
 * with '.' (§5.6); the peripheral checks again. */
static int
buf_check_image(const char *cmd, const char *image)
{
    if (!ppf_name_ok(image))
        return usage_error("%s: '%s' is not an image name (1 to %d of A-Z a-z 0-9 . _ -, "
                           "not starting with '.'; a name, never a path)", cmd, image,
                           BUF_NAME_MAX);
    return 0;
}

static int
buf_check_tenant(const char *cmd, const char *tenant)
{
    if (tenant && !ppf_name_ok(tenant))
        return usage_error("%s --tenant '%s': not a tenant name (1 to %d of A-Z a-z 0-9 . _ -, "
                           "not starting with '.')", cmd, tenant, BUF_NAME_MAX);
    return 0;
}

int
ctl_one_image(int argc, char **argv, const char *tenant, const char **image)
{
    int rc;

    if (optind >= argc)
        return usage_error("%s needs an IMAGE", argv[0]);
    if (optind + 1 < argc)
        return usage_error("%s: unexpected argument '%s'", argv[0], argv[optind + 1]);
    *image = argv[optind];
    if ((rc = buf_check_image(argv[0], *image)) != 0 ||
        (rc = buf_check_tenant(argv[0], tenant)) != 0)
        return rc;
    return 0;
}

static int buf_exec(struct ctl *c, struct ppf_cmd *cmd, const char *obj, int timeout_ms);

int
ctl_run(struct ctl *c, enum ppf_qp_kind kind, struct ppf_cmd *cmd,
        const struct ppf_attr_writer *w, const char *obj, uint8_t **out)
{
    uint32_t cap;
    int rc;

    *out = NULL;
    if ((rc = ctl_connect_kind(c, kind)) != 0)
        return rc;
    if (!(*out = ctl_alloc_out(c, &cap)))
        return 1;
    cmd->out = *out;
    cmd->out_cap = cap;
    if ((rc = ctl_set_payload(c, cmd, w, obj)) != 0)
        return rc;
    return buf_exec(c, cmd, obj, c->timeout_ms);
}

/* ---- formatting --------------------------------------------------------- */

/* "1.5 GiB"; bytes below 1 KiB exactly ("512 B"). */
void
buf_fmt_size(uint64_t v, char *buf, size_t len)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double d = (double)v;
    int i = 0;

    if (v < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)v);
        return;
    }
    while (i < 6 && d >= 1024 * 0.99995) {  /* round 1023.96 KiB up to 1.0 MiB */
        d /= 1024;
        i++;
    }
    snprintf(buf, len, "%.1f %s", d, unit[i]);
}

void
buf_fmt_us(uint64_t us, char *buf, size_t len)
{
    if (us < 1000)
        snprintf(buf, len, "%llu us", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(buf, len, "%.1f ms", (double)us / 1e3);
    else
        snprintf(buf, len, "%.2f s", (double)us / 1e6);
}

const char *
buf_outcome_name(uint32_t o)
{
    switch (o) {
    case PPF_OUTCOME_HIT: return "hit";
    case PPF_OUTCOME_INFLIGHT: return "in-flight";
    case PPF_OUTCOME_MISS: return "miss";
    case PPF_OUTCOME_FALLBACK: return "fallback";
    default: return "unknown";
    }
}

static const char *
buf_state_name(uint32_t s)
{
    switch (s) {
    case PPF_ENTRY_INFLIGHT: return "in-flight";
    case PPF_ENTRY_READY: return "ready";
    case PPF_ENTRY_FAILED: return "failed";
    case PPF_ENTRY_STALE: return "stale";
    default: return "unknown";
    }
}

/* Percentage of an entry prepared, 0..100 whatever the device says. */
static unsigned
buf_percent(uint64_t done, uint64_t size)
{
    if (size == 0)
        return 0;
    if (done >= size)
        return 100;
    return (unsigned)((long double)done * 100 / size);
}

/* ---- running commands --------------------------------------------------- */

/* Runs cmd (payload and out buffer already set) and reports a transport
 * failure or a refusal, naming obj (an image, a domain, "buffer").
 * Returns 0 or 1 (reported). */
static int
buf_exec(struct ctl *c, struct ppf_cmd *cmd, const char *obj, int timeout_ms)
{
    char why[BUF_REASON_MAX];

    if (ppf_exec(c->qp, cmd, timeout_ms) < 0) {
        fprintf(stderr, "ppfctl: %s: %s: %s\n", obj, ppf_opcode_name(cmd->opcode), ppf_error());
        return 1;
    }
    if (cmd->status == PPF_SC_SUCCESS)
        return 0;
    ppf_cmd_reason(cmd, why, sizeof why);
    if (why[0])
        fprintf(stderr, "ppfctl: %s: %s (%s)\n", obj, why, ppf_status_text(cmd->status));
    else
        fprintf(stderr, "ppfctl: %s: %s refused: %s\n", obj, ppf_opcode_name(cmd->opcode),
                ppf_status_text(cmd->status));
    return 1;
}

int
ctl_exec(struct ctl *c, struct ppf_cmd *cmd, const char *obj)
{
    return buf_exec(c, cmd, obj, c->timeout_ms);
}

/* A buffer for answers, one data slot long (the most a device can write). */
uint8_t *
ctl_alloc_out(struct ctl *c, uint32_t *cap)
{
    struct ppf_dev_info info;
    uint8_t *p;

    ppf_dev_get_info(c->dev, &info);
    *cap = info.slot_size;
    p = malloc(*cap ? *cap : 1);
    if (!p)
        fprintf(stderr, "ppfctl: out of memory for a %u-byte answer\n", *cap);
    return p;
}

/* Sets the payload of cmd from the writer; reports one that cannot be
 * sent (overflowed our buffer or the device's slot).  0 or 1. */
int
ctl_set_payload(struct ctl *c, struct ppf_cmd *cmd, const struct ppf_attr_writer *w,
                const char *obj)
{
    struct ppf_dev_info info;

    ppf_dev_get_info(c->dev, &info);
    if (w->overflow || w->len > info.slot_size) {
        fprintf(stderr, "ppfctl: %s: the %s request does not fit the peripheral's %u-byte "
                "command slot; use a shorter path\n", obj, ppf_opcode_name(cmd->opcode),
                info.slot_size);
        return 1;
    }
    cmd->in = w->buf;
    cmd->in_len = (uint32_t)w->len;
    return 0;
}

void
ctl_malformed(const char *obj, unsigned op)
{
    fprintf(stderr, "ppfctl: %s: the peripheral's %s answer is malformed; "
            "restart ppf-peripheral or update it to match ppfctl\n", obj, ppf_opcode_name(op));
}

/* ---- BUFFER_LIST -------------------------------------------------------- */

#define BE_SIZE  (1u << 0)
#define BE_STATE (1u << 1)
#define BE_DONE  (1u << 2)

struct buf_entry {
    char image[BUF_NAME_MAX + 1];
    char tenant[BUF_NAME_MAX + 1];      /* "" when the device sent none */
    uint64_t size, hits, done;
    uint32_t state, pins, pub;
    char digest[2 * 32 + 1];            /* the version it was prepared from; "" if none */
    unsigned have;                      /* BE_* */
};

struct buf_list {
    struct buf_entry *v;
    size_t n, cap;
    uint32_t total;                     /* the device's count at the last call */
};

static void
buf_list_free(struct buf_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

#define CLEANUP_BUF_LIST __attribute__((cleanup(buf_list_free)))

/* Appends the groups of one BUFFER_LIST answer to l.  0, -1 malformed,
 * -2 out of memory or too many entries. */
static int
buf_list_decode(const uint8_t *buf, uint32_t len, struct buf_list *l)
{
    static char scratch[PPF_ATTR_MAX_STR + 1];
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct buf_entry *e = NULL;
    int k = 0, bad = 0;

    ppf_attr_reader_init(&r, buf, len);
    while (!bad && (k = ppf_attr_next(&r, &a)) > 0) {
        if (a.type == PPF_A_IMAGE) {
            if (l->n >= BUF_LIST_MAX)
                return -2;
            if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 64;
                struct buf_entry *v;

                if (!(v = realloc(l->v, ncap * sizeof *v)))
                    return -2;
                l->v = v;
                l->cap = ncap;
            }
            e = &l->v[l->n++];
            memset(e, 0, sizeof *e);
            bad = ppf_attr_get_str(&a, e->image, sizeof e->image) < 0 || !e->image[0];
            continue;
        }
        if (!e)
            return -1;                  /* every group starts with IMAGE */
        switch (a.type) {
        case PPF_A_TENANT: bad = ppf_attr_get_str(&a, e->tenant, sizeof e->tenant); break;
        case PPF_A_PUBLIC: bad = ppf_attr_get_u32(&a, &e->pub); break;
        case PPF_A_SIZE:
            bad = ppf_attr_get_u64(&a, &e->size);
            e->have |= BE_SIZE;
            break;
        case PPF_A_STATE:
            bad = ppf_attr_get_u32(&a, &e->state);
            e->have |= BE_STATE;
            break;
        case PPF_A_PINS: bad = ppf_attr_get_u32(&a, &e->pins); break;
        case PPF_A_HITS: bad = ppf_attr_get_u64(&a, &e->hits); break;
        case PPF_A_DONE:
            bad = ppf_attr_get_u64(&a, &e->done);
            e->have |= BE_DONE;
            break;
        case PPF_A_PATH: bad = ppf_attr_get_str(&a, scratch, sizeof scratch); break;
        case PPF_A_DIGEST: bad = ppf_attr_get_str(&a, e->digest, sizeof e->digest); break;
        default: break;                 /* unknown: skip (§5.1) */
        }
    }
    return bad || k < 0 ? -1 : 0;
}

/* Reads every entry of the buffer into l, BUFFER_LIST after BUFFER_LIST.
 * The list is not a snapshot: entries that come or go between calls may
 * be missed or seen twice.  0 or 1 (reported). */
static int
buf_list_fetch(struct ctl *c, uint8_t *out, uint32_t cap, const char *obj, struct buf_list *l)
{
    uint64_t idx = 0;

    l->n = 0;
    l->total = 0;
    for (;;) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_BUFFER_LIST, .arg = { idx },
                               .out = out, .out_cap = cap };
        size_t before = l->n;
        int r;

        if (buf_exec(c, &cmd, obj, c->timeout_ms) != 0)
            return 1;
        if ((r = buf_list_decode(out, cmd.out_len, l)) < 0) {
            if (r == -1)
                ctl_malformed(obj, PPF_OP_BUFFER_LIST);
            else
                fprintf(stderr, "ppfctl: %s: cannot hold more than %zu buffer entries "
                        "(out of memory or over ppfctl's limit of %d)\n", obj, l->n,
                        BUF_LIST_MAX);
            return 1;
        }
        l->total = cmd.result;
        idx += l->n - before;
        if (idx >= cmd.result)
            return 0;
        if (l->n == before) {
            fprintf(stderr, "ppfctl: %s: the peripheral listed no entries from index %llu "
                    "although it holds %u; restart ppf-peripheral\n", obj,
                    (unsigned long long)idx, cmd.result);
            return 1;
        }
    }
}

static void
buf_state_text(const struct buf_entry *e, char *buf, size_t len)
{
    if (!(e->have & BE_STATE))
        snprintf(buf, len, "-");
    else if (e->state == PPF_ENTRY_INFLIGHT && (e->have & BE_SIZE) && e->size)
        snprintf(buf, len, "in-flight %u%%", buf_percent(e->done, e->size));
    else if (e->state >= PPF_ENTRY_INFLIGHT && e->state <= PPF_ENTRY_STALE)
        snprintf(buf, len, "%s", buf_state_name(e->state));
    else
        snprintf(buf, len, "state-%u", e->state);
}

int
cmd_buffer(struct ctl *c, int argc, char **argv)
{
    CLEANUP_BUF_LIST struct buf_list l = { 0 };
    CLEANUP_FREE uint8_t *out = NULL;
    uint32_t cap;
    int r;

    if (argc > 1)
        return usage_error("buffer takes no arguments, got '%s'", argv[1]);
    if ((r = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return r;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    if ((r = buf_list_fetch(c, out, cap, "buffer", &l)) != 0)
        return r;

    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_begin_array(&j, "entries");
        for (size_t i = 0; i < l.n; i++) {
            const struct buf_entry *e = &l.v[i];

            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "image", e->image);
            ppf_json_str(&j, "tenant", e->tenant);
            ppf_json_bool(&j, "public", e->pub == 1);
            ppf_json_u64(&j, "size", e->size);
            ppf_json_str(&j, "state", buf_state_name(e->state));
            ppf_json_u64(&j, "pins", e->pins);
            ppf_json_u64(&j, "hits", e->hits);
            ppf_json_u64(&j, "done", e->done);
            if (e->digest[0])
                ppf_json_str(&j, "digest", e->digest);
            ppf_json_end_object(&j);
        }
        ppf_json_end_array(&j);
        ppf_json_u64(&j, "total", l.total);
        ppf_json_end_object(&j);
    } else if (l.n == 0) {
        printf("the prefetch buffer is empty\n");
    } else {
        int wi = (int)strlen("IMAGE"), wt = (int)strlen("TENANT");

        for (size_t i = 0; i < l.n; i++) {
            int n = (int)strlen(l.v[i].image), m = (int)strlen(l.v[i].tenant);

            wi = n > wi ? n : wi;
            wt = m > wt ? m : wt;
        }
        printf("%-*s  %-*s  %10s  %-14s  %5s  %8s\n", wi, "IMAGE", wt, "TENANT", "SIZE",
               "STATE", "PINS", "HITS");
        for (size_t i = 0; i < l.n; i++) {
            const struct buf_entry *e = &l.v[i];
            char size[32], state[32];

            if (e->have & BE_SIZE)
                buf_fmt_size(e->size, size, sizeof size);
            else
                snprintf(size, sizeof size, "-");
            buf_state_text(e, state, sizeof state);
            printf("%-*s  %-*s  %10s  %-14s  %5u  %8llu\n", wi, e->image, wt,
                   e->tenant[0] ? e->tenant : "-", size, state, e->pins,
                   (unsigned long long)e->hits);
        }
        if (l.total != l.n)
            printf("(%zu entries listed; the peripheral now holds %u)\n", l.n, l.total);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the buffer list: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- PREFETCH ----------------------------------------------------------- */

/* The entry prefetch --wait follows: same image, and the tenant's own or
 * the public one (PUBLIC=1, TENANT "public"). */
static const struct buf_entry *
buf_find(const struct buf_list *l, const char *image, const char *tenant)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].image, image) == 0 &&
            (l->v[i].pub == 1 || strcmp(l->v[i].tenant, tenant) == 0))
            return &l->v[i];
    return NULL;
}

static void
buf_progress(const char *image, uint64_t done, uint64_t size)
{
    char d[32], s[32];

    buf_fmt_size(done, d, sizeof d);
    if (size) {
        buf_fmt_size(size, s, sizeof s);
        fprintf(stderr, "\r%s: %u%% (%s of %s)\033[K", image, buf_percent(done, size), d, s);
    } else {
        fprintf(stderr, "\r%s: %s\033[K", image, d);
    }
    fflush(stderr);
}

/* prefetch --wait: polls BUFFER_LIST until the entry is ready, failed or
 * gone.  *state gets PPF_ENTRY_* or 0 (gone).  0 or 1 (reported). */
static int
buf_wait(struct ctl *c, const char *image, const char *tenant, uint32_t *state,
         uint64_t *size)
{
    CLEANUP_BUF_LIST struct buf_list l = { 0 };
    CLEANUP_FREE uint8_t *out = NULL;
    const struct timespec tick = { 0, BUF_POLL_NS };
    int tty = isatty(STDERR_FILENO), shown = 0;
    uint32_t cap;

    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    for (;;) {
        const struct buf_entry *e;

        if (buf_list_fetch(c, out, cap, image, &l) != 0) {
            if (shown)
                fputc('\n', stderr);
            return 1;
        }
        e = buf_find(&l, image, tenant);
        if (e && (!(e->have & BE_STATE) || e->state < PPF_ENTRY_INFLIGHT ||
                  e->state > PPF_ENTRY_FAILED)) {
            if (shown)
                fputc('\n', stderr);
            ctl_malformed(image, PPF_OP_BUFFER_LIST);
            return 1;
        }
        *state = e ? e->state : 0;
        if (e && (e->have & BE_SIZE) && e->size)
            *size = e->size;
        if (!e || *state != PPF_ENTRY_INFLIGHT) {
            if (tty && shown && e && *state == PPF_ENTRY_READY)
                buf_progress(image, *size, *size);
            if (shown)
                fputc('\n', stderr);
            return 0;
        }
        if (tty) {
            buf_progress(image, e->done, *size);
            shown = 1;
        }
        nanosleep(&tick, NULL);
    }
}

int
cmd_prefetch(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "tenant", required_argument, NULL, 'T' },
        { "priority", required_argument, NULL, 'p' },
        { "wait", no_argument, NULL, 'w' },
        { NULL, 0, NULL, 0 },
    };
    const char *image, *tenant = NULL, *prio_name = NULL;
    uint8_t in[BUF_IN_MAX];
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_attr_writer w;
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct ppf_cmd cmd = { .opcode = PPF_OP_PREFETCH };
    uint32_t prio = BUF_PRIO_NORMAL, state, cap;
    uint64_t size = 0;
    int o, k = 0, rc, wait = 0, bad = 0;

    /* 0, not 1: glibc then re-initialises and permutes again, so options
     * may follow IMAGE (main's "+" would otherwise stick) */
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'T': tenant = optarg; break;
        case 'w': wait = 1; break;
        case 'p':
            prio_name = optarg;
            if (strcmp(optarg, "low") == 0)
                prio = BUF_PRIO_LOW;
            else if (strcmp(optarg, "normal") == 0)
                prio = BUF_PRIO_NORMAL;
            else if (strcmp(optarg, "high") == 0)
                prio = BUF_PRIO_HIGH;
            else
                return usage_error("prefetch --priority '%s': expected low, normal or high",
                                   optarg);
            break;
        default:
            return usage_error("%s", "usage: prefetch IMAGE [--tenant T] "
                               "[--priority low|normal|high] [--wait]");
        }
    }
    if (optind >= argc)
        return usage_error("%s", "prefetch needs an IMAGE");
    if (optind + 1 < argc)
        return usage_error("prefetch: unexpected argument '%s'", argv[optind + 1]);
    image = argv[optind];
    if ((rc = buf_check_image("prefetch", image)) != 0 ||
        (rc = buf_check_tenant("prefetch", tenant)) != 0)
        return rc;

    if ((rc = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return rc;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    if (tenant)
        ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if (prio_name)
        ppf_attr_put_u32(&w, PPF_A_PRIORITY, prio);

    cmd.out = out;
    cmd.out_cap = cap;
    if ((rc = ctl_set_payload(c, &cmd, &w, image)) != 0 ||
        (rc = buf_exec(c, &cmd, image, c->timeout_ms)) != 0)
        return rc;
    state = cmd.result;
    ppf_attr_reader_init(&r, out, cmd.out_len);
    while (!bad && (k = ppf_attr_next(&r, &a)) > 0) {
        switch (a.type) {
        case PPF_A_STATE: bad = ppf_attr_get_u32(&a, &state); break;
        case PPF_A_SIZE: bad = ppf_attr_get_u64(&a, &size); break;
        default: break;     /* IMAGE echoes ours; unknown: skip */
        }
    }
    if (bad || k < 0 || state < PPF_ENTRY_INFLIGHT || state > PPF_ENTRY_FAILED) {
        ctl_malformed(image, PPF_OP_PREFETCH);
        return 1;
    }

    if (wait && state == PPF_ENTRY_INFLIGHT &&
        buf_wait(c, image, tenant ? tenant : "default", &state, &size) != 0)
        return 1;

    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", image);
        ppf_json_str(&j, "tenant", tenant ? tenant : "default");
        ppf_json_str(&j, "state", state ? buf_state_name(state) : "gone");
        ppf_json_u64(&j, "size", size);
        ppf_json_bool(&j, "waited", wait);
        ppf_json_end_object(&j);
    } else if (state == PPF_ENTRY_READY || state == PPF_ENTRY_INFLIGHT) {
        char s[32] = "size not known yet";

        if (size)
            buf_fmt_size(size, s, sizeof s);
        printf("%s: %s (%s)\n", image,
               state == PPF_ENTRY_READY ? "ready in the prefetch buffer" : "prefetch queued", s);
    }
    if (state == PPF_ENTRY_FAILED)
        fprintf(stderr, "ppfctl: %s: the prefetch failed; see the peripheral's log\n", image);
    else if (state == 0)
        fprintf(stderr, "ppfctl: %s: left the prefetch buffer before it was ready "
                "(evicted, or the peripheral restarted); prefetch it again\n", image);
    return state == PPF_ENTRY_READY || state == PPF_ENTRY_INFLIGHT ? 0 : 1;
}

/* ---- DEPLOY ------------------------------------------------------------- */

/* The target as the device wants it: absolute (cwd prefixed, nothing
 * normalised; the device checks it).  Returns a malloc'd string or NULL
 * (reported). */
static char *
buf_abs_target(const char *dest)
{
    CLEANUP_FREE char *cwd = NULL;
    char *t;

    if (dest[0] == '/')
        t = strdup(dest);
    else if (!(cwd = getcwd(NULL, 0))) {
        fprintf(stderr, "ppfctl: %s: cannot make the path absolute: getcwd: %s; "
                "give an absolute --dest\n", dest, strerror(errno));
        return NULL;
    } else if (asprintf(&t, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", dest) < 0)
        t = NULL;
    if (!t)
        fprintf(stderr, "ppfctl: %s: out of memory\n", dest);
    return t;
}

int
cmd_deploy(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "dest", required_argument, NULL, 'D' },
        { "tenant", required_argument, NULL, 'T' },
        { "mode", required_argument, NULL, 'm' },
        { "ephemeral", no_argument, NULL, 'e' },
        { "domain", required_argument, NULL, 'u' },
        { NULL, 0, NULL, 0 },
    };
    const char *image, *tenant = NULL, *dest = NULL, *domain = NULL, *mode_name = NULL;
    CLEANUP_FREE char *target = NULL;
    CLEANUP_FREE uint8_t *out = NULL;
    static char base[PPF_ATTR_MAX_STR + 1];
    uint8_t in[BUF_IN_MAX];
    struct ppf_attr_writer w;
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct ppf_cmd cmd = { .opcode = PPF_OP_DEPLOY };
    uint32_t mode = BUF_MODE_OVERLAY, outcome, cap;
    uint64_t wait_us = 0, size = 0;
    int o, k = 0, rc, ephemeral = 0, bad = 0;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'D': dest = optarg; break;
        case 'T': tenant = optarg; break;
        case 'e': ephemeral = 1; break;
        case 'u': domain = optarg; break;
        case 'm':
            mode_name = optarg;
            if (strcmp(optarg, "overlay") == 0)
                mode = BUF_MODE_OVERLAY;
            else if (strcmp(optarg, "copy") == 0)
                mode = BUF_MODE_COPY;
            else
                return usage_error("deploy --mode '%s': expected overlay or copy", optarg);
            break;
        default:
            return usage_error("%s", "usage: deploy IMAGE --dest PATH [--tenant T] "
                               "[--mode overlay|copy] [--ephemeral] [--domain UUID]");
        }
    }
    if (optind >= argc)
        return usage_error("%s", "deploy needs an IMAGE");
    if (optind + 1 < argc)
        return usage_error("deploy: unexpected argument '%s'", argv[optind + 1]);
    image = argv[optind];
    if ((rc = buf_check_image("deploy", image)) != 0 ||
        (rc = buf_check_tenant("deploy", tenant)) != 0)
        return rc;
    if (!dest)
        return usage_error("deploy %s: --dest PATH is required (the disk to create)", image);
    if (!dest[0] || ppf_has_control(dest))
        return usage_error("deploy --dest: '%s' is not a usable path (empty or control "
                           "characters)", dest);
    if (domain && !ppf_uuid_ok(domain))
        return usage_error("deploy --domain '%s': expected a domain UUID "
                           "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", domain);
    if (!(target = buf_abs_target(dest)))
        return 1;
    if (strlen(target) > PPF_ATTR_MAX_STR) {
        fprintf(stderr, "ppfctl: %s: the target path is longer than %d bytes\n", target,
                PPF_ATTR_MAX_STR);
        return 1;
    }

    if ((rc = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return rc;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    if (tenant)
        ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if (domain)
        ppf_attr_put_str(&w, PPF_A_DOMAIN, domain);
    ppf_attr_put_str(&w, PPF_A_TARGET, target);
    if (mode_name)
        ppf_attr_put_u32(&w, PPF_A_MODE, mode);
    if (ephemeral)
        ppf_attr_put_u32(&w, PPF_A_EPHEMERAL, 1);

    cmd.out = out;
    cmd.out_cap = cap;
    if ((rc = ctl_set_payload(c, &cmd, &w, image)) != 0 ||
        (rc = buf_exec(c, &cmd, image,
                       c->timeout_ms > BUF_DEPLOY_MIN_MS ? c->timeout_ms : BUF_DEPLOY_MIN_MS)))
        return rc;
    outcome = cmd.result;
    base[0] = '\0';
    ppf_attr_reader_init(&r, out, cmd.out_len);
    while (!bad && (k = ppf_attr_next(&r, &a)) > 0) {
        switch (a.type) {
        case PPF_A_OUTCOME: bad = ppf_attr_get_u32(&a, &outcome); break;
        case PPF_A_WAIT_US: bad = ppf_attr_get_u64(&a, &wait_us); break;
        case PPF_A_PATH: bad = ppf_attr_get_str(&a, base, sizeof base); break;
        case PPF_A_SIZE: bad = ppf_attr_get_u64(&a, &size); break;
        default: break;
        }
    }
    if (bad || k < 0 || outcome > PPF_OUTCOME_MISS) {
        /* the disk exists; only the report is unreadable */
        fprintf(stderr, "ppfctl: %s: deployed to %s, but the peripheral's DEPLOY answer is "
                "malformed; restart ppf-peripheral or update it to match ppfctl\n", image,
                target);
        return 1;
    }

    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", image);
        ppf_json_str(&j, "tenant", tenant ? tenant : "default");
        ppf_json_str(&j, "target", target);
        ppf_json_str(&j, "outcome", buf_outcome_name(outcome));
        ppf_json_u64(&j, "wait_us", wait_us);
        ppf_json_str(&j, "base", base);
        ppf_json_u64(&j, "size", size);
        ppf_json_str(&j, "mode", mode == BUF_MODE_COPY ? "copy" : "overlay");
        ppf_json_bool(&j, "ephemeral", ephemeral);
        ppf_json_end_object(&j);
    } else {
        char t[32];

        buf_fmt_us(wait_us, t, sizeof t);
        printf("deployed %s to %s: %s in %s (%s%s)\n", image, target,
               buf_outcome_name(outcome), t, mode == BUF_MODE_COPY ? "copy" : "overlay",
               ephemeral ? ", ephemeral" : "");
    }
    return 0;
}

/* ---- RELEASE and EVICT -------------------------------------------------- */

int
cmd_release(struct ctl *c, int argc, char **argv)
{
    const char *domain;
    uint8_t in[256];
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_RELEASE };
    uint32_t cap;
    int rc;

    if (argc != 2 || argv[1][0] == '-')
        return usage_error("%s", "usage: release DOMAIN-UUID");
    domain = argv[1];
    if (!ppf_uuid_ok(domain))
        return usage_error("release '%s': expected a domain UUID "
                           "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", domain);
    if ((rc = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return rc;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_DOMAIN, domain);

    cmd.out = out;
    cmd.out_cap = cap;
    if ((rc = ctl_set_payload(c, &cmd, &w, domain)) != 0 ||
        (rc = buf_exec(c, &cmd, domain, c->timeout_ms)) != 0)
        return rc;
    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "domain", domain);
        ppf_json_u64(&j, "released", cmd.result);
        ppf_json_end_object(&j);
    } else {
        printf("%s: released %u pin%s\n", domain, cmd.result, cmd.result == 1 ? "" : "s");
    }
    return 0;
}

int
cmd_evict(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "tenant", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *image, *tenant = NULL;
    uint8_t in[1024];
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_EVICT };
    int o, rc;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 'T')
            return usage_error("%s", "usage: evict IMAGE [--tenant T]");
        tenant = optarg;
    }
    if ((rc = ctl_one_image(argc, argv, tenant, &image)) != 0)
        return rc;
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    if (tenant)
        ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if ((rc = ctl_run(c, PPF_QP_ADMIN, &cmd, &w, image, &out)) != 0)
        return rc;
    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", image);
        if (tenant)
            ppf_json_str(&j, "tenant", tenant);
        ppf_json_u64(&j, "evicted", cmd.result);
        ppf_json_end_object(&j);
    } else {
        printf("%s: evicted %u entr%s\n", image, cmd.result, cmd.result == 1 ? "y" : "ies");
    }
    return 0;
}

/* ---- PIN ---------------------------------------------------------------- */

/* pin IMAGE [--tenant T] [--until WHEN] and unpin IMAGE [--tenant T]
 * (argv[0] says which). */
int
cmd_pin(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "tenant", required_argument, NULL, 'T' },
        { "until", required_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const bool pin = strcmp(argv[0], "pin") == 0;
    const char *image, *tenant = "default", *until = "never";
    char text[512] = "";
    uint8_t in[1024];
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = PPF_OP_PIN, .arg = { pin } };
    uint64_t until_s = 0;
    int o, rc;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'T')
            tenant = optarg;
        else if (o == 'U' && pin)
            until = optarg;
        else
            return usage_error("usage: %s", pin ? "pin IMAGE [--tenant T] [--until WHEN]" :
                               "unpin IMAGE [--tenant T]");
    }
    if ((rc = ctl_one_image(argc, argv, tenant, &image)) != 0)
        return rc;
    if (ppf_policy_until_time(until, &until_s) < 0)
        return usage_error("--until: '%s' is not a time; use never, YYYY-MM-DD (through "
                           "that day) or YYYY-MM-DDTHH:MM[:SS][Z]", until);
    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if (until_s)
        ppf_attr_put_u64(&w, PPF_A_UNTIL_US, until_s * 1000000);
    if ((rc = ctl_run(c, PPF_QP_ADMIN, &cmd, &w, image, &out)) != 0)
        return rc;
    if (pin) {
        struct ppf_attr_reader r;
        struct ppf_attr a;

        ppf_attr_reader_init(&r, out, cmd.out_len);
        while (ppf_attr_next(&r, &a) > 0)
            if (a.type == PPF_A_TEXT && ppf_attr_get_str(&a, text, sizeof text) < 0)
                text[0] = '\0';
    }
    if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", image);
        ppf_json_str(&j, "tenant", tenant);
        ppf_json_bool(&j, "pinned", pin);
        if (pin) {
            ppf_json_str(&j, "until", until);
            ppf_json_str(&j, "state", cmd.result ? buf_state_name(cmd.result) : "absent");
            if (text[0])
                ppf_json_str(&j, "reason", text);
        }
        ppf_json_end_object(&j);
    } else if (pin) {
        printf("%s: pinned for %s until %s; %s%s\n", image, tenant, until,
               cmd.result ? buf_state_name(cmd.result) : "not in the buffer yet: ",
               cmd.result ? "" : text[0] ? text : "it is retried");
    } else {
        printf("%s: unpinned for %s\n", image, tenant);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- GET_STATS ---------------------------------------------------------- */

static void
buf_print_stats_text(const struct ppf_prom_stats *s, int have_ratio, double ratio)
{
    const uint64_t *v = s->v;
    char a[32], b[32];

    if (!s->have[PPF_STAT_DEPLOYS]) {
        printf("buffer      no buffer counters: this peripheral predates the prefetch "
               "buffer; update ppf-peripheral\n");
    } else {
        printf("deploys     %llu (%llu hits, %llu in-flight hits, %llu misses), %llu failed\n",
               (unsigned long long)v[PPF_STAT_DEPLOYS], (unsigned long long)v[PPF_STAT_HITS],
               (unsigned long long)v[PPF_STAT_INFLIGHT_HITS],
               (unsigned long long)v[PPF_STAT_MISSES],
               (unsigned long long)v[PPF_STAT_DEPLOY_ERRORS]);
        if (have_ratio)
            printf("hit ratio   %.1f%%\n", ratio * 100);
        else
            printf("hit ratio   - (no deploys yet)\n");
        buf_fmt_size(v[PPF_STAT_PREFETCH_BYTES], a, sizeof a);
        buf_fmt_size(v[PPF_STAT_DEMAND_BYTES], b, sizeof b);
        printf("prepared    %llu prefetches (%s), %s on demand, %llu fetch errors\n",
               (unsigned long long)v[PPF_STAT_PREFETCHES], a, b,
               (unsigned long long)v[PPF_STAT_FETCH_ERRORS]);
        buf_fmt_size(v[PPF_STAT_WASTED_BYTES], a, sizeof a);
        printf("evictions   %llu (%s prefetched and never used)\n",
               (unsigned long long)v[PPF_STAT_EVICTIONS], a);
        buf_fmt_size(v[PPF_STAT_BUFFER_USED], a, sizeof a);
        buf_fmt_size(v[PPF_STAT_BUFFER_CAPACITY], b, sizeof b);
        printf("buffer      %s of %s used", a, b);
        if (v[PPF_STAT_BUFFER_CAPACITY])
            printf(" (%.1f%%)", (double)v[PPF_STAT_BUFFER_USED] * 100 /
                                (double)v[PPF_STAT_BUFFER_CAPACITY]);
        printf(", %llu entries\n", (unsigned long long)v[PPF_STAT_BUFFER_ENTRIES]);
    }
    if (s->have[PPF_STAT_LEARNED])
        printf("learning    %llu deploys learned (%llu host events), %llu predicted "
               "prefetches (%llu used, %llu wasted), %llu on domain definition, "
               "%llu table rows\n",
               (unsigned long long)v[PPF_STAT_LEARNED], (unsigned long long)v[PPF_STAT_EVENTS],
               (unsigned long long)v[PPF_STAT_PREDICTED],
               (unsigned long long)v[PPF_STAT_PREDICTED_HITS],
               (unsigned long long)v[PPF_STAT_PREDICTED_WASTED],
               (unsigned long long)v[PPF_STAT_HINTS], (unsigned long long)v[PPF_STAT_TABLE_ROWS]);
    printf("peripheral  up %llu s, %llu commands (%llu errors, %llu rejected), "
           "%llu clients\n", (unsigned long long)(v[PPF_STAT_UPTIME_MS] / 1000),
           (unsigned long long)v[PPF_STAT_COMMANDS], (unsigned long long)v[PPF_STAT_ERRORS],
           (unsigned long long)v[PPF_STAT_REJECTED], (unsigned long long)v[PPF_STAT_CLIENTS]);
}

int
cmd_stats(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "prometheus", no_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    CLEANUP_FREE uint8_t *out = NULL;
    struct ppf_prom_stats s;
    struct ppf_prom_usage u;
    struct ppf_cmd cmd = { .opcode = PPF_OP_GET_STATS };
    uint32_t cap;
    double ratio = 0;
    int o, rc, prom = 0, have_ratio;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 'P')
            return usage_error("%s", "usage: stats [--prometheus]");
        prom = 1;
    }
    if (optind < argc)
        return usage_error("stats: unexpected argument '%s'", argv[optind]);
    if (prom && c->json)
        return usage_error("%s", "stats: --json and --prometheus exclude each other");
    if ((rc = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return rc;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;

    cmd.out = out;
    cmd.out_cap = cap;
    if ((rc = buf_exec(c, &cmd, "stats", c->timeout_ms)) != 0)
        return rc;
    if (ppf_prom_stats_parse(&s, out, cmd.out_len) < 0) {
        ctl_malformed("stats", PPF_OP_GET_STATS);
        return 1;
    }
    have_ratio = ppf_prom_hit_ratio(&s, &ratio);
    if ((rc = ctl_usage_get(c, &u)) != 0)
        return rc;

    if (prom) {
        ppf_prom_write(stdout, &s);     /* a write error is caught below */
        ppf_prom_usage_write(stdout, &u);
    } else if (c->json) {
        struct ppf_json j;

        ppf_json_init(&j, stdout);
        ppf_json_begin_object(&j, NULL);
        for (unsigned id = 1; id < PPF_PROM_NSTATS; id++)
            if (s.have[id] && ppf_stat_name(id))
                ppf_json_u64(&j, ppf_stat_name(id), s.v[id]);
        ppf_json_double(&j, "hit_ratio", ratio);
        ctl_usage_print_json(&j, &u);
        ppf_json_end_object(&j);
    } else {
        buf_print_stats_text(&s, have_ratio, ratio);
        ctl_usage_print_text(&u);
    }
    ppf_prom_usage_free(&u);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ppfctl: writing the counters: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ppfctl federation status: the peripheral's federation with its peers
 * (FED_STATUS, schemas/device-protocol.md §5.8): state, the summary we
 * send, and per peer the last exchange, counters and the last error.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

#define FED_PEERS_MAX 1024
#define FED_STR       512

struct fst_peer {
    char name[FED_STR];
    uint32_t direction;
    uint64_t last_us, ok, rejected, failures, merged, error_us;
    char error[FED_STR];
};

struct fst {
    uint32_t enabled;
    char listen[FED_STR], state[FED_STR], refused_error[FED_STR];
    uint64_t exported, exported_bytes, refused;
    struct fst_peer *peer;
    size_t npeers;
};

static int
fst_decode(const uint8_t *buf, uint32_t len, struct fst *st)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    struct fst_peer *p = NULL;
    int k, bad = 0;

    ppf_attr_reader_init(&r, buf, len);
    while ((k = ppf_attr_next(&r, &a)) > 0 && !bad) {
        switch (a.type) {
        case PPF_A_FED_ENABLED: bad = ppf_attr_get_u32(&a, &st->enabled) < 0; break;
        case PPF_A_FED_LISTEN: bad = ppf_attr_get_str(&a, st->listen, FED_STR) < 0; break;
        case PPF_A_FED_STATE: bad = ppf_attr_get_str(&a, st->state, FED_STR) < 0; break;
        case PPF_A_FED_EXPORTED: bad = ppf_attr_get_u64(&a, &st->exported) < 0; break;
        case PPF_A_FED_EXPORTED_BYTES:
            bad = ppf_attr_get_u64(&a, &st->exported_bytes) < 0;
            break;
        case PPF_A_FED_REFUSED: bad = ppf_attr_get_u64(&a, &st->refused) < 0; break;
        case PPF_A_FED_REFUSED_ERROR:
            bad = ppf_attr_get_str(&a, st->refused_error, FED_STR) < 0;
            break;
        case PPF_A_FED_PEER: {
            struct fst_peer *v;

            if (st->npeers == FED_PEERS_MAX
                || !(v = realloc(st->peer, (st->npeers + 1) * sizeof *v)))
                return -1;
            st->peer = v;
            p = &v[st->npeers++];
            memset(p, 0, sizeof *p);
            bad = ppf_attr_get_str(&a, p->name, FED_STR) < 0;
            break;
        }
        case PPF_A_FED_DIRECTION: bad = !p || ppf_attr_get_u32(&a, &p->direction) < 0; break;
        case PPF_A_FED_LAST_US: bad = !p || ppf_attr_get_u64(&a, &p->last_us) < 0; break;
        case PPF_A_FED_OK: bad = !p || ppf_attr_get_u64(&a, &p->ok) < 0; break;
        case PPF_A_FED_REJECTED: bad = !p || ppf_attr_get_u64(&a, &p->rejected) < 0; break;
        case PPF_A_FED_FAILURES: bad = !p || ppf_attr_get_u64(&a, &p->failures) < 0; break;
        case PPF_A_FED_MERGED: bad = !p || ppf_attr_get_u64(&a, &p->merged) < 0; break;
        case PPF_A_FED_ERROR: bad = !p || ppf_attr_get_str(&a, p->error, FED_STR) < 0; break;
        case PPF_A_FED_ERROR_US: bad = !p || ppf_attr_get_u64(&a, &p->error_us) < 0; break;
        default:
            break;              /* newer attributes: skipped (§5.1) */
        }
    }
    return k < 0 || bad ? -1 : 0;
}

static void
fst_age(uint64_t t_us, char *buf, size_t len)
{
    double age = (double)time(NULL) - (double)t_us / 1e6;

    if (!t_us)
        snprintf(buf, len, "never");
    else if (age < 120)
        snprintf(buf, len, "%.0fs ago", age < 0 ? 0 : age);
    else if (age < 7200)
        snprintf(buf, len, "%.0fm ago", age / 60);
    else
        snprintf(buf, len, "%.0fh ago", age / 3600);
}

static void
fst_print_text(const struct fst *st)
{
    if (!st->enabled) {
        printf("federation: disabled (federation.enabled is false in the policy)\n");
        return;
    }
    printf("federation: %s, listening on %s\n", st->state, st->listen);
    printf("summary sent to peers: %" PRIu64 " images, %" PRIu64 " bytes\n", st->exported,
           st->exported_bytes);
    printf("connections refused: %" PRIu64 "%s%s%s\n", st->refused,
           st->refused_error[0] ? " (last: " : "", st->refused_error,
           st->refused_error[0] ? ")" : "");
    for (size_t i = 0; i < st->npeers; i++) {
        const struct fst_peer *p = &st->peer[i];
        char last[32], when[32];

        fst_age(p->last_us, last, sizeof last);
        if (p->direction == PPF_FED_OUT)
            printf("to   %s: last exchange %s, sent %" PRIu64 ", refused by it %" PRIu64
                   ", failed %" PRIu64 "\n", p->name, last, p->ok, p->rejected, p->failures);
        else
            printf("from %s: last exchange %s, accepted %" PRIu64 ", rejected %" PRIu64
                   ", merged %" PRIu64 " images\n", p->name, last, p->ok, p->rejected,
                   p->merged);
        if (p->error[0]) {
            fst_age(p->error_us, when, sizeof when);
            printf("     last error (%s): %s\n", when, p->error);
        }
    }
}

static void
fst_print_json(const struct fst *st)
{
    struct ppf_json j;

    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_bool(&j, "enabled", st->enabled != 0);
    ppf_json_str(&j, "state", st->state);
    if (st->enabled) {
        ppf_json_str(&j, "listen", st->listen);
        ppf_json_u64(&j, "exported_images", st->exported);
        ppf_json_u64(&j, "exported_bytes", st->exported_bytes);
        ppf_json_u64(&j, "refused", st->refused);
        if (st->refused_error[0])
            ppf_json_str(&j, "refused_error", st->refused_error);
    }
    ppf_json_begin_array(&j, "peers");
    for (size_t i = 0; i < st->npeers; i++) {
        const struct fst_peer *p = &st->peer[i];

        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "peer", p->name);
        ppf_json_str(&j, "direction", p->direction == PPF_FED_OUT ? "out" : "in");
        ppf_json_u64(&j, "last_exchange", p->last_us / 1000000);
        ppf_json_u64(&j, p->direction == PPF_FED_OUT ? "sent" : "accepted", p->ok);
        ppf_json_u64(&j, "rejected", p->rejected);
        if (p->direction == PPF_FED_OUT)
            ppf_json_u64(&j, "failures", p->failures);
        else
            ppf_json_u64(&j, "merged_images", p->merged);
        if (p->error[0]) {
            ppf_json_str(&j, "error", p->error);
            ppf_json_u64(&j, "error_time", p->error_us / 1000000);
        }
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    ppf_json_end_object(&j);
}

int
cmd_federation(struct ctl *c, int argc, char **argv)
{
    CLEANUP_FREE uint8_t *out = NULL;
    struct fst st = { 0 };
    uint32_t cap;
    int r;

    if (argc < 2 || strcmp(argv[1], "status") != 0)
        return usage_error("federation needs a subcommand: status");
    if (argc > 2)
        return usage_error("federation status: unexpected argument '%s'", argv[2]);
    if ((r = ctl_connect_kind(c, PPF_QP_IO)) != 0)
        return r;
    if (!(out = ctl_alloc_out(c, &cap)))
        return 1;
    {
        struct ppf_cmd cmd = { .opcode = PPF_OP_FED_STATUS, .out = out, .out_cap = cap };

        if (ctl_exec(c, &cmd, "federation") != 0)
            return 1;
        if (fst_decode(out, cmd.out_len, &st) < 0) {
            free(st.peer);
            ctl_malformed("federation", PPF_OP_FED_STATUS);
            return 1;
        }
    }
    if (c->json)
        fst_print_json(&st);
    else
        fst_print_text(&st);
    free(st.peer);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the federation status: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

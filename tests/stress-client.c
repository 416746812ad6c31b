/* Test client for the stress, kill -9 and dead-peripheral tests: claims an
 * I/O pair and sends NOP echo commands, several in flight, each carrying a
 * token (client id, sequence) in arg[0] and a payload derived from it; it
 * checks that every completion comes back exactly once, to this process,
 * with its own token and payload.
 *
 * Usage: stress-client [--count N] [--depth D] [--id K] [--progress FILE]
 *                      [--claim-timeout MS] [--poll-us N]
 * --count 0 runs until killed or until the device fails.  Exit 0 when all
 * commands verified, 1 on a failure (message on stderr).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ppf/ppf.h"

#define MAX_DEPTH 64
#define PAYLOAD   96

struct slot {
    struct ppf_cmd cmd;
    uint64_t token;
    uint8_t in[PAYLOAD];
    uint8_t out[PAYLOAD];
};

static void
fill(uint8_t *buf, uint64_t token)
{
    for (int i = 0; i < PAYLOAD; i++)
        buf[i] = (uint8_t)(token >> ((i % 8) * 8)) ^ (uint8_t)i;
}

static void
submit_one(struct ppf_qp *qp, struct slot *s, uint64_t token)
{
    memset(&s->cmd, 0, sizeof s->cmd);
    s->token = token;
    fill(s->in, token);
    memset(s->out, 0, sizeof s->out);
    s->cmd.opcode = PPF_OP_NOP;
    s->cmd.arg[0] = token;
    /* vary the payload size so lengths are checked too */
    s->cmd.in = s->in;
    s->cmd.in_len = (uint32_t)(token % (PAYLOAD + 1));
    s->cmd.out = s->out;
    s->cmd.out_cap = PAYLOAD;
    if (ppf_submit(qp, &s->cmd, 30000) < 0) {
        fprintf(stderr, "stress-client: submit: %s\n", ppf_error());
        exit(1);
    }
}

static void
check_one(struct slot *s)
{
    if (s->cmd.status != PPF_SC_SUCCESS) {
        fprintf(stderr, "stress-client: token %llx: status %s\n",
                (unsigned long long)s->token, ppf_status_name(s->cmd.status));
        exit(1);
    }
    if (s->cmd.result != (uint32_t)s->token || s->cmd.out_len != s->cmd.in_len ||
        memcmp(s->in, s->out, s->cmd.in_len) != 0) {
        fprintf(stderr, "stress-client: token %llx: wrong completion (result %x, %u bytes)\n",
                (unsigned long long)s->token, s->cmd.result, s->cmd.out_len);
        exit(1);
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'n' },
        { "depth", required_argument, NULL, 'd' },
        { "id", required_argument, NULL, 'i' },
        { "progress", required_argument, NULL, 'p' },
        { "claim-timeout", required_argument, NULL, 'c' },
        { "poll-us", required_argument, NULL, 'u' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long count = 10000, done = 0, sent = 0;
    int depth = 8, claim_timeout = 60000, poll_us = -2, o;
    uint32_t id = (uint32_t)getpid();
    const char *progress = NULL;
    static struct slot slots[MAX_DEPTH];
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    FILE *pf = NULL;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': count = strtoull(optarg, NULL, 10); break;
        case 'd': depth = atoi(optarg); break;
        case 'i': id = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'p': progress = optarg; break;
        case 'c': claim_timeout = atoi(optarg); break;
        case 'u': poll_us = atoi(optarg); break;
        default: return 2;
        }
    }
    if (depth < 1 || depth > MAX_DEPTH)
        depth = 8;
    if (ppf_dev_open(NULL, &dev) < 0) {
        fprintf(stderr, "stress-client: %s\n", ppf_error());
        return 1;
    }
    if (ppf_qp_claim(dev, PPF_QP_IO, claim_timeout, &qp) < 0) {
        fprintf(stderr, "stress-client: %s\n", ppf_error());
        return 1;
    }
    if (poll_us != -2)
        ppf_qp_set_poll_us(qp, poll_us);
    if (progress) {
        pf = fopen(progress, "w");
        if (pf)
            fprintf(pf, "claimed pair %u\n", ppf_qp_id(qp)), fflush(pf);
    }

    for (int i = 0; i < depth && (count == 0 || sent < count); i++, sent++)
        submit_one(qp, &slots[i], ((uint64_t)id << 32) | (uint32_t)sent);
    /* complete in submission order; resubmit each slot as it finishes */
    for (int i = 0; count == 0 || done < count; i = (i + 1) % depth) {
        if (ppf_wait(qp, &slots[i].cmd, 30000) < 0) {
            fprintf(stderr, "stress-client: wait: %s\n", ppf_error());
            return 1;
        }
        check_one(&slots[i]);
        done++;
        if (pf && done % 1000 == 0) {
            fprintf(pf, "%llu\n", done);
            fflush(pf);
        }
        if (count == 0 || sent < count)
            submit_one(qp, &slots[i], ((uint64_t)id << 32) | (uint32_t)sent++);
    }
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    if (pf) {
        fprintf(pf, "done %llu\n", done);
        fclose(pf);
    }
    return 0;
}

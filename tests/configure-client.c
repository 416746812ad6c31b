/* Sends hostile CONFIGURE payloads to a running peripheral: random bytes,
 * every truncation of the policy in force, and random byte flips of it.
 * Checks that garbage and truncations are refused with a reason, that the
 * device keeps answering, and that the policy in force is unchanged at the
 * end (flips that happen to decode into a valid policy are put back).
 * Usage: configure-client [--rounds N]  (device from $PPF_DEVICE)
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppf/ppf.h"
#include "ppf/protocol.h"

static struct ppf_qp *qp;
static uint8_t reply[65536];

static int
configure(uint64_t op, const void *in, uint32_t len, struct ppf_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->opcode = PPF_OP_CONFIGURE;
    cmd->arg[0] = op;
    cmd->in = in;
    cmd->in_len = len;
    cmd->out = reply;
    cmd->out_cap = sizeof reply;
    if (ppf_exec(qp, cmd, 10000) < 0) {
        fprintf(stderr, "configure-client: %s\n", ppf_error());
        exit(1);
    }
    return cmd->status;
}

int
main(int argc, char **argv)
{
    struct ppf_dev *dev;
    struct ppf_cmd cmd;
    uint8_t *orig, *buf;
    uint32_t len, slot;
    unsigned rounds = 200, accepted = 0;
    struct ppf_dev_info info;

    if (argc == 3 && strcmp(argv[1], "--rounds") == 0)
        rounds = (unsigned)atoi(argv[2]);
    srand(12345);
    if (ppf_dev_open(NULL, &dev) < 0 || ppf_qp_claim(dev, PPF_QP_ADMIN, 5000, &qp) < 0) {
        fprintf(stderr, "configure-client: %s\n", ppf_error());
        return 1;
    }
    ppf_dev_get_info(dev, &info);
    slot = info.slot_size;
    if (configure(PPF_CONFIGURE_GET, NULL, 0, &cmd) != PPF_SC_SUCCESS) {
        fprintf(stderr, "configure-client: GET failed\n");
        return 1;
    }
    len = cmd.out_len;
    orig = malloc(len);
    buf = malloc(slot);
    memcpy(orig, reply, len);

    for (unsigned i = 0; i < rounds; i++) {
        uint32_t n = (uint32_t)rand() % slot;

        for (uint32_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rand();
        if (i & 1)
            memcpy(buf, "PPFC\1\0\0\0", n < 8 ? n : 8);     /* get past the magic */
        if (configure(PPF_CONFIGURE_SET, buf, n, &cmd) == PPF_SC_SUCCESS) {
            fprintf(stderr, "configure-client: random payload %u accepted\n", i);
            return 1;
        }
        if (cmd.out_len == 0) {
            fprintf(stderr, "configure-client: refusal %u came without a reason\n", i);
            return 1;
        }
    }
    for (uint32_t n = 0; n < len; n++)
        if (configure(PPF_CONFIGURE_SET, orig, n, &cmd) == PPF_SC_SUCCESS) {
            fprintf(stderr, "configure-client: truncation to %u bytes accepted\n", n);
            return 1;
        }
    for (unsigned i = 0; i < rounds; i++) {
        memcpy(buf, orig, len);
        buf[(uint32_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
        if (configure(PPF_CONFIGURE_SET, buf, len, &cmd) == PPF_SC_SUCCESS) {
            accepted++;
            if (configure(PPF_CONFIGURE_SET, orig, len, &cmd) != PPF_SC_SUCCESS) {
                fprintf(stderr, "configure-client: could not restore the policy\n");
                return 1;
            }
        }
    }
    /* a bad arg[0] */
    memset(&cmd, 0, sizeof cmd);
    if (configure(7, NULL, 0, &cmd) != PPF_SC_INVALID_FIELD) {
        fprintf(stderr, "configure-client: CONFIGURE op 7 not refused\n");
        return 1;
    }
    if (configure(PPF_CONFIGURE_GET, NULL, 0, &cmd) != PPF_SC_SUCCESS || cmd.out_len != len ||
        memcmp(reply, orig, len) != 0) {
        fprintf(stderr, "configure-client: the policy in force changed\n");
        return 1;
    }
    printf("configure-client: %u random, %u truncated, %u flipped payloads; %u flips "
           "decoded to a valid policy\n", rounds, len, rounds, accepted);
    ppf_qp_release(qp);
    ppf_dev_close(dev);
    free(orig);
    free(buf);
    return 0;
}

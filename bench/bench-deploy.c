/* bench-deploy: DEPLOY latency (command sent -> target ready) through
 * libppf, as the qemu hook will see it.  Deploys IMAGE N times to fresh
 * targets DIR/bench-I.qcow2 in the given mode, removing each target after;
 * with --miss, evicts the image before every deploy so each one fetches.
 * Prints one JSON object: {mode, miss, count, p50_us, p90_us, p99_us,
 * max_us}.  Usage: bench-deploy --image NAME --dir DIR [--count N]
 * [--mode overlay|copy] [--miss] [--tenant T]  (device: $PPF_DEVICE)
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ppf/ppf.h"
#include "ppf/protocol.h"

static uint64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int
run(struct ppf_qp *qp, uint8_t op, const char *image, const char *tenant, const char *target,
    int mode)
{
    uint8_t in[8192], out[4096];
    struct ppf_attr_writer w;
    struct ppf_cmd cmd = { .opcode = op, .in = in, .out = out, .out_cap = sizeof out };

    ppf_attr_writer_init(&w, in, sizeof in);
    ppf_attr_put_str(&w, PPF_A_IMAGE, image);
    if (tenant)
        ppf_attr_put_str(&w, PPF_A_TENANT, tenant);
    if (target) {
        ppf_attr_put_str(&w, PPF_A_TARGET, target);
        ppf_attr_put_u32(&w, PPF_A_MODE, (uint32_t)mode);
    }
    cmd.in_len = (uint32_t)w.len;
    if (ppf_exec(qp, &cmd, 600000) < 0) {
        fprintf(stderr, "bench-deploy: %s\n", ppf_error());
        return -1;
    }
    if (cmd.status != PPF_SC_SUCCESS && op == PPF_OP_DEPLOY) {
        fprintf(stderr, "bench-deploy: DEPLOY %s: %s: %.*s\n", image,
                ppf_status_text(cmd.status), (int)cmd.out_len, (const char *)out);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "image", required_argument, NULL, 'i' }, { "dir", required_argument, NULL, 'd' },
        { "count", required_argument, NULL, 'n' }, { "mode", required_argument, NULL, 'm' },
        { "miss", no_argument, NULL, 'x' }, { "tenant", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    const char *image = NULL, *dir = NULL, *tenant = NULL;
    int count = 50, mode = 0, miss = 0, o;
    struct ppf_dev *dev;
    struct ppf_qp *qp, *admin = NULL;
    uint64_t *lat;
    char target[4096];

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'i': image = optarg; break;
        case 'd': dir = optarg; break;
        case 'n': count = atoi(optarg); break;
        case 'm': mode = strcmp(optarg, "copy") == 0; break;
        case 'x': miss = 1; break;
        case 't': tenant = optarg; break;
        default: return 2;
        }
    }
    if (!image || !dir || count < 1) {
        fprintf(stderr, "usage: bench-deploy --image NAME --dir DIR [--count N] "
                "[--mode overlay|copy] [--miss] [--tenant T]\n");
        return 2;
    }
    lat = calloc((size_t)count, sizeof *lat);
    if (ppf_dev_open(NULL, &dev) < 0 || ppf_qp_claim(dev, PPF_QP_IO, 5000, &qp) < 0 ||
        (miss && ppf_qp_claim(dev, PPF_QP_ADMIN, 5000, &admin) < 0)) {
        fprintf(stderr, "bench-deploy: %s\n", ppf_error());
        return 1;
    }
    ppf_qp_set_poll_us(qp, 200);
    for (int i = 0; i < count; i++) {
        uint64_t t0;

        snprintf(target, sizeof target, "%s/bench-%d.img", dir, i);
        unlink(target);
        if (miss)
            run(admin, PPF_OP_EVICT, image, tenant, NULL, 0);
        t0 = now_us();
        if (run(qp, PPF_OP_DEPLOY, image, tenant, target, mode) < 0)
            return 1;
        lat[i] = now_us() - t0;
        unlink(target);
    }
    qsort(lat, (size_t)count, sizeof *lat, cmp_u64);
    printf("{\"image\": \"%s\", \"mode\": \"%s\", \"miss\": %s, \"count\": %d, "
           "\"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"max_us\": %llu}\n",
           image, mode ? "copy" : "overlay", miss ? "true" : "false", count,
           (unsigned long long)lat[count / 2], (unsigned long long)lat[count * 9 / 10],
           (unsigned long long)lat[count * 99 / 100], (unsigned long long)lat[count - 1]);
    ppf_qp_release(qp);
    ppf_qp_release(admin);
    ppf_dev_close(dev);
    free(lat);
    return 0;
}

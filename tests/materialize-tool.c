/* A small command-line front end to peripheral/materialize.c for the
 * shell tests (tests/test-materialize-qemu.sh), which check its output
 * with the real qemu-img and qemu-io:
 *   materialize-tool overlay ALLOWED_DIR TARGET BASE [SIZE] [--replace]
 *   materialize-tool copy ALLOWED_DIR TARGET SRC [--replace]
 *   materialize-tool backing FILE
 * SIZE is in bytes and defaults to BASE's size.  Exit 0 on success, 1 on
 * error (message on stderr), 2 on usage errors; "backing" prints the
 * backing file name, or exits 3 when there is none.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "peripheral/materialize.h"

static int
usage(void)
{
    fprintf(stderr, "usage: materialize-tool overlay ALLOWED_DIR TARGET BASE [SIZE] [--replace]\n"
                    "       materialize-tool copy ALLOWED_DIR TARGET SRC [--replace]\n"
                    "       materialize-tool backing FILE\n");
    return 2;
}

int
main(int argc, char **argv)
{
    struct ppf_target t;
    const char *allowed[1];
    char err[1024], name[PPF_QCOW2_BACKING_MAX + 1];
    int replace = 0, r;
    uint64_t size;
    struct stat st;

    if (argc >= 2 && strcmp(argv[argc - 1], "--replace") == 0) {
        replace = 1;
        argc--;
    }
    if (argc == 3 && strcmp(argv[1], "backing") == 0) {
        r = ppf_qcow2_backing_file(argv[2], name, sizeof name);
        if (r == -1) {
            perror(argv[2]);
            return 1;
        }
        if (r == 0)
            return 3;
        printf("%s\n", name);
        return 0;
    }
    if (argc < 5 || (strcmp(argv[1], "overlay") != 0 && strcmp(argv[1], "copy") != 0) ||
        (strcmp(argv[1], "copy") == 0 && argc != 5) || argc > 6)
        return usage();

    allowed[0] = argv[2];
    if (ppf_target_resolve(argv[3], allowed, 1, &t, err, sizeof err) == -1) {
        fprintf(stderr, "materialize-tool: %s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "copy") == 0) {
        r = ppf_copy_create(&t, argv[4], replace, 0644, err, sizeof err);
    } else {
        if (argc == 6) {
            if (ppf_parse_u64(argv[5], 0, UINT64_MAX, &size) == -1) {
                ppf_target_close(&t);
                return usage();
            }
        } else if (stat(argv[4], &st) == 0) {
            size = (uint64_t)st.st_size;
        } else {
            perror(argv[4]);
            ppf_target_close(&t);
            return 1;
        }
        r = ppf_overlay_create(&t, argv[4], size, replace, 0644, err, sizeof err);
    }
    ppf_target_close(&t);
    if (r == -1) {
        fprintf(stderr, "materialize-tool: %s\n", err);
        return 1;
    }
    return 0;
}

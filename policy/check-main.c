/* policy-check: a small test program (not installed) that parses a policy
 * file with the ppf parser, prints every diagnostic, and with --emit
 * prints the canonical form.  ppfctl policy validate/show is the tool for
 * administrators; this one lets the tests drive the library directly.
 *
 *   policy-check [--no-file-checks] [--emit yaml|json|blob] FILE
 * Exit: 0 valid, 1 invalid, 2 usage.
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static void
usage(FILE *fp)
{
    fprintf(fp, "Usage: policy-check [--no-file-checks] [--emit yaml|json|blob] FILE\n"
            "Validate a ppf policy file; print the canonical form with --emit.\n"
            "(blob: encode for the device, decode it back, print the result as YAML)\n");
}

static int
emit_blob(const struct ppf_policy *p)
{
    static uint8_t buf[PPF_POLICY_MAX_ENCODED];
    struct ppf_policy *q = NULL;
    char err[256];
    size_t len;
    int rc;

    if (ppf_policy_encode(p, buf, sizeof buf, &len) < 0) {
        fprintf(stderr, "policy-check: encode failed\n");
        return 1;
    }
    if (ppf_policy_decode(buf, len, &q, err, sizeof err) < 0) {
        fprintf(stderr, "policy-check: decode failed: %s\n", err);
        return 1;
    }
    rc = ppf_policy_emit_yaml(q, stdout) < 0;
    ppf_policy_free(q);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "emit", required_argument, NULL, 'e' },
        { "no-file-checks", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    struct ppf_policy_diags d;
    struct ppf_policy *p = NULL;
    const char *emit = NULL;
    unsigned flags = 0;
    int c, rc;

    while ((c = getopt_long(argc, argv, "e:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            emit = optarg;
            break;
        case 'n':
            flags |= PPF_POLICY_NO_FILE_CHECKS;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || (emit && strcmp(emit, "yaml") && strcmp(emit, "json")
                               && strcmp(emit, "blob"))) {
        usage(stderr);
        return 2;
    }
    ppf_policy_diags_init(&d);
    rc = ppf_policy_parse_file_flags(argv[optind], flags, &p, &d);
    ppf_policy_diags_print(&d, stderr);
    ppf_policy_diags_free(&d);
    if (rc < 0)
        return 1;
    if (!emit)
        rc = 0;
    else if (strcmp(emit, "yaml") == 0)
        rc = ppf_policy_emit_yaml(p, stdout) < 0;
    else if (strcmp(emit, "json") == 0)
        rc = ppf_policy_emit_json(p, stdout) < 0;
    else
        rc = emit_blob(p);
    ppf_policy_free(p);
    return rc;
}

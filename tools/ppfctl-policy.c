/* ppfctl policy validate|apply|show: the administrator's side of the YAML
 * policy (policy/, ppf-policy(5)).  validate needs no peripheral; apply
 * validates, encodes and sends CONFIGURE over the admin queue; show asks
 * the peripheral for the policy in force and prints it, defaults filled in,
 * as YAML that validates (or JSON with --json).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "plugin/policy-send.h"
#include "policy/policy.h"
#include "ppf/protocol.h"
#include "tools/ppfctl.h"

static void
policy_print_diags_json(const char *file, const struct ppf_policy_diags *d, int valid)
{
    struct ppf_json j;

    ppf_json_init(&j, stdout);
    ppf_json_begin_object(&j, NULL);
    ppf_json_str(&j, "file", file);
    ppf_json_bool(&j, "valid", valid);
    ppf_json_begin_array(&j, "errors");
    for (size_t i = 0; i < d->n; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "file", d->v[i].file ? d->v[i].file : file);
        ppf_json_u64(&j, "line", d->v[i].line);
        ppf_json_u64(&j, "column", d->v[i].column);
        ppf_json_str(&j, "path", d->v[i].path ? d->v[i].path : "");
        ppf_json_str(&j, "message", d->v[i].msg ? d->v[i].msg : "");
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);
    ppf_json_end_object(&j);
    fputc('\n', stdout);
}

/* Parses and checks FILE; reports every problem.  0 valid, 1 not. */
static int
policy_load(struct ctl *c, const char *file, struct ppf_policy **p, int quiet_ok)
{
    struct ppf_policy_diags d;
    int r;

    ppf_policy_diags_init(&d);
    r = ppf_policy_parse_file(file, p, &d);
    if (c->json && !quiet_ok)
        policy_print_diags_json(file, &d, r == 0);
    else if (r < 0) {
        ppf_policy_diags_print(&d, stderr);
        fprintf(stderr, "ppfctl: %s: %zu problem%s%s; nothing was changed\n", file,
                d.n + d.dropped, d.n + d.dropped == 1 ? "" : "s",
                d.dropped ? " (not all shown)" : "");
    }
    ppf_policy_diags_free(&d);
    return r < 0 ? 1 : 0;
}

static int
policy_validate(struct ctl *c, const char *file)
{
    struct ppf_policy *p = NULL;
    int r = policy_load(c, file, &p, 0);

    if (r == 0 && !c->json)
        printf("%s: valid\n", file);
    ppf_policy_free(p);
    return r;
}

static int
policy_open(struct ctl *c)
{
    if (ppf_dev_open(c->device, &c->dev) < 0)
        return fail(NULL);
    return 0;
}

static int
policy_apply(struct ctl *c, const char *file)
{
    struct ppf_policy *p = NULL;
    uint32_t gen;
    char err[600];
    int r;

    if (policy_load(c, file, &p, 1) != 0)
        return 1;
    r = policy_open(c);
    if (r == 0 && ppf_policy_send(c->dev, p, c->timeout_ms, &gen, err, sizeof err) < 0) {
        fprintf(stderr, "ppfctl: %s: %s; nothing was changed\n", file, err);
        r = 1;
    }
    if (r == 0) {
        if (c->json) {
            struct ppf_json j;

            ppf_json_init(&j, stdout);
            ppf_json_begin_object(&j, NULL);
            ppf_json_str(&j, "file", file);
            ppf_json_bool(&j, "applied", 1);
            ppf_json_u64(&j, "generation", gen);
            ppf_json_end_object(&j);
            fputc('\n', stdout);
        } else {
            printf("%s: applied (policy generation %u)\n", file, gen);
        }
    }
    ppf_policy_free(p);
    return r;
}

static int
policy_show(struct ctl *c, const char *file)
{
    struct ppf_policy *p = NULL;
    uint32_t gen;
    char err[600];
    int r;

    if (file) {
        if (policy_load(c, file, &p, 1) != 0)
            return 1;
    } else {
        if (policy_open(c) != 0)
            return 1;
        if (ppf_policy_fetch(c->dev, c->timeout_ms, &p, &gen, err, sizeof err) < 0) {
            fprintf(stderr, "ppfctl: %s\n", err);
            return 1;
        }
    }
    r = c->json ? ppf_policy_emit_json(p, stdout) : ppf_policy_emit_yaml(p, stdout);
    ppf_policy_free(p);
    if (r < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "ppfctl: writing the policy failed: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int
cmd_policy(struct ctl *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (!sub)
        return usage_error("%s", "policy needs a subcommand: validate FILE, apply FILE or "
                           "show [--file FILE]");
    if (strcmp(sub, "validate") == 0 || strcmp(sub, "apply") == 0) {
        if (argc != 3)
            return usage_error("policy %s takes exactly one FILE", sub);
        return sub[0] == 'v' ? policy_validate(c, argv[2]) : policy_apply(c, argv[2]);
    }
    if (strcmp(sub, "show") == 0) {
        if (argc == 2)
            return policy_show(c, NULL);
        if (argc == 4 && strcmp(argv[2], "--file") == 0)
            return policy_show(c, argv[3]);
        return usage_error("%s", "policy show takes only [--file FILE] [--json]");
    }
    return usage_error("unknown policy subcommand '%s' (validate, apply, show)", sub);
}

/* Canonical output of a policy: YAML (written by hand, every key present,
 * defaults filled in, readable back by the parser to the same policy) and
 * JSON through common/json.h.  Both validate against
 * schemas/policy.schema.json.  Free-form strings are always double-quoted
 * in the YAML so that no value is ever read back as another type (YAML 1.1
 * readers take 08:30 for a number and 2025-01-01 for a date).
 */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "policy/policy-int.h"

/* A double-quoted YAML scalar.  The policy holds no control bytes, but
 * escape them anyway so the output is always well-formed. */
static void
pol_yaml_str(FILE *fp, const char *s)
{
    if (!s)
        s = "";
    fputc('"', fp);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(fp, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(fp, "\\x%02x", *c);
        else
            fputc(*c, fp);
    }
    fputc('"', fp);
}

/* A mapping key: plain when it is a simple word that no YAML reader could
 * take for a boolean, null or number; else quoted. */
static void
pol_yaml_key(FILE *fp, const char *s)
{
    static const char *const special[] = {
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", NULL
    };
    bool plain;

    if (!s)
        s = "";
    plain = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';

    for (size_t i = 0; plain && special[i]; i++)
        if (strcasecmp(s, special[i]) == 0)
            plain = false;
    if (plain && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        != strlen(s))
        plain = false;
    if (plain)
        fputs(s, fp);
    else
        pol_yaml_str(fp, s);
}

static const char *
pol_bool(bool b)
{
    return b ? "true" : "false";
}

/* Fixed-point with at most 6 decimals and at least one, e.g. 0.1 or 1.0:
 * a form every YAML reader takes for a float. */
static void
pol_format_rate(double v, char *buf, size_t len)
{
    size_t n;

    snprintf(buf, len, "%.6f", v);
    n = strlen(buf);
    while (n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
        buf[--n] = '\0';
}

static void
pol_format_bandwidth(uint64_t v, char *buf, size_t len)
{
    char s[32];

    if (v == 0) {
        snprintf(buf, len, "unlimited");
        return;
    }
    ppf_policy_format_size(v, s, sizeof s);
    snprintf(buf, len, "%s/s", s);
}

static void
pol_yaml_opt(FILE *fp, const char *indent, const char *key, const char *v)
{
    if (!v)
        return;
    fprintf(fp, "%s%s: ", indent, key);
    pol_yaml_str(fp, v);
    fputc('\n', fp);
}

static void
pol_yaml_strv(FILE *fp, const char *key, char **v, size_t n)
{
    if (n == 0) {
        fprintf(fp, "  %s: []\n", key);
        return;
    }
    fprintf(fp, "  %s:\n", key);
    for (size_t i = 0; i < n; i++) {
        fputs("    - ", fp);
        pol_yaml_str(fp, v[i]);
        fputc('\n', fp);
    }
}

int
ppf_policy_emit_yaml(const struct ppf_policy *p, FILE *fp)
{
    char a[48], b[48], q[48];
    size_t i;
    unsigned bit;
    bool first;

    fputs("# ppf policy (canonical form: every key, defaults filled in); see ppf-policy(5)\n",
          fp);
    ppf_policy_format_duration(p->monitoring.interval_ms, a, sizeof a);
    fprintf(fp, "monitoring:\n  interval: %s\n  metrics: [", a);
    for (bit = 0, first = true; bit < PPF_METRIC__COUNT; bit++)
        if (p->monitoring.metrics & (1u << bit)) {
            fprintf(fp, "%s%s", first ? "" : ", ", ppf_policy_metric_names[bit]);
            first = false;
        }
    fputs("]\n", fp);

    fprintf(fp, "learning:\n  algorithm: %s\n",
            ppf_policy_algorithm_name(p->learning.algorithm) ?: "?");
    fprintf(fp, "  markov:\n    order: %u\n", p->learning.markov_order);
    ppf_policy_format_duration(p->learning.half_life_ms, a, sizeof a);
    fprintf(fp, "  decay:\n    half_life: %s\n", a);
    ppf_policy_format_duration(p->learning.horizon_ms, a, sizeof a);
    fprintf(fp, "  horizon: %s\n  time_buckets: %u\n", a, p->learning.time_buckets);
    pol_format_rate(p->learning.adaptation_rate, a, sizeof a);
    ppf_policy_format_size(p->learning.store_size, b, sizeof b);
    fprintf(fp, "  adaptation_rate: %s\n  store_size: %s\n", a, b);

    fprintf(fp, "table:\n  size: %u\n  dynamic:\n    enabled: %s\n    min: %u\n    max: %u\n",
            p->table.size, pol_bool(p->table.dynamic), p->table.min, p->table.max);

    pol_format_bandwidth(p->prefetch.bandwidth, a, sizeof a);
    fprintf(fp, "prefetch:\n  priority: %s\n  bandwidth: %s\n  concurrent: %u\n"
            "  workers: %u\n", ppf_policy_priority_name(p->prefetch.priority) ?: "?", a,
            p->prefetch.concurrent, p->prefetch.workers);

    fputs("buffer:\n  path: ", fp);
    pol_yaml_str(fp, p->buffer.path ? p->buffer.path : "");
    ppf_policy_format_size(p->buffer.capacity, a, sizeof a);
    ppf_policy_format_size(p->buffer.reserve, b, sizeof b);
    fprintf(fp, "\n  capacity: %s\n  eviction: %s\n  reserve: %s\n  overcommit: %s\n", a,
            ppf_policy_eviction_name(p->buffer.eviction) ?: "?", b,
            pol_bool(p->buffer.overcommit));
    ppf_policy_format_duration(p->buffer.revalidate_ms, a, sizeof a);
    fprintf(fp, "  revalidate: %s\n", a);

    if (p->nstores == 0)
        fputs("stores: []\n", fp);
    else
        fputs("stores:\n", fp);
    for (i = 0; i < p->nstores; i++) {
        const struct ppf_policy_store *s = &p->stores[i];

        fputs("  - name: ", fp);
        pol_yaml_str(fp, s->name);
        fputs("\n    url: ", fp);
        pol_yaml_str(fp, s->url);
        fputc('\n', fp);
        pol_yaml_opt(fp, "    ", "ca_file", s->ca_file);
        pol_yaml_opt(fp, "    ", "pinned_cert", s->pinned_cert);
    }

    fputs("tenants:\n", fp);
    for (i = 0; i < p->ntenants; i++) {
        const struct ppf_policy_tenant *t = &p->tenants[i];

        fputs("  ", fp);
        pol_yaml_key(fp, t->name);
        ppf_policy_format_size(t->quota ? t->quota : p->buffer.capacity, q, sizeof q);
        fprintf(fp, ":\n    quota: %s\n", q);
        pol_yaml_opt(fp, "    ", "keyfile", t->keyfile);
        fprintf(fp, "    priority: %s\n    share: %s\n",
                ppf_policy_priority_name(t->priority) ?: "?", pol_bool(t->share));
    }

    fputs("deploy:\n", fp);
    pol_yaml_strv(fp, "dirs", p->deploy.dirs, p->deploy.ndirs);
    fprintf(fp, "  mode: %s\n  fallback: %s\n  ephemeral: %s\n",
            ppf_policy_deploy_mode_name(p->deploy.mode) ?: "?",
            ppf_policy_fallback_name(p->deploy.fallback) ?: "?", pol_bool(p->deploy.ephemeral));

    fprintf(fp, "federation:\n  enabled: %s\n  listen: ", pol_bool(p->federation.enabled));
    pol_yaml_str(fp, p->federation.listen ? p->federation.listen : "");
    fputc('\n', fp);
    pol_yaml_strv(fp, "peers", p->federation.peers, p->federation.npeers);
    pol_yaml_opt(fp, "  ", "ca_file", p->federation.ca_file);
    pol_yaml_opt(fp, "  ", "cert_file", p->federation.cert_file);
    pol_yaml_opt(fp, "  ", "key_file", p->federation.key_file);
    ppf_policy_format_duration(p->federation.interval_ms, a, sizeof a);
    fprintf(fp, "  interval: %s\n", a);

    fputs(p->npins ? "pins:\n" : "pins: []\n", fp);
    for (i = 0; i < p->npins; i++) {
        fputs("  - image: ", fp);
        pol_yaml_str(fp, p->pins[i].image);
        fputs("\n    tenant: ", fp);
        pol_yaml_str(fp, p->pins[i].tenant);
        fputs("\n    until: ", fp);
        pol_yaml_str(fp, p->pins[i].until);
        fputc('\n', fp);
    }
    fputs(p->nschedules ? "schedules:\n" : "schedules: []\n", fp);
    for (i = 0; i < p->nschedules; i++) {
        fputs("  - when: ", fp);
        pol_yaml_str(fp, p->schedules[i].when);
        fputs("\n    image: ", fp);
        pol_yaml_str(fp, p->schedules[i].image);
        fputs("\n    tenant: ", fp);
        pol_yaml_str(fp, p->schedules[i].tenant);
        fputc('\n', fp);
        pol_yaml_opt(fp, "    ", "before", p->schedules[i].before);
    }
    return fflush(fp) == 0 && !ferror(fp) ? 0 : -1;
}

static void
pol_json_size(struct ppf_json *j, const char *key, uint64_t v)
{
    char s[32];

    ppf_policy_format_size(v, s, sizeof s);
    ppf_json_str(j, key, s);
}

static void
pol_json_duration(struct ppf_json *j, const char *key, uint64_t v)
{
    char s[32];

    ppf_policy_format_duration(v, s, sizeof s);
    ppf_json_str(j, key, s);
}

static void
pol_json_opt(struct ppf_json *j, const char *key, const char *v)
{
    if (v)
        ppf_json_str(j, key, v);
}

static void
pol_json_strv(struct ppf_json *j, const char *key, char **v, size_t n)
{
    ppf_json_begin_array(j, key);
    for (size_t i = 0; i < n; i++)
        ppf_json_str(j, NULL, v[i]);
    ppf_json_end_array(j);
}

int
ppf_policy_emit_json(const struct ppf_policy *p, FILE *fp)
{
    struct ppf_json j;
    char a[48];
    size_t i;

    ppf_json_init(&j, fp);
    ppf_json_begin_object(&j, NULL);

    ppf_json_begin_object(&j, "monitoring");
    pol_json_duration(&j, "interval", p->monitoring.interval_ms);
    ppf_json_begin_array(&j, "metrics");
    for (unsigned bit = 0; bit < PPF_METRIC__COUNT; bit++)
        if (p->monitoring.metrics & (1u << bit))
            ppf_json_str(&j, NULL, ppf_policy_metric_names[bit]);
    ppf_json_end_array(&j);
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "learning");
    ppf_json_str(&j, "algorithm", ppf_policy_algorithm_name(p->learning.algorithm) ?: "?");
    ppf_json_begin_object(&j, "markov");
    ppf_json_u64(&j, "order", p->learning.markov_order);
    ppf_json_end_object(&j);
    ppf_json_begin_object(&j, "decay");
    pol_json_duration(&j, "half_life", p->learning.half_life_ms);
    ppf_json_end_object(&j);
    pol_json_duration(&j, "horizon", p->learning.horizon_ms);
    ppf_json_u64(&j, "time_buckets", p->learning.time_buckets);
    ppf_json_double(&j, "adaptation_rate", p->learning.adaptation_rate);
    pol_json_size(&j, "store_size", p->learning.store_size);
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "table");
    ppf_json_u64(&j, "size", p->table.size);
    ppf_json_begin_object(&j, "dynamic");
    ppf_json_bool(&j, "enabled", p->table.dynamic);
    ppf_json_u64(&j, "min", p->table.min);
    ppf_json_u64(&j, "max", p->table.max);
    ppf_json_end_object(&j);
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "prefetch");
    ppf_json_str(&j, "priority", ppf_policy_priority_name(p->prefetch.priority) ?: "?");
    pol_format_bandwidth(p->prefetch.bandwidth, a, sizeof a);
    ppf_json_str(&j, "bandwidth", a);
    ppf_json_u64(&j, "concurrent", p->prefetch.concurrent);
    ppf_json_u64(&j, "workers", p->prefetch.workers);
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "buffer");
    ppf_json_str(&j, "path", p->buffer.path ? p->buffer.path : "");
    pol_json_size(&j, "capacity", p->buffer.capacity);
    ppf_json_str(&j, "eviction", ppf_policy_eviction_name(p->buffer.eviction) ?: "?");
    pol_json_size(&j, "reserve", p->buffer.reserve);
    ppf_json_bool(&j, "overcommit", p->buffer.overcommit);
    pol_json_duration(&j, "revalidate", p->buffer.revalidate_ms);
    ppf_json_end_object(&j);

    ppf_json_begin_array(&j, "stores");
    for (i = 0; i < p->nstores; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "name", p->stores[i].name);
        ppf_json_str(&j, "url", p->stores[i].url);
        pol_json_opt(&j, "ca_file", p->stores[i].ca_file);
        pol_json_opt(&j, "pinned_cert", p->stores[i].pinned_cert);
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);

    ppf_json_begin_object(&j, "tenants");
    for (i = 0; i < p->ntenants; i++) {
        const struct ppf_policy_tenant *t = &p->tenants[i];

        ppf_json_begin_object(&j, t->name);
        pol_json_size(&j, "quota", t->quota ? t->quota : p->buffer.capacity);
        pol_json_opt(&j, "keyfile", t->keyfile);
        ppf_json_str(&j, "priority", ppf_policy_priority_name(t->priority) ?: "?");
        ppf_json_bool(&j, "share", t->share);
        ppf_json_end_object(&j);
    }
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "deploy");
    pol_json_strv(&j, "dirs", p->deploy.dirs, p->deploy.ndirs);
    ppf_json_str(&j, "mode", ppf_policy_deploy_mode_name(p->deploy.mode) ?: "?");
    ppf_json_str(&j, "fallback", ppf_policy_fallback_name(p->deploy.fallback) ?: "?");
    ppf_json_bool(&j, "ephemeral", p->deploy.ephemeral);
    ppf_json_end_object(&j);

    ppf_json_begin_object(&j, "federation");
    ppf_json_bool(&j, "enabled", p->federation.enabled);
    ppf_json_str(&j, "listen", p->federation.listen ? p->federation.listen : "");
    pol_json_strv(&j, "peers", p->federation.peers, p->federation.npeers);
    pol_json_opt(&j, "ca_file", p->federation.ca_file);
    pol_json_opt(&j, "cert_file", p->federation.cert_file);
    pol_json_opt(&j, "key_file", p->federation.key_file);
    pol_json_duration(&j, "interval", p->federation.interval_ms);
    ppf_json_end_object(&j);

    ppf_json_begin_array(&j, "pins");
    for (i = 0; i < p->npins; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "image", p->pins[i].image);
        ppf_json_str(&j, "tenant", p->pins[i].tenant);
        ppf_json_str(&j, "until", p->pins[i].until);
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);

    ppf_json_begin_array(&j, "schedules");
    for (i = 0; i < p->nschedules; i++) {
        ppf_json_begin_object(&j, NULL);
        ppf_json_str(&j, "when", p->schedules[i].when);
        ppf_json_str(&j, "image", p->schedules[i].image);
        ppf_json_str(&j, "tenant", p->schedules[i].tenant);
        pol_json_opt(&j, "before", p->schedules[i].before);
        ppf_json_end_object(&j);
    }
    ppf_json_end_array(&j);

    ppf_json_end_object(&j);
    return fflush(fp) == 0 && !ferror(fp) ? 0 : -1;
}

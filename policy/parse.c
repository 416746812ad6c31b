/* The YAML policy parser (host side): libyaml's event API driven by a
 * recursive descent over tables of allowed keys, so that every value is
 * typed where it is read and every problem carries FILE:LINE:COLUMN and
 * the key path.  Nothing is built but the policy: no document tree, so
 * memory stays bounded by the limits below.
 *
 * Hostile input is refused before or while libyaml reads it: more than
 * PPF_POLICY_MAX_INPUT bytes, bytes that are not UTF-8 text (NUL, control
 * characters, bad sequences), nesting deeper than PPF_POLICY_MAX_DEPTH,
 * anchors and aliases (the "billion laughs"), tags, several documents.
 * Errors that leave the parser lost stop it; all others are collected and
 * parsing goes on, so one run reports every problem in the file.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "common/cleanup.h"
#include "policy/policy-int.h"

struct pol_parser {
    yaml_parser_t yp;
    yaml_event_t ev;            /* the current event */
    bool have_ev;
    bool fatal;                 /* stop: the parser cannot go on */
    int errors;
    int depth;
    const char *name;
    struct ppf_policy *p;
    struct ppf_policy_diags *d;
    char path[512];
    size_t pathlen;
};

struct pol_key;
typedef int (*pol_handler)(struct pol_parser *c, const struct pol_key *k, void *obj);

/* One allowed key: its name, the handler that reads its value, where the
 * value goes (offset in obj) and a handler-specific argument. */
struct pol_key {
    const char *name;
    pol_handler fn;
    size_t off;
    const void *arg;
};

/* --- diagnostics ------------------------------------------------------ */

static void pol_error_at(struct pol_parser *c, const yaml_mark_t *m, const char *path,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
pol_error_at(struct pol_parser *c, const yaml_mark_t *m, const char *path,
             const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ppf_policy_diags_add(c->d, c->name, m ? (unsigned)m->line + 1 : 0,
                         m ? (unsigned)m->column + 1 : 0, path ? path : c->path, "%s", msg);
    c->errors++;
}

/* An error about the current event (the value being read). */
#define pol_error(c, ...) pol_error_at(c, &(c)->ev.start_mark, NULL, __VA_ARGS__)

static void
pol_fatal_yaml(struct pol_parser *c)
{
    yaml_mark_t m = c->yp.problem_mark;
    const char *problem = c->yp.problem ? c->yp.problem : "unknown error";

    if (c->yp.error == YAML_MEMORY_ERROR)
        problem = "out of memory";
    if (c->yp.context)
        pol_error_at(c, &m, "", "malformed YAML: %s %s", problem, c->yp.context);
    else
        pol_error_at(c, &m, "", "malformed YAML: %s", problem);
    c->fatal = true;
}

/* Quotes text from the input for a message: at most 60 bytes, and only
 * if it is clean text (the pre-scan guarantees that, escapes aside). */
static const char *
pol_show(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);

    if (!ppf_policy_utf8_valid(s, n))
        return "(text with control characters)";
    if (n <= 60)
        return s;
    snprintf(buf, len, "%.57s...", s);
    return buf;
}

/* --- events ----------------------------------------------------------- */

static int
pol_next(struct pol_parser *c)
{
    yaml_event_t *e = &c->ev;
    yaml_char_t *anchor = NULL, *tag = NULL;

    if (c->have_ev) {
        yaml_event_delete(e);
        c->have_ev = false;
    }
    if (c->fatal)
        return -1;
    if (!yaml_parser_parse(&c->yp, e)) {
        pol_fatal_yaml(c);
        return -1;
    }
    c->have_ev = true;
    switch (e->type) {
    case YAML_ALIAS_EVENT:
        pol_error(c, "aliases are not allowed in a ppf policy (*%s); write the value out",
                  (char *)e->data.alias.anchor);
        c->fatal = true;
        return -1;
    case YAML_SCALAR_EVENT:
        anchor = e->data.scalar.anchor;
        if (!e->data.scalar.plain_implicit && !e->data.scalar.quoted_implicit)
            tag = e->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (e->type == YAML_SEQUENCE_START_EVENT) {
            anchor = e->data.sequence_start.anchor;
            tag = e->data.sequence_start.implicit ? NULL : e->data.sequence_start.tag;
        } else {
            anchor = e->data.mapping_start.anchor;
            tag = e->data.mapping_start.implicit ? NULL : e->data.mapping_start.tag;
        }
        if (++c->depth > PPF_POLICY_MAX_DEPTH) {
            pol_error(c, "nesting deeper than %d levels; a ppf policy is never this deep",
                      PPF_POLICY_MAX_DEPTH);
            c->fatal = true;
            return -1;
        }
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        c->depth--;
        break;
    default:
        break;
    }
    if (anchor) {
        pol_error(c, "anchors and aliases are not allowed in a ppf policy (&%s); "
                  "write each value out", (char *)anchor);
        c->fatal = true;
        return -1;
    }
    if (tag) {
        pol_error(c, "tags (%s) are not allowed in a ppf policy; remove it", (char *)tag);
        c->fatal = true;
        return -1;
    }
    return 0;
}

/* Consumes the node that starts at the current event. */
static int
pol_skip(struct pol_parser *c)
{
    int level;

    if (c->ev.type != YAML_SEQUENCE_START_EVENT && c->ev.type != YAML_MAPPING_START_EVENT)
        return c->fatal ? -1 : 0;
    for (level = 1; level > 0;) {
        if (pol_next(c) < 0)
            return -1;
        if (c->ev.type == YAML_SEQUENCE_START_EVENT || c->ev.type == YAML_MAPPING_START_EVENT)
            level++;
        else if (c->ev.type == YAML_SEQUENCE_END_EVENT
                 || c->ev.type == YAML_MAPPING_END_EVENT)
            level--;
    }
    return 0;
}

static const char *
pol_found(struct pol_parser *c, char *buf, size_t len)
{
    char tmp[80];

    switch (c->ev.type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_SCALAR_EVENT:
        if (c->ev.data.scalar.length == 0)
            return "nothing";
        snprintf(buf, len, "'%s'", pol_show((char *)c->ev.data.scalar.value, tmp, sizeof tmp));
        return buf;
    default:
        return "something else";
    }
}

/* --- key paths -------------------------------------------------------- */

static size_t
pol_push(struct pol_parser *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t
pol_push(struct pol_parser *c, const char *fmt, ...)
{
    size_t saved = c->pathlen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + c->pathlen, sizeof c->path - c->pathlen, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->pathlen += (size_t)n;
    if (c->pathlen >= sizeof c->path)
        c->pathlen = sizeof c->path - 1;
    return saved;
}

static size_t
pol_push_key(struct pol_parser *c, const char *key)
{
    char buf[80];

    return pol_push(c, "%s%s", c->pathlen ? "." : "", pol_show(key, buf, sizeof buf));
}

static void
pol_pop(struct pol_parser *c, size_t saved)
{
    c->pathlen = saved;
    c->path[saved] = '\0';
}

/* Remembers where the value at the current path is: a scalar where it
 * stands, a mapping or list at its key (km), if given. */
static int
pol_record_at(struct pol_parser *c, const yaml_mark_t *km)
{
    const yaml_mark_t *m = &c->ev.start_mark;

    if (km && c->ev.type != YAML_SCALAR_EVENT)
        m = km;
    if (ppf_policy_origin_add(c->p, c->path, (unsigned)m->line + 1,
                              (unsigned)m->column + 1) < 0) {
        pol_error(c, "out of memory");
        c->fatal = true;
        return -1;
    }
    return 0;
}

static int
pol_record(struct pol_parser *c)
{
    return pol_record_at(c, NULL);
}

/* --- did you mean ----------------------------------------------------- */

/* Levenshtein distance, case-insensitive; large for long strings. */
static unsigned
pol_distance(const char *a, const char *b)
{
    unsigned row[66], prev, tmp;
    size_t la = strlen(a), lb = strlen(b), i, j;

    if (la > 64 || lb > 64)
        return 100;
    for (j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (unsigned)i;
        for (j = 1; j <= lb; j++) {
            unsigned cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
            unsigned best = prev + cost;

            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

/* The closest of names (distance <= 2), or NULL. */
static const char *
pol_suggest(const char *s, const char *const *names, size_t stride)
{
    const char *best = NULL;
    unsigned bd = 3, dist;

    for (const char *const *n = names; *n; n = (const char *const *)((const char *)n + stride)) {
        dist = pol_distance(s, *n);
        if (dist < bd) {
            bd = dist;
            best = *n;
        }
    }
    return best;
}

static void
pol_list_names(char *buf, size_t len, const char *const *names, size_t stride)
{
    size_t used = 0;

    buf[0] = '\0';
    for (const char *const *n = names; *n && used < len;
         n = (const char *const *)((const char *)n + stride)) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *n);

        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* --- scalars ---------------------------------------------------------- */

/* The current event as a string, or NULL (after an error and skipping the
 * node) if it is not a scalar of clean text. */
static const char *
pol_scalar(struct pol_parser *c, const char *expected)
{
    char buf[96];
    const char *v;

    if (c->ev.type != YAML_SCALAR_EVENT) {
        pol_error(c, "expected %s, found %s", expected, pol_found(c, buf, sizeof buf));
        pol_skip(c);
        return NULL;
    }
    v = (const char *)c->ev.data.scalar.value;
    if (strlen(v) != c->ev.data.scalar.length
        || !ppf_policy_utf8_valid(v, c->ev.data.scalar.length)) {
        pol_error(c, "control characters and NUL are not allowed in values");
        return NULL;
    }
    return v;
}

static bool
pol_is_plain(struct pol_parser *c)
{
    return c->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static void *
pol_at(void *obj, const struct pol_key *k)
{
    return (char *)obj + k->off;
}

static int
h_size(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80];
    const char *v = pol_scalar(c, "a size such as 64GiB");
    uint64_t x;

    if (!v)
        return c->fatal ? -1 : 0;
    if (ppf_policy_parse_size(v, &x) < 0) {
        pol_error(c, "'%s' is not a size; write e.g. 64GiB (units B, KiB, MiB, GiB, TiB, "
                  "or kB, MB, GB, TB)", pol_show(v, buf, sizeof buf));
        return 0;
    }
    *(uint64_t *)pol_at(obj, k) = x;
    return 0;
}

static int
h_duration(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80];
    const char *v = pol_scalar(c, "a duration such as 1s");
    uint64_t x;

    if (!v)
        return c->fatal ? -1 : 0;
    if (ppf_policy_parse_duration(v, &x) < 0) {
        pol_error(c, "'%s' is not a duration; write e.g. 100ms, 1s, 5m, 1h or 7d",
                  pol_show(v, buf, sizeof buf));
        return 0;
    }
    *(uint64_t *)pol_at(obj, k) = x;
    return 0;
}

static int
h_bandwidth(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80], num[32];
    const char *v = pol_scalar(c, "a bandwidth such as 200MiB/s");
    size_t n;
    uint64_t x;

    if (!v)
        return c->fatal ? -1 : 0;
    if (strcmp(v, "0") == 0 || strcmp(v, "unlimited") == 0) {
        *(uint64_t *)pol_at(obj, k) = 0;
        return 0;
    }
    n = strlen(v);
    if (n < 3 || n - 2 >= sizeof num || strcmp(v + n - 2, "/s") != 0) {
        x = 1;
        num[0] = '\0';
    } else {
        memcpy(num, v, n - 2);
        num[n - 2] = '\0';
        x = 0;
    }
    if (x || ppf_policy_parse_size(num, &x) < 0) {
        pol_error(c, "'%s' is not a bandwidth; write e.g. 200MiB/s or 1GB/s, "
                  "or 0 for no limit", pol_show(v, buf, sizeof buf));
        return 0;
    }
    *(uint64_t *)pol_at(obj, k) = x;
    return 0;
}

static int
h_u32(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80];
    const char *v = pol_scalar(c, "an integer");
    unsigned long long x = 0;
    size_t i;

    if (!v)
        return c->fatal ? -1 : 0;
    for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 12; i++)
        x = x * 10 + (unsigned)(v[i] - '0');
    if (i == 0 || v[i] || !pol_is_plain(c)) {
        pol_error(c, "expected an integer, found %s'%s'", pol_is_plain(c) ? "" : "the string ",
                  pol_show(v, buf, sizeof buf));
        return 0;
    }
    if (x > UINT32_MAX) {
        pol_error(c, "%s is out of range; the largest allowed is %u", v, UINT32_MAX);
        return 0;
    }
    *(uint32_t *)pol_at(obj, k) = (uint32_t)x;
    return 0;
}

static int
h_rate(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80], *end;
    const char *v = pol_scalar(c, "a number from 0 to 1");
    double x;

    if (!v)
        return c->fatal ? -1 : 0;
    if (!pol_is_plain(c) || !((v[0] >= '0' && v[0] <= '9') || v[0] == '.')) {
        pol_error(c, "expected a number from 0 to 1 such as 0.1, found '%s'",
                  pol_show(v, buf, sizeof buf));
        return 0;
    }
    errno = 0;
    x = strtod(v, &end);
    if (errno || *end) {
        pol_error(c, "expected a number from 0 to 1 such as 0.1, found '%s'",
                  pol_show(v, buf, sizeof buf));
        return 0;
    }
    *(double *)pol_at(obj, k) = x;
    return 0;
}

static int
h_bool(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char buf[80];
    const char *v = pol_scalar(c, "true or false");

    if (!v)
        return c->fatal ? -1 : 0;
    if (pol_is_plain(c) && strcmp(v, "true") == 0)
        *(bool *)pol_at(obj, k) = true;
    else if (pol_is_plain(c) && strcmp(v, "false") == 0)
        *(bool *)pol_at(obj, k) = false;
    else
        pol_error(c, "expected true or false, found '%s'", pol_show(v, buf, sizeof buf));
    return 0;
}

/* k->arg: NULL-terminated names; the value is the index (an enum). */
static int
h_enum(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    const char *const *names = k->arg;
    char buf[80], list[160];
    const char *v = pol_scalar(c, "a name"), *s;

    if (!v)
        return c->fatal ? -1 : 0;
    for (unsigned i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            *(unsigned *)pol_at(obj, k) = i;
            return 0;
        }
    pol_list_names(list, sizeof list, names, sizeof *names);
    s = pol_suggest(v, names, sizeof *names);
    if (s)
        pol_error(c, "'%s' is not one of: %s; did you mean '%s'?",
                  pol_show(v, buf, sizeof buf), list, s);
    else
        pol_error(c, "'%s' is not one of: %s", pol_show(v, buf, sizeof buf), list);
    return 0;
}

/* A string; k->arg, if set, is the largest length. */
static int
h_str(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char **at = pol_at(obj, k), *s;
    const char *v = pol_scalar(c, "a string");
    size_t max = k->arg ? *(const size_t *)k->arg : PPF_POLICY_MAX_PATH;

    if (!v)
        return c->fatal ? -1 : 0;
    if (strlen(v) == 0 && pol_is_plain(c)) {
        pol_error(c, "expected a string, found nothing");
        return 0;
    }
    if (strlen(v) > max) {
        pol_error(c, "%zu bytes; at most %zu are allowed", strlen(v), max);
        return 0;
    }
    s = strdup(v);
    if (!s) {
        pol_error(c, "out of memory");
        c->fatal = true;
        return -1;
    }
    free(*at);
    *at = s;
    return 0;
}

/* --- collections ------------------------------------------------------ */

static bool
pol_expect(struct pol_parser *c, yaml_event_type_t type, const char *what)
{
    char buf[96];

    if (c->ev.type == type)
        return true;
    pol_error(c, "expected %s, found %s", what, pol_found(c, buf, sizeof buf));
    pol_skip(c);
    return false;
}

/* Reads a mapping (the current event is its start) whose keys are in
 * keys[] (terminated by a NULL name); values go to obj. */
static int
pol_mapping(struct pol_parser *c, const struct pol_key *keys, void *obj)
{
    unsigned first_line[64] = { 0 };
    char buf[80], list[256];
    const char *key, *s;
    yaml_mark_t km;
    size_t saved, i;

    for (;;) {
        if (pol_next(c) < 0)
            return -1;
        if (c->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        km = c->ev.start_mark;
        if (c->ev.type != YAML_SCALAR_EVENT) {
            pol_error(c, "keys must be plain words, found %s", pol_found(c, buf, sizeof buf));
            if (pol_skip(c) < 0 || pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        key = (const char *)c->ev.data.scalar.value;
        for (i = 0; keys[i].name; i++)
            if (strcmp(key, keys[i].name) == 0)
                break;
        saved = pol_push_key(c, key);
        if (!keys[i].name) {
            pol_list_names(list, sizeof list, &keys[0].name, sizeof keys[0]);
            s = pol_suggest(key, &keys[0].name, sizeof keys[0]);
            if (s)
                pol_error_at(c, &km, NULL, "unknown key '%s'; did you mean '%s'?",
                             pol_show(key, buf, sizeof buf), s);
            else
                pol_error_at(c, &km, NULL, "unknown key '%s'; allowed here: %s",
                             pol_show(key, buf, sizeof buf), list);
            pol_pop(c, saved);
            if (pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        if (i < 64 && first_line[i]) {
            pol_error_at(c, &km, NULL, "duplicate key '%s' (first given at line %u); "
                         "keep one", keys[i].name, first_line[i]);
            pol_pop(c, saved);
            if (pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        if (i < 64)
            first_line[i] = (unsigned)km.line + 1;
        if (pol_next(c) < 0 || pol_record_at(c, &km) < 0)
            return -1;
        if (keys[i].fn(c, &keys[i], obj) < 0)
            return -1;
        pol_pop(c, saved);
    }
}

/* A section: k->arg is its key table; fields are relative to obj. */
static int
h_section(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a mapping"))
        return c->fatal ? -1 : 0;
    return pol_mapping(c, k->arg, obj);
}

/* Calls fn for each element of a list (the current event is its start),
 * with the path extended by [i]; at most max elements. */
static int
pol_sequence(struct pol_parser *c, size_t max,
             int (*fn)(struct pol_parser *c, size_t i, void *arg), void *arg)
{
    size_t i, saved;

    if (!pol_expect(c, YAML_SEQUENCE_START_EVENT, "a list"))
        return c->fatal ? -1 : 0;
    for (i = 0;; i++) {
        if (pol_next(c) < 0)
            return -1;
        if (c->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        saved = pol_push(c, "[%zu]", i);
        if (i == max)
            pol_error(c, "more than %zu entries; the rest are ignored", max);
        if (i >= max) {
            if (pol_skip(c) < 0)
                return -1;
        } else if (pol_record(c) < 0 || fn(c, i, arg) < 0) {
            return -1;
        }
        pol_pop(c, saved);
    }
}

static int
pol_metric(struct pol_parser *c, size_t i, void *arg)
{
    static const struct pol_key k = { "metric", h_enum, 0, ppf_policy_metric_names };
    uint32_t *mask = arg;
    unsigned v = PPF_METRIC__COUNT;

    if (h_enum(c, &k, &v) < 0)
        return -1;
    if (v >= PPF_METRIC__COUNT)
        return 0;
    if (*mask & (1u << v))
        pol_error(c, "metric '%s' is listed twice", ppf_policy_metric_names[v]);
    *mask |= 1u << v;
    return 0;
}

static int
h_metrics(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    uint32_t *mask = pol_at(obj, k);

    *mask = 0;
    return pol_sequence(c, 64, pol_metric, mask);
}

struct pol_strv {
    char ***v;
    size_t *n;
};

static int
pol_strv_item(struct pol_parser *c, size_t i, void *arg)
{
    struct pol_strv *sv = arg;
    const char *v = pol_scalar(c, "a string");
    char **nv, *s;

    if (!v)
        return c->fatal ? -1 : 0;
    if (strlen(v) > PPF_POLICY_MAX_PATH) {
        pol_error(c, "%zu bytes; at most %d are allowed", strlen(v), PPF_POLICY_MAX_PATH);
        return 0;
    }
    nv = realloc(*sv->v, (*sv->n + 1) * sizeof *nv);
    s = strdup(v);
    if (nv)
        *sv->v = nv;
    if (!nv || !s) {
        free(s);
        pol_error(c, "out of memory");
        c->fatal = true;
        return -1;
    }
    nv[(*sv->n)++] = s;
    return 0;
}

/* k->arg: the largest count; the char ** list at off, its count after. */
static int
h_strv(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    char ***v = pol_at(obj, k);
    size_t *n = (size_t *)(void *)((char *)obj + k->off + sizeof(char **));
    struct pol_strv sv = { v, n };

    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
    return pol_sequence(c, *(const size_t *)k->arg, pol_strv_item, &sv);
}

/* --- stores, tenants, pins, schedules --------------------------------- */

static const size_t max_name = PPF_POLICY_MAX_NAME, max_url = PPF_POLICY_MAX_URL,
                    max_image = PPF_POLICY_MAX_IMAGE, max_short = 64,
                    max_dirs = PPF_POLICY_MAX_DIRS, max_peers = PPF_POLICY_MAX_PEERS;

#define KS(st, name, fn, member, arg) { name, fn, offsetof(st, member), arg }
static const struct pol_key store_keys[] = {
    KS(struct ppf_policy_store, "name", h_str, name, &max_name),
    KS(struct ppf_policy_store, "url", h_str, url, &max_url),
    KS(struct ppf_policy_store, "ca_file", h_str, ca_file, NULL),
    KS(struct ppf_policy_store, "pinned_cert", h_str, pinned_cert, NULL),
    { NULL, NULL, 0, NULL }
};
static const struct pol_key tenant_keys[] = {
    KS(struct ppf_policy_tenant, "quota", h_size, quota, NULL),
    KS(struct ppf_policy_tenant, "keyfile", h_str, keyfile, NULL),
    KS(struct ppf_policy_tenant, "priority", h_enum, priority, ppf_policy_priority_names),
    KS(struct ppf_policy_tenant, "share", h_bool, share, NULL),
    { NULL, NULL, 0, NULL }
};
static const struct pol_key pin_keys[] = {
    KS(struct ppf_policy_pin, "image", h_str, image, &max_image),
    KS(struct ppf_policy_pin, "tenant", h_str, tenant, &max_name),
    KS(struct ppf_policy_pin, "until", h_str, until, &max_short),
    { NULL, NULL, 0, NULL }
};
static const struct pol_key schedule_keys[] = {
    KS(struct ppf_policy_schedule, "when", h_str, when, &max_short),
    KS(struct ppf_policy_schedule, "image", h_str, image, &max_image),
    KS(struct ppf_policy_schedule, "tenant", h_str, tenant, &max_name),
    KS(struct ppf_policy_schedule, "before", h_str, before, &max_short),
    { NULL, NULL, 0, NULL }
};
#undef KS

/* Grows an array of elements by one zeroed element; NULL on ENOMEM. */
static void *
pol_grow(struct pol_parser *c, void **v, size_t *n, size_t size)
{
    char *nv = realloc(*v, (*n + 1) * size);

    if (!nv) {
        pol_error(c, "out of memory");
        c->fatal = true;
        return NULL;
    }
    *v = nv;
    memset(nv + *n * size, 0, size);
    return nv + (*n)++ * size;
}

static int
pol_store(struct pol_parser *c, size_t i, void *arg)
{
    struct ppf_policy_store *s;

    if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a store {name, url}"))
        return c->fatal ? -1 : 0;
    s = pol_grow(c, (void **)&c->p->stores, &c->p->nstores, sizeof *s);
    if (!s || pol_mapping(c, store_keys, s) < 0)
        return -1;
    return 0;
}

static int
h_stores(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    struct ppf_policy *p = c->p;

    for (size_t i = 0; i < p->nstores; i++) {
        free(p->stores[i].name);
        free(p->stores[i].url);
        free(p->stores[i].ca_file);
        free(p->stores[i].pinned_cert);
    }
    free(p->stores);
    p->stores = NULL;
    p->nstores = 0;
    return pol_sequence(c, PPF_POLICY_MAX_STORES, pol_store, NULL);
}

static int
h_tenants(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    struct ppf_policy *p = c->p;
    struct ppf_policy_tenant *t;
    char buf[96];
    const char *name;
    yaml_mark_t km;
    size_t saved, i;

    for (i = 0; i < p->ntenants; i++) {
        free(p->tenants[i].name);
        free(p->tenants[i].keyfile);
    }
    free(p->tenants);
    p->tenants = NULL;
    p->ntenants = 0;
    if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a mapping of tenant names"))
        return c->fatal ? -1 : 0;
    for (;;) {
        if (pol_next(c) < 0)
            return -1;
        if (c->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        km = c->ev.start_mark;
        name = c->ev.type == YAML_SCALAR_EVENT ? (const char *)c->ev.data.scalar.value : NULL;
        if (!name || !ppf_policy_valid_name(name)) {
            if (name)
                pol_error(c, "'%s' is not a tenant name: use 1 to %d letters, digits, "
                          "'.', '_' or '-'", pol_show(name, buf, sizeof buf),
                          PPF_POLICY_MAX_NAME);
            else
                pol_error(c, "expected a tenant name, found %s", pol_found(c, buf, sizeof buf));
            if (pol_skip(c) < 0 || pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        saved = pol_push_key(c, name);
        if (ppf_policy_find_tenant(p, name)) {
            pol_error_at(c, &km, NULL, "duplicate tenant '%s'; keep one", name);
            pol_pop(c, saved);
            if (pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        if (p->ntenants == PPF_POLICY_MAX_TENANTS)
            pol_error_at(c, &km, NULL, "more than %d tenants; the rest are ignored",
                         PPF_POLICY_MAX_TENANTS);
        if (p->ntenants >= PPF_POLICY_MAX_TENANTS) {
            pol_pop(c, saved);
            if (pol_next(c) < 0 || pol_skip(c) < 0)
                return -1;
            continue;
        }
        t = pol_grow(c, (void **)&p->tenants, &p->ntenants, sizeof *t);
        if (!t || !(t->name = strdup(name)))
            return -1;
        t->priority = PPF_PRIO_NORMAL;
        t->share = true;
        if (pol_next(c) < 0 || pol_record_at(c, &km) < 0)
            return -1;
        /* "alice: {}" and "alice:" alone both mean all defaults. */
        if (c->ev.type == YAML_SCALAR_EVENT && c->ev.data.scalar.length == 0
            && pol_is_plain(c)) {
            pol_pop(c, saved);
            continue;
        }
        if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a mapping {quota, keyfile, priority, share}")) {
            if (c->fatal)
                return -1;
        } else if (pol_mapping(c, tenant_keys, t) < 0) {
            return -1;
        }
        pol_pop(c, saved);
    }
}

static int
pol_pin(struct pol_parser *c, size_t i, void *arg)
{
    struct ppf_policy_pin *pin;

    if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a pin {image, tenant, until}"))
        return c->fatal ? -1 : 0;
    pin = pol_grow(c, (void **)&c->p->pins, &c->p->npins, sizeof *pin);
    if (!pin || pol_mapping(c, pin_keys, pin) < 0)
        return -1;
    if ((!pin->tenant && !(pin->tenant = strdup(PPF_POLICY_DEFAULT_TENANT)))
        || (!pin->until && !(pin->until = strdup("never")))) {
        pol_error(c, "out of memory");
        c->fatal = true;
        return -1;
    }
    return 0;
}

static int
h_pins(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    return pol_sequence(c, PPF_POLICY_MAX_PINS, pol_pin, NULL);
}

static int
pol_schedule(struct pol_parser *c, size_t i, void *arg)
{
    struct ppf_policy_schedule *s;

    if (!pol_expect(c, YAML_MAPPING_START_EVENT, "a schedule {when, image, tenant, before}"))
        return c->fatal ? -1 : 0;
    s = pol_grow(c, (void **)&c->p->schedules, &c->p->nschedules, sizeof *s);
    if (!s || pol_mapping(c, schedule_keys, s) < 0)
        return -1;
    if (!s->tenant && !(s->tenant = strdup(PPF_POLICY_DEFAULT_TENANT))) {
        pol_error(c, "out of memory");
        c->fatal = true;
        return -1;
    }
    return 0;
}

static int
h_schedules(struct pol_parser *c, const struct pol_key *k, void *obj)
{
    return pol_sequence(c, PPF_POLICY_MAX_SCHEDULES, pol_schedule, NULL);
}

/* --- the key tables --------------------------------------------------- */

#define K(name, fn, member, arg) { name, fn, offsetof(struct ppf_policy, member), arg }
#define END { NULL, NULL, 0, NULL }
static const struct pol_key monitoring_keys[] = {
    K("interval", h_duration, monitoring.interval_ms, NULL),
    K("metrics", h_metrics, monitoring.metrics, NULL),
    END
};
static const struct pol_key markov_keys[] = {
    K("order", h_u32, learning.markov_order, NULL), END
};
static const struct pol_key decay_keys[] = {
    K("half_life", h_duration, learning.half_life_ms, NULL), END
};
static const struct pol_key learning_keys[] = {
    K("algorithm", h_enum, learning.algorithm, ppf_policy_algorithm_names),
    { "markov", h_section, 0, markov_keys },
    { "decay", h_section, 0, decay_keys },
    K("horizon", h_duration, learning.horizon_ms, NULL),
    K("time_buckets", h_u32, learning.time_buckets, NULL),
    K("adaptation_rate", h_rate, learning.adaptation_rate, NULL),
    K("store_size", h_size, learning.store_size, NULL),
    END
};
static const struct pol_key dynamic_keys[] = {
    K("enabled", h_bool, table.dynamic, NULL),
    K("min", h_u32, table.min, NULL),
    K("max", h_u32, table.max, NULL),
    END
};
static const struct pol_key table_keys[] = {
    K("size", h_u32, table.size, NULL),
    { "dynamic", h_section, 0, dynamic_keys },
    END
};
static const struct pol_key prefetch_keys[] = {
    K("priority", h_enum, prefetch.priority, ppf_policy_priority_names),
    K("bandwidth", h_bandwidth, prefetch.bandwidth, NULL),
    K("concurrent", h_u32, prefetch.concurrent, NULL),
    K("workers", h_u32, prefetch.workers, NULL),
    END
};
static const struct pol_key buffer_keys[] = {
    K("path", h_str, buffer.path, NULL),
    K("capacity", h_size, buffer.capacity, NULL),
    K("eviction", h_enum, buffer.eviction, ppf_policy_eviction_names),
    K("reserve", h_size, buffer.reserve, NULL),
    K("overcommit", h_bool, buffer.overcommit, NULL),
    K("revalidate", h_duration, buffer.revalidate_ms, NULL),
    END
};
static const struct pol_key deploy_keys[] = {
    K("dirs", h_strv, deploy.dirs, &max_dirs),
    K("mode", h_enum, deploy.mode, ppf_policy_deploy_mode_names),
    K("fallback", h_enum, deploy.fallback, ppf_policy_fallback_names),
    K("ephemeral", h_bool, deploy.ephemeral, NULL),
    END
};
static const struct pol_key federation_keys[] = {
    K("enabled", h_bool, federation.enabled, NULL),
    K("listen", h_str, federation.listen, &max_short),
    K("peers", h_strv, federation.peers, &max_peers),
    K("ca_file", h_str, federation.ca_file, NULL),
    K("cert_file", h_str, federation.cert_file, NULL),
    K("key_file", h_str, federation.key_file, NULL),
    K("interval", h_duration, federation.interval_ms, NULL),
    END
};
static const struct pol_key root_keys[] = {
    { "monitoring", h_section, 0, monitoring_keys },
    { "learning", h_section, 0, learning_keys },
    { "table", h_section, 0, table_keys },
    { "prefetch", h_section, 0, prefetch_keys },
    { "buffer", h_section, 0, buffer_keys },
    { "stores", h_stores, 0, NULL },
    { "tenants", h_tenants, 0, NULL },
    { "deploy", h_section, 0, deploy_keys },
    { "federation", h_section, 0, federation_keys },
    { "pins", h_pins, 0, NULL },
    { "schedules", h_schedules, 0, NULL },
    END
};
#undef K
#undef END

_Static_assert(sizeof(enum ppf_policy_priority) == sizeof(unsigned), "enum width");
_Static_assert(offsetof(struct ppf_policy, deploy.ndirs)
               == offsetof(struct ppf_policy, deploy.dirs) + sizeof(char **), "strv layout");
_Static_assert(offsetof(struct ppf_policy, federation.npeers)
               == offsetof(struct ppf_policy, federation.peers) + sizeof(char **),
               "strv layout");

/* --- the input -------------------------------------------------------- */

/* Refuses what is not UTF-8 text before libyaml sees it, naming the first
 * bad byte's line and column (in characters, as libyaml counts). */
static int
pol_prescan(struct pol_parser *c, const unsigned char *s, size_t len)
{
    yaml_mark_t m = { 0, 0, 0 };
    size_t i = 0, n;

    if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
        i = 3;          /* UTF-8 byte order mark */
    while (i < len) {
        unsigned b = s[i];

        m.index = i;
        if (b == '\n') {
            m.line++;
            m.column = 0;
            i++;
            continue;
        }
        if (b == 0) {
            pol_error_at(c, &m, "", "NUL byte: this is binary data, not a YAML policy");
            return -1;
        }
        if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f) {
            pol_error_at(c, &m, "", "control character 0x%02x: this is binary data, "
                         "not a YAML policy", b);
            return -1;
        }
        n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3
            : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
        if (n == 0 || len - i < n
            || (n > 1 && !ppf_policy_utf8_valid((const char *)s + i, n))) {
            pol_error_at(c, &m, "", "invalid UTF-8 (byte 0x%02x); a policy must be UTF-8 "
                         "text: convert it, e.g. with iconv -t UTF-8", b);
            return -1;
        }
        i += n;
        m.column++;
    }
    return 0;
}

static int
pol_document(struct pol_parser *c)
{
    char buf[96];

    if (pol_next(c) < 0)
        return -1;
    if (c->ev.type != YAML_STREAM_START_EVENT)
        return -1;
    if (pol_next(c) < 0)
        return -1;
    if (c->ev.type == YAML_STREAM_END_EVENT)
        return 0;               /* empty file: all defaults */
    if (pol_next(c) < 0)        /* the root node */
        return -1;
    if (c->ev.type == YAML_MAPPING_START_EVENT) {
        if (pol_mapping(c, root_keys, c->p) < 0)
            return -1;
    } else if (!(c->ev.type == YAML_SCALAR_EVENT && c->ev.data.scalar.length == 0
                 && pol_is_plain(c))) {
        pol_error(c, "a policy is a mapping of sections (monitoring, learning, table, "
                  "prefetch, buffer, stores, tenants, deploy, federation, pins, schedules); "
                  "found %s", pol_found(c, buf, sizeof buf));
        if (pol_skip(c) < 0)
            return -1;
    }
    if (pol_next(c) < 0)        /* document end */
        return -1;
    if (pol_next(c) < 0)
        return -1;
    if (c->ev.type != YAML_STREAM_END_EVENT) {
        pol_error(c, "a policy file holds one YAML document; remove everything after '---'");
        return -1;
    }
    return 0;
}

/* Sorts the diagnostics added since index from by line and column
 * (stable; those without a position last), so they read like the file. */
static void
pol_sort_diags(struct ppf_policy_diags *d, size_t from)
{
    for (size_t i = from + 1; i < d->n; i++) {
        struct ppf_policy_diag x = d->v[i];
        uint64_t kx = x.line ? ((uint64_t)x.line << 32 | x.column) : UINT64_MAX;
        size_t j = i;

        while (j > from) {
            const struct ppf_policy_diag *y = &d->v[j - 1];
            uint64_t ky = y->line ? ((uint64_t)y->line << 32 | y->column) : UINT64_MAX;

            if (ky <= kx)
                break;
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
}

int
ppf_policy_parse_buffer_flags(const char *name, const char *buf, size_t len, unsigned flags,
                              struct ppf_policy **out, struct ppf_policy_diags *d)
{
    struct pol_parser c;
    size_t first = d->n;
    int rc;

    *out = NULL;
    if (!buf)
        buf = "";
    memset(&c, 0, sizeof c);
    c.name = name ? name : "policy";
    c.d = d;
    if (len > PPF_POLICY_MAX_INPUT) {
        ppf_policy_diags_add(d, c.name, 0, 0, "", "%zu bytes; a policy is at most %d bytes "
                             "(1 MiB): this is not a policy file", len, PPF_POLICY_MAX_INPUT);
        return -1;
    }
    if (pol_prescan(&c, (const unsigned char *)buf, len) < 0)
        return -1;
    c.p = ppf_policy_new();
    if (!c.p || ppf_policy_origin_set_file(c.p, c.name) < 0) {
        ppf_policy_free(c.p);
        ppf_policy_diags_add(d, c.name, 0, 0, "", "out of memory");
        return -1;
    }
    if (!yaml_parser_initialize(&c.yp)) {
        ppf_policy_free(c.p);
        ppf_policy_diags_add(d, c.name, 0, 0, "", "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&c.yp, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&c.yp, YAML_UTF8_ENCODING);
    rc = pol_document(&c);
    if (c.have_ev)
        yaml_event_delete(&c.ev);
    yaml_parser_delete(&c.yp);

    if (rc == 0 && !c.fatal) {
        /* The store and the tenant that always exist. */
        if ((c.p->nstores == 0 && ppf_policy_add_default_store(c.p) < 0)
            || (!ppf_policy_find_tenant(c.p, PPF_POLICY_DEFAULT_TENANT)
                && ppf_policy_add_default_tenant(c.p) < 0)) {
            ppf_policy_diags_add(d, c.name, 0, 0, "", "out of memory");
            c.errors++;
        } else {
            if (ppf_policy_check(c.p, d) < 0)
                c.errors++;
            if (!(flags & PPF_POLICY_NO_FILE_CHECKS) && ppf_policy_check_files(c.p, d) < 0)
                c.errors++;
        }
    }
    pol_sort_diags(d, first);
    if (rc < 0 || c.fatal || c.errors) {
        ppf_policy_free(c.p);
        return -1;
    }
    *out = c.p;
    return 0;
}

int
ppf_policy_parse_buffer(const char *name, const char *buf, size_t len,
                        struct ppf_policy **out, struct ppf_policy_diags *d)
{
    return ppf_policy_parse_buffer_flags(name, buf, len, 0, out, d);
}

int
ppf_policy_parse_file_flags(const char *path, unsigned flags, struct ppf_policy **out,
                            struct ppf_policy_diags *d)
{
    CLEANUP_CLOSE int fd = -1;
    CLEANUP_FREE char *buf = NULL;
    struct stat st;
    size_t len = 0;
    ssize_t r;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        ppf_policy_diags_add(d, path, 0, 0, "", "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ppf_policy_diags_add(d, path, 0, 0, "", "not a regular file; name the policy file "
                             "itself");
        return -1;
    }
    if (st.st_size > PPF_POLICY_MAX_INPUT) {
        ppf_policy_diags_add(d, path, 0, 0, "", "%lld bytes; a policy is at most %d bytes "
                             "(1 MiB): this is not a policy file", (long long)st.st_size,
                             PPF_POLICY_MAX_INPUT);
        return -1;
    }
    /* One byte more than the limit, so a file that grew is still caught. */
    buf = malloc(PPF_POLICY_MAX_INPUT + 1);
    if (!buf) {
        ppf_policy_diags_add(d, path, 0, 0, "", "out of memory");
        return -1;
    }
    while (len <= PPF_POLICY_MAX_INPUT) {
        r = read(fd, buf + len, PPF_POLICY_MAX_INPUT + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ppf_policy_diags_add(d, path, 0, 0, "", "read: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    return ppf_policy_parse_buffer_flags(path, buf, len, flags, out, d);
}

int
ppf_policy_parse_file(const char *path, struct ppf_policy **out, struct ppf_policy_diags *d)
{
    return ppf_policy_parse_file_flags(path, 0, out, d);
}

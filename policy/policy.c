/* The policy structure: defaults, release, value formats (sizes and
 * durations), validators, the origin table and the semantic check that
 * both the host (after parsing) and the peripheral (after decoding an
 * untrusted CONFIGURE payload) run.  No libyaml, no file access here.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy-int.h"

const char *const ppf_policy_algorithm_names[] = {
    "markov", "seasonal", "histogram", "workload", "ensemble", "lru", "none", NULL
};
const char *const ppf_policy_priority_names[] = { "low", "normal", "high", NULL };
const char *const ppf_policy_eviction_names[] = { "value", "lru", NULL };
const char *const ppf_policy_deploy_mode_names[] = { "overlay", "copy", NULL };
const char *const ppf_policy_fallback_names[] = { "host", "fail", NULL };
const char *const ppf_policy_metric_names[] = {
    "cpu", "memory", "pressure", "disk", "net", NULL
};

#define NAME_FN(fn, table, max)                 \
    const char *fn(unsigned v)                  \
    {                                           \
        return v < (max) ? table[v] : NULL;     \
    }
NAME_FN(ppf_policy_algorithm_name, ppf_policy_algorithm_names, PPF_ALGO__MAX)
NAME_FN(ppf_policy_priority_name, ppf_policy_priority_names, PPF_PRIO__MAX)
NAME_FN(ppf_policy_eviction_name, ppf_policy_eviction_names, PPF_EVICT__MAX)
NAME_FN(ppf_policy_deploy_mode_name, ppf_policy_deploy_mode_names, PPF_DEPLOY__MAX)
NAME_FN(ppf_policy_fallback_name, ppf_policy_fallback_names, PPF_FALLBACK__MAX)
NAME_FN(ppf_policy_metric_name, ppf_policy_metric_names, PPF_METRIC__COUNT)

/* --- defaults and release --------------------------------------------- */

int
ppf_policy_add_default_store(struct ppf_policy *p)
{
    struct ppf_policy_store *v;

    v = realloc(p->stores, (p->nstores + 1) * sizeof *v);
    if (!v)
        return -1;
    p->stores = v;
    v += p->nstores;
    memset(v, 0, sizeof *v);
    v->name = strdup(PPF_POLICY_DEFAULT_STORE_NAME);
    v->url = strdup(PPF_POLICY_DEFAULT_STORE_URL);
    p->nstores++;
    return v->name && v->url ? 0 : -1;
}

int
ppf_policy_add_default_tenant(struct ppf_policy *p)
{
    struct ppf_policy_tenant *v;

    v = realloc(p->tenants, (p->ntenants + 1) * sizeof *v);
    if (!v)
        return -1;
    p->tenants = v;
    v += p->ntenants;
    memset(v, 0, sizeof *v);
    v->name = strdup(PPF_POLICY_DEFAULT_TENANT);
    v->priority = PPF_PRIO_NORMAL;
    v->share = true;
    p->ntenants++;
    return v->name ? 0 : -1;
}

int
ppf_policy_init_defaults(struct ppf_policy *p)
{
    memset(p, 0, sizeof *p);
    p->monitoring.interval_ms = 1000;
    p->monitoring.metrics = PPF_METRIC__ALL;
    p->learning.algorithm = PPF_ALGO_ENSEMBLE;
    p->learning.markov_order = 2;
    p->learning.half_life_ms = 7ull * 24 * 3600 * 1000;
    p->learning.horizon_ms = 3600ull * 1000;
    p->learning.time_buckets = 24;
    p->learning.adaptation_rate = 0.1;
    p->learning.store_size = 16ull << 20;
    p->table.size = 1024;
    p->table.dynamic = true;
    p->table.min = 256;
    p->table.max = 16384;
    p->prefetch.priority = PPF_PRIO_NORMAL;
    p->prefetch.bandwidth = 0;
    p->prefetch.concurrent = 2;
    p->prefetch.workers = 2;
    p->buffer.capacity = 8ull << 30;
    p->buffer.eviction = PPF_EVICT_VALUE;
    p->buffer.reserve = 1ull << 30;
    p->buffer.overcommit = false;
    p->buffer.revalidate_ms = 30 * 1000;
    p->deploy.mode = PPF_DEPLOY_OVERLAY;
    p->deploy.fallback = PPF_FALLBACK_HOST;
    p->deploy.ephemeral = false;
    p->federation.enabled = false;
    p->federation.interval_ms = 30 * 1000;

    p->buffer.path = strdup("/var/lib/ppf/buffer");
    p->federation.listen = strdup("0.0.0.0:7480");
    p->deploy.dirs = calloc(1, sizeof *p->deploy.dirs);
    if (p->deploy.dirs) {
        p->deploy.dirs[0] = strdup("/var/lib/libvirt/images");
        p->deploy.ndirs = 1;
    }
    if (!p->buffer.path || !p->federation.listen || !p->deploy.dirs || !p->deploy.dirs[0]
        || ppf_policy_add_default_store(p) < 0 || ppf_policy_add_default_tenant(p) < 0) {
        ppf_policy_clear(p);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

struct ppf_policy *
ppf_policy_new(void)
{
    struct ppf_policy *p = malloc(sizeof *p);

    if (!p)
        return NULL;
    if (ppf_policy_init_defaults(p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

static void
pol_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
ppf_policy_clear(struct ppf_policy *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->nstores; i++) {
        free(p->stores[i].name);
        free(p->stores[i].url);
        free(p->stores[i].ca_file);
        free(p->stores[i].pinned_cert);
    }
    free(p->stores);
    for (i = 0; i < p->ntenants; i++) {
        free(p->tenants[i].name);
        free(p->tenants[i].keyfile);
    }
    free(p->tenants);
    for (i = 0; i < p->npins; i++) {
        free(p->pins[i].image);
        free(p->pins[i].tenant);
        free(p->pins[i].until);
    }
    free(p->pins);
    for (i = 0; i < p->nschedules; i++) {
        free(p->schedules[i].when);
        free(p->schedules[i].image);
        free(p->schedules[i].tenant);
        free(p->schedules[i].before);
    }
    free(p->schedules);
    free(p->buffer.path);
    pol_free_strv(p->deploy.dirs, p->deploy.ndirs);
    free(p->federation.listen);
    pol_free_strv(p->federation.peers, p->federation.npeers);
    free(p->federation.ca_file);
    free(p->federation.cert_file);
    free(p->federation.key_file);
    if (p->origin) {
        for (i = 0; i < p->origin->n; i++)
            free(p->origin->v[i].path);
        free(p->origin->v);
        free(p->origin->file);
        free(p->origin);
    }
    memset(p, 0, sizeof *p);
}

void
ppf_policy_free(struct ppf_policy *p)
{
    ppf_policy_clear(p);
    free(p);
}

const struct ppf_policy_tenant *
ppf_policy_find_tenant(const struct ppf_policy *p, const char *name)
{
    for (size_t i = 0; i < p->ntenants; i++)
        if (p->tenants[i].name && strcmp(p->tenants[i].name, name) == 0)
            return &p->tenants[i];
    return NULL;
}

/* --- sizes and durations ---------------------------------------------- */

static const struct { const char *suffix; uint64_t mult; } pol_size_units[] = {
    { "TiB", 1ull << 40 }, { "GiB", 1ull << 30 }, { "MiB", 1ull << 20 }, { "KiB", 1ull << 10 },
    { "TB", 1000000000000ull }, { "GB", 1000000000ull }, { "MB", 1000000ull },
    { "kB", 1000ull }, { "KB", 1000ull },
    { "T", 1ull << 40 }, { "G", 1ull << 30 }, { "M", 1ull << 20 }, { "K", 1ull << 10 },
    { "B", 1 }, { "", 1 },
};

static const struct { const char *suffix; uint64_t mult; } pol_duration_units[] = {
    { "d", 86400000ull }, { "h", 3600000ull }, { "m", 60000ull }, { "s", 1000ull },
    { "ms", 1 },
};

/* Leading decimal digits of s (at least one, at most 19); -1 otherwise. */
static int
pol_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t x = 0;
    int n = 0;

    while (*s >= '0' && *s <= '9') {
        if (++n > 19)
            return -1;
        x = x * 10 + (uint64_t)(*s++ - '0');
    }
    if (n == 0)
        return -1;
    *v = x;
    *end = s;
    return 0;
}

int
ppf_policy_parse_size(const char *s, uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (!s || pol_digits(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < sizeof pol_size_units / sizeof pol_size_units[0]; i++) {
        if (strcmp(end, pol_size_units[i].suffix) != 0)
            continue;
        if (v > UINT64_MAX / pol_size_units[i].mult)
            return -1;
        *out = v * pol_size_units[i].mult;
        return 0;
    }
    return -1;
}

int
ppf_policy_parse_duration(const char *s, uint64_t *ms)
{
    const char *end;
    uint64_t v;

    if (!s || pol_digits(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < sizeof pol_duration_units / sizeof pol_duration_units[0]; i++) {
        if (strcmp(end, pol_duration_units[i].suffix) != 0)
            continue;
        if (v > UINT64_MAX / pol_duration_units[i].mult)
            return -1;
        *ms = v * pol_duration_units[i].mult;
        return 0;
    }
    return -1;
}

void
ppf_policy_format_size(uint64_t v, char *buf, size_t len)
{
    /* The first eight units: binary (TiB..KiB), then decimal (TB..kB);
     * else plain bytes. */
    if (v == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < 8; i++) {
        uint64_t m = pol_size_units[i].mult;

        if (v % m == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(v / m), pol_size_units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, "%lluB", (unsigned long long)v);
}

void
ppf_policy_format_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof pol_duration_units / sizeof pol_duration_units[0]; i++) {
        uint64_t m = pol_duration_units[i].mult;

        if (ms % m == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / m),
                     pol_duration_units[i].suffix);
            return;
        }
    }
}

/* --- validators ------------------------------------------------------- */

bool
ppf_policy_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], n, cp, k;

        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += n + 1;
    }
    return true;
}

static bool
pol_text_ok(const char *s, size_t max)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    return n > 0 && n <= max && ppf_policy_utf8_valid(s, n);
}

bool
ppf_policy_valid_name(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > PPF_POLICY_MAX_NAME || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool
ppf_policy_valid_image(const char *s)
{
    if (!pol_text_ok(s, PPF_POLICY_MAX_IMAGE))
        return false;
    return !strchr(s, '/') && !strstr(s, "..") && strcmp(s, ".") != 0;
}

bool
ppf_policy_valid_abs_path(const char *s)
{
    const char *c;

    if (!pol_text_ok(s, PPF_POLICY_MAX_PATH) || s[0] != '/')
        return false;
    for (c = s; (c = strstr(c, "/..")) != NULL; c += 3)
        if (c[3] == '/' || c[3] == '\0')
            return false;
    return true;
}

static bool
pol_valid_port(const char *s)
{
    uint64_t v;
    const char *end;

    return pol_digits(s, &v, &end) == 0 && *end == '\0' && v >= 1 && v <= 65535
           && s[0] != '0';
}

bool
ppf_policy_valid_host_port(const char *s)
{
    const char *colon, *close;
    size_t hl;

    if (!pol_text_ok(s, 300))
        return false;
    if (s[0] == '[') {
        close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            return false;
        if (strspn(s + 1, "0123456789abcdefABCDEF:.") != (size_t)(close - s - 1))
            return false;
        return pol_valid_port(close + 2);
    }
    colon = strrchr(s, ':');
    if (!colon)
        return false;
    hl = (size_t)(colon - s);
    if (hl == 0 || hl > 253 || s[0] == '-' || s[0] == '.')
        return false;
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != hl)
        return false;
    return pol_valid_port(colon + 1);
}

static bool
pol_two_digits(const char *s, unsigned max, unsigned *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *out = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
    return *out <= max;
}

bool
ppf_policy_valid_hhmm(const char *s)
{
    unsigned h, m;

    return s && strlen(s) == 5 && pol_two_digits(s, 23, &h) && s[2] == ':'
           && pol_two_digits(s + 3, 59, &m);
}

bool
ppf_policy_valid_when(const char *s)
{
    static const char *const days[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
    const char *sp, *c;
    size_t n, i;

    if (!s || !(sp = strchr(s, ' ')) || !ppf_policy_valid_hhmm(sp + 1))
        return false;
    n = (size_t)(sp - s);
    if ((n == 5 && strncmp(s, "daily", 5) == 0) || (n == 8 && strncmp(s, "weekdays", 8) == 0)
        || (n == 8 && strncmp(s, "weekends", 8) == 0))
        return true;
    /* A comma list of day names. */
    for (c = s; c < sp; c += 4) {
        for (i = 0; i < 7; i++)
            if (strncmp(c, days[i], 3) == 0)
                break;
        if (i == 7 || (c[3] != ',' && c + 3 != sp) || (c[3] == ',' && c + 4 >= sp))
            return false;
    }
    return true;
}

bool
ppf_policy_valid_until(const char *s)
{
    unsigned v;
    size_t n;

    if (!s)
        return false;
    if (strcmp(s, "never") == 0)
        return true;
    n = strlen(s);
    if (n < 10 || !pol_two_digits(s, 99, &v) || !pol_two_digits(s + 2, 99, &v) || s[4] != '-'
        || !pol_two_digits(s + 5, 12, &v) || v == 0 || s[7] != '-'
        || !pol_two_digits(s + 8, 31, &v) || v == 0)
        return false;
    if (n == 10)
        return true;
    if ((s[10] != 'T' && s[10] != ' ') || n < 16 || !pol_two_digits(s + 11, 23, &v)
        || s[13] != ':' || !pol_two_digits(s + 14, 59, &v))
        return false;
    s += 16;
    if (*s == ':') {
        if (!pol_two_digits(s + 1, 60, &v))
            return false;
        s += 3;
    }
    if (*s == 'Z')
        s++;
    return *s == '\0';
}

int
ppf_policy_until_time(const char *s, uint64_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    bool date_only;
    time_t t;

    if (!ppf_policy_valid_until(s))
        return -1;
    if (strcmp(s, "never") == 0) {
        *out = 0;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
        return -1;
    date_only = s[n] == '\0';
    if (!date_only && sscanf(s + n + 1, "%2d:%2d:%2d", &h, &mi, &sec) < 2)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = date_only ? d + 1 : d;     /* through the end of that day */
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    t = s[strlen(s) - 1] == 'Z' ? timegm(&tm) : mktime(&tm);
    if (t < 0)
        return -1;
    *out = (uint64_t)t;
    return 0;
}

/* Host part of an https URL: a name, an IPv4 address or a bracketed IPv6
 * address, optionally with a port. */
static bool
pol_valid_url_host(const char *h, size_t n)
{
    const char *colon;
    char buf[300];

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (buf[0] == '[')
        return strchr(buf, ']') && (strchr(buf, ']')[1] == '\0'
                                    || ppf_policy_valid_host_port(buf));
    colon = strchr(buf, ':');
    if (colon)
        return ppf_policy_valid_host_port(buf);
    return buf[0] != '-' && buf[0] != '.'
           && strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

const char *
ppf_policy_url_problem(const char *url)
{
    const char *rest, *slash;

    if (!pol_text_ok(url, PPF_POLICY_MAX_URL))
        return "is empty, too long or holds control characters";
    if (strpbrk(url, " ?#"))
        return "must not contain spaces, '?' or '#'";
    if (strncmp(url, "file://", 7) == 0) {
        if (url[7] != '/')
            return "a file:// URL needs an absolute path: write file:///dir";
        if (!ppf_policy_valid_abs_path(url + 7))
            return "the directory of a file:// URL must be absolute, without '..'";
        return NULL;
    }
    if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;
        slash = strchr(rest, '/');
        if (!pol_valid_url_host(rest, slash ? (size_t)(slash - rest) : strlen(rest)))
            return "has no valid host: write https://host[:port]/base";
        if (slash && strstr(slash, "/..") && !ppf_policy_valid_abs_path(slash))
            return "must not contain '..'";
        return NULL;
    }
    if (strncmp(url, "http://", 7) == 0)
        return "plain http is not supported: use https:// (with ca_file or pinned_cert)";
    return "is neither file:///dir nor https://host/base";
}

/* --- origin: where each key came from --------------------------------- */

static struct ppf_policy_origin *
pol_origin(struct ppf_policy *p)
{
    if (!p->origin)
        p->origin = calloc(1, sizeof *p->origin);
    return p->origin;
}

int
ppf_policy_origin_set_file(struct ppf_policy *p, const char *file)
{
    struct ppf_policy_origin *o = pol_origin(p);

    if (!o)
        return -1;
    free(o->file);
    o->file = strdup(file ? file : "policy");
    return o->file ? 0 : -1;
}

int
ppf_policy_origin_add(struct ppf_policy *p, const char *path, unsigned line, unsigned column)
{
    struct ppf_policy_origin *o = pol_origin(p);
    struct pol_pos *v;

    if (!o)
        return -1;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;

        v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n].path = strdup(path);
    if (!o->v[o->n].path)
        return -1;
    o->v[o->n].line = line;
    o->v[o->n].column = column;
    o->n++;
    return 0;
}

void
ppf_policy_locate(const struct ppf_policy *p, const char *path, const char **file,
                  unsigned *line, unsigned *column)
{
    const struct ppf_policy_origin *o = p->origin;
    char buf[512];
    size_t n, i;
    char *cut;

    *file = o ? o->file : NULL;
    *line = *column = 0;
    if (!o)
        return;
    snprintf(buf, sizeof buf, "%s", path);
    for (;;) {
        for (i = o->n; i-- > 0;) {
            if (strcmp(o->v[i].path, buf) == 0) {
                *line = o->v[i].line;
                *column = o->v[i].column;
                return;
            }
        }
        /* Try the enclosing key: drop the last ".key" or "[i]". */
        n = strlen(buf);
        if (n == 0)
            return;
        cut = NULL;
        for (i = n; i-- > 0;)
            if (buf[i] == '.' || buf[i] == '[') {
                cut = buf + i;
                break;
            }
        if (!cut)
            cut = buf;
        *cut = '\0';
    }
}

void
ppf_policy_diag(const struct ppf_policy *p, struct ppf_policy_diags *d, const char *path,
                const char *fmt, ...)
{
    const char *file;
    unsigned line, column;
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ppf_policy_locate(p, path, &file, &line, &column);
    ppf_policy_diags_add(d, file, line, column, path, "%s", msg);
}

/* --- semantic check --------------------------------------------------- */

struct pol_check {
    const struct ppf_policy *p;
    struct ppf_policy_diags *d;
    int errors;
};

#define CHK(c, path, ...) \
    do { ppf_policy_diag((c)->p, (c)->d, path, __VA_ARGS__); (c)->errors++; } while (0)

static void
pol_check_range(struct pol_check *c, const char *path, uint64_t v, uint64_t min, uint64_t max)
{
    if (v < min || v > max)
        CHK(c, path, "%llu is out of range; write a value from %llu to %llu",
            (unsigned long long)v, (unsigned long long)min, (unsigned long long)max);
}

static void
pol_check_duration(struct pol_check *c, const char *path, uint64_t v, uint64_t min,
                   uint64_t max)
{
    char a[32], lo[32], hi[32];

    if (v < min || v > max) {
        ppf_policy_format_duration(v, a, sizeof a);
        ppf_policy_format_duration(min, lo, sizeof lo);
        ppf_policy_format_duration(max, hi, sizeof hi);
        CHK(c, path, "%s is out of range; write a duration from %s to %s", a, lo, hi);
    }
}

static void
pol_check_size(struct pol_check *c, const char *path, uint64_t v, uint64_t min, uint64_t max)
{
    char a[32], lo[32], hi[32];

    if (v < min || v > max) {
        ppf_policy_format_size(v, a, sizeof a);
        ppf_policy_format_size(min, lo, sizeof lo);
        ppf_policy_format_size(max, hi, sizeof hi);
        CHK(c, path, "%s is out of range; write a size from %s to %s", a, lo, hi);
    }
}

static void
pol_check_abs(struct pol_check *c, const char *path, const char *v, bool required)
{
    if (!v) {
        if (required)
            CHK(c, path, "is required; write an absolute path");
        return;
    }
    if (!ppf_policy_valid_abs_path(v))
        CHK(c, path, "'%.200s' is not an absolute path without '..'; write e.g. /etc/ppf/file",
            ppf_policy_utf8_valid(v, strlen(v)) ? v : "(invalid text)");
}

static void
pol_check_enum(struct pol_check *c, const char *path, unsigned v, unsigned max)
{
    if (v >= max)
        CHK(c, path, "value %u is not a known choice", v);
}

static void
pol_check_stores(struct pol_check *c)
{
    const struct ppf_policy *p = c->p;
    char path[128];
    const char *why;

    if (p->nstores > PPF_POLICY_MAX_STORES)
        CHK(c, "stores", "%zu stores; at most %d are allowed", p->nstores,
            PPF_POLICY_MAX_STORES);
    for (size_t i = 0; i < p->nstores && i < PPF_POLICY_MAX_STORES; i++) {
        const struct ppf_policy_store *s = &p->stores[i];

        snprintf(path, sizeof path, "stores[%zu].name", i);
        if (!s->name) {
            CHK(c, path, "missing key 'name' (a short name such as local)");
        } else if (!ppf_policy_valid_name(s->name)) {
            CHK(c, path, "a store name is 1 to %d letters, digits, '.', '_' or '-'",
                PPF_POLICY_MAX_NAME);
        } else {
            for (size_t j = 0; j < i; j++)
                if (p->stores[j].name && strcmp(p->stores[j].name, s->name) == 0) {
                    CHK(c, path, "store '%s' is already defined as stores[%zu]; "
                        "give each store its own name", s->name, j);
                    break;
                }
        }
        snprintf(path, sizeof path, "stores[%zu].url", i);
        if (!s->url)
            CHK(c, path, "missing key 'url' (file:///dir or https://host/base)");
        else if ((why = ppf_policy_url_problem(s->url)) != NULL)
            CHK(c, path, "'%.200s': %s", ppf_policy_utf8_valid(s->url, strlen(s->url))
                ? s->url : "(invalid text)", why);
        else if (strncmp(s->url, "https://", 8) == 0 && !s->ca_file && !s->pinned_cert)
            CHK(c, path, "an https store needs ca_file or pinned_cert");
        else if (strncmp(s->url, "file://", 7) == 0 && (s->ca_file || s->pinned_cert))
            CHK(c, path, "ca_file and pinned_cert are only for https stores; remove them");
        snprintf(path, sizeof path, "stores[%zu].ca_file", i);
        pol_check_abs(c, path, s->ca_file, false);
        snprintf(path, sizeof path, "stores[%zu].pinned_cert", i);
        pol_check_abs(c, path, s->pinned_cert, false);
    }
}

static void
pol_check_tenants(struct pol_check *c)
{
    const struct ppf_policy *p = c->p;
    uint64_t sum = 0;
    char path[160], a[32], b[32];
    bool have_default = false, sum_overflow = false, one_over = false;

    if (p->ntenants > PPF_POLICY_MAX_TENANTS)
        CHK(c, "tenants", "%zu tenants; at most %d are allowed", p->ntenants,
            PPF_POLICY_MAX_TENANTS);
    for (size_t i = 0; i < p->ntenants && i < PPF_POLICY_MAX_TENANTS; i++) {
        const struct ppf_policy_tenant *t = &p->tenants[i];
        const char *name = ppf_policy_valid_name(t->name) ? t->name : NULL;

        if (!name) {
            snprintf(path, sizeof path, "tenants[%zu]", i);
            CHK(c, path, "a tenant name is 1 to %d letters, digits, '.', '_' or '-'",
                PPF_POLICY_MAX_NAME);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (p->tenants[j].name && strcmp(p->tenants[j].name, name) == 0) {
                snprintf(path, sizeof path, "tenants.%s", name);
                CHK(c, path, "tenant '%s' is defined twice", name);
                break;
            }
        if (strcmp(name, PPF_POLICY_DEFAULT_TENANT) == 0)
            have_default = true;
        snprintf(path, sizeof path, "tenants.%s.quota", name);
        if (t->quota > p->buffer.capacity && !p->buffer.overcommit) {
            ppf_policy_format_size(t->quota, a, sizeof a);
            ppf_policy_format_size(p->buffer.capacity, b, sizeof b);
            CHK(c, path, "%s is more than buffer.capacity (%s); lower it or set "
                "buffer.overcommit: true", a, b);
            one_over = true;
        }
        /* Tenants without a quota, or with the whole buffer as theirs (how
         * the canonical form writes "no quota"), are not counted. */
        if (strcmp(name, PPF_POLICY_DEFAULT_TENANT) != 0 && t->quota != p->buffer.capacity) {
            if (sum + t->quota < sum)
                sum_overflow = true;
            sum += t->quota;
        }
        snprintf(path, sizeof path, "tenants.%s.keyfile", name);
        pol_check_abs(c, path, t->keyfile, false);
        snprintf(path, sizeof path, "tenants.%s.priority", name);
        pol_check_enum(c, path, t->priority, PPF_PRIO__MAX);
    }
    if (!have_default)
        CHK(c, "tenants", "the tenant 'default' is missing; it must always exist");
    if ((sum_overflow || sum > p->buffer.capacity) && !p->buffer.overcommit && !one_over) {
        ppf_policy_format_size(sum, a, sizeof a);
        ppf_policy_format_size(p->buffer.capacity, b, sizeof b);
        CHK(c, "tenants", "the quotas add up to %s, more than buffer.capacity (%s); "
            "lower them or set buffer.overcommit: true", sum_overflow ? "more than 16EiB" : a, b);
    }
}

static void
pol_check_strv(struct pol_check *c, const char *key, char **v, size_t n, size_t max,
               bool paths)
{
    char path[128];

    if (n > max)
        CHK(c, key, "%zu entries; at most %zu are allowed", n, max);
    for (size_t i = 0; i < n && i < max; i++) {
        snprintf(path, sizeof path, "%s[%zu]", key, i);
        if (paths) {
            pol_check_abs(c, path, v[i], true);
            if (v[i] && strcmp(v[i], "/") == 0)
                CHK(c, path, "'/' would let deploy write anywhere; name the directories "
                    "disks may be written under");
        } else if (!ppf_policy_valid_host_port(v[i])) {
            CHK(c, path, "'%.200s' is not host:port; write e.g. peer.example.com:7480",
                v[i] && ppf_policy_utf8_valid(v[i], strlen(v[i])) ? v[i] : "");
        }
        for (size_t j = 0; j < i; j++)
            if (v[i] && v[j] && strcmp(v[i], v[j]) == 0) {
                CHK(c, path, "'%.200s' is listed twice", v[i]);
                break;
            }
    }
}

static void
pol_check_tenant_ref(struct pol_check *c, const char *path, const char *tenant)
{
    if (!tenant || !ppf_policy_valid_name(tenant))
        CHK(c, path, "is not a tenant name");
    else if (!ppf_policy_find_tenant(c->p, tenant))
        CHK(c, path, "tenant '%s' is not defined under tenants", tenant);
}

static void
pol_check_image(struct pol_check *c, const char *path, const char *image)
{
    if (!image)
        CHK(c, path, "missing key 'image'");
    else if (!ppf_policy_valid_image(image))
        CHK(c, path, "'%.100s' is not an image name (1 to %d bytes, no '/', no '..', "
            "no control characters)", ppf_policy_utf8_valid(image, strlen(image))
            ? image : "(invalid text)", PPF_POLICY_MAX_IMAGE);
}

static void
pol_check_lists(struct pol_check *c)
{
    const struct ppf_policy *p = c->p;
    char path[128];

    if (p->npins > PPF_POLICY_MAX_PINS)
        CHK(c, "pins", "%zu pins; at most %d are allowed", p->npins, PPF_POLICY_MAX_PINS);
    for (size_t i = 0; i < p->npins && i < PPF_POLICY_MAX_PINS; i++) {
        snprintf(path, sizeof path, "pins[%zu].image", i);
        pol_check_image(c, path, p->pins[i].image);
        snprintf(path, sizeof path, "pins[%zu].tenant", i);
        pol_check_tenant_ref(c, path, p->pins[i].tenant);
        snprintf(path, sizeof path, "pins[%zu].until", i);
        if (!ppf_policy_valid_until(p->pins[i].until))
            CHK(c, path, "expected never or a date such as \"2025-12-31\" or "
                "\"2025-12-31T18:00\"");
    }
    if (p->nschedules > PPF_POLICY_MAX_SCHEDULES)
        CHK(c, "schedules", "%zu schedules; at most %d are allowed", p->nschedules,
            PPF_POLICY_MAX_SCHEDULES);
    for (size_t i = 0; i < p->nschedules && i < PPF_POLICY_MAX_SCHEDULES; i++) {
        const struct ppf_policy_schedule *s = &p->schedules[i];

        snprintf(path, sizeof path, "schedules[%zu].when", i);
        if (!s->when)
            CHK(c, path, "missing key 'when' (e.g. \"weekdays 08:30\")");
        else if (!ppf_policy_valid_when(s->when))
            CHK(c, path, "expected DAYS HH:MM, with DAYS daily, weekdays, weekends or a "
                "list such as mon,wed,fri; e.g. \"weekdays 08:30\"");
        snprintf(path, sizeof path, "schedules[%zu].image", i);
        pol_check_image(c, path, s->image);
        snprintf(path, sizeof path, "schedules[%zu].tenant", i);
        pol_check_tenant_ref(c, path, s->tenant);
        snprintf(path, sizeof path, "schedules[%zu].before", i);
        if (s->before && !ppf_policy_valid_hhmm(s->before))
            CHK(c, path, "expected a time HH:MM such as \"09:00\"");
    }
}

static void
pol_check_fed_file(struct pol_check *c, const char *path, const char *v)
{
    if (!v && c->p->federation.enabled)
        CHK(c, path, "is required when federation.enabled is true; name the file "
            "(an absolute path)");
    else
        pol_check_abs(c, path, v, false);
}

int
ppf_policy_check(const struct ppf_policy *p, struct ppf_policy_diags *d)
{
    struct pol_check c = { p, d, 0 };
    const uint64_t day = 86400000ull;

    pol_check_duration(&c, "monitoring.interval", p->monitoring.interval_ms, 10, 3600000);
    if (p->monitoring.metrics & ~PPF_METRIC__ALL)
        CHK(&c, "monitoring.metrics", "unknown metric bits 0x%x",
            p->monitoring.metrics & ~PPF_METRIC__ALL);

    pol_check_enum(&c, "learning.algorithm", p->learning.algorithm, PPF_ALGO__MAX);
    pol_check_range(&c, "learning.markov.order", p->learning.markov_order, 1, 8);
    pol_check_duration(&c, "learning.decay.half_life", p->learning.half_life_ms, 60000,
                       3650 * day);
    pol_check_duration(&c, "learning.horizon", p->learning.horizon_ms, 1000, 30 * day);
    pol_check_range(&c, "learning.time_buckets", p->learning.time_buckets, 1, 1440);
    if (!isfinite(p->learning.adaptation_rate) || p->learning.adaptation_rate < 0
        || p->learning.adaptation_rate > 1)
        CHK(&c, "learning.adaptation_rate", "%g is out of range; write a number from 0 to 1",
            p->learning.adaptation_rate);
    pol_check_size(&c, "learning.store_size", p->learning.store_size, 64ull << 10,
                   1ull << 40);

    pol_check_range(&c, "table.size", p->table.size, 1, 1u << 24);
    if (p->table.dynamic && p->table.size >= 1 && p->table.size <= 1u << 24) {
        pol_check_range(&c, "table.dynamic.min", p->table.min, 1, 1u << 24);
        pol_check_range(&c, "table.dynamic.max", p->table.max, 1, 1u << 24);
        if (p->table.min > p->table.size)
            CHK(&c, "table.dynamic.min", "%u is more than table.size (%u); "
                "dynamic.min <= size <= dynamic.max", p->table.min, p->table.size);
        if (p->table.max < p->table.size)
            CHK(&c, "table.dynamic.max", "%u is less than table.size (%u); "
                "dynamic.min <= size <= dynamic.max", p->table.max, p->table.size);
    }

    pol_check_enum(&c, "prefetch.priority", p->prefetch.priority, PPF_PRIO__MAX);
    if (p->prefetch.bandwidth != 0 && p->prefetch.bandwidth < 4096)
        CHK(&c, "prefetch.bandwidth", "%llu bytes/s is too low to prefetch anything; "
            "write e.g. 200MiB/s, or 0 for no limit",
            (unsigned long long)p->prefetch.bandwidth);
    pol_check_range(&c, "prefetch.concurrent", p->prefetch.concurrent, 1, 64);
    pol_check_range(&c, "prefetch.workers", p->prefetch.workers, 1, 256);

    pol_check_abs(&c, "buffer.path", p->buffer.path, true);
    pol_check_size(&c, "buffer.capacity", p->buffer.capacity, 1ull << 20, 1ull << 50);
    pol_check_enum(&c, "buffer.eviction", p->buffer.eviction, PPF_EVICT__MAX);
    pol_check_size(&c, "buffer.reserve", p->buffer.reserve, 0, 1ull << 50);
    pol_check_duration(&c, "buffer.revalidate", p->buffer.revalidate_ms, 0, day);

    pol_check_stores(&c);
    pol_check_tenants(&c);

    if (p->deploy.ndirs == 0)
        CHK(&c, "deploy.dirs", "is empty; name at least one directory disks may be "
            "written under, e.g. /var/lib/libvirt/images");
    pol_check_strv(&c, "deploy.dirs", p->deploy.dirs, p->deploy.ndirs, PPF_POLICY_MAX_DIRS,
                   true);
    pol_check_enum(&c, "deploy.mode", p->deploy.mode, PPF_DEPLOY__MAX);
    pol_check_enum(&c, "deploy.fallback", p->deploy.fallback, PPF_FALLBACK__MAX);

    if (!p->federation.listen || !ppf_policy_valid_host_port(p->federation.listen))
        CHK(&c, "federation.listen", "expected host:port such as 0.0.0.0:7480 or [::]:7480");
    pol_check_strv(&c, "federation.peers", p->federation.peers, p->federation.npeers,
                   PPF_POLICY_MAX_PEERS, false);
    pol_check_fed_file(&c, "federation.ca_file", p->federation.ca_file);
    pol_check_fed_file(&c, "federation.cert_file", p->federation.cert_file);
    pol_check_fed_file(&c, "federation.key_file", p->federation.key_file);
    pol_check_duration(&c, "federation.interval", p->federation.interval_ms, 1000, day);

    pol_check_lists(&c);

    /* Last: it must fit one data slot as a CONFIGURE payload. */
    if (c.errors == 0) {
        uint8_t *buf = malloc(PPF_POLICY_MAX_ENCODED);
        size_t len;

        if (!buf) {
            CHK(&c, "", "out of memory");
        } else {
            if (ppf_policy_encode(p, buf, PPF_POLICY_MAX_ENCODED, &len) < 0)
                CHK(&c, "", "the policy is too large for the device: its encoded form "
                    "exceeds %d bytes; use fewer pins, schedules or tenants",
                    PPF_POLICY_MAX_ENCODED);
            free(buf);
        }
    }
    return c.errors ? -1 : 0;
}

/* --- diagnostics ------------------------------------------------------ */

void
ppf_policy_diags_init(struct ppf_policy_diags *d)
{
    memset(d, 0, sizeof *d);
}

void
ppf_policy_diags_add(struct ppf_policy_diags *d, const char *file, unsigned line,
                     unsigned column, const char *path, const char *fmt, ...)
{
    struct ppf_policy_diag *v;
    char msg[1024];
    va_list ap;

    if (d->n >= PPF_POLICY_MAX_DIAGS) {
        d->dropped++;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;

        v = realloc(d->v, cap * sizeof *v);
        if (!v) {
            d->dropped++;
            return;
        }
        d->v = v;
        d->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v = &d->v[d->n];
    v->file = file ? strdup(file) : NULL;
    v->line = line;
    v->column = column;
    v->path = strdup(path ? path : "");
    v->msg = strdup(msg);
    if (!v->path || !v->msg || (file && !v->file)) {
        free(v->file);
        free(v->path);
        free(v->msg);
        d->dropped++;
        return;
    }
    d->n++;
}

void
ppf_policy_diags_print(const struct ppf_policy_diags *d, FILE *fp)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct ppf_policy_diag *g = &d->v[i];

        fputs(g->file ? g->file : "policy", fp);
        if (g->line)
            fprintf(fp, ":%u:%u", g->line, g->column);
        fputs(": ", fp);
        if (g->path[0])
            fprintf(fp, "%s: ", g->path);
        fprintf(fp, "%s\n", g->msg);
    }
    if (d->dropped)
        fprintf(fp, "(%zu more problems not shown)\n", d->dropped);
}

void
ppf_policy_diags_free(struct ppf_policy_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].path);
        free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

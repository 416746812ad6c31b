/* The device configuration: a policy as the payload of CONFIGURE, and the
 * form the peripheral persists in its state directory.
 *
 * Layout: "PPFC", u32 version (PPF_POLICY_VERSION), then attributes in the
 * payload format of ppf/protocol.h §5.1 ({u16 type, u16 len, value}, padded
 * to 4 bytes, host byte order).  The top 4 bits of a type say what its value
 * is, so the blob describes itself:
 *   1 u32, 2 u64, 3 UTF-8 string (no NUL), 4 nested attributes (one list
 *   element: a store, tenant, pin or schedule), 5 boolean (u32 0 or 1),
 *   6 IEEE-754 double (8 bytes).
 * Scalars may appear once each, in any order, and default when absent;
 * list elements repeat.  The last attribute is always END (u32), the
 * CRC-32 of every byte before it, header included: a truncated or
 * corrupted blob (in transit or in the peripheral's state directory) is
 * refused rather than applied as a different policy.  Unknown types are refused: a configuration is
 * applied exactly as written or not at all, and the version is bumped when
 * keys are added.  The decoder distrusts everything: lengths, kinds,
 * strings (UTF-8, no control bytes, bounded), counts, then runs
 * ppf_policy_check on the result.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppf/protocol.h"
#include "policy/policy-int.h"

enum pol_kind { K_U32 = 1, K_U64 = 2, K_STR = 3, K_NEST = 4, K_BOOL = 5, K_F64 = 6 };
#define T(kind, id)   ((uint16_t)(((kind) << 12) | (id)))
#define KIND(type)    ((type) >> 12)

/* Attribute types.  Never renumber; add new ones at the end of a group. */
enum {
    A_MON_INTERVAL = T(K_U64, 0x001), A_MON_METRICS = T(K_U32, 0x002),
    A_LRN_ALGORITHM = T(K_U32, 0x010), A_LRN_ORDER = T(K_U32, 0x011),
    A_LRN_HALF_LIFE = T(K_U64, 0x012), A_LRN_HORIZON = T(K_U64, 0x013),
    A_LRN_BUCKETS = T(K_U32, 0x014), A_LRN_RATE = T(K_F64, 0x015),
    A_LRN_STORE_SIZE = T(K_U64, 0x016),
    A_TBL_SIZE = T(K_U32, 0x020), A_TBL_DYNAMIC = T(K_BOOL, 0x021),
    A_TBL_MIN = T(K_U32, 0x022), A_TBL_MAX = T(K_U32, 0x023),
    A_PF_PRIORITY = T(K_U32, 0x030), A_PF_BANDWIDTH = T(K_U64, 0x031),
    A_PF_CONCURRENT = T(K_U32, 0x032), A_PF_WORKERS = T(K_U32, 0x033),
    A_BUF_PATH = T(K_STR, 0x040), A_BUF_CAPACITY = T(K_U64, 0x041),
    A_BUF_EVICTION = T(K_U32, 0x042), A_BUF_RESERVE = T(K_U64, 0x043),
    A_BUF_OVERCOMMIT = T(K_BOOL, 0x044), A_BUF_REVALIDATE = T(K_U64, 0x045),
    A_DEP_MODE = T(K_U32, 0x051), A_DEP_FALLBACK = T(K_U32, 0x052),
    A_DEP_EPHEMERAL = T(K_BOOL, 0x053),
    A_FED_ENABLED = T(K_BOOL, 0x060), A_FED_LISTEN = T(K_STR, 0x061),
    A_FED_CA = T(K_STR, 0x063), A_FED_CERT = T(K_STR, 0x064), A_FED_KEY = T(K_STR, 0x065),
    A_FED_INTERVAL = T(K_U64, 0x066),
    /* repeated */
    A_DEP_DIR = T(K_STR, 0x050), A_FED_PEER = T(K_STR, 0x062),
    A_STORE = T(K_NEST, 0x100), A_TENANT = T(K_NEST, 0x101),
    A_PIN = T(K_NEST, 0x102), A_SCHEDULE = T(K_NEST, 0x103),
    A_END = T(K_U32, 0xfff),    /* last: CRC-32 of all bytes before it */
    /* inside A_STORE */
    A_ST_NAME = T(K_STR, 1), A_ST_URL = T(K_STR, 2), A_ST_CA = T(K_STR, 3),
    A_ST_PIN = T(K_STR, 4),
    /* inside A_TENANT */
    A_TN_NAME = T(K_STR, 1), A_TN_QUOTA = T(K_U64, 2), A_TN_KEYFILE = T(K_STR, 3),
    A_TN_PRIORITY = T(K_U32, 4), A_TN_SHARE = T(K_BOOL, 5),
    /* inside A_PIN */
    A_PN_IMAGE = T(K_STR, 1), A_PN_TENANT = T(K_STR, 2), A_PN_UNTIL = T(K_STR, 3),
    /* inside A_SCHEDULE */
    A_SC_WHEN = T(K_STR, 1), A_SC_IMAGE = T(K_STR, 2), A_SC_TENANT = T(K_STR, 3),
    A_SC_BEFORE = T(K_STR, 4),
};

/* A scalar field: its type, where it lives in the structure (or in a list
 * element), its name for messages and the largest string it may hold. */
struct pol_field {
    uint16_t type;
    size_t off;
    const char *name;
    size_t max;
};

#define F(type, member, name, max) { type, offsetof(struct ppf_policy, member), name, max }
static const struct pol_field pol_top[] = {
    F(A_MON_INTERVAL, monitoring.interval_ms, "monitoring.interval", 0),
    F(A_MON_METRICS, monitoring.metrics, "monitoring.metrics", 0),
    F(A_LRN_ALGORITHM, learning.algorithm, "learning.algorithm", 0),
    F(A_LRN_ORDER, learning.markov_order, "learning.markov.order", 0),
    F(A_LRN_HALF_LIFE, learning.half_life_ms, "learning.decay.half_life", 0),
    F(A_LRN_HORIZON, learning.horizon_ms, "learning.horizon", 0),
    F(A_LRN_BUCKETS, learning.time_buckets, "learning.time_buckets", 0),
    F(A_LRN_RATE, learning.adaptation_rate, "learning.adaptation_rate", 0),
    F(A_LRN_STORE_SIZE, learning.store_size, "learning.store_size", 0),
    F(A_TBL_SIZE, table.size, "table.size", 0),
    F(A_TBL_DYNAMIC, table.dynamic, "table.dynamic.enabled", 0),
    F(A_TBL_MIN, table.min, "table.dynamic.min", 0),
    F(A_TBL_MAX, table.max, "table.dynamic.max", 0),
    F(A_PF_PRIORITY, prefetch.priority, "prefetch.priority", 0),
    F(A_PF_BANDWIDTH, prefetch.bandwidth, "prefetch.bandwidth", 0),
    F(A_PF_CONCURRENT, prefetch.concurrent, "prefetch.concurrent", 0),
    F(A_PF_WORKERS, prefetch.workers, "prefetch.workers", 0),
    F(A_BUF_PATH, buffer.path, "buffer.path", PPF_POLICY_MAX_PATH),
    F(A_BUF_CAPACITY, buffer.capacity, "buffer.capacity", 0),
    F(A_BUF_EVICTION, buffer.eviction, "buffer.eviction", 0),
    F(A_BUF_RESERVE, buffer.reserve, "buffer.reserve", 0),
    F(A_BUF_OVERCOMMIT, buffer.overcommit, "buffer.overcommit", 0),
    F(A_BUF_REVALIDATE, buffer.revalidate_ms, "buffer.revalidate", 0),
    F(A_DEP_MODE, deploy.mode, "deploy.mode", 0),
    F(A_DEP_FALLBACK, deploy.fallback, "deploy.fallback", 0),
    F(A_DEP_EPHEMERAL, deploy.ephemeral, "deploy.ephemeral", 0),
    F(A_FED_ENABLED, federation.enabled, "federation.enabled", 0),
    F(A_FED_LISTEN, federation.listen, "federation.listen", 300),
    F(A_FED_CA, federation.ca_file, "federation.ca_file", PPF_POLICY_MAX_PATH),
    F(A_FED_CERT, federation.cert_file, "federation.cert_file", PPF_POLICY_MAX_PATH),
    F(A_FED_KEY, federation.key_file, "federation.key_file", PPF_POLICY_MAX_PATH),
    F(A_FED_INTERVAL, federation.interval_ms, "federation.interval", 0),
};
#undef F
#define NTOP (sizeof pol_top / sizeof pol_top[0])

#define E(st, type, member, name, max) { type, offsetof(st, member), name, max }
static const struct pol_field pol_store_fields[] = {
    E(struct ppf_policy_store, A_ST_NAME, name, "name", PPF_POLICY_MAX_NAME),
    E(struct ppf_policy_store, A_ST_URL, url, "url", PPF_POLICY_MAX_URL),
    E(struct ppf_policy_store, A_ST_CA, ca_file, "ca_file", PPF_POLICY_MAX_PATH),
    E(struct ppf_policy_store, A_ST_PIN, pinned_cert, "pinned_cert", PPF_POLICY_MAX_PATH),
};
static const struct pol_field pol_tenant_fields[] = {
    E(struct ppf_policy_tenant, A_TN_NAME, name, "name", PPF_POLICY_MAX_NAME),
    E(struct ppf_policy_tenant, A_TN_QUOTA, quota, "quota", 0),
    E(struct ppf_policy_tenant, A_TN_KEYFILE, keyfile, "keyfile", PPF_POLICY_MAX_PATH),
    E(struct ppf_policy_tenant, A_TN_PRIORITY, priority, "priority", 0),
    E(struct ppf_policy_tenant, A_TN_SHARE, share, "share", 0),
};
static const struct pol_field pol_pin_fields[] = {
    E(struct ppf_policy_pin, A_PN_IMAGE, image, "image", PPF_POLICY_MAX_IMAGE),
    E(struct ppf_policy_pin, A_PN_TENANT, tenant, "tenant", PPF_POLICY_MAX_NAME),
    E(struct ppf_policy_pin, A_PN_UNTIL, until, "until", 32),
};
static const struct pol_field pol_schedule_fields[] = {
    E(struct ppf_policy_schedule, A_SC_WHEN, when, "when", 64),
    E(struct ppf_policy_schedule, A_SC_IMAGE, image, "image", PPF_POLICY_MAX_IMAGE),
    E(struct ppf_policy_schedule, A_SC_TENANT, tenant, "tenant", PPF_POLICY_MAX_NAME),
    E(struct ppf_policy_schedule, A_SC_BEFORE, before, "before", 8),
};
#undef E

/* A list of elements: its attribute, fields, element size, the policy's
 * array and count, and the largest count. */
struct pol_list {
    uint16_t type;
    const char *name;
    const struct pol_field *fields;
    size_t nfields, elem_size, v_off, n_off, max;
};
#define L(type, name, fields, st, v, n, max) \
    { type, name, fields, sizeof fields / sizeof fields[0], sizeof(st), \
      offsetof(struct ppf_policy, v), offsetof(struct ppf_policy, n), max }
static const struct pol_list pol_lists[] = {
    L(A_STORE, "stores", pol_store_fields, struct ppf_policy_store, stores, nstores,
      PPF_POLICY_MAX_STORES),
    L(A_TENANT, "tenants", pol_tenant_fields, struct ppf_policy_tenant, tenants, ntenants,
      PPF_POLICY_MAX_TENANTS),
    L(A_PIN, "pins", pol_pin_fields, struct ppf_policy_pin, pins, npins,
      PPF_POLICY_MAX_PINS),
    L(A_SCHEDULE, "schedules", pol_schedule_fields, struct ppf_policy_schedule, schedules,
      nschedules, PPF_POLICY_MAX_SCHEDULES),
};
#undef L
#define NLISTS (sizeof pol_lists / sizeof pol_lists[0])

/* --- encode ----------------------------------------------------------- */

uint32_t
ppf_policy_crc32(const uint8_t *buf, size_t len)
{
    uint32_t crc = 0xffffffffu;

    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void
pol_put_field(struct ppf_attr_writer *w, const struct pol_field *f, const void *base)
{
    const char *at = (const char *)base + f->off;
    uint32_t u32;
    uint64_t u64;
    char *s;

    switch (KIND(f->type)) {
    case K_U32:
        /* uint32_t fields and enums share the width (checked below). */
        memcpy(&u32, at, sizeof u32);
        ppf_attr_put_u32(w, f->type, u32);
        break;
    case K_BOOL:
        ppf_attr_put_u32(w, f->type, *(const bool *)at ? 1 : 0);
        break;
    case K_U64:
    case K_F64:
        memcpy(&u64, at, sizeof u64);
        ppf_attr_put_u64(w, f->type, u64);
        break;
    case K_STR:
        memcpy(&s, at, sizeof s);
        if (s)
            ppf_attr_put_str(w, f->type, s);
        break;
    }
}

_Static_assert(sizeof(enum ppf_policy_algorithm) == sizeof(uint32_t), "enum width");
_Static_assert(sizeof(double) == sizeof(uint64_t), "double width");
_Static_assert(A_END == PPF_POLICY_ATTR_END, "end attribute");

/* A nested attribute: header, then the element's fields written straight
 * after it, then the header's length patched. */
static void
pol_put_elem(struct ppf_attr_writer *w, const struct pol_list *l, const void *elem)
{
    struct ppf_attr_writer sub;
    struct ppf_attr_hdr h;

    if (w->overflow || w->cap - w->len < sizeof h) {
        w->overflow = 1;
        return;
    }
    ppf_attr_writer_init(&sub, w->buf + w->len + sizeof h, w->cap - w->len - sizeof h);
    for (size_t i = 0; i < l->nfields; i++)
        pol_put_field(&sub, &l->fields[i], elem);
    if (sub.overflow || sub.len > UINT16_MAX) {
        w->overflow = 1;
        return;
    }
    h.type = l->type;
    h.len = (uint16_t)sub.len;
    memcpy(w->buf + w->len, &h, sizeof h);
    w->len += sizeof h + sub.len;       /* sub.len is a multiple of 4 */
}

int
ppf_policy_encode(const struct ppf_policy *p, uint8_t *buf, size_t cap, size_t *len)
{
    struct ppf_attr_writer w;
    uint32_t version = PPF_POLICY_VERSION;
    size_t i, j;

    *len = 0;
    if (cap > PPF_POLICY_MAX_ENCODED)
        cap = PPF_POLICY_MAX_ENCODED;
    if (cap < 8) {
        errno = E2BIG;
        return -1;
    }
    memcpy(buf, PPF_POLICY_MAGIC, 4);
    memcpy(buf + 4, &version, 4);
    ppf_attr_writer_init(&w, buf + 8, cap - 8);
    for (i = 0; i < NTOP; i++)
        pol_put_field(&w, &pol_top[i], p);
    for (i = 0; i < p->deploy.ndirs; i++)
        ppf_attr_put_str(&w, A_DEP_DIR, p->deploy.dirs[i]);
    for (i = 0; i < p->federation.npeers; i++)
        ppf_attr_put_str(&w, A_FED_PEER, p->federation.peers[i]);
    for (i = 0; i < NLISTS; i++) {
        const struct pol_list *l = &pol_lists[i];
        const char *v;
        size_t n;

        memcpy(&v, (const char *)p + l->v_off, sizeof v);
        memcpy(&n, (const char *)p + l->n_off, sizeof n);
        for (j = 0; j < n; j++)
            pol_put_elem(&w, l, v + j * l->elem_size);
    }
    if (!w.overflow)
        ppf_attr_put_u32(&w, A_END, ppf_policy_crc32(buf, 8 + w.len));
    if (w.overflow) {
        errno = E2BIG;
        return -1;
    }
    *len = 8 + w.len;
    return 0;
}

/* --- decode ----------------------------------------------------------- */

struct pol_dec {
    char *err;
    size_t errlen;
    size_t base;            /* offset of the current reader in the blob */
};

static int pol_dec_fail(struct pol_dec *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
pol_dec_fail(struct pol_dec *c, const char *fmt, ...)
{
    va_list ap;

    if (c->errlen && c->err[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    errno = EINVAL;
    return -1;
}

static const struct pol_field *
pol_find_field(const struct pol_field *f, size_t n, uint16_t type, size_t *idx)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].type == type) {
            *idx = i;
            return &f[i];
        }
    return NULL;
}

/* A string attribute: length within max, UTF-8, no NUL or control byte. */
static int
pol_dec_str(struct pol_dec *c, const struct ppf_attr *a, size_t max, const char *name,
            char **out)
{
    char *s;

    if (a->len == 0 || a->len > max || a->len > PPF_ATTR_MAX_STR)
        return pol_dec_fail(c, "%s: string of %u bytes; 1 to %zu allowed", name, a->len,
                            max < PPF_ATTR_MAX_STR ? max : (size_t)PPF_ATTR_MAX_STR);
    if (!ppf_policy_utf8_valid((const char *)a->value, a->len))
        return pol_dec_fail(c, "%s: string is not UTF-8 text (NUL, control byte or "
                            "bad sequence)", name);
    s = malloc((size_t)a->len + 1);
    if (!s)
        return pol_dec_fail(c, "out of memory");
    memcpy(s, a->value, a->len);
    s[a->len] = '\0';
    *out = s;
    return 0;
}

static int
pol_dec_field(struct pol_dec *c, const struct ppf_attr *a, const struct pol_field *f,
              void *base, const char *prefix)
{
    char *at = (char *)base + f->off;
    char name[96], *s, *old;
    uint32_t u32;
    uint64_t u64;

    snprintf(name, sizeof name, "%s%s", prefix, f->name);
    switch (KIND(f->type)) {
    case K_U32:
    case K_BOOL:
        if (ppf_attr_get_u32(a, &u32) < 0)
            return pol_dec_fail(c, "%s: %u bytes, expected 4", name, a->len);
        if (KIND(f->type) == K_BOOL) {
            if (u32 > 1)
                return pol_dec_fail(c, "%s: boolean %u is neither 0 nor 1", name, u32);
            *(bool *)at = u32 != 0;
        } else {
            memcpy(at, &u32, sizeof u32);
        }
        return 0;
    case K_U64:
    case K_F64:
        if (ppf_attr_get_u64(a, &u64) < 0)
            return pol_dec_fail(c, "%s: %u bytes, expected 8", name, a->len);
        memcpy(at, &u64, sizeof u64);
        return 0;
    case K_STR:
        if (pol_dec_str(c, a, f->max, name, &s) < 0)
            return -1;
        memcpy(&old, at, sizeof old);
        free(old);
        memcpy(at, &s, sizeof s);
        return 0;
    }
    return pol_dec_fail(c, "%s: bad kind", name);
}

static int
pol_dec_strv(struct pol_dec *c, const struct ppf_attr *a, char ***v, size_t *n, size_t max,
             const char *name)
{
    char **nv, *s;

    if (*n >= max)
        return pol_dec_fail(c, "%s: more than %zu entries", name, max);
    if (pol_dec_str(c, a, PPF_POLICY_MAX_PATH, name, &s) < 0)
        return -1;
    nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) {
        free(s);
        return pol_dec_fail(c, "out of memory");
    }
    nv[(*n)++] = s;
    *v = nv;
    return 0;
}

static int
pol_dec_elem(struct pol_dec *c, const struct ppf_attr *outer, const struct pol_list *l,
             struct ppf_policy *p)
{
    struct ppf_attr_reader r;
    struct ppf_attr a;
    char *v, prefix[64];
    size_t n, idx;
    uint32_t seen = 0;
    int rc;

    memcpy(&v, (char *)p + l->v_off, sizeof v);
    memcpy(&n, (char *)p + l->n_off, sizeof n);
    if (n >= l->max)
        return pol_dec_fail(c, "%s: more than %zu entries", l->name, l->max);
    v = realloc(v, (n + 1) * l->elem_size);
    if (!v)
        return pol_dec_fail(c, "out of memory");
    memset(v + n * l->elem_size, 0, l->elem_size);
    memcpy((char *)p + l->v_off, &v, sizeof v);
    n++;
    memcpy((char *)p + l->n_off, &n, sizeof n);
    v += (n - 1) * l->elem_size;
    if (l->type == A_TENANT) {
        ((struct ppf_policy_tenant *)(void *)v)->priority = PPF_PRIO_NORMAL;
        ((struct ppf_policy_tenant *)(void *)v)->share = true;
    }
    if (l->type == A_PIN)
        ((struct ppf_policy_pin *)(void *)v)->until = strdup("never");

    snprintf(prefix, sizeof prefix, "%s[%zu].", l->name, n - 1);
    ppf_attr_reader_init(&r, outer->value, outer->len);
    while ((rc = ppf_attr_next(&r, &a)) == 1) {
        const struct pol_field *f = pol_find_field(l->fields, l->nfields, a.type, &idx);

        if (!f)
            return pol_dec_fail(c, "%s: unknown attribute type 0x%04x", l->name, a.type);
        if (seen & (1u << idx))
            return pol_dec_fail(c, "%s%s: attribute repeated", prefix, f->name);
        seen |= 1u << idx;
        if (pol_dec_field(c, &a, f, v, prefix) < 0)
            return -1;
    }
    if (rc < 0)
        return pol_dec_fail(c, "%s: malformed attribute inside element %zu", l->name, n - 1);
    /* Pins and schedules name the default tenant unless told otherwise. */
    if (l->type == A_PIN && !((struct ppf_policy_pin *)(void *)v)->tenant)
        ((struct ppf_policy_pin *)(void *)v)->tenant = strdup(PPF_POLICY_DEFAULT_TENANT);
    if (l->type == A_SCHEDULE && !((struct ppf_policy_schedule *)(void *)v)->tenant)
        ((struct ppf_policy_schedule *)(void *)v)->tenant = strdup(PPF_POLICY_DEFAULT_TENANT);
    return 0;
}

/* Empties the lists that the blob carries in full. */
static void
pol_dec_reset_lists(struct ppf_policy *p)
{
    struct ppf_policy tmp;

    memset(&tmp, 0, sizeof tmp);
    tmp.stores = p->stores;
    tmp.nstores = p->nstores;
    tmp.tenants = p->tenants;
    tmp.ntenants = p->ntenants;
    tmp.deploy.dirs = p->deploy.dirs;
    tmp.deploy.ndirs = p->deploy.ndirs;
    ppf_policy_clear(&tmp);
    p->stores = NULL;
    p->nstores = 0;
    p->tenants = NULL;
    p->ntenants = 0;
    p->deploy.dirs = NULL;
    p->deploy.ndirs = 0;
}

int
ppf_policy_decode(const uint8_t *buf, size_t len, struct ppf_policy **out, char *err,
                  size_t errlen)
{
    struct pol_dec c = { err, errlen, 8 };
    struct ppf_policy *p;
    struct ppf_policy_diags d;
    struct ppf_attr_reader r;
    struct ppf_attr a;
    uint32_t version, crc;
    uint64_t seen = 0;
    size_t i, idx;
    bool ended = false;
    int rc;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (!buf || len < 8 || memcmp(buf, PPF_POLICY_MAGIC, 4) != 0)
        return pol_dec_fail(&c, "not a ppf device configuration (no PPFC header)");
    if (len > PPF_POLICY_MAX_ENCODED)
        return pol_dec_fail(&c, "configuration of %zu bytes; at most %d allowed", len,
                            PPF_POLICY_MAX_ENCODED);
    memcpy(&version, buf + 4, 4);
    if (version != PPF_POLICY_VERSION)
        return pol_dec_fail(&c, "configuration version %u; this peripheral reads version %u",
                            version, PPF_POLICY_VERSION);
    p = ppf_policy_new();
    if (!p)
        return pol_dec_fail(&c, "out of memory");
    /* Scalars default; stores, tenants and dirs come only from the blob. */
    pol_dec_reset_lists(p);

    ppf_attr_reader_init(&r, buf + 8, len - 8);
    while ((rc = ppf_attr_next(&r, &a)) == 1) {
        const struct pol_field *f = pol_find_field(pol_top, NTOP, a.type, &idx);
        size_t off = 8 + r.pos - 4 - PPF_ATTR_ALIGN((size_t)a.len);

        if (ended) {
            pol_dec_fail(&c, "attribute after the end marker at offset %zu", off);
            goto fail;
        }
        if (a.type == A_END) {
            if (ppf_attr_get_u32(&a, &crc) < 0 || crc != ppf_policy_crc32(buf, off)) {
                pol_dec_fail(&c, "checksum mismatch: the configuration is corrupted");
                goto fail;
            }
            ended = true;
            continue;
        }
        if (f) {
            if (seen & (1ull << idx)) {
                pol_dec_fail(&c, "%s: attribute repeated (offset %zu)", f->name, off);
                goto fail;
            }
            seen |= 1ull << idx;
            if (pol_dec_field(&c, &a, f, p, "") < 0)
                goto fail;
            continue;
        }
        if (a.type == A_DEP_DIR) {
            if (pol_dec_strv(&c, &a, &p->deploy.dirs, &p->deploy.ndirs, PPF_POLICY_MAX_DIRS,
                             "deploy.dirs") < 0)
                goto fail;
            continue;
        }
        if (a.type == A_FED_PEER) {
            if (pol_dec_strv(&c, &a, &p->federation.peers, &p->federation.npeers,
                             PPF_POLICY_MAX_PEERS, "federation.peers") < 0)
                goto fail;
            continue;
        }
        for (i = 0; i < NLISTS; i++)
            if (pol_lists[i].type == a.type)
                break;
        if (i == NLISTS) {
            pol_dec_fail(&c, "unknown attribute type 0x%04x at offset %zu", a.type, off);
            goto fail;
        }
        if (pol_dec_elem(&c, &a, &pol_lists[i], p) < 0)
            goto fail;
    }
    if (rc < 0) {
        pol_dec_fail(&c, "malformed attribute at offset %zu (truncated, or nonzero padding)",
                     8 + r.pos);
        goto fail;
    }
    if (!ended) {
        pol_dec_fail(&c, "truncated: no end marker");
        goto fail;
    }
    /* Every string an element requires. */
    for (i = 0; i < p->nstores; i++)
        if (!p->stores[i].name || !p->stores[i].url) {
            pol_dec_fail(&c, "stores[%zu]: name and url are required", i);
            goto fail;
        }
    for (i = 0; i < p->ntenants; i++)
        if (!p->tenants[i].name) {
            pol_dec_fail(&c, "tenants[%zu]: name is required", i);
            goto fail;
        }
    for (i = 0; i < p->npins; i++)
        if (!p->pins[i].image || !p->pins[i].tenant || !p->pins[i].until) {
            pol_dec_fail(&c, "pins[%zu]: image is required", i);
            goto fail;
        }
    for (i = 0; i < p->nschedules; i++)
        if (!p->schedules[i].when || !p->schedules[i].image || !p->schedules[i].tenant) {
            pol_dec_fail(&c, "schedules[%zu]: when and image are required", i);
            goto fail;
        }
    if (!p->buffer.path || !p->federation.listen) {
        pol_dec_fail(&c, "out of memory");
        goto fail;
    }

    ppf_policy_diags_init(&d);
    if (ppf_policy_check(p, &d) < 0) {
        if (d.n)
            pol_dec_fail(&c, "%s%s%s (%zu problem%s)", d.v[0].path,
                         d.v[0].path[0] ? ": " : "", d.v[0].msg,
                         d.n + d.dropped, d.n + d.dropped == 1 ? "" : "s");
        else
            pol_dec_fail(&c, "invalid configuration");
        ppf_policy_diags_free(&d);
        goto fail;
    }
    ppf_policy_diags_free(&d);
    *out = p;
    return 0;

fail:
    ppf_policy_free(p);
    errno = EINVAL;
    return -1;
}

/* Codecs for the device protocol (schemas/device-protocol.md): payload
 * attributes, SQE/CQE checks, the window layout and its validation, and the
 * names used in messages.  Pure logic, no I/O, so cmocka tests need no
 * device.  Used by both sides: the peripheral distrusts the host through
 * these checks and the host distrusts the device the same way.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "ppf/protocol.h"

_Static_assert(sizeof(struct ppf_regs) == 4096, "register page is 4 KiB");
_Static_assert(sizeof(struct ppf_qp_regs) == 0x140, "qp regs layout");
_Static_assert(sizeof(struct ppf_sqe) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(struct ppf_cqe) == 16, "CQE is 16 bytes");
_Static_assert(offsetof(struct ppf_regs, intr_status) == 0x80, "intr_status");
_Static_assert(offsetof(struct ppf_regs, db_seq) == 0x100, "db_seq");
_Static_assert(offsetof(struct ppf_qp_regs, irq_armed) == 0x100, "irq_armed");

void
ppf_attr_writer_init(struct ppf_attr_writer *w, void *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

int
ppf_attr_put(struct ppf_attr_writer *w, uint16_t type, const void *v, size_t len)
{
    struct ppf_attr_hdr h;
    size_t need;

    if (len > UINT16_MAX) {
        w->overflow = 1;
        return -1;
    }
    need = sizeof h + PPF_ATTR_ALIGN(len);
    if (w->overflow || w->cap - w->len < need) {
        w->overflow = 1;
        return -1;
    }
    h.type = type;
    h.len = (uint16_t)len;
    memcpy(w->buf + w->len, &h, sizeof h);
    if (len)
        memcpy(w->buf + w->len + sizeof h, v, len);
    memset(w->buf + w->len + sizeof h + len, 0, PPF_ATTR_ALIGN(len) - len);
    w->len += need;
    return 0;
}

int
ppf_attr_put_u32(struct ppf_attr_writer *w, uint16_t type, uint32_t v)
{
    return ppf_attr_put(w, type, &v, sizeof v);
}

int
ppf_attr_put_u64(struct ppf_attr_writer *w, uint16_t type, uint64_t v)
{
    return ppf_attr_put(w, type, &v, sizeof v);
}

int
ppf_attr_put_str(struct ppf_attr_writer *w, uint16_t type, const char *s)
{
    size_t n = strlen(s);

    if (n > PPF_ATTR_MAX_STR) {
        w->overflow = 1;
        return -1;
    }
    return ppf_attr_put(w, type, s, n);
}

void
ppf_attr_reader_init(struct ppf_attr_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
}

int
ppf_attr_next(struct ppf_attr_reader *r, struct ppf_attr *a)
{
    struct ppf_attr_hdr h;
    size_t padded, i;

    if (r->pos == r->len)
        return 0;
    if (r->len - r->pos < sizeof h)
        return -1;
    memcpy(&h, r->buf + r->pos, sizeof h);
    padded = PPF_ATTR_ALIGN((size_t)h.len);
    if (r->len - r->pos - sizeof h < padded)
        return -1;
    for (i = h.len; i < padded; i++)
        if (r->buf[r->pos + sizeof h + i] != 0)
            return -1;
    a->type = h.type;
    a->len = h.len;
    a->value = r->buf + r->pos + sizeof h;
    r->pos += sizeof h + padded;
    return 1;
}

int
ppf_attr_get_u32(const struct ppf_attr *a, uint32_t *v)
{
    if (a->len != sizeof *v)
        return -1;
    memcpy(v, a->value, sizeof *v);
    return 0;
}

int
ppf_attr_get_u64(const struct ppf_attr *a, uint64_t *v)
{
    if (a->len != sizeof *v)
        return -1;
    memcpy(v, a->value, sizeof *v);
    return 0;
}

int
ppf_attr_get_str(const struct ppf_attr *a, char *dst, size_t cap)
{
    size_t i;

    if (cap == 0 || a->len >= cap || a->len > PPF_ATTR_MAX_STR)
        return -1;
    for (i = 0; i < a->len; i++)
        if (a->value[i] < 0x20 || a->value[i] == 0x7f)
            return -1;
    memcpy(dst, a->value, a->len);
    dst[a->len] = '\0';
    return 0;
}

enum ppf_status_code
ppf_sqe_check(const struct ppf_sqe *e, uint32_t qid, uint32_t slots, uint32_t slot_size)
{
    if (e->cid >= slots)
        return PPF_SC_INVALID_CID;
    if (e->flags != 0 || e->rsvd != 0)
        return PPF_SC_INVALID_FIELD;
    if (e->in_len > slot_size || e->out_cap > slot_size)
        return PPF_SC_DATA_TOO_LONG;
    if (PPF_OP_IS_ADMIN(e->opcode) && qid != PPF_ADMIN_QID)
        return PPF_SC_ADMIN_ONLY;
    return PPF_SC_SUCCESS;
}

int
ppf_cqe_check(const struct ppf_cqe *c, uint32_t slots, uint32_t slot_size, uint32_t qsize)
{
    if (c->cid >= slots || c->out_len > slot_size || c->sq_head >= qsize)
        return -1;
    if (PPF_CQE_SC(c->status) >= PPF_SC__MAX)
        return -1;
    return 0;
}

static const char *const status_names[PPF_SC__MAX] = {
    [PPF_SC_SUCCESS] = "success",
    [PPF_SC_INVALID_OPCODE] = "invalid-opcode",
    [PPF_SC_INVALID_FIELD] = "invalid-field",
    [PPF_SC_INVALID_CID] = "invalid-cid",
    [PPF_SC_DATA_TOO_LONG] = "data-too-long",
    [PPF_SC_ADMIN_ONLY] = "admin-only",
    [PPF_SC_INVALID_PAYLOAD] = "invalid-payload",
    [PPF_SC_INTERNAL] = "internal",
    [PPF_SC_BUSY] = "busy",
    [PPF_SC_NOT_FOUND] = "not-found",
    [PPF_SC_NO_SPACE] = "no-space",
    [PPF_SC_PERMISSION] = "permission",
    [PPF_SC_ABORTED] = "aborted",
    [PPF_SC_INVALID_SQ_TAIL] = "invalid-sq-tail",
    [PPF_SC_CQ_OVERFLOW] = "cq-overflow",
    [PPF_SC_INVALID_CQ_HEAD] = "invalid-cq-head",
    [PPF_SC_EXISTS] = "exists",
};

static const char *const status_texts[PPF_SC__MAX] = {
    [PPF_SC_SUCCESS] = "success",
    [PPF_SC_INVALID_OPCODE] = "the peripheral does not know this command; "
                              "update ppf-peripheral to match the host tools",
    [PPF_SC_INVALID_FIELD] = "a reserved field or flag was set",
    [PPF_SC_INVALID_CID] = "command id outside the queue's slots",
    [PPF_SC_DATA_TOO_LONG] = "payload larger than a data slot",
    [PPF_SC_ADMIN_ONLY] = "admin command sent on an I/O queue",
    [PPF_SC_INVALID_PAYLOAD] = "malformed command payload",
    [PPF_SC_INTERNAL] = "internal peripheral error; see the peripheral's log",
    [PPF_SC_BUSY] = "peripheral busy; try again",
    [PPF_SC_NOT_FOUND] = "not found",
    [PPF_SC_NO_SPACE] = "no space left",
    [PPF_SC_PERMISSION] = "permission denied",
    [PPF_SC_ABORTED] = "aborted: the queue was reset",
    [PPF_SC_INVALID_SQ_TAIL] = "queue stopped: submission doorbell out of range",
    [PPF_SC_CQ_OVERFLOW] = "queue stopped: completions were not consumed",
    [PPF_SC_INVALID_CQ_HEAD] = "queue stopped: completion doorbell out of range",
    [PPF_SC_EXISTS] = "the target already exists",
};

const char *
ppf_status_name(unsigned sc)
{
    return sc < PPF_SC__MAX && status_names[sc] ? status_names[sc] : "unknown-status";
}

const char *
ppf_status_text(unsigned sc)
{
    return sc < PPF_SC__MAX && status_texts[sc] ? status_texts[sc] : "unknown status";
}

const char *
ppf_opcode_name(unsigned op)
{
    switch (op) {
    case PPF_OP_NOP: return "NOP";
    case PPF_OP_IDENTIFY: return "IDENTIFY";
    case PPF_OP_GET_STATS: return "GET_STATS";
    case PPF_OP_CONFIGURE: return "CONFIGURE";
    case PPF_OP_EVICT: return "EVICT";
    case PPF_OP_BUFFER_LIST: return "BUFFER_LIST";
    case PPF_OP_TABLE_DUMP: return "TABLE_DUMP";
    case PPF_OP_FED_STATUS: return "FED_STATUS";
    case PPF_OP_LOG_READ: return "LOG_READ";
    case PPF_OP_USAGE: return "USAGE";
    case PPF_OP_EXPLAIN: return "EXPLAIN";
    case PPF_OP_PIN: return "PIN";
    case PPF_OP_PREFETCH: return "PREFETCH";
    case PPF_OP_DEPLOY: return "DEPLOY";
    case PPF_OP_RELEASE: return "RELEASE";
    case PPF_OP_EVENT: return "EVENT";
    default: return "UNKNOWN";
    }
}

static const char *const stat_names[PPF_STAT_PREDICT__MAX] = {
    [PPF_STAT_UPTIME_MS] = "uptime_ms",
    [PPF_STAT_COMMANDS] = "commands",
    [PPF_STAT_ERRORS] = "errors",
    [PPF_STAT_REJECTED] = "rejected",
    [PPF_STAT_CLAIMS] = "claims",
    [PPF_STAT_RESETS] = "resets",
    [PPF_STAT_RECLAIMS] = "reclaims",
    [PPF_STAT_QUEUE_FATAL] = "queue_fatal",
    [PPF_STAT_IRQS] = "irqs",
    [PPF_STAT_WAKEUPS] = "wakeups",
    [PPF_STAT_CLIENTS] = "clients",
    [PPF_STAT_QPS_CLAIMED] = "qps_claimed",
    [PPF_STAT_OP_NOP] = "op_nop",
    [PPF_STAT_OP_IDENTIFY] = "op_identify",
    [PPF_STAT_OP_GET_STATS] = "op_get_stats",
    [PPF_STAT_DEPLOYS] = "deploys",
    [PPF_STAT_HITS] = "hits",
    [PPF_STAT_INFLIGHT_HITS] = "inflight_hits",
    [PPF_STAT_MISSES] = "misses",
    [PPF_STAT_DEPLOY_ERRORS] = "deploy_errors",
    [PPF_STAT_PREFETCHES] = "prefetches",
    [PPF_STAT_PREFETCH_BYTES] = "prefetch_bytes",
    [PPF_STAT_DEMAND_BYTES] = "demand_bytes",
    [PPF_STAT_FETCH_ERRORS] = "fetch_errors",
    [PPF_STAT_EVICTIONS] = "evictions",
    [PPF_STAT_WASTED_BYTES] = "wasted_bytes",
    [PPF_STAT_BUFFER_USED] = "buffer_used",
    [PPF_STAT_BUFFER_CAPACITY] = "buffer_capacity",
    [PPF_STAT_BUFFER_ENTRIES] = "buffer_entries",
    [PPF_STAT_METRICS_RECORDS] = "metrics_records",
    [PPF_STAT_METRICS_DROPPED] = "metrics_dropped",
    [PPF_STAT_METRICS_INVALID] = "metrics_invalid",
    [PPF_STAT_METRICS_PRODUCER] = "metrics_producer",
    [PPF_STAT_EVENTS] = "events",
    [PPF_STAT_LEARNED] = "learned",
    [PPF_STAT_PREDICTED] = "predicted_prefetches",
    [PPF_STAT_PREDICTED_HITS] = "predicted_hits",
    [PPF_STAT_PREDICTED_WASTED] = "predicted_wasted",
    [PPF_STAT_HINTS] = "hint_prefetches",
    [PPF_STAT_TABLE_ROWS] = "table_rows",
    [PPF_STAT_STORE_SAVES] = "store_saves",
};

const char *
ppf_stat_name(unsigned stat)
{
    return stat < PPF_STAT_PREDICT__MAX && stat_names[stat] ? stat_names[stat] : NULL;
}

static uint64_t
align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

uint64_t
ppf_window_layout(struct ppf_regs *r, uint32_t num_qps, uint32_t qsize,
                  uint32_t slots, uint32_t slot_size, uint64_t metrics_size)
{
    uint64_t off = sizeof(struct ppf_regs);

    if (num_qps < 2 || num_qps > PPF_MAX_QPS)
        return 0;
    if (qsize < PPF_MIN_QSIZE || qsize > PPF_MAX_QSIZE || (qsize & (qsize - 1)))
        return 0;
    /* at most qsize-1 entries can be queued, so slots < qsize keeps both
     * queues from ever filling when the host plays by the rules (§4.2) */
    if (slots < 1 || slots >= qsize)
        return 0;
    if (slot_size < PPF_MIN_SLOT_SIZE || slot_size > PPF_MAX_SLOT_SIZE ||
        (slot_size & 4095))
        return 0;
    if (metrics_size > (1ull << 30))
        return 0;

    memset(r, 0, sizeof *r);
    r->magic = PPF_MAGIC;
    r->version = PPF_VERSION;
    r->num_qps = num_qps;
    r->qsize = qsize;
    r->slots = slots;
    r->slot_size = slot_size;
    r->qp_regs_off = off;
    off = align_up(off + (uint64_t)num_qps * sizeof(struct ppf_qp_regs), 4096);
    r->sq_off = off;
    off = align_up(off + (uint64_t)num_qps * qsize * sizeof(struct ppf_sqe), 4096);
    r->cq_off = off;
    off = align_up(off + (uint64_t)num_qps * qsize * sizeof(struct ppf_cqe), 4096);
    r->data_off = off;
    off += (uint64_t)num_qps * slots * slot_size;
    if (metrics_size) {
        r->metrics_off = off;
        r->metrics_size = metrics_size;
        off = align_up(off + metrics_size, 4096);
    }
    r->window_size = off;
    return off;
}

static int
region_ok(uint64_t off, uint64_t len, uint64_t win)
{
    return off <= win && len <= win - off;
}

int
ppf_window_check(const struct ppf_regs *r, uint64_t win_size, char *why, size_t whylen)
{
    struct ppf_regs want;
    uint64_t size;

    if (win_size < sizeof *r) {
        snprintf(why, whylen, "window is %llu bytes, smaller than the register page",
                 (unsigned long long)win_size);
        return -1;
    }
    if (r->magic != PPF_MAGIC) {
        snprintf(why, whylen, "bad magic 0x%08x (expected 0x%08x): not a ppf device",
                 r->magic, PPF_MAGIC);
        return -1;
    }
    if (PPF_VERSION_GET_MAJOR(r->version) != PPF_VERSION_MAJOR) {
        snprintf(why, whylen, "protocol version %u.%u, this host speaks %u.x: "
                 "install matching ppf versions", r->version >> 16, r->version & 0xffff,
                 PPF_VERSION_MAJOR);
        return -1;
    }
    size = ppf_window_layout(&want, r->num_qps, r->qsize, r->slots, r->slot_size,
                             r->metrics_size);
    if (size == 0) {
        snprintf(why, whylen, "geometry out of range (%u queue pairs, %u entries, "
                 "%u slots of %u bytes)", r->num_qps, r->qsize, r->slots, r->slot_size);
        return -1;
    }
    if (r->qp_regs_off != want.qp_regs_off || r->sq_off != want.sq_off ||
        r->cq_off != want.cq_off || r->data_off != want.data_off ||
        r->metrics_off != want.metrics_off || size > win_size ||
        !region_ok(r->data_off, (uint64_t)r->num_qps * r->slots * r->slot_size, win_size)) {
        snprintf(why, whylen, "region offsets do not match the geometry or lie outside "
                 "the %llu-byte window", (unsigned long long)win_size);
        return -1;
    }
    return 0;
}

int
ppf_has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

int
ppf_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PPF_NAME_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

int
ppf_uuid_ok(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

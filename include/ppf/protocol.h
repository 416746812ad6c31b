/* ppf device protocol: the register window, queue pairs, commands and
 * payload attributes that the host and the peripheral (real card or
 * emulated) share.  This header is the C form of schemas/device-protocol.md;
 * section numbers (§) below refer to that document.  Everything in the
 * window is little-endian, and every field is naturally aligned.
 *
 * Nothing in here trusts the other side: the peripheral validates every
 * field the host writes (ppf_sqe_check), and the host validates every
 * completion and payload the peripheral returns (ppf_cqe_check, the attr
 * reader).
 */
#ifndef PPF_PROTOCOL_H
#define PPF_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* §2 Identification. */
#define PPF_MAGIC            0x30465050u     /* "PPF0" read as little-endian */
#define PPF_VERSION_MAJOR    1
#define PPF_VERSION_MINOR    0
#define PPF_VERSION          ((PPF_VERSION_MAJOR << 16) | PPF_VERSION_MINOR)
#define PPF_VERSION_GET_MAJOR(v) ((uint32_t)(v) >> 16)

/* §2.1 Feature bits (regs.features). */
#define PPF_FEAT_EMULATED    (1ull << 0)     /* window is emulated shared memory */
#define PPF_FEAT_FUTEX_IRQ   (1ull << 1)     /* interrupts are futex words (emu) */
#define PPF_FEAT_METRICS     (1ull << 2)     /* the metrics ring is present (§6) */

/* §2.2 Device status (regs.status), written by the device. */
#define PPF_STS_READY        (1u << 0)       /* queues are being served */
#define PPF_STS_FATAL        (1u << 1)       /* device failed; reset needed */
#define PPF_STS_SHUTDOWN     (1u << 2)       /* device is stopping or stopped */

/* §2.3 Control (regs.control), written by the host. */
#define PPF_CTL_ENABLE       (1u << 0)
#define PPF_CTL_RESET        (1u << 1)

/* Limits the device enforces on geometry (§3). */
#define PPF_MAX_QPS          64              /* including the admin pair 0 */
#define PPF_MIN_QSIZE        4
#define PPF_MAX_QSIZE        4096
#define PPF_MIN_SLOT_SIZE    4096
#define PPF_MAX_SLOT_SIZE    (1u << 20)
#define PPF_ADMIN_QID        0

#define PPF_CACHELINE        64

/* §2 The register page, at offset 0 of the window (4 KiB).  "RO" fields
 * are written only by the device; "host" fields only by the host. */
struct ppf_regs {
    uint32_t magic;             /* 0x000 RO PPF_MAGIC */
    uint32_t version;           /* 0x004 RO PPF_VERSION */
    uint64_t features;          /* 0x008 RO PPF_FEAT_* */
    uint32_t status;            /* 0x010 RO PPF_STS_* */
    uint32_t control;           /* 0x014 host PPF_CTL_* */
    uint32_t num_qps;           /* 0x018 RO queue pairs, admin pair included */
    uint32_t qsize;             /* 0x01c RO entries per SQ and per CQ (2^n) */
    uint32_t slots;             /* 0x020 RO command ids (data slots) per pair */
    uint32_t slot_size;         /* 0x024 RO bytes per data slot */
    uint64_t window_size;       /* 0x028 RO bytes in the whole window */
    uint64_t qp_regs_off;       /* 0x030 RO struct ppf_qp_regs[num_qps] */
    uint64_t sq_off;            /* 0x038 RO struct ppf_sqe[num_qps][qsize] */
    uint64_t cq_off;            /* 0x040 RO struct ppf_cqe[num_qps][qsize] */
    uint64_t data_off;          /* 0x048 RO data slots [num_qps][slots][slot_size] */
    uint64_t metrics_off;       /* 0x050 RO metrics ring (§6), 0 if absent */
    uint64_t metrics_size;      /* 0x058 RO */
    uint64_t heartbeat;         /* 0x060 RO incremented at least 10 times a second */
    uint32_t device_pid;        /* 0x068 RO emulated device's pid, 0 on hardware */
    uint32_t reserved0;         /* 0x06c */
    uint8_t  pad0[0x80 - 0x70];
    uint64_t intr_status;       /* 0x080 RO bit q: pair q posted a completion */
    uint64_t intr_mask;         /* 0x088 host bit q set: vector q masked */
    uint8_t  pad1[0x100 - 0x90];
    uint32_t db_seq;            /* 0x100 host increments after ringing a doorbell
                                 *       while dev_sleeping (emu futex word) */
    uint8_t  pad2[0x140 - 0x104];
    uint32_t dev_sleeping;      /* 0x140 RO device is asleep: wake it via db_seq */
    uint8_t  pad3[0x180 - 0x144];
    uint32_t free_seq;          /* 0x180 RO incremented whenever a pair becomes free */
    uint8_t  pad4[0x1000 - 0x184];
};

/* §3.1 Queue pair ownership word (qp_regs.claim), changed only by
 * compare-and-swap.  state: bits 62-63, generation: bits 32-61,
 * owner: bits 0-31 (the client id the emulated device handed out, or the
 * owning process id on hardware). */
#define PPF_CLAIM_FREE       0ull
#define PPF_CLAIM_CLAIMED    1ull
#define PPF_CLAIM_RESET      2ull            /* released; the device resets it */
#define PPF_CLAIM_STATE(c)   ((c) >> 62)
#define PPF_CLAIM_GEN(c)     (((c) >> 32) & 0x3fffffffull)
#define PPF_CLAIM_OWNER(c)   ((uint32_t)(c))
#define PPF_CLAIM_MAKE(s, g, o) \
    (((uint64_t)(s) << 62) | (((uint64_t)(g) & 0x3fffffffull) << 32) | (uint32_t)(o))

/* §3.2 Queue status (qp_regs.qstatus), written by the device. */
#define PPF_QSTS_FATAL       (1u << 31)      /* pair stopped: host broke the protocol */
#define PPF_QSTS_CODE(s)     ((s) & 0xffffu) /* PPF_SC_* saying why */

/* §3 Per-queue-pair registers; host-written and device-written fields live
 * on separate cache lines. */
struct ppf_qp_regs {
    uint64_t claim;             /* 0x00 host CAS: PPF_CLAIM_MAKE(...) */
    uint64_t owner_start;       /* 0x08 host: owner's start time (hardware reclaim) */
    uint8_t  pad0[0x40 - 0x10];
    uint32_t sq_tail;           /* 0x40 host doorbell: next SQ index to be written */
    uint32_t cq_head;           /* 0x44 host doorbell: next CQ index to be read */
    uint8_t  pad1[0x80 - 0x48];
    uint32_t sq_head;           /* 0x80 RO next SQ index the device will consume */
    uint32_t qstatus;           /* 0x84 RO PPF_QSTS_* */
    uint8_t  pad2[0xc0 - 0x88];
    uint32_t irq_count;         /* 0xc0 RO interrupts raised on this vector */
    uint8_t  pad3[0x100 - 0xc4];
    uint32_t irq_armed;         /* 0x100 host: 1 while a host thread sleeps on irq */
    uint8_t  pad4[0x140 - 0x104];
};

/* §4 Submission queue entry (64 bytes). */
struct ppf_sqe {
    uint8_t  opcode;            /* PPF_OP_* */
    uint8_t  flags;             /* must be 0 in version 1 */
    uint16_t cid;               /* command id < regs.slots; names the data slot */
    uint32_t in_len;            /* payload bytes the host wrote into the slot */
    uint32_t out_cap;           /* bytes the device may write back (<= slot_size) */
    uint32_t rsvd;              /* must be 0 */
    uint64_t arg[6];            /* command specific (§5) */
};

/* §4 Completion queue entry (16 bytes).  The device writes the first
 * 8 bytes, then the last 8 (holding the phase bit) in one release store. */
struct ppf_cqe {
    uint32_t result;            /* command specific */
    uint32_t out_len;           /* bytes written back into the slot */
    uint16_t sq_head;           /* device's SQ head after consuming this entry */
    uint16_t cid;               /* the command this completes */
    uint16_t status;            /* bit 0: phase; bits 1-15: PPF_SC_* */
    uint16_t rsvd;
};

#define PPF_CQE_PHASE(st)    ((st) & 1u)
#define PPF_CQE_SC(st)       ((uint16_t)((st) >> 1))

/* §4.1 Status codes. */
enum ppf_status_code {
    PPF_SC_SUCCESS = 0,
    PPF_SC_INVALID_OPCODE = 1,  /* unknown or not yet implemented opcode */
    PPF_SC_INVALID_FIELD = 2,   /* a reserved field, flag or argument is wrong */
    PPF_SC_INVALID_CID = 3,     /* cid >= slots */
    PPF_SC_DATA_TOO_LONG = 4,   /* in_len or out_cap > slot_size */
    PPF_SC_ADMIN_ONLY = 5,      /* admin command on an I/O pair */
    PPF_SC_INVALID_PAYLOAD = 6, /* malformed attributes */
    PPF_SC_INTERNAL = 7,        /* device-side failure; see the device log */
    PPF_SC_BUSY = 8,            /* try again later */
    PPF_SC_NOT_FOUND = 9,
    PPF_SC_NO_SPACE = 10,
    PPF_SC_PERMISSION = 11,
    PPF_SC_ABORTED = 12,        /* pair reset while the command was running */
    PPF_SC_INVALID_SQ_TAIL = 13,/* queue fatal: doorbell outside the queue */
    PPF_SC_CQ_OVERFLOW = 14,    /* queue fatal: host did not consume completions */
    PPF_SC_INVALID_CQ_HEAD = 15,/* queue fatal: CQ head doorbell outside the queue */
    PPF_SC_EXISTS = 16,         /* the target exists and is never overwritten */
    PPF_SC__MAX
};

/* §5 Opcodes.  Admin commands are accepted on pair 0 only. */
enum ppf_opcode {
    PPF_OP_NOP = 0x00,          /* echo: result = (u32)arg[0]; the payload comes
                                 * back when out_cap >= in_len */
    PPF_OP_IDENTIFY = 0x01,
    PPF_OP_GET_STATS = 0x02,
    /* reserved for later issues; layouts in §5.4 */
    PPF_OP_CONFIGURE = 0x10,    /* admin */
    PPF_OP_EVICT = 0x11,        /* admin */
    PPF_OP_BUFFER_LIST = 0x12,
    PPF_OP_TABLE_DUMP = 0x13,
    PPF_OP_FED_STATUS = 0x14,   /* §5.8 federation: peers, exchanges, errors */
    PPF_OP_LOG_READ = 0x15,     /* §5.9 operations log from a sequence number */
    PPF_OP_USAGE = 0x16,        /* §5.9 per-tenant and per-image outcomes */
    PPF_OP_EXPLAIN = 0x17,      /* §5.9 why an image is or is not in the buffer */
    PPF_OP_PIN = 0x18,          /* admin, §5.9: arg[0] 1 pin, 0 unpin */
    PPF_OP_PREFETCH = 0x20,
    PPF_OP_DEPLOY = 0x21,
    PPF_OP_RELEASE = 0x22,
    PPF_OP_EVENT = 0x23,
};

/* §5.4 CONFIGURE: arg[0] selects the operation.  SET: the payload is an
 * encoded policy ("PPFC", policy/policy.h); the device checks it fully,
 * persists it, then applies it; result = the new generation.  GET: the
 * device returns the encoded policy in force; result = its generation.  A
 * refused SET returns a one-line UTF-8 reason as the payload. */
#define PPF_CONFIGURE_SET    0u
#define PPF_CONFIGURE_GET    1u

#define PPF_OP_IS_ADMIN(op)  ((op) == PPF_OP_CONFIGURE || (op) == PPF_OP_EVICT || \
                              (op) == PPF_OP_PIN)

/* §5.1 Payload attributes: a sequence of {u16 type, u16 len, value[len]},
 * each padded with zeros to a multiple of 4 bytes.  Strings are UTF-8
 * without a terminating NUL and must not contain NUL or control bytes.
 * Unknown types are skipped by readers (forward compatibility). */
struct ppf_attr_hdr {
    uint16_t type;
    uint16_t len;
};

#define PPF_ATTR_ALIGN(n)    (((n) + 3u) & ~3u)
#define PPF_ATTR_MAX_STR     4096

/* §5.2 IDENTIFY attributes. */
enum ppf_identify_attr {
    PPF_ID_VENDOR = 1,          /* str */
    PPF_ID_MODEL = 2,           /* str */
    PPF_ID_FIRMWARE = 3,        /* str */
    PPF_ID_SERIAL = 4,          /* str */
    PPF_ID_FEATURES = 5,        /* u64 */
    PPF_ID_NUM_QPS = 6,         /* u32 */
    PPF_ID_QSIZE = 7,           /* u32 */
    PPF_ID_SLOTS = 8,           /* u32 */
    PPF_ID_SLOT_SIZE = 9,       /* u32 */
    PPF_ID_STATE_DIR = 10,      /* str */
    PPF_ID_PID = 11,            /* u32 */
};

/* §5.3 GET_STATS: a list of u64 counters, type = PPF_STAT_*. */
enum ppf_stat {
    PPF_STAT_UPTIME_MS = 1,
    PPF_STAT_COMMANDS = 2,      /* completed, any status */
    PPF_STAT_ERRORS = 3,        /* completed with status != SUCCESS */
    PPF_STAT_REJECTED = 4,      /* invalid from the host (subset of errors) */
    PPF_STAT_CLAIMS = 5,        /* pairs claimed */
    PPF_STAT_RESETS = 6,        /* pairs reset after release */
    PPF_STAT_RECLAIMS = 7,      /* pairs reclaimed from dead owners */
    PPF_STAT_QUEUE_FATAL = 8,   /* pairs stopped for protocol violations */
    PPF_STAT_IRQS = 9,          /* interrupts raised */
    PPF_STAT_WAKEUPS = 10,      /* times the device was woken from sleep */
    PPF_STAT_CLIENTS = 11,      /* clients attached now (emulated) */
    PPF_STAT_QPS_CLAIMED = 12,  /* pairs claimed now */
    PPF_STAT_OP_NOP = 13,
    PPF_STAT_OP_IDENTIFY = 14,
    PPF_STAT_OP_GET_STATS = 15,
    PPF_STAT__MAX
};

/* §5.6 Prefetch buffer and deploy (PREFETCH, DEPLOY, RELEASE, EVICT,
 * BUFFER_LIST): attributes of their payloads.  Names are checked by the
 * device: an image or tenant name is 1..255 bytes of [A-Za-z0-9._-], not
 * starting with '.' (never a path); a domain is a UUID (36 chars); a target
 * is an absolute path under a directory the policy allows. */
enum ppf_buffer_attr {
    PPF_A_IMAGE = 1,            /* str: image name (the store holds NAME.ppfi) */
    PPF_A_TENANT = 2,           /* str: tenant; absent = "default" */
    PPF_A_PRIORITY = 3,         /* u32: PPF_PRIO_* (policy order: 0 low .. 2 high) */
    PPF_A_DOMAIN = 4,           /* str: domain UUID */
    PPF_A_TARGET = 5,           /* str: absolute path of the disk to create */
    PPF_A_MODE = 6,             /* u32: PPF_DEPLOY_OVERLAY 0, PPF_DEPLOY_COPY 1 */
    PPF_A_EPHEMERAL = 7,        /* u32: 1 = the target may be replaced */
    PPF_A_PLACEHOLDER = 8,      /* u32: 1 = an existing empty regular file at the
                                 * target is a placeholder (a ppf pool volume made
                                 * by ppfctl vol-create) and is replaced; any other
                                 * existing file is still EXISTS */
    /* BUFFER_LIST output, one group per entry, each starting with IMAGE */
    PPF_A_SIZE = 16,            /* u64: logical size in bytes */
    PPF_A_STATE = 17,           /* u32: PPF_ENTRY_* */
    PPF_A_PINS = 18,            /* u32: domains and disks holding it */
    PPF_A_HITS = 19,            /* u64: deploys served from it */
    PPF_A_DONE = 20,            /* u64: bytes prepared so far (in flight) */
    PPF_A_PUBLIC = 21,          /* u32: 1 = unencrypted, shared by all tenants */
    PPF_A_PATH = 22,            /* str: the prepared file (read-only base) */
    PPF_A_DIGEST = 23,          /* str: content digest, hex */
    /* DEPLOY output */
    PPF_A_OUTCOME = 32,         /* u32: PPF_OUTCOME_* */
    PPF_A_WAIT_US = 33,         /* u64: time from DEPLOY to target ready */
    /* §5.7 EVENT input */
    PPF_A_EVENT = 40,           /* u32: PPF_EVENT_* */
    PPF_A_TIME_US = 41,         /* u64: when, in us since the Unix epoch; absent = now */
    /* §5.7 TABLE_DUMP output: a group per row starting with KEY (then HITS,
     * MISSES, UPDATED_US), then a group per ranked image of the row starting
     * with IMAGE (then TENANT if known, SCORE, HITS, MISSES) */
    PPF_A_KEY = 48,             /* str: the pattern the row's predictions came from */
    PPF_A_SCORE = 49,           /* u32: score x 1e6 (0..1e6) */
    PPF_A_MISSES = 50,          /* u64: prefetches it caused that were evicted unused */
    PPF_A_UPDATED_US = 51,      /* u64: last prediction under the key, us since the epoch */
    /* §5.9 operations: LOG_READ output, one group per record starting with
     * SEQ (then TIME_US, LOG_KIND, IMAGE, TENANT if any, OUTCOME, WAIT_US,
     * SAVED_US, BYTES where they apply, TEXT) */
    PPF_A_SEQ = 80,             /* u64: record sequence number (from 1) */
    PPF_A_LOG_KIND = 81,        /* u32: PPF_OPLOG_* */
    PPF_A_TEXT = 82,            /* str: what happened and why, one line */
    PPF_A_SAVED_US = 83,        /* u64: time a deploy saved against a miss */
    PPF_A_BYTES = 84,           /* u64: bytes the record concerns */
    PPF_A_UNTIL_US = 85,        /* u64: PIN: until when (us since the epoch), 0 = never */
    /* USAGE output: a group per tenant starting with TENANT, then a group per
     * image starting with IMAGE (then TENANT); each with the U_* counters */
    PPF_A_U_DEPLOYS = 88,       /* u64 */
    PPF_A_U_HITS = 89,          /* u64 */
    PPF_A_U_INFLIGHT = 90,      /* u64 */
    PPF_A_U_MISSES = 91,        /* u64 */
    PPF_A_U_FALLBACKS = 92,     /* u64 */
    PPF_A_U_WAIT_US = 93,       /* u64: sum over deploys */
    PPF_A_U_SAVED_US = 94,      /* u64: sum over deploys */
    PPF_A_U_PREFETCH_BYTES = 95,/* u64 */
    PPF_A_U_WASTED_BYTES = 96,  /* u64: prefetched, evicted unused */
    /* EXPLAIN (§5.9) input: IMAGE, TENANT.  Output: STATE (0 absent), SIZE,
     * PINS, HITS, DIGEST of the entry if any, then the X_* below; numbers
     * that are not counts are decimal strings ("0.83", "1.2e-12") */
    PPF_A_X_HOLD = 104,         /* str, repeated: "pin until never", "schedule ..." */
    PPF_A_X_STALE = 105,        /* u32: 1 = the entry's version is no longer the store's */
    PPF_A_X_QUOTA = 106,        /* u64: the tenant's quota (0 = the whole buffer) */
    PPF_A_X_QUOTA_USED = 107,   /* u64: bytes charged to the tenant */
    PPF_A_X_CAPACITY = 108,     /* u64 */
    PPF_A_X_USED = 109,         /* u64: bytes charged in the whole buffer */
    PPF_A_X_VALUE = 110,        /* str: the engine's value of the image per byte */
    PPF_A_X_FLOOR = 111,        /* str: lowest value per byte of what could be evicted */
    PPF_A_X_MODEL = 112,        /* str: starts a model's group */
    PPF_A_X_PROB = 113,         /* str: its probability of a request within the horizon */
    PPF_A_X_ETA = 114,          /* str: s until the request it expects ("inf") */
    PPF_A_X_MVALUE = 115,       /* str: its discounted value 0..1 */
    PPF_A_X_WEIGHT = 116,       /* str: the precision its opinion is weighed by */
    PPF_A_X_SCHEDULE = 117,     /* str, repeated: a schedule of the image and its next window */
    PPF_A_X_LAST_EVICT = 118,   /* str: the last eviction or purge of the image, and why */
    PPF_A_X_PAUSED = 119,       /* str: why prefetching it is paused, and until when */
    PPF_A_X_TABLE = 120,        /* str, repeated: "KEY: score S" rows that rank it */
    PPF_A_X_KNOWN = 121,        /* u32: 1 = the engine has seen the image */
    PPF_A_X_PROBABILITY = 122,  /* str: the engine's combined probability */
    PPF_A_X_LAST_PREFETCH = 123,/* str: the last prefetch of the image, and why */
    PPF_A_X_CONCURRENT = 124,   /* str: "N of M" prefetches in flight of prefetch.concurrent */
};

/* §5.9 kinds of operations-log records. */
enum ppf_oplog_kind {
    PPF_OPLOG_PREFETCH = 1,       /* a prefetch started (TEXT: who asked and why) */
    PPF_OPLOG_READY = 2,          /* an image is prepared (BYTES, WAIT_US = time taken) */
    PPF_OPLOG_DEPLOY = 3,         /* a deploy finished (OUTCOME, WAIT_US, SAVED_US) */
    PPF_OPLOG_EVICT = 4,          /* an entry left the buffer (TEXT: why) */
    PPF_OPLOG_PIN = 5,
    PPF_OPLOG_UNPIN = 6,
    PPF_OPLOG_SCHEDULE = 7,       /* a schedule fired */
    PPF_OPLOG_PURGE = 8,          /* an image gone from its store was purged */
    PPF_OPLOG_ERROR = 9,          /* a fetch or deploy failed (TEXT: the reason) */
    PPF_OPLOG_STALE = 10,         /* the store holds a newer version of an entry */
    PPF_OPLOG__MAX
};

/* §5.7 EVENT kinds: host history (libvirt domain lifecycle, or a deploy the
 * device did not serve itself). */
enum ppf_event_kind {
    PPF_EVENT_DEFINED = 1,      /* a domain that deploys IMAGE was defined: prefetch it */
    PPF_EVENT_STARTED = 2,      /* ... started (learned like a DEPLOY unless one came
                                 * for the same domain just before) */
    PPF_EVENT_STOPPED = 3,
    PPF_EVENT_UNDEFINED = 4,
    PPF_EVENT_DEPLOY = 5,       /* IMAGE was deployed without the device (host fallback) */
    PPF_EVENT__MAX
};

#define PPF_NAME_MAX 255
/* 1 if s is an image or tenant name as above, else 0. */
int ppf_name_ok(const char *s);
/* 1 if s holds a control byte (below 0x20, or 0x7f), else 0. */
int ppf_has_control(const char *s);
/* 1 if s is a UUID (8-4-4-4-12 hex digits), else 0. */
int ppf_uuid_ok(const char *s);

enum ppf_entry_state { PPF_ENTRY_INFLIGHT = 1, PPF_ENTRY_READY = 2, PPF_ENTRY_FAILED = 3,
                       PPF_ENTRY_STALE = 4 /* BUFFER_LIST: prepared from a version the store
                                            * no longer holds; kept for disks, never served */ };
enum ppf_deploy_outcome { PPF_OUTCOME_HIT = 0, PPF_OUTCOME_INFLIGHT = 1, PPF_OUTCOME_MISS = 2,
                          PPF_OUTCOME_FALLBACK = 3 /* deployed on the host (EVENT DEPLOY) */ };

/* §5.6 counters of the prefetch buffer, in GET_STATS after the core's. */
enum ppf_fw_stat {
    PPF_STAT_DEPLOYS = 32,      /* DEPLOY commands completed successfully */
    PPF_STAT_HITS = 33,         /* ... served from a prepared entry */
    PPF_STAT_INFLIGHT_HITS = 34,/* ... that waited for a prefetch in flight */
    PPF_STAT_MISSES = 35,       /* ... that had to fetch */
    PPF_STAT_DEPLOY_ERRORS = 36,
    PPF_STAT_PREFETCHES = 37,   /* prefetches finished */
    PPF_STAT_PREFETCH_BYTES = 38,
    PPF_STAT_DEMAND_BYTES = 39, /* prepared for misses */
    PPF_STAT_FETCH_ERRORS = 40,
    PPF_STAT_EVICTIONS = 41,
    PPF_STAT_WASTED_BYTES = 42, /* prefetched, then evicted unused */
    PPF_STAT_BUFFER_USED = 43,  /* bytes charged now */
    PPF_STAT_BUFFER_CAPACITY = 44,
    PPF_STAT_BUFFER_ENTRIES = 45,
    PPF_STAT_FW__MAX
};

/* §6 Metrics ring: at regs.metrics_off when PPF_FEAT_METRICS is set.  A
 * 128-byte header, then nrecs 128-byte records (nrecs a power of two).  The
 * device writes the header's identification once; the one host producer
 * (ppfd) claims `producer` by compare-and-swap (0 -> its pid), writes the
 * record of sequence `head` at index head % nrecs under the record's
 * seqlock, then stores head + 1 with release ordering.  The device's
 * monitor keeps its own tail and geometry and checks every record. */
#define PPF_METRICS_MAGIC        0x4d465050u /* "PPFM" read as little-endian */
#define PPF_METRICS_VERSION      1u
#define PPF_METRICS_HDR_SIZE     128u
#define PPF_METRICS_REC_SIZE     128u
#define PPF_METRICS_MIN_RECORDS  2u
#define PPF_METRICS_MAX_RECORDS  (1u << 20)
#define PPF_METRICS_DEFAULT_RECORDS 64u

struct ppf_metrics_hdr {
    uint32_t magic;             /* 0x00 RO PPF_METRICS_MAGIC */
    uint32_t version;           /* 0x04 RO PPF_METRICS_VERSION */
    uint32_t rec_size;          /* 0x08 RO PPF_METRICS_REC_SIZE */
    uint32_t nrecs;             /* 0x0c RO records in the ring, 2^n */
    uint32_t producer;          /* 0x10 host CAS: pid of the producer, 0 = none */
    uint32_t reserved0;         /* 0x14 */
    uint8_t  pad0[0x40 - 0x18];
    uint64_t head;              /* 0x40 host sequence of the next record written */
    uint8_t  pad1[0x80 - 0x48];
};

/* §6.2 Record flags: bits 0-4 say which PPF_METRIC_* groups (policy/policy.h
 * order: cpu, memory, pressure, disk, net) hold a value in this record. */
#define PPF_MREC_CPU             (1u << 0)
#define PPF_MREC_MEMORY          (1u << 1)
#define PPF_MREC_PRESSURE        (1u << 2)
#define PPF_MREC_DISK            (1u << 3)
#define PPF_MREC_NET             (1u << 4)
#define PPF_MREC_NO_PSI          (1u << 8)   /* host has no /proc/pressure: psi_* are 0 */
#define PPF_MREC__KNOWN          0x11fu

#define PPF_MREC_MAX_PERMILLE    1000u
#define PPF_MREC_MAX_PSI         10000u      /* avg10 in hundredths of a percent */

struct ppf_metrics_rec {
    uint32_t seq;               /* 0x00 seqlock: odd while being written */
    uint32_t flags;             /* 0x04 PPF_MREC_* */
    uint64_t index;             /* 0x08 this record's sequence (head when written) */
    uint64_t time_ns;           /* 0x10 CLOCK_REALTIME of the sample */
    uint32_t interval_ms;       /* 0x18 sampling interval in force */
    uint16_t cpu_busy;          /* 0x1c per mille of all CPUs, since the last sample */
    uint16_t mem_used;          /* 0x1e per mille of MemTotal not available */
    uint64_t mem_avail;         /* 0x20 bytes (MemAvailable) */
    uint16_t psi_cpu;           /* 0x28 "some" avg10, 0.01 % units */
    uint16_t psi_mem;           /* 0x2a */
    uint16_t psi_io;            /* 0x2c */
    uint16_t reserved0;         /* 0x2e */
    uint64_t disk_read_bps;     /* 0x30 whole disks, bytes per second */
    uint64_t disk_write_bps;    /* 0x38 */
    uint64_t net_rx_bps;        /* 0x40 all interfaces but lo, bytes per second */
    uint64_t net_tx_bps;        /* 0x48 */
    uint8_t  reserved1[0x80 - 0x50];
};

/* §6.3 The monitor's counters, in GET_STATS after the firmware's. */
enum ppf_metrics_stat {
    PPF_STAT_METRICS_RECORDS = 48,  /* valid records read */
    PPF_STAT_METRICS_DROPPED = 49,  /* overwritten before they were read */
    PPF_STAT_METRICS_INVALID = 50,  /* torn or failing the checks: skipped */
    PPF_STAT_METRICS_PRODUCER = 51, /* pid of the producer of the last record */
    PPF_STAT_METRICS__MAX
};

/* §5.7 counters of the predictor (engine, table, scheduler), in GET_STATS. */
enum ppf_predict_stat {
    PPF_STAT_EVENTS = 56,       /* EVENT commands accepted */
    PPF_STAT_LEARNED = 57,      /* deploys the engine learned from */
    PPF_STAT_PREDICTED = 58,    /* prefetches the predictor started */
    PPF_STAT_PREDICTED_HITS = 59,   /* deploys served from those */
    PPF_STAT_PREDICTED_WASTED = 60, /* ... evicted unused */
    PPF_STAT_HINTS = 61,        /* prefetches started for a DEFINED event or a schedule */
    PPF_STAT_TABLE_ROWS = 62,
    PPF_STAT_STORE_SAVES = 63,  /* pattern store written */
    PPF_STAT_PREDICT__MAX
};

/* §5.8 FED_STATUS: the federation's state, then one record per peer, each
 * starting with PPF_A_FED_PEER.  Times are µs since the epoch (0 = never). */
enum ppf_fed_attr {
    PPF_A_FED_ENABLED = 64,     /* u32: 1 if federation.enabled */
    PPF_A_FED_LISTEN = 65,      /* str: host:port accepted on */
    PPF_A_FED_STATE = 66,       /* str: "running", "disabled" or "error: ..." */
    PPF_A_FED_EXPORTED = 67,    /* u64: images in the summary we send */
    PPF_A_FED_EXPORTED_BYTES = 68,  /* u64: its size */
    PPF_A_FED_REFUSED = 69,     /* u64: connections refused (TLS, certificate) */
    PPF_A_FED_REFUSED_ERROR = 70,   /* str: why the last one was */
    PPF_A_FED_PEER = 71,        /* str: starts a peer: host:port (we send) or
                                 * its certificate's DN (it sends) */
    PPF_A_FED_DIRECTION = 72,   /* u32: PPF_FED_OUT or PPF_FED_IN */
    PPF_A_FED_LAST_US = 73,     /* u64: last successful exchange */
    PPF_A_FED_OK = 74,          /* u64: summaries sent (out) or accepted (in) */
    PPF_A_FED_REJECTED = 75,    /* u64: summaries refused by the peer (out) or
                                 * rejected from it: garbage, oversized (in) */
    PPF_A_FED_FAILURES = 76,    /* u64: connections that failed (out) */
    PPF_A_FED_MERGED = 77,      /* u64: images merged from its last summary (in) */
    PPF_A_FED_ERROR = 78,       /* str: the last error */
    PPF_A_FED_ERROR_US = 79,    /* u64: when */
};
enum { PPF_FED_OUT = 1, PPF_FED_IN = 2 };

/* §7 Emulated transport: the message a client receives on connecting to
 * the device socket, with the window's memfd attached (SCM_RIGHTS). */
struct ppf_emu_hello {
    uint32_t magic;             /* PPF_MAGIC */
    uint32_t version;           /* PPF_VERSION */
    uint32_t client_id;         /* owner id to put in claim words; never 0 */
    uint32_t reserved;
    uint64_t window_size;
};

/* Attribute writer and reader (common/protocol.c).  Both take caller
 * buffers and never allocate. */
struct ppf_attr_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;               /* set when an attribute did not fit */
};

struct ppf_attr_reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
};

struct ppf_attr {
    uint16_t type;
    uint16_t len;
    const uint8_t *value;
};

void ppf_attr_writer_init(struct ppf_attr_writer *w, void *buf, size_t cap);
int ppf_attr_put(struct ppf_attr_writer *w, uint16_t type, const void *v, size_t len);
int ppf_attr_put_u32(struct ppf_attr_writer *w, uint16_t type, uint32_t v);
int ppf_attr_put_u64(struct ppf_attr_writer *w, uint16_t type, uint64_t v);
int ppf_attr_put_str(struct ppf_attr_writer *w, uint16_t type, const char *s);

void ppf_attr_reader_init(struct ppf_attr_reader *r, const void *buf, size_t len);
/* Returns 1 and fills *a for the next attribute, 0 at the end, -1 if the
 * payload is malformed (truncated header or value, nonzero padding). */
int ppf_attr_next(struct ppf_attr_reader *r, struct ppf_attr *a);
int ppf_attr_get_u32(const struct ppf_attr *a, uint32_t *v);
int ppf_attr_get_u64(const struct ppf_attr *a, uint64_t *v);
/* Copies a string attribute into dst (cap bytes, NUL-terminated); -1 if it
 * does not fit, or holds NUL or control bytes. */
int ppf_attr_get_str(const struct ppf_attr *a, char *dst, size_t cap);

/* Checks an SQE copied out of the window against the geometry; returns
 * PPF_SC_SUCCESS or the status code to complete it with. */
enum ppf_status_code ppf_sqe_check(const struct ppf_sqe *e, uint32_t qid,
                                   uint32_t slots, uint32_t slot_size);
/* Checks a CQE read from the window (phase already matched); 0 or -1. */
int ppf_cqe_check(const struct ppf_cqe *c, uint32_t slots, uint32_t slot_size,
                  uint32_t qsize);

/* Names for messages and JSON; never NULL. */
const char *ppf_status_name(unsigned sc);
const char *ppf_status_text(unsigned sc);
const char *ppf_opcode_name(unsigned op);
const char *ppf_stat_name(unsigned stat);

/* Window layout for a geometry (§3): fills the offsets in *r and returns
 * the window size, or 0 if the geometry is out of range. */
uint64_t ppf_window_layout(struct ppf_regs *r, uint32_t num_qps, uint32_t qsize,
                           uint32_t slots, uint32_t slot_size, uint64_t metrics_size);
/* Checks a register page read from an untrusted window of win_size bytes:
 * magic, major version, geometry and that every region lies inside. */
int ppf_window_check(const struct ppf_regs *r, uint64_t win_size, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif /* PPF_PROTOCOL_H */

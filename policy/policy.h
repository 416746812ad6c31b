/* The ppf policy: the administrator's configuration (see ppf-policy(5)).
 *
 * Two libraries share this header.  libppfpolicycodec (no libyaml; the
 * peripheral links it) holds the structure, its defaults, the semantic
 * check, the binary device-configuration codec used for CONFIGURE, and the
 * YAML/JSON emitters.  libppfpolicy (host only, libyaml) parses the YAML
 * file, with line:column diagnostics, and checks the files it names.
 */
#ifndef PPF_POLICY_H
#define PPF_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits.  The encoded policy must fit one 64 KiB data slot. */
#define PPF_POLICY_MAX_ENCODED   (60 * 1024)
#define PPF_POLICY_MAX_INPUT     (1024 * 1024)   /* YAML bytes */
#define PPF_POLICY_MAX_DEPTH     32              /* YAML nesting */
#define PPF_POLICY_MAX_STORES    64
#define PPF_POLICY_MAX_TENANTS   256
#define PPF_POLICY_MAX_DIRS      32
#define PPF_POLICY_MAX_PEERS     64
#define PPF_POLICY_MAX_PINS      1024
#define PPF_POLICY_MAX_SCHEDULES 1024
#define PPF_POLICY_MAX_NAME      64              /* store and tenant names */
#define PPF_POLICY_MAX_IMAGE     255             /* image names, bytes */
#define PPF_POLICY_MAX_PATH      4095
#define PPF_POLICY_MAX_URL       2048

enum ppf_policy_algorithm {
    PPF_ALGO_MARKOV, PPF_ALGO_SEASONAL, PPF_ALGO_HISTOGRAM, PPF_ALGO_WORKLOAD,
    PPF_ALGO_ENSEMBLE, PPF_ALGO_LRU, PPF_ALGO_NONE, PPF_ALGO__MAX
};
enum ppf_policy_priority { PPF_PRIO_LOW, PPF_PRIO_NORMAL, PPF_PRIO_HIGH, PPF_PRIO__MAX };
enum ppf_policy_eviction { PPF_EVICT_VALUE, PPF_EVICT_LRU, PPF_EVICT__MAX };
enum ppf_policy_deploy_mode { PPF_DEPLOY_OVERLAY, PPF_DEPLOY_COPY, PPF_DEPLOY__MAX };
enum ppf_policy_fallback { PPF_FALLBACK_HOST, PPF_FALLBACK_FAIL, PPF_FALLBACK__MAX };

/* monitoring.metrics, a bit set. */
#define PPF_METRIC_CPU       (1u << 0)
#define PPF_METRIC_MEMORY    (1u << 1)
#define PPF_METRIC_PRESSURE  (1u << 2)
#define PPF_METRIC_DISK      (1u << 3)
#define PPF_METRIC_NET       (1u << 4)
#define PPF_METRIC__ALL      0x1fu
#define PPF_METRIC__COUNT    5

struct ppf_policy_store {
    char *name;
    char *url;                  /* file:///dir or https://host[:port]/base */
    char *ca_file;              /* NULL if unset */
    char *pinned_cert;          /* NULL if unset */
};

struct ppf_policy_tenant {
    char *name;
    uint64_t quota;             /* bytes; 0 = the whole buffer */
    char *keyfile;              /* NULL if unset (public images only) */
    enum ppf_policy_priority priority;
    bool share;                 /* its learned patterns may go to federation peers */
};

struct ppf_policy_pin {
    char *image;
    char *tenant;
    char *until;                /* "never" or YYYY-MM-DD[THH:MM[:SS]][Z] */
};

struct ppf_policy_schedule {
    char *when;                 /* "weekdays 08:30", "mon,thu 07:00", "daily 23:00" */
    char *image;
    char *tenant;
    char *before;               /* "HH:MM" or NULL */
};

struct ppf_policy_origin;       /* private: where each key was found */

struct ppf_policy {
    struct {
        uint64_t interval_ms;
        uint32_t metrics;       /* PPF_METRIC_* */
    } monitoring;
    struct {
        enum ppf_policy_algorithm algorithm;
        uint32_t markov_order;
        uint64_t half_life_ms;
        uint64_t horizon_ms;
        uint32_t time_buckets;
        double adaptation_rate; /* 0..1 */
        uint64_t store_size;    /* bytes of NVM pattern store */
    } learning;
    struct {
        uint32_t size;
        bool dynamic;
        uint32_t min, max;
    } table;
    struct {
        enum ppf_policy_priority priority;
        uint64_t bandwidth;     /* bytes/s, 0 = unlimited */
        uint32_t concurrent;
        uint32_t workers;
    } prefetch;
    struct {
        char *path;
        uint64_t capacity;
        enum ppf_policy_eviction eviction;
        uint64_t reserve;
        bool overcommit;
        uint64_t revalidate_ms; /* a hit re-checks its store version after this */
    } buffer;
    struct ppf_policy_store *stores;
    size_t nstores;
    struct ppf_policy_tenant *tenants;
    size_t ntenants;
    struct {
        char **dirs;
        size_t ndirs;
        enum ppf_policy_deploy_mode mode;
        enum ppf_policy_fallback fallback;
        bool ephemeral;
    } deploy;
    struct {
        bool enabled;
        char *listen;           /* host:port */
        char **peers;
        size_t npeers;
        char *ca_file, *cert_file, *key_file;   /* NULL if unset */
        uint64_t interval_ms;
    } federation;
    struct ppf_policy_pin *pins;
    size_t npins;
    struct ppf_policy_schedule *schedules;
    size_t nschedules;

    struct ppf_policy_origin *origin;   /* NULL unless parsed from YAML */
};

/* One problem found in a policy.  file NULL and line 0 when unknown
 * (a decoded blob); path is the key path, e.g. "stores[1].url". */
struct ppf_policy_diag {
    char *file;
    unsigned line, column;
    char *path;
    char *msg;
};

struct ppf_policy_diags {
    struct ppf_policy_diag *v;
    size_t n, cap;
    size_t dropped;             /* not kept once PPF_POLICY_MAX_DIAGS are */
};
#define PPF_POLICY_MAX_DIAGS 200

/* --- libppfpolicycodec ---------------------------------------------- */

/* Fills a zeroed *p with the defaults (see ppf-policy(5)); 0, or -1 with
 * errno on allocation failure (*p is then cleared).  Release with
 * ppf_policy_clear. */
int ppf_policy_init_defaults(struct ppf_policy *p);
/* A new heap policy holding the defaults, or NULL (ENOMEM). */
struct ppf_policy *ppf_policy_new(void);
/* Frees what *p holds and zeroes it; p may be NULL. */
void ppf_policy_clear(struct ppf_policy *p);
/* ppf_policy_clear, then frees p itself; p may be NULL. */
void ppf_policy_free(struct ppf_policy *p);

/* Semantic validation: ranges, quotas within capacity unless overcommit,
 * unique names, the default tenant, absolute paths, the encoded size.
 * Appends one diagnostic per problem to d (all of them, not the first);
 * returns 0 if none was found, else -1.  Touches no file. */
int ppf_policy_check(const struct ppf_policy *p, struct ppf_policy_diags *d);

/* Device configuration: "PPFC", u32 version, then typed attributes in the
 * payload format of ppf/protocol.h (§5.1), ending with PPF_POLICY_ATTR_END
 * holding the CRC-32 of what precedes it.  encode writes at most
 * min(cap, PPF_POLICY_MAX_ENCODED) bytes into buf and stores the length in
 * *len; 0, or -1 with errno (E2BIG: does not fit; EINVAL: a string is too
 * long).  decode checks every length, string and count, then runs
 * ppf_policy_check; on success *out is a new policy (ppf_policy_free), on
 * failure *out is NULL, err holds one line saying what is wrong, -1. */
int ppf_policy_encode(const struct ppf_policy *p, uint8_t *buf, size_t cap, size_t *len);
int ppf_policy_decode(const uint8_t *buf, size_t len, struct ppf_policy **out,
                      char *err, size_t errlen);
#define PPF_POLICY_MAGIC   "PPFC"
#define PPF_POLICY_VERSION 1u
/* The CRC-32 (IEEE) that ends an encoded policy, over all bytes before
 * the end attribute; exported for tools and tests that build blobs. */
uint32_t ppf_policy_crc32(const uint8_t *buf, size_t len);
#define PPF_POLICY_ATTR_END 0x1fffu

/* Canonical forms, every key present, defaults filled in; the YAML is a
 * valid policy file.  0, or -1 if writing failed. */
int ppf_policy_emit_yaml(const struct ppf_policy *p, FILE *fp);
int ppf_policy_emit_json(const struct ppf_policy *p, FILE *fp);

/* Diagnostics list: init to empty, add (printf-style; file may be NULL,
 * line 0 if unknown), print as "FILE:LINE:COLUMN: PATH: message", free. */
void ppf_policy_diags_init(struct ppf_policy_diags *d);
void ppf_policy_diags_add(struct ppf_policy_diags *d, const char *file,
                          unsigned line, unsigned column, const char *path,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void ppf_policy_diags_print(const struct ppf_policy_diags *d, FILE *fp);
void ppf_policy_diags_free(struct ppf_policy_diags *d);

/* Names of enum values as written in the policy; NULL if out of range. */
const char *ppf_policy_algorithm_name(unsigned v);
const char *ppf_policy_priority_name(unsigned v);
const char *ppf_policy_eviction_name(unsigned v);
const char *ppf_policy_deploy_mode_name(unsigned v);
const char *ppf_policy_fallback_name(unsigned v);
const char *ppf_policy_metric_name(unsigned bit);   /* bit index 0..4 */

/* Value formats shared by the parser and the emitters.  Sizes: digits with
 * B, K/KiB, M/MiB, G/GiB, T/TiB (binary) or kB/KB, MB, GB, TB (decimal);
 * durations: digits with ms, s, m, h or d.  0 or -1. */
int ppf_policy_parse_size(const char *s, uint64_t *out);
int ppf_policy_parse_duration(const char *s, uint64_t *ms);
/* Canonical text; buf of at least 32 bytes. */
void ppf_policy_format_size(uint64_t v, char *buf, size_t len);
void ppf_policy_format_duration(uint64_t ms, char *buf, size_t len);

/* A pin's until (pins[].until, ppfctl pin --until) as seconds since the
 * epoch: "never" is 0; a date alone means through the end of that day;
 * local time unless it ends in Z.  0, or -1 if s is not such a time. */
int ppf_policy_until_time(const char *s, uint64_t *out);

/* Tenant by name, or NULL. */
const struct ppf_policy_tenant *ppf_policy_find_tenant(const struct ppf_policy *p,
                                                       const char *name);

/* --- libppfpolicy (host, libyaml) ------------------------------------- */

/* Parses a YAML policy file (or a buffer, name is used in messages), fills
 * in defaults, runs ppf_policy_check and ppf_policy_check_files.  Every
 * problem is appended to d.  On success returns 0 and *out is a new
 * policy; on failure returns -1 and *out is NULL. */
int ppf_policy_parse_file(const char *path, struct ppf_policy **out,
                          struct ppf_policy_diags *d);
int ppf_policy_parse_buffer(const char *name, const char *buf, size_t len,
                            struct ppf_policy **out, struct ppf_policy_diags *d);
/* Same, with flags. */
#define PPF_POLICY_NO_FILE_CHECKS 0x1u    /* skip ppf_policy_check_files */
int ppf_policy_parse_buffer_flags(const char *name, const char *buf, size_t len,
                                  unsigned flags, struct ppf_policy **out,
                                  struct ppf_policy_diags *d);
int ppf_policy_parse_file_flags(const char *path, unsigned flags,
                                struct ppf_policy **out, struct ppf_policy_diags *d);

/* Host-side checks of the files a policy names: tenant key files exist,
 * are regular files of 32 bytes and not readable by group or others; store
 * CA and pinned certificates exist; federation files exist when enabled.
 * 0 if all is well, else -1 with diagnostics appended to d. */
int ppf_policy_check_files(const struct ppf_policy *p, struct ppf_policy_diags *d);

#endif /* PPF_POLICY_H */

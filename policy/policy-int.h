/* Private helpers shared by the policy sources (the .c files in policy/),
 * not by the rest of ppf: value validators, the origin table that maps key
 * paths to the line:column they were read from, and the diagnostic helper
 * that uses it.
 */
#ifndef PPF_POLICY_INT_H
#define PPF_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

struct pol_pos {
    char *path;
    unsigned line, column;
};

struct ppf_policy_origin {
    char *file;
    struct pol_pos *v;
    size_t n, cap;
};

/* Records that key path was read at line:column of the parsed file; 0/-1. */
int ppf_policy_origin_set_file(struct ppf_policy *p, const char *file);
int ppf_policy_origin_add(struct ppf_policy *p, const char *path,
                          unsigned line, unsigned column);
/* Where path (or the nearest enclosing key) came from; file NULL and line
 * 0 when unknown. */
void ppf_policy_locate(const struct ppf_policy *p, const char *path,
                       const char **file, unsigned *line, unsigned *column);
/* Adds a diagnostic for path, located through p's origin. */
void ppf_policy_diag(const struct ppf_policy *p, struct ppf_policy_diags *d,
                     const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Validators: true if s is acceptable.  Each also rejects control bytes
 * and invalid UTF-8. */
bool ppf_policy_utf8_valid(const char *s, size_t len);
bool ppf_policy_valid_name(const char *s);       /* [A-Za-z0-9._-], 1..64, not . or .. */
bool ppf_policy_valid_image(const char *s);      /* no '/', no "..", <= 255 bytes */
bool ppf_policy_valid_abs_path(const char *s);   /* absolute, no ".." component */
bool ppf_policy_valid_host_port(const char *s);  /* host:port or [v6]:port */
bool ppf_policy_valid_when(const char *s);       /* "weekdays 08:30" */
bool ppf_policy_valid_hhmm(const char *s);       /* "09:00" */
bool ppf_policy_valid_until(const char *s);      /* "never" or an ISO date */
/* NULL if the URL is fine, else what is wrong with it. */
const char *ppf_policy_url_problem(const char *url);

/* Enum name tables, NULL-terminated, indexed by value. */
extern const char *const ppf_policy_algorithm_names[];
extern const char *const ppf_policy_priority_names[];
extern const char *const ppf_policy_eviction_names[];
extern const char *const ppf_policy_deploy_mode_names[];
extern const char *const ppf_policy_fallback_names[];
extern const char *const ppf_policy_metric_names[];

/* The default store and tenant, added when a policy names none. */
#define PPF_POLICY_DEFAULT_STORE_NAME "local"
#define PPF_POLICY_DEFAULT_STORE_URL  "file:///var/lib/ppf/images"
#define PPF_POLICY_DEFAULT_TENANT     "default"
int ppf_policy_add_default_store(struct ppf_policy *p);
int ppf_policy_add_default_tenant(struct ppf_policy *p);

#endif /* PPF_POLICY_INT_H */

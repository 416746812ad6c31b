/* Host-side checks of the files a policy names (see policy.h): the parts
 * of validation that need the host's file system, kept apart from the
 * semantic check that the peripheral also runs.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/policy-int.h"

/* A file that must exist and be a regular file.  secret: also not readable
 * by group or others.  size: exact size, or 0 for any.  0 or -1. */
static int
pol_check_file(const struct ppf_policy *p, struct ppf_policy_diags *d, const char *path,
               const char *file, bool secret, off_t size, const char *what)
{
    struct stat st;

    if (!file || !ppf_policy_valid_abs_path(file))
        return 0;               /* ppf_policy_check reports it */
    if (stat(file, &st) < 0) {
        ppf_policy_diag(p, d, path, "%s: %s; create the %s or fix the path", file,
                        strerror(errno), what);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ppf_policy_diag(p, d, path, "%s is not a regular file; name the %s itself", file,
                        what);
        return -1;
    }
    if (size && st.st_size != size) {
        ppf_policy_diag(p, d, path, "%s is %lld bytes; a %s holds exactly %lld bytes "
                        "(e.g. head -c %lld /dev/urandom > %s)", file, (long long)st.st_size,
                        what, (long long)size, (long long)size, file);
        return -1;
    }
    if (secret && (st.st_mode & 077)) {
        ppf_policy_diag(p, d, path, "%s is readable by group or others (mode %04o); "
                        "run: chmod 600 %s", file, (unsigned)(st.st_mode & 07777), file);
        return -1;
    }
    return 0;
}

int
ppf_policy_check_files(const struct ppf_policy *p, struct ppf_policy_diags *d)
{
    char path[160];
    int rc = 0;
    size_t i;

    for (i = 0; i < p->ntenants; i++) {
        snprintf(path, sizeof path, "tenants.%s.keyfile", p->tenants[i].name);
        rc |= pol_check_file(p, d, path, p->tenants[i].keyfile, true, 32,
                             "tenant key file (32-byte AES-256 key)");
    }
    for (i = 0; i < p->nstores; i++) {
        snprintf(path, sizeof path, "stores[%zu].ca_file", i);
        rc |= pol_check_file(p, d, path, p->stores[i].ca_file, false, 0, "CA certificate file");
        snprintf(path, sizeof path, "stores[%zu].pinned_cert", i);
        rc |= pol_check_file(p, d, path, p->stores[i].pinned_cert, false, 0,
                             "pinned certificate file");
    }
    if (p->federation.enabled) {
        rc |= pol_check_file(p, d, "federation.ca_file", p->federation.ca_file, false, 0,
                             "CA certificate file");
        rc |= pol_check_file(p, d, "federation.cert_file", p->federation.cert_file, false, 0,
                             "certificate file");
        rc |= pol_check_file(p, d, "federation.key_file", p->federation.key_file, true, 0,
                             "private key file");
    }
    return rc ? -1 : 0;
}

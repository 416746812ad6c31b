/* Trace reader (see trace.h): a line-at-a-time CSV parser that checks
 * every field, and gzip through a child `gzip -dc` (spawned without a
 * shell, so file names are never interpreted).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peripheral/trace.h"

extern char **environ;

#define TR_MAX_LINE 4096
#define TR_MAX_COLS 64

struct tr_input {
    FILE *fp;
    pid_t child;
    const char *path;
    char *line;
    size_t cap;
};

static int __attribute__((format(printf, 3, 4)))
tr_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Opens path; a gzip file (by its magic bytes) is piped through gzip -dc. */
static int
tr_open(const char *path, struct tr_input *in, char *err, size_t errlen)
{
    unsigned char magic[2];
    size_t got;
    FILE *fp;
    int pfd[2];
    posix_spawn_file_actions_t fa;
    char *argv[] = { (char *)"gzip", (char *)"-dc", (char *)"--", (char *)path, NULL };
    int r;

    memset(in, 0, sizeof *in);
    in->path = path;
    in->child = -1;
    fp = fopen(path, "re");
    if (!fp)
        return tr_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    got = fread(magic, 1, 2, fp);
    if (got < 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
        rewind(fp);
        in->fp = fp;
        return 0;
    }
    fclose(fp);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return tr_err(err, errlen, "%s: pipe: %s", path, strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    r = posix_spawnp(&in->child, "gzip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (r != 0) {
        close(pfd[0]);
        in->child = -1;
        if (r == ENOENT)
            return tr_err(err, errlen, "%s: is gzip-compressed and the gzip program was not "
                          "found; install gzip or decompress the file first", path);
        return tr_err(err, errlen, "%s: cannot run gzip: %s", path, strerror(r));
    }
    in->fp = fdopen(pfd[0], "r");
    if (!in->fp) {
        close(pfd[0]);
        return tr_err(err, errlen, "%s: fdopen: %s", path, strerror(errno));
    }
    return 0;
}

/* Closes; for gzip, reports a failed decompression (truncated file). */
static int
tr_close(struct tr_input *in, int ok, char *err, size_t errlen)
{
    int status;

    if (in->fp)
        fclose(in->fp);
    in->fp = NULL;
    free(in->line);
    in->line = NULL;
    if (in->child < 0)
        return 0;
    while (waitpid(in->child, &status, 0) < 0 && errno == EINTR)
        ;
    in->child = -1;
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        return tr_err(err, errlen, "%s: gzip could not decompress it (corrupt or truncated)",
                      in->path);
    return 0;
}

/* Splits line (modified in place) at commas; returns the field count, or
 * -1 if there are more than max. */
static int
tr_split(char *line, char **f, int max)
{
    int n = 0;

    for (char *p = line;;) {
        char *c = strchr(p, ',');

        if (n == max)
            return -1;
        f[n++] = p;
        if (!c)
            break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

/* Reads one line into in->line (*buf points to it); strips the newline
 * (and a CR).  1 line, 0 EOF, -1 error (reported). */
static int
tr_line(struct tr_input *in, char **buf, unsigned long lineno, char *err, size_t errlen)
{
    ssize_t got = getline(&in->line, &in->cap, in->fp);
    size_t len;

    if (got < 0)
        return ferror(in->fp) ? tr_err(err, errlen, "%s:%lu: read error", in->path, lineno) : 0;
    len = (size_t)got;
    if (len > TR_MAX_LINE)
        return tr_err(err, errlen, "%s:%lu: line longer than %d bytes (is this a trace?)",
                      in->path, lineno, TR_MAX_LINE);
    if (memchr(in->line, 0, len))
        return tr_err(err, errlen, "%s:%lu: binary data (NUL byte); not a CSV trace",
                      in->path, lineno);
    while (len && (in->line[len - 1] == '\n' || in->line[len - 1] == '\r'))
        in->line[--len] = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in->line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return tr_err(err, errlen, "%s:%lu: binary data (byte 0x%02x in column %zu); "
                          "not a CSV trace", in->path, lineno, c, i + 1);
    }
    *buf = in->line;
    return 1;
}

static int
tr_parse_time(const char *s, double *t)
{
    char *end;

    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *t = strtod(s, &end);
    return errno || *end || !isfinite(*t) || *t < 0 ? -1 : 0;
}

static int
tr_parse_u64(const char *s, uint64_t *v)
{
    char *end;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static int
tr_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PPF_POLICY_MAX_IMAGE)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

void
ppf_trace_free(struct ppf_trace *t)
{
    if (!t)
        return;
    free(t->path);
    free(t->ev);
    free(t->metrics);
    ppf_strtab_free(t->images);
    ppf_strtab_free(t->tenants);
    free(t);
}

static int
tr_read_events(struct ppf_trace *t, struct tr_input *in, char *err, size_t errlen)
{
    char *buf, *f[TR_MAX_COLS];
    int col_t = -1, col_i = -1, col_te = -1, col_s = -1, ncols = 0, r;
    unsigned long lineno = 0;
    size_t cap = 0;
    double prev = 0;

    /* the header */
    for (;;) {
        r = tr_line(in, &buf, ++lineno, err, errlen);
        if (r < 0)
            return -1;
        if (r == 0)
            return tr_err(err, errlen, "%s: empty trace: expected a header line "
                          "\"timestamp,image,tenant,size_bytes\"", in->path);
        if (buf[0] && buf[0] != '#')
            break;
    }
    ncols = tr_split(buf, f, TR_MAX_COLS);
    for (int i = 0; i < ncols; i++) {
        if (strcmp(f[i], "timestamp") == 0)
            col_t = i;
        else if (strcmp(f[i], "image") == 0)
            col_i = i;
        else if (strcmp(f[i], "tenant") == 0)
            col_te = i;
        else if (strcmp(f[i], "size_bytes") == 0)
            col_s = i;
    }
    if (ncols < 0 || col_t < 0 || col_i < 0 || col_te < 0 || col_s < 0)
        return tr_err(err, errlen, "%s:%lu: the header must name the columns timestamp, "
                      "image, tenant and size_bytes (missing: %s%s%s%s)", in->path, lineno,
                      col_t < 0 ? "timestamp " : "", col_i < 0 ? "image " : "",
                      col_te < 0 ? "tenant " : "", col_s < 0 ? "size_bytes" : "");
    while ((r = tr_line(in, &buf, ++lineno, err, errlen)) > 0) {
        struct ppf_trace_event *ev;
        int n;

        if (buf[0] == 0 || buf[0] == '#')
            continue;
        n = tr_split(buf, f, TR_MAX_COLS);
        if (n != ncols)
            return tr_err(err, errlen, "%s:%lu: %d field%s, the header has %d", in->path,
                          lineno, n < 0 ? TR_MAX_COLS : n, n == 1 ? "" : "s", ncols);
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 65536;
            struct ppf_trace_event *ne = realloc(t->ev, nc * sizeof *ne);

            if (!ne)
                return tr_err(err, errlen, "%s:%lu: out of memory", in->path, lineno);
            t->ev = ne;
            cap = nc;
        }
        ev = &t->ev[t->n];
        if (tr_parse_time(f[col_t], &ev->time) < 0)
            return tr_err(err, errlen, "%s:%lu: timestamp \"%.40s\" is not a number of "
                          "seconds >= 0", in->path, lineno, f[col_t]);
        if (ev->time < prev - PPF_TRACE_TIME_TOLERANCE)
            return tr_err(err, errlen, "%s:%lu: time goes back from %.3f to %.3f (more than "
                          "%.0f s); the trace must be sorted by time (sort -t, -k1,1g)",
                          in->path, lineno, prev, ev->time, PPF_TRACE_TIME_TOLERANCE);
        if (ev->time < prev)
            ev->time = prev;
        prev = ev->time;
        if (!tr_name_ok(f[col_i]))
            return tr_err(err, errlen, "%s:%lu: image \"%.40s\" is empty, too long or not "
                          "printable ASCII", in->path, lineno, f[col_i]);
        if (!tr_name_ok(f[col_te]))
            return tr_err(err, errlen, "%s:%lu: tenant \"%.40s\" is empty, too long or not "
                          "printable ASCII", in->path, lineno, f[col_te]);
        if (tr_parse_u64(f[col_s], &ev->size) < 0 || ev->size == 0
            || ev->size > (1ull << 50))
            return tr_err(err, errlen, "%s:%lu: size_bytes \"%.40s\" is not a number of "
                          "bytes from 1 to 1PiB", in->path, lineno, f[col_s]);
        if (ppf_strtab_intern(t->images, f[col_i], strlen(f[col_i]), &ev->image) < 0
            || ppf_strtab_intern(t->tenants, f[col_te], strlen(f[col_te]), &ev->tenant) < 0)
            return tr_err(err, errlen, "%s:%lu: out of memory", in->path, lineno);
        t->n++;
    }
    if (r < 0)
        return -1;
    if (t->n == 0)
        return tr_err(err, errlen, "%s: no events after the header", in->path);
    return 0;
}

int
ppf_trace_read(const char *path, struct ppf_trace **out, char *err, size_t errlen)
{
    struct ppf_trace *t;
    struct tr_input in;
    int r;

    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path)) || !(t->images = ppf_strtab_new())
        || !(t->tenants = ppf_strtab_new())) {
        ppf_trace_free(t);
        return tr_err(err, errlen, "%s: out of memory", path);
    }
    if (tr_open(path, &in, err, errlen) < 0) {
        ppf_trace_free(t);
        return -1;
    }
    r = tr_read_events(t, &in, err, errlen);
    if (tr_close(&in, r == 0, err, errlen) < 0)
        r = -1;
    if (r < 0) {
        ppf_trace_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int
ppf_trace_read_metrics(struct ppf_trace *t, const char *path, char *err, size_t errlen)
{
    char *buf = NULL, *f[TR_MAX_COLS];
    struct tr_input in;
    unsigned long lineno = 0;
    size_t cap = 0;
    double prev = 0;
    int ncols, r;

    if (tr_open(path, &in, err, errlen) < 0)
        return -1;
    do {
        r = tr_line(&in, &buf, ++lineno, err, errlen);
    } while (r > 0 && (buf[0] == 0 || buf[0] == '#'));
    if (r <= 0) {
        tr_close(&in, 0, err, errlen);
        return r < 0 ? -1 : tr_err(err, errlen, "%s: empty metrics file: expected a header "
                                   "\"timestamp,METRIC...\"", path);
    }
    ncols = tr_split(buf, f, TR_MAX_COLS);
    if (ncols < 2 || ncols > PPF_ENGINE_MAX_METRICS + 1 || strcmp(f[0], "timestamp") != 0) {
        tr_close(&in, 0, err, errlen);
        return tr_err(err, errlen, "%s:%lu: the header must be timestamp then 1 to %d metric "
                      "names", path, lineno, PPF_ENGINE_MAX_METRICS);
    }
    t->metric_dims = (unsigned)ncols - 1;
    while ((r = tr_line(&in, &buf, ++lineno, err, errlen)) > 0) {
        struct ppf_metrics_sample *s;
        int n;

        if (buf[0] == 0 || buf[0] == '#')
            continue;
        n = tr_split(buf, f, TR_MAX_COLS);
        if (n != ncols) {
            r = tr_err(err, errlen, "%s:%lu: %d fields, the header has %d", path, lineno,
                       n < 0 ? TR_MAX_COLS : n, ncols);
            break;
        }
        if (t->nmetrics == cap) {
            size_t nc = cap ? cap * 2 : 4096;
            struct ppf_metrics_sample *nm = realloc(t->metrics, nc * sizeof *nm);

            if (!nm) {
                r = tr_err(err, errlen, "%s:%lu: out of memory", path, lineno);
                break;
            }
            t->metrics = nm;
            cap = nc;
        }
        s = &t->metrics[t->nmetrics];
        memset(s, 0, sizeof *s);
        if (tr_parse_time(f[0], &s->time) < 0 || s->time < prev - PPF_TRACE_TIME_TOLERANCE) {
            r = tr_err(err, errlen, "%s:%lu: timestamp \"%.40s\" is not a number of seconds "
                       ">= 0 in time order", path, lineno, f[0]);
            break;
        }
        if (s->time < prev)
            s->time = prev;
        prev = s->time;
        s->n = t->metric_dims;
        for (int i = 1; i < n; i++) {
            char *end;

            errno = 0;
            s->v[i - 1] = strtod(f[i], &end);
            if (!*f[i] || errno || *end || !isfinite(s->v[i - 1])) {
                r = tr_err(err, errlen, "%s:%lu: column %d: \"%.40s\" is not a number", path,
                           lineno, i + 1, f[i]);
                break;
            }
        }
        if (r < 0)
            break;
        t->nmetrics++;
    }
    if (tr_close(&in, r == 0, err, errlen) < 0 || r < 0)
        return -1;
    return 0;
}

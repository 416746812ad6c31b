/* The prefetch buffer (see buffer.h).  The core's thread owns every entry
 * and all bookkeeping; worker threads only run jobs (prepare an image,
 * make a copy) handed to them through a queue, and hand results back
 * through a second queue that ppf_buffer_poll drains.  A deploy waiting for
 * an image in flight is a waiter on its entry: nothing is fetched twice.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "image/image.h"
#include "peripheral/buffer.h"
#include "peripheral/bufmodel.h"
#include "peripheral/clock.h"
#include "peripheral/materialize.h"
#include "peripheral/oplog.h"

#define PUBLIC_OWNER "@public"
#define MAX_WORKERS 16
#define META_MAGIC "ppf-buffer-entry 1"

struct waiter {
    struct waiter *next;
    uint32_t q, gen;
    uint16_t cid;
    uint64_t start_ns;
    int outcome;                /* PPF_OUTCOME_* */
    int mode, ephemeral, placeholder;
    char tenant[256];           /* who deployed (for the usage accounting) */
    char domain[40];
    char target[PATH_MAX];
};

enum job_kind { JOB_PREPARE, JOB_COPY };

struct entry {
    char image[256];
    char owner[256];            /* tenant name or PUBLIC_OWNER */
    uint32_t id;                /* bufmodel id */
    char path[PATH_MAX];        /* the .raw */
    uint64_t size;
    char digest[2 * PPF_IMG_DIGEST_SIZE + 1];
    int state;                  /* PPF_ENTRY_* */
    uint64_t done;              /* bytes prepared (atomic: written by a worker) */
    int cancel;                 /* raised by the core, read by the worker */
    int boost;                  /* a deploy waits: no bandwidth limit (atomic) */
    int preempted;              /* cancelled for a deploy: run again later */
    bool prefetched, running;
    bool held;                  /* a pin or schedule holds it (struct hold) */
    bool stale;                 /* its store holds another version, or none: never
                                 * served again, kept while disks or domains use it */
    double checked;             /* monotonic s: its store version last confirmed */
    uint32_t copying;           /* copies being made from it (transient pins) */
    bool limited;               /* prepared under the prefetch bandwidth limit */
    uint64_t prep_start_ns;     /* when its preparation was queued */
    uint64_t need;              /* bytes it will occupy on disk (its data) */
    int disk_low;               /* stopped: free space fell below the reserve */
    uint32_t pins;              /* domains using it */
    uint32_t refs;              /* overlay disks based on it */
    uint64_t hits;
    struct waiter *waiters;
};

struct job {
    struct job *next;
    enum job_kind kind;
    int prio;                   /* higher first; deploys are 3 */
    struct entry *e;            /* PREPARE */
    struct ppf_img *img;        /* PREPARE: opened by the core thread */
    struct waiter *w;           /* COPY: the deploy to finish */
    char src[PATH_MAX];         /* COPY */
    /* results */
    int ok;
    char err[512];
};

/* A pin (admin or policy) or a schedule's window: the image stays in the
 * buffer until `until` (wall clock s; 0 = until removed). */
struct hold {
    struct hold *next;
    char image[256], tenant[256];
    char source[128];           /* "pin", "policy pin", "schedule ..." */
    uint64_t until;
    double retry_at;            /* monotonic s: when to try to bring it in again */
    bool missing;               /* not in the buffer yet (no room, or failed) */
};

struct ppf_buffer {
    struct ppf_policy *policy;  /* our copy of what matters: decoded again */
    char root[3072];            /* buffer.path; room left for entries/OWNER/IMAGE */
    struct ppf_bufmodel *model;
    struct entry **entries;     /* by bufmodel id - 1 */
    uint32_t nentries, cap_entries;
    uint32_t next_id;
    /* workers */
    pthread_t workers[MAX_WORKERS];
    unsigned nworkers;
    unsigned threads_per_job;
    pthread_mutex_t lock;       /* protects the queues, idle, running, stopping */
    unsigned idle;              /* workers waiting for a job */
    struct job *running[MAX_WORKERS];   /* what each busy worker runs */
    pthread_cond_t cond;
    struct job *todo, *finished;
    int stopping;
    void (*kick)(void *);
    void *kick_ctx;
    struct ppf_buffer_hooks hooks;
    bool admin_evict;           /* an EVICT command is removing entries */
    bool disk_evict;            /* entries go for free space on the file system */
    const char *retire_why;     /* entries go because their store changed */
    double next_sweep;          /* monotonic s: next freshness sweep */
    struct ppf_oplog *oplog;    /* may be NULL; not ours */
    struct hold *holds;
    /* counters (PPF_STAT_* - 32) */
    uint64_t stat[PPF_STAT_FW__MAX - PPF_STAT_DEPLOYS];
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double
now_s(void)
{
    return (double)now_ns() / 1e9;
}

static void holds_mark(struct ppf_buffer *b);
static void hold_attach(struct ppf_buffer *b, struct entry *e);
static int entry_fresh(struct ppf_buffer *b, struct entry *e, const char *tenant, bool force);
static enum ppf_status_code disk_room(struct ppf_buffer *b, const char *image, uint64_t need,
                                      double limit, char *msg, size_t msglen);
static void holds_load(struct ppf_buffer *b);
static const struct hold *hold_of_entry(struct ppf_buffer *b, const struct entry *e);
static void until_text(uint64_t until, char *buf, size_t len);

static void
stat_add(struct ppf_buffer *b, enum ppf_fw_stat s, uint64_t n)
{
    b->stat[s - PPF_STAT_DEPLOYS] += n;
}

/* --- entries ----------------------------------------------------------- */

static struct entry *
entry_find(struct ppf_buffer *b, const char *image, const char *owner)
{
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];
        if (e && !e->stale && strcmp(e->image, image) == 0 && strcmp(e->owner, owner) == 0)
            return e;
    }
    return NULL;
}

static uint32_t
tenant_id(const struct ppf_buffer *b, const char *owner)
{
    if (strcmp(owner, PUBLIC_OWNER) == 0)
        return PPF_BUF_PUBLIC;
    for (size_t i = 0; i < b->policy->ntenants; i++)
        if (strcmp(b->policy->tenants[i].name, owner) == 0)
            return (uint32_t)i + 1;
    return 0;                   /* a tenant no longer in the policy */
}

static int
entry_slot(struct ppf_buffer *b, struct entry *e)
{
    if (b->next_id >= b->cap_entries) {
        uint32_t cap = b->cap_entries ? b->cap_entries * 2 : 64;
        struct entry **v = realloc(b->entries, cap * sizeof *v);

        if (!v)
            return -1;
        memset(v + b->cap_entries, 0, (cap - b->cap_entries) * sizeof *v);
        b->entries = v;
        b->cap_entries = cap;
    }
    e->id = ++b->next_id;
    b->entries[e->id - 1] = e;
    if (e->id > b->nentries)
        b->nentries = e->id;
    return 0;
}

static struct entry *
entry_by_id(struct ppf_buffer *b, uint32_t id)
{
    return id >= 1 && id <= b->nentries ? b->entries[id - 1] : NULL;
}

/* An entry is pinned in the model while a domain, a disk or a hold keeps it. */
static void
entry_update_pin(struct ppf_buffer *b, struct entry *e)
{
    ppf_bufmodel_pin(b->model, e->id, e->pins || e->refs || e->held || e->copying);
}

/* An entry's files are entries/OWNER/KEY.raw and KEY.meta, KEY being
 * IMAGE@DIGEST (16 hex digits: two versions of an image can be there at
 * once, an old one kept for the disks based on it); entries made before
 * versions were kept have KEY = IMAGE.  Pin and ref records name entries
 * as OWNER/KEY. */
static void
entry_new_path(const struct ppf_buffer *b, const char *owner, const char *image,
               const char *digest, char *raw)
{
    snprintf(raw, PATH_MAX, "%s/entries/%s/%s@%.16s.raw", b->root, owner, image, digest);
}

/* The .meta beside a .raw path. */
static void
entry_meta_path(const char *raw, char *meta)
{
    snprintf(meta, PATH_MAX, "%.*s.meta", (int)strlen(raw) - 4, raw);
}

/* KEY (see above) of e, into key (256 + 17 bytes). */
static void
entry_key(const struct entry *e, char *key, size_t len)
{
    const char *base = strrchr(e->path, '/');

    base = base ? base + 1 : e->path;
    snprintf(key, len, "%.*s", (int)strlen(base) - 4, base);
}

/* The entry an "OWNER/KEY" record names. */
static struct entry *
entry_by_key(struct ppf_buffer *b, const char *owner, const char *key)
{
    char k[300];

    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];

        if (!e || strcmp(e->owner, owner) != 0)
            continue;
        entry_key(e, k, sizeof k);
        if (strcmp(k, key) == 0)
            return e;
    }
    return NULL;
}

/* How a deploy may treat an existing target (PPF_REPLACE_*). */
static int
waiter_replace(const struct waiter *w)
{
    return w->ephemeral ? PPF_REPLACE_ALWAYS :
           w->placeholder ? PPF_REPLACE_PLACEHOLDER : PPF_REPLACE_NEVER;
}

/* Forgets an entry and deletes its files (meta first: a .raw without a
 * .meta is partial and goes at the next open anyway). */
static void
entry_drop(struct ppf_buffer *b, struct entry *e, int delete_files)
{
    char meta[PATH_MAX];

    if (delete_files) {
        entry_meta_path(e->path, meta);
        unlink(meta);
        unlink(e->path);
    }
    b->entries[e->id - 1] = NULL;
    free(e);
}

static void
model_evicted(void *ctx, const struct ppf_buf_entry *me, double now)
{
    struct ppf_buffer *b = ctx;
    struct entry *e = entry_by_id(b, me->image);

    if (!e)
        return;
    if (e->state != PPF_ENTRY_READY) {     /* a failed preparation going away */
        entry_drop(b, e, 1);
        return;
    }
    if (b->retire_why) {
        ppf_oplog_add(b->oplog, PPF_OPLOG_PURGE, e->image, e->owner, e->size,
                      "removed %s (%s, %" PRIu64 " bytes): %s", e->image, e->owner, e->size,
                      b->retire_why);
    } else if (b->admin_evict) {
        ppf_oplog_add(b->oplog, PPF_OPLOG_EVICT, e->image, e->owner, e->size,
                      "evicted %s (%s, %" PRIu64 " bytes): an administrator's EVICT",
                      e->image, e->owner, e->size);
    } else {
        char ago[64];
        double idle = now - (me->used ? me->last_use : me->inserted);

        if (idle < 120)
            snprintf(ago, sizeof ago, "%.0f s", idle);
        else if (idle < 7200)
            snprintf(ago, sizeof ago, "%.0f min", idle / 60);
        else if (idle < 172800)
            snprintf(ago, sizeof ago, "%.1f h", idle / 3600);
        else
            snprintf(ago, sizeof ago, "%.0f d", idle / 86400);
        ppf_oplog_add(b->oplog, PPF_OPLOG_EVICT, e->image, e->owner, e->size,
                      "evicted %s (%s, %" PRIu64 " bytes) to make room%s: %s, %s for %s",
                      e->image, e->owner, e->size,
                      b->disk_evict ? " on the file system (buffer.reserve)" : "",
                      b->policy->buffer.eviction == PPF_EVICT_LRU ?
                      "least recently used" : "lowest value per byte",
                      me->used ? "not used" : "never used", ago);
    }
    if (me->prefetched && !me->used)
        ppf_oplog_wasted(b->oplog, e->image, e->owner, e->size);
    if (b->hooks.evicted)
        b->hooks.evicted(b->hooks.ctx, e->image,
                         strcmp(e->owner, PUBLIC_OWNER) ? e->owner : NULL, me->prefetched,
                         me->used, b->admin_evict);
    stat_add(b, PPF_STAT_EVICTIONS, 1);
    if (me->prefetched && !me->used)
        stat_add(b, PPF_STAT_WASTED_BYTES, e->size);
    entry_drop(b, e, 1);
}

/* Finishes a file written through fp at tmp: flushed, fsync'd, closed and
 * renamed onto path (atomic); on failure tmp is removed.  0 or -1. */
static int
file_commit(FILE *fp, const char *tmp, const char *path)
{
    int r = 0;

    if (fflush(fp) != 0 || fsync(fileno(fp)) < 0)
        r = -1;
    if (fclose(fp) != 0)
        r = -1;
    if (r == 0 && rename(tmp, path) < 0)
        r = -1;
    if (r < 0)
        unlink(tmp);
    return r;
}

static int
meta_write(struct ppf_buffer *b, const struct entry *e)
{
    char meta[PATH_MAX], tmp[PATH_MAX + 16];
    FILE *fp;
    int fd;

    entry_meta_path(e->path, meta);
    snprintf(tmp, sizeof tmp, "%s.tmp", meta);
    fp = fopen(tmp, "we");
    if (!fp)
        return -1;
    fprintf(fp, "%s\nimage %s\nowner %s\nsize %" PRIu64 "\ndigest %s\nprefetched %d\n",
            META_MAGIC, e->image, e->owner, e->size, e->digest, e->prefetched);
    if (file_commit(fp, tmp, meta) < 0)
        return -1;
    snprintf(tmp, sizeof tmp, "%s/entries/%s", b->root, e->owner);
    fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* Reads a .meta; 0 and e filled, or -1 (not a valid record). */
static int
meta_read(const char *path, struct entry *e)
{
    char line[1024];
    FILE *fp = fopen(path, "re");
    int n = 0;

    if (!fp)
        return -1;
    if (!fgets(line, sizeof line, fp) || strncmp(line, META_MAGIC, strlen(META_MAGIC)) != 0) {
        fclose(fp);
        return -1;
    }
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "image %255s", e->image) == 1 ||
            sscanf(line, "owner %255s", e->owner) == 1 ||
            sscanf(line, "size %" SCNu64, &e->size) == 1 ||
            sscanf(line, "digest %64s", e->digest) == 1)
            n++;
        else {
            int p;
            if (sscanf(line, "prefetched %d", &p) == 1)
                e->prefetched = p != 0;
        }
    }
    fclose(fp);
    return n == 4 && ppf_name_ok(e->image) ? 0 : -1;
}

/* --- loading the index at open ------------------------------------------ */

static void
load_owner_dir(struct ppf_buffer *b, const char *owner)
{
    char dir[PATH_MAX], path[PATH_MAX + 300], raw[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/entries/%s", b->root, owner);
    d = opendir(dir);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        struct entry *e;

        if (n[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, n);
        if (strstr(n, ".tmp")) {            /* partial: a crash mid-write */
            ppf_info("buffer", "removing partial file %s", path);
            unlink(path);
            continue;
        }
        if (len > 4 && strcmp(n + len - 4, ".raw") == 0) {
            char meta[PATH_MAX + 300];
            snprintf(meta, sizeof meta, "%.*s.meta", (int)(strlen(path) - 4), path);
            if (access(meta, F_OK) < 0) {
                ppf_info("buffer", "removing %s: never finished", path);
                unlink(path);
            }
            continue;
        }
        if (len <= 5 || strcmp(n + len - 5, ".meta") != 0)
            continue;
        e = calloc(1, sizeof *e);
        if (!e)
            break;
        if (meta_read(path, e) < 0 || strcmp(e->owner, owner) != 0) {
            ppf_warn("buffer", "%s is not a valid entry record; removing it", path);
            unlink(path);
            free(e);
            continue;
        }
        snprintf(raw, sizeof raw, "%.*s.raw", (int)strlen(path) - 5, path);
        if (stat(raw, &st) < 0 || (uint64_t)st.st_size != e->size) {
            ppf_warn("buffer", "%s: its disk is missing or has the wrong size; removing "
                     "the entry", path);
            unlink(path);
            unlink(raw);
            free(e);
            continue;
        }
        snprintf(e->path, sizeof e->path, "%s", raw);
        e->state = PPF_ENTRY_READY;
        e->checked = -INFINITY;     /* checked against its store at the first hit */
        if (entry_slot(b, e) < 0 ||
            ppf_bufmodel_admit(b->model, e->id, tenant_id(b, owner), e->size ? e->size : 1,
                               e->prefetched, INFINITY, now_s()) < 0) {
            ppf_warn("buffer", "%s does not fit the buffer's capacity any more; removing it",
                     raw);
            if (e->id)
                entry_drop(b, e, 1);
            else
                free(e);
            continue;
        }
        ppf_bufmodel_ready(b->model, e->id, now_s());
    }
    closedir(d);
}

/* Pins and overlay references: a ref whose disk is gone or no longer uses
 * the base is dropped; the others pin their entry. */
static void
load_refs(struct ppf_buffer *b)
{
    char dir[PATH_MAX], path[PATH_MAX + 300], line[PATH_MAX + 16];
    char target[PATH_MAX + 16], owner[256], image[300], backing[1024];
    struct dirent *de;
    DIR *d;

    for (int kind = 0; kind < 2; kind++) {
        snprintf(dir, sizeof dir, "%s/%s", b->root, kind ? "refs" : "pins");
        d = opendir(dir);
        if (!d)
            continue;
        while ((de = readdir(d)) != NULL) {
            FILE *fp;
            int keep = 0;

            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            fp = fopen(path, "re");
            if (!fp)
                continue;
            target[0] = '\0';
            while (fgets(line, sizeof line, fp)) {
                struct entry *e;

                line[strcspn(line, "\n")] = '\0';
                if (strncmp(line, "target ", 7) == 0) {
                    snprintf(target, sizeof target, "%s", line + 7);
                    continue;
                }
                if (sscanf(line, "entry %255[^/]/%290s", owner, image) != 2)
                    continue;
                e = entry_by_key(b, owner, image);
                if (!e)
                    continue;
                if (kind && (!target[0] ||
                             ppf_qcow2_backing_file(target, backing, sizeof backing) != 1 ||
                             strcmp(backing, e->path) != 0))
                    continue;           /* the disk is gone or rebased */
                if (kind)
                    e->refs++;
                else
                    e->pins++;
                entry_update_pin(b, e);
                keep = 1;
            }
            fclose(fp);
            if (!keep)
                unlink(path);
        }
        closedir(d);
    }
}

static int
mkdirs(const char *root)
{
    char p[PATH_MAX + 16];
    static const char *const sub[] = { "", "/entries", "/entries/" PUBLIC_OWNER, "/pins",
                                       "/refs" };

    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        snprintf(p, sizeof p, "%s%s", root, sub[i]);
        if (i == 0) {
            /* parents too */
            for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                    *s = '\0';
                    mkdir(p, 0755);
                    *s = '/';
                }
        }
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* Temporary files a crash left in the deploy directories (their names
 * carry an infix that no target may have, so nothing else can match). */
static void
sweep_deploy_dirs(struct ppf_buffer *b)
{
    for (size_t i = 0; i < b->policy->deploy.ndirs; i++) {
        const char *dir = b->policy->deploy.dirs[i];
        struct dirent *de;
        DIR *d = opendir(dir);

        if (!d)
            continue;
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] == '.' && strstr(de->d_name, PPF_MATERIALIZE_TMP_INFIX) &&
                unlinkat(dirfd(d), de->d_name, 0) == 0)
                ppf_info("buffer", "removed %s/%s, left by an interrupted deploy", dir,
                         de->d_name);
        closedir(d);
    }
}

static void
load_index(struct ppf_buffer *b)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/entries", b->root);
    d = opendir(dir);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            load_owner_dir(b, de->d_name);
    closedir(d);
    load_refs(b);
}

/* --- workers --------------------------------------------------------------- */

struct progress_ctx {
    struct entry *e;
    uint64_t start_ns;
    uint64_t bandwidth;         /* bytes/s, 0 = unlimited */
    const char *root;           /* the buffer's directory, for statvfs */
    uint64_t reserve;           /* buffer.reserve */
    uint64_t next_check;        /* done at which free space is checked again */
};

/* Bytes available to us on the file system holding path; UINT64_MAX if
 * unknown. */
static uint64_t
fs_avail(const char *path)
{
    struct statvfs sv;

    if (statvfs(path, &sv) < 0)
        return UINT64_MAX;
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

#define FS_CHECK_EVERY (16ull << 20)

static void
job_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct progress_ctx *p = opaque;

    __atomic_store_n(&p->e->done, done, __ATOMIC_RELAXED);
    if (done >= p->next_check) {
        /* someone else may be filling the file system: stop well before
         * it is full rather than hit ENOSPC (half the reserve is left for
         * whoever it is) */
        p->next_check = done + FS_CHECK_EVERY;
        if (p->reserve && fs_avail(p->root) < p->reserve / 2) {
            __atomic_store_n(&p->e->disk_low, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&p->e->cancel, 1, __ATOMIC_RELAXED);
        }
    }
    if (p->bandwidth && !__atomic_load_n(&p->e->boost, __ATOMIC_RELAXED)) {
        /* keep the average at or below the bandwidth */
        double want = (double)done / (double)p->bandwidth;
        double spent = (double)(now_ns() - p->start_ns) / 1e9;
        if (want > spent) {
            double d = want - spent;
            struct timespec ts;
            if (d > 1.0)
                d = 1.0;
            ts.tv_sec = (time_t)d;
            ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
            nanosleep(&ts, NULL);
        }
    }
}

static void
job_run(struct ppf_buffer *b, struct job *j, unsigned threads, uint64_t bandwidth)
{
    struct ppf_img_err err = { 0 };

    if (j->kind == JOB_PREPARE) {
        struct progress_ctx pc = { .e = j->e, .start_ns = now_ns(), .bandwidth = bandwidth,
                                   .root = b->root, .reserve = b->policy->buffer.reserve };
        struct ppf_img_unpack_opts o = { .threads = threads, .format = PPF_IMG_FORMAT_RAW,
                                         .progress = job_progress, .opaque = &pc,
                                         .cancel = &j->e->cancel };

        j->ok = ppf_img_unpack(j->img, j->e->path, &o, &err) == 0;
        if (!j->ok && __atomic_load_n(&j->e->disk_low, __ATOMIC_RELAXED))
            snprintf(j->err, sizeof j->err, "stopped: free space on the buffer's file system "
                     "(%.200s) fell below half of buffer.reserve (%" PRIu64 " bytes), something "
                     "else is filling it; nothing was left behind", b->root,
                     b->policy->buffer.reserve);
        else if (!j->ok)
            snprintf(j->err, sizeof j->err, "%s", err.msg);
    } else {
        struct ppf_target t;
        const char *dirs[1] = { "/" };

        /* the target was checked when the deploy came in; resolve again
         * under its own parent so nothing can have been swapped */
        j->ok = 0;
        if (ppf_target_resolve(j->w->target, dirs, 1, &t, j->err, sizeof j->err) == 0) {
            j->ok = ppf_copy_create(&t, j->src, waiter_replace(j->w), 0600, j->err,
                                    sizeof j->err) == 0;
            ppf_target_close(&t);
        }
    }
}

struct worker_arg {
    struct ppf_buffer *b;
    unsigned slot;
};

static void *
worker_main(void *arg)
{
    struct ppf_buffer *b = ((struct worker_arg *)arg)->b;
    unsigned slot = ((struct worker_arg *)arg)->slot;

    free(arg);
    pthread_mutex_lock(&b->lock);
    for (;;) {
        struct job *j, **pp, **best = NULL;
        unsigned threads;
        uint64_t bw;

        b->idle++;
        while (!b->stopping && !b->todo)
            pthread_cond_wait(&b->cond, &b->lock);
        b->idle--;
        if (b->stopping)
            break;
        /* highest priority first, oldest first among equals */
        for (pp = &b->todo; *pp; pp = &(*pp)->next)
            if (!best || (*pp)->prio > (*best)->prio)
                best = pp;
        j = *best;
        *best = j->next;
        threads = b->threads_per_job;
        bw = j->prio >= 3 ? 0 : b->policy->prefetch.bandwidth;
        b->running[slot] = j;
        pthread_mutex_unlock(&b->lock);

        job_run(b, j, threads, bw);

        pthread_mutex_lock(&b->lock);
        b->running[slot] = NULL;
        if (j->kind == JOB_PREPARE && !j->ok && j->e->preempted && !b->stopping) {
            /* cancelled to make way for a deploy: back in the queue */
            j->e->preempted = 0;
            __atomic_store_n(&j->e->cancel, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&j->e->done, 0, __ATOMIC_RELAXED);
            j->next = b->todo;
            b->todo = j;
            pthread_cond_signal(&b->cond);
            continue;
        }
        j->next = b->finished;
        b->finished = j;
        if (b->kick)
            b->kick(b->kick_ctx);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Queues a job.  A deploy's job that finds every worker busy preempts
 * the lowest-priority prefetch running (it starts over later). */
static void
job_queue(struct ppf_buffer *b, struct job *j)
{
    pthread_mutex_lock(&b->lock);
    j->next = b->todo;
    b->todo = j;
    if (j->prio >= 3 && b->idle == 0) {
        struct job *victim = NULL;
        for (unsigned i = 0; i < b->nworkers; i++) {
            struct job *r = b->running[i];
            if (r && r->kind == JOB_PREPARE && r->prio < 3 && !r->e->boost &&
                (!victim || r->prio < victim->prio))
                victim = r;
        }
        if (victim) {
            ppf_info("buffer", "pausing the prefetch of %s for a deploy", victim->e->image);
            victim->e->preempted = 1;
            __atomic_store_n(&victim->e->cancel, 1, __ATOMIC_RELAXED);
        }
    }
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int
workers_start(struct ppf_buffer *b)
{
    unsigned n = b->policy->prefetch.concurrent;

    if (n < 1)
        n = 1;
    if (n > MAX_WORKERS)
        n = MAX_WORKERS;
    b->threads_per_job = b->policy->prefetch.workers / n;
    if (b->threads_per_job < 1)
        b->threads_per_job = 1;
    for (b->nworkers = 0; b->nworkers < n; b->nworkers++) {
        struct worker_arg *a = malloc(sizeof *a);
        if (!a)
            break;
        a->b = b;
        a->slot = b->nworkers;
        if (pthread_create(&b->workers[b->nworkers], NULL, worker_main, a) != 0) {
            free(a);
            break;
        }
    }
    return b->nworkers ? 0 : -1;
}

static void
workers_stop(struct ppf_buffer *b)
{
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    for (uint32_t i = 0; i < b->nentries; i++)
        if (b->entries[i])
            __atomic_store_n(&b->entries[i]->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    for (unsigned i = 0; i < b->nworkers; i++)
        pthread_join(b->workers[i], NULL);
    b->nworkers = 0;
    b->idle = 0;
    b->stopping = 0;
}

/* --- open / free / reconfigure ----------------------------------------------- */

static int
policy_copy(const struct ppf_policy *p, struct ppf_policy **out)
{
    uint8_t *blob = malloc(PPF_POLICY_MAX_ENCODED);
    char err[256];
    size_t len;
    int r = -1;

    *out = NULL;
    if (blob && ppf_policy_encode(p, blob, PPF_POLICY_MAX_ENCODED, &len) == 0 &&
        ppf_policy_decode(blob, len, out, err, sizeof err) == 0)
        r = 0;
    free(blob);
    return r;
}

static double
model_value(void *ctx, const struct ppf_buf_entry *me, double now)
{
    struct ppf_buffer *b = ctx;
    struct entry *e = entry_by_id(b, me->image);

    if (!e || !b->hooks.value)
        return 0;
    return b->hooks.value(b->hooks.ctx, e->image,
                          strcmp(e->owner, PUBLIC_OWNER) ? e->owner : NULL, e->size, now);
}

static int
model_setup(struct ppf_buffer *b)
{
    struct ppf_bufmodel_config mc = { .capacity = b->policy->buffer.capacity,
                                      .eviction = b->policy->buffer.eviction,
                                      .revalue_interval = 0 };

    b->model = ppf_bufmodel_new(&mc);
    if (!b->model)
        return -1;
    ppf_bufmodel_set_callbacks(b->model, b->hooks.value ? model_value : NULL, model_evicted, b);
    for (size_t i = 0; i < b->policy->ntenants; i++)
        if (ppf_bufmodel_set_quota(b->model, (uint32_t)i + 1, b->policy->tenants[i].quota) < 0)
            return -1;
    return 0;
}

static void
buffer_close_state(struct ppf_buffer *b)
{
    for (uint32_t i = 0; i < b->nentries; i++)
        if (b->entries[i]) {
            for (struct waiter *w = b->entries[i]->waiters, *n; w; w = n) {
                n = w->next;
                free(w);
            }
            free(b->entries[i]);
        }
    free(b->entries);
    b->entries = NULL;
    b->nentries = b->cap_entries = b->next_id = 0;
    ppf_bufmodel_free(b->model);
    b->model = NULL;
}

static int
buffer_load(struct ppf_buffer *b)
{
    if (strlen(b->policy->buffer.path) >= sizeof b->root) {
        ppf_err("buffer", "buffer.path is longer than %zu bytes; choose a shorter one",
                sizeof b->root - 1);
        return -1;
    }
    snprintf(b->root, sizeof b->root, "%s", b->policy->buffer.path);
    if (mkdirs(b->root) < 0) {
        ppf_err("buffer", "cannot create the buffer in %s: %m; set buffer.path in the "
                "policy to a writable directory", b->root);
        return -1;
    }
    if (model_setup(b) < 0) {
        ppf_err("buffer", "out of memory");
        return -1;
    }
    load_index(b);
    sweep_deploy_dirs(b);
    holds_load(b);
    ppf_info("buffer", "%s: %u entries, %" PRIu64 " of %" PRIu64 " bytes", b->root,
             b->next_id, ppf_bufmodel_capacity(b->model) - ppf_bufmodel_free_bytes(b->model),
             ppf_bufmodel_capacity(b->model));
    return 0;
}

/* Until a policy is applied, the buffer lives in the state directory
 * (the defaults coincide for the default state directory), so a test's or
 * a second peripheral's buffer never lands in /var/lib/ppf. */
static int
buffer_default_path(struct ppf_buffer *b, const char *state_dir)
{
    char *p;

    if (!state_dir)
        return 0;
    if (asprintf(&p, "%s/buffer", state_dir) < 0)
        return -1;
    free(b->policy->buffer.path);
    b->policy->buffer.path = p;
    return 0;
}

int
ppf_buffer_open(const struct ppf_policy *p, const char *state_dir, void (*kick)(void *),
                void *kick_ctx, struct ppf_buffer **out)
{
    struct ppf_buffer *b = calloc(1, sizeof *b);

    *out = NULL;
    if (!b)
        return -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->kick = kick;
    b->kick_ctx = kick_ctx;
    if (policy_copy(p, &b->policy) < 0 || buffer_default_path(b, state_dir) < 0 ||
        buffer_load(b) < 0 || workers_start(b) < 0) {
        ppf_buffer_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void
ppf_buffer_free(struct ppf_buffer *b)
{
    if (!b)
        return;
    workers_stop(b);
    for (struct job *j = b->todo, *n; j; j = n) {
        n = j->next;
        ppf_img_close(j->img);
        free(j);
    }
    for (struct job *j = b->finished, *n; j; j = n) {
        n = j->next;
        ppf_img_close(j->img);
        free(j->w);
        free(j);
    }
    buffer_close_state(b);
    for (struct hold *h = b->holds, *n; h; h = n) {
        n = h->next;
        free(h);
    }
    ppf_policy_free(b->policy);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

int
ppf_buffer_reconfigure(struct ppf_buffer *b, const struct ppf_policy *p)
{
    struct ppf_policy *np;

    if (policy_copy(p, &np) < 0)
        return -1;
    workers_stop(b);
    /* jobs queued or finished belong to the old state: fail them cleanly
     * by dropping them (their deploys get no completion: the host times
     * out; a policy change mid-deploy is rare) */
    for (struct job *j = b->todo, *n; j; j = n) {
        n = j->next;
        ppf_img_close(j->img);
        free(j);
    }
    b->todo = NULL;
    buffer_close_state(b);
    ppf_policy_free(b->policy);
    b->policy = np;
    if (buffer_load(b) < 0 || workers_start(b) < 0)
        return -1;
    return 0;
}

/* --- requests ---------------------------------------------------------------- */

static const struct ppf_policy_tenant *
find_tenant(const struct ppf_buffer *b, const char *name)
{
    return ppf_policy_find_tenant(b->policy, name);
}

/* Opens image from the first store that has it.  0 and *img, or a status
 * with msg set. */
static enum ppf_status_code
open_image(struct ppf_buffer *b, const char *image, const struct ppf_policy_tenant *t,
           struct ppf_img **img, char *msg, size_t msglen)
{
    uint8_t key[PPF_IMG_KEY_SIZE];
    struct ppf_img_err err = { 0 };
    int have_key = 0;
    enum ppf_status_code sc = PPF_SC_NOT_FOUND;

    *img = NULL;
    if (t->keyfile) {
        if (ppf_img_key_load(t->keyfile, key, &err) < 0) {
            snprintf(msg, msglen, "tenant %s: %s", t->name, err.msg);
            return PPF_SC_PERMISSION;
        }
        have_key = 1;
    }
    snprintf(msg, msglen, "image %s is in none of the policy's stores", image);
    for (size_t i = 0; i < b->policy->nstores; i++) {
        const struct ppf_policy_store *s = &b->policy->stores[i];
        struct ppf_img_open_opts o = { .ca_file = s->ca_file, .pinned_pubkey = s->pinned_cert };
        char src[PATH_MAX + 300];

        snprintf(src, sizeof src, "%s/%s.ppfi", s->url, image);
        if (strncmp(s->url, "file://", 7) == 0 && access(src + 7, F_OK) < 0)
            continue;
        if (ppf_img_open(src, have_key ? key : NULL, &o, img, &err) == 0) {
            sc = PPF_SC_SUCCESS;
            break;
        }
        if (!have_key) {
            struct ppf_img_info info;
            struct ppf_img *probe;
            o.allow_no_key = 1;
            if (ppf_img_open(src, NULL, &o, &probe, &err) == 0) {
                ppf_img_info(probe, &info);
                ppf_img_close(probe);
                if (info.encrypted) {
                    snprintf(msg, msglen, "image %s is encrypted and tenant %s has no "
                             "keyfile; deploy it for the tenant whose key opens it, or set "
                             "tenants.%s.keyfile in the policy", image, t->name, t->name);
                    return PPF_SC_PERMISSION;
                }
            }
        }
        snprintf(msg, msglen, "%s", err.msg);
        sc = err.code == PPF_IMG_EBAD ? PPF_SC_PERMISSION : PPF_SC_INTERNAL;
        if (err.code == PPF_IMG_EBAD)
            break;              /* found, but bad or the wrong key */
    }
    if (have_key)
        ppf_img_wipe(key, sizeof key);
    return sc;
}

/* Finds the entry serving (image, tenant): the tenant's own or the
 * public one. */
static struct entry *
lookup(struct ppf_buffer *b, const char *image, const char *tenant)
{
    struct entry *e = entry_find(b, image, tenant);

    return e ? e : entry_find(b, image, PUBLIC_OWNER);
}

/* Starts preparing image for tenant: opens it, makes room, queues the job.
 * *ep is the new in-flight entry. */

static enum ppf_status_code
start_prepare(struct ppf_buffer *b, const char *image, const struct ppf_policy_tenant *t,
              int prio, int deploy, double limit, const char *why, struct entry **ep,
              char *msg, size_t msglen)
{
    struct ppf_img_info info;
    struct ppf_img *img;
    struct entry *e;
    struct job *j;
    enum ppf_status_code sc;
    const char *owner;

    *ep = NULL;
    sc = open_image(b, image, t, &img, msg, msglen);
    if (sc != PPF_SC_SUCCESS)
        return sc;
    ppf_img_info(img, &info);
    owner = info.encrypted ? t->name : PUBLIC_OWNER;
    e = entry_find(b, image, owner);
    if (e) {                    /* under the other name it was already there */
        ppf_img_close(img);
        *ep = e;
        return PPF_SC_SUCCESS;
    }
    {
        /* what the prepared (sparse) file will occupy */
        uint64_t need = (info.chunk_count - info.zero_chunks) * (uint64_t)info.chunk_size;

        if (need > info.size)
            need = info.size;
        sc = disk_room(b, image, need, limit, msg, msglen);
        if (sc != PPF_SC_SUCCESS) {
            ppf_img_close(img);
            return sc;
        }
        e = calloc(1, sizeof *e);
        if (e)
            e->need = need;
    }
    j = calloc(1, sizeof *j);
    if (!e || !j || entry_slot(b, e) < 0) {
        ppf_img_close(img);
        free(e);
        free(j);
        snprintf(msg, msglen, "out of memory");
        return PPF_SC_INTERNAL;
    }
    snprintf(e->image, sizeof e->image, "%s", image);
    snprintf(e->owner, sizeof e->owner, "%s", owner);
    e->size = info.size;
    ppf_img_hex(info.digest, sizeof info.digest, e->digest);
    entry_new_path(b, owner, image, e->digest, e->path);
    e->checked = now_s();
    e->state = PPF_ENTRY_INFLIGHT;
    e->prefetched = !deploy;
    if (ppf_bufmodel_admit(b->model, e->id, tenant_id(b, owner), e->size ? e->size : 1,
                           !deploy, limit, now_s()) < 0) {
        snprintf(msg, msglen, "no room for %s (%" PRIu64 " bytes) in the buffer or in "
                 "tenant %s's quota: what is there is %s", image, e->size, t->name,
                 limit < INFINITY ? "worth more, pinned or in flight" :
                 "pinned or in flight");
        ppf_img_close(img);
        free(j);
        entry_drop(b, e, 0);
        return PPF_SC_NO_SPACE;
    }
    if (strcmp(owner, PUBLIC_OWNER) != 0) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/entries/%s", b->root, owner);
        mkdir(dir, 0700);
    }
    j->kind = JOB_PREPARE;
    j->prio = deploy ? 3 : prio;
    j->e = e;
    j->img = img;
    e->running = true;
    e->prep_start_ns = now_ns();
    e->limited = !deploy && b->policy->prefetch.bandwidth != 0;
    job_queue(b, j);
    if (deploy)
        ppf_info("buffer", "fetching %s for %s (%" PRIu64 " bytes): a deploy missed", image,
                 t->name, e->size);
    else
        ppf_oplog_add(b->oplog, PPF_OPLOG_PREFETCH, image, t->name, e->size,
                      "prefetching %s for %s (%" PRIu64 " bytes): %s", image, t->name,
                      e->size, why ? why : "requested");
    *ep = e;
    hold_attach(b, e);
    return PPF_SC_SUCCESS;
}

static const struct ppf_policy_tenant *
req_tenant(struct ppf_buffer *b, const struct ppf_buf_req *r, char *msg, size_t msglen)
{
    const struct ppf_policy_tenant *t = find_tenant(b, r->tenant);

    if (!t)
        snprintf(msg, msglen, "tenant %s is not in the policy; add it under tenants:",
                 r->tenant);
    return t;
}

enum ppf_status_code
ppf_buffer_prefetch(struct ppf_buffer *b, const struct ppf_buf_req *r,
                    struct ppf_attr_writer *w, uint32_t *result, char *msg, size_t msglen)
{
    const struct ppf_policy_tenant *t = req_tenant(b, r, msg, msglen);
    struct entry *e;
    enum ppf_status_code sc;

    if (!t)
        return PPF_SC_NOT_FOUND;
    e = lookup(b, r->image, r->tenant);
    if (e && e->state == PPF_ENTRY_READY && !entry_fresh(b, e, r->tenant, false))
        e = lookup(b, r->image, r->tenant);
    if (!e || e->state == PPF_ENTRY_FAILED) {
        int prio = r->priority >= 0 ? r->priority : (int)t->priority;
        sc = start_prepare(b, r->image, t, prio, 0, INFINITY, "a PREFETCH command", &e, msg,
                           msglen);
        if (sc != PPF_SC_SUCCESS)
            return sc;
    }
    *result = (uint32_t)e->state;
    ppf_attr_put_str(w, PPF_A_IMAGE, e->image);
    ppf_attr_put_u32(w, PPF_A_STATE, (uint32_t)e->state);
    ppf_attr_put_u64(w, PPF_A_SIZE, e->size);
    return PPF_SC_SUCCESS;
}

void
ppf_buffer_set_hooks(struct ppf_buffer *b, const struct ppf_buffer_hooks *h)
{
    b->hooks = *h;
    if (b->model)
        ppf_bufmodel_set_callbacks(b->model, b->hooks.value ? model_value : NULL,
                                   model_evicted, b);
}

enum ppf_status_code
ppf_buffer_prefetch_limited(struct ppf_buffer *b, const char *image, const char *tenant,
                            int priority, double limit, const char *why, char *msg,
                            size_t msglen)
{
    const struct ppf_policy_tenant *t = find_tenant(b, tenant);
    struct entry *e;

    if (!t) {
        snprintf(msg, msglen, "tenant %s is not in the policy", tenant);
        return PPF_SC_NOT_FOUND;
    }
    e = lookup(b, image, tenant);
    if (e && e->state != PPF_ENTRY_FAILED)
        return PPF_SC_SUCCESS;
    return start_prepare(b, image, t, priority >= 0 ? priority : (int)t->priority, 0, limit,
                         why, &e, msg, msglen);
}

int
ppf_buffer_entry_state(struct ppf_buffer *b, const char *image, const char *tenant,
                       uint64_t *size)
{
    struct entry *e = lookup(b, image, tenant);

    if (!e)
        return 0;
    if (size)
        *size = e->size;
    return e->state;
}

unsigned
ppf_buffer_prefetches_inflight(struct ppf_buffer *b)
{
    return ppf_bufmodel_inflight_prefetches(b->model);
}

/* Writes a ref or pin record file (atomically). */
static int
record_write(struct ppf_buffer *b, const char *kind, const char *name, const char *target,
             const struct entry *e)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s/%s", b->root, kind, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* pins accumulate entries (one domain, several disks) */
    fp = fopen(path, "re");
    if (fp) {
        char line[PATH_MAX + 16];
        FILE *out = fopen(tmp, "we");
        if (!out) {
            fclose(fp);
            return -1;
        }
        while (fgets(line, sizeof line, fp))
            fputs(line, out);
        fclose(fp);
        fp = out;
    } else {
        fp = fopen(tmp, "we");
        if (!fp)
            return -1;
    }
    if (target)
        fprintf(fp, "target %s\n", target);
    {
        char key[300];
        entry_key(e, key, sizeof key);
        fprintf(fp, "entry %s/%s\n", e->owner, key);
    }
    return file_commit(fp, tmp, path);
}

static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void
entry_pin(struct ppf_buffer *b, struct entry *e, int refs)
{
    if (refs)
        e->refs++;
    else
        e->pins++;
    entry_update_pin(b, e);
}

static void
entry_unpin(struct ppf_buffer *b, struct entry *e, int refs)
{
    if (refs && e->refs)
        e->refs--;
    else if (!refs && e->pins)
        e->pins--;
    entry_update_pin(b, e);
}

/* Finishes a deploy from a ready entry: overlay now (O(1)), copy through a
 * worker.  Returns 1 if it completed (sc/msg set), 0 if a copy job took it
 * over. */
static int
deploy_materialize(struct ppf_buffer *b, struct entry *e, struct waiter *w,
                   enum ppf_status_code *sc, char *msg, size_t msglen)
{
    struct ppf_target t;
    const char *const *dirs = (const char *const *)b->policy->deploy.dirs;

    *sc = PPF_SC_SUCCESS;
    if (ppf_target_resolve(w->target, dirs, b->policy->deploy.ndirs, &t, msg, msglen) < 0) {
        *sc = PPF_SC_PERMISSION;
        return 1;
    }
    if (ppf_target_blocks(&t, waiter_replace(w)) == 1) {
        ppf_target_close(&t);
        snprintf(msg, msglen, "%s already exists; ppf never overwrites a disk (mark the "
                 "domain ephemeral, or remove the disk)", w->target);
        *sc = PPF_SC_EXISTS;
        return 1;
    }
    if (w->mode == PPF_DEPLOY_COPY) {
        struct job *j = calloc(1, sizeof *j);
        ppf_target_close(&t);
        if (!j) {
            snprintf(msg, msglen, "out of memory");
            *sc = PPF_SC_INTERNAL;
            return 1;
        }
        j->kind = JOB_COPY;
        j->prio = 4;
        j->w = w;
        j->e = e;
        snprintf(j->src, sizeof j->src, "%s", e->path);
        e->copying++;           /* kept until the copy is done */
        entry_update_pin(b, e);
        job_queue(b, j);
        return 0;
    }
    if (ppf_overlay_create(&t, e->path, e->size, waiter_replace(w), 0600, msg, msglen) < 0) {
        ppf_target_close(&t);
        *sc = errno == ENOSPC ? PPF_SC_NO_SPACE : PPF_SC_INTERNAL;
        return 1;
    }
    ppf_target_close(&t);
    if (!w->ephemeral) {
        char name[32];
        snprintf(name, sizeof name, "%016" PRIx64, fnv1a(w->target));
        if (record_write(b, "refs", name, w->target, e) == 0)
            entry_pin(b, e, 1);
        else
            ppf_warn("buffer", "cannot record that %s uses %s: %m", w->target, e->path);
    }
    return 1;
}

static void
deploy_reply(struct ppf_buffer *b, struct entry *e, const struct waiter *w,
             struct ppf_attr_writer *aw)
{
    ppf_attr_put_u32(aw, PPF_A_OUTCOME, (uint32_t)w->outcome);
    ppf_attr_put_u64(aw, PPF_A_WAIT_US, (now_ns() - w->start_ns) / 1000);
    ppf_attr_put_str(aw, PPF_A_PATH, e->path);
    ppf_attr_put_u64(aw, PPF_A_SIZE, e->size);
}

/* A successful deploy: counters, pins, the hit. */
static void
deploy_done(struct ppf_buffer *b, struct entry *e, const struct waiter *w)
{
    stat_add(b, PPF_STAT_DEPLOYS, 1);
    stat_add(b, w->outcome == PPF_OUTCOME_HIT ? PPF_STAT_HITS :
             w->outcome == PPF_OUTCOME_INFLIGHT ? PPF_STAT_INFLIGHT_HITS : PPF_STAT_MISSES, 1);
    e->hits++;
    ppf_bufmodel_use(b->model, e->id, now_s());
    if (w->domain[0] && (w->ephemeral || w->mode == PPF_DEPLOY_OVERLAY)) {
        if (record_write(b, "pins", w->domain, NULL, e) == 0)
            entry_pin(b, e, 0);
    }
    ppf_info("buffer", "deployed %s (%s) to %s: %s in %.1f ms", e->image, e->owner, w->target,
             w->outcome == PPF_OUTCOME_HIT ? "hit" :
             w->outcome == PPF_OUTCOME_INFLIGHT ? "in flight" : "miss",
             (double)(now_ns() - w->start_ns) / 1e6);
    ppf_oplog_deploy(b->oplog, e->image, w->tenant, w->outcome, e->size,
                     (now_ns() - w->start_ns) / 1000);
}

/* Serves w from a ready entry: an overlay now, or a copy through a worker
 * (PPF_CORE_PENDING).  Frees w unless a copy job took it. */
static enum ppf_status_code
deploy_ready(struct ppf_buffer *b, struct entry *e, struct waiter *w,
             struct ppf_attr_writer *aw, uint32_t *result, char *msg, size_t msglen)
{
    enum ppf_status_code sc;

    w->outcome = PPF_OUTCOME_HIT;
    if (deploy_materialize(b, e, w, &sc, msg, msglen) == 0)
        return PPF_CORE_PENDING;
    if (sc == PPF_SC_SUCCESS) {
        deploy_done(b, e, w);
        deploy_reply(b, e, w, aw);
        *result = PPF_OUTCOME_HIT;
    } else if (sc != PPF_SC_EXISTS) {   /* the disk is there: not a failure */
        stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
    }
    free(w);
    return sc;
}

/* Checks the target before any fetch: under deploy.dirs, no symlinks, and
 * absent unless ephemeral.  PPF_SC_SUCCESS or a status with msg set. */
static enum ppf_status_code
deploy_check_target(struct ppf_buffer *b, const struct waiter *w, char *msg, size_t msglen)
{
    const char *const *dirs = (const char *const *)b->policy->deploy.dirs;
    struct ppf_target tg;
    int exists;

    if (ppf_target_resolve(w->target, dirs, b->policy->deploy.ndirs, &tg, msg, msglen) < 0)
        return PPF_SC_PERMISSION;
    exists = ppf_target_blocks(&tg, waiter_replace(w)) == 1;
    ppf_target_close(&tg);
    if (exists) {
        snprintf(msg, msglen, "%s already exists; ppf never overwrites a disk (mark the "
                 "domain ephemeral, or remove the disk)", w->target);
        return PPF_SC_EXISTS;
    }
    return PPF_SC_SUCCESS;
}

/* 1 if domain's pin record already names e. */
static int
pin_recorded(struct ppf_buffer *b, const char *domain, const struct entry *e)
{
    char path[PATH_MAX], line[PATH_MAX + 16], want[600];
    FILE *fp;
    int found = 0;

    snprintf(path, sizeof path, "%s/pins/%s", b->root, domain);
    {
        char key[300];
        entry_key(e, key, sizeof key);
        snprintf(want, sizeof want, "entry %s/%s\n", e->owner, key);
    }
    fp = fopen(path, "re");
    if (!fp)
        return 0;
    while (!found && fgets(line, sizeof line, fp))
        found = strcmp(line, want) == 0;
    fclose(fp);
    return found;
}

/* A DEPLOY found its disk there already (a domain started again, or
 * libvirtd reconnecting to a running one): if the disk is an overlay over
 * an entry, the domain uses that entry again, so pin it for the domain
 * (once: RELEASE unpins). */
static void
deploy_repin(struct ppf_buffer *b, const char *domain, const char *target)
{
    char backing[PATH_MAX];

    if (ppf_qcow2_backing_file(target, backing, sizeof backing) != 1)
        return;
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];

        if (!e || e->state != PPF_ENTRY_READY || strcmp(e->path, backing) != 0)
            continue;
        if (pin_recorded(b, domain, e))
            return;
        if (record_write(b, "pins", domain, NULL, e) == 0) {
            entry_pin(b, e, 0);
            ppf_info("buffer", "%s (%s) pinned again for domain %s, whose disk %s is based "
                     "on it", e->image, e->owner, domain, target);
        }
        return;
    }
}

static enum ppf_status_code
deploy_request(struct ppf_buffer *b, const struct ppf_buf_req *r,
               struct ppf_attr_writer *aw, uint32_t *result, char *msg, size_t msglen);

enum ppf_status_code
ppf_buffer_deploy(struct ppf_buffer *b, const struct ppf_buf_req *r,
                  struct ppf_attr_writer *aw, uint32_t *result, char *msg, size_t msglen)
{
    enum ppf_status_code sc = deploy_request(b, r, aw, result, msg, msglen);

    if (sc == PPF_SC_EXISTS && r->domain && r->domain[0])
        deploy_repin(b, r->domain, r->target);
    return sc;
}

static enum ppf_status_code
deploy_request(struct ppf_buffer *b, const struct ppf_buf_req *r,
               struct ppf_attr_writer *aw, uint32_t *result, char *msg, size_t msglen)
{
    const struct ppf_policy_tenant *t = req_tenant(b, r, msg, msglen);
    struct entry *e;
    struct waiter *w;
    enum ppf_status_code sc;

    if (!t)
        return PPF_SC_NOT_FOUND;
    w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(msg, msglen, "out of memory");
        return PPF_SC_INTERNAL;
    }
    w->q = r->q;
    w->gen = r->gen;
    w->cid = r->cid;
    w->start_ns = now_ns();
    w->mode = r->mode >= 0 ? r->mode : (int)b->policy->deploy.mode;
    w->ephemeral = r->ephemeral >= 0 ? r->ephemeral : b->policy->deploy.ephemeral;
    w->placeholder = r->placeholder > 0;
    snprintf(w->tenant, sizeof w->tenant, "%s", r->tenant);
    snprintf(w->domain, sizeof w->domain, "%s", r->domain ? r->domain : "");
    snprintf(w->target, sizeof w->target, "%s", r->target);

    e = lookup(b, r->image, r->tenant);
    if (e && e->state == PPF_ENTRY_READY && !entry_fresh(b, e, r->tenant, false))
        e = lookup(b, r->image, r->tenant);     /* stale or gone: not served */
    if (e && e->state == PPF_ENTRY_READY)       /* the hit: checks its target itself */
        return deploy_ready(b, e, w, aw, result, msg, msglen);
    sc = deploy_check_target(b, w, msg, msglen);
    if (sc != PPF_SC_SUCCESS) {
        free(w);
        if (sc != PPF_SC_EXISTS)
            stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
        return sc;
    }
    if (e && e->state == PPF_ENTRY_INFLIGHT) {
        w->outcome = PPF_OUTCOME_INFLIGHT;
        /* a prefetch in flight now serves a deploy: no bandwidth limit,
         * never preempted, and first in the queue if it waits there */
        __atomic_store_n(&e->boost, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&b->lock);
        for (struct job *q = b->todo; q; q = q->next)
            if (q->e == e)
                q->prio = 3;
        pthread_mutex_unlock(&b->lock);
    } else {
        w->outcome = PPF_OUTCOME_MISS;
        sc = start_prepare(b, r->image, t, 3, 1, INFINITY, NULL, &e, msg, msglen);
        if (sc != PPF_SC_SUCCESS) {
            free(w);
            stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
            return sc;
        }
        if (e->state == PPF_ENTRY_READY)        /* found under the public name */
            return deploy_ready(b, e, w, aw, result, msg, msglen);
    }
    w->next = e->waiters;
    e->waiters = w;
    return PPF_CORE_PENDING;
}

static void
complete(struct ppf_core *core, const struct waiter *w, enum ppf_status_code sc,
         uint32_t result, const void *out, uint32_t len)
{
    if (ppf_core_complete(core, w->q, w->gen, w->cid, sc, result, out, len) < 0)
        ppf_warn("buffer", "the deploy of %s finished after its queue pair was released",
                 w->target);
}

static void
complete_error(struct ppf_core *core, const struct waiter *w, enum ppf_status_code sc,
               const char *msg)
{
    complete(core, w, sc, 0, msg, (uint32_t)strlen(msg));
}

unsigned
ppf_buffer_poll(struct ppf_buffer *b, struct ppf_core *core)
{
    struct job *done;
    unsigned n = 0;
    uint8_t out[1024];

    if (!__atomic_load_n(&b->finished, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&b->lock);
    done = b->finished;
    b->finished = NULL;
    pthread_mutex_unlock(&b->lock);

    while (done) {
        struct job *j = done;
        struct entry *e = j->e;
        struct ppf_attr_writer aw;

        done = j->next;
        n++;
        if (j->kind == JOB_COPY) {
            struct waiter *w = j->w;
            e->copying--;
            entry_update_pin(b, e);
            if (j->ok) {
                deploy_done(b, e, w);
                ppf_attr_writer_init(&aw, out, sizeof out);
                deploy_reply(b, e, w, &aw);
                complete(core, w, PPF_SC_SUCCESS, (uint32_t)w->outcome, out,
                         (uint32_t)aw.len);
            } else {
                stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
                complete_error(core, w, PPF_SC_INTERNAL, j->err);
            }
            free(w);
            free(j);
            continue;
        }
        /* JOB_PREPARE */
        ppf_img_close(j->img);
        e->running = false;
        if (j->ok && meta_write(b, e) < 0) {
            j->ok = 0;
            snprintf(j->err, sizeof j->err, "cannot record %s in the buffer: %s", e->image,
                     strerror(errno));
            unlink(e->path);
        }
        if (!j->ok) {
            ppf_err("buffer", "preparing %s for %s failed: %s", e->image, e->owner, j->err);
            ppf_oplog_add(b->oplog, PPF_OPLOG_ERROR, e->image, e->owner, e->size,
                          "preparing %s for %s failed: %s", e->image, e->owner, j->err);
            stat_add(b, PPF_STAT_FETCH_ERRORS, 1);
            for (struct waiter *w = e->waiters, *nw; w; w = nw) {
                nw = w->next;
                stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
                complete_error(core, w, strstr(j->err, "space") ? PPF_SC_NO_SPACE :
                               PPF_SC_INTERNAL, j->err);
                free(w);
            }
            e->waiters = NULL;
            e->state = PPF_ENTRY_FAILED;
            {
                uint32_t id = e->id;
                ppf_bufmodel_remove(b->model, id, now_s());
                /* the evict callback dropped it, unless it was never charged */
                if (entry_by_id(b, id))
                    entry_drop(b, entry_by_id(b, id), 1);
            }
            free(j);
            continue;
        }
        e->state = PPF_ENTRY_READY;
        __atomic_store_n(&e->done, e->size, __ATOMIC_RELAXED);
        ppf_bufmodel_ready(b->model, e->id, now_s());
        if (e->prefetched) {
            stat_add(b, PPF_STAT_PREFETCHES, 1);
            stat_add(b, PPF_STAT_PREFETCH_BYTES, e->size);
        } else {
            stat_add(b, PPF_STAT_DEMAND_BYTES, e->size);
        }
        {
            uint64_t us = (now_ns() - e->prep_start_ns) / 1000;
            bool limited = e->limited && !__atomic_load_n(&e->boost, __ATOMIC_RELAXED);

            ppf_oplog_prepared(b->oplog, e->image, e->owner, e->size, us, e->prefetched,
                               limited);
            ppf_oplog_add(b->oplog, PPF_OPLOG_READY, e->image, e->owner, e->size,
                          "%s for %s is ready: %" PRIu64 " bytes in %.2f s%s", e->image,
                          e->owner, e->size, (double)us / 1e6,
                          limited ? " (under the prefetch bandwidth limit)" : "");
        }
        for (struct waiter *w = e->waiters, *nw; w; w = nw) {
            enum ppf_status_code sc;
            char msg[512];

            nw = w->next;
            if (deploy_materialize(b, e, w, &sc, msg, sizeof msg) == 0)
                continue;       /* a copy job owns w now */
            if (sc == PPF_SC_SUCCESS) {
                deploy_done(b, e, w);
                ppf_attr_writer_init(&aw, out, sizeof out);
                deploy_reply(b, e, w, &aw);
                complete(core, w, PPF_SC_SUCCESS, (uint32_t)w->outcome, out,
                         (uint32_t)aw.len);
            } else {
                stat_add(b, PPF_STAT_DEPLOY_ERRORS, 1);
                complete_error(core, w, sc, msg);
            }
            free(w);
        }
        e->waiters = NULL;
        free(j);
    }
    return n;
}

enum ppf_status_code
ppf_buffer_release(struct ppf_buffer *b, const char *domain, uint32_t *result, char *msg,
                   size_t msglen)
{
    char path[PATH_MAX], line[PATH_MAX + 16], owner[256], image[300];
    FILE *fp;

    *result = 0;
    snprintf(path, sizeof path, "%s/pins/%s", b->root, domain);
    fp = fopen(path, "re");
    if (!fp)
        return PPF_SC_SUCCESS;  /* nothing pinned: releasing twice is fine */
    while (fgets(line, sizeof line, fp)) {
        struct entry *e;
        if (sscanf(line, "entry %255[^/]/%290s", owner, image) != 2)
            continue;
        e = entry_by_key(b, owner, image);
        if (e) {
            entry_unpin(b, e, 0);
            (*result)++;
        }
    }
    fclose(fp);
    unlink(path);
    ppf_info("buffer", "domain %s released %u pin%s", domain, *result,
             *result == 1 ? "" : "s");
    return PPF_SC_SUCCESS;
}

/* Drops overlay refs whose disk is gone, so their bases can go. */
static void
refs_gc(struct ppf_buffer *b)
{
    /* load_refs counts pins and refs again: reset them first */
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];
        if (e) {
            e->refs = e->pins = 0;
            entry_update_pin(b, e);
        }
    }
    load_refs(b);
}

enum ppf_status_code
ppf_buffer_evict(struct ppf_buffer *b, const char *image, const char *tenant,
                 uint32_t *result, char *msg, size_t msglen)
{
    *result = 0;
    refs_gc(b);
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];

        if (!e || strcmp(e->image, image) != 0)
            continue;
        if (tenant && strcmp(e->owner, tenant) != 0 && strcmp(e->owner, PUBLIC_OWNER) != 0)
            continue;
        if (e->held) {
            const struct hold *h = hold_of_entry(b, e);
            char when[64];

            until_text(h ? h->until : 0, when, sizeof when);
            snprintf(msg, msglen, "%s (%s) is held by %s until %s; %s", e->image, e->owner,
                     h ? h->source : "a pin", h && h->until ? when : "it is removed",
                     h && strcmp(h->source, "pin") == 0 ? "unpin it first (ppfctl unpin)" :
                     h && strcmp(h->source, "policy pin") == 0 ?
                     "remove it from pins: in the policy first" :
                     "wait for the schedule's window to end");
            return PPF_SC_BUSY;
        }
        if (e->state != PPF_ENTRY_READY || e->pins || e->refs) {
            snprintf(msg, msglen, "%s (%s) is %s; it cannot be evicted now", e->image,
                     e->owner, e->state != PPF_ENTRY_READY ? "being prepared" :
                     e->refs ? "the base of an existing disk" : "in use by a running domain");
            return PPF_SC_BUSY;
        }
        b->admin_evict = true;
        if (ppf_bufmodel_remove(b->model, e->id, now_s()) == 0)
            (*result)++;
        b->admin_evict = false;
    }
    if (*result == 0) {
        snprintf(msg, msglen, "%s is not in the buffer", image);
        return PPF_SC_NOT_FOUND;
    }
    return PPF_SC_SUCCESS;
}

enum ppf_status_code
ppf_buffer_list(struct ppf_buffer *b, uint64_t start, struct ppf_attr_writer *w,
                uint32_t *result)
{
    uint64_t idx = 0;
    uint32_t total = 0;

    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];
        size_t mark;

        if (!e)
            continue;
        total++;
        if (idx++ < start || w->overflow)
            continue;
        mark = w->len;
        ppf_attr_put_str(w, PPF_A_IMAGE, e->image);
        ppf_attr_put_str(w, PPF_A_TENANT, strcmp(e->owner, PUBLIC_OWNER) == 0 ? "public" :
                         e->owner);
        ppf_attr_put_u32(w, PPF_A_PUBLIC, strcmp(e->owner, PUBLIC_OWNER) == 0);
        ppf_attr_put_u64(w, PPF_A_SIZE, e->size);
        ppf_attr_put_u32(w, PPF_A_STATE, e->stale ? PPF_ENTRY_STALE : (uint32_t)e->state);
        ppf_attr_put_u32(w, PPF_A_PINS, e->pins + e->refs + e->held);
        ppf_attr_put_u64(w, PPF_A_HITS, e->hits);
        ppf_attr_put_u64(w, PPF_A_DONE, __atomic_load_n(&e->done, __ATOMIC_RELAXED));
        ppf_attr_put_str(w, PPF_A_DIGEST, e->digest);
        if (e->state == PPF_ENTRY_READY)
            ppf_attr_put_str(w, PPF_A_PATH, e->path);
        if (w->overflow)
            w->len = mark;      /* whole groups only; the host asks again */
    }
    w->overflow = 0;
    *result = total;
    return PPF_SC_SUCCESS;
}

void
ppf_buffer_stats(struct ppf_buffer *b, struct ppf_attr_writer *w)
{
    struct ppf_buf_stats st;

    ppf_bufmodel_get_stats(b->model, &st);
    b->stat[PPF_STAT_BUFFER_USED - PPF_STAT_DEPLOYS] = st.used;
    b->stat[PPF_STAT_BUFFER_CAPACITY - PPF_STAT_DEPLOYS] = ppf_bufmodel_capacity(b->model);
    b->stat[PPF_STAT_BUFFER_ENTRIES - PPF_STAT_DEPLOYS] = st.entries;
    for (unsigned s = PPF_STAT_DEPLOYS; s < PPF_STAT_FW__MAX; s++)
        ppf_attr_put_u64(w, (uint16_t)s, b->stat[s - PPF_STAT_DEPLOYS]);
}

/* --- disk safety ----------------------------------------------------------------- */

/* Bytes that preparations in flight will still write. */
static uint64_t
inflight_pending(struct ppf_buffer *b)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];
        uint64_t done;

        if (!e || e->state != PPF_ENTRY_INFLIGHT || !e->size)
            continue;
        done = __atomic_load_n(&e->done, __ATOMIC_RELAXED);
        if (done < e->size)
            sum += (uint64_t)((double)e->need * (double)(e->size - done) / (double)e->size);
    }
    return sum;
}

static void
size_text(uint64_t v, char *buf, size_t len)
{
    ppf_policy_format_size(v, buf, len);
}

/* Before any fetch: need bytes must fit on the buffer's file system with
 * buffer.reserve left free, counting what fetches in flight will still
 * write.  Evicts (lowest value first, only entries worth less than limit
 * per byte) until they do; NO_SPACE with msg if they cannot. */
static enum ppf_status_code
disk_room(struct ppf_buffer *b, const char *image, uint64_t need, double limit, char *msg,
          size_t msglen)
{
    const uint64_t reserve = b->policy->buffer.reserve;

    for (;;) {
        uint64_t avail = fs_avail(b->root), pending = inflight_pending(b);
        char a[32], p[32], n[32], r[32];
        uint32_t victim;

        if (avail == UINT64_MAX || avail >= need + pending + reserve)
            return PPF_SC_SUCCESS;
        victim = ppf_bufmodel_victim(b->model, limit, now_s());
        if (!victim) {
            size_text(avail, a, sizeof a);
            size_text(pending, p, sizeof p);
            size_text(need, n, sizeof n);
            size_text(reserve, r, sizeof r);
            snprintf(msg, msglen, "no space for %s on the buffer's file system (%s): it needs "
                     "%s, %s is free, fetches in flight will still write %s and "
                     "buffer.reserve keeps %s free; nothing evictable is left (free space "
                     "there, lower buffer.reserve, or move buffer.path)", image, b->root, n, a,
                     p, r);
            ppf_oplog_add(b->oplog, PPF_OPLOG_ERROR, image, NULL, need, "%s", msg);
            return PPF_SC_NO_SPACE;
        }
        b->disk_evict = true;
        ppf_bufmodel_remove(b->model, victim, now_s());
        b->disk_evict = false;
    }
}

/* --- freshness ------------------------------------------------------------------- */

/* Removes a stale entry now if nothing uses it (no domain, disk, hold or
 * copy); otherwise it stays, unserved, until the sweep finds it unused. */
static void
entry_retire(struct ppf_buffer *b, struct entry *e, const char *why)
{
    if (e->state != PPF_ENTRY_READY || e->pins || e->refs || e->held || e->copying)
        return;
    b->retire_why = why;
    ppf_bufmodel_remove(b->model, e->id, now_s());
    b->retire_why = NULL;
}

/* Checks that e's store still holds the version e was prepared from (at
 * most once per buffer.revalidate unless force).  1: fresh, serve it (also
 * when the store cannot be reached: the version we have is the last one we
 * know); 0: stale or gone, not to be served (retired, or kept unserved for
 * the disks that use it). */
static int
entry_fresh(struct ppf_buffer *b, struct entry *e, const char *tenant, bool force)
{
    const struct ppf_policy_tenant *t;
    struct ppf_img_info info;
    struct ppf_img *img;
    enum ppf_status_code sc;
    char msg[512], digest[2 * PPF_IMG_DIGEST_SIZE + 1];
    double now = now_s();

    if (e->stale)
        return 0;
    if (!force && now - e->checked < (double)b->policy->buffer.revalidate_ms / 1000.0)
        return 1;
    t = find_tenant(b, strcmp(e->owner, PUBLIC_OWNER) ? e->owner : tenant);
    if (!t && b->policy->ntenants)
        t = &b->policy->tenants[0];
    if (!t)
        return 1;
    sc = open_image(b, e->image, t, &img, msg, sizeof msg);
    if (sc == PPF_SC_SUCCESS) {
        ppf_img_info(img, &info);
        ppf_img_close(img);
        ppf_img_hex(info.digest, sizeof info.digest, digest);
        if (strcmp(digest, e->digest) == 0) {
            e->checked = now;
            return 1;
        }
        e->stale = true;
        ppf_oplog_add(b->oplog, PPF_OPLOG_STALE, e->image, e->owner, e->size,
                      "the store holds a new version of %s (%.12s, was %.12s): the prepared "
                      "one is not served any more%s", e->image, digest, e->digest,
                      e->pins || e->refs ? "; kept for the disks based on it" : "");
        {
            /* the new version takes the old one's place in the buffer (e may be
             * gone once retired: what is needed of it is copied first) */
            struct entry *ne;
            char why[128], image[256];

            snprintf(why, sizeof why, "a new version replaces %.12s", e->digest);
            snprintf(image, sizeof image, "%s", e->image);
            entry_retire(b, e, "a new version is in the store");
            if (start_prepare(b, image, t, (int)t->priority, 0, INFINITY, why, &ne, msg,
                              sizeof msg) != PPF_SC_SUCCESS)
                ppf_warn("buffer", "cannot prepare the new version of %s: %s", image, msg);
        }
        return 0;
    }
    if (sc == PPF_SC_NOT_FOUND) {
        if (e->held) {
            if (e->checked > -INFINITY)
                ppf_oplog_add(b->oplog, PPF_OPLOG_PURGE, e->image, e->owner, e->size,
                              "%s is gone from every store; kept and served because it is "
                              "pinned", e->image);
            e->checked = now;
            return 1;
        }
        e->stale = true;
        ppf_oplog_add(b->oplog, PPF_OPLOG_PURGE, e->image, e->owner, e->size,
                      "%s is gone from every store: %s", e->image,
                      e->pins || e->refs ? "kept, unserved, until the disks based on it are "
                      "gone" : "purged");
        entry_retire(b, e, "gone from its store");
        return 0;
    }
    ppf_warn("buffer", "cannot check %s against its store (%s); serving the version "
             "prepared", e->image, msg);
    e->checked = now;
    return 1;
}

/* Once per buffer.revalidate (at least 5 s apart): bases whose disks are
 * gone are released, every prepared entry is checked against its store,
 * stale entries nothing uses any more are removed. */
static void
fresh_sweep(struct ppf_buffer *b)
{
    double now = now_s(), every = (double)b->policy->buffer.revalidate_ms / 1000.0;

    if (now < b->next_sweep)
        return;
    b->next_sweep = now + (every < 5 ? 5 : every);
    refs_gc(b);
    holds_mark(b);
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct entry *e = b->entries[i];

        if (!e || e->state != PPF_ENTRY_READY)
            continue;
        if (e->stale)
            entry_retire(b, e, "stale, and no disk uses it any more");
        else
            entry_fresh(b, e, "default", false);
    }
}

/* --- holds: pins and schedule windows ------------------------------------------ */

static struct hold *
hold_find(struct ppf_buffer *b, const char *image, const char *tenant, const char *source)
{
    for (struct hold *h = b->holds; h; h = h->next)
        if (strcmp(h->image, image) == 0 && strcmp(h->tenant, tenant) == 0 &&
            (!source || strcmp(h->source, source) == 0))
            return h;
    return NULL;
}

/* The first hold keeping e, or NULL. */
static const struct hold *
hold_of_entry(struct ppf_buffer *b, const struct entry *e)
{
    for (struct hold *h = b->holds; h; h = h->next)
        if (lookup(b, h->image, h->tenant) == e)
            return h;
    return NULL;
}

static void
until_text(uint64_t until, char *buf, size_t len)
{
    struct tm tm;
    time_t t = (time_t)until;

    if (!until)
        snprintf(buf, len, "released");
    else if (localtime_r(&t, &tm))
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
    else
        snprintf(buf, len, "%" PRIu64, until);
}

/* Recomputes which entries holds keep, and their pins in the model. */
static void
holds_mark(struct ppf_buffer *b)
{
    for (uint32_t i = 0; i < b->nentries; i++)
        if (b->entries[i])
            b->entries[i]->held = false;
    for (struct hold *h = b->holds; h; h = h->next) {
        struct entry *e = lookup(b, h->image, h->tenant);

        h->missing = !e || e->state == PPF_ENTRY_FAILED;
        if (!h->missing)
            e->held = true;
    }
    for (uint32_t i = 0; i < b->nentries; i++)
        if (b->entries[i])
            entry_update_pin(b, b->entries[i]);
}

/* A new entry: held at once if a hold names it (the holds are few; the
 * whole recomputation of holds_mark is not needed for one entry). */
static void
hold_attach(struct ppf_buffer *b, struct entry *e)
{
    for (struct hold *h = b->holds; h; h = h->next)
        if (strcmp(h->image, e->image) == 0 && lookup(b, h->image, h->tenant) == e) {
            h->missing = false;
            e->held = true;
        }
    if (e->held)
        entry_update_pin(b, e);
}

#define HOLD_RETRY_S 30.0

/* Brings a hold's image in if it is not there: a high-priority prefetch
 * that may evict anything not held or pinned. */
static enum ppf_status_code
hold_fetch(struct ppf_buffer *b, struct hold *h, char *msg, size_t msglen)
{
    const struct ppf_policy_tenant *t;
    struct entry *e = lookup(b, h->image, h->tenant);
    enum ppf_status_code sc;
    char why[200];

    if (e && e->state != PPF_ENTRY_FAILED)
        return PPF_SC_SUCCESS;
    t = find_tenant(b, h->tenant);
    if (!t) {
        snprintf(msg, msglen, "tenant %s is not in the policy; add it under tenants:",
                 h->tenant);
        return PPF_SC_NOT_FOUND;
    }
    snprintf(why, sizeof why, "held by %s", h->source);
    sc = start_prepare(b, h->image, t, PPF_PRIO_HIGH, 0, INFINITY, why, &e, msg, msglen);
    if (sc != PPF_SC_SUCCESS) {
        if (h->retry_at == 0)   /* say it once, not at every retry */
            ppf_oplog_add(b->oplog, PPF_OPLOG_ERROR, h->image, h->tenant, 0,
                          "%s of %s for %s cannot be honoured now: %s; retried every %.0f s",
                          h->source, h->image, h->tenant, msg, HOLD_RETRY_S);
        h->retry_at = now_s() + HOLD_RETRY_S;
    } else {
        h->retry_at = 0;
    }
    return sc;
}

static void
hold_remove(struct ppf_buffer *b, struct hold *victim, const char *why)
{
    for (struct hold **pp = &b->holds; *pp; pp = &(*pp)->next)
        if (*pp == victim) {
            *pp = victim->next;
            break;
        }
    ppf_oplog_add(b->oplog, PPF_OPLOG_UNPIN, victim->image, victim->tenant, 0,
                  "%s of %s for %s %s", victim->source, victim->image, victim->tenant, why);
    free(victim);
    holds_mark(b);
}

enum ppf_status_code
ppf_buffer_hold(struct ppf_buffer *b, const char *image, const char *tenant, uint64_t until_s,
                const char *source, char *msg, size_t msglen)
{
    struct hold *h;
    enum ppf_status_code sc;
    char when[64];

    if (!ppf_name_ok(image) || !ppf_name_ok(tenant)) {
        snprintf(msg, msglen, "a hold needs an image and a tenant name");
        return PPF_SC_INVALID_PAYLOAD;
    }
    if (!find_tenant(b, tenant)) {
        snprintf(msg, msglen, "tenant %s is not in the policy; add it under tenants:", tenant);
        return PPF_SC_NOT_FOUND;
    }
    h = hold_find(b, image, tenant, source);
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h) {
            snprintf(msg, msglen, "out of memory");
            return PPF_SC_INTERNAL;
        }
        snprintf(h->image, sizeof h->image, "%s", image);
        snprintf(h->tenant, sizeof h->tenant, "%s", tenant);
        snprintf(h->source, sizeof h->source, "%s", source);
        h->next = b->holds;
        b->holds = h;
    }
    h->until = until_s;
    h->retry_at = 0;
    until_text(until_s, when, sizeof when);
    ppf_oplog_add(b->oplog, PPF_OPLOG_PIN, image, tenant, 0, "%s holds %s for %s until %s",
                  source, image, tenant, until_s ? when : "it is removed");
    sc = hold_fetch(b, h, msg, msglen);
    holds_mark(b);
    return sc;
}

int
ppf_buffer_unhold(struct ppf_buffer *b, const char *image, const char *tenant,
                  const char *source)
{
    struct hold *h = hold_find(b, image, tenant, source);

    if (!h)
        return 0;
    hold_remove(b, h, "removed");
    return 1;
}

void
ppf_buffer_holds_tick(struct ppf_buffer *b, uint64_t now)
{
    double mono = now_s();
    char msg[512];

    fresh_sweep(b);
    for (struct hold *h = b->holds, *n; h; h = n) {
        n = h->next;
        if (h->until && h->until <= now)
            hold_remove(b, h, "ended");
    }
    for (struct hold *h = b->holds; h; h = h->next)
        if (h->missing && h->retry_at <= mono) {
            hold_fetch(b, h, msg, sizeof msg);
            holds_mark(b);
        }
}

#define ADMIN_PINS "admin-pins"

/* Writes the administrator's pins (BUFFER/admin-pins) atomically. */
static int
admin_pins_save(struct ppf_buffer *b)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16];
    FILE *fp;

    snprintf(path, sizeof path, "%s/" ADMIN_PINS, b->root);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fp = fopen(tmp, "we");
    if (!fp)
        return -1;
    fprintf(fp, "# ppf administrator pins: pin IMAGE TENANT UNTIL (0 = never)\n");
    for (struct hold *h = b->holds; h; h = h->next)
        if (strcmp(h->source, "pin") == 0)
            fprintf(fp, "pin %s %s %" PRIu64 "\n", h->image, h->tenant, h->until);
    return file_commit(fp, tmp, path);
}

/* The pins of the policy and of the administrator (at open and after a
 * new policy); schedule holds are the predictor's and stay. */
static void
holds_load(struct ppf_buffer *b)
{
    char path[PATH_MAX], line[700], image[256], tenant[256], msg[512];
    uint64_t now = (uint64_t)ppf_clock_wall(), until;
    FILE *fp;

    for (struct hold *h = b->holds, *n, **pp = &b->holds; h; h = n) {
        n = h->next;
        if (strcmp(h->source, "pin") == 0 || strcmp(h->source, "policy pin") == 0) {
            *pp = n;
            free(h);
        } else {
            pp = &h->next;
        }
    }
    for (size_t i = 0; i < b->policy->npins; i++) {
        const struct ppf_policy_pin *pp = &b->policy->pins[i];

        if (ppf_policy_until_time(pp->until ? pp->until : "never", &until) < 0 ||
            (until && until <= now)) {
            ppf_info("buffer", "policy pin of %s for %s ended (%s)", pp->image, pp->tenant,
                     pp->until);
            continue;
        }
        if (ppf_buffer_hold(b, pp->image, pp->tenant, until, "policy pin", msg,
                            sizeof msg) != PPF_SC_SUCCESS)
            ppf_warn("buffer", "policy pin of %s for %s: %s", pp->image, pp->tenant, msg);
    }
    /* the schedules' holds stay: their entries (reloaded) are held again,
     * and what a reconfigure cancelled is retried at the next tick */
    for (struct hold *h = b->holds; h; h = h->next)
        h->retry_at = 0;
    holds_mark(b);
    snprintf(path, sizeof path, "%s/" ADMIN_PINS, b->root);
    fp = fopen(path, "re");
    if (!fp)
        return;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || sscanf(line, "pin %255s %255s %" SCNu64, image, tenant,
                                     &until) != 3)
            continue;
        if (!ppf_name_ok(image) || !ppf_name_ok(tenant)) {
            ppf_warn("buffer", "%s: skipping an unreadable line", path);
            continue;
        }
        if (until && until <= now) {
            ppf_info("buffer", "pin of %s for %s ended while the peripheral was down", image,
                     tenant);
            continue;
        }
        if (ppf_buffer_hold(b, image, tenant, until, "pin", msg, sizeof msg) != PPF_SC_SUCCESS)
            ppf_warn("buffer", "pin of %s for %s: %s", image, tenant, msg);
    }
    fclose(fp);
}

enum ppf_status_code
ppf_buffer_pin_cmd(struct ppf_buffer *b, const char *image, const char *tenant, bool pin,
                   uint64_t until_s, struct ppf_attr_writer *w, uint32_t *result, char *msg,
                   size_t msglen)
{
    enum ppf_status_code sc;
    struct entry *e;

    *result = 0;
    if (!pin) {
        if (!ppf_buffer_unhold(b, image, tenant, "pin")) {
            snprintf(msg, msglen, "%s is not pinned for %s%s", image, tenant,
                     hold_find(b, image, tenant, "policy pin") ?
                     " by ppfctl pin (the policy pins it: remove it from pins: in the policy)"
                     : "");
            return PPF_SC_NOT_FOUND;
        }
        if (admin_pins_save(b) < 0)
            ppf_warn("buffer", "cannot save the pins in %s/" ADMIN_PINS ": %m", b->root);
        *result = 1;
        return PPF_SC_SUCCESS;
    }
    if (until_s && until_s <= (uint64_t)ppf_clock_wall()) {
        snprintf(msg, msglen, "the pin's end is in the past; give a later time");
        return PPF_SC_INVALID_PAYLOAD;
    }
    sc = ppf_buffer_hold(b, image, tenant, until_s, "pin", msg, msglen);
    if (sc != PPF_SC_SUCCESS && sc != PPF_SC_NO_SPACE) {
        struct hold *h = hold_find(b, image, tenant, "pin");
        if (h)
            hold_remove(b, h, "refused");
        return sc;
    }
    if (admin_pins_save(b) < 0) {
        snprintf(msg, msglen, "cannot save the pin in %s/" ADMIN_PINS ": %s", b->root,
                 strerror(errno));
        return PPF_SC_INTERNAL;
    }
    e = lookup(b, image, tenant);
    *result = e ? (uint32_t)e->state : 0;
    ppf_attr_put_str(w, PPF_A_IMAGE, image);
    ppf_attr_put_u32(w, PPF_A_STATE, *result);
    if (sc == PPF_SC_NO_SPACE)
        ppf_attr_put_str(w, PPF_A_TEXT, msg);
    return PPF_SC_SUCCESS;
}

void
ppf_buffer_explain(struct ppf_buffer *b, const char *image, const char *tenant,
                   struct ppf_attr_writer *w)
{
    const struct ppf_policy_tenant *t = find_tenant(b, tenant);
    struct entry *e = lookup(b, image, tenant), *stale = NULL;
    struct ppf_buf_stats st;
    char text[400], when[64], num[32];
    uint32_t tid;
    double floor;

    for (uint32_t i = 0; i < b->nentries && !e; i++) {
        struct entry *x = b->entries[i];
        if (x && x->stale && strcmp(x->image, image) == 0 &&
            (strcmp(x->owner, tenant) == 0 || strcmp(x->owner, PUBLIC_OWNER) == 0))
            stale = x;
    }
    if (!e)
        e = stale;
    ppf_attr_put_u32(w, PPF_A_STATE, e ? (uint32_t)e->state : 0);
    if (e) {
        ppf_attr_put_u64(w, PPF_A_SIZE, e->size);
        ppf_attr_put_u32(w, PPF_A_PINS, e->pins + e->refs);
        ppf_attr_put_u64(w, PPF_A_HITS, e->hits);
        ppf_attr_put_str(w, PPF_A_DIGEST, e->digest);
        ppf_attr_put_u32(w, PPF_A_X_STALE, e->stale);
        ppf_attr_put_u32(w, PPF_A_PUBLIC, strcmp(e->owner, PUBLIC_OWNER) == 0);
    }
    for (struct hold *h = b->holds; h; h = h->next) {
        if (strcmp(h->image, image) != 0 || strcmp(h->tenant, tenant) != 0)
            continue;
        until_text(h->until, when, sizeof when);
        snprintf(text, sizeof text, "%s until %s%s", h->source, h->until ? when : "removed",
                 h->missing ? " (not in the buffer yet: retried)" : "");
        ppf_attr_put_str(w, PPF_A_X_HOLD, text);
    }
    tid = tenant_id(b, e ? e->owner : tenant);
    if (t && tid != PPF_BUF_PUBLIC) {
        ppf_attr_put_u64(w, PPF_A_X_QUOTA, t->quota);
        ppf_attr_put_u64(w, PPF_A_X_QUOTA_USED, ppf_bufmodel_tenant_used(b->model, tid));
    }
    ppf_bufmodel_get_stats(b->model, &st);
    ppf_attr_put_u64(w, PPF_A_X_CAPACITY, ppf_bufmodel_capacity(b->model));
    ppf_attr_put_u64(w, PPF_A_X_USED, st.used);
    floor = ppf_bufmodel_floor(b->model, now_s());
    snprintf(num, sizeof num, "%.3g", floor);
    ppf_attr_put_str(w, PPF_A_X_FLOOR, num);
}

void
ppf_buffer_set_oplog(struct ppf_buffer *b, struct ppf_oplog *log)
{
    b->oplog = log;
}

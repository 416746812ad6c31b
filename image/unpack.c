/* Opening an image and preparing it: every chunk is read, authenticated
 * (AES-256-GCM tag, or SHA-256 for a public image), decompressed and
 * written sparse into DST.tmp.XXXXXX by a pool of workers, each with its
 * own buffers, zstd context, cipher handle and connection, so the hot path
 * allocates nothing and memory is about two chunks per worker.  Chunks are
 * claimed in order from a shared counter; when the content digest is
 * checked, workers take turns in chunk order to feed the hash.  The output
 * is renamed into place only after every chunk verified.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "image/image-priv.h"

#define IMG_BLOCK 4096          /* granularity of holes inside a chunk */

struct ppf_img {
    struct img_src *src;
    struct img_hdr h;
    uint8_t hdr_raw[IMG_HDR_SIZE];
    uint8_t aad_hdr[IMG_HDR_SIZE];  /* the header template bound into every chunk */
    struct img_entry *entries;
    uint64_t stored_bytes, zero_chunks;
    uint8_t subkey[PPF_IMG_KEY_SIZE];
    int no_key;                 /* encrypted, opened without its key: info only */
};

/* State shared by the workers of one unpack or verify. */
struct img_job {
    struct ppf_img *img;
    int fd;                     /* output, or -1 to verify only */
    const char *out_name;
    int digest;                 /* feed the content hash in chunk order */
    gnutls_hash_hd_t hash;
    const int *cancel;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t next;              /* next chunk to claim */
    uint64_t next_hash;         /* chunk whose turn it is to be hashed */
    uint64_t done_bytes;
    unsigned running;
    int stop;
    struct ppf_img_err err;
    ppf_img_progress_fn progress;
    void *opaque;
    double last_progress;
};

struct img_worker {
    struct img_job *job;
    struct img_conn *conn;
    ZSTD_DCtx *dctx;
    gnutls_aead_cipher_hd_t aead;
    uint8_t *in, *out;
    int caller;                 /* runs in the caller's thread: reports progress */
    struct ppf_img_err err;
};

static const uint8_t img_zeros[65536];

const char *ppf_img_name(const struct ppf_img *img) { return img_src_name(img->src); }

static uint64_t
img_chunk_len(const struct img_hdr *h, uint64_t i)
{
    if (i == h->chunk_count - 1 && (h->size & (h->chunk_size - 1)))
        return h->size & (h->chunk_size - 1);
    return h->chunk_size;
}

static int
img_aead_init(struct ppf_img *img, gnutls_aead_cipher_hd_t *aead, struct ppf_img_err *err)
{
    gnutls_datum_t k = { img->subkey, PPF_IMG_KEY_SIZE };
    int rc = gnutls_aead_cipher_init(aead, GNUTLS_CIPHER_AES_256_GCM, &k);

    if (rc < 0)
        return img_fail(err, PPF_IMG_EFAIL, "%s: AES-256-GCM is unavailable: %s",
                        ppf_img_name(img), gnutls_strerror(rc));
    return 0;
}

void
ppf_img_close(struct ppf_img *img)
{
    if (!img)
        return;
    ppf_img_wipe(img->subkey, sizeof img->subkey);
    img_src_close(img->src);
    free(img->entries);
    free(img);
}

static void img_cleanup_img(struct ppf_img **p) { ppf_img_close(*p); }
#define CLEANUP_IMG __attribute__((cleanup(img_cleanup_img)))

int
ppf_img_open(const char *source, const uint8_t *key, const struct ppf_img_open_opts *opts,
             struct ppf_img **out, struct ppf_img_err *err)
{
    CLEANUP_IMG struct ppf_img *img = NULL;
    CLEANUP_FREE uint8_t *table = NULL;
    const char *name;
    uint64_t fsize;

    *out = NULL;
    img_err_clear(err);
    img = calloc(1, sizeof *img);
    if (!img)
        return img_fail_sys(err, ENOMEM, "%s: opening", source);
    if (img_src_open(source, opts, &img->src, err) < 0)
        return -1;
    name = ppf_img_name(img);
    fsize = img_src_size(img->src);
    if (fsize < IMG_HDR_SIZE)
        return img_fail(err, PPF_IMG_EBAD, "%s: image is truncated (%" PRIu64 " bytes, "
                        "shorter than its %d-byte header)", name, fsize, IMG_HDR_SIZE);
    if (img_src_read(img->src, NULL, img->hdr_raw, IMG_HDR_SIZE, 0, err) < 0 ||
        img_hdr_decode(name, img->hdr_raw, fsize, &img->h, err) < 0)
        return -1;

    if ((img->h.flags & IMG_FLAG_ENCRYPTED) && !key && opts && opts->allow_no_key) {
        img->no_key = 1;
    } else if (img->h.flags & IMG_FLAG_ENCRYPTED) {
        uint8_t id[PPF_IMG_KEY_ID_SIZE], nonce[IMG_NONCE_SIZE];
        giovec_t aad = { img->hdr_raw, IMG_HDR_AUTHED };
        gnutls_aead_cipher_hd_t aead;
        int rc;

        if (!key)
            return img_fail(err, PPF_IMG_EUSAGE, "%s: image is encrypted: give its key "
                            "(--key FILE)", name);
        img_hdr_template(img->hdr_raw, img->aad_hdr);
        img_key_id(key, id);
        if (memcmp(id, img->h.key_id, sizeof id) != 0)
            return img_fail(err, PPF_IMG_EBAD, "%s: wrong key: the image was sealed with "
                            "another key; use the key it was packed with", name);
        img_subkey(key, img->h.salt, img->subkey);
        if (img_aead_init(img, &aead, err) < 0)
            return -1;
        img_nonce(img->h.salt, IMG_HDR_TAG_INDEX, nonce);
        rc = gnutls_aead_cipher_decryptv2(aead, nonce, sizeof nonce, &aad, 1, NULL, 0,
                                          img->h.tag, IMG_TAG_SIZE);
        gnutls_aead_cipher_deinit(aead);
        if (rc < 0)
            return img_fail(err, PPF_IMG_EBAD, "%s: header failed authentication: the image "
                            "is corrupt or was tampered with", name);
    }

    table = malloc(img->h.table_len ? img->h.table_len : 1);
    img->entries = calloc(img->h.chunk_count ? img->h.chunk_count : 1, sizeof *img->entries);
    if (!table || !img->entries)
        return img_fail_sys(err, ENOMEM, "%s: loading the chunk table of %" PRIu64 " entries",
                            name, img->h.chunk_count);
    if (img_src_read(img->src, NULL, table, img->h.table_len, img->h.table_off, err) < 0 ||
        img_table_decode(name, &img->h, table, fsize, img->entries, &img->stored_bytes,
                         err) < 0)
        return -1;
    for (uint64_t i = 0; i < img->h.chunk_count; i++)
        img->zero_chunks += !!(img->entries[i].flags & IMG_CHUNK_ZERO);
    *out = img;
    img = NULL;
    return 0;
}

void
ppf_img_info(const struct ppf_img *img, struct ppf_img_info *info)
{
    memset(info, 0, sizeof *info);
    info->version_major = img->h.major;
    info->version_minor = img->h.minor;
    info->size = img->h.size;
    info->chunk_size = img->h.chunk_size;
    info->chunk_count = img->h.chunk_count;
    info->zero_chunks = img->zero_chunks;
    info->stored_bytes = img->stored_bytes;
    info->file_size = img_src_size(img->src);
    info->encrypted = !!(img->h.flags & IMG_FLAG_ENCRYPTED);
    info->authenticated = info->encrypted && !img->no_key;
    info->compression = "zstd";
    info->cipher = info->encrypted ? "aes-256-gcm" : "none";
    memcpy(info->key_id, img->h.key_id, sizeof info->key_id);
    memcpy(info->digest, img->h.digest, sizeof info->digest);
}

/* Writes the non-zero 4 KiB blocks of p; zero blocks stay holes. */
static int
img_write_sparse(struct img_job *job, const uint8_t *p, uint64_t len, uint64_t off,
                 struct ppf_img_err *err)
{
    uint64_t pos = 0;

    while (pos < len) {
        uint64_t start, end;

        while (pos < len && img_is_zero(p + pos, len - pos < IMG_BLOCK ? len - pos : IMG_BLOCK))
            pos += IMG_BLOCK;
        if (pos >= len)
            break;
        start = pos;
        while (pos < len &&
               !img_is_zero(p + pos, len - pos < IMG_BLOCK ? len - pos : IMG_BLOCK))
            pos += IMG_BLOCK;
        end = pos < len ? pos : len;
        if (img_pwrite_all(job->fd, p + start, end - start, off + start, job->out_name,
                           err) < 0)
            return -1;
    }
    return 0;
}

/* Reads, authenticates and decompresses chunk i; *data is the plain bytes. */
static int
img_chunk_prepare(struct img_worker *w, uint64_t i, const uint8_t **data)
{
    struct ppf_img *img = w->job->img;
    const struct img_entry *e = &img->entries[i];
    const char *name = ppf_img_name(img);
    uint64_t plain = img_chunk_len(&img->h, i);
    uint8_t check[32];

    *data = NULL;
    if (e->flags & IMG_CHUNK_ZERO)
        return 0;
    if (img_src_read(img->src, w->conn, w->in, e->len, e->off, &w->err) < 0)
        return -1;
    if (img->h.flags & IMG_FLAG_ENCRYPTED) {
        uint8_t nonce[IMG_NONCE_SIZE], idx[8], head[IMG_ENTRY_HEAD];
        giovec_t aad[3] = { { img->aad_hdr, IMG_HDR_SIZE }, { idx, 8 }, { head, sizeof head } };
        giovec_t data_iov = { w->in, e->len };

        img_nonce(img->h.salt, i, nonce);
        img_le64(idx, i);
        img_le64(head, e->off);
        img_le32(head + 8, e->len);
        img_le32(head + 12, e->flags);
        if (gnutls_aead_cipher_decryptv2(w->aead, nonce, sizeof nonce, aad, 3, &data_iov, 1,
                                         (void *)e->check, IMG_TAG_SIZE) < 0)
            return img_fail(&w->err, PPF_IMG_EBAD, "%s: chunk %" PRIu64 " failed "
                            "authentication: the image is corrupt or was tampered with",
                            name, i);
    } else if (img_sha256(w->in, e->len, check) < 0 || memcmp(check, e->check, 32) != 0) {
        return img_fail(&w->err, PPF_IMG_EBAD, "%s: chunk %" PRIu64 " is corrupt (digest "
                        "mismatch): fetch or pack the image again", name, i);
    }
    if (e->flags & IMG_CHUNK_RAW) {
        *data = w->in;
        return 0;
    }
    size_t n = ZSTD_decompressDCtx(w->dctx, w->out, img->h.chunk_size, w->in, e->len);
    if (ZSTD_isError(n) || n != plain)
        return img_fail(&w->err, PPF_IMG_EBAD, "%s: chunk %" PRIu64 " does not decompress "
                        "(%s)", name, i, ZSTD_isError(n) ? ZSTD_getErrorName(n)
                        : "wrong length");
    *data = w->out;
    return 0;
}

static void
img_job_report(struct img_job *job, int final)
{
    double now = img_now();

    if (!job->progress || (!final && now - job->last_progress < 0.2))
        return;
    job->last_progress = now;
    job->progress(job->opaque, __atomic_load_n(&job->done_bytes, __ATOMIC_RELAXED),
                  job->img->h.size);
}

/* Feeds chunk i to the content hash when its turn comes. */
static int
img_hash_in_order(struct img_worker *w, uint64_t i, const uint8_t *data)
{
    struct img_job *job = w->job;
    uint64_t len = img_chunk_len(&job->img->h, i);
    int rc = 0;

    pthread_mutex_lock(&job->lock);
    while (job->next_hash != i && !job->stop)
        pthread_cond_wait(&job->cond, &job->lock);
    pthread_mutex_unlock(&job->lock);
    if (job->stop)
        return -1;
    if (data) {
        rc = gnutls_hash(job->hash, data, len);
    } else {
        for (uint64_t done = 0; done < len && rc == 0; done += sizeof img_zeros)
            rc = gnutls_hash(job->hash, img_zeros,
                             len - done < sizeof img_zeros ? len - done : sizeof img_zeros);
    }
    pthread_mutex_lock(&job->lock);
    job->next_hash = i + 1;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
    return rc < 0 ? img_fail(&w->err, PPF_IMG_EFAIL, "hashing failed") : 0;
}

static void
img_job_fail(struct img_job *job, const struct ppf_img_err *err)
{
    pthread_mutex_lock(&job->lock);
    if (job->err.code == PPF_IMG_OK && err->code != PPF_IMG_OK)
        job->err = *err;
    job->stop = 1;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
}

static void *
img_worker_run(void *opaque)
{
    struct img_worker *w = opaque;
    struct img_job *job = w->job;
    struct ppf_img *img = job->img;

    for (;;) {
        uint64_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        const uint8_t *data;

        if (i >= img->h.chunk_count || __atomic_load_n(&job->stop, __ATOMIC_RELAXED))
            break;
        if (job->cancel && __atomic_load_n(job->cancel, __ATOMIC_RELAXED)) {
            img_fail(&w->err, PPF_IMG_ECANCELED, "%s: canceled", ppf_img_name(img));
            break;
        }
        if (img_chunk_prepare(w, i, &data) < 0 ||
            (data && job->fd >= 0 &&
             img_write_sparse(job, data, img_chunk_len(&img->h, i),
                              i << img->h.chunk_shift, &w->err) < 0) ||
            (job->digest && img_hash_in_order(w, i, data) < 0))
            break;
        __atomic_add_fetch(&job->done_bytes, img_chunk_len(&img->h, i), __ATOMIC_RELAXED);
        if (w->caller)
            img_job_report(job, 0);
    }
    if (w->err.code != PPF_IMG_OK)
        img_job_fail(job, &w->err);
    pthread_mutex_lock(&job->lock);
    job->running--;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

static void
img_worker_fini(struct img_worker *w)
{
    img_conn_free(w->conn);
    ZSTD_freeDCtx(w->dctx);
    if (w->aead)
        gnutls_aead_cipher_deinit(w->aead);
    free(w->in);
    free(w->out);
}

static int
img_worker_init(struct img_worker *w, struct img_job *job, struct ppf_img_err *err)
{
    struct ppf_img *img = job->img;
    size_t cs = img->h.chunk_size;

    memset(w, 0, sizeof *w);
    w->job = job;
    w->in = malloc(ZSTD_compressBound(cs));
    w->out = malloc(cs);
    w->dctx = ZSTD_createDCtx();
    if (!w->in || !w->out || !w->dctx)
        return img_fail_sys(err, ENOMEM, "%s: allocating chunk buffers", ppf_img_name(img));
    ZSTD_DCtx_setParameter(w->dctx, ZSTD_d_windowLogMax, img->h.chunk_shift < 10 ? 10
                           : img->h.chunk_shift);
    if ((img->h.flags & IMG_FLAG_ENCRYPTED) && img_aead_init(img, &w->aead, err) < 0)
        return -1;
    w->conn = img_conn_new(img->src, err);
    return w->conn ? 0 : -1;
}

/* Runs the workers over every chunk; 0 or -1 with job->err set. */
static int
img_job_run(struct img_job *job, unsigned threads)
{
    struct img_worker *ws;
    pthread_t *tids;
    unsigned started = 0;
    int rc = 0;

    if (threads == 0)
        threads = 1;
    if (threads > PPF_IMG_THREADS_MAX)
        threads = PPF_IMG_THREADS_MAX;
    if (job->img->h.chunk_count && threads > job->img->h.chunk_count)
        threads = job->img->h.chunk_count;
    ws = calloc(threads, sizeof *ws);
    tids = calloc(threads, sizeof *tids);
    if (!ws || !tids) {
        free(ws);
        free(tids);
        return img_fail_sys(&job->err, ENOMEM, "%s: starting workers",
                            ppf_img_name(job->img));
    }
    for (unsigned t = 0; t < threads; t++)
        if (img_worker_init(&ws[t], job, &job->err) < 0) {
            rc = -1;
            goto out;
        }
    job->running = threads;
    if (threads == 1) {
        ws[0].caller = 1;
        img_worker_run(&ws[0]);
    } else {
        for (; started < threads; started++) {
            int e = pthread_create(&tids[started], NULL, img_worker_run, &ws[started]);
            if (e) {
                struct ppf_img_err te = { 0 };
                img_fail_sys(&te, e, "%s: starting a worker thread", ppf_img_name(job->img));
                img_job_fail(job, &te);
                pthread_mutex_lock(&job->lock);
                job->running -= threads - started;
                pthread_mutex_unlock(&job->lock);
                break;
            }
        }
        pthread_mutex_lock(&job->lock);
        while (job->running > 0) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&job->cond, &job->lock, &ts);
            if (job->progress) {
                pthread_mutex_unlock(&job->lock);
                img_job_report(job, 0);
                pthread_mutex_lock(&job->lock);
            }
        }
        pthread_mutex_unlock(&job->lock);
        for (unsigned t = 0; t < started; t++)
            pthread_join(tids[t], NULL);
    }
    rc = job->err.code == PPF_IMG_OK ? 0 : -1;
    if (rc == 0)
        img_job_report(job, 1);
out:
    for (unsigned t = 0; t < threads; t++)
        img_worker_fini(&ws[t]);
    free(ws);
    free(tids);
    return rc;
}

static int
img_job_init(struct img_job *job, struct ppf_img *img, const struct ppf_img_unpack_opts *o,
             int fd, const char *out_name, int digest, struct ppf_img_err *err)
{
    memset(job, 0, sizeof *job);
    if (img->no_key)
        return img_fail(err, PPF_IMG_EUSAGE, "%s: image is encrypted: give its key "
                        "(--key FILE)", ppf_img_name(img));
    job->img = img;
    job->fd = fd;
    job->out_name = out_name;
    job->digest = digest;
    if (o) {
        job->cancel = o->cancel;
        job->progress = o->progress;
        job->opaque = o->opaque;
    }
    if (digest && gnutls_hash_init(&job->hash, GNUTLS_DIG_SHA256) < 0)
        return img_fail(err, PPF_IMG_EFAIL, "%s: SHA-256 is unavailable", ppf_img_name(img));
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->cond, NULL);
    return 0;
}

/* Finishes the job: checks the digest; copies the job's error to err. */
static int
img_job_fini(struct img_job *job, int rc, struct ppf_img_err *err)
{
    if (job->digest) {
        uint8_t got[32];

        gnutls_hash_deinit(job->hash, got);
        if (rc == 0 && memcmp(got, job->img->h.digest, 32) != 0)
            rc = img_fail(&job->err, PPF_IMG_EBAD, "%s: content digest mismatch: the image "
                          "is corrupt", ppf_img_name(job->img));
    }
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->cond);
    if (rc < 0) {
        if (job->err.code == PPF_IMG_OK)
            img_fail(&job->err, PPF_IMG_EFAIL, "%s: failed", ppf_img_name(job->img));
        if (err)
            *err = job->err;
    }
    return rc;
}

int
ppf_img_verify(struct ppf_img *img, const struct ppf_img_unpack_opts *opts,
               struct ppf_img_err *err)
{
    struct img_job job;

    img_err_clear(err);
    if (img_job_init(&job, img, opts, -1, NULL, 1, err) < 0)
        return -1;
    return img_job_fini(&job, img_job_run(&job, opts ? opts->threads : 1), err);
}

static void
img_unlink_tmp(char **tmp)
{
    if (*tmp) {
        unlink(*tmp);
        free(*tmp);
    }
}
#define CLEANUP_UNLINK __attribute__((cleanup(img_unlink_tmp)))

/* raw → qcow2 through qemu-img into a second temporary file. */
static int
img_to_qcow2(const char *raw, const char *dst, const struct ppf_img_unpack_opts *o,
             struct ppf_img_err *err)
{
    CLEANUP_UNLINK char *tmp = NULL;
    CLEANUP_CLOSE int fd = img_tmp_create(dst, 0600, &tmp, err);
    char *argv[] = { (char *)img_qemu_img(), "convert", "-q", "-f", "raw", "-O", "qcow2",
                     (char *)raw, tmp, NULL };

    if (fd < 0 || img_run(argv, err) < 0)
        return -1;
    close(fd);
    fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return img_fail_sys(err, errno, "%s: reopening %s", dst, tmp);
    if (img_commit(fd, tmp, dst, o->overwrite, o->no_sync, err) < 0)
        return -1;
    free(tmp);
    tmp = NULL;
    return 0;
}

int
ppf_img_unpack(struct ppf_img *img, const char *dst, const struct ppf_img_unpack_opts *opts,
               struct ppf_img_err *err)
{
    static const struct ppf_img_unpack_opts defaults;
    const struct ppf_img_unpack_opts *o = opts ? opts : &defaults;
    CLEANUP_UNLINK char *tmp = NULL;
    CLEANUP_CLOSE int fd = -1;
    struct img_job job;
    int rc;

    img_err_clear(err);
    if (o->format != PPF_IMG_FORMAT_RAW && o->format != PPF_IMG_FORMAT_QCOW2)
        return img_fail(err, PPF_IMG_EUSAGE, "%s: unknown output format", dst);
    if (img_check_dst(dst, o->overwrite, err) < 0)
        return -1;
    fd = img_tmp_create(dst, 0600, &tmp, err);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, img->h.size) < 0)
        return img_fail_sys(err, errno, "%s: cannot make a file of %" PRIu64 " bytes",
                            dst, img->h.size);
    if (img_job_init(&job, img, o, fd, dst, o->verify_digest, err) < 0)
        return -1;
    rc = img_job_fini(&job, img_job_run(&job, o->threads), err);
    if (rc < 0)
        return -1;
    if (o->format == PPF_IMG_FORMAT_QCOW2)
        return img_to_qcow2(tmp, dst, o, err);
    if (img_commit(fd, tmp, dst, o->overwrite, o->no_sync, err) < 0)
        return -1;
    free(tmp);
    tmp = NULL;
    return 0;
}

/* Packing: raw, .zst or qcow2 input → .ppfi.  The calling thread reads
 * the input in order (skipping holes with SEEK_DATA), hashes the content
 * and writes chunks in order; a pool of workers compresses them (and, for
 * a public image, checksums them) in a window of 2 × threads slots.  The
 * writer seals each chunk with AES-256-GCM once its file offset is known,
 * because the offset is part of the chunk's associated data.  The header
 * is written last, the result renamed into place when complete.
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

enum img_slot_state { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

struct img_slot {
    enum img_slot_state state;
    uint64_t index;
    size_t plain_len, stored_len;
    uint32_t flags;
    int hole;                   /* known zero from SEEK_DATA: nothing was read */
    uint8_t *plain, *stored;
    uint8_t check[32];
};

struct img_pack {
    const char *src_name, *dst;
    const struct ppf_img_pack_opts *o;
    int in_fd, out_fd;
    int is_zst;
    uint64_t in_size;           /* raw input: its size */
    uint64_t next_data;         /* raw input: next offset that may hold data */
    int no_seek_data;           /* raw input: SEEK_DATA unsupported */
    ZSTD_DStream *zds;
    uint8_t *zin;
    ZSTD_inBuffer zbuf;
    int zin_eof;
    size_t zret;                /* last ZSTD_decompressStream result that made progress */
    uint32_t cs;
    int level, enc;
    struct img_hdr h;
    uint8_t aad_hdr[IMG_HDR_SIZE];
    gnutls_aead_cipher_hd_t aead;
    gnutls_hash_hd_t hash;
    struct img_entry *entries;
    uint64_t n_entries, cap_entries;
    uint64_t out_off;
    /* the window */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct img_slot *slots;
    unsigned nslots;
    uint64_t next_compress;
    int stop;
    struct ppf_img_err err;
};

static const uint8_t img_zeros[65536];

static void
img_pack_fail(struct img_pack *p, const struct ppf_img_err *err)
{
    pthread_mutex_lock(&p->lock);
    if (p->err.code == PPF_IMG_OK)
        p->err = *err;
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static int
img_compress(struct img_pack *p, ZSTD_CCtx *cctx, struct img_slot *s, struct ppf_img_err *err)
{
    size_t n;

    s->flags = 0;
    if (s->hole || img_is_zero(s->plain, s->plain_len)) {
        s->flags = IMG_CHUNK_ZERO;
        s->stored_len = 0;
        memset(s->check, 0, sizeof s->check);
        return 0;
    }
    n = ZSTD_compressCCtx(cctx, s->stored, ZSTD_compressBound(p->cs), s->plain, s->plain_len,
                          p->level);
    if (ZSTD_isError(n))
        return img_fail(err, PPF_IMG_EFAIL, "%s: compressing chunk %" PRIu64 ": %s", p->dst,
                        s->index, ZSTD_getErrorName(n));
    if (n >= s->plain_len) {
        memcpy(s->stored, s->plain, s->plain_len);
        n = s->plain_len;
        s->flags = IMG_CHUNK_RAW;
    }
    s->stored_len = n;
    memset(s->check, 0, sizeof s->check);
    if (!p->enc && img_sha256(s->stored, n, s->check) < 0)
        return img_fail(err, PPF_IMG_EFAIL, "%s: SHA-256 failed", p->dst);
    return 0;
}

static void *
img_pack_worker(void *opaque)
{
    struct img_pack *p = opaque;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    struct ppf_img_err err = { 0 };

    if (!cctx) {
        img_fail_sys(&err, ENOMEM, "%s: creating a zstd context", p->dst);
        img_pack_fail(p, &err);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct img_slot *s = &p->slots[p->next_compress % p->nslots];

        if (p->stop)
            break;
        if (s->state != SLOT_READY || s->index != p->next_compress) {
            pthread_cond_wait(&p->cond, &p->lock);
            continue;
        }
        s->state = SLOT_BUSY;
        p->next_compress++;
        pthread_mutex_unlock(&p->lock);
        if (img_compress(p, cctx, s, &err) < 0) {
            img_pack_fail(p, &err);
            pthread_mutex_lock(&p->lock);
            break;
        }
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    ZSTD_freeCCtx(cctx);
    return NULL;
}

static int
img_read_full(int fd, uint8_t *buf, size_t len, uint64_t off, const char *name, size_t *got,
              struct ppf_img_err *err)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = pread(fd, buf + *got, len - *got, off + *got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return img_fail_sys(err, errno, "%s: reading at %" PRIu64, name, off + *got);
        if (n == 0)
            break;
        *got += n;
    }
    return 0;
}

/* Fills s with the next chunk of a .zst stream; plain_len 0 at the end. */
static int
img_read_zst(struct img_pack *p, struct img_slot *s, struct ppf_img_err *err)
{
    ZSTD_outBuffer out = { s->plain, p->cs, 0 };

    while (out.pos < out.size) {
        if (p->zbuf.pos == p->zbuf.size && !p->zin_eof) {
            ssize_t n = read(p->in_fd, p->zin, ZSTD_DStreamInSize());

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return img_fail_sys(err, errno, "%s: reading", p->src_name);
            p->zbuf.src = p->zin;
            p->zbuf.size = n;
            p->zbuf.pos = 0;
            p->zin_eof = n == 0;
        }
        size_t before = out.pos, inpos = p->zbuf.pos;
        size_t ret = ZSTD_decompressStream(p->zds, &out, &p->zbuf);
        if (ZSTD_isError(ret))
            return img_fail(err, PPF_IMG_EBAD, "%s: not a valid zstd stream: %s",
                            p->src_name, ZSTD_getErrorName(ret));
        if (out.pos != before || p->zbuf.pos != inpos)
            p->zret = ret;      /* 0 once a frame is complete and flushed */
        else if (p->zin_eof) {
            if (p->zret != 0)
                return img_fail(err, PPF_IMG_EBAD, "%s: zstd stream is truncated",
                                p->src_name);
            break;
        }
    }
    s->plain_len = out.pos;
    return 0;
}

/* Fills slot s with chunk `index` of the input; plain_len 0 at the end. */
static int
img_read_chunk(struct img_pack *p, struct img_slot *s, uint64_t index, struct ppf_img_err *err)
{
    uint64_t off = index * p->cs;
    size_t len, got;

    s->index = index;
    s->hole = 0;
    if (p->is_zst)
        return img_read_zst(p, s, err);
    if (off >= p->in_size) {
        s->plain_len = 0;
        return 0;
    }
    len = p->in_size - off < p->cs ? p->in_size - off : p->cs;
    s->plain_len = len;
    if (!p->no_seek_data && p->next_data < off + len) {
        off_t d = lseek(p->in_fd, off, SEEK_DATA);

        if (d >= 0)
            p->next_data = d;
        else if (errno == ENXIO)
            p->next_data = UINT64_MAX;  /* only a hole up to the end */
        else
            p->no_seek_data = 1;        /* no hole map: read everything */
    }
    if (!p->no_seek_data && p->next_data >= off + len) {
        s->hole = 1;
        return 0;
    }
    if (img_read_full(p->in_fd, s->plain, len, off, p->src_name, &got, err) < 0)
        return -1;
    if (got != len)
        return img_fail(err, PPF_IMG_EIO, "%s: shrank while it was being packed",
                        p->src_name);
    return 0;
}

static int
img_hash_slot(struct img_pack *p, const struct img_slot *s, struct ppf_img_err *err)
{
    int rc = 0;

    if (!s->hole)
        rc = gnutls_hash(p->hash, s->plain, s->plain_len);
    for (size_t done = 0; s->hole && rc == 0 && done < s->plain_len; done += sizeof img_zeros)
        rc = gnutls_hash(p->hash, img_zeros, s->plain_len - done < sizeof img_zeros
                         ? s->plain_len - done : sizeof img_zeros);
    return rc < 0 ? img_fail(err, PPF_IMG_EFAIL, "%s: SHA-256 failed", p->dst) : 0;
}

/* Seals (when encrypted) and appends a compressed chunk; records its entry. */
static int
img_write_slot(struct img_pack *p, struct img_slot *s, struct ppf_img_err *err)
{
    struct img_entry *e;

    if (p->n_entries == p->cap_entries) {
        uint64_t cap = p->cap_entries ? p->cap_entries * 2 : 1024;
        struct img_entry *n = realloc(p->entries, cap * sizeof *n);

        if (!n)
            return img_fail_sys(err, ENOMEM, "%s: growing the chunk table", p->dst);
        p->entries = n;
        p->cap_entries = cap;
    }
    e = &p->entries[p->n_entries++];
    memset(e, 0, sizeof *e);
    e->flags = s->flags;
    if (s->flags & IMG_CHUNK_ZERO)
        return 0;
    e->off = p->out_off;
    e->len = s->stored_len;
    memcpy(e->check, s->check, sizeof e->check);
    if (p->enc) {
        uint8_t nonce[IMG_NONCE_SIZE], idx[8], head[IMG_ENTRY_HEAD];
        giovec_t aad[3] = { { p->aad_hdr, IMG_HDR_SIZE }, { idx, 8 }, { head, sizeof head } };
        giovec_t data = { s->stored, s->stored_len };
        size_t tag_size = IMG_TAG_SIZE;

        img_nonce(p->h.salt, s->index, nonce);
        img_le64(idx, s->index);
        img_le64(head, e->off);
        img_le32(head + 8, e->len);
        img_le32(head + 12, e->flags);
        if (gnutls_aead_cipher_encryptv2(p->aead, nonce, sizeof nonce, aad, 3, &data, 1,
                                         e->check, &tag_size) < 0)
            return img_fail(err, PPF_IMG_EFAIL, "%s: AES-256-GCM failed", p->dst);
    }
    if (img_pwrite_all(p->out_fd, s->stored, s->stored_len, p->out_off, p->dst, err) < 0)
        return -1;
    p->out_off += s->stored_len;
    return 0;
}

/* The reader/writer loop of the calling thread. */
static int
img_pack_loop(struct img_pack *p, struct ppf_img_err *err)
{
    uint64_t next_read = 0, next_write = 0, done_bytes = 0;
    int eof = 0;
    double last = 0;

    pthread_mutex_lock(&p->lock);
    while (!p->stop && !(eof && next_write == next_read)) {
        struct img_slot *w = &p->slots[next_write % p->nslots];
        struct img_slot *r = &p->slots[next_read % p->nslots];

        if (next_write < next_read && w->state == SLOT_DONE) {
            pthread_mutex_unlock(&p->lock);
            if (img_write_slot(p, w, err) < 0)
                goto fail;
            done_bytes += w->plain_len;
            if (p->o->progress && img_now() - last >= 0.2) {
                last = img_now();
                p->o->progress(p->o->opaque, done_bytes, p->is_zst ? 0 : p->in_size);
            }
            pthread_mutex_lock(&p->lock);
            w->state = SLOT_FREE;
            next_write++;
            continue;
        }
        if (!eof && r->state == SLOT_FREE) {
            pthread_mutex_unlock(&p->lock);
            if (p->o->cancel && __atomic_load_n(p->o->cancel, __ATOMIC_RELAXED)) {
                img_fail(err, PPF_IMG_ECANCELED, "%s: canceled", p->dst);
                goto fail;
            }
            if (img_read_chunk(p, r, next_read, err) < 0)
                goto fail;
            if (r->plain_len && img_hash_slot(p, r, err) < 0)
                goto fail;
            if (r->plain_len && next_read >= IMG_MAX_CHUNKS) {
                img_fail(err, PPF_IMG_EUSAGE, "%s: too large for %" PRIu32 "-byte chunks: "
                         "use a larger --chunk", p->src_name, p->cs);
                goto fail;
            }
            pthread_mutex_lock(&p->lock);
            if (r->plain_len == 0 || r->plain_len < p->cs)
                eof = 1;
            if (r->plain_len) {
                r->state = SLOT_READY;
                next_read++;
                pthread_cond_broadcast(&p->cond);
            }
            continue;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
    if (p->err.code != PPF_IMG_OK) {
        *err = p->err;
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->o->progress)
        p->o->progress(p->o->opaque, done_bytes, done_bytes);
    p->h.size = done_bytes;
    return 0;

fail:
    img_pack_fail(p, err);
    return -1;
}

/* Writes the table and then the header. */
static int
img_pack_finish(struct img_pack *p, struct ppf_img_err *err)
{
    CLEANUP_FREE uint8_t *table = NULL;
    uint8_t hdr[IMG_HDR_SIZE];

    p->h.chunk_count = p->n_entries;
    p->h.table_off = p->out_off;
    p->h.table_len = p->n_entries * IMG_ENTRY_SIZE;
    if (p->h.size > IMG_MAX_SIZE)
        return img_fail(err, PPF_IMG_EUSAGE, "%s: too large (%" PRIu64 " bytes)",
                        p->src_name, p->h.size);
    table = malloc(p->h.table_len ? p->h.table_len : 1);
    if (!table)
        return img_fail_sys(err, ENOMEM, "%s: building the chunk table", p->dst);
    for (uint64_t i = 0; i < p->n_entries; i++)
        img_entry_encode(&p->entries[i], table + i * IMG_ENTRY_SIZE);
    gnutls_hash_deinit(p->hash, p->h.digest);
    p->hash = NULL;
    if (img_sha256(table, p->h.table_len, p->h.table_digest) < 0 ||
        img_pwrite_all(p->out_fd, table, p->h.table_len, p->h.table_off, p->dst, err) < 0)
        return -1;
    memset(p->h.tag, 0, sizeof p->h.tag);
    img_hdr_encode(&p->h, hdr);
    img_sha256(hdr, IMG_HDR_DIGESTED, hdr + IMG_OFF_HDR_DIGEST);
    if (p->enc && img_hdr_tag(p->aead, p->h.salt, hdr, hdr + IMG_OFF_HDR_TAG) < 0)
        return img_fail(err, PPF_IMG_EFAIL, "%s: AES-256-GCM failed", p->dst);
    return img_pwrite_all(p->out_fd, hdr, IMG_HDR_SIZE, 0, p->dst, err);
}

static void
img_pack_free(struct img_pack *p)
{
    if (p->slots)
        for (unsigned i = 0; i < p->nslots; i++) {
            free(p->slots[i].plain);
            free(p->slots[i].stored);
        }
    free(p->slots);
    free(p->entries);
    free(p->zin);
    ZSTD_freeDStream(p->zds);
    if (p->aead)
        gnutls_aead_cipher_deinit(p->aead);
    if (p->hash)
        gnutls_hash_deinit(p->hash, NULL);
    if (p->in_fd >= 0)
        close(p->in_fd);
    memset(p, 0, sizeof *p);
    p->in_fd = -1;
}

static int
img_pack_setup(struct img_pack *p, unsigned threads, struct ppf_img_err *err)
{
    uint8_t hdr[IMG_HDR_SIZE];
    uint8_t subkey[PPF_IMG_KEY_SIZE];

    p->h.major = IMG_VERSION_MAJOR;
    p->h.minor = IMG_VERSION_MINOR;
    p->h.chunk_size = p->cs;
    p->h.compression = IMG_COMP_ZSTD;
    if (gnutls_rnd(GNUTLS_RND_NONCE, p->h.salt, sizeof p->h.salt) < 0 ||
        gnutls_hash_init(&p->hash, GNUTLS_DIG_SHA256) < 0)
        return img_fail(err, PPF_IMG_EFAIL, "%s: GnuTLS failed", p->dst);
    if (p->enc) {
        gnutls_datum_t k = { subkey, sizeof subkey };
        int rc;

        p->h.flags = IMG_FLAG_ENCRYPTED;
        p->h.cipher = IMG_CIPHER_AES256GCM;
        img_key_id(p->o->key, p->h.key_id);
        img_subkey(p->o->key, p->h.salt, subkey);
        rc = gnutls_aead_cipher_init(&p->aead, GNUTLS_CIPHER_AES_256_GCM, &k);
        ppf_img_wipe(subkey, sizeof subkey);
        if (rc < 0)
            return img_fail(err, PPF_IMG_EFAIL, "%s: AES-256-GCM is unavailable: %s",
                            p->dst, gnutls_strerror(rc));
    }
    img_hdr_encode(&p->h, hdr);
    img_hdr_template(hdr, p->aad_hdr);
    p->nslots = 2 * threads;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    if (!p->slots)
        return img_fail_sys(err, ENOMEM, "%s: allocating buffers", p->dst);
    for (unsigned i = 0; i < p->nslots; i++) {
        p->slots[i].plain = malloc(p->cs);
        p->slots[i].stored = malloc(ZSTD_compressBound(p->cs));
        if (!p->slots[i].plain || !p->slots[i].stored)
            return img_fail_sys(err, ENOMEM, "%s: allocating buffers", p->dst);
    }
    if (p->is_zst) {
        p->zds = ZSTD_createDStream();
        p->zin = malloc(ZSTD_DStreamInSize());
        if (!p->zds || !p->zin)
            return img_fail_sys(err, ENOMEM, "%s: allocating a zstd stream", p->dst);
    }
    return 0;
}

static void img_unlink_tmp(char **tmp) { if (*tmp) { unlink(*tmp); free(*tmp); } }
#define CLEANUP_UNLINK __attribute__((cleanup(img_unlink_tmp)))

static int
img_pack_run(struct img_pack *p, unsigned threads, struct ppf_img_err *err)
{
    CLEANUP_FREE pthread_t *tids = calloc(threads, sizeof *tids);
    unsigned started = 0;
    int rc;

    if (!tids)
        return img_fail_sys(err, ENOMEM, "%s: starting workers", p->dst);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (; started < threads; started++) {
        int e = pthread_create(&tids[started], NULL, img_pack_worker, p);
        if (e) {
            img_fail_sys(err, e, "%s: starting a worker thread", p->dst);
            img_pack_fail(p, err);
            break;
        }
    }
    rc = started == threads ? img_pack_loop(p, err) : -1;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    return rc;
}

int
ppf_img_pack(const char *src, const char *dst, const struct ppf_img_pack_opts *opts,
             struct ppf_img_err *err)
{
    static const struct ppf_img_pack_opts defaults;
    const struct ppf_img_pack_opts *o = opts ? opts : &defaults;
    CLEANUP_UNLINK char *tmp = NULL;
    CLEANUP_UNLINK char *raw_tmp = NULL;
    CLEANUP_CLOSE int fd = -1;
    __attribute__((cleanup(img_pack_free))) struct img_pack p;
    uint8_t magic[8] = { 0 };
    size_t got;
    struct stat st;
    unsigned threads = o->threads ? o->threads : 1;
    int rc;

    img_err_clear(err);
    memset(&p, 0, sizeof p);
    p.in_fd = -1;
    p.src_name = src;
    p.dst = dst;
    p.o = o;
    p.cs = o->chunk_size ? o->chunk_size : PPF_IMG_CHUNK_DEFAULT;
    p.level = o->level ? o->level : 3;
    p.enc = o->key != NULL;
    if (p.cs < PPF_IMG_CHUNK_MIN || p.cs > PPF_IMG_CHUNK_MAX || (p.cs & (p.cs - 1)))
        return img_fail(err, PPF_IMG_EUSAGE, "chunk size %" PRIu32 " is not a power of two "
                        "from 64 KiB to 64 MiB", p.cs);
    if (p.level < ZSTD_minCLevel() || p.level > ZSTD_maxCLevel())
        return img_fail(err, PPF_IMG_EUSAGE, "zstd level %d is outside %d..%d", p.level,
                        ZSTD_minCLevel(), ZSTD_maxCLevel());
    if (threads > PPF_IMG_THREADS_MAX)
        threads = PPF_IMG_THREADS_MAX;
    if (img_check_dst(dst, o->overwrite, err) < 0)
        return -1;

    p.in_fd = open(src, O_RDONLY | O_CLOEXEC);
    if (p.in_fd < 0 || fstat(p.in_fd, &st) < 0)
        return img_fail_sys(err, errno, "%s: cannot open the input", src);
    if (img_read_full(p.in_fd, magic, sizeof magic, 0, src, &got, err) < 0)
        return -1;
    if (memcmp(magic, "QFI\xfb", 4) == 0) {
        /* qcow2: qemu-img writes a sparse raw copy beside dst, packed as raw. */
        CLEANUP_CLOSE int rfd = img_tmp_create(dst, 0600, &raw_tmp, err);
        char *argv[] = { (char *)img_qemu_img(), "convert", "-q", "-f", "qcow2", "-O", "raw",
                         (char *)src, raw_tmp, NULL };

        close(p.in_fd);
        p.in_fd = -1;
        if (rfd < 0 || img_run(argv, err) < 0)
            return -1;
        p.in_fd = open(raw_tmp, O_RDONLY | O_CLOEXEC);
        if (p.in_fd < 0 || fstat(p.in_fd, &st) < 0)
            return img_fail_sys(err, errno, "%s: reading qemu-img's output", src);
    } else if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
        p.is_zst = 1;
    } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        return img_fail(err, PPF_IMG_EUSAGE, "%s: not a regular file or block device", src);
    }
    if (!p.is_zst) {
        off_t end = lseek(p.in_fd, 0, SEEK_END);
        if (end < 0)
            return img_fail_sys(err, errno, "%s: finding its size", src);
        p.in_size = end;
    }

    rc = img_pack_setup(&p, threads, err);
    if (rc == 0) {
        fd = img_tmp_create(dst, 0644, &tmp, err);
        p.out_fd = fd;
        p.out_off = IMG_HDR_SIZE;
        rc = fd < 0 ? -1 : img_pack_run(&p, threads, err);
    }
    if (rc == 0)
        rc = img_pack_finish(&p, err);
    if (rc == 0)
        rc = img_commit(fd, tmp, dst, o->overwrite, 0, err);
    if (rc == 0) {
        free(tmp);
        tmp = NULL;
    }
    return rc;
}

/* libppfimage: the .ppfi image format (schemas/ppfi-format.md) and the
 * preparation pipeline that turns a stored image into a disk QEMU can open:
 * fetch (local file, file:// or https://), AES-256-GCM, zstd, sparse fill.
 * Used by the peripheral's prefetch pipeline, the qemu hook's host-side
 * fallback and ppf-image.
 *
 * Errors: every function that can fail takes a struct ppf_img_err *, fills
 * it with a one-line message that names the image and what to do, and
 * returns -1 (or NULL).  The library never prints and never logs; keys
 * never appear in a message.
 */
#ifndef PPF_IMAGE_H
#define PPF_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define PPF_IMG_KEY_SIZE 32
#define PPF_IMG_KEY_ID_SIZE 16
#define PPF_IMG_DIGEST_SIZE 32
#define PPF_IMG_CHUNK_MIN (64u * 1024)
#define PPF_IMG_CHUNK_MAX (64u * 1024 * 1024)
#define PPF_IMG_CHUNK_DEFAULT (1024u * 1024)
#define PPF_IMG_THREADS_MAX 64

/* Error classes; ppf-image maps them to its exit status. */
enum ppf_img_errc {
    PPF_IMG_OK = 0,
    PPF_IMG_EFAIL = 1,      /* anything else (unsupported version, qemu-img failed, ...) */
    PPF_IMG_EUSAGE = 2,     /* bad argument from the caller */
    PPF_IMG_EBAD = 3,       /* corrupt, truncated, tampered with, or the wrong key */
    PPF_IMG_EIO = 4,        /* reading, writing or fetching failed (incl. a full disk) */
    PPF_IMG_ECANCELED = 5,  /* the caller's cancel flag was raised */
};

struct ppf_img_err {
    enum ppf_img_errc code;
    int sys_errno;          /* errno behind an EIO, else 0 */
    char msg[512];
};

struct ppf_img;

/* What ppf_img_info() tells about an open image. */
struct ppf_img_info {
    unsigned version_major, version_minor;
    uint64_t size;              /* logical size in bytes */
    uint32_t chunk_size;
    uint64_t chunk_count;
    uint64_t zero_chunks;       /* chunks not stored (all zeros) */
    uint64_t stored_bytes;      /* sum of the stored chunk lengths */
    uint64_t file_size;         /* size of the .ppfi itself */
    int encrypted;
    int authenticated;          /* header and table authenticated with the key */
    const char *compression;    /* "zstd" */
    const char *cipher;         /* "none" or "aes-256-gcm" */
    uint8_t key_id[PPF_IMG_KEY_ID_SIZE];
    uint8_t digest[PPF_IMG_DIGEST_SIZE];  /* SHA-256 of the logical content */
};

/* Options of ppf_img_open() for https:// sources; all may be NULL/0. */
struct ppf_img_open_opts {
    const char *ca_file;        /* PEM bundle of trusted CAs (default: the system's) */
    const char *pinned_pubkey;  /* curl's "sha256//BASE64" or a PEM/DER file */
    long timeout_s;             /* connect timeout and stall limit (default 30) */
    unsigned retries;           /* attempts per range after the first (default 3) */
    int allow_no_key;           /* open an encrypted image without its key: info only */
};

/* progress(opaque, done, total): bytes of logical content finished so far.
 * Called from the thread that called ppf_img_unpack/pack/verify, at most
 * about five times a second and once at the end. */
typedef void (*ppf_img_progress_fn)(void *opaque, uint64_t done, uint64_t total);

enum ppf_img_format { PPF_IMG_FORMAT_RAW = 0, PPF_IMG_FORMAT_QCOW2 = 1 };

struct ppf_img_unpack_opts {
    unsigned threads;           /* worker threads (0 = 1) */
    enum ppf_img_format format;
    int overwrite;              /* replace an existing dst (default: refuse) */
    int no_sync;                /* skip the fsync before the rename (scratch output only) */
    int verify_digest;          /* also check the content SHA-256 (serial; slower) */
    ppf_img_progress_fn progress;
    void *opaque;
    const int *cancel;          /* polled between chunks; non-zero stops with ECANCELED */
};

struct ppf_img_pack_opts {
    const uint8_t *key;         /* PPF_IMG_KEY_SIZE bytes, or NULL for a public image */
    int level;                  /* zstd level (0 = 3) */
    uint32_t chunk_size;        /* power of two in [CHUNK_MIN, CHUNK_MAX] (0 = default) */
    unsigned threads;           /* worker threads (0 = 1) */
    int overwrite;
    ppf_img_progress_fn progress;
    void *opaque;
    const int *cancel;
};

/* Reads a 32-byte key from path into key.  Refuses a file that is not a
 * regular file, is readable or writable by group or others, or is not
 * exactly 32 bytes.  0 or -1. */
int ppf_img_key_load(const char *path, uint8_t key[PPF_IMG_KEY_SIZE], struct ppf_img_err *err);
/* Overwrites n bytes at p with zeros in a way the compiler keeps. */
void ppf_img_wipe(void *p, size_t n);

/* Opens an image: source is a path, file:///ABS or https://HOST/.../X.ppfi.
 * key: PPF_IMG_KEY_SIZE bytes (copied; the caller may wipe its copy) or
 * NULL for a public image.  Reads and checks the header and the chunk
 * table (an encrypted image is authenticated here, and a wrong key is
 * reported as such); opts may be NULL.  On success *out owns the image. */
int ppf_img_open(const char *source, const uint8_t *key, const struct ppf_img_open_opts *opts,
                 struct ppf_img **out, struct ppf_img_err *err);
void ppf_img_info(const struct ppf_img *img, struct ppf_img_info *info);
/* The name used in messages (the source as given). */
const char *ppf_img_name(const struct ppf_img *img);
/* Writes the image's content to dst (through dst's directory's
 * DST.tmp.XXXXXX, renamed into place once every chunk verified; on any
 * error nothing is left behind). */
int ppf_img_unpack(struct ppf_img *img, const char *dst, const struct ppf_img_unpack_opts *opts,
                   struct ppf_img_err *err);
/* Reads, authenticates and decompresses every chunk and checks the content
 * digest, writing nothing.  threads/progress/cancel are taken from opts
 * (which may be NULL). */
int ppf_img_verify(struct ppf_img *img, const struct ppf_img_unpack_opts *opts,
                   struct ppf_img_err *err);
void ppf_img_close(struct ppf_img *img);

/* Packs src (raw, a .zst stream or qcow2, told apart by their magic) into
 * the image dst. */
int ppf_img_pack(const char *src, const char *dst, const struct ppf_img_pack_opts *opts,
                 struct ppf_img_err *err);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void ppf_img_hex(const uint8_t *p, size_t n, char *out);

#endif /* PPF_IMAGE_H */

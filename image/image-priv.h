/* Private to libppfimage: the on-disk layout of .ppfi v1 (byte offsets as
 * in schemas/ppfi-format.md), the parsers the fuzz target drives, the
 * crypto helpers and the byte sources (local file or HTTPS ranges).
 */
#ifndef PPF_IMAGE_PRIV_H
#define PPF_IMAGE_PRIV_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "image/image.h"

/* ppfi-format.md §2: the header, 256 bytes, little-endian. */
#define IMG_MAGIC "PPFI\r\n\x1a\n"
#define IMG_HDR_SIZE 256
#define IMG_VERSION_MAJOR 1
#define IMG_VERSION_MINOR 0
#define IMG_FLAG_ENCRYPTED 0x1u
#define IMG_COMP_ZSTD 1
#define IMG_CIPHER_NONE 0
#define IMG_CIPHER_AES256GCM 1
#define IMG_OFF_DIGEST 96
#define IMG_OFF_TABLE_DIGEST 128
#define IMG_OFF_HDR_DIGEST 160
#define IMG_OFF_HDR_TAG 192
#define IMG_HDR_DIGESTED 160    /* bytes 0..159 are covered by the header digest */
#define IMG_HDR_AUTHED 192      /* bytes 0..191 are the AAD of the header tag */
#define IMG_TAG_SIZE 16
#define IMG_NONCE_SIZE 12
#define IMG_SALT_SIZE 16
/* §3: one table entry, 48 bytes. */
#define IMG_ENTRY_SIZE 48
#define IMG_ENTRY_HEAD 16       /* offset, length, flags: part of a chunk's AAD */
#define IMG_CHUNK_ZERO 0x1u
#define IMG_CHUNK_RAW 0x2u
#define IMG_CHUNK_FLAGS_KNOWN (IMG_CHUNK_ZERO | IMG_CHUNK_RAW)
/* Limits that keep memory bounded whatever a header says. */
#define IMG_MAX_CHUNKS (1ull << 22)
#define IMG_MAX_SIZE (1ull << 50)
#define IMG_HDR_TAG_INDEX UINT64_MAX    /* nonce index of the header tag */

struct img_hdr {
    unsigned major, minor;
    uint32_t flags;
    uint64_t size;
    uint32_t chunk_size;
    unsigned chunk_shift;
    unsigned compression, cipher;
    uint64_t chunk_count;
    uint64_t table_off, table_len;
    uint8_t key_id[PPF_IMG_KEY_ID_SIZE];
    uint8_t salt[IMG_SALT_SIZE];
    uint8_t digest[32];
    uint8_t table_digest[32];
    uint8_t tag[IMG_TAG_SIZE];
};

struct img_entry {
    uint64_t off;
    uint32_t len;
    uint32_t flags;
    uint8_t check[32];      /* SHA-256 of the stored bytes, or the GCM tag + zeros */
};

/* Error helpers (image/err.c). */
int img_fail(struct ppf_img_err *err, enum ppf_img_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int img_fail_sys(struct ppf_img_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void img_err_clear(struct ppf_img_err *err);

/* Format (image/format.c).  name is used in messages only. */
int img_hdr_decode(const char *name, const uint8_t buf[IMG_HDR_SIZE], uint64_t file_size,
                   struct img_hdr *h, struct ppf_img_err *err);
void img_hdr_encode(const struct img_hdr *h, uint8_t buf[IMG_HDR_SIZE]);
int img_table_decode(const char *name, const struct img_hdr *h, const uint8_t *table,
                     uint64_t file_size, struct img_entry *entries, uint64_t *stored_bytes,
                     struct ppf_img_err *err);
/* §4: the header template, the header with every field that depends on
 * the content (size, chunk count, table, digests, tag) zeroed. */
void img_hdr_template(const uint8_t hdr[IMG_HDR_SIZE], uint8_t out[IMG_HDR_SIZE]);
void img_entry_encode(const struct img_entry *e, uint8_t buf[IMG_ENTRY_SIZE]);
void img_le16(uint8_t *p, uint16_t v);
void img_le32(uint8_t *p, uint32_t v);
void img_le64(uint8_t *p, uint64_t v);
uint32_t img_rd32(const uint8_t *p);
uint64_t img_rd64(const uint8_t *p);
int img_is_zero(const uint8_t *p, size_t n);

/* Crypto (image/format.c). */
void img_key_id(const uint8_t key[PPF_IMG_KEY_SIZE], uint8_t id[PPF_IMG_KEY_ID_SIZE]);
/* Per-image key: HMAC-SHA-256(key, "ppfi v1 chunk key" || salt). */
void img_subkey(const uint8_t key[PPF_IMG_KEY_SIZE], const uint8_t salt[IMG_SALT_SIZE],
                uint8_t out[PPF_IMG_KEY_SIZE]);
void img_nonce(const uint8_t salt[IMG_SALT_SIZE], uint64_t index, uint8_t nonce[IMG_NONCE_SIZE]);
/* The header tag over hdr[0..IMG_HDR_AUTHED); 0 or -1 (gnutls failure). */
int img_hdr_tag(gnutls_aead_cipher_hd_t aead, const uint8_t salt[IMG_SALT_SIZE],
                const uint8_t *hdr, uint8_t tag[IMG_TAG_SIZE]);
int img_sha256(const void *p, size_t n, uint8_t out[32]);

/* Byte sources (image/source.c): a local file or an HTTPS URL. */
struct img_src;
struct img_conn;            /* per-thread connection (HTTPS) or nothing (file) */
int img_src_open(const char *source, const struct ppf_img_open_opts *opts,
                 struct img_src **out, struct ppf_img_err *err);
uint64_t img_src_size(const struct img_src *s);
const char *img_src_name(const struct img_src *s);
struct img_conn *img_conn_new(struct img_src *s, struct ppf_img_err *err);
void img_conn_free(struct img_conn *c);
/* Reads exactly len bytes at off; a short file is EBAD (truncated). */
int img_src_read(struct img_src *s, struct img_conn *c, void *buf, size_t len, uint64_t off,
                 struct ppf_img_err *err);
void img_src_close(struct img_src *s);

/* Files (image/fsutil.c). */
/* Creates DST.tmp.XXXXXX (mode 0600, then mode); returns its fd and name in *tmp. */
int img_tmp_create(const char *dst, mode_t mode, char **tmp, struct ppf_img_err *err);
/* fsync (unless no_sync), rename tmp to dst (not over an existing dst unless
 * overwrite), fsync the directory. */
int img_commit(int fd, const char *tmp, const char *dst, int overwrite, int no_sync,
               struct ppf_img_err *err);
int img_check_dst(const char *dst, int overwrite, struct ppf_img_err *err);
/* Writes len bytes at off, reporting a full disk clearly. */
int img_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name,
                   struct ppf_img_err *err);
/* Runs argv (no shell); 0 if it exited 0, else fills err with its name. */
int img_run(char *const argv[], struct ppf_img_err *err);
const char *img_qemu_img(void);
double img_now(void);

/* Scoped frees for the types above. */
static inline void img_cleanup_src(struct img_src **s) { img_src_close(*s); }
static inline void img_cleanup_conn(struct img_conn **c) { img_conn_free(*c); }
#define CLEANUP_SRC __attribute__((cleanup(img_cleanup_src)))
#define CLEANUP_CONN __attribute__((cleanup(img_cleanup_conn)))

#endif /* PPF_IMAGE_PRIV_H */

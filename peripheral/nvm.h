/* The NVM pattern store: one file in the state dir holding the engine's
 * learned state.  Layout (little endian):
 *
 *     "PPFN"  u32 version  u64 payload-length  payload  u32 crc32(all before)
 *
 * Written to a temporary file in the same directory, fsync'd, renamed over
 * the old store, and the directory fsync'd: a crash leaves the old or the
 * new store, never a mix.  A store that is truncated, fails its checksum or
 * has another version is reported, renamed aside (PATH.corrupt-N) and
 * treated as empty: never a crash.  The payload codec (writer/reader
 * below) checks every length against what is left.
 */
#ifndef PPF_PERIPHERAL_NVM_H
#define PPF_PERIPHERAL_NVM_H

#include <stddef.h>
#include <stdint.h>

#define PPF_NVM_MAGIC   "PPFN"
#define PPF_NVM_VERSION 1u
#define PPF_NVM_HEADER  16u     /* magic, version, length */
#define PPF_NVM_TRAILER 4u      /* crc32 */

/* A growable payload buffer.  A failed allocation sets error and makes
 * every later put a no-op, so callers check once at the end. */
struct ppf_nvm_writer {
    uint8_t *buf;
    size_t len, cap;
    size_t limit;               /* 0 = none; going past it sets error */
    int error;
};

void ppf_nvm_writer_init(struct ppf_nvm_writer *w, size_t limit);
void ppf_nvm_writer_free(struct ppf_nvm_writer *w);
void ppf_nvm_put_u8(struct ppf_nvm_writer *w, uint8_t v);
void ppf_nvm_put_u32(struct ppf_nvm_writer *w, uint32_t v);
void ppf_nvm_put_u64(struct ppf_nvm_writer *w, uint64_t v);
void ppf_nvm_put_f64(struct ppf_nvm_writer *w, double v);
void ppf_nvm_put_bytes(struct ppf_nvm_writer *w, const void *p, size_t n);
/* u32 length then the bytes (no NUL). */
void ppf_nvm_put_str(struct ppf_nvm_writer *w, const char *s);

/* A bounds-checked cursor over an untrusted payload.  Every get returns 0,
 * or -1 and sets error once the payload is short or a value is bad. */
struct ppf_nvm_reader {
    const uint8_t *buf;
    size_t len, pos;
    int error;
};

void ppf_nvm_reader_init(struct ppf_nvm_reader *r, const void *buf, size_t len);
int ppf_nvm_get_u8(struct ppf_nvm_reader *r, uint8_t *v);
int ppf_nvm_get_u32(struct ppf_nvm_reader *r, uint32_t *v);
int ppf_nvm_get_u64(struct ppf_nvm_reader *r, uint64_t *v);
/* Rejects NaN and infinities. */
int ppf_nvm_get_f64(struct ppf_nvm_reader *r, double *v);
/* A string of 1..cap-1 bytes without NUL into buf, NUL-terminated. */
int ppf_nvm_get_str(struct ppf_nvm_reader *r, char *buf, size_t cap);
/* A count that must be at most max and, at min_each bytes per item,
 * fit in what is left (so a forged count cannot make us allocate). */
int ppf_nvm_get_count(struct ppf_nvm_reader *r, uint32_t max, size_t min_each, uint32_t *v);

/* CRC-32 (IEEE 802.3, as zlib's crc32). */
uint32_t ppf_nvm_crc32(const void *buf, size_t len);

/* Writes the store atomically (see above); the whole file must fit in
 * max_bytes (0 = no bound).  0, or -1 (reported; the old store is kept;
 * errno E2BIG if it does not fit). */
int ppf_nvm_write_file(const char *path, const void *payload, size_t len,
                       uint64_t max_bytes);
/* Reads and checks the store.  Returns 0 with a malloc'd *payload (caller
 * frees), 1 if there is no store, 2 if it was corrupt (reported, renamed
 * aside, *payload NULL), -1 on another I/O error (reported). */
int ppf_nvm_read_file(const char *path, uint64_t max_bytes, uint8_t **payload,
                      size_t *len);

#endif /* PPF_PERIPHERAL_NVM_H */

/* The .ppfi v1 layout: encoding and strict decoding of the header and the
 * chunk table, and the key id, per-image key and nonce derivations.  Pure
 * functions over buffers, so the fuzz target (tests/fuzz/fuzz-ppfi.c) and
 * the unit tests drive them without files.  Section numbers refer to
 * schemas/ppfi-format.md.
 */
#include <config.h>

#include <inttypes.h>
#include <string.h>
#include <zstd.h>

#include "image/image-priv.h"

void img_le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
void img_le32(uint8_t *p, uint32_t v) { img_le16(p, v); img_le16(p + 2, v >> 16); }
void img_le64(uint8_t *p, uint64_t v) { img_le32(p, v); img_le32(p + 4, v >> 32); }
static uint16_t img_rd16(const uint8_t *p) { return p[0] | (uint16_t)p[1] << 8; }
uint32_t img_rd32(const uint8_t *p) { return img_rd16(p) | (uint32_t)img_rd16(p + 2) << 16; }
uint64_t img_rd64(const uint8_t *p) { return img_rd32(p) | (uint64_t)img_rd32(p + 4) << 32; }

int
img_is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int
img_sha256(const void *p, size_t n, uint8_t out[32])
{
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) < 0 ? -1 : 0;
}

void
img_key_id(const uint8_t key[PPF_IMG_KEY_SIZE], uint8_t id[PPF_IMG_KEY_ID_SIZE])
{
    static const char label[] = "ppfi v1 key id";
    uint8_t mac[32];

    gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, PPF_IMG_KEY_SIZE, label, sizeof label - 1, mac);
    memcpy(id, mac, PPF_IMG_KEY_ID_SIZE);
}

void
img_subkey(const uint8_t key[PPF_IMG_KEY_SIZE], const uint8_t salt[IMG_SALT_SIZE],
           uint8_t out[PPF_IMG_KEY_SIZE])
{
    static const char label[] = "ppfi v1 chunk key";
    uint8_t msg[sizeof label - 1 + IMG_SALT_SIZE];

    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, salt, IMG_SALT_SIZE);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, PPF_IMG_KEY_SIZE, msg, sizeof msg, out);
}

void
img_nonce(const uint8_t salt[IMG_SALT_SIZE], uint64_t index, uint8_t nonce[IMG_NONCE_SIZE])
{
    memcpy(nonce, salt, 4);
    img_le64(nonce + 4, index);
}

int
img_hdr_tag(gnutls_aead_cipher_hd_t aead, const uint8_t salt[IMG_SALT_SIZE],
            const uint8_t *hdr, uint8_t tag[IMG_TAG_SIZE])
{
    uint8_t nonce[IMG_NONCE_SIZE];
    giovec_t aad = { (void *)hdr, IMG_HDR_AUTHED };
    size_t tag_size = IMG_TAG_SIZE;

    img_nonce(salt, IMG_HDR_TAG_INDEX, nonce);
    return gnutls_aead_cipher_encryptv2(aead, nonce, sizeof nonce, &aad, 1, NULL, 0,
                                        tag, &tag_size) < 0 ? -1 : 0;
}

/* §2.  Fills every field except the two digests and the tag, which the
 * caller computes over the encoded bytes. */
void
img_hdr_encode(const struct img_hdr *h, uint8_t buf[IMG_HDR_SIZE])
{
    memset(buf, 0, IMG_HDR_SIZE);
    memcpy(buf, IMG_MAGIC, 8);
    img_le16(buf + 8, h->major);
    img_le16(buf + 10, h->minor);
    img_le32(buf + 12, h->flags);
    img_le64(buf + 16, h->size);
    img_le32(buf + 24, h->chunk_size);
    buf[28] = h->compression;
    buf[29] = h->cipher;
    img_le64(buf + 32, h->chunk_count);
    img_le64(buf + 40, h->table_off);
    img_le64(buf + 48, h->table_len);
    memcpy(buf + 64, h->key_id, PPF_IMG_KEY_ID_SIZE);
    memcpy(buf + 80, h->salt, IMG_SALT_SIZE);
    memcpy(buf + IMG_OFF_DIGEST, h->digest, 32);
    memcpy(buf + IMG_OFF_TABLE_DIGEST, h->table_digest, 32);
    memcpy(buf + IMG_OFF_HDR_TAG, h->tag, IMG_TAG_SIZE);
}

int
img_hdr_decode(const char *name, const uint8_t buf[IMG_HDR_SIZE], uint64_t file_size,
               struct img_hdr *h, struct ppf_img_err *err)
{
    uint8_t digest[32];
    uint64_t want;

    memset(h, 0, sizeof *h);
    if (memcmp(buf, IMG_MAGIC, 8) != 0)
        return img_fail(err, PPF_IMG_EBAD, "%s: not a ppf image (bad magic): "
                        "pack it with 'ppf-image pack'", name);
    h->major = img_rd16(buf + 8);
    h->minor = img_rd16(buf + 10);
    if (h->major != IMG_VERSION_MAJOR)
        return img_fail(err, PPF_IMG_EFAIL, "%s: image format version %u.%u is not supported "
                        "(this ppf reads %u.x): upgrade ppf", name, h->major, h->minor,
                        IMG_VERSION_MAJOR);
    if (img_sha256(buf, IMG_HDR_DIGESTED, digest) < 0 ||
        memcmp(digest, buf + IMG_OFF_HDR_DIGEST, 32) != 0)
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (digest mismatch): "
                        "fetch or pack the image again", name);
    if (!img_is_zero(buf + 30, 2) || !img_is_zero(buf + 56, 8) ||
        !img_is_zero(buf + IMG_OFF_HDR_TAG + IMG_TAG_SIZE,
                     IMG_HDR_SIZE - IMG_OFF_HDR_TAG - IMG_TAG_SIZE))
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (reserved bytes set)", name);
    h->flags = img_rd32(buf + 12);
    h->size = img_rd64(buf + 16);
    h->chunk_size = img_rd32(buf + 24);
    h->compression = buf[28];
    h->cipher = buf[29];
    h->chunk_count = img_rd64(buf + 32);
    h->table_off = img_rd64(buf + 40);
    h->table_len = img_rd64(buf + 48);
    memcpy(h->key_id, buf + 64, PPF_IMG_KEY_ID_SIZE);
    memcpy(h->salt, buf + 80, IMG_SALT_SIZE);
    memcpy(h->digest, buf + IMG_OFF_DIGEST, 32);
    memcpy(h->table_digest, buf + IMG_OFF_TABLE_DIGEST, 32);
    memcpy(h->tag, buf + IMG_OFF_HDR_TAG, IMG_TAG_SIZE);

    if (h->flags & ~IMG_FLAG_ENCRYPTED)
        return img_fail(err, PPF_IMG_EFAIL, "%s: image uses features this ppf does not know "
                        "(flags 0x%" PRIx32 "): upgrade ppf", name, h->flags);
    if (h->compression != IMG_COMP_ZSTD)
        return img_fail(err, PPF_IMG_EFAIL, "%s: unknown compression %u: upgrade ppf",
                        name, h->compression);
    if (h->cipher > IMG_CIPHER_AES256GCM)
        return img_fail(err, PPF_IMG_EFAIL, "%s: unknown cipher %u: upgrade ppf",
                        name, h->cipher);
    if ((h->cipher == IMG_CIPHER_AES256GCM) != !!(h->flags & IMG_FLAG_ENCRYPTED))
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (cipher and flags disagree)",
                        name);
    if (h->chunk_size < PPF_IMG_CHUNK_MIN || h->chunk_size > PPF_IMG_CHUNK_MAX ||
        (h->chunk_size & (h->chunk_size - 1)))
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (chunk size %" PRIu32
                        " is not a power of two from 64 KiB to 64 MiB)", name, h->chunk_size);
    h->chunk_shift = __builtin_ctz(h->chunk_size);
    if (h->size > IMG_MAX_SIZE)
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (absurd size %" PRIu64 ")",
                        name, h->size);
    want = (h->size + h->chunk_size - 1) >> h->chunk_shift;
    if (h->chunk_count != want)
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (%" PRIu64 " chunks for a "
                        "size that needs %" PRIu64 ")", name, h->chunk_count, want);
    if (h->chunk_count > IMG_MAX_CHUNKS)
        return img_fail(err, PPF_IMG_EBAD, "%s: too many chunks (%" PRIu64 ", at most %llu): "
                        "pack it again with a larger --chunk", name, h->chunk_count,
                        IMG_MAX_CHUNKS);
    if (h->table_len != h->chunk_count * IMG_ENTRY_SIZE || h->table_off < IMG_HDR_SIZE ||
        h->table_off > file_size || h->table_len > file_size - h->table_off)
        return img_fail(err, PPF_IMG_EBAD, "%s: chunk table (%" PRIu64 " bytes at %" PRIu64
                        ") lies outside the file of %" PRIu64 " bytes: the image is truncated "
                        "or corrupt", name, h->table_len, h->table_off, file_size);
    if (!(h->flags & IMG_FLAG_ENCRYPTED) &&
        (!img_is_zero(h->key_id, sizeof h->key_id) || !img_is_zero(h->tag, sizeof h->tag)))
        return img_fail(err, PPF_IMG_EBAD, "%s: header is corrupt (key id in a public image)",
                        name);
    return 0;
}

void
img_hdr_template(const uint8_t hdr[IMG_HDR_SIZE], uint8_t out[IMG_HDR_SIZE])
{
    memcpy(out, hdr, IMG_HDR_SIZE);
    memset(out + 16, 0, 8);
    memset(out + 32, 0, 32);
    memset(out + IMG_OFF_DIGEST, 0, IMG_HDR_SIZE - IMG_OFF_DIGEST);
}

void
img_entry_encode(const struct img_entry *e, uint8_t buf[IMG_ENTRY_SIZE])
{
    img_le64(buf, e->off);
    img_le32(buf + 8, e->len);
    img_le32(buf + 12, e->flags);
    memcpy(buf + 16, e->check, 32);
}

/* §3.  The table's digest is checked first, so a flipped byte is reported
 * as corruption; then every entry is checked against the file. */
int
img_table_decode(const char *name, const struct img_hdr *h, const uint8_t *table,
                 uint64_t file_size, struct img_entry *entries, uint64_t *stored_bytes,
                 struct ppf_img_err *err)
{
    uint8_t digest[32];
    uint64_t stored = 0;
    int enc = !!(h->flags & IMG_FLAG_ENCRYPTED);

    if (img_sha256(table, h->table_len, digest) < 0 ||
        memcmp(digest, h->table_digest, 32) != 0)
        return img_fail(err, PPF_IMG_EBAD, "%s: chunk table is corrupt (digest mismatch): "
                        "fetch or pack the image again", name);
    for (uint64_t i = 0; i < h->chunk_count; i++) {
        const uint8_t *p = table + i * IMG_ENTRY_SIZE;
        struct img_entry *e = &entries[i];
        uint64_t plain = h->chunk_size;

        if (i == h->chunk_count - 1 && (h->size & (h->chunk_size - 1)))
            plain = h->size & (h->chunk_size - 1);
        e->off = img_rd64(p);
        e->len = img_rd32(p + 8);
        e->flags = img_rd32(p + 12);
        memcpy(e->check, p + 16, 32);
        if (e->flags & ~IMG_CHUNK_FLAGS_KNOWN)
            goto bad;
        if (e->flags & IMG_CHUNK_ZERO) {
            if (e->flags != IMG_CHUNK_ZERO || e->off || e->len ||
                !img_is_zero(e->check, sizeof e->check))
                goto bad;
            continue;
        }
        if (e->len == 0 || e->off < IMG_HDR_SIZE || e->off > file_size ||
            e->len > file_size - e->off)
            return img_fail(err, PPF_IMG_EBAD, "%s: chunk %" PRIu64 " (%" PRIu32 " bytes at %"
                            PRIu64 ") lies outside the file of %" PRIu64 " bytes: the image "
                            "is truncated or corrupt", name, i, e->len, e->off, file_size);
        if ((e->flags & IMG_CHUNK_RAW) ? e->len != plain : e->len > ZSTD_compressBound(plain))
            goto bad;
        if (enc && !img_is_zero(e->check + IMG_TAG_SIZE, 32 - IMG_TAG_SIZE))
            goto bad;
        stored += e->len;
        continue;
    bad:
        return img_fail(err, PPF_IMG_EBAD, "%s: chunk table is corrupt (entry %" PRIu64 ")",
                        name, i);
    }
    if (stored_bytes)
        *stored_bytes = stored;
    return 0;
}

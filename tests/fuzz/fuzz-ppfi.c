/* libFuzzer target for the .ppfi header and chunk-table parsers
 * (image/format.c).  Each input is a whole image file.  It is parsed as it
 * is, and then once more with its header and table digests recomputed, so
 * that the fuzzer gets past the SHA-256 checks into the field and entry
 * validation.  Built by tests/test-image-fuzz.sh with
 * clang -fsanitize=fuzzer,address,undefined.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image-priv.h"

static void
parse(const uint8_t *data, size_t size)
{
    struct img_hdr h;
    struct ppf_img_err err = { 0 };
    struct img_entry *entries;
    uint64_t stored;

    if (img_hdr_decode("fuzz", data, size, &h, &err) < 0)
        return;
    /* img_hdr_decode guarantees the table lies inside the input. */
    entries = calloc(h.chunk_count ? h.chunk_count : 1, sizeof *entries);
    if (!entries)
        abort();
    memset(&err, 0, sizeof err);
    if (img_table_decode("fuzz", &h, data + h.table_off, size, entries, &stored, &err) == 0) {
        for (uint64_t i = 0; i < h.chunk_count; i++)
            if (!(entries[i].flags & IMG_CHUNK_ZERO) &&
                (entries[i].off < IMG_HDR_SIZE || entries[i].off + entries[i].len > size))
                abort();        /* the parser promised every chunk is inside the file */
    }
    free(entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    uint64_t off, len;

    if (size < IMG_HDR_SIZE)
        return 0;
    parse(data, size);

    copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    off = img_rd64(copy + 40);
    len = img_rd64(copy + 48);
    if (off <= size && len <= size - off)
        img_sha256(copy + off, len, copy + IMG_OFF_TABLE_DIGEST);
    img_sha256(copy, IMG_HDR_DIGESTED, copy + IMG_OFF_HDR_DIGEST);
    parse(copy, size);
    free(copy);
    return 0;
}

/* libFuzzer target for the policy parser and the device codec: any input
 * is parsed (without host file checks); a policy that parses is encoded,
 * decoded and emitted; and the input is also fed to the decoder as an
 * untrusted CONFIGURE payload.  Built and run by tests/test-policy-fuzz.sh
 * when clang is available.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t blob[PPF_POLICY_MAX_ENCODED];
    struct ppf_policy_diags d;
    struct ppf_policy *p = NULL, *q = NULL;
    char err[256];
    size_t len;
    FILE *null;

    ppf_policy_diags_init(&d);
    if (ppf_policy_parse_buffer_flags("fuzz", (const char *)data, size,
                                      PPF_POLICY_NO_FILE_CHECKS, &p, &d) == 0) {
        if (ppf_policy_encode(p, blob, sizeof blob, &len) != 0)
            abort();            /* a checked policy always fits */
        if (ppf_policy_decode(blob, len, &q, err, sizeof err) != 0)
            abort();            /* and always decodes */
        null = fopen("/dev/null", "w");
        if (null) {
            ppf_policy_emit_yaml(q, null);
            ppf_policy_emit_json(q, null);
            fclose(null);
        }
        ppf_policy_free(q);
        ppf_policy_free(p);
    } else if (p || d.n == 0) {
        abort();                /* failure must say why and return nothing */
    }
    ppf_policy_diags_free(&d);

    /* The same bytes as a device blob: as they are, and as the body of a
     * blob with a valid header and checksum (so the decoder's checks past
     * the checksum get fuzzed too). */
    q = NULL;
    if (ppf_policy_decode(data, size, &q, err, sizeof err) == 0)
        ppf_policy_free(q);
    if (size % 4 == 0 && size <= sizeof blob - 16) {
        uint32_t version = PPF_POLICY_VERSION, crc;
        uint16_t hdr[2] = { PPF_POLICY_ATTR_END, 4 };

        memcpy(blob, PPF_POLICY_MAGIC, 4);
        memcpy(blob + 4, &version, 4);
        memcpy(blob + 8, data, size);
        crc = ppf_policy_crc32(blob, size + 8);
        memcpy(blob + 8 + size, hdr, 4);
        memcpy(blob + 12 + size, &crc, 4);
        q = NULL;
        if (ppf_policy_decode(blob, size + 16, &q, err, sizeof err) == 0)
            ppf_policy_free(q);
    }
    return 0;
}

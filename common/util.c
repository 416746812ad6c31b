/* Strict number and size parsing for command-line options (see util.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

static int
parse_digits(const char *s, uint64_t *out, const char **end)
{
    unsigned long long v;
    char *e;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &e, 10);
    if (errno)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

int
ppf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (parse_digits(s, &v, &end) < 0 || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
ppf_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    static const struct { const char *suffix; unsigned shift; } units[] = {
        { "", 0 }, { "B", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
        { "G", 30 }, { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
    };
    const char *end;
    uint64_t v;

    if (parse_digits(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
            return -1;
        v <<= units[i].shift;
        if (v < min || v > max)
            return -1;
        *out = v;
        return 0;
    }
    return -1;
}

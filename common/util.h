/* Small parsing helpers shared by the command-line programs: strict
 * numbers and sizes, so that "12abc" or "-1" is an error, never 12 or huge.
 */
#ifndef PPF_UTIL_H
#define PPF_UTIL_H

#include <stdint.h>

/* Parses a decimal integer in [min, max]; 0 or -1. */
int ppf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Parses a size: digits with an optional suffix K, KiB, M, MiB, G, GiB
 * (binary multiples) or B; result in [min, max]; 0 or -1. */
int ppf_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif /* PPF_UTIL_H */

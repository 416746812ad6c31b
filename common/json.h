/* Minimal JSON writer for --json output: correct string escaping and
 * commas, streaming to a FILE.  Not a parser.
 */
#ifndef PPF_JSON_H
#define PPF_JSON_H

#include <stdint.h>
#include <stdio.h>

struct ppf_json {
    FILE *fp;
    int depth;
    int need_comma[32];
};

void ppf_json_init(struct ppf_json *j, FILE *fp);
void ppf_json_begin_object(struct ppf_json *j, const char *key);  /* key NULL at top or in arrays */
void ppf_json_end_object(struct ppf_json *j);
void ppf_json_begin_array(struct ppf_json *j, const char *key);
void ppf_json_end_array(struct ppf_json *j);
void ppf_json_str(struct ppf_json *j, const char *key, const char *v);
void ppf_json_u64(struct ppf_json *j, const char *key, uint64_t v);
void ppf_json_double(struct ppf_json *j, const char *key, double v);
void ppf_json_bool(struct ppf_json *j, const char *key, int v);
/* Writes s as a JSON string literal (with quotes). */
void ppf_json_write_string(FILE *fp, const char *s);

#endif /* PPF_JSON_H */

/* Minimal streaming JSON writer (see json.h). */
#include <config.h>

#include <stdio.h>

#include "common/json.h"

void
ppf_json_init(struct ppf_json *j, FILE *fp)
{
    j->fp = fp;
    j->depth = 0;
    j->need_comma[0] = 0;
}

void
ppf_json_write_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\t': fputs("\\t", fp); break;
        case '\r': fputs("\\r", fp); break;
        default:
            if (*p < 0x20)
                fprintf(fp, "\\u%04x", *p);
            else
                fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

static void
json_key(struct ppf_json *j, const char *key)
{
    if (j->need_comma[j->depth])
        fputc(',', j->fp);
    j->need_comma[j->depth] = 1;
    if (key) {
        ppf_json_write_string(j->fp, key);
        fputc(':', j->fp);
    }
}

static void
json_open(struct ppf_json *j, const char *key, char c)
{
    json_key(j, key);
    fputc(c, j->fp);
    if (j->depth < (int)(sizeof j->need_comma / sizeof j->need_comma[0]) - 1)
        j->depth++;
    j->need_comma[j->depth] = 0;
}

static void
json_close(struct ppf_json *j, char c)
{
    fputc(c, j->fp);
    if (j->depth > 0)
        j->depth--;
    if (j->depth == 0)
        fputc('\n', j->fp);
}

void ppf_json_begin_object(struct ppf_json *j, const char *key) { json_open(j, key, '{'); }
void ppf_json_end_object(struct ppf_json *j) { json_close(j, '}'); }
void ppf_json_begin_array(struct ppf_json *j, const char *key) { json_open(j, key, '['); }
void ppf_json_end_array(struct ppf_json *j) { json_close(j, ']'); }

void
ppf_json_str(struct ppf_json *j, const char *key, const char *v)
{
    json_key(j, key);
    ppf_json_write_string(j->fp, v);
}

void
ppf_json_u64(struct ppf_json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->fp, "%llu", (unsigned long long)v);
}

void
ppf_json_double(struct ppf_json *j, const char *key, double v)
{
    json_key(j, key);
    fprintf(j->fp, "%.6g", v);
}

void
ppf_json_bool(struct ppf_json *j, const char *key, int v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->fp);
}

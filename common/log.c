/* Logging for ppf daemons (see log.h).  Each line carries a UTC timestamp,
 * the program, the level and the module; written with one write(2) so
 * lines from several threads never interleave.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_prog = "ppf";
static enum ppf_log_level log_level = PPF_LOG_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
ppf_log_init(const char *prog, enum ppf_log_level level)
{
    log_prog = prog;
    log_level = level;
}

int
ppf_log_level_parse(const char *s)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void
ppf_log(enum ppf_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, saved = errno;

    if (level > log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: %s: %s: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, log_prog, (int)getpid(),
                 level_names[level], module);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        errno = saved;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
    }
    n = (int)strnlen(line, sizeof line - 2);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

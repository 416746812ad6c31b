/* Logging for ppf daemons: one line per event on stderr, with a level and a
 * module name, filterable by level (libvirt-style: logs are separate from
 * the errors a command reports to its caller).
 */
#ifndef PPF_LOG_H
#define PPF_LOG_H

enum ppf_log_level { PPF_LOG_ERROR = 0, PPF_LOG_WARN, PPF_LOG_INFO, PPF_LOG_DEBUG };

/* prog: program name printed in each line; level: lines above it are dropped. */
void ppf_log_init(const char *prog, enum ppf_log_level level);
void ppf_log(enum ppf_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
int ppf_log_level_parse(const char *s);

#define ppf_err(mod, ...)   ppf_log(PPF_LOG_ERROR, mod, __VA_ARGS__)
#define ppf_warn(mod, ...)  ppf_log(PPF_LOG_WARN, mod, __VA_ARGS__)
#define ppf_info(mod, ...)  ppf_log(PPF_LOG_INFO, mod, __VA_ARGS__)
#define ppf_debug(mod, ...) ppf_log(PPF_LOG_DEBUG, mod, __VA_ARGS__)

#endif /* PPF_LOG_H */

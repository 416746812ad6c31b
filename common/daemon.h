/* What every ppf daemon (ppf-peripheral, ppfd) does at start: create its
 * state directory, detach with a readiness pipe so that the starting
 * command returns only once the daemon is serving, write a pidfile
 * atomically, and optionally die with its parent (tests).
 */
#ifndef PPF_COMMON_DAEMON_H
#define PPF_COMMON_DAEMON_H

#include <sys/types.h>

/* mkdir -p; the last component gets mode.  0 or -1 with errno. */
int ppf_mkdir_p(const char *path, mode_t mode);
/* Writes "PID\n" to path via a temporary file and rename; 0 or -1
 * (reported through ppf_err with module "main"). */
int ppf_write_pidfile(const char *path);
/* Forks; the parent waits until the child calls ppf_daemon_ready (exit 0)
 * or dies (exit 1) and never returns.  The child gets a new session,
 * /dev/null as stdin/stdout, stderr appended to log_file (created with its
 * directory; NULL: /dev/null), and *ready_fd to pass to ppf_daemon_ready.
 * Returns 0 in the child or -1 (reported). */
int ppf_daemonize(int *ready_fd, const char *log_file);
/* Tells the waiting parent that we are serving; closes ready_fd.  A
 * negative fd (foreground) is ignored. */
void ppf_daemon_ready(int ready_fd);
/* SIGTERM when the parent dies; returns -1 if it is already gone. */
int ppf_exit_with_parent(pid_t parent);

#endif /* PPF_COMMON_DAEMON_H */

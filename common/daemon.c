/* Daemon start-up helpers shared by ppf-peripheral and ppfd (daemon.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"

int
ppf_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];

    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int
ppf_write_pidfile(const char *path)
{
    char tmp[PATH_MAX], buf[32];
    int fd, n;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        ppf_err("main", "pidfile path %s is too long", path);
        return -1;
    }
    n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, buf, n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
        ppf_err("main", "cannot write pidfile %s: %m", path);
        if (fd >= 0)
            unlink(tmp);
        return -1;
    }
    return 0;
}

int
ppf_daemonize(int *ready_fd, const char *log_file)
{
    int p[2], nul, logfd = -1;
    pid_t pid;
    char ok;

    *ready_fd = -1;
    /* once detached, the log goes to a file: keeping the caller's stderr
     * would hold its pipe open for as long as we run */
    if (log_file) {
        char dir[PATH_MAX], *slash;

        snprintf(dir, sizeof dir, "%s", log_file);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            ppf_mkdir_p(dir, 0755);
        }
        logfd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (logfd < 0) {
            ppf_err("main", "cannot open log file %s: %m; choose one with --log-file",
                    log_file);
            return -1;
        }
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        ppf_err("main", "pipe: %m");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        ppf_err("main", "fork: %m");
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        _exit(read(p[0], &ok, 1) == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, STDIN_FILENO);
        dup2(nul, STDOUT_FILENO);
        dup2(logfd >= 0 ? logfd : nul, STDERR_FILENO);
        close(nul);
    }
    if (logfd >= 0)
        close(logfd);
    *ready_fd = p[1];
    return 0;
}

void
ppf_daemon_ready(int ready_fd)
{
    if (ready_fd < 0)
        return;
    if (write(ready_fd, "1", 1) != 1)
        ppf_warn("main", "could not tell the starting process we are ready");
    close(ready_fd);
}

int
ppf_exit_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    return getppid() == parent ? 0 : -1;
}

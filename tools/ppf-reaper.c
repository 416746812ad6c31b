/* ppf-reaper: run one command as our child and be the subreaper for everything it leaves
 * behind.  Hosts without systemd have a PID 1 that reaps orphans late (1-2 s here), and
 * libvirtd waits for each QEMU it kills to vanish, so `virsh destroy` pays that delay; run
 * libvirtd in the foreground under ppf-reaper and it drops to QEMU's own exit time.  We
 * call prctl(PR_SET_CHILD_SUBREAPER), fork and exec CMD, forward SIGTERM, SIGINT, SIGHUP
 * (and SIGQUIT, SIGUSR1, SIGUSR2) to it, reap every child with waitpid(-1) as soon as
 * SIGCHLD arrives, and once CMD is gone keep reaping for up to 2 s before exiting with
 * CMD's status (128 + N if a signal N killed it).  Processes still running then (QEMU
 * outlives libvirtd by design) pass to the next subreaper or PID 1; they are never
 * signalled.  Standalone: no ppf libraries, so it can start before anything else.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "ppf-reaper"
#define DRAIN_MS 2000

enum { EXIT_USAGE = 2, EXIT_NOEXEC = 126, EXIT_NOTFOUND = 127 };

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

static const char *pidfile;
static pid_t my_pid;

static void
usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROG " [--pidfile FILE] [--exit-with-parent] -- CMD [ARGS...]\n"
                "Run CMD as a child and reap every process it leaves behind (child subreaper).\n"
                "\n"
                "  -p, --pidfile FILE     write ppf-reaper's own PID to FILE (removed at exit)\n"
                "  -e, --exit-with-parent get SIGTERM (forwarded to CMD) when our parent dies\n"
                "  -h, --help             show this help and exit\n"
                "  -V, --version          show the version and exit\n"
                "\n"
                "SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to CMD.\n"
                "Once CMD has exited, remaining children are reaped for up to 2 s; then\n"
                "ppf-reaper exits with CMD's status (128+N if signal N killed it; 126/127\n"
                "if CMD could not be executed; 2 for usage errors).\n");
}

static void
remove_pidfile(void)
{
    char buf[32];
    ssize_t n;
    int fd;

    if (!pidfile)
        return;
    /* Remove it only while it still names us: a successor may have replaced it. */
    fd = open(pidfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (strtol(buf, NULL, 10) == (long)my_pid)
        unlink(pidfile);
}

static int
write_pidfile(const char *path)
{
    char tmp[4096], buf[32];
    int fd, len;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)my_pid) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    len = snprintf(buf, sizeof buf, "%ld\n", (long)my_pid);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0) {
        int e = errno ? errno : EIO;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
status_to_exit(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

/* Reaps every child that has exited.  Sets *cmd_status when CMD is among them.
 * Returns 1 if children remain, 0 if there are none left (ECHILD). */
static int
reap_all(pid_t cmd, int *cmd_done, int *cmd_status)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid > 0) {
            if (pid == cmd) {
                *cmd_done = 1;
                *cmd_status = status;
            }
            continue;
        }
        if (pid == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return 0; /* ECHILD */
    }
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"pidfile", required_argument, NULL, 'p'},
        {"exit-with-parent", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    sigset_t waitset, oldset;
    int exit_with_parent = 0, cmd_done = 0, cmd_status = 0, c;
    pid_t parent, cmd;
    long long deadline = 0;

    /* '+': stop at the first non-option, so CMD's own options are never ours. */
    while ((c = getopt_long(argc, argv, "+p:ehV", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!*optarg) {
                fprintf(stderr, PROG ": --pidfile needs a file name\n");
                return EXIT_USAGE;
            }
            pidfile = optarg;
            break;
        case 'e':
            exit_with_parent = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " %s\n", PACKAGE_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try '" PROG " --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, PROG ": no command given\n"
                             "Try '" PROG " --help' for more information.\n");
        return EXIT_USAGE;
    }

    my_pid = getpid();
    parent = getppid();

    /* Block the signals we handle before anything can deliver them; the child restores
     * the original mask before exec. */
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&waitset, forwarded[i]);
    if (sigprocmask(SIG_BLOCK, &waitset, &oldset) < 0) {
        perror(PROG ": sigprocmask");
        return 1;
    }

    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        perror(PROG ": prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    if (exit_with_parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0) {
            perror(PROG ": prctl(PR_SET_PDEATHSIG)");
            return 1;
        }
        if (getppid() != parent) { /* the parent died before prctl took effect */
            fprintf(stderr, PROG ": parent already gone, not starting %s\n", argv[optind]);
            return 1;
        }
    }

    if (pidfile && write_pidfile(pidfile) < 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", pidfile, strerror(errno));
        return 1;
    }

    cmd = fork();
    if (cmd < 0) {
        perror(PROG ": fork");
        remove_pidfile();
        return 1;
    }
    if (cmd == 0) {
        /* The child: default dispositions and the caller's mask, then CMD. */
        for (size_t i = 0; i < N_FORWARDED; i++)
            signal(forwarded[i], SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_SETMASK, &oldset, NULL);
        execvp(argv[optind], &argv[optind]);
        fprintf(stderr, PROG ": cannot execute %s: %s\n", argv[optind], strerror(errno));
        _exit(errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
    }

    for (;;) {
        siginfo_t si;
        int sig, more;

        more = reap_all(cmd, &cmd_done, &cmd_status);
        if (cmd_done) {
            if (!more)
                break;
            if (!deadline)
                deadline = now_ms() + DRAIN_MS;
        }

        if (!cmd_done) {
            sig = sigwaitinfo(&waitset, &si);
        } else {
            long long left = deadline - now_ms();
            struct timespec ts;

            if (left <= 0)
                break;
            ts.tv_sec = left / 1000;
            ts.tv_nsec = (left % 1000) * 1000000L;
            sig = sigtimedwait(&waitset, &si, &ts);
            if (sig < 0 && errno == EAGAIN)
                break;
        }
        if (sig < 0 || sig == SIGCHLD)
            continue; /* EINTR, or a child to reap at the top of the loop */
        if (!cmd_done) {
            if (kill(cmd, sig) < 0 && errno != ESRCH)
                fprintf(stderr, PROG ": cannot forward signal %d: %s\n", sig, strerror(errno));
        } else if (sig == SIGTERM || sig == SIGINT) {
            break; /* asked to stop while draining: stop draining */
        }
    }

    remove_pidfile();
    return status_to_exit(cmd_status);
}

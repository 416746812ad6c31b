/* The emulated card's transport (see emu_server.h and
 * schemas/device-protocol.md §7).  The window is a sealed memfd: clients
 * cannot shrink it under the peripheral.  The socket file's permissions are
 * the access control (root, and the ppf group when it exists): whoever can
 * connect can submit commands.  One thread accepts clients, hands each the
 * window and a client id, and reclaims a client's pairs when it hangs up.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/futex.h"
#include "common/log.h"
#include "peripheral/emu_server.h"

#define MAX_CLIENTS 1024

struct emu_client {
    int fd;
    uint32_t id;
};

struct emu_server {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    int bound;                  /* we created the socket file: remove it at the end */
    int mem_fd;
    int epoll_fd;
    int stop_pipe[2];
    uint8_t *win;
    uint64_t win_size;
    struct ppf_core *core;
    pthread_t thread;
    int thread_started;
    uint32_t next_id;
    struct emu_client clients[MAX_CLIENTS];
    uint32_t nclients;
};

static void
emu_raise(void *opaque, uint32_t qid)
{
    struct emu_server *srv = opaque;
    struct ppf_qp_regs *qr = (struct ppf_qp_regs *)(srv->win + sizeof(struct ppf_regs)) + qid;

    ppf_futex_wake(&qr->irq_count, INT_MAX);
}

struct ppf_core_irq_ops
emu_server_irq_ops(struct emu_server *srv)
{
    struct ppf_core_irq_ops ops = { .raise = emu_raise, .opaque = srv };
    return ops;
}

void *
emu_server_window(struct emu_server *srv)
{
    return srv->win;
}

/* Is a live peripheral already listening at path?  1 yes, 0 no (stale or
 * absent), -1 the path is something else. */
static int
socket_in_use(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode))
        return -1;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return r == 0 ? 1 : 0;
}

static int
mkdir_parent(const char *path)
{
    char dir[PATH_MAX], *p;

    snprintf(dir, sizeof dir, "%s", path);
    p = strrchr(dir, '/');
    if (!p || p == dir)
        return 0;
    *p = '\0';
    for (p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int
emu_server_new(const char *path, const char *group, uint64_t win_size,
               struct emu_server **srvp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct emu_server *srv;
    struct group *gr = NULL;
    mode_t old_umask;
    int r;

    *srvp = NULL;
    if (strlen(path) >= sizeof sa.sun_path) {
        ppf_err("emu", "device path %s is longer than %zu bytes: choose a shorter --dev",
                path, sizeof sa.sun_path - 1);
        return -1;
    }
    srv = calloc(1, sizeof *srv);
    if (!srv) {
        ppf_err("emu", "out of memory");
        return -1;
    }
    srv->listen_fd = srv->mem_fd = srv->epoll_fd = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    srv->win = MAP_FAILED;
    srv->next_id = 1;
    snprintf(srv->path, sizeof srv->path, "%s", path);
    *srvp = srv;

    srv->mem_fd = memfd_create("ppf-window", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (srv->mem_fd < 0 || ftruncate(srv->mem_fd, (off_t)win_size) < 0 ||
        fcntl(srv->mem_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        ppf_err("emu", "cannot create the %llu-byte device window: %m",
                (unsigned long long)win_size);
        goto fail;
    }
    srv->win = mmap(NULL, win_size, PROT_READ | PROT_WRITE, MAP_SHARED, srv->mem_fd, 0);
    if (srv->win == MAP_FAILED) {
        ppf_err("emu", "cannot map the device window: %m");
        goto fail;
    }
    srv->win_size = win_size;

    if (mkdir_parent(path) < 0) {
        ppf_err("emu", "cannot create the directory of %s: %m", path);
        goto fail;
    }
    r = socket_in_use(path);
    if (r == 1) {
        ppf_err("emu", "%s: a peripheral is already running there; stop it first or "
                "choose another --dev", path);
        goto fail;
    }
    if (r < 0) {
        ppf_err("emu", "%s exists and is not a ppf device socket; remove it or choose "
                "another --dev", path);
        goto fail;
    }
    unlink(path);               /* stale socket of a dead peripheral */

    srv->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (srv->listen_fd < 0) {
        ppf_err("emu", "socket: %m");
        goto fail;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    old_umask = umask(0177);    /* the socket is born 0600 */
    r = bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old_umask);
    if (r < 0) {
        ppf_err("emu", "cannot listen at %s: %m", path);
        goto fail;
    }
    srv->bound = 1;
    if (group && *group)
        gr = getgrnam(group);
    if (gr) {
        if (chown(path, (uid_t)-1, gr->gr_gid) < 0 || chmod(path, 0660) < 0)
            ppf_warn("emu", "%s: cannot open to group %s: %m; root only", path, group);
    }
    if (listen(srv->listen_fd, 64) < 0) {
        ppf_err("emu", "listen on %s: %m", path);
        goto fail;
    }
    ppf_info("emu", "device window of %llu bytes at %s (mode %s%s)",
             (unsigned long long)win_size, path, gr ? "0660, group " : "0600",
             gr ? group : "");
    return 0;

fail:
    emu_server_free(srv);
    *srvp = NULL;
    return -1;
}

static void
client_accept(struct emu_server *srv)
{
    struct ppf_emu_hello hello = { .magic = PPF_MAGIC, .version = PPF_VERSION };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = &hello, .iov_len = sizeof hello };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *cm;
    struct epoll_event ev;
    struct ucred cred;
    socklen_t credlen = sizeof cred;
    int fd;

    fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (srv->nclients == MAX_CLIENTS) {
        ppf_warn("emu", "refusing a client: %d clients attached already", MAX_CLIENTS);
        close(fd);
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0)
        cred.pid = 0;
    hello.client_id = srv->next_id++;
    if (srv->next_id == 0)
        srv->next_id = 1;
    hello.window_size = srv->win_size;
    memset(u.buf, 0, sizeof u.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &srv->mem_fd, sizeof(int));
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof hello) {
        ppf_warn("emu", "client pid %d went away while attaching", (int)cred.pid);
        close(fd);
        return;
    }
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = ((uint64_t)hello.client_id << 32) | (uint32_t)fd;
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        ppf_warn("emu", "epoll_ctl: %m");
        close(fd);
        return;
    }
    srv->clients[srv->nclients].fd = fd;
    srv->clients[srv->nclients].id = hello.client_id;
    srv->nclients++;
    ppf_core_set_clients(srv->core, srv->nclients);
    ppf_debug("emu", "client %u attached (pid %d)", hello.client_id, (int)cred.pid);
}

static void
client_gone(struct emu_server *srv, int fd, uint32_t id)
{
    for (uint32_t i = 0; i < srv->nclients; i++) {
        if (srv->clients[i].fd != fd)
            continue;
        srv->clients[i] = srv->clients[--srv->nclients];
        break;
    }
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    ppf_core_reclaim_owner(srv->core, id);
    ppf_core_set_clients(srv->core, srv->nclients);
    ppf_debug("emu", "client %u detached; its queue pairs are reset", id);
}

static void *
server_thread(void *arg)
{
    struct emu_server *srv = arg;
    struct epoll_event evs[64];
    char junk[64];

    for (;;) {
        int n = epoll_wait(srv->epoll_fd, evs, 64, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            ppf_err("emu", "epoll_wait: %m");
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;

            if (d == UINT64_MAX)
                return NULL;    /* stop pipe */
            if (d == UINT64_MAX - 1) {
                client_accept(srv);
                continue;
            }
            /* a client never sends anything: data or hang-up both end it */
            if (evs[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR) ||
                recv((int)(uint32_t)d, junk, sizeof junk, MSG_DONTWAIT) <= 0)
                client_gone(srv, (int)(uint32_t)d, (uint32_t)(d >> 32));
            else {
                ppf_warn("emu", "client %u sent data on the attach socket; disconnecting",
                         (uint32_t)(d >> 32));
                client_gone(srv, (int)(uint32_t)d, (uint32_t)(d >> 32));
            }
        }
    }
}

int
emu_server_start(struct emu_server *srv, struct ppf_core *core)
{
    struct epoll_event ev;

    srv->core = core;
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epoll_fd < 0 || pipe2(srv->stop_pipe, O_CLOEXEC) < 0) {
        ppf_err("emu", "cannot set up the client loop: %m");
        return -1;
    }
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX - 1;
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0)
        goto fail;
    ev.data.u64 = UINT64_MAX;
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->stop_pipe[0], &ev) < 0)
        goto fail;
    if (pthread_create(&srv->thread, NULL, server_thread, srv) != 0)
        goto fail;
    srv->thread_started = 1;
    return 0;
fail:
    ppf_err("emu", "cannot start the client loop: %m");
    return -1;
}

void
emu_server_free(struct emu_server *srv)
{
    if (!srv)
        return;
    if (srv->thread_started) {
        if (write(srv->stop_pipe[1], "x", 1) < 0)
            ppf_warn("emu", "cannot stop the client loop: %m");
        pthread_join(srv->thread, NULL);
    }
    for (uint32_t i = 0; i < srv->nclients; i++)
        close(srv->clients[i].fd);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->bound)
        unlink(srv->path);
    if (srv->epoll_fd >= 0)
        close(srv->epoll_fd);
    if (srv->stop_pipe[0] >= 0)
        close(srv->stop_pipe[0]);
    if (srv->stop_pipe[1] >= 0)
        close(srv->stop_pipe[1]);
    if (srv->win != MAP_FAILED)
        munmap(srv->win, srv->win_size);
    if (srv->mem_fd >= 0)
        close(srv->mem_fd);
    free(srv);
}

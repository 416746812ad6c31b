/* The "emu" backend of libppf: attaches to the emulated peripheral
 * (schemas/device-protocol.md §7).  Connect to the device socket, receive
 * the window's memfd, map it; the connection stays open as the liveness
 * channel both ways.  Interrupts and doorbell wake-ups are futex words in
 * the window.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver/driver.h"

#define EMU_ATTACH_TIMEOUT_MS 5000

static int
emu_connect(struct ppf_dev *dev, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return ppf_set_error("emu:%s: path longer than %zu bytes", path,
                             sizeof sa.sun_path - 1);
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    dev->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (dev->fd < 0)
        return ppf_set_error("emu:%s: socket: %s", path, strerror(errno));
    if (connect(dev->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return 0;
    switch (errno) {
    case ENOENT:
    case ECONNREFUSED:
        errno = ENODEV;
        return ppf_set_error("no ppf peripheral at %s: start one with "
                             "'ppf-peripheral --emulate' or pick one with --device", path);
    case EACCES:
    case EPERM:
        return ppf_set_error("%s: permission denied: run as root or as a member of "
                             "group ppf", path);
    default:
        return ppf_set_error("%s: cannot connect to the peripheral: %s", path,
                             strerror(errno));
    }
}

static int
emu_receive(struct ppf_dev *dev, struct ppf_emu_hello *hello, int *memfd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = hello, .iov_len = sizeof *hello };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct pollfd pfd = { .fd = dev->fd, .events = POLLIN };
    struct cmsghdr *cm;
    ssize_t n;

    *memfd = -1;
    if (poll(&pfd, 1, EMU_ATTACH_TIMEOUT_MS) != 1) {
        errno = ETIMEDOUT;
        return ppf_set_error("%s: the peripheral did not answer within %d ms; is it "
                             "stuck? restart ppf-peripheral", dev->path,
                             EMU_ATTACH_TIMEOUT_MS);
    }
    n = recvmsg(dev->fd, &msg, MSG_CMSG_CLOEXEC);
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(memfd, CMSG_DATA(cm), sizeof(int));
    if (n != (ssize_t)sizeof *hello || *memfd < 0 || (msg.msg_flags & MSG_CTRUNC) ||
        hello->magic != PPF_MAGIC) {
        if (*memfd >= 0)
            close(*memfd);
        *memfd = -1;
        errno = EPROTO;
        return ppf_set_error("%s: not a ppf peripheral (bad attach message); check --device",
                             dev->path);
    }
    if (PPF_VERSION_GET_MAJOR(hello->version) != PPF_VERSION_MAJOR || hello->client_id == 0) {
        close(*memfd);
        *memfd = -1;
        errno = EPROTO;
        return ppf_set_error("%s: peripheral speaks protocol %u.%u, this host %u.%u: "
                             "install matching ppf versions", dev->path,
                             hello->version >> 16, hello->version & 0xffff,
                             PPF_VERSION_MAJOR, PPF_VERSION_MINOR);
    }
    return 0;
}

int
ppf_emu_open(struct ppf_dev *dev, const char *path)
{
    struct ppf_emu_hello hello;
    struct stat st;
    int memfd;
    void *win;

    snprintf(dev->path, sizeof dev->path, "%s", path);
    if (emu_connect(dev, path) < 0 || emu_receive(dev, &hello, &memfd) < 0)
        return -1;
    /* the window must be as large as announced, or mapping it could fault */
    if (fstat(memfd, &st) < 0 || (uint64_t)st.st_size != hello.window_size ||
        hello.window_size < sizeof(struct ppf_regs) || hello.window_size > (1ull << 34)) {
        close(memfd);
        errno = EPROTO;
        return ppf_set_error("%s: window size does not match what the peripheral "
                             "announced; restart ppf-peripheral", path);
    }
    win = mmap(NULL, hello.window_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (win == MAP_FAILED)
        return ppf_set_error("%s: cannot map the device window: %s", path, strerror(errno));
    dev->win = win;
    dev->win_size = hello.window_size;
    dev->owner = hello.client_id;
    return ppf_dev_load_geometry(dev);
}

static int
emu_alive(struct ppf_dev *dev)
{
    struct pollfd pfd = { .fd = dev->fd, .events = POLLIN | POLLRDHUP };

    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLRDHUP | POLLERR))) {
        errno = ENODEV;
        return ppf_set_error("%s: the peripheral went away; restart ppf-peripheral",
                             dev->path);
    }
    return 0;
}

static int
emu_irq_wait(struct ppf_dev *dev, struct ppf_qp *qp, uint32_t irq_seen, int timeout_ms)
{
    ppf_futex_wait(&qp->regs->irq_count, irq_seen, timeout_ms);
    return 0;
}

static void
emu_doorbell(struct ppf_dev *dev)
{
    /* Dekker with the device: our tail store is ordered before this load
     * by the caller's seq_cst fence. */
    if (__atomic_load_n(&dev->regs->dev_sleeping, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&dev->regs->db_seq, 1, __ATOMIC_SEQ_CST);
        ppf_futex_wake(&dev->regs->db_seq, 1);
    }
}

static void
emu_free_wait(struct ppf_dev *dev, uint32_t seen, int timeout_ms)
{
    ppf_futex_wait(&dev->regs->free_seq, seen, timeout_ms);
}


const struct ppf_backend_ops ppf_emu_ops = {
    .name = "emu",
    .irq_wait = emu_irq_wait,
    .doorbell = emu_doorbell,
    .free_wait = emu_free_wait,
    .reclaim = NULL,            /* the device reclaims on hang-up */
    .alive = emu_alive,
    .close = ppf_dev_unmap,
};

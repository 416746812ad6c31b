/* The "uio" backend of libppf: a real ppf card bound to the Linux UIO
 * framework (schemas/device-protocol.md §7).  Discovery reads
 * $PPF_SYSFS_ROOT/class/uio/uioN/{name,version,maps/map0/{size,offset}},
 * the window is map0 of $PPF_DEV_ROOT/uioN mapped at offset 0 (UIO selects
 * map N with offset N * page size), and interrupts are the UIO protocol: a
 * 4-byte write of 1 re-enables the line, a 4-byte read blocks until the
 * next interrupt and returns the running count.  There is one line per
 * device; the per-pair irq_count in the window says which pair it was for.
 * Both roots can point at a fake tree, which is how tests/unit/test-uio.c
 * drives this exact code.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "driver/driver.h"

#define UIO_MAX_WINDOW (1ull << 34)

int ppf_uio_irq_open_node(const char *path);

static const char *
uio_root(const char *env, const char *dflt)
{
    const char *s = getenv(env);

    return s && *s ? s : dflt;
}

/* Reads a small sysfs attribute into buf without the trailing newline. */
static int
uio_read_attr(const char *path, char *buf, size_t len)
{
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int
uio_read_u64(const char *path, uint64_t *v)
{
    char buf[64], *end;

    if (uio_read_attr(path, buf, sizeof buf) < 0)
        return -1;
    errno = 0;
    *v = strtoull(buf, &end, 0);
    if (errno || end == buf || *end) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* uioN from a node path such as /dev/uio3 (any directory). */
static int
uio_index(const char *node, unsigned *idx)
{
    const char *base = strrchr(node, '/');
    char *end;
    unsigned long v;

    base = base ? base + 1 : node;
    if (strncmp(base, "uio", 3) != 0 || !base[3])
        return -1;
    errno = 0;
    v = strtoul(base + 3, &end, 10);
    if (errno || *end || v > 65535)
        return -1;
    *idx = (unsigned)v;
    return 0;
}

int
ppf_uio_find(char *node, size_t nodelen)
{
    const char *sys = uio_root(PPF_ENV_SYSFS_ROOT, "/sys");
    const char *devroot = uio_root(PPF_ENV_DEV_ROOT, "/dev");
    char dir[PATH_MAX], path[PATH_MAX + 300], name[64];
    struct dirent *de;
    unsigned best = UINT32_MAX, idx;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/class/uio", sys);
    d = opendir(dir);
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (uio_index(de->d_name, &idx) < 0)
            continue;
        snprintf(path, sizeof path, "%s/%s/name", dir, de->d_name);
        if (uio_read_attr(path, name, sizeof name) < 0 || strcmp(name, PPF_UIO_NAME) != 0)
            continue;
        if (idx < best)         /* the lowest-numbered card, stably */
            best = idx;
    }
    closedir(d);
    if (best == UINT32_MAX)
        return -1;
    snprintf(node, nodelen, "%s/uio%u", devroot, best);
    return 0;
}

int
ppf_uio_open(struct ppf_dev *dev, const char *devnode)
{
    const char *sys = uio_root(PPF_ENV_SYSFS_ROOT, "/sys");
    char base[PATH_MAX], path[PATH_MAX + 32], name[64];
    uint64_t size, offset;
    unsigned idx;
    struct stat st;
    void *win;
    int mfd;

    snprintf(dev->path, sizeof dev->path, "%s", devnode);
    if (uio_index(devnode, &idx) < 0) {
        errno = EINVAL;
        return ppf_set_error("uio:%s: not a UIO device node; use uio:/dev/uioN", devnode);
    }
    snprintf(base, sizeof base, "%s/class/uio/uio%u", sys, idx);
    snprintf(path, sizeof path, "%s/name", base);
    if (uio_read_attr(path, name, sizeof name) < 0) {
        errno = ENODEV;
        return ppf_set_error("%s: no UIO device uio%u (%s is missing); is the card "
                             "bound to uio_pci_generic?", devnode, idx, path);
    }
    if (strcmp(name, PPF_UIO_NAME) != 0) {
        errno = ENODEV;
        return ppf_set_error("%s: UIO device uio%u is '%s', not a ppf card; pick another "
                             "with --device", devnode, idx, name);
    }
    snprintf(path, sizeof path, "%s/maps/map0/size", base);
    if (uio_read_u64(path, &size) < 0) {
        errno = ENODEV;
        return ppf_set_error("%s: cannot read %s: the card exposes no register window",
                             devnode, path);
    }
    snprintf(path, sizeof path, "%s/maps/map0/offset", base);
    if (uio_read_u64(path, &offset) < 0)
        offset = 0;
    if (size < sizeof(struct ppf_regs) || size > UIO_MAX_WINDOW || offset != 0 ||
        size % (uint64_t)sysconf(_SC_PAGESIZE)) {
        errno = EPROTO;
        return ppf_set_error("%s: map0 of uio%u has size %" PRIu64 " offset %" PRIu64
                             ": not a ppf window", devnode, idx, size, offset);
    }

    mfd = ppf_uio_irq_open_node(devnode);
    if (mfd < 0) {
        if (errno == EACCES || errno == EPERM)
            return ppf_set_error("%s: permission denied: run as root or as a member of "
                                 "group ppf", devnode);
        return ppf_set_error("%s: cannot open: %s", devnode, strerror(errno));
    }
    dev->fd = mfd;
    /* map N lives at offset N * page size of the node */
    {
        CLEANUP_CLOSE int fd = open(devnode, O_RDWR | O_CLOEXEC);

        if (fd < 0)
            return ppf_set_error("%s: cannot open for mapping: %s", devnode, strerror(errno));
        /* a regular file standing in for the BAR must be large enough */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < size) {
            errno = EPROTO;
            return ppf_set_error("%s: shorter than map0 (%jd < %" PRIu64 " bytes)",
                                 devnode, (intmax_t)st.st_size, size);
        }
        win = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (win == MAP_FAILED)
        return ppf_set_error("%s: cannot map the register window: %s", devnode,
                             strerror(errno));
    dev->win = win;
    dev->win_size = size;
    dev->owner = (uint32_t)getpid();
    dev->owner_start = ppf_proc_start_time(getpid());
    return ppf_dev_load_geometry(dev);
}

/* The 4-byte write of 1 that re-enables the line.  A socket stands in for
 * the line in tests: send() keeps a closed peer from raising SIGPIPE. */
static int
uio_irq_enable(int fd, const uint32_t *one)
{
    ssize_t n = send(fd, one, sizeof *one, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n < 0 && errno == ENOTSOCK)
        n = write(fd, one, sizeof *one);
    if (n < 0 && errno == EAGAIN)
        return 0;
    return n == (ssize_t)sizeof *one ? 0 : -1;
}

static int
uio_irq_wait(struct ppf_dev *dev, struct ppf_qp *qp, uint32_t irq_seen, int timeout_ms)
{
    struct pollfd pfd = { .fd = dev->fd, .events = POLLIN };
    uint32_t one = 1, count;
    int r = 0;

    /* one line for the whole device: one sleeper per process at a time;
     * the others see the pair's count move when they get the lock */
    pthread_mutex_lock(&dev->lock);
    if (__atomic_load_n(&qp->regs->irq_count, __ATOMIC_ACQUIRE) != irq_seen)
        goto out;
    if (uio_irq_enable(dev->fd, &one) < 0) {
        if (errno == EPIPE || errno == EIO || errno == ENODEV)
            errno = ENODEV;
        r = ppf_set_error("%s: cannot enable interrupts: %s; the card went away",
                          dev->path, strerror(errno));
        goto out;
    }
    if (__atomic_load_n(&qp->regs->irq_count, __ATOMIC_ACQUIRE) != irq_seen)
        goto out;
    if (poll(&pfd, 1, timeout_ms) < 0) {
        if (errno != EINTR)
            r = ppf_set_error("%s: poll: %s", dev->path, strerror(errno));
        goto out;
    }
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
        errno = ENODEV;
        r = ppf_set_error("%s: the card went away (interrupt line closed)", dev->path);
        goto out;
    }
    if (pfd.revents & POLLIN) {
        ssize_t n = read(dev->fd, &count, sizeof count);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            errno = ENODEV;
            r = ppf_set_error("%s: the card went away (interrupt read failed)", dev->path);
        }
    }
out:
    pthread_mutex_unlock(&dev->lock);
    return r;
}

static void
uio_doorbell(struct ppf_dev *dev)
{
    /* the card watches the SQ tails in its own memory: nothing to do */
}

static void
uio_free_wait(struct ppf_dev *dev, uint32_t seen, int timeout_ms)
{
    struct timespec ts = { 0, 5 * 1000000L };

    if (timeout_ms <= 0 || __atomic_load_n(&dev->regs->free_seq, __ATOMIC_ACQUIRE) != seen)
        return;
    if (timeout_ms < 5)
        ts.tv_nsec = timeout_ms * 1000000L;
    nanosleep(&ts, NULL);
}

/* Owners are pids here: a claim whose process is gone, or whose pid now
 * belongs to a newer process (start time differs), goes back to the card
 * for reset (§3.2). */
static void
uio_reclaim(struct ppf_dev *dev)
{
    for (uint32_t q = 0; q < dev->num_qps; q++) {
        struct ppf_qp_regs *qr = (struct ppf_qp_regs *)(dev->win + dev->qp_regs_off) + q;
        uint64_t c = __atomic_load_n(&qr->claim, __ATOMIC_ACQUIRE);
        uint64_t start, now;
        uint32_t pid = (uint32_t)PPF_CLAIM_OWNER(c);

        if (PPF_CLAIM_STATE(c) != PPF_CLAIM_CLAIMED || pid == 0 || pid > INT32_MAX)
            continue;
        start = __atomic_load_n(&qr->owner_start, __ATOMIC_ACQUIRE);
        if (kill((pid_t)pid, 0) == 0 || errno == EPERM) {
            now = ppf_proc_start_time((int)pid);
            /* start is written just after the claim: 0 means "not yet" */
            if (start == 0 || now == 0 || now == start)
                continue;
        }
        __atomic_compare_exchange_n(&qr->claim, &c,
                                    PPF_CLAIM_MAKE(PPF_CLAIM_RESET, PPF_CLAIM_GEN(c), pid),
                                    0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
}

static int
uio_alive(struct ppf_dev *dev)
{
    uint32_t st = __atomic_load_n(&dev->regs->status, __ATOMIC_ACQUIRE);

    if (st & (PPF_STS_SHUTDOWN | PPF_STS_FATAL) || !(st & PPF_STS_READY)) {
        errno = ENODEV;
        return ppf_set_error("%s: the card is %s; reset it or reload its driver", dev->path,
                             st & PPF_STS_FATAL ? "in a fatal state" : "not ready");
    }
    return 0;
}


const struct ppf_backend_ops ppf_uio_ops = {
    .name = "uio",
    .irq_wait = uio_irq_wait,
    .doorbell = uio_doorbell,
    .free_wait = uio_free_wait,
    .reclaim = uio_reclaim,
    .alive = uio_alive,
    .close = ppf_dev_unmap,
};

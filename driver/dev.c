/* libppf device handles: open a device by spec (auto, emu:PATH,
 * uio:/dev/uioN), check the window it maps, close it; plus the helpers the
 * backends share (per-thread error messages, futex words, process start
 * times).  The queue-pair logic is in qp.c, the kernel mechanisms in emu.c
 * and uio.c.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "driver/driver.h"

static __thread char errbuf[512];

int
ppf_set_error(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    errno = saved ? saved : EINVAL;
    return -1;
}

const char *
ppf_error(void)
{
    return errbuf[0] ? errbuf : "no error";
}

uint64_t
ppf_proc_start_time(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    ssize_t n;
    int fd, field;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* the command name may hold spaces and ')': skip to the last ')' */
    p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* field 3 (state) follows; start time is field 22 */
    for (field = 2; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &start) != 1)
        return 0;
    return start;
}

void
ppf_dev_unmap(struct ppf_dev *dev)
{
    if (dev->win)
        munmap(dev->win, dev->win_size);
    dev->win = NULL;
    dev->regs = NULL;
    if (dev->fd >= 0)
        close(dev->fd);
    dev->fd = -1;
}

int
ppf_dev_load_geometry(struct ppf_dev *dev)
{
    char why[256];
    struct ppf_regs copy, layout;

    if (dev->win_size < sizeof copy) {
        errno = EPROTO;
        return ppf_set_error("%s: window of %llu bytes is too small to be a ppf device",
                             dev->path, (unsigned long long)dev->win_size);
    }
    /* copy once: the device may change the page under us */
    memcpy(&copy, dev->win, sizeof copy);
    if (ppf_window_check(&copy, dev->win_size, why, sizeof why) < 0) {
        errno = EPROTO;
        return ppf_set_error("%s: %s", dev->path, why);
    }
    dev->regs = (struct ppf_regs *)dev->win;
    ppf_window_layout(&layout, copy.num_qps, copy.qsize, copy.slots, copy.slot_size,
                      copy.metrics_size);
    dev->qp_regs_off = layout.qp_regs_off;
    dev->sq_off = layout.sq_off;
    dev->cq_off = layout.cq_off;
    dev->data_off = layout.data_off;
    dev->num_qps = copy.num_qps;
    dev->qsize = copy.qsize;
    dev->slots = copy.slots;
    dev->slot_size = copy.slot_size;
    dev->features = copy.features;
    dev->version = copy.version;
    dev->device_pid = copy.device_pid;
    if (!(__atomic_load_n(&dev->regs->status, __ATOMIC_ACQUIRE) & PPF_STS_READY)) {
        errno = ENODEV;
        return ppf_set_error("%s: the peripheral is not ready (status 0x%x); "
                             "restart ppf-peripheral", dev->path, copy.status);
    }
    return 0;
}

static int
dev_open_backend(struct ppf_dev *dev, const struct ppf_backend_ops *ops, const char *path)
{
    int r;

    dev->ops = ops;
    r = ops == &ppf_emu_ops ? ppf_emu_open(dev, path) : ppf_uio_open(dev, path);
    if (r < 0)
        ops->close(dev);
    return r;
}

int
ppf_dev_open(const char *spec, struct ppf_dev **devp)
{
    struct ppf_dev *dev;
    char node[PATH_MAX];
    const char *env;
    int r;

    *devp = NULL;
    errbuf[0] = '\0';
    if (!spec || !*spec || strcmp(spec, "auto") == 0) {
        env = getenv(PPF_ENV_DEVICE);
        if (env && *env && strcmp(env, "auto") != 0)
            spec = env;
        else if (ppf_uio_find(node, sizeof node) == 0)
            spec = NULL;             /* use node below */
        else
            spec = "emu:" PPF_DEFAULT_EMU_PATH;
    }

    dev = calloc(1, sizeof *dev);
    if (!dev)
        return ppf_set_error("out of memory");
    dev->fd = -1;
    pthread_mutex_init(&dev->lock, NULL);

    if (!spec)
        r = dev_open_backend(dev, &ppf_uio_ops, node);
    else if (strncmp(spec, "emu:", 4) == 0 && spec[4])
        r = dev_open_backend(dev, &ppf_emu_ops, spec + 4);
    else if (strncmp(spec, "uio:", 4) == 0 && spec[4])
        r = dev_open_backend(dev, &ppf_uio_ops, spec + 4);
    else {
        errno = EINVAL;
        r = ppf_set_error("device '%s' is not a device spec: use auto, emu:PATH or "
                          "uio:/dev/uioN", spec);
    }
    if (r < 0) {
        int saved = errno;
        pthread_mutex_destroy(&dev->lock);
        free(dev);
        errno = saved;
        return -1;
    }
    *devp = dev;
    return 0;
}

void
ppf_dev_close(struct ppf_dev *dev)
{
    if (!dev)
        return;
    while (dev->qps)
        ppf_qp_release(dev->qps);
    dev->ops->close(dev);
    pthread_mutex_destroy(&dev->lock);
    free(dev);
}

void
ppf_dev_get_info(struct ppf_dev *dev, struct ppf_dev_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->backend, sizeof info->backend, "%s", dev->ops->name);
    snprintf(info->path, sizeof info->path, "%s", dev->path);
    info->version = dev->version;
    info->features = dev->features;
    info->num_qps = dev->num_qps;
    info->qsize = dev->qsize;
    info->slots = dev->slots;
    info->slot_size = dev->slot_size;
    info->device_pid = dev->device_pid;
}

void *
ppf_dev_window(struct ppf_dev *dev, uint64_t *size)
{
    if (size)
        *size = dev->win_size;
    return dev->win;
}

int
ppf_dev_check_alive(struct ppf_dev *dev)
{
    uint32_t st = __atomic_load_n(&dev->regs->status, __ATOMIC_ACQUIRE);

    if (st & (PPF_STS_SHUTDOWN | PPF_STS_FATAL)) {
        errno = ENODEV;
        return ppf_set_error("%s: the peripheral %s; restart ppf-peripheral", dev->path,
                             st & PPF_STS_FATAL ? "failed" : "shut down");
    }
    return dev->ops->alive(dev);
}

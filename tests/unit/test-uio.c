/* Unit tests of the uio backend against a fake sysfs/devfs tree.
 *
 * The tree lives in a temporary directory: sys/class/uio/uioN/{name,
 * version,maps/map0/{size,offset}} and dev/uioN, a regular file standing in
 * for the card's BAR.  The "card" is the real command processor
 * (peripheral/core.c) serving that file from a thread of this process; its
 * interrupt line is a socketpair whose host end is what
 * ppf_uio_irq_open_node() returns (wrapped with -Wl,--wrap): every raised
 * interrupt writes the 4-byte running count, as the UIO core does.  All
 * the rest of driver/uio.c runs unchanged.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ppf/ppf.h"
#include "ppf/protocol.h"
#include "peripheral/core.h"

/* --- the fake tree and the card ------------------------------------------ */

struct card {
    void *bar;
    uint64_t size;
    struct ppf_core *core;
    int irq_fd[2];              /* [0] card end, [1] host end */
    uint32_t irq_count;
    pthread_t thread;
    volatile int stop;
    volatile int paused;
    volatile int pause_ack;
    int running;
};

static char root[PATH_MAX];
static struct card card;

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void
mkdirs(const char *fmt, ...)
{
    char path[PATH_MAX + 64], *p;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    for (p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

/* Adds sys/class/uio/uioN with the given name; map0 of size (0: no maps). */
static void
fake_uio(unsigned n, const char *name, uint64_t size, uint64_t bar_len)
{
    char path[PATH_MAX + 64], buf[64];
    int fd;

    mkdirs("%s/sys/class/uio/uio%u", root, n);
    snprintf(path, sizeof path, "%s/sys/class/uio/uio%u/name", root, n);
    write_file(path, name);
    snprintf(path, sizeof path, "%s/sys/class/uio/uio%u/version", root, n);
    write_file(path, "1.0\n");
    if (size) {
        mkdirs("%s/sys/class/uio/uio%u/maps/map0", root, n);
        snprintf(path, sizeof path, "%s/sys/class/uio/uio%u/maps/map0/size", root, n);
        snprintf(buf, sizeof buf, "0x%llx\n", (unsigned long long)size);
        write_file(path, buf);
        snprintf(path, sizeof path, "%s/sys/class/uio/uio%u/maps/map0/offset", root, n);
        write_file(path, "0x0\n");
    }
    snprintf(path, sizeof path, "%s/dev/uio%u", root, n);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)bar_len), 0);
    close(fd);
}

static void
card_raise(void *opaque, uint32_t qid)
{
    struct card *c = opaque;
    uint32_t n = __atomic_add_fetch(&c->irq_count, 1, __ATOMIC_SEQ_CST);

    if (c->irq_fd[0] >= 0)
        (void)!write(c->irq_fd[0], &n, sizeof n);
}

static void *
card_main(void *arg)
{
    struct card *c = arg;
    uint32_t enable;

    while (!c->stop) {
        c->pause_ack = c->paused;
        if (!c->pause_ack)
            ppf_core_poll(c->core);
        /* drain the host's re-enable writes */
        while (c->irq_fd[0] >= 0 && read(c->irq_fd[0], &enable, sizeof enable) > 0)
            ;
        usleep(20);
    }
    return NULL;
}

/* The card: uio1 named ppf (uio0 is a decoy), served by a thread. */
static void
card_start(uint32_t num_qps)
{
    struct ppf_core_config cfg;
    struct ppf_core_irq_ops irq = { .raise = card_raise, .opaque = &card };
    char path[PATH_MAX + 32];
    int fd;

    ppf_core_config_default(&cfg);
    cfg.num_qps = num_qps;
    cfg.slots = 4;
    cfg.slot_size = 4096;
    cfg.features = PPF_FEAT_METRICS;
    cfg.serial = "uio-test";
    card.size = ppf_core_window_size(&cfg);
    card.size = (card.size + 4095) & ~4095ull;
    fake_uio(1, "ppf\n", card.size, card.size);
    snprintf(path, sizeof path, "%s/dev/uio1", root);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    card.bar = mmap(NULL, card.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(card.bar != MAP_FAILED);
    assert_int_equal(ppf_core_new(card.bar, card.size, &cfg, &irq, &card.core), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                                card.irq_fd), 0);
    card.stop = 0;
    card.paused = 0;
    assert_int_equal(pthread_create(&card.thread, NULL, card_main, &card), 0);
    card.running = 1;
}

/* Stops the card from serving commands and waits until it has. */
static void
card_pause(void)
{
    card.paused = 1;
    while (!card.pause_ack)
        usleep(100);
}

static void
card_stop(void)
{
    if (card.running) {
        card.stop = 1;
        pthread_join(card.thread, NULL);
        card.running = 0;
    }
    ppf_core_free(card.core);
    card.core = NULL;
    if (card.bar)
        munmap(card.bar, card.size);
    card.bar = NULL;
    for (int i = 0; i < 2; i++)
        if (card.irq_fd[i] >= 0)
            close(card.irq_fd[i]);
    card.irq_fd[0] = card.irq_fd[1] = -1;
}

/* The wrapped irq opener: the real one for anything but the card. */
int __real_ppf_uio_irq_open_node(const char *path);
int __wrap_ppf_uio_irq_open_node(const char *path);

int
__wrap_ppf_uio_irq_open_node(const char *path)
{
    if (card.bar && card.irq_fd[1] >= 0 && strstr(path, "/uio1"))
        return fcntl(card.irq_fd[1], F_DUPFD_CLOEXEC, 0);
    return __real_ppf_uio_irq_open_node(path);
}

static int
setup(void **state)
{
    char path[PATH_MAX + 16];

    snprintf(root, sizeof root, "%s/ppf-uio-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root))
        return -1;
    mkdirs("%s/dev", root);
    snprintf(path, sizeof path, "%s/sys", root);
    setenv("PPF_SYSFS_ROOT", path, 1);
    snprintf(path, sizeof path, "%s/dev", root);
    setenv("PPF_DEV_ROOT", path, 1);
    unsetenv("PPF_DEVICE");
    unsetenv("PPF_POLL_US");
    memset(&card, 0, sizeof card);
    card.irq_fd[0] = card.irq_fd[1] = -1;
    fake_uio(0, "vfio-decoy\n", 4096, 4096);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    card_stop();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void
node_path(char *buf, size_t len, unsigned n)
{
    snprintf(buf, len, "uio:%s/dev/uio%u", root, n);
}

/* --- tests ----------------------------------------------------------------- */

static void
test_find_skips_decoy(void **state)
{
    struct ppf_dev *dev;
    struct ppf_dev_info info;
    char want[PATH_MAX + 16];

    card_start(3);
    assert_int_equal(ppf_dev_open("auto", &dev), 0);
    ppf_dev_get_info(dev, &info);
    assert_string_equal(info.backend, "uio");
    snprintf(want, sizeof want, "%s/dev/uio1", root);
    assert_string_equal(info.path, want);
    assert_int_equal(info.num_qps, 3);
    assert_int_equal(info.slots, 4);
    assert_int_equal(info.features & PPF_FEAT_EMULATED, 0);
    ppf_dev_close(dev);
}

static void
test_env_device_wins(void **state)
{
    struct ppf_dev *dev;
    char spec[PATH_MAX + 16];

    card_start(3);
    /* PPF_DEVICE names the decoy: auto must honour it (and then refuse it) */
    node_path(spec, sizeof spec, 0);
    setenv("PPF_DEVICE", spec, 1);
    assert_int_equal(ppf_dev_open("auto", &dev), -1);
    assert_null(dev);
    assert_non_null(strstr(ppf_error(), "not a ppf card"));
    unsetenv("PPF_DEVICE");
}

static void
run_nops(int poll_us, unsigned n)
{
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    char spec[PATH_MAX + 16];
    char in[100], out[100];

    node_path(spec, sizeof spec, 1);
    assert_int_equal(ppf_dev_open(spec, &dev), 0);
    assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 1000, &qp), 0);
    ppf_qp_set_poll_us(qp, poll_us);
    for (unsigned i = 0; i < n; i++) {
        struct ppf_cmd cmd = { .opcode = PPF_OP_NOP, .in = in, .in_len = sizeof in,
                               .out = out, .out_cap = sizeof out };

        memset(in, (int)i, sizeof in);
        cmd.arg[0] = 0xabc00000u + i;
        assert_int_equal(ppf_exec(qp, &cmd, 5000), 0);
        assert_int_equal(cmd.status, PPF_SC_SUCCESS);
        assert_int_equal(cmd.result, 0xabc00000u + i);
        assert_int_equal(cmd.out_len, sizeof in);
        assert_memory_equal(in, out, sizeof in);
    }
    ppf_qp_release(qp);
    ppf_dev_close(dev);
}

static void
test_nop_polling(void **state)
{
    card_start(3);
    run_nops(-1, 2000);
}

static void
test_nop_interrupts(void **state)
{
    card_start(3);
    run_nops(0, 300);
    /* sleeping waiters were woken by the irq line, not by luck */
    assert_true(__atomic_load_n(&card.irq_count, __ATOMIC_SEQ_CST) > 0);
}

static void
test_bad_trees(void **state)
{
    struct ppf_dev *dev;
    char spec[PATH_MAX + 16];

    /* a name that is not ppf */
    node_path(spec, sizeof spec, 0);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_non_null(strstr(ppf_error(), "vfio-decoy"));
    /* no such device */
    node_path(spec, sizeof spec, 7);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_int_equal(errno, ENODEV);
    /* not a uio node at all */
    assert_int_equal(ppf_dev_open("uio:/dev/sda", &dev), -1);
    assert_non_null(strstr(ppf_error(), "not a UIO device node"));
    /* ppf without a map */
    fake_uio(2, "ppf\n", 0, 4096);
    node_path(spec, sizeof spec, 2);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_non_null(strstr(ppf_error(), "no register window"));
    /* a map too small for the register page */
    fake_uio(3, "ppf\n", 100, 4096);
    node_path(spec, sizeof spec, 3);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_int_equal(errno, EPROTO);
    /* a BAR file shorter than its map */
    fake_uio(4, "ppf\n", 65536, 4096);
    node_path(spec, sizeof spec, 4);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_non_null(strstr(ppf_error(), "shorter than map0"));
    /* a window of zeros: bad magic */
    fake_uio(5, "ppf\n", 65536, 65536);
    node_path(spec, sizeof spec, 5);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_null(dev);
}

static void
test_bad_magic_in_window(void **state)
{
    struct ppf_dev *dev;
    char spec[PATH_MAX + 16];

    card_start(3);
    card.stop = 1;
    pthread_join(card.thread, NULL);
    card.running = 0;
    ((struct ppf_regs *)card.bar)->magic = 0x12345678;
    node_path(spec, sizeof spec, 1);
    assert_int_equal(ppf_dev_open(spec, &dev), -1);
    assert_int_equal(errno, EPROTO);
}

static void
test_hangup_is_enodev(void **state)
{
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    struct ppf_cmd cmd = { .opcode = PPF_OP_NOP };
    char spec[PATH_MAX + 16];

    card_start(3);
    node_path(spec, sizeof spec, 1);
    assert_int_equal(ppf_dev_open(spec, &dev), 0);
    assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 1000, &qp), 0);
    ppf_qp_set_poll_us(qp, 0);
    card_pause();               /* the card stops answering ... */
    assert_int_equal(ppf_submit(qp, &cmd, 1000), 0);
    close(card.irq_fd[0]);      /* ... and its irq line goes away */
    card.irq_fd[0] = -1;
    assert_int_equal(ppf_wait(qp, &cmd, 3000), -1);
    assert_int_equal(errno, ENODEV);
    ppf_qp_release(qp);
    ppf_dev_close(dev);
}

static void
test_shutdown_is_enodev(void **state)
{
    struct ppf_dev *dev;
    struct ppf_qp *qp;
    struct ppf_cmd cmd = { .opcode = PPF_OP_NOP };
    char spec[PATH_MAX + 16];

    card_start(3);
    node_path(spec, sizeof spec, 1);
    assert_int_equal(ppf_dev_open(spec, &dev), 0);
    assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 1000, &qp), 0);
    card_pause();
    assert_int_equal(ppf_submit(qp, &cmd, 1000), 0);
    ppf_core_shutdown(card.core);
    assert_int_equal(ppf_wait(qp, &cmd, 3000), -1);
    assert_int_equal(errno, ENODEV);
    assert_int_equal(ppf_dev_check_alive(dev), -1);
    ppf_qp_release(qp);
    ppf_dev_close(dev);
}

/* A process that dies holding both I/O pairs: the next claimer finds them
 * owned by a dead pid, hands them back for reset and gets one. */
static void
test_dead_owner_reclaimed(void **state)
{
    struct ppf_dev *dev;
    struct ppf_qp *qp, *qp2;
    char spec[PATH_MAX + 16];
    int status;
    pid_t pid;

    card_start(3);
    node_path(spec, sizeof spec, 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ppf_qp *a, *b;

        if (ppf_dev_open(spec, &dev) < 0 ||
            ppf_qp_claim(dev, PPF_QP_IO, 1000, &a) < 0 ||
            ppf_qp_claim(dev, PPF_QP_IO, 1000, &b) < 0)
            _exit(1);
        _exit(0);               /* dies holding both */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    assert_int_equal(ppf_dev_open(spec, &dev), 0);
    assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 3000, &qp), 0);
    assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 3000, &qp2), 0);
    assert_int_not_equal(ppf_qp_id(qp), ppf_qp_id(qp2));
    /* and the reclaimed pairs work */
    {
        struct ppf_cmd cmd = { .opcode = PPF_OP_NOP, .arg = { 42 } };

        assert_int_equal(ppf_exec(qp2, &cmd, 3000), 0);
        assert_int_equal(cmd.result, 42);
    }
    /* a live owner is never robbed: a third claim times out */
    {
        struct ppf_qp *qp3;

        assert_int_equal(ppf_qp_claim(dev, PPF_QP_IO, 200, &qp3), -1);
        assert_int_equal(errno, EBUSY);
    }
    ppf_dev_close(dev);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find_skips_decoy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_device_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nop_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nop_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_trees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_is_enodev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_is_enodev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_owner_reclaimed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

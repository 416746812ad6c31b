/* Shared futex words: the emulated device's interrupts and doorbell
 * wake-ups live in a mapping that several processes share, so these are
 * non-private futex operations.
 */
#ifndef PPF_FUTEX_H
#define PPF_FUTEX_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *addr == val, at most timeout_ms (-1: no limit). */
static inline int
ppf_futex_wait(uint32_t *addr, uint32_t val, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;

    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, tsp, NULL, 0);
}

static inline void
ppf_futex_wake(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

static inline void
ppf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif /* PPF_FUTEX_H */

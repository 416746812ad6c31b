/* Scoped clean-up helpers (__attribute__((cleanup))) so functions can
 * return early without goto ladders, in the style of nbdkit's cleanup.h.
 */
#ifndef PPF_CLEANUP_H
#define PPF_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void
ppf_cleanup_free(void *ptr)
{
    free(*(void **)ptr);
}

static inline void
ppf_cleanup_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

#define CLEANUP_FREE  __attribute__((cleanup(ppf_cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(ppf_cleanup_close)))

#endif /* PPF_CLEANUP_H */

/* Opens the interrupt node of a UIO device (/dev/uioN).  Kept in its own
 * file so the unit tests can replace it with -Wl,--wrap and hand the uio
 * backend a socketpair instead of a real irq line: everything else in
 * uio.c then runs unchanged against a fake sysfs tree.
 */
#include <config.h>

#include <fcntl.h>

#include "driver/driver.h"

int
ppf_uio_irq_open_node(const char *path)
{
    return open(path, O_RDWR | O_CLOEXEC);
}

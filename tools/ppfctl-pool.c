/* ppfctl pool-define | pool-dumpxml | pool-undefine | pool-list: ppf pools
 * (libvirt dir pools carrying ppf settings in ppf's namespace).
 */
#include <config.h>

#include <stdio.h>

#include "tools/ppfctl.h"

int
cmd_pool(struct ctl *c, int argc, char **argv)
{
    (void)c;
    (void)argc;
    fprintf(stderr, "ppfctl: %s: not built yet\n", argv[0]);
    return 1;
}

/* The peripheral's wall clock (see clock.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peripheral/clock.h"

static char clock_path[4096];
static double clock_last = -1;

int
ppf_clock_set_virtual(const char *path)
{
    if (!path) {
        clock_path[0] = '\0';
        return 0;
    }
    if (strlen(path) >= sizeof clock_path)
        return -1;
    snprintf(clock_path, sizeof clock_path, "%s", path);
    clock_last = -1;
    return 0;
}

static double
real_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
ppf_clock_wall(void)
{
    char buf[64], *end;
    FILE *fp;
    double v;
    size_t n;

    if (!clock_path[0])
        return real_now();
    fp = fopen(clock_path, "re");
    if (fp) {
        n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        v = strtod(buf, &end);
        while (*end == '\n' || *end == ' ')
            end++;
        if (end != buf && *end == '\0' && v > 0 && v < 1e11)
            clock_last = v;
    }
    return clock_last > 0 ? clock_last : real_now();
}

/* Policy schedules as time windows in local time: see schedule.h. */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "peripheral/schedule.h"

#define SCH_ALL_DAYS  0x7fu
#define SCH_WEEKDAYS  0x3eu     /* Mon..Fri (tm_wday 1..5) */
#define SCH_WEEKENDS  0x41u     /* Sun and Sat (tm_wday 0, 6) */

/* "HH:MM" (exactly 5 bytes, 00:00 to 23:59) as minutes after midnight,
 * or -1. */
static int
sch_hhmm(const char *s, size_t len)
{
    int h, m;

    if (len != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* The day part of when ("daily", "weekdays", "weekends" or "mon,thu") as
 * a set of tm_wday bits, or 0 if it is none of those. */
static unsigned
sch_days(const char *s, size_t len)
{
    /* in tm_wday order */
    static const char *const names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
    unsigned days = 0;
    size_t i = 0;
    int d;

    if (len == 5 && strncmp(s, "daily", 5) == 0)
        return SCH_ALL_DAYS;
    if (len == 8 && strncmp(s, "weekdays", 8) == 0)
        return SCH_WEEKDAYS;
    if (len == 8 && strncmp(s, "weekends", 8) == 0)
        return SCH_WEEKENDS;
    /* a comma list: "ddd" then (",ddd")* */
    for (;;) {
        if (len - i < 3)
            return 0;
        for (d = 0; d < 7; d++)
            if (strncmp(s + i, names[d], 3) == 0)
                break;
        if (d == 7)
            return 0;
        days |= 1u << d;
        i += 3;
        if (i == len)
            return days;
        if (s[i] != ',')
            return 0;
        i++;
    }
}

int
ppf_schedule_parse(const char *when, const char *before, struct ppf_schedule *s)
{
    const char *sp;

    memset(s, 0, sizeof *s);
    if (!when || !(sp = strchr(when, ' ')))
        goto bad;
    s->days = sch_days(when, (size_t)(sp - when));
    s->start_min = sch_hhmm(sp + 1, strlen(sp + 1));
    s->end_min = before ? sch_hhmm(before, strlen(before)) : -1;
    if (!s->days || s->start_min < 0 || (before && s->end_min < 0))
        goto bad;
    s->next_day = before && s->end_min <= s->start_min;
    return 0;
bad:
    memset(s, 0, sizeof *s);
    errno = EINVAL;
    return -1;
}

/* Minutes from the opening of a window to its closing, as the clock on
 * the wall reads them (DST aside). */
static int
sch_length_min(const struct ppf_schedule *s)
{
    if (s->end_min < 0)
        return PPF_SCHEDULE_DEFAULT_MIN;
    return s->end_min - s->start_min + (s->next_day ? 1440 : 0);
}

/* mktime of the local date in day at minute min after its midnight (plus
 * extra days), daylight saving time left to mktime.  0, or -1. */
static int
sch_local(const struct tm *day, int extra_days, int min, time_t *out)
{
    struct tm tm = *day;

    tm.tm_mday += extra_days;
    tm.tm_hour = min / 60;
    tm.tm_min = min % 60;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    errno = 0;
    *out = mktime(&tm);
    if (*out == (time_t)-1 && errno) {
        errno = EOVERFLOW;
        return -1;
    }
    return 0;
}

/* The window that opens on the local date of t plus k days: 1 with
 * *start and *end, 0 if s does not name that day, -1 (EOVERFLOW). */
static int
sch_window_on(const struct ppf_schedule *s, time_t t, int k, time_t *start, time_t *end)
{
    struct tm day;

    /* the date first, at noon: no DST change moves noon to another day */
    if (!localtime_r(&t, &day)) {
        errno = EOVERFLOW;
        return -1;
    }
    day.tm_mday += k;
    day.tm_hour = 12;
    day.tm_min = day.tm_sec = 0;
    day.tm_isdst = -1;
    errno = 0;
    if (mktime(&day) == (time_t)-1 && errno) {
        errno = EOVERFLOW;
        return -1;
    }
    if (!(s->days & (1u << day.tm_wday)))
        return 0;
    if (sch_local(&day, 0, s->start_min, start) < 0)
        return -1;
    if (s->end_min < 0)
        *end = *start + (time_t)PPF_SCHEDULE_DEFAULT_MIN * 60;
    else if (sch_local(&day, s->next_day ? 1 : 0, s->end_min, end) < 0)
        return -1;
    /* both ends in a DST gap can meet or cross: keep the length meant */
    if (*end <= *start)
        *end = *start + (time_t)sch_length_min(s) * 60;
    return 1;
}

int
ppf_schedule_window_at(const struct ppf_schedule *s, time_t t, time_t *start, time_t *end)
{
    time_t a, b;
    int r;

    *start = *end = 0;
    /* a window lasts at most a day (and a DST hour): it opened today or
     * yesterday; today's first, so the one that opened last wins */
    for (int k = 0; k >= -1; k--) {
        r = sch_window_on(s, t, k, &a, &b);
        if (r < 0)
            return -1;
        if (r > 0 && a <= t && t < b) {
            *start = a;
            *end = b;
            return 1;
        }
    }
    return 0;
}

int
ppf_schedule_next(const struct ppf_schedule *s, time_t t, time_t *start, time_t *end)
{
    time_t a, b;
    int r;

    *start = *end = 0;
    if (!(s->days & SCH_ALL_DAYS)) {
        errno = EINVAL;
        return -1;
    }
    /* today's window may have opened already; a week and a day covers all */
    for (int k = 0; k <= 8; k++) {
        r = sch_window_on(s, t, k, &a, &b);
        if (r < 0)
            return -1;
        if (r > 0 && a >= t) {
            *start = a;
            *end = b;
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}

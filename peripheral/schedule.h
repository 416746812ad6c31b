/* Policy schedules (ppf-policy(5), schedules:) as time windows.  A
 * schedule {when: "weekdays 08:30", before: "09:00"} opens a window at
 * 08:30 local time on the days it names and closes it at 09:00 that day;
 * without before the window lasts 30 minutes; a before at or earlier than
 * the time of when closes it the next day.  Local time is the process's
 * time zone (TZ, localtime_r and mktime with tm_isdst = -1, so a window
 * follows daylight saving time: 08:30 stays 08:30 on the clock; a time
 * that does not exist on a spring-forward day is taken as mktime
 * normalizes it).  Pure logic: the time is always passed in, nothing is
 * read but the time zone.
 */
#ifndef PPF_PERIPHERAL_SCHEDULE_H
#define PPF_PERIPHERAL_SCHEDULE_H

#include <stdbool.h>
#include <time.h>

#define PPF_SCHEDULE_DEFAULT_MIN 30     /* window length without before */

/* A parsed schedule. */
struct ppf_schedule {
    unsigned days;              /* bit d set: the window opens on tm_wday d (0 = Sunday) */
    int start_min;              /* minutes after local midnight of when */
    int end_min;                /* minutes after local midnight of before, -1 if none */
    bool next_day;              /* before is on the day after the window opens */
};

/* Parses when ("daily HH:MM", "weekdays HH:MM", "weekends HH:MM" or a
 * comma list of mon..sun and HH:MM) and before ("HH:MM", or NULL) into *s.
 * 0, or -1 (EINVAL) if either is not in that form (*s is then zeroed). */
int ppf_schedule_parse(const char *when, const char *before, struct ppf_schedule *s);

/* The window that contains t, if any (the one that opened last if two
 * touch): 1 with *start and *end (end exclusive; t in [start, end)), or 0
 * with both set to 0.  -1 if the time cannot be converted (EOVERFLOW). */
int ppf_schedule_window_at(const struct ppf_schedule *s, time_t t, time_t *start,
                           time_t *end);

/* The first window that opens at or after t: 0 with *start >= t and *end,
 * or -1 (EOVERFLOW; or EINVAL if s names no day). */
int ppf_schedule_next(const struct ppf_schedule *s, time_t t, time_t *start, time_t *end);

#endif /* PPF_PERIPHERAL_SCHEDULE_H */

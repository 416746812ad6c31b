/* cmocka tests for policy schedules as time windows (peripheral/schedule.h):
 * every form of when, with and without before, before across midnight,
 * the edges of weekdays and weekends, the next window from inside and
 * outside a window, in UTC and in Europe/Berlin across both DST changes
 * of 2025 (30 March, 26 October).  Pure logic: only TZ is set.
 */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "peripheral/schedule.h"

#define MIN  60
#define HOUR 3600
#define DAY  86400

/* 2025-01-06 is a Monday. */
static time_t
utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };

    return timegm(&tm);
}

static void
set_tz(const char *tz)
{
    assert_int_equal(setenv("TZ", tz, 1), 0);
    tzset();
}

static int
setup_utc(void **state)
{
    (void)state;
    set_tz("UTC");
    return 0;
}

static struct ppf_schedule
parse(const char *when, const char *before)
{
    struct ppf_schedule s;

    assert_int_equal(ppf_schedule_parse(when, before, &s), 0);
    return s;
}

/* Asserts that t lies in the window [start, end). */
static void
assert_in(const struct ppf_schedule *s, time_t t, time_t start, time_t end)
{
    time_t a, b;

    assert_int_equal(ppf_schedule_window_at(s, t, &a, &b), 1);
    assert_int_equal(a, start);
    assert_int_equal(b, end);
}

static void
assert_out(const struct ppf_schedule *s, time_t t)
{
    time_t a = 1, b = 1;

    assert_int_equal(ppf_schedule_window_at(s, t, &a, &b), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
}

static void
assert_next(const struct ppf_schedule *s, time_t t, time_t start, time_t end)
{
    time_t a, b;

    assert_int_equal(ppf_schedule_next(s, t, &a, &b), 0);
    assert_int_equal(a, start);
    assert_int_equal(b, end);
}

static void
test_parse_forms(void **state)
{
    struct ppf_schedule s;

    (void)state;
    s = parse("daily 08:30", NULL);
    assert_int_equal(s.days, 0x7f);
    assert_int_equal(s.start_min, 8 * 60 + 30);
    assert_int_equal(s.end_min, -1);
    assert_false(s.next_day);
    assert_int_equal(parse("weekdays 00:00", NULL).days, 0x3e);
    assert_int_equal(parse("weekends 23:59", NULL).days, 0x41);
    assert_int_equal(parse("weekends 23:59", NULL).start_min, 1439);
    assert_int_equal(parse("mon,thu 07:00", NULL).days, (1u << 1) | (1u << 4));
    assert_int_equal(parse("sun 07:00", NULL).days, 1u);
    assert_int_equal(parse("sat 07:00", NULL).days, 1u << 6);
    assert_int_equal(parse("mon,tue,wed,thu,fri,sat,sun 07:00", NULL).days, 0x7f);
    assert_int_equal(parse("mon,mon 07:00", NULL).days, 1u << 1);

    s = parse("weekdays 08:30", "09:00");
    assert_int_equal(s.end_min, 9 * 60);
    assert_false(s.next_day);
    s = parse("daily 23:00", "01:00");
    assert_int_equal(s.end_min, 60);
    assert_true(s.next_day);
    s = parse("daily 08:30", "08:30");     /* the same time: the next day */
    assert_true(s.next_day);
}

static void
test_parse_bad(void **state)
{
    static const char *const bad_when[] = {
        "daily 8:30", "daily 24:00", "daily 08:60", "daily 08:30 ", "daily  08:30",
        "daily", "08:30", "", "weekday 08:30", "Daily 08:30", "mon,,thu 08:30",
        "mon, thu 08:30", "mon,thu, 08:30", ",mon 08:30", "mo 08:30", "mond 08:30",
        "monday 08:30", "daily 08-30", "daily 0830", "daily 08:3x",
    };
    static const char *const bad_before[] = { "9:00", "24:00", "09:60", "09:00 ", "", "never" };
    struct ppf_schedule s;

    (void)state;
    for (size_t i = 0; i < sizeof bad_when / sizeof *bad_when; i++) {
        errno = 0;
        if (ppf_schedule_parse(bad_when[i], NULL, &s) != -1)
            fail_msg("'%s' was accepted as a when", bad_when[i]);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(s.days, 0);
    }
    for (size_t i = 0; i < sizeof bad_before / sizeof *bad_before; i++)
        if (ppf_schedule_parse("daily 08:30", bad_before[i], &s) != -1)
            fail_msg("'%s' was accepted as a before", bad_before[i]);
    assert_int_equal(ppf_schedule_parse(NULL, NULL, &s), -1);
}

/* weekdays 08:30 before 09:00, around Monday 2025-01-06. */
static void
test_weekdays_before(void **state)
{
    struct ppf_schedule s = parse("weekdays 08:30", "09:00");
    time_t mon0830 = utc(2025, 1, 6, 8, 30, 0), mon0900 = utc(2025, 1, 6, 9, 0, 0);

    (void)state;
    assert_out(&s, utc(2025, 1, 6, 8, 29, 59));
    assert_next(&s, utc(2025, 1, 6, 8, 29, 0), mon0830, mon0900);
    assert_in(&s, mon0830, mon0830, mon0900);
    assert_in(&s, utc(2025, 1, 6, 8, 30, 5), mon0830, mon0900);
    assert_in(&s, mon0900 - 1, mon0830, mon0900);
    assert_out(&s, mon0900);
    /* next from a window's first second is that window; from inside, the next day's */
    assert_next(&s, mon0830, mon0830, mon0900);
    assert_next(&s, mon0830 + 1, mon0830 + DAY, mon0900 + DAY);
    assert_next(&s, mon0900, mon0830 + DAY, mon0900 + DAY);
    /* Friday's window, then none until Monday */
    assert_in(&s, utc(2025, 1, 10, 8, 45, 0), utc(2025, 1, 10, 8, 30, 0),
              utc(2025, 1, 10, 9, 0, 0));
    assert_next(&s, utc(2025, 1, 10, 9, 0, 0), utc(2025, 1, 13, 8, 30, 0),
                utc(2025, 1, 13, 9, 0, 0));
    assert_out(&s, utc(2025, 1, 11, 8, 45, 0));
    assert_out(&s, utc(2025, 1, 12, 8, 45, 0));
    /* Sunday 23:59:59: next is Monday */
    assert_next(&s, utc(2025, 1, 12, 23, 59, 59), utc(2025, 1, 13, 8, 30, 0),
                utc(2025, 1, 13, 9, 0, 0));
}

static void
test_weekends(void **state)
{
    struct ppf_schedule s = parse("weekends 10:00", "12:00");

    (void)state;
    /* Friday evening: Saturday next */
    assert_next(&s, utc(2025, 1, 10, 23, 59, 59), utc(2025, 1, 11, 10, 0, 0),
                utc(2025, 1, 11, 12, 0, 0));
    assert_in(&s, utc(2025, 1, 11, 11, 0, 0), utc(2025, 1, 11, 10, 0, 0),
              utc(2025, 1, 11, 12, 0, 0));
    assert_in(&s, utc(2025, 1, 12, 10, 0, 0), utc(2025, 1, 12, 10, 0, 0),
              utc(2025, 1, 12, 12, 0, 0));
    assert_out(&s, utc(2025, 1, 13, 11, 0, 0));        /* Monday */
    /* after Sunday's window: the next Saturday */
    assert_next(&s, utc(2025, 1, 12, 12, 0, 0), utc(2025, 1, 18, 10, 0, 0),
                utc(2025, 1, 18, 12, 0, 0));
}

static void
test_no_before(void **state)
{
    struct ppf_schedule s = parse("daily 08:30", NULL);
    time_t a = utc(2025, 1, 8, 8, 30, 0);

    (void)state;
    assert_in(&s, a + 29 * MIN + 59, a, a + 30 * MIN);
    assert_out(&s, a + 30 * MIN);
    assert_next(&s, a + 30 * MIN, a + DAY, a + DAY + 30 * MIN);
    /* 23:45 without before: the window runs past midnight */
    s = parse("daily 23:45", NULL);
    a = utc(2025, 1, 8, 23, 45, 0);
    assert_in(&s, utc(2025, 1, 9, 0, 10, 0), a, a + 30 * MIN);
    assert_out(&s, utc(2025, 1, 9, 0, 15, 0));
}

static void
test_day_list(void **state)
{
    struct ppf_schedule s = parse("mon,thu 07:00", "07:15");

    (void)state;
    /* Monday 07:15: Thursday next, then Monday */
    assert_next(&s, utc(2025, 1, 6, 7, 15, 0), utc(2025, 1, 9, 7, 0, 0),
                utc(2025, 1, 9, 7, 15, 0));
    assert_next(&s, utc(2025, 1, 9, 7, 0, 1), utc(2025, 1, 13, 7, 0, 0),
                utc(2025, 1, 13, 7, 15, 0));
    assert_out(&s, utc(2025, 1, 7, 7, 5, 0));          /* Tuesday */
    assert_in(&s, utc(2025, 1, 9, 7, 5, 0), utc(2025, 1, 9, 7, 0, 0),
              utc(2025, 1, 9, 7, 15, 0));
}

/* before earlier than when: the window closes the next day, even when
 * that day is not one the schedule names. */
static void
test_before_across_midnight(void **state)
{
    struct ppf_schedule s = parse("weekdays 23:00", "01:00");
    time_t fri = utc(2025, 1, 10, 23, 0, 0);

    (void)state;
    assert_in(&s, fri, fri, fri + 2 * HOUR);
    assert_in(&s, utc(2025, 1, 11, 0, 30, 0), fri, fri + 2 * HOUR);    /* Saturday */
    assert_out(&s, utc(2025, 1, 11, 1, 0, 0));
    assert_out(&s, utc(2025, 1, 11, 23, 30, 0));
    assert_out(&s, utc(2025, 1, 12, 0, 30, 0));                       /* Sunday */
    assert_out(&s, utc(2025, 1, 13, 0, 30, 0));                       /* Monday night */
    assert_next(&s, utc(2025, 1, 11, 0, 30, 0), utc(2025, 1, 13, 23, 0, 0),
                utc(2025, 1, 14, 1, 0, 0));

    /* before == when: a whole day; two windows touch, the later one wins */
    s = parse("daily 08:30", "08:30");
    assert_in(&s, utc(2025, 1, 7, 8, 29, 0), utc(2025, 1, 6, 8, 30, 0),
              utc(2025, 1, 7, 8, 30, 0));
    assert_in(&s, utc(2025, 1, 7, 8, 30, 0), utc(2025, 1, 7, 8, 30, 0),
              utc(2025, 1, 8, 8, 30, 0));
}

static int
setup_berlin(void **state)
{
    (void)state;
    if (access("/usr/share/zoneinfo/Europe/Berlin", R_OK) != 0)
        return 0;
    set_tz("Europe/Berlin");
    return 0;
}

static void
skip_without_berlin(void)
{
    if (access("/usr/share/zoneinfo/Europe/Berlin", R_OK) != 0)
        skip();
}

/* Europe/Berlin: 08:30 stays 08:30 local across both changes of 2025. */
static void
test_berlin_dst(void **state)
{
    struct ppf_schedule s = parse("daily 08:30", "09:00");
    time_t sat = utc(2025, 3, 29, 7, 30, 0);          /* 08:30 CET (+1) */
    time_t sun = utc(2025, 3, 30, 6, 30, 0);          /* 08:30 CEST (+2) */

    (void)state;
    skip_without_berlin();
    assert_in(&s, sat + 60, sat, sat + 30 * MIN);
    assert_next(&s, sat + 60, sun, sun + 30 * MIN);
    assert_int_equal(sun - sat, 23 * HOUR);
    assert_out(&s, utc(2025, 3, 30, 7, 30, 0));        /* 09:30 CEST */
    /* autumn: 25 hours between the windows */
    assert_next(&s, utc(2025, 10, 25, 7, 0, 0), utc(2025, 10, 26, 7, 30, 0),
                utc(2025, 10, 26, 8, 0, 0));
    assert_in(&s, utc(2025, 10, 25, 6, 45, 0), utc(2025, 10, 25, 6, 30, 0),
              utc(2025, 10, 25, 7, 0, 0));

    /* a window over the spring change: 01:00 CET to 04:00 CEST is 2 h */
    s = parse("daily 01:00", "04:00");
    assert_in(&s, utc(2025, 3, 30, 1, 0, 0), utc(2025, 3, 30, 0, 0, 0),
              utc(2025, 3, 30, 2, 0, 0));
    assert_out(&s, utc(2025, 3, 30, 2, 0, 0));
    /* ... and over the autumn change, 4 h */
    assert_in(&s, utc(2025, 10, 26, 2, 30, 0), utc(2025, 10, 25, 23, 0, 0),
              utc(2025, 10, 26, 3, 0, 0));

    /* a time the spring change skips (02:30) still opens one window that day */
    {
        time_t a, b, a2, b2;

        s = parse("daily 02:30", NULL);
        assert_int_equal(ppf_schedule_next(&s, utc(2025, 3, 29, 23, 0, 0), &a, &b), 0);
        assert_true(a >= utc(2025, 3, 29, 23, 0, 0) && a < utc(2025, 3, 30, 22, 0, 0));
        assert_int_equal(b - a, 30 * MIN);
        assert_int_equal(ppf_schedule_window_at(&s, a, &a2, &b2), 1);
        assert_int_equal(a2, a);
        assert_int_equal(ppf_schedule_next(&s, b, &a2, &b2), 0);
        assert_int_equal(a2, utc(2025, 3, 31, 0, 30, 0));       /* Monday 02:30 CEST */
    }
    /* a time the autumn change repeats (02:30) opens one window, not two */
    {
        time_t a, b, a2, b2;

        assert_int_equal(ppf_schedule_next(&s, utc(2025, 10, 25, 23, 0, 0), &a, &b), 0);
        assert_true(a == utc(2025, 10, 26, 0, 30, 0) || a == utc(2025, 10, 26, 1, 30, 0));
        assert_int_equal(ppf_schedule_next(&s, b, &a2, &b2), 0);
        assert_int_equal(a2, utc(2025, 10, 27, 1, 30, 0));      /* Monday 02:30 CET */
    }
    /* weekdays over the change: Friday 28 March 08:30 CET, Monday 31 08:30 CEST */
    s = parse("weekdays 08:30", "09:00");
    assert_next(&s, utc(2025, 3, 28, 8, 0, 0), utc(2025, 3, 31, 6, 30, 0),
                utc(2025, 3, 31, 7, 0, 0));
}

static void
test_next_no_day(void **state)
{
    struct ppf_schedule s = { 0 };
    time_t a, b;

    (void)state;
    errno = 0;
    assert_int_equal(ppf_schedule_next(&s, utc(2025, 1, 6, 0, 0, 0), &a, &b), -1);
    assert_int_equal(errno, EINVAL);
    assert_out(&s, utc(2025, 1, 6, 0, 0, 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_parse_forms, setup_utc),
        cmocka_unit_test_setup(test_parse_bad, setup_utc),
        cmocka_unit_test_setup(test_weekdays_before, setup_utc),
        cmocka_unit_test_setup(test_weekends, setup_utc),
        cmocka_unit_test_setup(test_no_before, setup_utc),
        cmocka_unit_test_setup(test_day_list, setup_utc),
        cmocka_unit_test_setup(test_before_across_midnight, setup_utc),
        cmocka_unit_test_setup(test_next_no_day, setup_utc),
        cmocka_unit_test_setup(test_berlin_dst, setup_berlin),
    };

    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}

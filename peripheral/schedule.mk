# peripheral/schedule.mk: automake fragment included by the top Makefile.am.
# Policy schedules (issue 9, ppf-policy(5) schedules:): windows in local
# time (pure logic, peripheral/schedule.c), held in the buffer by the live
# predictor on the peripheral's wall clock (--virtual-clock in tests).

ppf_peripheral_SOURCES += peripheral/schedule.c peripheral/schedule.h

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-schedule
TESTS += tests/unit/test-schedule
tests_unit_test_schedule_SOURCES = tests/unit/test-schedule.c \
	peripheral/schedule.c peripheral/schedule.h
tests_unit_test_schedule_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_schedule_LDADD = $(CMOCKA_LIBS)
endif

TESTS += tests/test-schedule.sh
EXTRA_DIST += peripheral/schedule.mk tests/test-schedule.sh

# peripheral/oplog.mk: automake fragment included by the top Makefile.am.
# The operations log and usage accounting (issue 9, schemas/device-protocol.md
# §5.9): the peripheral's log of what it did and why and its per-tenant and
# per-image counters (LOG_READ, USAGE), ppfctl events, the usage in ppfctl
# stats and in the Prometheus output (ppfctl and ppfd), and their tests.

ppf_peripheral_SOURCES += peripheral/oplog.c peripheral/oplog.h

# USAGE fetched and decoded the same way by ppfctl and ppfd
ppfctl_SOURCES += tools/ppfctl-events.c plugin/usage.c plugin/usage.h
ppfd_SOURCES += plugin/usage.c plugin/usage.h

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-oplog
TESTS += tests/unit/test-oplog
tests_unit_test_oplog_SOURCES = tests/unit/test-oplog.c peripheral/oplog.c \
	peripheral/oplog.h peripheral/clock.c peripheral/clock.h
tests_unit_test_oplog_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_oplog_LDADD = libppfcommon.la $(CMOCKA_LIBS)
endif

TESTS += tests/test-events.sh
EXTRA_DIST += \
	peripheral/oplog.mk \
	tests/test-events.sh \
	$(NULL)

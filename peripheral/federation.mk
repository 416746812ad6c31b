# peripheral/federation.mk: automake fragment included by the top Makefile.am.
# Federated learning across peripherals (issue 8, schemas/federation.md):
# the pattern summary and the federated model (libppfengine, so replay can
# simulate several hosts), the mutual-TLS transport (the peripheral),
# ppfctl federation status, and their tests.

libppfengine_la_SOURCES += peripheral/engine-federated.c

ppf_peripheral_SOURCES += peripheral/federation.c peripheral/federation.h
ppf_peripheral_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS)
ppf_peripheral_LDADD += $(GNUTLS_LIBS)

ppfctl_SOURCES += tools/ppfctl-federation.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-federation
TESTS += tests/unit/test-federation
tests_unit_test_federation_SOURCES = tests/unit/test-federation.c
tests_unit_test_federation_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_federation_LDADD = libppfengine.la libppfpolicycodec.la libppfcommon.la \
	$(CMOCKA_LIBS) -lm
endif

TESTS += tests/test-federation.sh
EXTRA_DIST += \
	tests/test-federation.sh \
	schemas/federation.md \
	docs/federation-results.md \
	$(NULL)

# --- tools/: ppf pools (ppfctl pool-*; included from Makefile.am) ---------
# ppfctl's pool commands, the pool XML (tools/pool-xml.c: libxml2, no
# libvirt), the pools' libvirt side (plugin/pools.c, for ppfd as well), the
# RelaxNG schema installed where ppfctl looks for it, the man page, the
# example and the tests.

ppfctl_SOURCES += tools/ppfctl-pool.c tools/pool-xml.c tools/pool-xml.h \
	plugin/pools.c plugin/pools.h
ppfctl_CFLAGS += $(LIBVIRT_CFLAGS) $(LIBXML2_CFLAGS) \
	-DPPF_SCHEMA_DIR='"$(ppfschemadir)"'
ppfctl_LDADD += $(LIBVIRT_LIBS) $(LIBXML2_LIBS)

# the schemas ppfctl validates with ($PPF_SCHEMA_DIR overrides at run time)
ppfschemadir = $(pkgdatadir)/schemas
dist_ppfschema_DATA = schemas/ppf-pool.rng schemas/ppf-domain.rng

dist_man_MANS += docs/ppf-pool.5

EXTRA_DIST += \
	tools/pool.mk \
	examples/pool.xml \
	tests/test-pool.sh \
	tests/pool-data/README \
	tests/pool-data/valid.xml \
	tests/pool-data/bad-attr.xml \
	tests/pool-data/not-dir.xml \
	tests/pool-data/no-ppf.xml \
	tests/pool-data/doctype.xml \
	tests/pool-data/foreign.xml \
	$(NULL)

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-pool
TESTS += tests/unit/test-pool
tests_unit_test_pool_SOURCES = tests/unit/test-pool.c tools/pool-xml.c tools/pool-xml.h \
	plugin/pools.c plugin/pools.h plugin/policy-send.c plugin/policy-send.h
tests_unit_test_pool_CPPFLAGS = $(AM_CPPFLAGS) \
	-DPPF_TEST_SCHEMA_DIR='"$(abs_top_srcdir)/schemas"' \
	-DPPF_TEST_DATA_DIR='"$(abs_top_srcdir)/tests/pool-data"'
tests_unit_test_pool_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(LIBVIRT_CFLAGS) \
	$(LIBXML2_CFLAGS)
tests_unit_test_pool_LDADD = libppfdriver.la libppfpolicycodec.la libppfcommon.la \
	$(LIBVIRT_LIBS) $(LIBXML2_LIBS) $(CMOCKA_LIBS)
endif

TESTS += tests/test-pool.sh

# policy/local.mk: automake fragment included by the top Makefile.am.
# The YAML policy: libppfpolicycodec (structure, check, device codec,
# emitters; no libyaml, linked by the peripheral) and libppfpolicy (the
# libyaml parser and host file checks), their tests, schema, example and
# man page.

noinst_LTLIBRARIES += libppfpolicycodec.la libppfpolicy.la
libppfpolicycodec_la_SOURCES = \
	policy/policy.h \
	policy/policy-int.h \
	policy/policy.c \
	policy/codec.c \
	policy/emit.c \
	$(NULL)
libppfpolicycodec_la_LIBADD = libppfcommon.la

libppfpolicy_la_SOURCES = \
	policy/parse.c \
	policy/files.c \
	$(NULL)
libppfpolicy_la_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS)
libppfpolicy_la_LIBADD = libppfpolicycodec.la libppfcommon.la $(YAML_LIBS)

# A test program: parse, print diagnostics, emit the canonical form.
check_PROGRAMS += tests/policy-check
tests_policy_check_SOURCES = policy/check-main.c
tests_policy_check_LDADD = libppfpolicy.la libppfpolicycodec.la libppfcommon.la

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-policy
TESTS += tests/unit/test-policy
tests_unit_test_policy_SOURCES = tests/unit/test-policy.c
tests_unit_test_policy_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_policy_LDADD = libppfpolicy.la libppfpolicycodec.la libppfcommon.la \
	$(CMOCKA_LIBS)
endif

TESTS += tests/test-policy-schema.sh tests/test-policy-fuzz.sh
EXTRA_DIST += \
	tests/test-policy-schema.sh \
	tests/test-policy-fuzz.sh \
	tests/fuzz/fuzz-policy.c \
	schemas/policy.schema.json \
	examples/policy.yaml \
	examples/policy-minimal.yaml \
	examples/policy-federation.yaml \
	tests/policy-data/README \
	tests/policy-data/empty.yaml \
	tests/policy-data/bad-size.yaml \
	tests/policy-data/bad-key.yaml \
	tests/policy-data/bad-enum.yaml \
	tests/policy-data/bad-tenant.yaml \
	$(NULL)

dist_man_MANS += docs/ppf-policy.5

# The schema (for editors and CI validators) and the commented example.
policydatadir = $(pkgdatadir)
dist_policydata_DATA = schemas/policy.schema.json examples/policy.yaml

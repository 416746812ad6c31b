# image/local.mk: automake fragment included by the top Makefile.am.
# The .ppfi format and the preparation pipeline (libppfimage), ppf-image,
# their tests and the image benchmark (issue 4).

noinst_LTLIBRARIES += libppfimage.la
libppfimage_la_SOURCES = \
	image/image.h \
	image/image-priv.h \
	image/err.c \
	image/format.c \
	image/source.c \
	image/fsutil.c \
	image/unpack.c \
	image/pack.c \
	$(NULL)
libppfimage_la_CPPFLAGS = $(AM_CPPFLAGS) -DPPF_QEMU_IMG='"$(QEMU_IMG)"'
libppfimage_la_CFLAGS = $(AM_CFLAGS) $(ZSTD_CFLAGS) $(GNUTLS_CFLAGS) $(CURL_CFLAGS)
libppfimage_la_LIBADD = libppfcommon.la $(ZSTD_LIBS) $(GNUTLS_LIBS) $(CURL_LIBS)

bin_PROGRAMS += ppf-image
ppf_image_SOURCES = tools/ppf-image.c
ppf_image_LDADD = libppfimage.la libppfcommon.la
dist_man_MANS += docs/ppf-image.1

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-image
TESTS += tests/unit/test-image
tests_unit_test_image_SOURCES = tests/unit/test-image.c
tests_unit_test_image_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(ZSTD_CFLAGS) $(GNUTLS_CFLAGS)
tests_unit_test_image_LDADD = libppfimage.la libppfcommon.la $(CMOCKA_LIBS) \
	$(ZSTD_LIBS) $(GNUTLS_LIBS)
endif

TESTS += \
	tests/test-image-roundtrip.sh \
	tests/test-image-https.sh \
	tests/test-image-fuzz.sh \
	$(NULL)
EXTRA_DIST += \
	tests/test-image-roundtrip.sh \
	tests/test-image-https.sh \
	tests/test-image-fuzz.sh \
	schemas/ppfi-format.md \
	tests/fuzz/fuzz-ppfi.c \
	tests/image-data/https-server.py \
	bench/bench-image \
	bench/README-image.md \
	$(NULL)

# tools/volume.mk: automake fragment included by the top Makefile.am.
# Volumes of ppf pools (ppf-pool(5), VOLUMES): ppfctl vol-create, vol-delete
# and vol-list, the volume records they keep (hooks/volrec.c, plain text,
# libc only, read by ppf-qemu-hook as well), and the test on a real libvirtd.

ppfctl_SOURCES += tools/ppfctl-vol.c tools/ppfctl-pool.h hooks/volrec.c hooks/volrec.h
ppf_qemu_hook_SOURCES += hooks/volrec.c hooks/volrec.h
ppf_qemu_hook_fallback_SOURCES += hooks/volrec.c hooks/volrec.h

if HAVE_CMOCKA
tests_unit_test_domxml_SOURCES += hooks/volrec.c hooks/volrec.h
endif

TESTS += tests/test-pool-volume.sh
EXTRA_DIST += \
	tools/volume.mk \
	tests/test-pool-volume.sh \
	$(NULL)

# --- tests against a real libvirtd: the hook in operation (included from Makefile.am)
TESTS += tests/test-libvirt-ops.sh
EXTRA_DIST += tests/test-libvirt-ops.sh tests/libvirt.mk

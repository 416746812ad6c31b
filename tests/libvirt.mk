# --- tests against a real libvirtd: the hook in operation (included from Makefile.am).
# test-libvirt-ops.sh: hit, in flight, existing disks, 8 starts at once, libvirtd restarted
# under running domains (reconnect), the peripheral killed (host fallback, or fail).  Needs
# root, libvirtd and QEMU (skips with 77 otherwise); about 90 s on TCG.
TESTS += tests/test-libvirt-ops.sh
EXTRA_DIST += tests/test-libvirt-ops.sh tests/libvirt.mk

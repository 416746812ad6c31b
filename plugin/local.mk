# --- plugin/: ppfd, the host daemon (included from Makefile.am) -----------
sbin_PROGRAMS += ppfd
ppfd_SOURCES = plugin/ppfd.c plugin/policy-send.c plugin/policy-send.h \
	plugin/metrics.c plugin/metrics.h \
	plugin/events.c plugin/events.h \
	plugin/libvirt.c plugin/libvirt.h \
	hooks/domxml.c hooks/hook.h \
	plugin/pools.c plugin/pools.h tools/pool-xml.c tools/pool-xml.h \
	$(NULL)
ppfd_CPPFLAGS = $(AM_CPPFLAGS) -DSYSCONFDIR='"$(sysconfdir)"'
# hooks/domxml.c without PPF_HOOK_DLOPEN_XML: libxml2 is linked (libvirt
# loads it anyway)
ppfd_CFLAGS = $(AM_CFLAGS) $(LIBVIRT_CFLAGS) $(LIBXML2_CFLAGS)
ppfd_LDADD = libppfdriver.la libppfpolicy.la libppfpolicycodec.la libppfcommon.la \
	$(LIBVIRT_LIBS) $(LIBXML2_LIBS) $(YAML_LIBS)
dist_man_MANS += docs/ppfd.8
EXTRA_DIST += plugin/local.mk

TESTS += tests/test-ppfd-libvirt.sh tests/test-prometheus.sh
EXTRA_DIST += tests/test-ppfd-libvirt.sh tests/test-prometheus.sh

# --- data/systemd/: units for hosts with systemd (Type=simple, foreground) --
# Under the prefix, so that make distcheck installs nowhere else; packagers
# set it, e.g. make systemdsystemunitdir=/usr/lib/systemd/system.
systemdsystemunitdir = $(prefix)/lib/systemd/system
systemdsystemunit_DATA = data/systemd/ppf-peripheral.service data/systemd/ppfd.service
EXTRA_DIST += data/systemd/ppf-peripheral.service.in data/systemd/ppfd.service.in
CLEANFILES += $(systemdsystemunit_DATA)
systemd_edit = $(SED) -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g'
data/systemd/ppf-peripheral.service: $(srcdir)/data/systemd/ppf-peripheral.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) data/systemd && \
	$(systemd_edit) $(srcdir)/data/systemd/ppf-peripheral.service.in >$@.tmp && mv $@.tmp $@
data/systemd/ppfd.service: $(srcdir)/data/systemd/ppfd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) data/systemd && \
	$(systemd_edit) $(srcdir)/data/systemd/ppfd.service.in >$@.tmp && mv $@.tmp $@

# the plugin's event logic against libvirt's test driver (no libvirtd)
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-lv
TESTS += tests/unit/test-lv
tests_unit_test_lv_SOURCES = tests/unit/test-lv.c plugin/libvirt.c plugin/libvirt.h \
	plugin/events.c plugin/events.h hooks/domxml.c hooks/hook.h
tests_unit_test_lv_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(LIBVIRT_CFLAGS) $(LIBXML2_CFLAGS)
tests_unit_test_lv_LDADD = libppfdriver.la libppfcommon.la $(CMOCKA_LIBS) $(LIBVIRT_LIBS) \
	$(LIBXML2_LIBS)
endif

# --- plugin/: ppfd, the host daemon (included from Makefile.am) -----------
sbin_PROGRAMS += ppfd
ppfd_SOURCES = plugin/ppfd.c plugin/policy-send.c plugin/policy-send.h \
	plugin/metrics.c plugin/metrics.h
ppfd_CPPFLAGS = $(AM_CPPFLAGS) -DSYSCONFDIR='"$(sysconfdir)"'
ppfd_LDADD = libppfdriver.la libppfpolicy.la libppfpolicycodec.la libppfcommon.la $(YAML_LIBS)
dist_man_MANS += docs/ppfd.8
EXTRA_DIST += plugin/local.mk

# --- tools/: ppf pools (ppfctl pool-*; included from Makefile.am) ---------
ppfctl_SOURCES += tools/ppfctl-pool.c
EXTRA_DIST += tools/pool.mk

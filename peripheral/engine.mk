# peripheral/engine.mk: automake fragment included by the top Makefile.am.
# The pattern recognition engine and its models, the Image Prediction
# Table, the scheduler, the buffer model, the NVM pattern store, the trace
# reader and replay (libppfengine), their tests and the replay benchmark
# (issue 6).  ppfctl links libppfengine for `ppfctl replay`.

noinst_LTLIBRARIES += libppfengine.la
libppfengine_la_SOURCES = \
	peripheral/engine.h \
	peripheral/engine.c \
	peripheral/engine-markov.c \
	peripheral/engine-seasonal.c \
	peripheral/engine-histogram.c \
	peripheral/engine-workload.c \
	peripheral/engine-lru.c \
	peripheral/table.c peripheral/table.h \
	peripheral/sched.c peripheral/sched.h \
	peripheral/bufmodel.c peripheral/bufmodel.h \
	peripheral/nvm.c peripheral/nvm.h \
	peripheral/trace.c peripheral/trace.h \
	peripheral/replay.c peripheral/replay.h \
	$(NULL)
libppfengine_la_LIBADD = libppfpolicycodec.la libppfcommon.la -lm

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test-engine tests/unit/test-nvm
TESTS += tests/unit/test-engine tests/unit/test-nvm
tests_unit_test_engine_SOURCES = tests/unit/test-engine.c
tests_unit_test_engine_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_engine_LDADD = libppfengine.la libppfpolicycodec.la libppfcommon.la \
	$(CMOCKA_LIBS) -lm
tests_unit_test_nvm_SOURCES = tests/unit/test-nvm.c
tests_unit_test_nvm_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_nvm_LDADD = libppfengine.la libppfpolicycodec.la libppfcommon.la \
	$(CMOCKA_LIBS) -lm
endif

TESTS += tests/test-replay.sh tests/test-predict.sh
EXTRA_DIST += \
	tests/test-replay.sh tests/test-predict.sh \
	tests/replay-data/README \
	tests/replay-data/daily.csv \
	tests/replay-data/chain.csv.gz \
	tests/replay-data/metrics.csv \
	tests/replay-data/policy.yaml \
	tests/replay-data/bad-columns.csv \
	tests/replay-data/bad-number.csv \
	tests/replay-data/bad-time.csv \
	tests/replay-data/bad-binary.csv \
	tests/replay-data/bad-empty.csv \
	tests/replay-data/bad-fields.csv \
	bench/bench-replay \
	bench/README-replay.md \
	docs/replay-results.md \
	docs/replay.svg \
	$(NULL)

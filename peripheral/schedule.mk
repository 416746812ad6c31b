# peripheral/schedule.mk: automake fragment included by the top Makefile.am (filled in by its feature)

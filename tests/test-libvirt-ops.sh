#!/usr/bin/env bash
# placeholder: written by the libvirt operations work
. "${top_builddir:-..}/tests/functions.sh" || exit 99
exit 77

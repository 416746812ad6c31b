#!/bin/sh
# Generates configure and the Makefile.in files from a git checkout.
# Then: ./configure [--enable-gcc-warnings] [--enable-sanitizers] && make
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf -fi

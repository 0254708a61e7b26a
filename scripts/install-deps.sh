#!/bin/sh
# Install the Debian packages bertpipe needs to build and test (run as root).
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config libjansson-dev libutf8proc-dev libopenblas-dev libopenblas-openmp-dev libdnnl-dev \
    parallel bats jq perl python3 python3-pip git curl unzip ca-certificates time \
    libopenmpi-dev openmpi-bin \
    groff-base man-db gnuplot-nox >/dev/null

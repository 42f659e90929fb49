#!/bin/sh
# Install, with apt-get, only the Debian packages nlpd needs that are missing.
# Idempotent and silent when everything is present; `apt-get update` only when needed.
set -eu

PKGS="build-essential pkg-config clang clang-format libclang-rt-dev \
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libopenblas-dev libopenblas-openmp-dev libconfig-dev libcjson-dev libmicrohttpd-dev libhiredis-dev libsystemd-dev \
curl prometheus python3 python3-yaml python3-zmq python3-protobuf python3-numpy python3-redis python3-venv python3-pip man-db sentencepiece redis-server"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

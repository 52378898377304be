#!/usr/bin/env bash
# Installs the system packages tapmirror needs for a task, and only those
# that are missing, saying what it installs: apt-get on Debian and Ubuntu,
# brew on macOS.
#
#   scripts/deps.sh build   compiler, CMake, libuv, libpcap, cJSON,
#                           http_parser, zlib, brotli
#   scripts/deps.sh check   build + what the tests use (cmocka, python3,
#                           tcpdump, iproute2, clang, valgrind)
#   scripts/deps.sh bench   check + perf tools for the benchmarks
set -euo pipefail

task=${1:-build}

debian_build=(gcc make cmake pkg-config libuv1-dev libpcap-dev libcjson-dev
              libhttp-parser-dev zlib1g-dev libbrotli-dev)
debian_check=(libcmocka-dev python3 tcpdump iproute2 procps psmisc
              clang libclang-rt-14-dev valgrind)
debian_bench=(tcpflow linux-perf)
brew_build=(cmake pkg-config libuv cjson http-parser brotli)
brew_check=(cmocka python3)
brew_bench=(tcpflow)

say() { printf 'tapmirror: %s\n' "$*" >&2; }

case "$task" in
build) debian=("${debian_build[@]}"); brew=("${brew_build[@]}") ;;
check) debian=("${debian_build[@]}" "${debian_check[@]}")
       brew=("${brew_build[@]}" "${brew_check[@]}") ;;
bench) debian=("${debian_build[@]}" "${debian_check[@]}" "${debian_bench[@]}")
       brew=("${brew_build[@]}" "${brew_check[@]}" "${brew_bench[@]}") ;;
*) say "unknown task '$task' (build, check or bench)"; exit 2 ;;
esac

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*"
        exit 1
    fi
}

if [ "$(uname -s)" = Darwin ]; then
    if ! command -v brew >/dev/null 2>&1; then
        say "Homebrew is needed to install: ${brew[*]} (https://brew.sh)"
        exit 1
    fi
    missing=()
    for p in "${brew[@]}"; do
        brew list --versions "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing missing packages with brew: ${missing[*]}"
        brew install "${missing[@]}"
    fi
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    say "cannot check packages on this system; install: ${debian[*]}"
    exit 0
fi
missing=()
for p in "${debian[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
say "installing missing packages with apt-get: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    </dev/null >/tmp/tapmirror-apt.log 2>&1 || {
    tail -n 20 /tmp/tapmirror-apt.log >&2
    say "apt-get install failed (full log: /tmp/tapmirror-apt.log)"
    exit 1
}
say "installed: ${missing[*]}"

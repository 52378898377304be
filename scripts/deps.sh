#!/usr/bin/env bash
# Installs the system packages tapmirror needs for a task, and only those
# that are missing, saying what it installs: apt-get on Debian and Ubuntu,
# brew on macOS.
#
#   scripts/deps.sh build   compiler, CMake, pkg-config, libuv, libpcap, cJSON,
#                           http_parser, zlib, brotli
#   scripts/deps.sh demo    build + python3 (the demo service)
#   scripts/deps.sh check   build + what the tests use (cmocka, python3,
#                           tcpdump, iproute2, iptables, openssl, clang,
#                           valgrind, PostgreSQL, Redis, tshark, curl; on Debian chromium, for
#                           the --diff-report page's test)
#   scripts/deps.sh bench   check + perf tools for the benchmarks
#
# With --check-only it installs nothing: it names the missing packages and
# the command that installs them, and exits 1 (`make` builds this way, so
# that building never runs the package manager).
set -euo pipefail

task=${1:-build}
check_only=
case "${2:-}" in
"") ;;
--check-only) check_only=1 ;;
*) printf 'tapmirror: unknown option %s (--check-only)\n' "$2" >&2; exit 2 ;;
esac

debian_build=(gcc make cmake pkg-config libuv1-dev libpcap-dev libcjson-dev
              libhttp-parser-dev zlib1g-dev libbrotli-dev)
debian_demo=(python3)
debian_check=(libcmocka-dev python3 tcpdump iproute2 iptables openssl procps
              psmisc clang libclang-rt-14-dev valgrind chromium postgresql
              tshark curl redis-server redis-tools)
debian_bench=(tcpflow linux-perf)
brew_build=(cmake pkg-config libuv cjson http-parser brotli)
brew_demo=(python3)
brew_check=(cmocka python3)
brew_bench=(tcpflow)

say() { printf 'tapmirror: %s\n' "$*" >&2; }

case "$task" in
build) debian=("${debian_build[@]}"); brew=("${brew_build[@]}") ;;
demo)  debian=("${debian_build[@]}" "${debian_demo[@]}")
       brew=("${brew_build[@]}" "${brew_demo[@]}") ;;
check) debian=("${debian_build[@]}" "${debian_check[@]}")
       brew=("${brew_build[@]}" "${brew_check[@]}") ;;
bench) debian=("${debian_build[@]}" "${debian_check[@]}" "${debian_bench[@]}")
       brew=("${brew_build[@]}" "${brew_check[@]}" "${brew_bench[@]}") ;;
*) say "unknown task '$task' (build, demo, check or bench)"; exit 2 ;;
esac

# The command that installs what this task needs.
if [ "$task" = build ]; then
    install_hint='make deps'
else
    install_hint="scripts/deps.sh $task"
fi

# --check-only: report what is missing, install nothing.
report_missing() {
    say "missing packages: $*; run \`$install_hint\` to install them"
    exit 1
}

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
        # Without Homebrew CMake reports whatever is missing.
        [ -z "$check_only" ] || exit 0
        say "Homebrew is needed to install: ${brew[*]} (https://brew.sh)"
        exit 1
    fi
    missing=()
    for p in "${brew[@]}"; do
        brew list --versions "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ] && [ -n "$check_only" ]; then
        report_missing "${missing[@]}"
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing missing packages with brew: ${missing[*]}"
        brew install "${missing[@]}"
    fi
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: CMake reports whatever is missing when it configures.
    [ -n "$check_only" ] ||
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
[ -z "$check_only" ] || report_missing "${missing[@]}"
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

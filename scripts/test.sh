#!/usr/bin/env bash
# Installs dependencies, builds vtpmca twice (plain and with ASan+UBSan) and runs the whole
# test suite in each build. Usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== format (clang-format, .clang-format) =="
if ! git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror; then
  echo "scripts/test.sh: run clang-format -i on the files above" >&2
  exit 1
fi

jobs=$(nproc)
run_suite() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

echo "== plain build =="
run_suite build

if [ "${1:-}" != "--no-sanitize" ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_suite build-asan -DVTPMCA_SANITIZE=ON
fi
echo "scripts/test.sh: all suites passed"

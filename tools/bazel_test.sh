#!/usr/bin/env bash
# Builds and tests the project with Bazel, offline: `tools/bazel_test.sh [bazel test options]`.
#
# Installs Debian's Bazel (bazel-bootstrap, Bazel 4.2.3) if `bazel` is missing, then runs
# `bazel test //...` with the Python environment tf_reorder is installed in (PYTHON_BIN_PATH,
# default: the interpreter `python3` runs). Extra arguments go to `bazel test`: options,
# e.g. `--test_tag_filters=-slow` for the quick subset, and target patterns, which then
# replace //... (`tools/bazel_test.sh //tests:test_cli`). Runs Bazel in --batch mode, so no
# Bazel server is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "bazel_test.sh: error: $*" >&2
  exit 1
}

if ! command -v bazel >/dev/null 2>&1; then
  echo "bazel_test.sh: bazel not found; installing Debian's bazel-bootstrap" >&2
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    fail "bazel is not installed and installing it needs root (apt-get install bazel-bootstrap)"
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q \
    && "${sudo[@]}" apt-get install -y -q --no-install-recommends bazel-bootstrap \
    || fail "could not install bazel-bootstrap with apt-get (is a Debian mirror reachable?)"
  command -v bazel >/dev/null 2>&1 || fail "bazel-bootstrap installed, but no bazel on PATH"
fi

if [[ -z ${PYTHON_BIN_PATH:-} ]]; then
  PYTHON_BIN_PATH=$(python3 -c 'import sys; print(sys.executable)') \
    || fail "no python3 on PATH; set PYTHON_BIN_PATH to the interpreter tf_reorder is installed in"
fi
export PYTHON_BIN_PATH
echo "bazel_test.sh: $(bazel --version), Python ${PYTHON_BIN_PATH}" >&2

targets=(//...)
for arg in "$@"; do
  if [[ $arg != -* ]]; then
    targets=()
  fi
done
bazel --batch test "$@" "${targets[@]}"

#!/usr/bin/env bash
# Developer entry point for derma: installs what is missing, builds, runs dermad, runs the tests.
# Runs as root on Debian 12 from any working directory.
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly BUILD_DIR="${REPO_ROOT}/build"
readonly ASAN_DIR="${REPO_ROOT}/build-asan"
readonly TSAN_DIR="${REPO_ROOT}/build-tsan"
readonly FUZZ_DIR="${REPO_ROOT}/build-fuzz"
readonly TOOLS_DIR="${REPO_ROOT}/.tools"
readonly BUF_VERSION="1.75.0"
readonly BUF_BIN="${TOOLS_DIR}/node_modules/.bin/buf"

readonly DEBIAN_PACKAGES=(
  cmake g++ make pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  python3-grpcio python3-grpc-tools python3-protobuf python3-pytest
  golang-github-gogo-googleapis-dev grpc-proto clang-format prometheus
  libasan8 libubsan1 libtsan2 clang-14 libclang-rt-14-dev llvm-14
  libmodbus-dev socat python3-pymodbus nginx libssl-dev
  python3-setuptools python3-wheel python3-pip python3-venv openssl
)

# The test binaries of the suites labelled `threads` (top CMakeLists.txt): what the
# ThreadSanitizer build builds and runs.
readonly TSAN_TARGETS=(
  derma_core_test derma_service_test derma_host_config_test derma_fleet_test derma_audit_test
  derma_metrics_test
)

usage() {
  cat <<USAGE
usage: bash deploy/dev.sh <command> [args]

  deps          install missing Debian packages and the pinned buf (into .tools/)
  build         deps, then configure (Release) and build into build/ with -j2
  run           build, then start build/plugin/host/dermad with deploy/fleet.textproto [args]
  run-modbus    build, then start the Modbus device emulator serving deploy/fleet-modbus.textproto
                and dermad driving it over Modbus TCP and an RTU pseudo-terminal [dermad args]
  run-front     build, then start dermad on 127.0.0.1:50061 [dermad args] behind the nginx front
                of deploy/nginx/derma-front.conf (TLS on :50051 with /etc/derma/tls/server.pem and
                server.key): how a network-facing station runs
  test          build, then run the whole test suite with ctest (includes buf lint), then
                sanitize, then fuzz (what CI runs)
  sanitize      deps, then the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
                (build-asan/), then the multi-threaded suites under ThreadSanitizer (build-tsan/)
  fuzz [RUNS]   deps, then build the libFuzzer targets of tests/fuzz with clang (build-fuzz/) and
                run each on its seed corpus for its CI number of inputs (or RUNS inputs each)
USAGE
}

log() { printf 'dev.sh: %s\n' "$*" >&2; }

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

deps() {
  local wanted=("${DEBIAN_PACKAGES[@]}") missing=() pkg
  # node v20 may come from outside Debian; only fall back to Debian's when npm is absent.
  if ! command -v npm >/dev/null 2>&1; then
    wanted+=(nodejs npm)
  fi
  for pkg in "${wanted[@]}"; do
    is_installed "${pkg}" || missing+=("${pkg}")
  done
  if ((${#missing[@]} > 0)); then
    log "installing missing packages: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    log "all Debian packages present"
  fi

  if [[ -x "${BUF_BIN}" ]] && [[ "$("${BUF_BIN}" --version 2>/dev/null)" == "${BUF_VERSION}" ]]; then
    log "buf ${BUF_VERSION} present"
  else
    log "installing buf ${BUF_VERSION} into .tools/"
    npm install --prefix "${TOOLS_DIR}" --no-audit --no-fund "@bufbuild/buf@${BUF_VERSION}"
  fi
}

build() {
  deps
  cmake -S "${REPO_ROOT}" -B "${BUILD_DIR}" -DCMAKE_BUILD_TYPE=Release
  cmake --build "${BUILD_DIR}" -j2
}

run() {
  build
  local dermad="${BUILD_DIR}/plugin/host/dermad"
  if [[ ! -x "${dermad}" ]]; then
    log "error: ${dermad} was not built (the dermad target is not in plugin/host/CMakeLists.txt yet)"
    exit 1
  fi
  exec "${dermad}" --config "${REPO_ROOT}/deploy/fleet.textproto" "$@"
}

run_modbus() {
  build
  local config="${REPO_ROOT}/deploy/fleet-modbus.textproto"
  local emulator="${BUILD_DIR}/sim/modbus_emulator/derma_modbus_emulator"
  "${emulator}" --config "${config}" --grpc_listen 127.0.0.1:50052 --print_events=false &
  EMULATOR_PID=$!
  # The emulator goes with this script however it ends (dermad's exit, Ctrl-C, SIGTERM).
  trap 'kill "${EMULATOR_PID}" 2>/dev/null; wait "${EMULATOR_PID}" 2>/dev/null' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  sleep 0.5
  if ! kill -0 "${EMULATOR_PID}" 2>/dev/null; then
    log "error: the Modbus emulator did not start"
    exit 1
  fi
  log "emulator: devices on 127.0.0.1:1502 (TCP) and /tmp/derma-modbus-bus-1 (RTU); its Simulator on 127.0.0.1:50052"
  "${BUILD_DIR}/plugin/host/dermad" --config "${config}" "$@"
}

run_front() {
  build
  local config="${REPO_ROOT}/deploy/nginx/derma-front.conf"
  "${BUILD_DIR}/plugin/host/dermad" --config "${REPO_ROOT}/deploy/fleet.textproto" \
    --listen 127.0.0.1:50061 "$@" &
  DERMAD_PID=$!
  # dermad goes with this script however it ends (nginx's exit, Ctrl-C, SIGTERM).
  trap 'kill "${DERMAD_PID}" 2>/dev/null; wait "${DERMAD_PID}" 2>/dev/null' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  nginx -t -c "${config}"
  log "the front: gRPC over TLS on :50051 to dermad on 127.0.0.1:50061"
  nginx -c "${config}" -g 'daemon off;'
}

run_tests() {
  build
  (cd "${BUILD_DIR}" && ctest --output-on-failure -j2)
  sanitize
  fuzz
}

# timed NAME COMMAND...: runs COMMAND and logs how long it took.
timed() {
  local name="$1" start="${SECONDS}"
  shift
  "$@"
  log "${name}: $((SECONDS - start)) s"
}

asan() {
  cmake -S "${REPO_ROOT}" -B "${ASAN_DIR}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DDERMA_SANITIZE=address;undefined"
  timed "asan build" cmake --build "${ASAN_DIR}" -j2
  # Left out of the ASan run (they run in the ordinary ctest): python_client and
  # python_example_*, which time a real-time dermad by the wall clock (samples over 2 s, a
  # 0.7–1.5 s pause) that an instrumented dermad on a busy 2-core machine can miss (185 of
  # 190–210 samples seen once).
  (cd "${ASAN_DIR}" &&
    ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timed "asan ctest" ctest --output-on-failure -j2 \
      -E '^(python_client|python_example_.*)$')
}

tsan() {
  cmake -S "${REPO_ROOT}" -B "${TSAN_DIR}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDERMA_SANITIZE=thread
  timed "tsan build" cmake --build "${TSAN_DIR}" -j2 --target "${TSAN_TARGETS[@]}"
  (cd "${TSAN_DIR}" &&
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
    timed "tsan ctest" ctest --output-on-failure -j2 -L threads)
}

sanitize() {
  deps
  asan
  tsan
}

fuzz() {
  local runs="${1:-0}"
  deps
  cmake -S "${REPO_ROOT}" -B "${FUZZ_DIR}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DDERMA_FUZZ=ON "-DDERMA_FUZZ_RUNS=${runs}"
  timed "fuzz build" cmake --build "${FUZZ_DIR}" -j2 --target derma_fuzzers
  (cd "${FUZZ_DIR}" &&
    ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timed "fuzz ctest" ctest --output-on-failure -j2 -L fuzz)
}

main() {
  if (($# == 0)); then
    usage >&2
    exit 2
  fi
  local command="$1"
  shift
  case "${command}" in
    deps) deps ;;
    build) build ;;
    run) run "$@" ;;
    run-modbus) run_modbus "$@" ;;
    run-front) run_front "$@" ;;
    test) run_tests ;;
    sanitize) sanitize ;;
    fuzz) fuzz "$@" ;;
    -h | --help | help) usage ;;
    *)
      log "unknown command: ${command}"
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"

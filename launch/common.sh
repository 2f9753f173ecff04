# Shared by the launch/ scripts (sourced, not run). Finds the repo, Swift and mpirun, and sets the
# OpenMPI variables a root user needs. Nothing here changes the machine.
RADA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="$PATH:/opt/swift/usr/bin"
fi
# OpenMPI refuses to run as root unless told; containers and CI machines often are root.
if [ "$(id -u)" = "0" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Build configuration for the scripts: debug for tests (fast to compile), release for real runs.
rada_build() {  # rada_build debug|release  -> prints the binary path
  local config="$1"
  (cd "$RADA_ROOT" && swift build -c "$config" --product rada >&2) || return 1
  echo "$RADA_ROOT/.build/$config/rada"
}

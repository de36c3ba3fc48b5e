#!/usr/bin/env bash
# Install the Debian/Ubuntu packages SmartTrees needs, only those missing.
# Usage: system-packages.sh [test|bench]   ("test" adds headless Chromium for the browser tests,
# "bench" adds wrk for bench/bench_tiles.py and bench/bench_api.py)
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

want=(postgresql postgresql-contrib python3-venv libpq5)
[ "${1:-}" = "test" ] && want+=(chromium fonts-dejavu-core gdal-bin pgbouncer)  # gdal-bin: the GDAL QGIS uses; pgbouncer: tests/test_pgbouncer.py
# python3-qgis: QGIS opening a raster's coverage and tiles (tests/test_raster_qgis.py)
[ "${1:-}" = "test" ] && want+=(python3-qgis)
[ "${1:-}" = "bench" ] && want+=(wrk)

missing=()
for pkg in "${want[@]}"; do have "$pkg" || missing+=("$pkg"); done
# PostGIS for whichever PostgreSQL major version the distribution ships (15 on Debian 12).
major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
if [ -z "$major" ] || ! have "postgresql-$major-postgis-3"; then missing+=("postgis-for-postgresql"); fi

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "Missing system packages (${missing[*]}): install PostgreSQL with PostGIS by hand." >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
pkgs=()
for pkg in "${missing[@]}"; do [ "$pkg" = postgis-for-postgresql ] || pkgs+=("$pkg"); done
[ ${#pkgs[@]} -eq 0 ] || $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
major=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
have "postgresql-$major-postgis-3" || $SUDO apt-get install -y -qq "postgresql-$major-postgis-3" >/dev/null
# Debian starts a system-wide cluster on install; SmartTrees runs its own and needs none.

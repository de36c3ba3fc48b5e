#!/usr/bin/env bash
# The full-scale province load behind `smarttrees demo`: generate + COPY + indexes + ANALYZE,
# timed with /usr/bin/time on a fresh managed PostGIS in a throwaway folder.
# Usage: bench/bench_demo_load.sh            (from anywhere; needs .venv and /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
st=.venv/bin/smarttrees
unset SMARTTREES_DATABASE_URL
folder=$(mktemp -d /tmp/st-demo-bench.XXXXXX)
chmod 755 "$folder"  # when run as root the server runs as another user and must enter it
export SMARTTREES_DATA_DIR=$folder
cleanup() { "$st" db stop >/dev/null 2>&1 || true; rm -rf "$folder"; }
trap cleanup EXIT

"$st" db start >/dev/null
url=$("$st" db url)
echo "machine:    $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
echo "server:     $(psql "$url" -Atc "SELECT split_part(version(), ' on ', 1) || ', PostGIS ' || postgis_lib_version()")"
echo "python:     $(.venv/bin/python -c 'import sys, numpy, shapely, psycopg; print(sys.version.split()[0], "numpy", numpy.__version__, "shapely", shapely.__version__, "psycopg", psycopg.__version__)')"
echo "command:    /usr/bin/time -v smarttrees -vv generate --scale full   (fresh cluster: migrations included)"

/usr/bin/time -v "$st" -vv generate --scale full 2>"$folder/stderr" >"$folder/stdout"
grep -v "^DEBUG \(psycopg\|yoyo\|asyncio\)" "$folder/stdout" || true
grep "smarttrees.generate" "$folder/stderr" | sed 's/^DEBUG smarttrees.generate: /  step  /'
echo "wall:       $(grep 'Elapsed (wall clock)' "$folder/stderr" | awk '{print $NF}')"
echo "peak RSS:   $(grep 'Maximum resident' "$folder/stderr" | awk '{printf "%.0f MiB", $NF / 1024}') (the Python process)"
echo "CPU:        user $(grep 'User time' "$folder/stderr" | awk '{print $NF}') s, system $(grep 'System time' "$folder/stderr" | awk '{print $NF}') s (the Python process; the rest is PostgreSQL)"
psql "$url" -At -F $'\t' -c "
    SELECT 'size', relname, pg_size_pretty(pg_total_relation_size(c.oid))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('smarttrees', 'restricted') AND c.relkind = 'r'
    ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 5" | sed 's/^size\t/size:       /'

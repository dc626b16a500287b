#!/usr/bin/env bash
# npm run bench [-- --size 1G --rss-size 4G --runs 3 | --quick | --tsx | --keep | --out FILE | --restore-only | --backup-only]
# The backup and restore benchmarks (bench/backup.ts, bench/restore.ts; results in docs/benchmarks/).
# Not part of `npm test`. `npm run bench:restore` runs the restore benchmark alone.
# It measures the server compiled (node dist/main.js) when the project has a build script, else
# through tsx; --tsx forces tsx.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in restic pg_dump pg_restore tar gzip du; do
  command -v "$tool" >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/"$tool" >/dev/null 2>&1 || {
    echo "bench: $tool is missing (run npm run setup)" >&2; exit 1; }
done

force_tsx=0
for a in "$@"; do [ "$a" = "--tsx" ] && force_tsx=1; done
if [ "$force_tsx" = 0 ] && node -e 'process.exit(require("./package.json").scripts?.build ? 0 : 1)'; then
  echo "bench: npm run build (the server is measured compiled)"
  if ! npm run --silent build >&2; then
    echo "bench: the build failed; measuring through tsx instead" >&2
    set -- "$@" --tsx
  fi
fi

# The restore benchmark (bench/restore.ts; docs/benchmarks/restore.md) follows the backup one.
# --restore-only / --backup-only run one of them; --no-safety, --no-kubectl, --bundle and
# --restore-out=FILE are the restore benchmark's own.
only=""
backup_args=()
restore_args=()
for a in "$@"; do
  case "$a" in
    --restore-only) only=restore ;;
    --backup-only) only=backup ;;
    --no-safety|--no-kubectl|--bundle|--restore-out=*) restore_args+=("$a") ;;
    *) backup_args+=("$a"); restore_args+=("$a") ;;
  esac
done
# The benchmark process hosts the simulated cluster, whose exec streams are the same Buffer churn as
# the server's: it runs with the server's heap floor (src/util/heap.ts), so the stand-in for the
# cluster's machines does not spend the shared cores on full collections, on every path alike.
harness=(--initial-old-space-size=128)
if [ "$only" != restore ]; then node "${harness[@]}" --import tsx bench/backup.ts "${backup_args[@]}"; fi
if [ "$only" != backup ]; then node "${harness[@]}" --import tsx bench/restore.ts "${restore_args[@]}"; fi
if [ "$only" = "" ]; then node --import tsx bench/load.ts $(for a in "$@"; do case "$a" in --quick|--tsx|--keep) echo "$a";; esac; done); fi  # load benchmark (docs/benchmarks/load.md)

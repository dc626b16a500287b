#!/usr/bin/env bash
# npm run bench [-- --size 1G --rss-size 4G --runs 3 | --quick | --tsx | --keep | --out FILE]
# The backup benchmark (bench/backup.ts; results in docs/benchmarks/backup.md). Not part of `npm test`.
# It measures the server compiled (node dist/main.js) when the project has a build script, else
# through tsx; --tsx forces tsx.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in restic pg_dump tar gzip du; do
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

exec node --import tsx bench/backup.ts "$@"

#!/usr/bin/env bash
# Every relative link and heading anchor of README.md, CHANGELOG.md and docs/*.md,
# checked offline: files that must exist, and headings that must exist in the pages
# they point into (links to other sites are not followed). Exits non-zero on a broken
# one. remark-cli with remark-validate-links, pinned in .ci/links/package-lock.json and
# installed with `npm ci` into .ci/links/node_modules (again when the lock file changes).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.ci/links

lock=$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$tools/node_modules/.installed-lock" 2>/dev/null)" != "$lock" ]; then
  (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$lock" > "$tools/node_modules/.installed-lock"
fi

echo "== links and anchors of README.md, CHANGELOG.md, docs/*.md (offline)"
# --frail: a warning (a missing file or heading) fails the run; --no-stdout: check only.
"$tools/node_modules/.bin/remark" --rc-path "$tools/remarkrc.json" --no-config \
  --frail --no-stdout --quiet --no-color README.md CHANGELOG.md docs/*.md
echo "links: all relative links and anchors resolve"

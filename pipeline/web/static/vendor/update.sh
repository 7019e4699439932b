#!/usr/bin/env bash
# Vendored JavaScript of the web pages, taken from the npm registry at a pinned version (no CDN:
# the machine that runs churnwatch may be offline). Run this to update, then commit the files and
# SHA256SUMS; tests/web/test_pages.py checks the files against SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")"
HTMX_VERSION=2.0.11
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@${HTMX_VERSION}" >/dev/null && tar xzf "htmx.org-${HTMX_VERSION}.tgz")
cp "$tmp/package/dist/htmx.min.js" htmx.min.js
cp "$tmp/package/LICENSE" htmx.LICENSE
sha256sum htmx.min.js > SHA256SUMS
echo "htmx.org ${HTMX_VERSION}: $(cat SHA256SUMS)"

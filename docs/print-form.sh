#!/usr/bin/env bash
# Renders a notification form exported as HTML to PDF with headless Chromium, then to PNG pages,
# so a person can check that it prints like the form in the contract (別記様式).
#   mamori form --contract C --format html --out form.html
#   docs/print-form.sh form.html            # writes form.pdf and form-1.png, form-2.png…
# Needs Debian's chromium, fonts-noto-cjk and poppler-utils.
set -euo pipefail
html="$(realpath "$1")"
base="${html%.html}"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --no-pdf-header-footer --print-to-pdf="$base.pdf" "file://$html" 2>/dev/null
pdftoppm -r 80 -png "$base.pdf" "$base"
pages=$(pdfinfo "$base.pdf" 2>/dev/null | awk '/^Pages:/ {print $2}')
echo "wrote $base.pdf ($pages page(s)) and PNG pages ${base}-*.png"

#!/usr/bin/env bash
# Rebuild the web pages' vendored assets (committed, so nobody running the hub needs npm):
#   hub/web/static/govuk/   GOV.UK Frontend compiled with Arial instead of GDS Transport
#                           (that font and the crown are for GOV.UK services only; see ADR 0011)
#   tests/e2e/assets/       axe-core, for the accessibility checks of the browser tests
# Needs node and npm. Usage: scripts/build-web-assets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GOVUK_FRONTEND_VERSION=6.6.0
AXE_CORE_VERSION=4.14.1
SASS_VERSION=1.93.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm init -y >/dev/null &&
  npm install --silent --no-audit --no-fund --save-exact \
    "govuk-frontend@$GOVUK_FRONTEND_VERSION" "axe-core@$AXE_CORE_VERSION" "sass@$SASS_VERSION" >/dev/null)

cat >"$work/hub.scss" <<'SCSS'
// GOV.UK Frontend for a local-authority service: no GDS Transport, no crown images.
@use "govuk-frontend/dist/govuk" with (
  $govuk-font-family: (arial, sans-serif),
  $govuk-include-default-font-face: false,
  $govuk-assets-path: "/static/govuk/assets/"
);
SCSS

out=hub/web/static/govuk
rm -rf "$out"
mkdir -p "$out"
(cd "$work" && npx --no-install sass --no-source-map --style=compressed \
  --load-path=node_modules --quiet-deps hub.scss "govuk-frontend.min.css")
cp "$work/govuk-frontend.min.css" "$out/govuk-frontend.min.css"
cp "$work/node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js" "$out/govuk-frontend.min.js"
cat >"$out/LICENSE.txt" <<TXT
GOV.UK Frontend $GOVUK_FRONTEND_VERSION (https://github.com/alphagov/govuk-frontend), npm package
"govuk-frontend", licence: MIT (package.json "license"). Compiled by scripts/build-web-assets.sh
with Arial in place of the GDS Transport font; no fonts or crown images are copied.

The MIT License (MIT)

Copyright (c) 2018 Crown Copyright (Government Digital Service)

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
TXT

axe=tests/e2e/assets
mkdir -p "$axe"
cp "$work/node_modules/axe-core/axe.min.js" "$axe/axe.min.js"
cp "$work/node_modules/axe-core/LICENSE" "$axe/axe-core-LICENSE.txt"
echo "axe-core $AXE_CORE_VERSION (MPL-2.0), from npm; see scripts/build-web-assets.sh" >"$axe/README.txt"

ls -l "$out" "$axe"

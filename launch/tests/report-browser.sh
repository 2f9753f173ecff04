#!/usr/bin/env bash
# What: `rada report` in a real browser. Makes a small real run (synthetic data, tiny model, 12 steps, eval every
#       4) and a second shorter one, writes the run report and the comparison page, renders both with headless
#       Chromium (installed from Debian if missing: about 15 s), and checks the DOM keeps every chart element
#       and the screenshots are not blank and show the chart colours. Exits 77 (skipped) without Chromium.
# Example: bash launch/tests/report-browser.sh .build/debug/rada   (REPORT_SHOTS=DIR keeps the screenshots)
# Expected: exit 0 and "report-browser: all checks passed", in about a minute.
set -uo pipefail
rada="${1:?usage: report-browser.sh RADA_BINARY}"
rada="$(cd "$(dirname "$rada")" && pwd)/$(basename "$rada")"
fail() { echo "FAILED: $*"; exit 1; }

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  start=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }
  browser="$(command -v chromium || true)"
  [ -n "$browser" ] && echo "installed chromium in $((SECONDS - start)) s"
fi
if [ -z "$browser" ]; then
  echo "skipped: chromium is not installed and could not be installed (needs root and Debian's apt)"; exit 77
fi

work="$(mktemp -d /tmp/rada-report-browser.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# A small real run: 16 classes x 4 training images, tiny model, eval every 4 steps; then a shorter second run.
"$rada" synth --out data --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out tiny.safetensors >/dev/null || fail "rada create-model"
train() {  # train RUN_DIR STEPS LR
  "$rada" train --setting eft --model tiny.safetensors --train imagefolder:data/train --eval imagefolder:data/test \
    --run-dir "$1" --steps "$2" --lr "$3" --batch-size 8 --eval-every 4 --no-augment --threads 1 \
    --feature-cache "$work/cache" >"$1.log" 2>&1 || { cat "$1.log"; fail "rada train $1"; }
}
train run-a 12 3.5e-3
train run-b 8 1e-3

"$rada" report run-a --out report.html || fail "rada report"
"$rada" report --compare run-a run-b --out compare.html || fail "rada report --compare"

render() {  # render PAGE PNG: a screenshot of a 1200 px wide window (chromium prints harmless dbus notes)
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$2" \
    --window-size=1200,2000 "file://$work/$1" >"$2.log" 2>&1
  [ -s "$2" ] || { cat "$2.log"; fail "chromium wrote no screenshot of $1"; }
}
check_dom() {  # check_dom PAGE: the browser's DOM keeps every svg and polyline the file has (broken markup loses some)
  local dom; dom="$(timeout 120 "$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$work/$1" 2>/dev/null)"
  for tag in svg polyline table; do
    local in_file in_dom
    in_file="$(grep -o "<$tag[ >]" "$1" | wc -l)"; in_dom="$(echo "$dom" | grep -o "<$tag[ >]" | wc -l)"
    [ "$in_file" -gt 0 ] || fail "$1 has no <$tag>"
    [ "$in_file" = "$in_dom" ] || fail "$1: $in_file <$tag> in the file but $in_dom in the browser's DOM"
    echo "$1: $in_dom <$tag> elements in the DOM"
  done
}
check_dom report.html
check_dom compare.html

# Sorting: click the "steps" header of the comparison table once (ascending): run-b (8 steps) moves above run-a.
sed 's|</body>|<script>Array.prototype.slice.call(document.querySelectorAll("th")).filter(function (t) { return t.textContent === "steps"; })[0].click();</script></body>|' \
  compare.html > sorted.html
order="$(timeout 120 "$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$work/sorted.html" 2>/dev/null \
  | grep -o '<td data-v="run-[ab]">' | tr -d '\n')"
[ "$order" = '<td data-v="run-b"><td data-v="run-a">' ] || fail "sorting by steps gave row order: $order"
echo "compare.html: clicking 'steps' sorts the runs ascending"
render report.html report.png
render compare.html compare.png
# Run report: the first series of every chart is blue, the loss chart's second (train/ce) orange.
"$rada" report --check-png report.png --expect-color "#1f77b4" --expect-color "#ff7f0e" || fail "report screenshot"
# Comparison: run-a blue, run-b orange.
"$rada" report --check-png compare.png --expect-color "#1f77b4" --expect-color "#ff7f0e" || fail "compare screenshot"
if [ -n "${REPORT_SHOTS:-}" ]; then
  mkdir -p "$REPORT_SHOTS" && cp report.png compare.png report.html compare.html "$REPORT_SHOTS/"
fi
echo "report-browser: all checks passed"

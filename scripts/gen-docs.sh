#!/usr/bin/env bash
# Regenerate the settings reference in README.md and man/lqs-hookd.conf.5
# from the daemon's own settings table (lqs-hookd --print-reference).
# usage: scripts/gen-docs.sh BINARY [SRCDIR]   (rewrites files in SRCDIR)
set -euo pipefail
BIN=$1
SRC=${2:-$(cd "$(dirname "$0")/.." && pwd)}
ref=$(mktemp)
trap 'rm -f "$ref" "$ref".*' EXIT
"$BIN" --print-reference >"$ref"

# man page entries
tail -n +3 "$ref" | while IFS='|' read -r _ sec key def bounds env meaning _; do
	trim() { sed 's/^ *//;s/ *$//'; }
	k=$(tr -d '`' <<<"$key" | trim)
	d=$(tr -d '`' <<<"$def" | trim)
	b=$(trim <<<"$bounds")
	e=$(tr -d '`' <<<"$env" | trim)
	m=$(trim <<<"$meaning")
	printf '.TP\n.B [%s] %s\n\\&%s\nDefault: %s.%s Environment: %s.\n' "$(trim <<<"$sec")" "$k" "$m" "$d" \
		"${b:+ Range: $b.}" "$e"
done >"$ref.man"

# replace_between FILE BEGIN END CONTENT_FILE
replace_between() {
	# markers via ENVIRON: awk -v would eat the backslash of a roff comment
	B="$2" E="$3" F="$4" awk '
		$0 == ENVIRON["B"] { print; while ((getline line < ENVIRON["F"]) > 0) print line; skip = 1; next }
		$0 == ENVIRON["E"] { skip = 0 }
		!skip { print }' "$1" >"$1.tmp"
	mv "$1.tmp" "$1"
}
replace_between "$SRC/README.md" "<!-- settings:begin -->" "<!-- settings:end -->" "$ref"
replace_between "$SRC/man/lqs-hookd.conf.5" '.\" settings:begin' '.\" settings:end' "$ref.man"

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

# example configuration: every setting, commented out, with its help text
# wrapped at spaces only (fmt never splits a word)
example_value() { # KEY DEFAULT
	case "$1" in
	secret) printf '#secret = change-me\n#secret_file = /etc/lqs-hookd/hook-secret\n' ;;
	admin_token) printf '#admin_token =\n#admin_token_file = /etc/lqs-hookd/admin-token\n' ;;
	api_key_secret) printf '#api_key_secret =\n#api_key_secret_file = /etc/lqs-hookd/api-key-secret\n' ;;
	*) printf '#%s = %s\n' "$1" "$2" | sed 's/ $//' ;;
	esac
}
section=""
tail -n +3 "$ref" | while IFS='|' read -r _ sec key def bounds env meaning _; do
	trim() { sed 's/^ *//;s/ *$//'; }
	s=$(trim <<<"$sec")
	k=$(tr -d '`' <<<"$key" | trim | sed 's/,.*//')
	d=$(tr -d '`' <<<"$def" | trim)
	[ "$d" = "—" ] && d=""
	b=$(trim <<<"$bounds")
	e=$(tr -d '`' <<<"$env" | trim)
	if [ "$s" != "$section" ]; then
		[ -n "$section" ] && echo
		printf '[%s]\n' "$s"
		section=$s
	fi
	echo
	trim <<<"$meaning" | fmt -w 76 | sed 's/^/# /'
	printf '%s%s\n' "${b:+range: $b; }" "env: $e" | fmt -w 76 | sed 's/^/# /'
	example_value "$k" "$d"
done >"$ref.conf"

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
replace_between "$SRC/config/lqs-hookd.conf" "# settings:begin" "# settings:end" "$ref.conf"

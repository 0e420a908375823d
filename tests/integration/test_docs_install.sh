#!/usr/bin/env bash
# Docs travel with code: the settings reference in README.md and
# lqs-hookd.conf(5) is what the binary's settings table says, the example
# configuration names every key and validates; make install lays out the files.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T_DIR/src/man"
cp "$LQS_SRC/README.md" "$T_DIR/src/"
cp "$LQS_SRC/man/lqs-hookd.conf.5" "$T_DIR/src/man/"
"$LQS_SRC/scripts/gen-docs.sh" "$LQS_HOOKD" "$T_DIR/src"
if diff -u "$LQS_SRC/README.md" "$T_DIR/src/README.md" >"$T_DIR/d1"; then
	pass "README settings table is current"
else
	fail "README settings table is current (run scripts/gen-docs.sh)" "$(head -20 "$T_DIR/d1")"
fi
if diff -u "$LQS_SRC/man/lqs-hookd.conf.5" "$T_DIR/src/man/lqs-hookd.conf.5" >"$T_DIR/d2"; then
	pass "lqs-hookd.conf(5) settings are current"
else
	fail "lqs-hookd.conf(5) settings are current (run scripts/gen-docs.sh)" "$(head -20 "$T_DIR/d2")"
fi

keys=$("$LQS_HOOKD" --print-reference | tail -n +3 | cut -d'|' -f3 | grep -o '`[a-z_]*`' | tr -d '`' | grep -v '_file$')
check "settings table is not empty" "$([ "$(wc -l <<<"$keys")" -gt 30 ] && echo yes)" yes
missing=""
for k in $keys; do
	grep -q "^#$k = \|^#$k =$" "$LQS_SRC/config/lqs-hookd.conf" || missing="$missing $k"
done
check "example config names every key" "$missing" ""
out=$(LQS_EXPECTED_SECRET=x "$LQS_HOOKD" --config "$LQS_SRC/config/lqs-hookd.conf" --check-config 2>&1)
check "example config is valid" "$?" 0

# make install honours PREFIX and DESTDIR: configure a build of our own for
# /usr (sysconfdir becomes /etc) and install it under a scratch root.
cmake -S "$LQS_SRC" -B "$T_DIR/b" -DCMAKE_INSTALL_PREFIX=/usr -DLQS_BUILD_TESTS=OFF >/dev/null
cmake --build "$T_DIR/b" -j 2 >/dev/null
DESTDIR="$T_DIR/root" cmake --install "$T_DIR/b" >/dev/null
check "installed unit runs the installed binary" \
	"$(sed -n 's/^ExecStart=//p' "$T_DIR/root/usr/lib/systemd/system/lqs-hookd.service")" \
	"/usr/bin/lqs-hookd --config /etc/lqs-hookd/lqs-hookd.conf"
for f in usr/bin/lqs-hookd etc/lqs-hookd/lqs-hookd.conf usr/lib/systemd/system/lqs-hookd.service \
	 usr/lib/systemd/system/lqs-hookd.socket usr/share/man/man8/lqs-hookd.8 usr/share/man/man5/lqs-hookd.conf.5; do
	[ -f "$T_DIR/root/$f" ] && pass "installed $f" || fail "installed $f"
done
check "installed binary runs" "$("$T_DIR/root/usr/bin/lqs-hookd" --version | cut -d' ' -f1)" lqs-hookd

# make package: the .deb, installed with dpkg into this machine
(cd "$T_DIR/b" && cpack -G DEB >/dev/null 2>&1)
deb=$(ls "$T_DIR"/b/lqs-hookd_*.deb 2>/dev/null | head -1)
check "package built" "$([ -f "$deb" ] && echo yes)" yes
check "package ships the files" "$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -c -E '^\./(usr/bin/lqs-hookd|etc/lqs-hookd/lqs-hookd.conf|usr/lib/systemd/system/lqs-hookd.(service|socket)|usr/share/man/man[58]/lqs-hookd.*)$')" 6
check "configuration is a conffile" "$(dpkg-deb -I "$deb" conffiles)" "/etc/lqs-hookd/lqs-hookd.conf"
check "no maintainer scripts" "$(dpkg-deb -I "$deb" | grep -c -E '(pre|post)(inst|rm)')" 0
if [ "$(id -u)" != 0 ]; then
	echo "skip: dpkg -i needs root"
elif dpkg -s lqs-hookd >/dev/null 2>&1; then
	echo "skip: lqs-hookd is already installed on this machine; not touching it"
else
	dpkg -i "$deb" >"$T_DIR/dpkg.log" 2>&1
	check "dpkg -i succeeds" "$?" 0
	check "installed --version" "$(/usr/bin/lqs-hookd --version)" "lqs-hookd $("$LQS_HOOKD" --version | cut -d' ' -f2)"
	out=$(LQS_EXPECTED_SECRET=x /usr/bin/lqs-hookd --config /etc/lqs-hookd/lqs-hookd.conf --check-config 2>&1)
	check "installed --check-config" "$out" "/etc/lqs-hookd/lqs-hookd.conf: configuration is valid"
	check "nothing created outside the package" "$(dpkg -L lqs-hookd | grep -c '/var/lib/lqs-hookd')" 0
	dpkg --purge lqs-hookd >>"$T_DIR/dpkg.log" 2>&1
	check "dpkg --purge leaves nothing" "$([ ! -e /usr/bin/lqs-hookd ] && [ ! -e /etc/lqs-hookd/lqs-hookd.conf ] && echo yes)" yes
fi

finish

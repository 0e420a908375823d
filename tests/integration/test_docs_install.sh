#!/usr/bin/env bash
# Docs travel with code: the settings reference in README.md and
# lqs-hookd.conf(5) is what the binary's settings table says, the example
# configuration names every key and validates; make install lays out the files.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T_DIR/src/man" "$T_DIR/src/config"
cp "$LQS_SRC/README.md" "$T_DIR/src/"
cp "$LQS_SRC/man/lqs-hookd.conf.5" "$T_DIR/src/man/"
cp "$LQS_SRC/config/lqs-hookd.conf" "$T_DIR/src/config/"
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

if diff -u "$LQS_SRC/config/lqs-hookd.conf" "$T_DIR/src/config/lqs-hookd.conf" >"$T_DIR/d3"; then
	pass "example configuration is current"
else
	fail "example configuration is current (run scripts/gen-docs.sh)" "$(head -20 "$T_DIR/d3")"
fi
# help text is wrapped at spaces: no line of it ends inside a word
check "example config: no word split across lines" "$(grep -c -E '^# .*[a-z]-$' "$LQS_SRC/config/lqs-hookd.conf")" 0

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
	 usr/lib/systemd/system/lqs-hookd.socket usr/share/man/man8/lqs-hookd.8.gz usr/share/man/man5/lqs-hookd.conf.5.gz \
	 usr/share/doc/lqs-hookd/copyright usr/share/doc/lqs-hookd/changelog.gz usr/share/doc/lqs-hookd/README.md; do
	[ -f "$T_DIR/root/$f" ] && pass "installed $f" || fail "installed $f"
done
check "installed binary runs" "$("$T_DIR/root/usr/bin/lqs-hookd" --version | cut -d' ' -f1)" lqs-hookd

# make package: the .deb, installed with dpkg into this machine
(cd "$T_DIR/b" && cpack -G DEB >/dev/null 2>&1)
deb=$(ls "$T_DIR"/b/lqs-hookd_*.deb 2>/dev/null | head -1)
check "package built" "$([ -f "$deb" ] && echo yes)" yes
check "package ships the files" "$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -c -E '^\./(usr/bin/lqs-hookd|etc/lqs-hookd/lqs-hookd.conf|usr/lib/systemd/system/lqs-hookd.(service|socket)|usr/share/man/man[58]/lqs-hookd.*\.gz|usr/share/doc/lqs-hookd/(copyright|changelog.gz|README.md))$')" 9
check "configuration is a conffile" "$(dpkg-deb -I "$deb" conffiles)" "/etc/lqs-hookd/lqs-hookd.conf"

# Debian would take it: lintian finds no error and no warning
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -E '^[EW]: ')
check "lintian: no errors, no warnings" "$lint" ""
# built hardened: PIE, full RELRO, stack protector, fortified calls
dpkg-deb -x "$deb" "$T_DIR/x"
bin="$T_DIR/x/usr/bin/lqs-hookd"
check "PIE" "$(readelf -h "$bin" | awk '/Type:/ {print $2}')" DYN
check "full RELRO (bind now)" "$(readelf -d "$bin" | grep -q -E '\(BIND_NOW\)|\(FLAGS_1\).* NOW' && echo yes)" yes
check "RELRO segment" "$(readelf -l "$bin" | grep -c GNU_RELRO)" 1
check "stack protector and fortified calls" \
	"$(nm -D "$bin" | grep -c -E ' U (__stack_chk_fail|__[a-z]+_chk)@' | awk '{print ($1 >= 3) ? "yes" : "no"}')" yes
check "stripped" "$(file -b "$bin" | grep -c 'not stripped')" 0

# Maintainer scripts: what Debian's systemd helpers do. Run them where a
# systemd seems to run (a private /run in a mount namespace), with
# systemctl and the deb-systemd-* helpers replaced by recorders.
mkdir -p "$T_DIR/ctl" "$T_DIR/stub"
dpkg-deb -e "$deb" "$T_DIR/ctl"
for c in systemctl deb-systemd-invoke deb-systemd-helper; do
	printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$c" "$T_DIR" >"$T_DIR/stub/$c"
	chmod +x "$T_DIR/stub/$c"
done
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	unshare -m sh -c "mount -t tmpfs none /run && mkdir -p /run/systemd/system && export PATH=$T_DIR/stub:\$PATH && \
		S=$T_DIR/ctl; C=$T_DIR/calls; \
		\$S/postinst configure '' && echo '| upgrade' >>\$C && \$S/postinst configure 0.0.9 && \
		echo '| remove' >>\$C && \$S/prerm remove && \$S/postrm remove && echo '| purge' >>\$C && \$S/postrm purge"
	check "maintainer scripts exit 0" "$?" 0
	check "install: daemon-reload; upgrade: reload and restart; remove: stop, reload; purge: helper purge" \
		"$(tr '\n' ';' <"$T_DIR/calls")" \
		"systemctl --system daemon-reload;| upgrade;systemctl --system daemon-reload;deb-systemd-invoke try-restart lqs-hookd.service;| remove;deb-systemd-invoke stop lqs-hookd.service lqs-hookd.socket;systemctl --system daemon-reload;| purge;systemctl --system daemon-reload;deb-systemd-helper purge lqs-hookd.service lqs-hookd.socket;"
else
	echo "skip: maintainer scripts under a private /run need root and mount namespaces"
fi

# Installed into a scratch root: files in place, an upgrade over itself,
# a purge that leaves nothing (dependencies are not in that root)
R="$T_DIR/scratch"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
sd() { dpkg --root="$R" --force-script-chrootless --force-depends --log=/dev/null "$@" >>"$T_DIR/scratch.log" 2>&1; }
sd -i "$deb"
check "scratch root: install" "$?" 0
check "scratch root: status" "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status}' lqs-hookd)" "install ok installed"
check "scratch root: binary, unit, conffile, docs" \
	"$(cd "$R" && ls usr/bin/lqs-hookd usr/lib/systemd/system/lqs-hookd.service etc/lqs-hookd/lqs-hookd.conf usr/share/doc/lqs-hookd/copyright 2>/dev/null | wc -l)" 4
sd -i "$deb"
check "scratch root: upgrade over itself" "$?" 0
sd --purge lqs-hookd
check "scratch root: purge" "$?" 0
check "scratch root: nothing left" "$(find "$R" -type f -not -path "$R/var/lib/dpkg/*" | wc -l)" 0
if [ "$(id -u)" != 0 ]; then
	echo "skip: dpkg -i needs root"
elif dpkg -s lqs-hookd >/dev/null 2>&1; then
	echo "skip: lqs-hookd is already installed on this machine; not touching it"
else
	dpkg -i "$deb" >"$T_DIR/dpkg.log" 2>&1
	check "dpkg -i succeeds" "$?" 0
	check "installed --version" "$(/usr/bin/lqs-hookd --version | cut -d' ' -f1-2)" "lqs-hookd $("$LQS_HOOKD" --version | cut -d' ' -f2)"
	out=$(LQS_EXPECTED_SECRET=x /usr/bin/lqs-hookd --config /etc/lqs-hookd/lqs-hookd.conf --check-config 2>&1)
	check "installed --check-config" "$out" "/etc/lqs-hookd/lqs-hookd.conf: configuration is valid"
	# with no --config, the packaged file is the one read (as the unit does),
	# by the daemon and the operator commands alike
	out=$(env -u LQS_HOOKD_CONFIG LQS_EXPECTED_SECRET=x /usr/bin/lqs-hookd --check-config 2>&1)
	check "no --config: the packaged file" "$out" "/etc/lqs-hookd/lqs-hookd.conf: configuration is valid"
	printf '\n[http]\nlisten = 127.0.0.1:9\n' >>/etc/lqs-hookd/lqs-hookd.conf
	out=$(env -u LQS_HOOKD_CONFIG /usr/bin/lqs-hookd list 2>&1)
	check_contains "no --config: the CLI uses its listen address" "$out" "cannot reach lqs-hookd at http://127.0.0.1:9/"
	check "nothing created outside the package" "$(dpkg -L lqs-hookd | grep -c '/var/lib/lqs-hookd')" 0
	dpkg --purge lqs-hookd >>"$T_DIR/dpkg.log" 2>&1
	check "dpkg --purge leaves nothing" "$([ ! -e /usr/bin/lqs-hookd ] && [ ! -e /etc/lqs-hookd/lqs-hookd.conf ] && echo yes)" yes
fi

finish

#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: its own data directory and
# Unix socket under DIR, no TCP port, no service of the machine touched.
#   pgtmp.sh start DIR   initialise (once) and start; prints the connection string
#   pgtmp.sh stop DIR    stop it (fast shutdown), by the server's own PID file
#   pgtmp.sh kill DIR    stop it at once (immediate shutdown: a crash, to the clients)
# initdb refuses to run as root: as root, the server runs as the postgres user.
set -euo pipefail
cmd=${1:?start|stop|kill}
dir=$(cd "${2:?DIR}" && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "pgtmp: PostgreSQL's server programs are not installed (package postgresql)" >&2; exit 1; }
run() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
data=$dir/pgdata
sock=$dir/pgsock
case $cmd in
start)
	mkdir -p "$data" "$sock" "$dir/pglog"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$data" "$sock" "$dir/pglog"
		# the server must reach its folders: the test folder is root's
		d=$dir; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
	fi
	if [ ! -f "$data/PG_VERSION" ]; then
		run "$bindir/initdb" -D "$data" -A trust -U hookd --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	# fsync stays on: the tests check what a COMMIT promises
	run "$bindir/pg_ctl" -D "$data" -l "$dir/pglog/server.log" -w -t 60 \
		-o "-c listen_addresses='' -k $sock -c max_connections=200 -c shared_buffers=64MB" start >/dev/null ||
		{ tail -20 "$dir/pglog/server.log" >&2; exit 1; }
	run "$bindir/psql" -h "$sock" -U hookd -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname='hookd'" | grep -q 1 ||
		run "$bindir/createdb" -h "$sock" -U hookd hookd
	echo "postgresql://hookd@/hookd?host=$sock"
	;;
stop)
	[ -f "$data/postmaster.pid" ] && run "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
	;;
kill)
	[ -f "$data/postmaster.pid" ] && run "$bindir/pg_ctl" -D "$data" -m immediate -w -t 60 stop >/dev/null || true
	;;
*) echo "pgtmp: unknown command $cmd" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# `make install` into a DESTDIR, used from outside the source tree (issue 21): the
# installed nlpd, nlpc and nlprun run (--version, --help, --check-config on the installed
# /etc/nlpd/nlpd.conf); the installed nlpd serves the tiny test model from cwd / on a
# config whose model path is relative to it and whose @include is absolute, and tells a
# fake $NOTIFY_SOCKET READY=1, WATCHDOG=1 and STOPPING=1 as systemd would see; the installed
# Python package imports and answers health from there; a C program built with
# `pkg-config --cflags --libs nlpclient` links the installed libnlpclient.so (its soname)
# and talks to the daemon, and fails cleanly against nothing; every man page renders
# without a warning and names every option of its program's --help; the unit passes
# systemd-analyze verify; a changed /etc file is kept (the new one as .dist); `pip install
# clients/python` works offline in a venv; `make uninstall` removes everything else.
# No network; every wait is bounded.
set -u
B=${NLP_BUILD:-build}
# The compiler the library was built with (make asan: with the sanitizers, whose runtime
# the test programs then need too).
CC_T=${NLP_CC:-cc}
ROOT=$(pwd)
T=$(mktemp -d /tmp/nlpd-inst.XXXXXX)
D=$T/dest
DPID=
LPID=
cleanup() {
    [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
    [ -n "$LPID" ] && kill "$LPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "install_destdir: $*"; exit 1; }
PY=/usr/bin/python3
MK="make --no-print-directory -s B=$B DESTDIR=$D"

timeout 600 $MK install >"$T/inst.log" 2>&1 || fail "make install: $(tail -5 "$T/inst.log")"
P=$D/usr/local
PYDIR=$(make --no-print-directory -s -f - B=$B print-pydir <<'MK'
include Makefile
print-pydir: ; @echo $(PYDIR)
MK
) || fail "PYDIR"
for f in sbin/nlpd bin/nlpc bin/nlprun lib/libnlpclient.so.0 lib/libnlpclient.so lib/libnlpclient.a \
         include/nlpclient.h lib/pkgconfig/nlpclient.pc share/man/man8/nlpd.8 \
         share/man/man1/nlpc.1 share/man/man1/nlprun.1 lib/systemd/system/nlpd.service; do
    [ -e "$P/$f" ] || fail "not installed: $P/$f"
done
[ -f "$D$PYDIR/nlpclient/__init__.py" ] && [ -f "$D$PYDIR/nlpclient/nlp_pb2.py" ] ||
    fail "the Python package is not in $D$PYDIR"
for f in nlpd.conf tasks.conf; do
    [ -f "$D/etc/nlpd/$f" ] && [ -f "$P/share/nlpd/$f" ] || fail "no /etc/nlpd/$f or share/nlpd/$f"
done

# ---- the binaries, from / ----
cd / || fail "cd /"
"$P/sbin/nlpd" --version | grep -q '^nlpd [0-9]' || fail "nlpd --version"
"$P/bin/nlpc" --version | grep -q '^nlpc [0-9]' || fail "nlpc --version"
"$P/bin/nlprun" --version | grep -q '^nlprun [0-9]' || fail "nlprun --version"
for p in sbin/nlpd bin/nlpc bin/nlprun; do
    "$P/$p" --help >/dev/null || fail "$p --help exit $?"
done
"$P/sbin/nlpd" -c "$D/etc/nlpd/nlpd.conf" --check-config >"$T/eff" 2>&1 ||
    fail "installed nlpd.conf: $(cat "$T/eff")"
grep -q '^model = "/var/lib/nlpd/models/flan-t5-small"' "$T/eff" || fail "installed model path: $(grep model "$T/eff")"
grep -q 'ipc:///run/nlpd/nlpd.sock' "$T/eff" || fail "installed ipc endpoint: $(grep bind "$T/eff")"
# The config search: $NLPD_CONF when there is no -c; a missing named file is an error.
NLPD_CONF=$D/etc/nlpd/nlpd.conf "$P/sbin/nlpd" --check-config >/dev/null 2>&1 || fail "NLPD_CONF not used"
NLPD_CONF=$T/none.conf "$P/sbin/nlpd" --check-config >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "none.conf" "$T/err" || fail "missing NLPD_CONF: exit $rc $(cat "$T/err")"
if [ ! -e /etc/nlpd/nlpd.conf ]; then   # the installed nlpd is outside any source tree
    "$P/sbin/nlpd" --check-config >/dev/null 2>"$T/err"; rc=$?
    [ $rc -eq 2 ] && grep -q "no config file" "$T/err" || fail "no config: exit $rc $(cat "$T/err")"
fi

# ---- the installed daemon on the tiny model: relative model path, absolute @include ----
mkdir -p "$T/etc/models" && ln -s "$ROOT/tests/data/models/tiny-flan" "$T/etc/models/tiny"
cat >"$T/etc/nlpd.conf" <<CONF
model = "models/tiny";
threads = 1;
bind = [ "ipc://$T/nlpd.sock" ];
@include "$D/etc/nlpd/tasks.conf"
CONF
# As systemd runs it (Type=notify): a listener on $NOTIFY_SOCKET collects what nlpd says.
$PY - "$T/notify.sock" "$T/notify.txt" <<'PYL' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    try:
        while True:
            out.write(s.recv(4096).decode() + "\n")
            out.flush()
    except OSError:
        pass
PYL
LPID=$!
for _ in $(seq 1 100); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 \
    "$P/sbin/nlpd" -c "$T/etc/nlpd.conf" --log-level warn >"$T/nlpd.log" 2>&1 &
DPID=$!
EP=ipc://$T/nlpd.sock
ok=
for _ in $(seq 1 300); do
    kill -0 "$DPID" 2>/dev/null || fail "nlpd exited: $(cat "$T/nlpd.log")"
    if timeout 5 "$P/bin/nlpc" --connect "$EP" --timeout 1000 health >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ -n "$ok" ] || fail "the installed nlpd does not answer: $(cat "$T/nlpd.log")"

# ---- the Python package, from / ----
export PYTHONPATH=$D$PYDIR
f=$($PY -c 'import nlpclient; print(nlpclient.__file__)') || fail "import nlpclient"
case $f in "$D"*) ;; *) fail "nlpclient imported from $f, not the DESTDIR" ;; esac
$PY -m nlpclient --version | grep -q '0\.1' || fail "python3 -m nlpclient --version"
timeout 30 $PY -c "
import nlpclient
with nlpclient.Client('$EP') as c:
    h = c.health()
    assert 'tiny' in str(h), h
" || fail "the installed Python package: health"
timeout 30 $PY -m nlpclient --connect "$EP" health >/dev/null || fail "python3 -m nlpclient health"
unset PYTHONPATH

# ---- a C program against the installed library ----
cat >"$T/prog.c" <<'C'
#include <nlpclient.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    char err[256];
    printf("libnlpclient %s\n", nlpc_version());
    nlpc_client *c = nlpc_client_new(argv[1], err, sizeof err);
    if (!c) { fprintf(stderr, "client: %s\n", err); return 1; }
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_HEALTH);
    nlpc_response *r = NULL;
    int rc = nlpc_call(c, &rq, argc > 2 ? 200 : 10000, &r);
    if (rc < 0) {
        printf("no daemon: %s\n", nlpc_strerror(rc));
        nlpc_client_destroy(&c);
        return 3;
    }
    printf("health: %s\n", nlpc_code_name(r->code));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_PATH=$P/lib/pkgconfig
flags=$(pkg-config --cflags --libs nlpclient) || fail "pkg-config nlpclient"
case $flags in *"-I$P/include"*"-L$P/lib"*|*"-L$P/lib"*"-I$P/include"*) ;;
    *) fail "pkg-config flags do not point into the DESTDIR: $flags" ;; esac
# shellcheck disable=SC2086
$CC_T -Wall -Werror -o "$T/prog" "$T/prog.c" $flags || fail "cannot build against the installed library"
# The static library: its Requires.private bring libzmq and libprotobuf-c.
sflags=$(pkg-config --static --libs nlpclient) || fail "pkg-config --static"
case $sflags in *-lzmq*-lprotobuf-c*|*-lprotobuf-c*-lzmq*) ;; *) fail "--static: $sflags" ;; esac
# shellcheck disable=SC2086
$CC_T -o "$T/prog_static" "$T/prog.c" $(pkg-config --cflags nlpclient) "$P/lib/libnlpclient.a" \
    $(pkg-config --libs libzmq libprotobuf-c) || fail "cannot link the installed libnlpclient.a"
ldd "$T/prog_static" | grep -q libnlpclient && fail "prog_static uses the .so"
out=$(timeout 20 "$T/prog_static" "ipc://$T/nobody.sock" short); rc=$?
[ $rc -eq 3 ] && echo "$out" | grep -q '^no daemon: ' || fail "static C program: exit $rc $out"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
export LD_LIBRARY_PATH=$P/lib
ldd "$T/prog" | grep -q "libnlpclient.so.0 => $P/lib/" || fail "not linked to the installed .so: $(ldd "$T/prog")"
out=$(timeout 20 "$T/prog" "$EP") || fail "C program against the daemon: exit $? $out"
echo "$out" | grep -q '^libnlpclient 0\.' && echo "$out" | grep -q '^health: OK' || fail "C program: $out"
out=$(timeout 20 "$T/prog" "ipc://$T/nobody.sock" short); rc=$?
[ $rc -eq 3 ] && echo "$out" | grep -q '^no daemon: ' || fail "C program against nothing: exit $rc $out"
unset LD_LIBRARY_PATH

kill -TERM "$DPID"
for _ in $(seq 1 300); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] || fail "installed nlpd: SIGTERM exit $rc $(cat "$T/nlpd.log")"
sleep 0.3; kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null
grep -q '^READY=1' "$T/notify.txt" || fail "no READY=1 to systemd: $(cat "$T/notify.txt")"
grep -q '^WATCHDOG=1' "$T/notify.txt" || fail "no watchdog ping (WATCHDOG_USEC=400000)"
grep -q '^STOPPING=1' "$T/notify.txt" || fail "no STOPPING=1 at SIGTERM"
[ "$(grep -n '^READY=1' "$T/notify.txt" | head -1 | cut -d: -f1)" -lt \
  "$(grep -n '^STOPPING=1' "$T/notify.txt" | head -1 | cut -d: -f1)" ] || fail "STOPPING before READY"

# ---- man pages: no warnings, and every option of --help is in them ----
opts() { grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }
for page in man8/nlpd.8 man1/nlpc.1 man1/nlprun.1; do
    w=$(MANWIDTH=80 man --warnings -l "$P/share/man/$page" 2>&1 >/dev/null)
    [ -z "$w" ] || fail "man -l $page warns: $w"
    MANWIDTH=2000 man -l "$P/share/man/$page" 2>/dev/null | col -bx >"$T/page.txt"
    prog=$(basename "$page"); prog=${prog%.*}
    bin=$P/bin/$prog; [ "$prog" = nlpd ] && bin=$P/sbin/nlpd
    { "$bin" --help 2>&1
      if [ "$prog" = nlprun ]; then
          for c in tokenize detokenize generate logits summarize; do "$bin" $c --help 2>&1; done
      fi; } | opts >"$T/opts"
    while read -r o; do
        grep -q -- "$o" "$T/page.txt" || fail "$page does not document $o (from $prog --help)"
    done <"$T/opts"
done

# ---- the unit ----
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$T/unit"
    sed "s|/usr/local/sbin/nlpd|$P/sbin/nlpd|" "$P/lib/systemd/system/nlpd.service" >"$T/unit/nlpd.service"
    MANPATH=$P/share/man systemd-analyze verify "$T/unit/nlpd.service" >"$T/verify" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify")"
else
    echo "install_destdir: no systemd-analyze: the unit is not verified"
fi

cd "$ROOT" || fail "cd $ROOT"
# ---- a changed /etc file is kept; the new one goes beside it ----
echo "# local change" >>"$D/etc/nlpd/nlpd.conf"
timeout 300 $MK install >"$T/inst2.log" 2>&1 || fail "second make install: $(tail -5 "$T/inst2.log")"
grep -q "kept $D/etc/nlpd/nlpd.conf" "$T/inst2.log" || fail "install did not say it kept nlpd.conf: $(cat "$T/inst2.log")"
[ -f "$D/etc/nlpd/nlpd.conf.dist" ] && grep -q "local change" "$D/etc/nlpd/nlpd.conf" ||
    fail "a changed /etc/nlpd/nlpd.conf was overwritten"
[ ! -e "$D/etc/nlpd/tasks.conf.dist" ] || fail "an unchanged tasks.conf got a .dist"

# ---- pip, offline, in a venv that sees Debian's zmq and protobuf ----
# Debian's pip (python3-pip, seen through the system site packages) installs into the
# venv; a venv of its own pip only if there is none (bootstrapping one takes 5 s).
if $PY -m venv --system-site-packages --without-pip "$T/venv" >/dev/null 2>&1 &&
    { "$T/venv/bin/python" -m pip --version >/dev/null 2>&1 ||
        { rm -rf "$T/venv" && $PY -m venv --system-site-packages "$T/venv" >/dev/null 2>&1; }; }; then
    timeout 180 "$T/venv/bin/python" -m pip install --no-index --no-cache-dir -q clients/python \
        >"$T/pip.log" 2>&1 ||
        fail "pip install clients/python: $(tail -5 "$T/pip.log")"
    (cd / && "$T/venv/bin/python" -m nlpclient --version) | grep -q '0\.1' || fail "pip-installed nlpclient"
else
    echo "install_destdir: no python3-venv: pip install not tried"
fi

# ---- uninstall: only the changed config remains ----
timeout 120 $MK uninstall >"$T/un.log" 2>&1 || fail "make uninstall: $(cat "$T/un.log")"
grep -q "kept $D/etc/nlpd/nlpd.conf" "$T/un.log" || fail "uninstall did not say it kept nlpd.conf"
left=$(find "$D" \( -type f -o -type l \) ! -path "$D/etc/nlpd/nlpd.conf")
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install_destdir: ok"

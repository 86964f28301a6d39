#!/usr/bin/env bash
# Tests the Debian packages (make test-packages; needs root):
#   1. the systemd units: `systemd-analyze verify` must print nothing (it runs against a root holding the
#      packaged files and this host's units, so ExecStart= is checked against the packaged binary), and
#      `systemd-analyze security --offline=yes` must rate the aggregator OK or better;
#   2. the packages: built with scripts/build-deb.sh from the release binaries (or taken from dist/ when
#      there are none), checked with lintian (any E: fails);
#   3. a clean Debian 12 root (debootstrap --variant=minbase, cached as a tarball in
#      /var/cache/regwatch-debootstrap): the packages' dependencies are installed first and the root is
#      listed, then both packages are installed with apt-get and used as an operator would (--version,
#      keys, validate of the packaged configs, an agent reporting to the aggregator in a private network
#      namespace), then purged; every file they or their services made under /etc, /usr, /var/lib and
#      /lib/systemd, and the user and group regwatch, must be gone.
# Prints PASS/FAIL per check and exits 1 when one failed. Network: Debian's mirror only (debootstrap,
# apt-get), DEBIAN_MIRROR to use another. Environment: REBUILD_CACHE=1 makes the root anew.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" = 0 ] || { echo "test-packages.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }

VERSION=$(sed -n 's/.*static let current = "\([^"]*\)".*/\1/p' Sources/Shared/Support/RegwatchVersion.swift)
ARCH=$(dpkg --print-architecture)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=/var/cache/regwatch-debootstrap
TARBALL=$CACHE/$SUITE-minbase-$ARCH.tar.gz
AGENT_DEB=dist/regwatch-agent_${VERSION}_${ARCH}.deb
AGGREGATOR_DEB=dist/regwatch-aggregator_${VERSION}_${ARCH}.deb
UNITS="regwatch-agent regwatch-aggregator"
START=$(date +%s)

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
section() { echo; echo "== $*"; }

WORK=$(mktemp -d /tmp/regwatch-test-packages.XXXXXX)
ROOT=$WORK/root
RUNNING=""
cleanup() {
  local pid
  for pid in $RUNNING; do kill "$pid" 2>/dev/null || true; done
  for pid in $RUNNING; do wait "$pid" 2>/dev/null || true; done
  if mountpoint -q "$ROOT/proc" 2>/dev/null; then umount "$ROOT/proc" || umount -l "$ROOT/proc" || true; fi
  if mountpoint -q "$ROOT/proc" 2>/dev/null; then
    echo "test-packages.sh: $ROOT/proc is still mounted; $WORK left in place" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() { chroot "$ROOT" "$@"; }

# ---------------------------------------------------------------------------------------------------
section "packages"
if [ -x .build/release/regwatch-agent ] && [ -x .build/release/regwatch-aggregator ]; then
  if bash scripts/build-deb.sh; then pass "build-deb.sh built the packages"; else fail "build-deb.sh"; fi
else
  echo "no release binaries in .build/release: using the packages in dist/ (make package builds them)"
fi
for deb in "$AGENT_DEB" "$AGGREGATOR_DEB"; do
  [ -f "$deb" ] || { fail "$deb is missing (make package)"; exit 1; }
done
ls -l "$AGENT_DEB" "$AGGREGATOR_DEB"

# ---------------------------------------------------------------------------------------------------
section "systemd units"
# A root with the packaged files and this host's units (targets the units name), so that verify checks
# ExecStart= against the packaged binaries and not against whatever this host has in /usr/bin.
UNITROOT=$WORK/unitroot
mkdir -p "$UNITROOT/lib/systemd/system"
cp -a /lib/systemd/system/. "$UNITROOT/lib/systemd/system/"
dpkg-deb -x "$AGENT_DEB" "$UNITROOT"
dpkg-deb -x "$AGGREGATOR_DEB" "$UNITROOT"
for unit in $UNITS; do
  if ! cmp -s "deploy/systemd/$unit.service" "$UNITROOT/lib/systemd/system/$unit.service"; then
    fail "$unit.service in the package differs from deploy/systemd/$unit.service"
  fi
  out=$(systemd-analyze verify --root="$UNITROOT" "$unit.service" 2>&1) && rc=0 || rc=$?
  if [ "$rc" = 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify $unit.service: nothing reported"
  else
    fail "systemd-analyze verify $unit.service (exit $rc):"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
  line=$(systemd-analyze security --offline=yes "$UNITROOT/lib/systemd/system/$unit.service" 2>&1 | grep "Overall exposure level") || true
  echo "    ${line:-no exposure line}"
  if [ "$unit" = regwatch-aggregator ]; then
    level=$(printf '%s' "$line" | sed -n 's/.*: [0-9.]* \([A-Z]*\).*/\1/p')
    case "$level" in
      PERFECT|SAFE|OK) pass "$unit.service exposure $level (OK or better)" ;;
      *) fail "$unit.service exposure '${level:-?}' is worse than OK" ;;
    esac
  fi
done

# ---------------------------------------------------------------------------------------------------
section "lintian"
lintian --allow-root --pedantic -I "$AGENT_DEB" "$AGGREGATOR_DEB" > "$WORK/lintian.txt" 2>&1 || true
grep -v "spelling-error-in-binary" "$WORK/lintian.txt" | sed 's/^/    /' || true
echo "    ($(grep -c "spelling-error-in-binary" "$WORK/lintian.txt" || true) spelling-error-in-binary infos not shown: fragments inside linked libraries)"
if grep -q "^E: " "$WORK/lintian.txt"; then
  fail "lintian: $(grep -c '^E: ' "$WORK/lintian.txt") errors"
else
  pass "lintian: no errors ($(grep -c '^W: ' "$WORK/lintian.txt" || true) warnings)"
fi

# ---------------------------------------------------------------------------------------------------
section "clean Debian 12 root"
mkdir -p "$CACHE/archives" "$ROOT"
if [ ! -f "$TARBALL" ] || [ -n "${REBUILD_CACHE:-}" ]; then
  echo "debootstrap --variant=minbase $SUITE (cached in $TARBALL afterwards)"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; exit 1; }
  rm -rf "$ROOT/var/cache/apt/archives/"*.deb
  tar --numeric-owner -C "$ROOT" -czpf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
else
  tar --numeric-owner -C "$ROOT" -xzpf "$TARBALL"
fi
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
  "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "${MIRROR%/debian}/debian-security" "$SUITE" > "$ROOT/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
# Downloaded packages are kept between runs.
cp "$CACHE/archives/"*.deb "$ROOT/var/cache/apt/archives/" 2>/dev/null || true
in_root apt-get update -qq > "$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; fail "apt-get update in the root"; exit 1; }

# The dependencies first, so that the listing below is the root as it is before regwatch.
deps=$( (dpkg-deb -f "$AGENT_DEB" Depends; dpkg-deb -f "$AGGREGATOR_DEB" Depends) | tr ',' '\n' \
  | sed 's/(.*)//; s/ //g' | grep -v '^$' | sort -u | tr '\n' ' ')
echo "dependencies: $deps"
if in_root apt-get install -y -qq $deps > "$WORK/apt.log" 2>&1; then
  pass "the packages' dependencies install in a minbase root"
else
  cat "$WORK/apt.log"; fail "installing the dependencies"; exit 1
fi
cp -n "$ROOT/var/cache/apt/archives/"*.deb "$CACHE/archives/" 2>/dev/null || true

TREES="/etc /usr /var/lib /lib/systemd"
snapshot() {
  # Every path with its type, owner and mode. Not listed: the package databases (compared through dpkg
  # below) and the backup copies adduser's tools keep of the account files (/etc/passwd- and the like),
  # whose accounts are compared entry by entry instead.
  in_root find $TREES -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \) -prune \
    -o \( -path /etc/passwd- -o -path /etc/group- -o -path /etc/shadow- -o -path /etc/gshadow- \) \
    -o -printf '%p %y %u:%g %m\n' | LC_ALL=C sort
  in_root getent passwd | sed 's/^/passwd: /'
  in_root getent group | sed 's/^/group: /'
  in_root getent shadow | cut -d: -f1 | sed 's/^/shadow: /'
  in_root getent gshadow | cut -d: -f1 | sed 's/^/gshadow: /'
}
snapshot > "$WORK/before.txt"
in_root dpkg-query -W -f '${Package}\n' | sort > "$WORK/packages-before.txt"

# ---------------------------------------------------------------------------------------------------
section "install"
cp "$AGENT_DEB" "$AGGREGATOR_DEB" "$ROOT/tmp/"
if in_root apt-get install -y "/tmp/${AGENT_DEB##*/}" "/tmp/${AGGREGATOR_DEB##*/}" > "$WORK/apt.log" 2>&1; then
  pass "apt-get install of both packages"
else
  cat "$WORK/apt.log"; fail "apt-get install of both packages"; exit 1
fi
rm -f "$ROOT/tmp/"*.deb
added=$(in_root dpkg-query -W -f '${Package}\n' | sort | comm -13 "$WORK/packages-before.txt" - | tr '\n' ' ')
if [ "$added" = "regwatch-agent regwatch-aggregator " ]; then
  pass "only the two packages were added (their Depends were complete)"
else
  fail "packages added by the install: $added"
fi

check() {  # check DESCRIPTION EXPECTED-SUBSTRING COMMAND...: runs COMMAND in the root
  local what=$1 expect=$2 out rc
  shift 2
  out=$(in_root "$@" 2>&1) && rc=0 || rc=$?
  if [ "$rc" = 0 ] && [[ "$out" == *"$expect"* ]]; then
    pass "$what: $(printf '%s' "$out" | tail -1)"
  else
    fail "$what (exit $rc):"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
}
check "regwatch-agent --version" "$VERSION" regwatch-agent --version
check "regwatch-aggregator --version" "$VERSION" regwatch-aggregator --version
check "man page" "regwatch-agent" sh -c 'zcat /usr/share/man/man1/regwatch-agent.1.gz | head -3'
check "user regwatch is a system user without a login shell" "/usr/sbin/nologin" sh -c \
  'getent passwd regwatch | awk -F: "\$3 < 1000 {print}"'
check "state and key directories belong to regwatch, mode 700" "regwatch:regwatch 700 regwatch:regwatch 700" \
  sh -c "stat -c '%U:%G %a' /var/lib/regwatch-aggregator /etc/regwatch/keys | paste -sd ' '"
check "conffiles registered" "/etc/regwatch/agent.yaml" dpkg-query -W -f '${Conffiles}\n' regwatch-agent
check "conffiles registered" "/etc/regwatch/aggregator.yaml" dpkg-query -W -f '${Conffiles}\n' regwatch-aggregator

# As an operator would: the aggregator's keys made by its service user, an API token, the agent's keys.
check "keys generate (as regwatch)" "signing.pub" runuser -u regwatch -- \
  regwatch-aggregator keys generate --config /etc/regwatch/aggregator.yaml
in_root install -o regwatch -g regwatch -m 0600 /dev/null /etc/regwatch/api-token
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$ROOT/etc/regwatch/api-token"
in_root cp /etc/regwatch/keys/server.pub /etc/regwatch/keys/signing.pub /etc/regwatch/
check "regwatch-agent keys generate" "agent.pub" regwatch-agent keys generate --out /etc/regwatch
check "regwatch-aggregator validate of the packaged config (as regwatch)" "ok (zmq tcp://0.0.0.0:7450 CURVE" \
  runuser -u regwatch -- regwatch-aggregator validate --config /etc/regwatch/aggregator.yaml
check "regwatch-agent validate of the packaged config" "ok (host node-a1, aggregator tcp://127.0.0.1:7450 over CURVE" \
  regwatch-agent validate --config /etc/regwatch/agent.yaml

# The two talking: the aggregator as its service user, an agent enrolled by hand reporting to it, in a
# network namespace of their own (nothing on this host's ports is touched). setpriv, not runuser, for
# serve: runuser would stand between the signal and the aggregator and report being killed itself.
mkdir -p "$ROOT/root/regwatch-test"
cat > "$ROOT/root/regwatch-test/agent.yaml" <<'EOF'
host: {id: node-t1, labels: {zone: z1}}
aggregator: {endpoint: "tcp://127.0.0.1:7450", serverKey: /etc/regwatch/server.pub, clientKey: /etc/regwatch/agent.key, signingKey: /etc/regwatch/signing.pub}
interval: 2s
registries:
  - {name: "127.0.0.1:5999", upstream: "http://127.0.0.1:5999"}
events: {docker: false, journalUnits: []}
EOF
check "regwatch-agent validate of a test config" "ok (host node-t1" regwatch-agent validate --config /root/regwatch-test/agent.yaml
check "keys accept (as regwatch)" "enrolled node-t1" runuser -u regwatch -- \
  regwatch-aggregator keys accept --host node-t1 --key /etc/regwatch/agent.pub --config /etc/regwatch/aggregator.yaml
check "regwatch-aggregator validate sees the enrolled agent" "1 agents enrolled" runuser -u regwatch -- \
  regwatch-aggregator validate --config /etc/regwatch/aggregator.yaml
cat > "$WORK/session.sh" <<EOF
set -u
ip link set lo up
chroot "$ROOT" setpriv --reuid=regwatch --regid=regwatch --init-groups regwatch-aggregator serve --config /etc/regwatch/aggregator.yaml > "$WORK/aggregator.log" 2>&1 &
aggregator=\$!
chroot "$ROOT" regwatch-agent run --config /root/regwatch-test/agent.yaml > "$WORK/agent.log" 2>&1 &
agent=\$!
reported=1
for i in \$(seq 1 60); do
  if chroot "$ROOT" runuser -u regwatch -- regwatch-aggregator hosts --config /etc/regwatch/aggregator.yaml 2>/dev/null | grep -q node-t1; then
    reported=0; break
  fi
  sleep 0.5
done
chroot "$ROOT" runuser -u regwatch -- regwatch-aggregator hosts --config /etc/regwatch/aggregator.yaml
kill -TERM \$agent
wait \$agent; echo "agent exit \$?"
kill -TERM \$aggregator
wait \$aggregator; echo "aggregator exit \$?"
exit \$reported
EOF
if unshare --net bash "$WORK/session.sh" > "$WORK/session.txt" 2>&1; then
  pass "an agent reported to the aggregator (serve as regwatch, database in /var/lib/regwatch-aggregator)"
  sed 's/^/    /' "$WORK/session.txt"
else
  fail "agent and aggregator session:"; sed 's/^/    /' "$WORK/session.txt"
  echo "    agent log:"; tail -5 "$WORK/agent.log" | sed 's/^/      /'
  echo "    aggregator log:"; tail -5 "$WORK/aggregator.log" | sed 's/^/      /'
fi
if [ "$(grep -c "exit 0$" "$WORK/session.txt")" = 2 ]; then
  pass "both stopped cleanly on SIGTERM"
else
  fail "a clean stop on SIGTERM"
  for log in agent aggregator; do echo "    $log log:"; tail -8 "$WORK/$log.log" | sed 's/^/      /'; done
fi
[ -f "$ROOT/var/lib/regwatch-aggregator/regwatch.db" ] && [ -d "$ROOT/var/lib/regwatch" ] \
  && pass "the services left state to purge: $(cd "$ROOT" && ls -d var/lib/regwatch-aggregator/* var/lib/regwatch/* | tr '\n' ' ')" \
  || fail "no database in /var/lib/regwatch-aggregator or no /var/lib/regwatch"

# ---------------------------------------------------------------------------------------------------
section "purge"
# The operator's own files go first: the packages did not make them.
rm -rf "$ROOT/etc/regwatch/api-token" "$ROOT/etc/regwatch/server.pub" "$ROOT/etc/regwatch/signing.pub" \
  "$ROOT/etc/regwatch/agent.key" "$ROOT/etc/regwatch/agent.pub" "$ROOT/root/regwatch-test"
if in_root apt-get purge -y regwatch-agent regwatch-aggregator > "$WORK/apt.log" 2>&1; then
  pass "apt-get purge of both packages"
else
  cat "$WORK/apt.log"; fail "apt-get purge"
fi
if grep -qi "warning" "$WORK/apt.log"; then
  fail "dpkg warned during purge:"; grep -i "warning" "$WORK/apt.log" | sed 's/^/    /'
fi
left=$(in_root dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'regwatch-*' 2>/dev/null || true)
[ -z "$left" ] && pass "dpkg knows no regwatch package any more" || fail "dpkg still lists: $left"
snapshot > "$WORK/after.txt"
if diff -u "$WORK/before.txt" "$WORK/after.txt" > "$WORK/diff.txt"; then
  pass "after purge, $TREES, users and groups are as before the install ($(grep -c . "$WORK/before.txt") entries compared)"
else
  fail "after purge, the root differs from before the install:"; grep '^[-+][^-+]' "$WORK/diff.txt" | sed 's/^/    /'
fi

# ---------------------------------------------------------------------------------------------------
echo
echo "test-packages.sh: $failures failed, $(($(date +%s) - START))s"
if [ "$failures" = 0 ]; then echo "PASS: test-packages"; else echo "FAIL: test-packages"; exit 1; fi

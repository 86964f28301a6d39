#!/usr/bin/env bash
# Tests the Debian packages (make test-packages; needs root):
#   1. the systemd units: `systemd-analyze verify` must print nothing (it runs against a root holding the
#      packaged files and this host's units, so ExecStart= is checked against the packaged binary), and
#      `systemd-analyze security --offline=yes` must rate the aggregator OK or better;
#   2. the packages: built with scripts/build-deb.sh from the release binaries (or taken from dist/ when
#      there are none), checked with lintian (any E: fails);
#   3. a clean Debian 12 root (debootstrap --variant=minbase, cached as a tarball in
#      /var/cache/regwatch-debootstrap): the packages' dependencies (and systemd, to boot it) are
#      installed first and the root is listed, then both packages are installed with apt-get in a chroot
#      and used as an operator would (--version, keys, validate of the packaged configs, an agent
#      reporting to the aggregator in a private network namespace);
#   4. the root booted with systemd-nspawn (private network): both units started as packaged, with all
#      their hardening: the agent reports, each process has the privileges and writable paths its unit
#      grants and no more, nothing was refused, both stop cleanly; a reinstall restarts them; then both
#      packages are purged there (their prerm stops the services), and every file they or their services
#      made under /etc, /usr, /var/lib and /lib/systemd, and the user and group regwatch, must be gone.
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
NSPAWN=""
cleanup() {
  local pid i
  if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
    kill -TERM "$NSPAWN" 2>/dev/null || true   # nspawn shuts the booted root down
    for i in $(seq 1 30); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 1; done
    kill -KILL "$NSPAWN" 2>/dev/null || true
  fi
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
if in_root apt-get install -y -qq $deps systemd systemd-sysv dbus > "$WORK/apt.log" 2>&1; then
  pass "the packages' dependencies (and systemd, to boot the root later) install in a minbase root"
else
  cat "$WORK/apt.log"; fail "installing the dependencies"; exit 1
fi
cp -n "$ROOT/var/cache/apt/archives/"*.deb "$CACHE/archives/" 2>/dev/null || true

TREES="/etc /usr /var/lib /lib/systemd"
snapshot() {
  # Every path with its type, owner and mode. Not listed: the package databases (compared through dpkg
  # below), the backup copies adduser's tools keep of the account files (/etc/passwd- and the like),
  # whose accounts are compared entry by entry instead, and what booting the root makes for systemd's
  # own timers and lingering users.
  in_root find $TREES -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \) -prune \
    -o \( -path /etc/passwd- -o -path /etc/group- -o -path /etc/shadow- -o -path /etc/gshadow- \) \
    -o \( -path /var/lib/systemd/timers -o -path /var/lib/systemd/linger \) -prune \
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
in_root sed -i 's|^# apiToken:|apiToken:|' /etc/regwatch/aggregator.yaml
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
section "the units under systemd (systemd-nspawn --boot)"
# The operator's setup on this host: the test config in place of the packaged example (an edited
# conffile), the runtimes' directories the agent may write, a fresh database made by the service.
cp "$ROOT/root/regwatch-test/agent.yaml" "$ROOT/etc/regwatch/agent.yaml"
sed -i 's/^events: .*/events: {docker: true, journalUnits: [docker, containerd]}\nruntime: {docker: {}, containerd: {}, crio: {}}/' \
  "$ROOT/etc/regwatch/agent.yaml"
RUNTIME_DIRS=""
for d in /etc/docker /etc/containerd /etc/containers; do
  [ -e "$ROOT$d" ] || RUNTIME_DIRS="$RUNTIME_DIRS $d"
done
mkdir -p "$ROOT/etc/docker" "$ROOT/etc/containerd/certs.d" "$ROOT/etc/containers"
rm -rf "$ROOT/var/lib/regwatch-aggregator/"* "$ROOT/var/lib/regwatch/"*
umount "$ROOT/proc"
# Not in /tmp: systemd-nspawn mounts a tmpfs there.
mkdir -p "$ROOT/root/regwatch-debs"
cp "$AGENT_DEB" "$AGGREGATOR_DEB" "$ROOT/root/regwatch-debs/"
MACHINE=regwatch-test-$$
systemd-nspawn -D "$ROOT" --machine="$MACHINE" --boot --private-network --register=no --keep-unit \
  --console=read-only -q > "$WORK/nspawn.log" 2>&1 < /dev/null &
NSPAWN=$!
LEADER=""
for i in $(seq 1 50); do
  LEADER=$(pgrep -P "$NSPAWN" | head -1) && [ -n "$LEADER" ] && break
  sleep 0.2
done
in_boot() { nsenter -t "$LEADER" -a "$@"; }
state=""
[ -n "$LEADER" ] && state=$(timeout 60 nsenter -t "$LEADER" -a systemctl is-system-running --wait 2>/dev/null) || true
case "$state" in
  running|degraded) pass "the root booted with systemd ($state)" ;;
  *) fail "booting the root with systemd-nspawn (state '${state:-none}'):"; tail -20 "$WORK/nspawn.log" | sed 's/^/    /' ;;
esac

if [ -n "$state" ]; then
  booted=1
  if in_boot systemctl start regwatch-aggregator.service regwatch-agent.service 2>"$WORK/start.txt"; then
    pass "systemctl start regwatch-aggregator regwatch-agent"
  else
    fail "systemctl start:"; sed 's/^/    /' "$WORK/start.txt"
  fi
  reported=""
  for i in $(seq 1 60); do
    reported=$(in_boot runuser -u regwatch -- regwatch-aggregator hosts 2>/dev/null | grep node-t1) && break
    sleep 0.5
  done
  [ -n "$reported" ] && pass "the agent reported to the aggregator, both under their units: $reported" \
    || fail "no report from the agent under its unit"

  # What each process was given: user, capabilities, no_new_privs, seccomp; and what its mount namespace
  # lets it write (probed as root inside that namespace: read-only mounts refuse even root).
  probe() {  # probe UNIT PATH...: "PATH rw|ro|absent" for each PATH in the unit's mount namespace
    local unit=$1 pid
    shift
    pid=$(in_boot systemctl show -P MainPID "$unit")
    in_boot nsenter -t "$pid" -m sh -c 'for d in "$@"; do
      if [ ! -d "$d" ]; then echo "$d absent"; elif touch "$d/.rw-probe" 2>/dev/null; then rm -f "$d/.rw-probe"; echo "$d rw"; else echo "$d ro"; fi
    done' probe "$@" | paste -sd ' '
  }
  privileges() {  # privileges UNIT: "uid CapBnd CapEff NoNewPrivs Seccomp" of its main process
    local pid
    pid=$(in_boot systemctl show -P MainPID "$1")
    in_boot awk '/^Uid:/ {u=$2} /^CapBnd:/ {b=$2} /^CapEff:/ {e=$2} /^NoNewPrivs:/ {n=$2} /^Seccomp:/ {s=$2}
      END {print u, b, e, n, s}' "/proc/$pid/status"
  }
  expect() {  # expect WHAT GOT WANTED
    if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got '$2', expected '$3'"; fi
  }
  regwatch_uid=$(in_boot id -u regwatch)
  expect "agent process: uid, bounding and effective capabilities (CAP_KILL only), no_new_privs, seccomp" \
    "$(privileges regwatch-agent.service)" "0 0000000000000020 0000000000000020 1 2"
  expect "aggregator process: uid, capabilities (none), no_new_privs, seccomp" \
    "$(privileges regwatch-aggregator.service)" "$regwatch_uid 0000000000000000 0000000000000000 1 2"
  expect "agent writes only its state and the runtimes' mirror config" \
    "$(probe regwatch-agent.service /var/lib/regwatch /etc/docker /etc/containerd/certs.d /etc/containers /etc /etc/containerd /etc/regwatch /usr/bin /root /tmp)" \
    "/var/lib/regwatch rw /etc/docker rw /etc/containerd/certs.d rw /etc/containers rw /etc ro /etc/containerd ro /etc/regwatch ro /usr/bin ro /root ro /tmp rw"
  expect "aggregator writes only its database and the enrollment files" \
    "$(probe regwatch-aggregator.service /var/lib/regwatch-aggregator /etc/regwatch/keys /etc /etc/regwatch /var/lib /usr/bin /root /tmp)" \
    "/var/lib/regwatch-aggregator rw /etc/regwatch/keys rw /etc ro /etc/regwatch ro /var/lib ro /usr/bin ro /root ro /tmp rw"
  expect "automatic restarts" "$(in_boot systemctl show -P NRestarts regwatch-agent.service regwatch-aggregator.service | sed '/^$/d' | paste -sd ' ')" "0 0"
  in_boot journalctl --no-pager -o cat -u regwatch-agent.service -u regwatch-aggregator.service > "$WORK/journal.txt" 2>&1 || true
  if grep -E "Operation not permitted|Permission denied|Read-only file system|Bad system call|core dumped|status=(6|31)/" "$WORK/journal.txt" > "$WORK/refused.txt"; then
    fail "the services were refused something:"; sed 's/^/    /' "$WORK/refused.txt"
  else
    pass "nothing refused in the services' journal ($(grep -c . "$WORK/journal.txt") lines)"
  fi

  # A reinstall (an upgrade's path) restarts running services.
  before_pids=$(in_boot systemctl show -P MainPID regwatch-agent.service regwatch-aggregator.service | sed '/^$/d' | paste -sd ' ')
  if in_boot env DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall "/root/regwatch-debs/${AGENT_DEB##*/}" "/root/regwatch-debs/${AGGREGATOR_DEB##*/}" > "$WORK/apt.log" 2>&1; then
    after_pids=$(in_boot systemctl show -P MainPID regwatch-agent.service regwatch-aggregator.service | sed '/^$/d' | paste -sd ' ')
    active=$(in_boot systemctl is-active regwatch-agent.service regwatch-aggregator.service | paste -sd ' ') || true
    if [ "$active" = "active active" ] && [ "$after_pids" != "$before_pids" ]; then
      pass "a reinstall restarted both services (main PIDs $before_pids -> $after_pids)"
    else
      fail "after a reinstall: $active, main PIDs $before_pids -> $after_pids"
    fi
  else
    cat "$WORK/apt.log"; fail "apt-get install --reinstall"
  fi

  in_boot systemctl enable regwatch-agent.service regwatch-aggregator.service > /dev/null 2>&1 \
    && pass "systemctl enable both (purge must remove the links)" || fail "systemctl enable"
  in_boot systemctl stop regwatch-agent.service regwatch-aggregator.service || true
  expect "clean stop on SIGTERM (Result, main process status)" \
    "$(in_boot systemctl show -P Result -P ExecMainStatus regwatch-agent.service regwatch-aggregator.service | sed '/^$/d' | paste -sd ' ')" \
    "success 0 success 0"
  # Running again for the purge; the operator's files below are removed only once both have read them.
  in_boot systemctl start regwatch-agent.service regwatch-aggregator.service || fail "starting the services again"
  for i in $(seq 1 40); do
    id=$(in_boot systemctl show -P InvocationID regwatch-agent.service)
    in_boot journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$id" | grep -q "connected to aggregator" && break
    sleep 0.5
  done
fi

# ---------------------------------------------------------------------------------------------------
section "purge"
# The operator's own files go first: the packages did not make them.
rm -rf "$ROOT/etc/regwatch/api-token" "$ROOT/etc/regwatch/server.pub" "$ROOT/etc/regwatch/signing.pub" \
  "$ROOT/etc/regwatch/agent.key" "$ROOT/etc/regwatch/agent.pub" "$ROOT/root/regwatch-test" "$ROOT/root/regwatch-debs"
for d in $RUNTIME_DIRS; do rm -rf "${ROOT:?}$d"; done
if [ -n "${booted:-}" ]; then
  # With the services running: prerm stops them, postrm reloads systemd. One at a time, so that each is
  # purged as it would be alone on a host (the last one owns /etc/regwatch by then).
  : > "$WORK/apt.log"
  for pkg in regwatch-agent regwatch-aggregator; do
    if in_boot env DEBIAN_FRONTEND=noninteractive apt-get purge -y "$pkg" >> "$WORK/apt.log" 2>&1; then
      pass "apt-get purge $pkg, its service running"
    else
      cat "$WORK/apt.log"; fail "apt-get purge $pkg"
    fi
  done
  left=$(in_boot systemctl list-units --all --no-legend 'regwatch*' | grep -v "not-found.*inactive.*dead" || true)
  if [ -z "$left" ]; then
    pass "systemd has no regwatch unit loaded or running after purge"
  else
    fail "after purge systemd still has: $left"
    in_boot journalctl --no-pager -o short -n 30 -u regwatch-agent.service -u regwatch-aggregator.service | sed 's/^/    /'
  fi
  procs=$(in_boot sh -c 'cat /proc/[0-9]*/comm 2>/dev/null' | grep regwatch || true)
  [ -z "$procs" ] && pass "no regwatch process left" || fail "regwatch processes left: $procs"
  in_boot systemctl poweroff || true
  for i in $(seq 1 60); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$NSPAWN" 2>/dev/null; then fail "the booted root did not power off"; else wait "$NSPAWN" || true; NSPAWN=""; fi
  mount -t proc proc "$ROOT/proc"
else
  if in_root apt-get purge -y regwatch-agent regwatch-aggregator > "$WORK/apt.log" 2>&1; then
    pass "apt-get purge of both packages"
  else
    cat "$WORK/apt.log"; fail "apt-get purge"
  fi
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

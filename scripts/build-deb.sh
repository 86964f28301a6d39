#!/usr/bin/env bash
# Builds the Debian packages from the release binaries (`make release`):
#   dist/regwatch-agent_VERSION_ARCH.deb       /usr/bin/regwatch-agent, its systemd unit, /etc/regwatch/agent.yaml
#   dist/regwatch-aggregator_VERSION_ARCH.deb  /usr/bin/regwatch-aggregator, its unit, /etc/regwatch/aggregator.yaml
# VERSION is RegwatchVersion.current. Binaries are stripped and lose their RUNPATH ($ORIGIN: nothing is
# loaded from /usr/bin); Depends comes from dpkg-shlibdeps on the binaries themselves. The example configs
# are conffiles. Built with dpkg-deb --root-owner-group, so no fakeroot is needed. Maintainer scripts come
# from deploy/debian/PACKAGE.{postinst,prerm,postrm}; a deploy/debian/PACKAGE.lintian-overrides would be
# shipped as /usr/share/lintian/overrides/PACKAGE (none is needed).
#
# Environment: BUILD_DIR (default .build/release), OUT_DIR (default dist), DEB_MAINTAINER,
# SOURCE_DATE_EPOCH (default: the last commit's time; it dates the changelog and the files).
#
# lintian --pedantic (scripts/test-packages.sh runs it) reports no error, warning or pedantic tag. What it
# still says at the info level, and why it stays:
#   hardening-no-bindnow: the link is the Makefile's RELEASE_FLAGS (lld, no -z now), not packaging's.
#   hardening-no-fortify-functions: the C code linked in (BoringSSL from swift-crypto, SwiftNIO's C
#     modules) is built by SwiftPM without _FORTIFY_SOURCE.
#   spelling-error-in-binary: string fragments inside the linked libraries (BoringSSL, ICU, SwiftNIO).
#   package-supports-alternative-init-but-no-init.d-script: systemd only; no SysV init script is shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

BUILD_DIR=${BUILD_DIR:-.build/release}
OUT_DIR=${OUT_DIR:-dist}
MAINTAINER=${DEB_MAINTAINER:-regwatch maintainers <maintainers@regwatch.invalid>}
VERSION=$(sed -n 's/.*static let current = "\([^"]*\)".*/\1/p' Sources/Shared/Support/RegwatchVersion.swift)
ARCH=$(dpkg --print-architecture)
[ -n "$VERSION" ] || { echo "build-deb.sh: no version in Sources/Shared/Support/RegwatchVersion.swift" >&2; exit 1; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SWIFT_LICENSE=$(dirname "$(readlink -f "$(command -v swift)")")/../share/swift/LICENSE.txt

for tool in dpkg-deb dpkg-shlibdeps strip chrpath nm python3 gzip; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool not found (make deps installs it)" >&2; exit 1; }
done
for f in "$BUILD_DIR/regwatch-agent" "$BUILD_DIR/regwatch-aggregator" Package.resolved "$SWIFT_LICENSE"; do
  [ -e "$f" ] || { echo "build-deb.sh: $f is missing (run make release first)" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"

# A roff manual page from the program's own help, every subcommand included.
manpage() {
  local bin=$1 name=$2
  local date overview
  date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
  roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'; }
  subcommands() { "$bin" help "$@" | awk '/^SUBCOMMANDS:/ {s=1; next} s && /^  [a-z]/ {print $1} s && /^$/ && seen {exit} s {seen=1}'; }
  walk() {
    local sub
    for sub in $(subcommands "$@"); do
      printf '.SS "%s"\n.nf\n' "$name $* $sub" | sed 's/  */ /g'
      "$bin" help "$@" "$sub" | roff
      printf '.fi\n'
      walk "$@" "$sub"
    done
  }
  overview=$("$bin" --help | awk '/^OVERVIEW:/ {sub(/^OVERVIEW: /, ""); o=$0; getline; while ($0 != "") {o = o " " $0; getline}; print o; exit}')
  {
    printf '.TH %s 1 "%s" "regwatch %s" "User Commands"\n' "${name^^}" "$date" "$VERSION"
    printf '.SH NAME\n%s \\- %s\n' "$name" "$(printf '%s' "$overview" | roff)"
    printf '.SH SYNOPSIS\n.B %s\n.I subcommand\n.RI [ options ]\n' "$name"
    printf '.SH DESCRIPTION\n'
    printf '%s\n' "$overview" | roff
    printf '.PP\nConfiguration: \\fI/etc/regwatch/%s.yaml\\fR; every key with its default is in the packaged file and in \\fI/usr/share/doc/%s/configuration.md\\fR.\n' "${name#regwatch-}" "$name"
    printf '.SH COMMANDS\n'
    walk
    printf '.SH "EXIT STATUS"\n0 fine, 1 problems found, 2 usage or configuration error (one line naming the file, key or value).\n'
    printf '.SH FILES\n.TP\n.I /etc/regwatch/%s.yaml\nconfiguration\n.TP\n.I /lib/systemd/system/%s.service\nthe service\n' "${name#regwatch-}" "$name"
    printf '.SH "SEE ALSO"\n.BR %s (1)\n' "$([ "$name" = regwatch-agent ] && echo regwatch-aggregator || echo regwatch-agent)"
  }
}

# Depends: the packages providing the shared libraries the binary needs, at the versions its symbols need.
shlib_depends() {
  local bin=$1 dir="$WORK/shlibdeps"
  rm -rf "$dir" && mkdir -p "$dir/debian"
  printf 'Source: regwatch\n\nPackage: regwatch\nArchitecture: any\n' > "$dir/debian/control"
  (cd "$dir" && dpkg-shlibdeps -O -e"$bin" 2>"$dir/stderr") | sed -n 's/^shlibs:Depends=//p'
  if grep -q "error" "$dir/stderr"; then cat "$dir/stderr" >&2; return 1; fi
}

build() {
  local name=$1 short=${1#regwatch-} synopsis=$2 description=$3 extra_depends=$4
  local stage="$WORK/$name" deb="$OUT_DIR/${name}_${VERSION}_${ARCH}.deb"
  local doc="$stage/usr/share/doc/$name"
  mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/regwatch" "$doc" \
    "$stage/usr/share/man/man1"

  install -m 0755 "$BUILD_DIR/$name" "$stage/usr/bin/$name"
  strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/$name"
  chrpath -d "$stage/usr/bin/$name" >/dev/null
  local got
  got=$("$stage/usr/bin/$name" --version)
  [ "$got" = "$VERSION" ] || { echo "build-deb.sh: stripped $name says version '$got', expected $VERSION" >&2; exit 1; }

  install -m 0644 "deploy/systemd/$name.service" "$stage/lib/systemd/system/$name.service"
  install -m 0644 "deploy/$short.example.yaml" "$stage/etc/regwatch/$short.yaml"
  printf '/etc/regwatch/%s.yaml\n' "$short" > "$stage/DEBIAN/conffiles"

  # Documentation= in the unit points at these two.
  install -m 0644 README.md "$doc/README.md"
  install -m 0644 docs/configuration.md "$doc/configuration.md"
  python3 scripts/deb-copyright.py "$name" "$BUILD_DIR" Package.resolved "$SWIFT_LICENSE" "$BUILD_DIR/$name" > "$doc/copyright"
  chmod 0644 "$doc/copyright"
  # A native package (no Debian revision): its one changelog is changelog.gz.
  {
    printf '%s (%s) unstable; urgency=medium\n\n' "$name" "$VERSION"
    printf '  * regwatch %s, built from commit %s.\n\n' "$VERSION" "$COMMIT"
    printf ' -- %s  %s\n' "$MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n > "$doc/changelog.gz"
  manpage "$stage/usr/bin/$name" "$name" | gzip -9n > "$stage/usr/share/man/man1/$name.1.gz"
  chmod 0644 "$doc/changelog.gz" "$stage/usr/share/man/man1/$name.1.gz"

  if [ -f "deploy/debian/$name.lintian-overrides" ]; then
    install -D -m 0644 "deploy/debian/$name.lintian-overrides" "$stage/usr/share/lintian/overrides/$name"
  fi
  for script in preinst postinst prerm postrm; do
    if [ -f "deploy/debian/$name.$script" ]; then
      install -m 0755 "deploy/debian/$name.$script" "$stage/DEBIAN/$script"
    fi
  done

  local depends size
  depends=$(shlib_depends "$stage/usr/bin/$name")
  [ -n "$depends" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies for $name" >&2; exit 1; }
  [ -z "$extra_depends" ] || depends="$depends, $extra_depends"
  # Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one per directory or link.
  size=$(cd "$stage" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' \) -o \( ! -name . -printf '0\n' \) \
    | awk '{ kib += ($1 == 0) ? 1 : int(($1 + 1023) / 1024) } END { print kib }')
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' "$name" "$VERSION" "$ARCH" "$MAINTAINER"
    printf 'Installed-Size: %s\nDepends: %s\nSection: admin\nPriority: optional\n' "$size" "$depends"
    printf 'Description: %s\n' "$synopsis"
    printf '%s\n' "$description" | fold -s -w 78 | sed -e 's/ *$//' -e 's/^/ /'
  } > "$stage/DEBIAN/control"

  # md5sums of every file but the conffiles (dpkg keeps theirs itself), as dh_md5sums writes it.
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
    | grep -vxF -f <(sed 's#^/##' DEBIAN/conffiles) | xargs -d '\n' md5sum) > "$stage/DEBIAN/md5sums"
  chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --build --root-owner-group -Zxz "$stage" "$deb" >/dev/null
  echo "built $deb ($(du -k "$deb" | cut -f1) KiB, installed $size KiB; Depends: $depends)"
}

build regwatch-agent "container registry path monitor for one host (regwatch agent)" \
  "Probes this host's container registries and mirrors (DNS, TCP, TLS, /v2/, authentication, Docker Hub rate-limit headroom, manifests), reads the mirror configuration of Docker, containerd and CRI-O and their pull events, and reports to the regwatch aggregator over ZeroMQ with CURVE. It applies the aggregator's signed, staged failover mirror orders to the runtimes' configuration files. regwatch-agent diagnose IMAGE explains a failing pull without any configuration." \
  ""
build regwatch-aggregator "fleet view of container registry health (regwatch aggregator)" \
  "Collects the reports of regwatch agents into SQLite, tells a registry outage from one host's, one zone's or one NAT's problem, alerts through Alertmanager or JSON webhooks, serves an HTTP API, Prometheus metrics and a dashboard, and pushes signed, staged, reversible mirror failover to the agents. Runs as the system user regwatch." \
  "adduser"

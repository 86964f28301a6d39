#!/bin/bash
# Builds the OCI image archives dist/regwatch-agent.oci.tar and dist/regwatch-aggregator.oci.tar without a
# container engine: umoci assembles the layout, skopeo writes the archive.
#
# Each image holds the release binary (Swift runtime linked statically), exactly the shared libraries it
# and its helpers load (from ldd, at their host paths), CA certificates, /etc/passwd and /etc/group, and no
# shell or package manager. The agent runs as root (it edits the host's runtime files under --host-root) and
# carries journalctl for the journal event source; the aggregator runs as uid/gid 65532 (regwatch).
#
# usage: scripts/build-image.sh [BIN_DIR] [OUT_DIR]   (defaults: .build/release, dist)
set -euo pipefail
BIN=${1:-.build/release}
OUT=${2:-dist}
VERSION=$(sed -n 's/.*current = "\(.*\)".*/\1/p' Sources/Shared/Support/RegwatchVersion.swift)
[ -n "$VERSION" ] || { echo "build-image: cannot read the version from Sources/Shared/Support/RegwatchVersion.swift" >&2; exit 2; }
for tool in umoci skopeo ldd; do command -v $tool >/dev/null || { echo "build-image: $tool is missing (make deps installs it)" >&2; exit 2; }; done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/rw-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Copies every shared library FILE loads (as resolved on this host) into ROOTFS at the same path.
copy_libs() {
  local rootfs=$1 file=$2
  ldd "$file" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u | while read -r lib; do
    [ -e "$rootfs$lib" ] && continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

# Copies FILE and its libraries into ROOTFS at the same paths.
copy_with_libs() {
  install -D -m 0755 "$2" "$1$2"
  copy_libs "$1" "$2"
}

build() {
  local name=$1 user=$2 cmd=$3
  local bin="$BIN/$name"
  [ -x "$bin" ] || { echo "build-image: $bin is missing: run make release first" >&2; exit 2; }
  if ldd "$bin" | grep -Eq 'libswiftCore|libFoundation|libicu'; then
    echo "build-image: $bin loads the Swift runtime dynamically: build it with make release (static)" >&2; exit 2
  fi
  local layout="$WORK/$name-layout" bundle="$WORK/$name-bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:$VERSION"
  umoci unpack --image "$layout:$VERSION" "$bundle"
  local rootfs="$bundle/rootfs"
  # The binary under its packaged name, stripped.
  install -D -m 0755 "$bin" "$WORK/$name"
  strip "$WORK/$name"
  mkdir -p "$rootfs/usr/bin"
  cp "$WORK/$name" "$rootfs/usr/bin/$name"
  copy_libs "$rootfs" "$WORK/$name"
  if [ "$name" = regwatch-agent ]; then copy_with_libs "$rootfs" /usr/bin/journalctl; fi
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nregwatch:x:65532:65532:regwatch:/var/lib/regwatch:/usr/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nregwatch:x:65532:\n' > "$rootfs/etc/group"
  printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
  mkdir -p "$rootfs/etc/regwatch" "$rootfs/var/lib/regwatch" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  [ "$user" = 65532 ] && chown 65532:65532 "$rootfs/var/lib/regwatch"
  umoci repack --image "$layout:$VERSION" "$bundle"
  # shellcheck disable=SC2086
  umoci config --image "$layout:$VERSION" --config.user "$user:$user" --config.entrypoint "/usr/bin/$name" \
    $(for a in $cmd; do printf -- '--config.cmd %s ' "$a"; done) \
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --config.workingdir / \
    --config.label "org.opencontainers.image.title=$name" --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label "org.opencontainers.image.source=https://github.com/regwatch/regwatch"
  umoci gc --layout "$layout"
  rm -f "$OUT/$name.oci.tar"
  skopeo copy --quiet "oci:$layout:$VERSION" "oci-archive:$OUT/$name.oci.tar:$name:$VERSION"
  local unpacked
  unpacked=$(du -sb "$rootfs" | cut -f1)
  printf '%s: %s (archive %s bytes, unpacked %s MB)\n' "$name" "$OUT/$name.oci.tar" "$(stat -c%s "$OUT/$name.oci.tar")" "$((unpacked / 1000000))"
}

build regwatch-agent 0 "run --config /etc/regwatch/agent.yaml"
build regwatch-aggregator 65532 "serve --config /etc/regwatch/aggregator.yaml"

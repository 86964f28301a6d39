#!/usr/bin/env bash
# Renders every Kubernetes overlay, cleanup directory and journal component of deploy/kubernetes and
# checks each rendered manifest offline (no cluster):
#   render      kubectl kustomize
#   schema      kubernetes-validate --strict against Kubernetes $K8S_VERSION
#   checkov     checkov --framework kubernetes; every skip carries a reason
#   config      scripts/kubernetes-config-check.py: agent.yaml / aggregator.yaml keys, and every file
#               they name is mounted (read-write where written), no host mount the config does not use
# One PASS or FAIL line per target and check; exit 1 if any failed.
#
# The tools come from PyPI into a venv ($REGWATCH_VENV, default /var/cache/regwatch-venv), made here
# when missing. Everything after that runs without network: in a network namespace of its own when
# this shell may make one (unshare -n), and with checkov's downloads and update check turned off.
set -uo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.31.0
VENV=${REGWATCH_VENV:-/var/cache/regwatch-venv}
KUBECTL=${KUBECTL:-kubectl}
# Pinned: a newer checkov brings new checks, which should be a deliberate change here, not a surprise.
PIP_REQUIREMENTS="kubernetes-validate==1.37.0 checkov==3.3.30"

TARGETS=(overlays/containerd overlays/docker overlays/crio overlays/k3s overlays/rke2
         cleanup/containerd cleanup/docker cleanup/crio cleanup/k3s cleanup/rke2)
# The optional components, each rendered on top of the containerd overlay.
COMPONENTS=(volatile-journal without-journal)

failures=0
pass() { printf 'PASS  %-32s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-32s %s\n' "$1" "$2"; failures=$((failures + 1)); }

# --- tools -----------------------------------------------------------------------------------------
command -v "$KUBECTL" >/dev/null || { echo "test-kubernetes: $KUBECTL not found (set KUBECTL)" >&2; exit 2; }
if [ "$(cat "$VENV/.regwatch-requirements" 2>/dev/null)" != "$PIP_REQUIREMENTS" ]; then
    python=/usr/bin/python3
    [ -x "$python" ] || python=$(command -v python3)
    echo "test-kubernetes: installing $PIP_REQUIREMENTS into $VENV"
    { [ -x "$VENV/bin/pip" ] || "$python" -m venv "$VENV"; } &&
        "$VENV/bin/pip" install --quiet --disable-pip-version-check $PIP_REQUIREMENTS &&
        echo "$PIP_REQUIREMENTS" > "$VENV/.regwatch-requirements" ||
        { echo "test-kubernetes: could not install the tools into $VENV (python3-venv missing?)" >&2; exit 2; }
fi

# No network from here on.
OFFLINE=()
if unshare -n true 2>/dev/null; then OFFLINE=(unshare -n); fi
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true KUBECONFIG=/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

render() { # NAME DIR
    local out="$work/$(echo "$1" | tr / -).yaml"
    if "${OFFLINE[@]}" "$KUBECTL" kustomize "$2" > "$out" 2> "$out.err"; then
        pass "$1" render
        check "$1" "$out"
    else
        fail "$1" "render: $(head -c 400 "$out.err")"
    fi
}

check() { # NAME FILE
    local name=$1 file=$2 log="$2.log"
    if "${OFFLINE[@]}" "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$file" > "$log" 2>&1; then
        pass "$name" "schema (kubernetes-validate --strict, $K8S_VERSION)"
    else
        fail "$name" "schema (kubernetes-validate --strict, $K8S_VERSION)"; sed 's/^/      /' "$log"
    fi
    if "${OFFLINE[@]}" "$VENV/bin/checkov" -f "$file" --framework kubernetes --compact --quiet --skip-download \
            > "$log" 2>&1; then
        pass "$name" "checkov ($(grep -o 'Skipped checks: [0-9]*' "$log" | tr -d '\n'))"
    else
        fail "$name" checkov; sed 's/^/      /' "$log"
    fi
    if "${OFFLINE[@]}" "$VENV/bin/python" scripts/kubernetes-config-check.py --skips "$file" > "$log" 2>&1; then
        pass "$name" "checkov skips have reasons"
    else
        fail "$name" "checkov skips have reasons"; sed 's/^/      /' "$log"
    fi
    if "${OFFLINE[@]}" "$VENV/bin/python" scripts/kubernetes-config-check.py "$file" > "$log" 2>&1; then
        pass "$name" "config (keys, mounts, hostPID)"
    else
        fail "$name" "config (keys, mounts, hostPID)"; sed 's/^/      /' "$log"
    fi
}

for t in "${TARGETS[@]}"; do
    render "$t" "deploy/kubernetes/$t"
done
for c in "${COMPONENTS[@]}"; do
    dir="$work/with-$c"
    mkdir -p "$dir"
    k=$(realpath --relative-to="$dir" deploy/kubernetes)   # kustomize takes no absolute paths
    cat > "$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$k/base]
components: [$k/components/containerd, $k/components/$c]
EOF
    render "containerd+$c" "$dir"
done

echo
if [ "$failures" -eq 0 ]; then
    echo "test-kubernetes: all passed"
else
    echo "test-kubernetes: $failures failed"
    exit 1
fi

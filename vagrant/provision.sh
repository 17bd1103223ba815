#!/bin/bash
# vagrant/provision.sh — make a Debian 12 host ready to build, test and benchmark Manifold (root).
#
# Used by the Vagrantfile, by .ci/run and on a bare Debian host:  sudo bash vagrant/provision.sh
# Idempotent and quick when everything is there: apt-get update runs once, and only if a package is missing.
#   - Node >= 22 (tested: 24): kept if present; otherwise Node 24 from the NodeSource apt repository, or where
#     that is not reachable from the npm registry (Debian 12's own nodejs is 18). Nothing but Debian's mirrors
#     is contacted when node >= 22 is already installed.
#   - build tools for the native addon (g++ make python3), iproute2, nftables
#   - the test VM's needs (qemu-system-x86 busybox-static cpio xz-utils), then vagrant/qemu/setup.sh
#     (downloads the Debian kernel once; skip with MANIFOLD_VM_SETUP=0)
#   - the benchmark peers: crun runc bubblewrap nginx-light haproxy wrk hyperfine (their services are not
#     started: benchmarks run their own instances)
#   - etcd-server (3.4.23) for the cluster tests; its service is kept off (the tests start their own members)
# env: MANIFOLD_REPO  repo path (default: the parent of this script's directory, else /vagrant)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { echo "provision: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (sudo bash $0)"; exit 1; }
. /etc/os-release
[ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] || say "warning: written for Debian 12, this is ${PRETTY_NAME:-unknown}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${MANIFOLD_REPO:-}" ]; then REPO=$MANIFOLD_REPO
elif [ -f "$here/../package.json" ]; then REPO=$(cd "$here/.." && pwd)
else REPO=/vagrant   # Vagrant uploads this script to /tmp and runs it from there
fi

PACKAGES=(
  ca-certificates g++ make python3 musl-tools iproute2 nftables strace
  qemu-system-x86 busybox-static cpio xz-utils
  crun runc bubblewrap nginx-light haproxy wrk hyperfine
  etcd-server openssh-server
  chromium fonts-dejavu-core
)

updated=
apt_update() { [ -n "$updated" ] || { say "apt-get update"; apt-get update -qq; updated=1; }; }
missing() {   # prints the packages among "$@" that are not installed (one dpkg-query for all)
  { dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true; } | awk -v want="$*" '
    $NF == "installed" { ok[$1] = 1 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) if (!ok[w[i]]) printf "%s ", w[i] }'
}
apt_install() {
  local need
  need=$(missing "$@")
  [ -n "$need" ] || return 0
  apt_update
  say "installing" $need
  # no service starts during installation (nginx would take port 80, haproxy its default config)
  local policy=/usr/sbin/policy-rc.d had_policy=
  [ -e $policy ] && had_policy=1
  [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod 755 $policy; }
  local rc=0
  apt-get install -y -qq --no-install-recommends $need >/dev/null || rc=$?
  [ -n "$had_policy" ] || rm -f $policy
  return $rc
}

# ---- Node 24 LTS ---------------------------------------------------------------------------------
# Node 20 is past its end of life; Manifold needs >= 22 and is tested on 24. When the node on PATH is older
# (or missing), install Node 24: from NodeSource's apt repository where it answers, else from the npm
# registry, whose `node-linux-<arch>` package (what the `node` package installs) ships the official binaries
# and headers. The npm-registry install lands in /usr/local/lib/nodejs/node-v<version>-linux-<arch>, with
# node, npm and npx linked from /usr/local/bin (ahead of /usr/bin on root's PATH) and npm 11 beside it.
NODE_WANT_MAJOR=24 NODE_MIN_MAJOR=22
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_from_nodesource() {
  apt_install ca-certificates curl gnupg
  local key
  key=$(mktemp)
  curl -fsSL --max-time 20 https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key -o "$key" 2>/dev/null \
    || { rm -f "$key"; return 1; }
  install -d -m 755 /etc/apt/keyrings
  gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg < "$key"; rm -f "$key"
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_${NODE_WANT_MAJOR}.x nodistro main" \
    > /etc/apt/sources.list.d/nodesource.list
  updated=   # the new repository needs its own update
  if ! { apt_update && apt-get install -y -qq nodejs >/dev/null; }; then
    rm -f /etc/apt/sources.list.d/nodesource.list; updated=; return 1
  fi
}
node_from_npm_registry() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;; aarch64) arch=arm64 ;; ppc64le) arch=ppc64le ;; s390x) arch=s390x ;;
    *) say "no Node binary package for $(uname -m)"; return 1 ;;
  esac
  command -v npm >/dev/null || apt_install npm   # Debian's npm, only to fetch the two tarballs below
  local tmp version dest
  tmp=$(mktemp -d)
  ( cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_WANT_MAJOR" "npm@11" >/dev/null ) || { rm -rf "$tmp"; return 1; }
  version=$(tar xzf "$tmp"/node-linux-*.tgz -O package/package.json | sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p')
  dest=/usr/local/lib/nodejs/node-v$version-linux-$arch
  rm -rf "$dest"; install -d "$dest/lib/node_modules/npm"
  tar xzf "$tmp"/node-linux-*.tgz -C "$dest" --strip-components=1
  tar xzf "$tmp"/npm-*.tgz -C "$dest/lib/node_modules/npm" --strip-components=1
  rm -rf "$tmp"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
  for b in node npm npx; do ln -sfn "$dest/bin/$b" "/usr/local/bin/$b"; done
  hash -r
}
if [ "$(node_major)" -lt "$NODE_MIN_MAJOR" ]; then
  say "node >= $NODE_MIN_MAJOR not found (have: $(node --version 2>/dev/null || echo none)); installing Node $NODE_WANT_MAJOR"
  if node_from_nodesource && [ "$(node_major)" -ge "$NODE_MIN_MAJOR" ]; then
    say "installed node $(node --version) from NodeSource"
  elif node_from_npm_registry && [ "$(node_major)" -ge "$NODE_MIN_MAJOR" ]; then
    say "NodeSource not reachable: installed node $(node --version) from the npm registry's node-linux package ($(command -v node))"
  else
    say "could not install Node $NODE_WANT_MAJOR (node on PATH: $(command -v node || echo none), $(node --version 2>/dev/null || echo none))"
    exit 1
  fi
fi

# ---- packages -----------------------------------------------------------------------------------
apt_install "${PACKAGES[@]}"

# benchmark peers, etcd and sshd (test/git) are run by the benchmarks and tests themselves; keep their system services off under
# systemd (an etcd service left running, e.g. from an install without policy-rc.d, would hold 2379/2380)
if [ -d /run/systemd/system ]; then
  for svc in nginx haproxy etcd ssh; do
    if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now --quiet "$svc" || true
    fi
  done
elif [ -x /etc/init.d/etcd ] && /etc/init.d/etcd status >/dev/null 2>&1; then
  /etc/init.d/etcd stop >/dev/null 2>&1 || true   # no systemd (a container): stop a running SysV etcd
fi

# ---- the pure-cgroup-v2 test VM (kernel + initramfs, cached under $REPO/.cache/vm) --------------
if [ "${MANIFOLD_VM_SETUP:-1}" != 0 ]; then
  if [ -f "$REPO/vagrant/qemu/setup.sh" ]; then
    bash "$REPO/vagrant/qemu/setup.sh"
  else
    say "warning: $REPO/vagrant/qemu/setup.sh not found; the VM suite will set it up on first run"
  fi
fi

say "ready: node $(node --version), $(qemu-system-x86_64 --version | head -n1)"

#!/bin/bash
# vagrant/qemu/setup.sh — prepare Manifold's pure-cgroup-v2 test VM (Debian 12 host, root). Idempotent.
#
# Builds, in the cache dir ($MANIFOLD_VM_DIR, default <repo>/.cache/vm):
#   kernel/<KVER>/     the Debian kernel package, extracted (never installed on the host)
#   vmlinux-<KVER>     the kernel as an uncompressed ELF: qemu boots it through its PVH entry point,
#                      skipping ~3 s of in-guest xz decompression under TCG
#   initramfs.cpio.gz  busybox + the virtio/9p/overlay modules + init.sh (PID 1)
#   vm.env             KVER and the paths run.sh needs
# The guest runs the host's own userland (node, npm, built addons) over 9p, so nothing is built inside.
#
# env: MANIFOLD_VM_DIR   cache dir
#      MANIFOLD_VM_KPKG  kernel package to use (e.g. linux-image-6.1.0-56-amd64); default: the one
#                        recorded in the cache, else what Debian's linux-image-amd64 depends on today
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DIR=${MANIFOLD_VM_DIR:-$REPO/.cache/vm}

say() { echo "manifold-vm setup: $*" >&2; }
die() { say "error: $*"; exit 1; }

mkdir -p "$DIR" || die "cannot create the cache dir $DIR"
DIR=$(cd "$DIR" && pwd)

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, and qemu shares / with the guest)"

# ---- host packages -------------------------------------------------------------------------------
need=()
for pkg in qemu-system-x86 busybox-static cpio xz-utils; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = 'install ok installed' ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x /bin/busybox ] || die "/bin/busybox missing after installing busybox-static"

# ---- kernel --------------------------------------------------------------------------------------
KPKG=${MANIFOLD_VM_KPKG:-}
# once chosen, the kernel stays until the cache is cleared (reproducible runs, no apt lookup each time)
[ -n "$KPKG" ] || KPKG=$(sed -n 's/^KPKG=//p' "$DIR/vm.env" 2>/dev/null || true)
if [ -z "$KPKG" ]; then
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$KPKG" ]; then   # apt lists not fetched yet on a fresh host
    apt-get update -qq
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
fi
[ -n "$KPKG" ] || die "cannot find the Debian kernel package (set MANIFOLD_VM_KPKG)"
KVER=${KPKG#linux-image-}
KROOT=$DIR/kernel/$KVER
KMOD=$KROOT/lib/modules/$KVER

if [ ! -f "$KROOT/boot/vmlinuz-$KVER" ]; then
  say "downloading $KPKG (~70 MB, once)"
  tmp=$(mktemp -d "$DIR/dl.XXXXXX")
  chown _apt "$tmp" 2>/dev/null || true   # let apt download without its "unsandboxed" warning
  (cd "$tmp" && apt-get download -qq "$KPKG") || { rm -rf "$tmp"; die "apt-get download $KPKG failed"; }
  rm -rf "$KROOT" && mkdir -p "$KROOT"
  dpkg-deb -x "$tmp"/*.deb "$KROOT"
  rm -rf "$tmp"
fi

if [ ! -s "$DIR/vmlinux-$KVER" ]; then
  # bzImage = setup code + an xz stream holding the ELF kernel (what scripts/extract-vmlinux does)
  off=$({ LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$KROOT/boot/vmlinuz-$KVER" || true; } | head -n1 | cut -d: -f1)
  [ -n "$off" ] || die "no xz payload in vmlinuz-$KVER"
  { tail -c +"$((off + 1))" "$KROOT/boot/vmlinuz-$KVER" || true; } | xz -dc --single-stream > "$DIR/vmlinux-$KVER.tmp"
  [ "$(head -c4 "$DIR/vmlinux-$KVER.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || die "vmlinux is not an ELF file"
  mv "$DIR/vmlinux-$KVER.tmp" "$DIR/vmlinux-$KVER"
fi

# modules.dep/alias for modprobe inside the guest (autoloading veth, bridge, nf_tables...)
[ -s "$KMOD/modules.dep" ] || busybox depmod -b "$KROOT" "$KVER"

# ---- initramfs -----------------------------------------------------------------------------------
# Rebuilt when init.sh, this script, the kernel or the cache path change.
stamp=$(cat "$HERE/init.sh" "$HERE/setup.sh" /bin/busybox | sha256sum | cut -c1-16)-$KVER-$(echo "$DIR" | sha256sum | cut -c1-8)
if [ -s "$DIR/initramfs.cpio.gz" ] && [ "$(cat "$DIR/initramfs.stamp" 2>/dev/null)" = "$stamp" ]; then
  :
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"/{bin,dev,proc,sys,etc,mnt/host,mnt/rw,newroot,lib/modules/"$KVER",modules}
  cp /bin/busybox "$work/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/bin/$applet"
  done
  # just enough to mount the host root: virtio-pci -> 9p over virtio -> overlayfs (dependency order)
  for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
           drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/9p/9pnet net/9p/9pnet_virtio \
           fs/netfs/netfs fs/fscache/fscache fs/9p/9p fs/overlayfs/overlay; do
    ko=$KMOD/kernel/$m.ko
    if [ -f "$ko" ]; then
      cp "$ko" "$work/modules/" && basename "$ko" >> "$work/modules/order"
    elif [ -f "$ko.xz" ]; then
      xz -dc "$ko.xz" > "$work/modules/$(basename "$ko")" && basename "$ko" >> "$work/modules/order"
    elif ! grep -q "/$m.ko:" "$KMOD/modules.builtin" 2>/dev/null; then
      die "module $m neither in $KPKG nor built in"
    fi
  done
  cat > "$work/etc/manifold-vm.env" <<EOF
KVER=$KVER
KMOD=$KMOD
EOF
  cp "$HERE/init.sh" "$work/init" && chmod 755 "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$DIR/initramfs.cpio.gz.tmp"
  mv "$DIR/initramfs.cpio.gz.tmp" "$DIR/initramfs.cpio.gz"
  echo "$stamp" > "$DIR/initramfs.stamp"
  say "initramfs built (kernel $KVER)"
fi

cat > "$DIR/vm.env.tmp" <<EOF
KPKG=$KPKG
KVER=$KVER
KERNEL=$DIR/vmlinux-$KVER
INITRD=$DIR/initramfs.cpio.gz
EOF
mv "$DIR/vm.env.tmp" "$DIR/vm.env"

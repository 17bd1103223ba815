#!/bin/sh
# vagrant/qemu/init.sh — PID 1 of Manifold's test VM (busybox sh inside the initramfs built by setup.sh).
#
# Kernel command line: manifold.cmd=<base64 shell command> manifold.cwd=<base64 dir>
# Serial ports (see run.sh): ttyS0 console (host stderr), ttyS1 the command's stdout (host stdout),
# ttyS2 status lines for run.sh: "ready <uptime>" then "exit <code> <uptime>".
#
# The guest root is the host's / (virtio-9p, read-only) under a tmpfs overlay: everything is writable
# and every write is thrown away at power-off. /sys/fs/cgroup is a pure cgroup2 mount with all
# controllers enabled in the root's cgroup.subtree_control; /tmp and /run are fresh tmpfs (except the
# working directory, when it lies under them).
export PATH=/bin
. /etc/manifold-vm.env            # KVER, KMOD (host path of the extracted kernel modules)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 1 > /proc/sys/kernel/printk  # keep the console for panics only (OOM-killer reports stay in dmesg)

STATUS=/dev/ttyS2
OUT=/dev/ttyS1
finish() {                        # finish CODE: report, flush, leave through isa-debug-exit (qemu exits (c<<1)|1)
  echo "exit $1 $(cut -d' ' -f1 /proc/uptime)" > $STATUS
  sync
  c=$1; [ "$c" -gt 127 ] && c=127 # qemu's status is 8 bits; the exact code is in the status line
  printf "\\$(printf %o "$c")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  poweroff -f
}
die() { echo "manifold-vm: $*" > /dev/console; finish 255; }

for m in $(cat /modules/order); do insmod "/modules/$m" || die "insmod $m failed"; done

# host / read-only over 9p (cache=loose: host changes made while the VM runs are not seen), tmpfs on top
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /mnt/host || die "9p mount failed"
mount -t tmpfs -o size=1g,mode=755 rw /mnt/rw && mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot \
  || die "overlay mount failed"

# kernel module autoloading (ip link add type veth, bridge, nft...) runs /proc/sys/kernel/modprobe in
# *this* root: give it busybox modprobe and the extracted modules
mount --bind "/mnt/host$KMOD" "/lib/modules/$KVER" || die "modules bind mount failed"
echo /bin/modprobe > /proc/sys/kernel/modprobe

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=755 run $R/run
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || die "cgroup2 mount failed"
for c in $(cat $R/sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > $R/sys/fs/cgroup/cgroup.subtree_control || die "cannot enable controller $c"
done
mkdir -p "$R/lib/modules/$KVER" && mount --bind "/lib/modules/$KVER" "$R/lib/modules/$KVER"
# a modprobe in the guest's PATH even when the host has no kmod
mkdir -p $R/run/manifold-vm/bin
cp /bin/busybox $R/run/manifold-vm/bin/busybox
for a in modprobe insmod lsmod rmmod; do ln -s busybox $R/run/manifold-vm/bin/$a; done
ip link set lo up
hostname manifold-vm

CMD=; CWD=/
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    manifold.cmd=*) CMD=$(echo "${arg#manifold.cmd=}" | base64 -d) ;;
    manifold.cwd=*) CWD=$(echo "${arg#manifold.cwd=}" | base64 -d) ;;
  esac
done
[ -n "$CMD" ] || die "no manifold.cmd= on the kernel command line"
# /tmp and /run are fresh tmpfs in the guest: a working directory there (a CI clone in /tmp, say)
# would vanish under them, so show the host's copy at the same path
case "$CWD" in
  /tmp/*|/run/*) mkdir -p "$R$CWD" && mount --bind "/mnt/host$CWD" "$R$CWD" || die "cannot show $CWD in the guest" ;;
esac

stty -F $OUT raw -echo            # byte-exact stdout and status: no \n -> \r\n
stty -F $STATUS raw -echo
stty -F /dev/console -opost 2>/dev/null
echo "ready $(cut -d' ' -f1 /proc/uptime)" > $STATUS
chroot $R /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/run/manifold-vm/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 MANIFOLD_VM=1 \
  /bin/sh -c 'cd "$1" && exec /bin/sh -c "$2"' manifold-vm "$CWD" "$CMD" </dev/null >$OUT 2>/dev/console
finish $?

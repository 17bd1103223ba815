#!/bin/bash
# vagrant/qemu/run.sh 'shell command' [cwd] — run a command as root inside Manifold's pure-cgroup-v2 VM.
#
# Boots the kernel prepared by setup.sh (run it first), runs the command in cwd (default: $PWD) and
# powers off. The command's stdout streams to our stdout (byte-exact, so TAP passes through), its
# stderr and the kernel console to our stderr. Our exit status is the command's; 255 if the guest
# could not start it, 254 if the VM died without reporting, 124 on timeout.
# KVM when /dev/kvm is writable and a guest runs on it (probed once per host boot), TCG (software
# emulation) otherwise.
#
# env: MANIFOLD_VM_DIR      cache dir from setup.sh (default <repo>/.cache/vm)
#      MANIFOLD_VM_MEM      guest memory in MiB (2048)    MANIFOLD_VM_SMP  vCPUs (2)
#      MANIFOLD_VM_TIMEOUT  seconds before the VM is killed (900)
#      MANIFOLD_VM_ACCEL    kvm, tcg or auto (default: auto, as above)
#      MANIFOLD_VM_STATUS   file to receive the guest's status lines ("ready <uptime>", "exit <code> <uptime>")
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${MANIFOLD_VM_DIR:-$(cd "$HERE/../.." && pwd)/.cache/vm}
[ $# -ge 1 ] && [ -n "$1" ] || { echo "usage: $0 'command' [cwd]" >&2; exit 2; }
[ -r "$DIR/vm.env" ] || { echo "manifold-vm: $DIR/vm.env missing; run vagrant/qemu/setup.sh first" >&2; exit 2; }
. "$DIR/vm.env"     # KVER KERNEL INITRD

CWD=${2:-$PWD}
APPEND="console=ttyS0 quiet loglevel=1 panic=-1 manifold.cmd=$(printf %s "$1" | base64 -w0) manifold.cwd=$(printf %s "$CWD" | base64 -w0)"
if [ ${#APPEND} -ge 2000 ]; then
  echo "manifold-vm: command too long for the kernel command line; put it in a script" >&2; exit 2
fi

# A writable /dev/kvm is not proof that KVM works: under some hypervisors (nested in Firecracker) the
# guest stops at once with "KVM internal error ... emulation failure" and qemu waits, paused, until the
# timeout. So KVM is probed once per host boot (a guest that runs `true`, 20 s at most) and the answer
# kept in $DIR/kvm-probe; TCG otherwise.
kvm_works() {
  [ -w /dev/kvm ] || return 1
  local probe="$DIR/kvm-probe" boot
  boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
  if [ -r "$probe" ] && [ "$(sed -n 1p "$probe")" = "$boot" ]; then [ "$(sed -n 2p "$probe")" = ok ]; return; fi
  local verdict=broken
  if MANIFOLD_VM_ACCEL=kvm MANIFOLD_VM_TIMEOUT=20 MANIFOLD_VM_STATUS= "${BASH_SOURCE[0]}" true / >/dev/null 2>&1; then verdict=ok; fi
  printf '%s\n%s\n' "$boot" "$verdict" > "$probe.$$" && mv -f "$probe.$$" "$probe"
  [ "$verdict" = ok ] || echo "manifold-vm: KVM is present but a guest does not run on it here; using TCG" >&2
  [ "$verdict" = ok ]
}
case "${MANIFOLD_VM_ACCEL:-auto}" in
  kvm) ACCEL=(-accel kvm -cpu host); MODE=kvm ;;
  tcg) ACCEL=(-accel tcg -cpu max); MODE=tcg ;;
  *) if kvm_works; then ACCEL=(-accel kvm -cpu host); MODE=kvm; else ACCEL=(-accel tcg -cpu max); MODE=tcg; fi ;;
esac

TMP=$(mktemp -d)
STATUS=${MANIFOLD_VM_STATUS:-$TMP/status}
: > "$STATUS"
# the console reaches our stderr through a fifo: qemu reopening /dev/stderr would get its own file
# offset and write over (or under) what others write to the same file
mkfifo "$TMP/console"
cat "$TMP/console" >&2 &
console=$!

start=$(date +%s%N)
# --pdeathsig (twice, it is not inherited): if we are SIGKILLed (a test runner's timeout), qemu goes too
setpriv --pdeathsig KILL -- timeout --kill-after=5 "${MANIFOLD_VM_TIMEOUT:-900}" setpriv --pdeathsig KILL -- \
  qemu-system-x86_64 "${ACCEL[@]}" -m "${MANIFOLD_VM_MEM:-2048}" -smp "${MANIFOLD_VM_SMP:-2}" \
    -nodefaults -no-user-config -display none -no-reboot -bios /usr/share/qemu/qboot.rom \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
    -chardev file,id=console,path="$TMP/console" -serial chardev:console \
    -chardev stdio,id=out,signal=off -serial chardev:out \
    -chardev file,id=status,path="$STATUS" -serial chardev:status \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    </dev/null &
qemu=$!
trap 'kill -TERM $qemu 2>/dev/null' TERM INT HUP
wait $qemu; rc=$?
while kill -0 $qemu 2>/dev/null; do wait $qemu; rc=$?; done   # wait again if a signal interrupted us
trap - TERM INT HUP
exec 3<>"$TMP/console" 3>&-    # unblocks cat if qemu never opened the fifo (failed to start)
wait $console 2>/dev/null
ms=$((($(date +%s%N) - start) / 1000000))

ready=$(sed -n 's/^ready \([0-9.]*\).*/\1/p' "$STATUS" | tail -n1)
code=$(sed -n 's/^exit \([0-9]*\) .*/\1/p' "$STATUS" | tail -n1)
rm -rf "$TMP"

printf 'manifold-vm: %s, kernel %s, ready at %ss guest uptime, exit %s, %d ms wall\n' \
  "$MODE" "$KVER" "${ready:-?}" "${code:-?}" "$ms" >&2
if [ -n "$code" ] && [ $((rc & 1)) = 1 ]; then exit "$code"; fi   # the guest left through isa-debug-exit
[ "$rc" = 124 ] && { echo "manifold-vm: timed out after ${MANIFOLD_VM_TIMEOUT:-900} s" >&2; exit 124; }
echo "manifold-vm: the VM stopped without reporting an exit code (qemu status $rc; kernel panic?)" >&2
exit 254

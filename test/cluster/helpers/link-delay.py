#!/usr/bin/env python3
"""A constant-delay wire between two interfaces, for the fabric's delay fault (this kernel has no sch_netem).

    link-delay.py IF_A IF_B DELAY_A_TO_B_MS [DELAY_B_TO_A_MS]

Run inside the netns that holds both interfaces (the fabric spawns it in `fab` with nsenter). Every
ethernet frame received on A is sent out of B DELAY_A_TO_B_MS later, and B's frames go out of A after
DELAY_B_TO_A_MS (default 0). Prints "ready" once both sockets are bound; exits 0 on SIGTERM/SIGINT.

Frames are read and written with PACKET_VNET_HDR, as a tap device's user does: a TCP segment made on a
veth is usually a GSO super-frame (up to 64 KiB) with a partial checksum. Read as a plain frame it is
bigger than the MTU (sendto says EMSGSIZE) and its checksum is unfinished (the receiver drops it). The
virtio_net_hdr in front of it carries the GSO and checksum state, and handing it back unchanged on the
other socket recreates the same skb there, so no offload has to be turned off (and no ethtool needed).
"""
import collections
import ctypes
import errno
import math
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
BUF_BYTES = 8 << 20
# virtio_net_hdr (10 bytes) + the largest GSO frame a veth makes (gso_max_size 64 KiB) + slack.
FRAME_MAX = 10 + 65536 + 4096


def tie_to_parent():
    """Dies with the parent unless the caller already arranged it (setpriv --pdeathsig KILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = ctypes.c_int(0)
        if libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(current), 0, 0, 0) == 0 and current.value == 0:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass  # no prctl: the caller kills us


def open_port(ifname):
    # Protocol 0 at socket() receives nothing; bind() then starts reception on this interface only,
    # so no frame of another interface can slip in before the bind.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    try:
        # Our own transmissions (and the interface's) never come back as input; pkttype is checked too.
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    # Bursts (a TCP window released at once) must not overflow while the loop is busy elsewhere.
    for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # SO_RCVBUFFORCE, SO_SNDBUFFORCE
        try:
            s.setsockopt(socket.SOL_SOCKET, force, BUF_BYTES)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, opt, BUF_BYTES)
    s.bind((ifname, ETH_P_ALL))
    ifindex = socket.if_nametoindex(ifname)
    # A veth does not filter by MAC, but promiscuous mode makes sure frames for other hosts reach us.
    mreq = struct.pack('iHH8s', ifindex, PACKET_MR_PROMISC, 0, b'')
    s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    s.setblocking(False)
    return s


class Direction:
    """Frames read from `src`, queued as (due, frame) in arrival order until due, then written to `dst`.

    A FIFO is enough: with a constant delay, frames fall due in the order they arrived."""

    def __init__(self, src, dst, delay_ms):
        self.src = src
        self.dst = dst
        self.delay = delay_ms / 1000.0
        self.queue = collections.deque()
        self.dropped = 0

    def read(self, buf, now):
        """Queues what waits on src (at most 256 frames, so the other direction gets its turn),
        skipping our own transmissions (pkttype PACKET_OUTGOING)."""
        view = memoryview(buf)
        for _ in range(256):
            try:
                n, addr = self.src.recvfrom_into(view, len(buf), socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.ENETDOWN, errno.ENXIO):
                    return
                raise
            if addr[2] == PACKET_OUTGOING:
                continue
            if n > len(buf):  # MSG_TRUNC returns the real length: a frame we cannot hold whole
                self.dropped += 1
                continue
            self.queue.append((now + self.delay, bytes(view[:n])))

    def write(self, now):
        """Writes every frame that is due; returns the seconds until the next one, or None."""
        q = self.queue
        while q:
            due, frame = q[0]
            if due > now:
                return due - now
            try:
                self.dst.send(frame)
            except BlockingIOError:
                return 0.001  # the device backs off: retry soon, keep the order
            except OSError:
                self.dropped += 1  # ENOBUFS, ENETDOWN…: a real link loses the frame too
            q.popleft()
        return None


def main():
    if len(sys.argv) not in (4, 5):
        sys.stderr.write(__doc__)
        return 2
    if_a, if_b = sys.argv[1], sys.argv[2]
    a_to_b_ms = float(sys.argv[3])
    b_to_a_ms = float(sys.argv[4]) if len(sys.argv) == 5 else 0.0
    tie_to_parent()
    # A handler that just returns would not end a blocked poll() (PEP 475 retries it): the wakeup fd,
    # polled with the sockets, does.
    stopping = []
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))

    a, b = open_port(if_a), open_port(if_b)
    dirs = {a.fileno(): Direction(a, b, a_to_b_ms), b.fileno(): Direction(b, a, b_to_a_ms)}
    poller = select.poll()
    for fd in dirs:
        poller.register(fd, select.POLLIN)
    poller.register(wake_r.fileno(), select.POLLIN)
    buf = bytearray(FRAME_MAX)
    print('ready', flush=True)

    timeout = None
    while not stopping:
        try:
            # Rounded up: a wait shorter than 1 ms would otherwise spin on poll(0).
            events = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd, _ in events:
            if fd in dirs:
                dirs[fd].read(buf, now)
            else:
                try:
                    wake_r.recv(64)
                except BlockingIOError:
                    pass
        now = time.monotonic()
        waits = [w for w in (d.write(now) for d in dirs.values()) if w is not None]
        timeout = min(waits) if waits else None

    dropped = sum(d.dropped for d in dirs.values())
    if dropped:
        sys.stderr.write('link-delay: %d frames dropped\n' % dropped)
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""
An SRT ingest listener that takes a new caller while an old one is still connected,
like a real hub (MediaMTX replaces a stale publisher with the new one), and forwards
the newest caller's messages to a UDP port, one datagram per SRT message.

Why it exists: srt-live-transmit and GStreamer 1.22's srtsrc serve one caller at a
time (srt-live-transmit takes no second caller while it has one, seen here). A SIGKILLed
caller never closes its connection; libsrt declares it broken only when the peer has
been silent for SRTO_PEERIDLETIMEO *and* its EXP timer has expired more than 16 times,
the n-th expiry coming no sooner than n x 300 ms of silence: so never before ~4.8 s,
whatever peeridletimeo says (the option can only make it longer). Measured with libsrt
1.5.1 and srt-live-transmit: peeridletimeo=1000, 2000, 3000 and the default all broke
~5.07 s after the kill, 7000 after 7.18 s. A single-caller listener therefore cannot
take the restarted caller sooner than that. This one keeps listening; the newest caller
replaces the previous one, whose reader stops forwarding at once.

It is libsrt itself (the library srt-live-transmit uses, package srt-tools), called
through ctypes: no build step, no Python packages. Live mode, default options
(latency 120 ms, negotiated with the caller's).

    python3 srt-hub.py SRT_PORT UDP_PORT [HOST]

Prints `listening PORT latency MS`, `accepted ID FROM` and `closed ID` lines on stdout.
On every accept it first sends one datagram `SRT-HUB accepted ID` to the UDP port (not
MPEG-TS): everything after it there comes from that caller.
"""
import ctypes
import ctypes.util
import socket
import struct
import sys
import threading
from typing import NoReturn

SRTO_LATENCY = 23  # srt.h: SRT_SOCKOPT
MARKER = 'SRT-HUB accepted '  # helpers/processes.ts SRT_HUB_MARKER


def load_libsrt() -> ctypes.CDLL:
    for name in ('srt-gnutls', 'srt-openssl', 'srt'):
        path = ctypes.util.find_library(name)
        if path:
            return ctypes.CDLL(path)
    for soname in ('libsrt-gnutls.so.1.5', 'libsrt-openssl.so.1.5', 'libsrt.so.1.5', 'libsrt.so.1'):
        try:
            return ctypes.CDLL(soname)
        except OSError:
            pass
    sys.exit('srt-hub: libsrt not found (package srt-tools / libsrt1.5-gnutls)')


srt = load_libsrt()
srt.srt_startup.restype = ctypes.c_int
srt.srt_create_socket.restype = ctypes.c_int
srt.srt_bind.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
srt.srt_listen.argtypes = [ctypes.c_int, ctypes.c_int]
srt.srt_accept.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
srt.srt_accept.restype = ctypes.c_int
srt.srt_recvmsg.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
srt.srt_recvmsg.restype = ctypes.c_int
srt.srt_close.argtypes = [ctypes.c_int]
srt.srt_getsockname.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
srt.srt_getsockflag.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
srt.srt_getlasterror_str.restype = ctypes.c_char_p


def fail(what: str) -> NoReturn:
    sys.exit(f'srt-hub: {what}: {srt.srt_getlasterror_str().decode()}')


def sockaddr_in(host: str, port: int) -> ctypes.Array:
    raw = struct.pack('=H', socket.AF_INET) + struct.pack('!H4s8x', port, socket.inet_aton(host))
    return ctypes.create_string_buffer(raw, len(raw))


def peer(addr: ctypes.Array) -> str:
    port, ip = struct.unpack('!H4s', addr.raw[2:8])
    return f'{socket.inet_ntoa(ip)}:{port}'


def main() -> None:
    srt_port, udp_port = int(sys.argv[1]), int(sys.argv[2])
    host = sys.argv[3] if len(sys.argv) > 3 else '127.0.0.1'
    if srt.srt_startup() < 0:
        fail('srt_startup')
    listener = srt.srt_create_socket()
    addr = sockaddr_in(host, srt_port)
    if srt.srt_bind(listener, addr, len(addr)) != 0:
        fail('srt_bind')
    if srt.srt_listen(listener, 8) != 0:
        fail('srt_listen')
    if srt_port == 0:  # the port the system chose: no race with another test taking it
        bound, bound_len = ctypes.create_string_buffer(16), ctypes.c_int(16)
        if srt.srt_getsockname(listener, bound, ctypes.byref(bound_len)) != 0:
            fail('srt_getsockname')
        srt_port = struct.unpack('!H', bound.raw[2:4])[0]
    latency, size = ctypes.c_int(0), ctypes.c_int(ctypes.sizeof(ctypes.c_int))
    srt.srt_getsockflag(listener, SRTO_LATENCY, ctypes.byref(latency), ctypes.byref(size))
    print(f'listening {srt_port} latency {latency.value}', flush=True)

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lock = threading.Lock()
    current = {'sock': -1}

    def forward(sock: int) -> None:
        buf = ctypes.create_string_buffer(1500)
        while True:
            n = srt.srt_recvmsg(sock, buf, len(buf))
            if n <= 0:
                break
            with lock:  # sent under the lock: nothing of an old caller follows the marker
                if current['sock'] != sock:
                    break
                out.sendto(buf.raw[:n], (host, udp_port))
        srt.srt_close(sock)
        print(f'closed {sock}', flush=True)

    while True:
        peer_addr, peer_len = ctypes.create_string_buffer(128), ctypes.c_int(128)
        sock = srt.srt_accept(listener, peer_addr, ctypes.byref(peer_len))
        if sock < 0:
            fail('srt_accept')
        # The new publisher replaces the old one: the old reader stops forwarding at its
        # next message, or ends when libsrt declares the dead connection broken. The
        # marker datagram tells the UDP reader where the new caller's messages begin.
        with lock:
            current['sock'] = sock
            out.sendto(f'{MARKER}{sock}'.encode(), (host, udp_port))
        print(f'accepted {sock} {peer(peer_addr)}', flush=True)
        threading.Thread(target=forward, args=(sock,), daemon=True).start()


if __name__ == '__main__':
    main()

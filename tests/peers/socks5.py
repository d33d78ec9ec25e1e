#!/usr/bin/python3
"""A SOCKS5 client that sends exactly the bytes it is given, for the cases
real clients never produce (malformed, split, flooding, silent).

usage: socks5.py PORT [--each] [--flood BYTES] [--hold] HEX...

Connects to 127.0.0.1:PORT and sends each HEX argument with one send()
(with --each, one byte per send, TCP_NODELAY, 20 ms apart, so that the
server reads a message in pieces). --flood then sends BYTES more of a fixed
pattern without waiting for any answer, and prints its sha256 to stderr.
Then it half-closes, unless --hold, and reads until the server closes
(15 s at most). Writes every byte received to stdout, and to stderr
"closed after MS ms" (or "still open after 15 s").
"""
import hashlib
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    port = int(args.pop(0))
    each = hold = False
    flood = 0
    chunks = []
    while args:
        arg = args.pop(0)
        if arg == "--each":
            each = True
        elif arg == "--hold":
            hold = True
        elif arg == "--flood":
            flood = int(args.pop(0))
        else:
            chunks.append(bytes.fromhex(arg))

    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.monotonic()
    try:
        for chunk in chunks:
            pieces = [chunk[i:i + 1] for i in range(len(chunk))] if each else [chunk]
            for piece in pieces:
                s.sendall(piece)
                if each:
                    time.sleep(0.02)
        if flood:
            pattern = bytes(range(256)) * 256
            digest = hashlib.sha256()
            sent = 0
            while sent < flood:
                block = pattern[: min(len(pattern), flood - sent)]
                s.sendall(block)
                digest.update(block)
                sent += len(block)
            print("flood sha256 %s" % digest.hexdigest(), file=sys.stderr)
        if not hold:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    received = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                print("closed after %d ms" % ((time.monotonic() - started) * 1000), file=sys.stderr)
                break
            received += data
    except socket.timeout:
        print("still open after 15 s", file=sys.stderr)
    except ConnectionResetError:
        print("reset after %d ms" % ((time.monotonic() - started) * 1000), file=sys.stderr)
    sys.stdout.buffer.write(received)


main()

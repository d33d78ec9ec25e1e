#!/usr/bin/python3
"""Tunnels held open, for the limit tests.

usage: hold.py PROXYPORT TARGETPORT SOURCE...

Opens a tunnel to the echo target from each SOURCE address in turn and
keeps each one open (its process up) until all are tried. Prints "200" for
a tunnel that echoed, or "closed" for a connection the proxy accepted and
closed with no answer, one word per SOURCE. With HOLD_UNTIL_KILLED set in
the environment, it then keeps the tunnels open until it is killed.
"""
import os, signal, socket, sys
proxy, target = int(sys.argv[1]), sys.argv[2]
held = []
def tunnel(source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", proxy))
    try:
        s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\nping" % target.encode())
        reply = b""
        while not reply.endswith(b"ping"):
            data = s.recv(4096)
            if not data:
                return "closed"
            reply += data
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    held.append(s)  # keep the tunnel (and its process) up
    return "200" if reply.startswith(b"HTTP/1.1 200 ") else "other"
results = [tunnel(s) for s in sys.argv[3:]]
print(" ".join(results), flush=True)
if os.environ.get("HOLD_UNTIL_KILLED"):
    signal.pause()

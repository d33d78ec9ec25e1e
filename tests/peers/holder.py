#!/usr/bin/python3
"""A client that holds its connection to the proxy open, for the title tests.

usage: holder.py PROXYPORT PORTFILE REQUEST

Connects to the proxy on 127.0.0.1, sends REQUEST (a Python bytes literal),
writes its own port to PORTFILE (so a test can tell its tunneld from the
others), then writes whatever comes back to PORTFILE.reply until the proxy
closes, and stays until it is killed.
"""
import ast
import os
import socket
import sys
import time

proxy, port_file, request = int(sys.argv[1]), sys.argv[2], ast.literal_eval(sys.argv[3])
s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
s.sendall(request)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(port_file + ".tmp", port_file)
s.settimeout(None)
with open(port_file + ".reply", "ab", buffering=0) as reply:
    while True:
        data = s.recv(65536)
        if not data:
            break
        reply.write(data)
while True:
    time.sleep(3600)

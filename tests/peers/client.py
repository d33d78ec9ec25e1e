#!/usr/bin/python3
"""Precise CONNECT clients for behaviours plain tools cannot show.

usage:
  client.py after-target-eof PROXYPORT HOST PORT
      tunnel to a speak-first target; read its greeting up to its EOF, then
      send a line (the client may still talk after the target half-closed)
      and half-close. Prints the greeting.
  client.py pipe-after-target-eof TUNNELD ARGS... -- HOST PORT
      the same over two pipes, tunneld being the child: its close(fd 1) is
      the EOF. (socat's EXEC ...,pipes keeps a copy of the pipe's write end,
      so no EOF could come through it.)
  client.py pipe-flags TUNNELD ARGS... -- HOST PORT
      run tunneld on two pipes (the ssh/stunnel shape), tunnel one line to an
      echo target, and check that the pipes' O_NONBLOCK flags are as before.
  client.py socket-flags REQUEST TUNNELD ARGS...
      run tunneld with one end of a socketpair as both fd 0 and fd 1 (the
      inetd, systemd and stunnel shape: one open file), send REQUEST (a
      Python bytes literal), read the reply to EOF, and print it after the
      socket's O_NONBLOCK before and after: "blocking -> blocking".
  client.py inetd REQUEST TUNNELD ARGS...
      the xinetd shape: one end of a socketpair as fds 0, 1 and 2; send
      REQUEST (a Python bytes literal), half-close, and print every byte
      that came back, exactly.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys

# Every mode is bounded by this, its children included: a tunneld that
# hangs must fail the test, not hold it (its fd 2 is the test's output).
BOUND_SECONDS = 15
children = []


def spawn(command, **streams):
    child = subprocess.Popen(command, **streams)
    children.append(child)
    return child


def give_up(signal_number, frame):
    for child in children:
        child.kill()
    raise SystemExit("timed out after %d s" % BOUND_SECONDS)


def read_head(sock_or_fd, read):
    head = b""
    while b"\r\n\r\n" not in head:
        data = read(1)
        if not data:
            raise SystemExit("connection closed before the response head: %r" % head)
        head += data
    if not head.startswith(b"HTTP/1.1 200 "):
        raise SystemExit("unexpected response: %r" % head)


def read_to_eof(sock):
    received = b""
    while True:
        data = sock.recv(4096)
        if not data:
            return received
        received += data


def after_target_eof(proxy_port, host, port):
    sock = socket.create_connection(("127.0.0.1", int(proxy_port)), timeout=10)
    sock.sendall(b"CONNECT %s:%s HTTP/1.1\r\n\r\n" % (host.encode(), port.encode()))
    read_head(sock, sock.recv)
    greeting = read_to_eof(sock)
    sock.sendall(b"sent after target EOF\n")
    sock.shutdown(socket.SHUT_WR)
    if sock.recv(1) != b"":
        raise SystemExit("data after EOF")
    sys.stdout.write(greeting.decode())


def pipe_after_target_eof(argv):
    split = argv.index("--")
    command, (host, port) = argv[:split], argv[split + 1:]
    child = spawn(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    child.stdin.write(b"CONNECT %s:%s HTTP/1.1\r\n\r\n" % (host.encode(), port.encode()))
    child.stdin.flush()
    read_head(child.stdout, child.stdout.read)
    greeting = child.stdout.read()  # to EOF: tunneld closed its fd 1
    child.stdin.write(b"sent after target EOF\n")
    child.stdin.close()
    child.wait(timeout=10)
    sys.stdout.write(greeting.decode())


def pipe_flags(argv):
    split = argv.index("--")
    command, (host, port) = argv[:split], argv[split + 1:]
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    # Keep the child's ends open here too: they share the open file
    # descriptions (and so the O_NONBLOCK flag) with the child's fd 0 and 1.
    before = (fcntl.fcntl(to_child_r, fcntl.F_GETFL), fcntl.fcntl(from_child_w, fcntl.F_GETFL))
    child = spawn(command, stdin=to_child_r, stdout=from_child_w)
    os.write(to_child_w, b"CONNECT %s:%s HTTP/1.1\r\n\r\nthrough two pipes\n" % (host.encode(), port.encode()))
    os.close(to_child_w)
    reply = b""
    while not reply.endswith(b"through two pipes\n"):
        data = os.read(from_child_r, 4096)
        if not data:
            break
        reply += data
    child.wait(timeout=10)
    after = (fcntl.fcntl(to_child_r, fcntl.F_GETFL), fcntl.fcntl(from_child_w, fcntl.F_GETFL))
    if not reply.startswith(b"HTTP/1.1 200 ") or not reply.endswith(b"through two pipes\n"):
        raise SystemExit("bad reply %r" % reply)
    if before != after:
        raise SystemExit("flags changed: before %r after %r" % (before, after))
    print("flags restored", child.returncode)


def on_one_socket(request, command, with_stderr):
    """Runs command on one end of a socketpair (fds 0 and 1, and 2 if
    with_stderr), sends request (a Python bytes literal from the test),
    half-closes. Returns every byte that came back, and the file status flags
    of that end before and after."""
    ours, theirs = socket.socketpair()
    before = fcntl.fcntl(theirs.fileno(), fcntl.F_GETFL)
    child = spawn(command, stdin=theirs, stdout=theirs, stderr=theirs if with_stderr else None)
    ours.sendall(eval(request))
    ours.shutdown(socket.SHUT_WR)
    reply = read_to_eof(ours)
    child.wait(timeout=10)
    return reply, before, fcntl.fcntl(theirs.fileno(), fcntl.F_GETFL)


def socket_flags(request, command):
    def mode(flags):
        return "non-blocking" if flags & os.O_NONBLOCK else "blocking"
    reply, before, after = on_one_socket(request, command, False)
    print("%s -> %s" % (mode(before), mode(after)))
    sys.stdout.write(reply.decode())


def inetd(request, command):
    reply, _, _ = on_one_socket(request, command, True)
    sys.stdout.buffer.write(reply)


def main():
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(BOUND_SECONDS)
    if sys.argv[1] == "after-target-eof":
        after_target_eof(*sys.argv[2:5])
    elif sys.argv[1] == "pipe-after-target-eof":
        pipe_after_target_eof(sys.argv[2:])
    elif sys.argv[1] == "pipe-flags":
        pipe_flags(sys.argv[2:])
    elif sys.argv[1] == "inetd":
        inetd(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "socket-flags":
        socket_flags(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

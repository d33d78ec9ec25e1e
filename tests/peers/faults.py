#!/usr/bin/python3
"""Both ends of one tunnel, for the relay's fault table (tests/faults.bats).

usage: faults.py SCENARIO PROXYPORT

Listens on 127.0.0.1 as the target, CONNECTs to it through the proxy on
PROXYPORT as the client, plays SCENARIO with both sockets in hand, and
prints what each end saw, one line per observation ("client: ...",
"target: ..."). Every wait is an event with a bound: a socket read, or a
send that fails; nothing waits for time alone but the one question a
stalled peer asks ("is the sender still blocked after 2 s?").

Scenarios:
  urgent-up          the client sends 64 KiB of x, before-, one byte as urgent
                     data, after (the prelude: by the urgent byte the relay
                     splices that direction, past its 2 KiB of read/write)
  urgent-down        the target sends 64 KiB of x, hello-, one byte as urgent
                     data, world, closes
  urgent-up-unspliced  urgent-up without the prelude: the urgent byte comes
                     while the direction still moves bytes by read/write
  reset-from-client  the client sends 1 MiB, and once the proxy has taken it
                     all, resets the connection; the target reads only then
  reset-from-target  the same from the target
  client-stalls      the target sends until it blocks while the client reads
                     nothing; then the client reads everything
  target-stalls      the same the other way
  client-stalls-idle the client never reads again: the tunnel must end (the
                     proxy runs with --idle-timeout), and the target's sends fail
  target-stalls-idle the same the other way
  half-close-up      the client sends x and half-closes; the target answers 1 MiB
  half-close-down    the target sends hello and half-closes; the client sends 1 MiB
  target-gone        the target closes after a first chunk; the client keeps
                     sending until its connection fails
  both-close         both half-close at once, with nothing sent
"""
import fcntl
import select
import signal
import socket
import struct
import sys
import termios

BOUND_SECONDS = 20
MIB = 1024 * 1024
STALL_PROOF_SECONDS = 2
FLOOD_LIMIT_BYTES = 256 * MIB  # more than this taken from a stalled path: memory is not bounded


def say(text):
    print(text, flush=True)


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def ending(sock):
    """What ends a stream now: "eof" or "reset" (what was read before is returned too)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, "eof"
            data += chunk
    except ConnectionResetError:
        return data, "reset"


def flood_until_blocked(sock):
    """Sends until the peer's path stays full for STALL_PROOF_SECONDS; the bytes sent."""
    sock.setblocking(False)
    block = b"z" * 65536
    sent = 0
    while sent < FLOOD_LIMIT_BYTES:
        try:
            sent += sock.send(block)
            continue
        except BlockingIOError:
            pass
        _, writable, _ = select.select([], [sock], [], STALL_PROOF_SECONDS)
        if not writable:
            sock.setblocking(True)
            return sent
    raise SystemExit("%d bytes taken by a tunnel whose reader stalled: not bounded" % sent)


def send_until_failure(sock):
    """Sends until the connection fails (the tunnel ended); how it failed."""
    sock.setblocking(False)
    block = b"z" * 65536
    while True:
        try:
            sock.send(block)
            continue
        except BlockingIOError:
            select.select([], [sock], [], BOUND_SECONDS)
        except (BrokenPipeError, ConnectionResetError):
            return "send failed"


def tunnel(proxy_port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", proxy_port), timeout=BOUND_SECONDS)
    client.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % listener.getsockname()[1])
    listener.settimeout(BOUND_SECONDS)
    target, _ = listener.accept()
    target.settimeout(BOUND_SECONDS)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = client.recv(1)
        if not byte:
            raise SystemExit("no response head: %r" % head)
        head += byte
    if not head.startswith(b"HTTP/1.1 200 "):
        raise SystemExit("not established: %r" % head)
    listener.close()
    return client, target


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


PRELUDE = b"x" * 65536


def after_prelude(data, prelude):
    return data[len(prelude):].decode() if data.startswith(prelude) else "a damaged prelude"


def urgent_up(client, target, prelude=PRELUDE):
    client.sendall(prelude + b"before-")
    say("target: received %s" % after_prelude(recv_exactly(target, len(prelude) + 7), prelude))
    client.send(b"!", socket.MSG_OOB)
    client.sendall(b"after")
    say("target: received %s" % recv_exactly(target, 6).decode())
    client.shutdown(socket.SHUT_WR)
    data, how = ending(target)
    say("target: %s%s" % (data.decode(), how))
    target.close()
    data, how = ending(client)
    say("client: %s%s" % (data.decode(), how))


def urgent_down(client, target):
    target.sendall(PRELUDE + b"hello-")
    say("client: received %s" % after_prelude(recv_exactly(client, len(PRELUDE) + 6), PRELUDE))
    target.send(b"!", socket.MSG_OOB)
    target.sendall(b"world")
    target.close()
    data, how = ending(client)
    say("client: received %s, then %s" % (data.decode(), how))


def acknowledged(sock):
    """Waits until the peer has acknowledged every byte sock sent (SIOCOUTQ 0), BOUND_SECONDS at most."""
    for _ in range(BOUND_SECONDS * 100):
        if struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0] == 0:
            return
        select.select([], [], [], 0.01)
    raise SystemExit("the proxy never took what was sent")


def reset_from(sender, receiver, sender_name, receiver_name):
    # 1 MiB, more than the socket buffers hold: the proxy has taken it all,
    # and much of it waits in the proxy when the sender resets.
    sender.sendall(b"d" * MIB)
    acknowledged(sender)
    reset(sender)
    data, how = ending(receiver)
    say("%s: received %d bytes from the %s, then %s" % (receiver_name, len(data), sender_name, how))


def stalls(reader, sender, reader_name, sender_name):
    sent = flood_until_blocked(sender)
    say("%s: blocked while the %s reads nothing" % (sender_name, reader_name))
    sender.shutdown(socket.SHUT_WR)
    received = 0
    while True:
        chunk = reader.recv(MIB)
        if not chunk:
            break
        received += len(chunk)
    say("%s: received all %s sent, then eof" % (reader_name, sender_name) if received == sent
        else "%s: received %d of %d bytes" % (reader_name, received, sent))


def stalls_idle(reader, sender, reader_name, sender_name):
    flood_until_blocked(sender)
    say("%s: blocked while the %s reads nothing" % (sender_name, reader_name))
    say("%s: %s" % (sender_name, send_until_failure(sender)))
    del reader


def half_close_up(client, target):
    client.sendall(b"x")
    client.shutdown(socket.SHUT_WR)
    data, how = ending(target)
    say("target: received %s, then %s" % (data.decode(), how))
    target.sendall(b"y" * MIB)
    target.close()
    data, how = ending(client)
    say("client: received %d bytes, then %s" % (len(data), how))


def half_close_down(client, target):
    target.sendall(b"hello")
    target.shutdown(socket.SHUT_WR)
    data, how = ending(client)
    say("client: received %s, then %s" % (data.decode(), how))
    client.sendall(b"y" * MIB)
    client.shutdown(socket.SHUT_WR)
    data, how = ending(target)
    say("target: received %d bytes, then %s" % (len(data), how))
    target.close()


def target_gone(client, target):
    client.sendall(b"first")
    say("target: received %s" % recv_exactly(target, 5).decode())
    target.close()
    say("client: %s" % ending_of_send(client))


def ending_of_send(client):
    data = client.recv(1)
    if data:
        return "unexpected data %r" % data
    return "eof, then " + send_until_failure(client)


def both_close(client, target):
    client.shutdown(socket.SHUT_WR)
    target.shutdown(socket.SHUT_WR)
    data, how = ending(target)
    say("target: %s%s" % (data.decode(), how))
    data, how = ending(client)
    say("client: %s%s" % (data.decode(), how))
    target.close()


SCENARIOS = {
    "urgent-up": urgent_up,
    "urgent-down": urgent_down,
    "urgent-up-unspliced": lambda c, t: urgent_up(c, t, b""),
    "reset-from-client": lambda c, t: reset_from(c, t, "client", "target"),
    "reset-from-target": lambda c, t: reset_from(t, c, "target", "client"),
    "client-stalls": lambda c, t: stalls(c, t, "client", "target"),
    "target-stalls": lambda c, t: stalls(t, c, "target", "client"),
    "client-stalls-idle": lambda c, t: stalls_idle(c, t, "client", "target"),
    "target-stalls-idle": lambda c, t: stalls_idle(t, c, "target", "client"),
    "half-close-up": half_close_up,
    "half-close-down": half_close_down,
    "target-gone": target_gone,
    "both-close": both_close,
}


def main():
    scenario, proxy_port = sys.argv[1], int(sys.argv[2])
    signal.alarm(3 * BOUND_SECONDS)  # a peer that hangs fails its test rather than holding the suite
    client, target = tunnel(proxy_port)
    try:
        SCENARIOS[scenario](client, target)
    except socket.timeout:
        say("timed out")
        sys.exit(1)


if __name__ == "__main__":
    main()

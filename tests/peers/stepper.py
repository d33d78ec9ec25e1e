"""stepper.py PROXY_PORT TARGET_PORT DIR: a client of an echo target through
the proxy that goes step by step, as the test says. It sends b"ping" and
reads it back, then writes DIR/small; once DIR/go exists it sends 64 KiB and
reads them back, then writes DIR/bulk; once DIR/done exists it closes and
prints what came back. Every wait is bounded (10 s)."""
import os, socket, sys, time

proxy_port, target_port, where = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def wait_file(name):
    for _ in range(1000):
        if os.path.exists(os.path.join(where, name)):
            return
        time.sleep(0.01)
    sys.exit("no " + name)


def receive(s, count):
    got = b""
    while len(got) < count:
        chunk = s.recv(count - len(got))
        if not chunk:
            break
        got += chunk
    return got


s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % target_port.encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
s.sendall(b"ping")
small = receive(s, 4)
open(os.path.join(where, "small"), "w").close()
wait_file("go")
bulk = bytes(range(256)) * 256
s.sendall(bulk)
echoed = receive(s, len(bulk))
open(os.path.join(where, "bulk"), "w").close()
wait_file("done")
s.close()
print(head.split(b"\r\n")[0].decode(), small.decode(), "bulk equal" if echoed == bulk else "bulk differs")

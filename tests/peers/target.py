#!/usr/bin/python3
"""Small TCP targets for the tests: real sockets on loopback, one thread a client.

usage: target.py MODE PORTFILE [ARG] [--host H] [--port P]

Binds port 0 (or P) on 127.0.0.1 (or H), writes the port to PORTFILE, serves
until killed. Modes:
  echo          echo everything; on EOF from the client, half-close back
  http          answer one HTTP/1.x request with a 200 and a fixed body
  sha           read to EOF, answer "<sha256> <bytes>\\n", close
  speak-first   send "hello from target\\n", half-close, then read to EOF and
                append what arrived to ARG (a file), so a test can see that
                the client could still send after the target's EOF
  source        send ARG bytes of a fixed pattern, then close
  sink          read and discard until EOF
  whoami        say where the connection came from, "from ADDRESS\n", and close
  blackhole     accept nothing: a listen backlog of 0, filled by one
                connection of its own, so the kernel drops further SYNs and
                a connect() hangs as it would towards a firewalled host
"""
import hashlib
import socket
import sys
import threading

HTTP_BODY = b"hello through the tunnel\n"


def read_all(conn):
    chunks = []
    while True:
        data = conn.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def serve(conn, mode, arg):
    with conn:
        if mode == "echo":
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    break
                conn.sendall(data)
        elif mode == "http":
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(HTTP_BODY), HTTP_BODY))
        elif mode == "sha":
            digest = hashlib.sha256()
            total = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                digest.update(data)
                total += len(data)
            conn.sendall(b"%s %d\n" % (digest.hexdigest().encode(), total))
        elif mode == "speak-first":
            conn.sendall(b"hello from target\n")
            conn.shutdown(socket.SHUT_WR)
            data = read_all(conn)
            with open(arg, "ab") as out:
                out.write(data)
        elif mode == "source":
            remaining = int(arg)
            block = bytes(range(256)) * 256
            while remaining > 0:
                sent = conn.send(block[:min(remaining, len(block))])
                remaining -= sent
        elif mode == "sink":
            read_all(conn)
        elif mode == "whoami":
            conn.sendall(b"from %s\n" % conn.getpeername()[0].encode())


def main():
    mode, port_file = sys.argv[1], sys.argv[2]
    arg = None
    host = "127.0.0.1"
    rest = sys.argv[3:]
    port = 0
    if "--host" in rest:
        i = rest.index("--host")
        host = rest[i + 1]
        del rest[i:i + 2]
    if "--port" in rest:
        i = rest.index("--port")
        port = int(rest[i + 1])
        del rest[i:i + 2]
    if rest:
        arg = rest[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0 if mode == "blackhole" else 128)
    if mode == "blackhole":
        filler = socket.create_connection((host, listener.getsockname()[1]))
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % listener.getsockname()[1])
    import os
    os.rename(port_file + ".tmp", port_file)
    if mode == "blackhole":
        while True:
            filler.recv(1)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, mode, arg), daemon=True).start()


if __name__ == "__main__":
    main()

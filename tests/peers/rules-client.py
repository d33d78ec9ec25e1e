#!/usr/bin/python3
"""One tunnel through tunneld as a given user from a given network, for the
rules table: the PROXY header names the client's address, as a balancer's
would, and the request is HTTP CONNECT or SOCKS5 with a login.

usage: rules-client.py PORT PROTOCOL USER PASSWORD FROM HOST:PORT [SOURCE_PORT]

PROTOCOL is http or socks5. Prints "allow" when the tunnel opened and an
echo target sent "ping" back through it, else "deny <what came back>".
"""
import base64
import socket
import sys


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def proxy_header(source, source_port):
    family = "TCP6" if ":" in source else "TCP4"
    destination = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {source_port} 3128\r\n".encode()


def http_connect(sock, user, password, target):
    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                 f"Proxy-Authorization: Basic {login}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            return head.split(b"\r\n")[0].decode(errors="replace") or "closed"
        head += chunk
    status = head.split(b"\r\n")[0].decode()
    return None if status.split()[1] == "200" else status


def socks5_connect(sock, user, password, target):
    host, port = target.rsplit(":", 1)
    host = host.strip("[]")
    sock.sendall(b"\x05\x01\x02")
    if read_exactly(sock, 2) != b"\x05\x02":
        return "method refused"
    sock.sendall(bytes([1, len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
    if read_exactly(sock, 2) != b"\x01\x00":
        return "login refused"
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host.encode() + int(port).to_bytes(2, "big"))
    reply = read_exactly(sock, 4)
    if len(reply) < 2:
        return "closed"
    if reply[1] != 0:
        return f"reply 0x{reply[1]:02x}"
    read_exactly(sock, {1: 6, 4: 18}[reply[3]])
    return None


def main():
    port, protocol, user, password, source, target = sys.argv[1:7]
    source_port = sys.argv[7] if len(sys.argv) > 7 else "40000"
    with socket.create_connection(("127.0.0.1", int(port)), timeout=15) as sock:
        sock.sendall(proxy_header(source, source_port))
        refusal = (http_connect if protocol == "http" else socks5_connect)(sock, user, password, target)
        if refusal is not None:
            print("deny", refusal)
            return
        sock.sendall(b"ping\n")
        echoed = read_exactly(sock, 5)
        print("allow" if echoed == b"ping\n" else f"deny tunnel carried {echoed!r}")


main()

#!/usr/bin/python3
"""A tiny DNS server for the tests, to run inside a network namespace.

usage: dns.py ADDRESS LOGFILE DELAY [LISTEN]

Answers every A query with ADDRESS and every other query with no records,
each DELAY seconds after it arrived ("never" for no answer at all), on UDP
and TCP port 53 of LISTEN (127.0.0.1 unless given). ADDRESS "nxdomain"
answers every query with NXDOMAIN instead: no name exists. LOGFILE gets a
line "query NAME TYPE" when a query arrives and "answered NAME TYPE" once
its answer was sent, so a test can wait for either event.
"""
import socket
import struct
import sys
import threading
import time

address, log_path, delay = sys.argv[1], sys.argv[2], sys.argv[3]
listen = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
NXDOMAIN = 3
log_lock = threading.Lock()


def log(line):
    with log_lock, open(log_path, "a") as log_file:
        log_file.write(line + "\n")


def question_of(query):
    """The question's name (text), type, and the question section's bytes."""
    at, labels = 12, []
    while query[at] != 0:
        labels.append(query[at + 1:at + 1 + query[at]].decode("ascii", "replace"))
        at += query[at] + 1
    qtype = struct.unpack("!H", query[at + 1:at + 3])[0]
    return ".".join(labels), qtype, query[12:at + 5]


def answer_to(query):
    name, qtype, question = question_of(query)
    records, rcode = b"", 0
    if address == "nxdomain":
        rcode = NXDOMAIN
    elif qtype == 1:
        records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    header = query[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 1 if records else 0, 0, 0)
    return name, qtype, header + question + records


def respond(send, query):
    name, qtype, response = answer_to(query)
    log("query %s %d" % (name, qtype))
    if delay == "never":
        return
    time.sleep(float(delay))
    send(response)
    log("answered %s %d" % (name, qtype))


def serve_udp(udp):
    while True:
        query, peer = udp.recvfrom(512)
        threading.Thread(target=respond, args=(lambda data, p=peer: udp.sendto(data, p), query), daemon=True).start()


def receive_exactly(conn, length):
    data = b""
    while len(data) < length:
        more = conn.recv(length - len(data))
        if not more:
            return None
        data += more
    return data


def serve_tcp_connection(conn):
    """Every query on the connection (glibc sends A and AAAA on one), each answered on its own."""
    send_lock = threading.Lock()

    def send(data):
        with send_lock:
            conn.sendall(struct.pack("!H", len(data)) + data)
    while True:
        prefix = receive_exactly(conn, 2)
        query = prefix and receive_exactly(conn, struct.unpack("!H", prefix)[0])
        if not query:
            conn.close()
            return
        threading.Thread(target=respond, args=(send, query), daemon=True).start()


def serve_tcp(tcp):
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=serve_tcp_connection, args=(conn,), daemon=True).start()


udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp_socket.bind((listen, 53))
tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp_socket.bind((listen, 53))
tcp_socket.listen(8)
threading.Thread(target=serve_tcp, args=(tcp_socket,), daemon=True).start()
log("ready")
serve_udp(udp_socket)

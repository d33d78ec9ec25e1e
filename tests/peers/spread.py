#!/usr/bin/python3
"""Many whole tunnels through a proxy, spread over several target ports.

usage: spread.py PROXY_HOST PROXY_PORT TARGET_HOST PORT[,PORT...] COUNT CONCURRENCY

COUNT tunnels, CONCURRENCY at a time, the n-th to the n-th port in turn:
connect, CONNECT, 200, one echo, close. Prints one line:

  served S refused R unreachable U

"refused" got no 200 or no echo; "unreachable" could not connect to the proxy.
"""
import asyncio
import sys

TIMEOUT_SECONDS = 60


async def tunnel(proxy_host, proxy_port, target_host, target_port):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(proxy_host, proxy_port), TIMEOUT_SECONDS)
    except (ConnectionError, OSError, asyncio.TimeoutError):
        return "unreachable"
    try:
        writer.write(b"CONNECT %s:%d HTTP/1.1\r\n\r\nping" % (target_host.encode(), target_port))
        await writer.drain()
        reply = b""
        while not reply.endswith(b"ping"):
            data = await asyncio.wait_for(reader.read(4096), TIMEOUT_SECONDS)
            if not data:
                break
            reply += data
        return "served" if reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"ping") else "refused"
    except (ConnectionError, OSError, asyncio.TimeoutError):
        return "refused"
    finally:
        writer.close()


async def main():
    proxy_host, proxy_port, target_host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ports = [int(port) for port in sys.argv[4].split(",")]
    count, concurrency = int(sys.argv[5]), int(sys.argv[6])
    outcomes = {"served": 0, "refused": 0, "unreachable": 0}
    next_index = 0

    async def worker():
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            outcome = await tunnel(proxy_host, proxy_port, target_host, ports[index % len(ports)])
            outcomes[outcome] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print("served %(served)d refused %(refused)d unreachable %(unreachable)d" % outcomes)


asyncio.run(main())

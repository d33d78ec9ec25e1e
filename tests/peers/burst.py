#!/usr/bin/python3
"""Bursts of CONNECT clients against a proxy, for the load tests.

usage: burst.py PROXYPORT TARGETPORT HOLD BURST [--silent]

HOLD is SOURCE:COUNT[,SOURCE:COUNT...]: first, tunnels to an echo target
that are opened from those source addresses and kept open (each proven by
its echo). BURST is COUNT@CONCURRENCY@SOURCE[+SOURCE...]: then COUNT more
connections, CONCURRENCY at a time, from the sources in turn, each of them
one whole tunnel (or, with --silent, a connection that sends nothing and
waits to be closed). Then the held tunnels are closed. Prints one line:

  held H/W served S refused R unreachable U

W is what HOLD asked for; "refused" are connections the proxy accepted and
closed without a 200; "unreachable" are connections that could not even be
made (a socket that stopped listening).
"""
import asyncio
import sys

# Longer than any wait a served connection may see: a silent one is answered
# at the header timeout, counted from when its instance started, and a
# manager may take seconds to start a hundred sandboxed instances.
TIMEOUT_SECONDS = 60


async def tunnel(proxy_port, target_port, source, silent=False):
    """'served', 'refused' or 'unreachable'; for a served one, also its streams."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", proxy_port, local_addr=(source, 0)), TIMEOUT_SECONDS)
    except (ConnectionError, OSError, asyncio.TimeoutError):
        return "unreachable", None
    try:
        if silent:
            data = await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
            return ("refused" if not data else "served"), (reader, writer)
        writer.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nping" % target_port)
        await writer.drain()
        reply = b""
        while not reply.endswith(b"ping"):
            data = await asyncio.wait_for(reader.read(4096), TIMEOUT_SECONDS)
            if not data:
                break
            reply += data
        if reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"ping"):
            return "served", (reader, writer)
        return "refused", (reader, writer)
    except (ConnectionError, OSError, asyncio.TimeoutError):
        return "refused", (reader, writer)


async def main():
    proxy_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    hold = [(source, int(count)) for source, count in (item.split(":") for item in sys.argv[3].split(",") if item)]
    count, concurrency, sources = sys.argv[4].split("@")
    sources = sources.split("+")
    silent = "--silent" in sys.argv[5:]

    held, wanted = [], sum(n for _, n in hold)
    for source, n in hold:
        results = await asyncio.gather(*(tunnel(proxy_port, target_port, source) for _ in range(n)))
        held += [streams for outcome, streams in results if outcome == "served"]

    tally = {"served": 0, "refused": 0, "unreachable": 0}
    semaphore = asyncio.Semaphore(int(concurrency))

    async def one(i):
        async with semaphore:
            outcome, streams = await tunnel(proxy_port, target_port, sources[i % len(sources)], silent)
            tally[outcome] += 1
            if streams is not None:
                streams[1].close()

    await asyncio.gather(*(one(i) for i in range(int(count))))
    for _, writer in held:
        writer.close()
    print("held %d/%d served %d refused %d unreachable %d" %
          (len(held), wanted, tally["served"], tally["refused"], tally["unreachable"]))


asyncio.run(main())

#!/usr/bin/python3
"""tunneld writing into a sink that does not drain, and a stop signal.

usage: stuck-sink.py FD AFTER REQUEST TUNNELD ARGS...

FD (1 or 2) is a pipe that is full and that nobody reads; the other of
fds 1 and 2 is a pipe read to its end. REQUEST (a Python bytes literal)
is sent on fd 0, which is then closed. Once tunneld is blocked writing
into FD, it gets SIGTERM, and then AFTER says what the sink does:
"never" (it stays full) or "drain" (it is read to its end as soon as the
signal has been taken).
Prints "gone after N ms, exit E" (E negative for a signal), then what the
sink held past its filling, one line each.
"""
import fcntl, os, signal, subprocess, sys, threading, time

fd, after, request, command = int(sys.argv[1]), sys.argv[2], eval(sys.argv[3]), sys.argv[4:]
FILLER = b"\0" * 65536
full, sink = os.pipe()
fcntl.fcntl(sink, fcntl.F_SETFL, os.O_NONBLOCK)
filled = 0
try:
    while True:
        filled += os.write(sink, FILLER)
except BlockingIOError:
    pass
fcntl.fcntl(sink, fcntl.F_SETFL, 0)
streams = {1: subprocess.PIPE, 2: subprocess.PIPE}
streams[fd] = sink
proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=streams[1], stderr=streams[2])
os.close(sink)
other = proc.stderr if fd == 1 else proc.stdout
threading.Thread(target=other.read, daemon=True).start()
proc.stdin.write(request)
proc.stdin.close()
for _ in range(2000):
    if "pipe_write" in open("/proc/%d/wchan" % proc.pid).read():
        break
    time.sleep(0.005)
else:
    sys.exit("tunneld never blocked writing into fd %d" % fd)
def signal_taken():
    """True once the signal is no longer pending: taken by a handler, or the process is gone."""
    try:
        status = dict(line.split(":", 1) for line in open("/proc/%d/status" % proc.pid))
    except (OSError, ValueError):
        return True
    return status["State"].split()[0] in "ZX" or (int(status["SigPnd"], 16) == 0 and int(status["ShdPnd"], 16) == 0)


started = time.monotonic()
proc.send_signal(signal.SIGTERM)
held = b""
if after == "drain":
    # Drain only once the signal has interrupted the write, so that what
    # follows the interruption is what is tested.
    while not signal_taken():
        time.sleep(0.001)
    while True:
        data = os.read(full, 65536)
        if not data:
            break
        held += data
try:
    proc.wait(timeout=5)
except subprocess.TimeoutExpired:
    proc.kill()
    sys.exit("still running 5 s after SIGTERM")
print("gone after %d ms, exit %d" % ((time.monotonic() - started) * 1000, proc.returncode))
sys.stdout.write(held.lstrip(b"\0").decode(errors="replace"))

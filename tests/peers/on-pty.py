#!/usr/bin/python3
"""A command on a pseudo-terminal, as the activators that give one do.

usage: on-pty.py SHAPE REQUEST COMMAND...

The pty, in raw mode, is the command's fds 0, 1 and 2. SHAPE says whose
terminal it is:
  detached  a session of the command's own with no controlling terminal
            (socat EXEC:...,pty)
  leader    the command leads a session whose controlling terminal the pty is
            (socat pty,setsid,ctty; ssh -t; script)
  shell     a shell leads that session and runs the command as its child
            (a person typing it)
REQUEST (a Python bytes literal) is written to the terminal. Prints the exit
code, a newline, and every byte that came out of the terminal.
"""
import os, pty, sys, tty

shape, request, command = sys.argv[1], eval(sys.argv[2]), sys.argv[3:]
master, terminal = pty.openpty()
tty.setraw(terminal)
pid = os.fork()
if pid == 0:
    os.close(master)
    if shape == "detached":
        os.setsid()
        for fd in (0, 1, 2):
            os.dup2(terminal, fd)
    else:
        os.login_tty(terminal)
    if shape == "shell":
        # "; exit" keeps sh from exec'ing the command in its own place.
        command = ["/bin/sh", "-c", '"$@"; exit $?', "sh"] + command
    os.execv(command[0], command)
os.close(terminal)
os.write(master, request)
seen = b""
while True:
    try:
        data = os.read(master, 4096)
    except OSError:  # EIO: the last holder of the terminal is gone
        break
    if not data:
        break
    seen += data
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
sys.stdout.write(seen.decode(errors="replace"))

"""Runs a seccomp program (tests/peers/seccomp-dump.c's text) as the kernel
would, for every call number up to 1,099, x32's and the largest, on the
native architecture and on another, with arguments that each special case tells apart, and compares
each verdict with what tunneld(8) "Sandbox" and src/sandbox.c's lists say.

    seccomp-verdicts.py DUMP NUMBERS [bind]

A DUMP of a forker's tunnel holds two programs, the forker's and then the
one each tunnel it forks stacks on it; the kernel runs both and the
stricter verdict wins, and that is the verdict judged.

NUMBERS: "name number" lines for the allowed calls and the special ones
(the C library's SYS_ constants, printed by the test). Prints the program's
length and the instructions the kernel runs to cache its verdicts (every
call number, the arguments not read), then each disagreement; exits 1 on any.
"""
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
RET_KILL_PROCESS, RET_ALLOW = 0x80000000, 0x7FFF0000
EPERM, ENOSYS = 0x50000 | 1, 0x50000 | 38
FIONREAD, SIOCOUTQ, TIOCSTI = 0x541B, 0x5411, 0x5412
AF_UNIX, AF_INET, AF_INET6, AF_PACKET, AF_NETLINK = 1, 2, 10, 17, 16
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_PACKET = 1, 2, 3, 10
CLONE_THREAD, CLONE_PARENT, SIGCHLD = 0x10000, 0x8000, 17
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1


def load(path):
    """The pid, and the programs in the order they are loaded."""
    lines = open(path).read().split("\n")
    pid = int(lines[0].split()[1])
    programs = [[]]
    for line in lines[1:]:
        if line.strip() == "stacked":
            programs.append([])
        elif line.strip():
            programs[-1].append(tuple(int(f) for f in line.split()))
    return pid, programs


def action_order(verdict):
    """As the kernel orders actions: the lower (as a signed 32-bit number), the stricter."""
    action = verdict & 0xFFFF0000
    return action - (1 << 32) if action & 0x80000000 else action


def run_stack(programs, nr, arch, args):
    """The kernel's verdict for filters stacked: the last loaded runs first, and a tie keeps its answer."""
    verdict = None
    for program in reversed(programs):
        got, _ = run(program, nr, arch, args)
        if verdict is None or action_order(got) < action_order(verdict):
            verdict = got
    return verdict


def run(program, nr, arch, args):
    """The verdict and how many instructions gave it; a load of an argument ends the count."""
    data = {0: nr, 4: arch}
    for i, value in enumerate(args):
        data[16 + 8 * i], data[20 + 8 * i] = value & 0xFFFFFFFF, value >> 32
    a = pc = steps = 0
    constant = True
    while True:
        code, jt, jf, k = program[pc]
        steps += constant
        kind = code & 7
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            constant = constant and k in (0, 4)
            a = data[k]
        elif code == 0x54:  # BPF_ALU | BPF_AND | BPF_K
            a &= k
        elif code == 0x05:  # BPF_JMP | BPF_JA
            pc += 1 + k
            continue
        elif kind == 5:
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: (a & k) != 0}[code]
            pc += 1 + (jt if taken else jf)
            continue
        elif code == 0x06:  # BPF_RET | BPF_K
            return k, steps
        else:
            raise SystemExit("instruction %#x not expected" % code)
        pc += 1


def expected(calls, nr, arch, args, pid, may_bind):
    if arch != AUDIT_ARCH_X86_64:
        return RET_KILL_PROCESS
    if nr in calls["allowed"] or (may_bind and nr == calls["bind"]):
        return RET_ALLOW
    a0, a1 = args[0] & 0xFFFFFFFF, args[1] & 0xFFFFFFFF
    if nr == calls["ioctl"]:
        return RET_ALLOW if a1 in (FIONREAD, SIOCOUTQ) else EPERM
    if nr in (calls["rt_sigqueueinfo"], calls["tgkill"]):
        return RET_ALLOW if a0 == pid else EPERM
    if nr == calls["seccomp"]:
        return RET_ALLOW if (a0, a1) == (SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC) else EPERM
    if nr == calls["clone3"]:
        return ENOSYS
    if nr == calls["clone"]:
        return RET_ALLOW if a0 & CLONE_THREAD else EPERM
    if nr == calls["socket"]:
        kind = a1 & 0xF
        if a0 in (AF_INET, AF_INET6) and kind in (SOCK_STREAM, SOCK_DGRAM):
            return RET_ALLOW
        return RET_ALLOW if a0 == AF_UNIX and kind == SOCK_DGRAM else EPERM
    return EPERM


def main():
    pid, programs = load(sys.argv[1])
    program = programs[0]
    calls = {"allowed": set()}
    for line in open(sys.argv[2]):
        name, number = line.split()
        if name.startswith("allowed:"):
            calls["allowed"].add(int(number))
        else:
            calls[name] = int(number)
    may_bind = len(sys.argv) > 3
    firsts = (0, 1, 2, 10, 16, 17, pid, pid + 1, CLONE_THREAD, CLONE_THREAD | 0x100, 0x100, 1 << 32 | 2,
              CLONE_PARENT | SIGCHLD)
    seconds = (0, 1, 2, 3, 10, 0x80801, 0x80802, FIONREAD, SIOCOUTQ, TIOCSTI, 1 << 32 | FIONREAD)
    wrong = 0
    wrong_calls = set()
    # Every number up to 1,099; x32's (bit 30 set), which the kernel may
    # take on x86_64; and the top of the range, where a comparison that
    # wraps or a sign would show.
    numbers = list(range(1100)) + list(range(0x40000000, 0x40000000 + 600)) + \
        [0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF]
    for nr in numbers:
        for arch in (AUDIT_ARCH_X86_64, AUDIT_ARCH_I386):
            for a0 in firsts:
                for a1 in seconds:
                    args = (a0, a1, 0, 0, 0, 0)
                    got = run_stack(programs, nr, arch, args)
                    want = expected(calls, nr, arch, args, pid, may_bind)
                    if got != want:
                        wrong += 1
                        wrong_calls.add(nr)
                        if wrong <= 10:
                            print("call %d arch %#x args %#x %#x: %#x, not %#x" % (nr, arch, a0, a1, got, want))
    cache_steps = sum(run(program, nr, AUDIT_ARCH_X86_64, (0,) * 6)[1] for nr in range(463))
    print("%d instructions, %d run to cache the verdicts of calls 0-462, %d verdicts wrong" %
          (len(program), cache_steps, wrong))
    if wrong:
        print("calls judged wrong: %s" % " ".join(str(nr) for nr in sorted(wrong_calls)))
    sys.exit(1 if wrong else 0)


main()

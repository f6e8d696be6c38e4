"""Start a plugin so that it never outlives bridgehost, then become it.

Run as `python -I -S launch.py --parent PID [--memory-mb N] [--hold] -- COMMAND...`
(no bridgehost import, no site packages: it starts in milliseconds). It
asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG, kept
across the exec that follows), checks the parent did not die before that,
applies the memory limit (RLIMIT_AS), restores the signal dispositions
Python changed, and execs the command. Doing this in a wrapper instead of a
`preexec_fn` keeps Python code out of the window between fork and exec,
which is unsafe in a process with threads (the store's). `--hold` blocks
SIGUSR1 for the program: a spare adapter waits for it (see child.py), and
one sent early stays pending instead of killing it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1
EXIT_CANNOT_EXEC = 127


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: rely on stdin EOF
        pass
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str]) -> None:
    parent, memory_mb, hold, i = 0, 0, False, 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--hold":
            hold, i = True, i + 1
        elif argv[i] == "--parent":
            parent, i = int(argv[i + 1]), i + 2
        elif argv[i] == "--memory-mb":
            memory_mb, i = int(argv[i + 1]), i + 2
        else:
            sys.stderr.write(f"ERROR launch: unknown option {argv[i]!r}\n")
            os._exit(2)
    command = argv[i + 1 :]
    if not command:
        sys.stderr.write("ERROR launch: no command\n")
        os._exit(2)
    if parent:
        _die_with_parent(parent)
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for name in ("SIGPIPE", "SIGXFSZ", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"ERROR cannot start {command[0]!r}: {exc.strerror}\n")
        os._exit(EXIT_CANNOT_EXEC)


if __name__ == "__main__":
    main(sys.argv[1:])

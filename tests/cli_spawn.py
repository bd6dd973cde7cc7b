"""Running the ``arcface`` command in a fresh process from the tests (posix_spawn; peak RSS measured)."""

from __future__ import annotations

#: Runs ``python -m arcface ARGS`` under an optional address-space cap, from a small process, and writes the
#: child's peak RSS (KiB) to the file named by its first argument. The child is forked from this small shim,
#: not from pytest: Linux carries a parent's RSS at fork time into a child's ``ru_maxrss``.
_SHIM = (
    "import os, resource, subprocess, sys\n"
    "cap = int(sys.argv[2])\n"
    "if cap:\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
    "p = subprocess.Popen([sys.executable, '-m', 'arcface', *sys.argv[3:]])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def spawn_cli(args: list[str], *, as_limit: int = 0, env: dict | None = None, timeout: float = 300):
    """``(exit code, stdout, stderr, peak RSS bytes)`` of ``python -m arcface ARGS`` in a fresh process.

    Started with ``posix_spawn`` (no ``preexec_fn``, no ``cwd``, ``close_fds=False``): a plain fork of the
    test runner would run the fork handlers of libraries it has loaded (gRPC's, after the Milvus tests), and
    those print to the child's stderr before ``exec``.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        proc = subprocess.run(
            [sys.executable, "-c", _SHIM, rss.name, str(as_limit), *args],
            capture_output=True,
            text=True,
            close_fds=False,
            env=env,
            timeout=timeout,
        )
        peak = int(rss.read() or 0) * 1024
    return proc.returncode, proc.stdout, proc.stderr, peak

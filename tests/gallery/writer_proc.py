"""Helper process for the crash and concurrency tests (not collected by pytest: no test_ prefix).

usage: python writer_proc.py DB PREFIX START COUNT ROWS [COMPACT_EVERY] [shared|slow]
Enrols PREFIX<i> for i in START..START+COUNT-1 with deterministic embeddings and prints "ack <i>"
after each enrolment returns (that is, once it is durably committed). ``shared`` also appends one
embedding per step to identity "shared"; ``slow`` makes every os.write of this process write 1 kB
chunks with pauses between, so that a SIGKILL often lands in the middle of a journal record.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from arcface.gallery import Gallery

DIM = 64


def embedding_for(prefix: str, i: int, rows: int) -> np.ndarray:
    seed = (sum(map(ord, prefix)) * 1_000_003 + i) % (2**32)
    x = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    db, prefix, start, count, rows = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    compact_every = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    shared = len(sys.argv) > 7 and sys.argv[7] == "shared"
    if len(sys.argv) > 7 and sys.argv[7] == "slow":
        real_write = os.write

        def slow_write(fd: int, data: bytes) -> int:
            time.sleep(0.0005)
            return real_write(fd, bytes(data[:1024]))

        os.write = slow_write
    g = Gallery(db, backend="numpy", threshold=0.5)
    for i in range(start, start + count):
        g.enroll(f"{prefix}{i}", embedding_for(prefix, i, rows), {"i": i, "prefix": prefix})
        if shared:
            g.enroll("shared", embedding_for(prefix, -i - 1, 1))
        print(f"ack {i}", flush=True)
        if compact_every and (i + 1) % compact_every == 0:
            g.compact()
    g.close()


if __name__ == "__main__":
    main()

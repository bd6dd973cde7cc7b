"""Peak memory and step time of a full FC softmax vs Partial FC (r = 0.1), on CPU.

Each case runs in a fresh subprocess (so peak RSS, from ``resource.getrusage(...).ru_maxrss``, belongs to
that case alone): a :class:`arcface.nn.PartialFC` head with ArcFace margin over C classes x 512-d,
a fresh random batch of 128 embeddings per step, plain SGD (no momentum) on the class centers. "full FC" is
the same module with ``sample_rate=1.0`` (it then equals a full FC layer, see the tests); Partial FC runs
with a dense class-center gradient (any optimizer) and with ``sparse_grad=True``. A step is
forward + backward + optimizer update; the figure is the median over the timed steps after one warm-up.

    python benchmarks/bench_partial_fc.py                  # 100k and 1M classes
    python benchmarks/bench_partial_fc.py --classes 100000 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GIB = 1024**3


def run_case(
    num_classes: int, rate: float, sparse: bool, steps: int, batch: int, dim: int, threads: int | None
) -> dict:
    import torch

    from arcface.nn import PartialFC

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    head = PartialFC(dim, num_classes, sample_rate=rate, sparse_grad=sparse)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for i in range(steps + 1):
        emb = torch.randn(batch, dim, requires_grad=True)  # a fresh batch, as from a backbone
        labels = torch.randint(0, num_classes, (batch,))
        t = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = head(emb, labels)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times.sort()
    return {
        "classes": num_classes,
        "rate": rate,
        "peak_rss": peak,
        "torch_rss": rss0,
        "setup_rss": rss_setup,
        "step_s": times[len(times) // 2],
        "loss": float(loss),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--rate", type=float, default=0.1, help="Partial FC sample rate (default 0.1)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--limit-gib", type=float, default=8.0, help="Partial FC memory budget to check")
    ap.add_argument("--case", nargs=3, metavar=("CLASSES", "RATE", "SPARSE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.case:  # child process: one case, JSON on stdout
        c, rate, sparse = int(args.case[0]), float(args.case[1]), args.case[2] == "1"
        print(json.dumps(run_case(c, rate, sparse, args.steps, args.batch, args.dim, args.threads)))
        return 0

    heads = [
        ("full FC", 1.0, False),
        (f"PFC r={args.rate:g}", args.rate, False),
        (f"PFC r={args.rate:g} sparse", args.rate, True),
    ]
    results: dict[tuple[int, str], dict] = {}
    for c in args.classes:
        for name, rate, sparse in heads:
            cmd = [sys.executable, os.path.abspath(__file__), "--case", str(c), str(rate), str(int(sparse))]
            cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--dim", str(args.dim)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"case {c} classes, {name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = results[(c, name)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"  done: {c:>9,} classes, {name:<20} peak {r['peak_rss'] / GIB:6.2f} GiB, step {r['step_s']:.3f} s",
                file=sys.stderr,
            )

    any_r = next(iter(results.values()))
    print(
        f"batch {args.batch}, {args.dim}-d, ArcFace s=64 m=0.5, SGD, CPU, {any_r['threads']} torch threads; "
        f"median of {args.steps} steps after 1 warm-up; peak = ru_maxrss of a fresh process "
        f"(torch alone: {any_r['torch_rss'] / GIB:.2f} GiB)"
    )
    print(f"{'classes':>10} {'head':<20} {'peak RSS GiB':>13} {'step s':>9} {'loss':>8}")
    for c in args.classes:
        for name, _, _ in heads:
            r = results[(c, name)]
            print(f"{c:>10,} {name:<20} {r['peak_rss'] / GIB:>13.2f} {r['step_s']:>9.3f} {r['loss']:>8.3f}")
    print()
    print(f"{'classes':>10} {'head':<20} {'memory / full':>14} {'time / full':>12} {'speed-up':>9}")
    ok = True
    for c in args.classes:
        f = results[(c, "full FC")]
        for name, _, _ in heads[1:]:
            p = results[(c, name)]
            print(
                f"{c:>10,} {name:<20} {p['peak_rss'] / f['peak_rss']:>14.3f} {p['step_s'] / f['step_s']:>12.3f} "
                f"{f['step_s'] / p['step_s']:>8.2f}x"
            )
            ok = ok and p["peak_rss"] <= args.limit_gib * GIB
    big = max(args.classes)
    peaks = ", ".join(f"{n}: {results[(big, n)]['peak_rss'] / GIB:.2f} GiB" for n, _, _ in heads[1:])
    print(f"\nPartial FC at {big:,} classes: {peaks} (budget {args.limit_gib:g} GiB): {'OK' if ok else 'OVER BUDGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""bf16 multi-row products: ``F.linear`` against oneDNN on a weight laid out once (``packed_weights``).

    .venv/bin/python scripts/packed_linear_check.py [--rows 16 48 488] [--threads 2]

Multiplies row blocks by the LFM2-350M layout's feed-forward matrices (1024 x 4608 and 4608 x
1024, bf16), as many distinct ones as make ~750 MB (more than a CPU's last-level cache, as a
model's weights are), both ways in alternation, and prints the GB/s of weights each way
streams (median of 5 passes), their ratio, and whether the two results are the same bits.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from edgesmith.core.linear import can_pack_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 48, 488])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--megabytes", type=int, default=750)
    args = parser.parse_args()
    if not can_pack_weights():
        raise SystemExit("this PyTorch or CPU has no oneDNN bf16 linear with pre-laid-out weights")
    torch.set_num_threads(args.threads)
    shapes = [(4608, 1024), (1024, 4608)]
    count = max(2, args.megabytes * 2**20 // (4608 * 1024 * 2))
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(shapes[i % 2], generator=generator).to(torch.bfloat16) for i in range(count)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, 48) for w in weights]
    gigabytes = sum(w.numel() * 2 for w in weights) / 1e9
    print(f"{count} bf16 matrices, {gigabytes:.2f} GB, {args.threads} threads")
    print(f"{'rows':>5} {'linear GB/s':>12} {'packed GB/s':>12} {'ratio':>6} {'same bits':>10}")
    for rows in args.rows:
        inputs = {k: torch.randn(rows, k, generator=generator).to(torch.bfloat16) for k in (1024, 4608)}

        def linear() -> None:
            for w in weights:
                F.linear(inputs[w.shape[1]], w)

        def pointwise() -> None:
            for w, p in zip(weights, packed):
                torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], p, None, "none", [], "")

        times: dict[str, list[float]] = {"linear": [], "packed": []}
        linear(), pointwise()  # warm-up
        for _ in range(5):  # alternating, so both ways see the same machine
            for name, run in (("linear", linear), ("packed", pointwise)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        speed = {name: gigabytes / statistics.median(t) for name, t in times.items()}
        same = all(torch.equal(F.linear(inputs[w.shape[1]], w),
                               torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], p, None, "none", [], ""))
                   for w, p in zip(weights[:4], packed[:4]))
        print(f"{rows:>5} {speed['linear']:>12.1f} {speed['packed']:>12.1f} {speed['packed'] / speed['linear']:>6.2f} "
              f"{str(same):>10}")


if __name__ == "__main__":
    main()

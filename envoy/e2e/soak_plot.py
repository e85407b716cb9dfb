"""Plots `make soak` memory samples: Envoy RSS and the wasm VMs' linear memory over time.

usage: soak_plot.py SAMPLES_CSV OUTPUT_PNG WARMUP_SECONDS

SAMPLES_CSV columns: seconds, envoy_rss_kib, wasm_committed_kib, wasm_rss_kib,
tcmalloc_allocated_kib, requests. A dashed line marks the end of the warm-up; the least-squares
line over the samples after it is the fit `soak` judges growth by.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fit(xs, ys):
    """Least-squares slope and intercept."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] if ys else 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def main():
    samples_csv, out_png, warmup = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(samples_csv, newline="") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    t = [r["seconds"] / 60 for r in rows]
    series = [
        ("Envoy RSS (MiB)", [r["envoy_rss_kib"] / 1024 for r in rows], "tab:blue"),
        ("tcmalloc allocated (MiB)", [r["tcmalloc_allocated_kib"] / 1024 for r in rows], "tab:gray"),
        ("wasm linear memory, all VMs (KiB)", [r["wasm_committed_kib"] for r in rows], "tab:red"),
        ("wasm linear memory resident (KiB)", [r["wasm_rss_kib"] for r in rows], "tab:orange"),
    ]
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for ax, group in ((axes[0], series[:2]), (axes[1], series[2:])):
        for label, ys, color in group:
            ax.plot(t, ys, label=label, color=color, linewidth=1.2)
            post = [(x, y) for x, y in zip(t, ys) if x * 60 >= warmup]
            if len(post) >= 2:
                slope, icpt = fit([p[0] for p in post], [p[1] for p in post])
                xs = [post[0][0], post[-1][0]]
                ax.plot(xs, [icpt + slope * x for x in xs], color=color, linestyle=":",
                        linewidth=1, label=f"fit: {slope:+.3f}/min")
        ax.axvline(warmup / 60, color="black", linestyle="--", linewidth=0.8)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title("tollgate soak: Envoy 1.40 + tollgate.wasm under mixed traffic and faults")
    axes[1].set_xlabel("minutes (dashed line: end of warm-up)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


if __name__ == "__main__":
    main()

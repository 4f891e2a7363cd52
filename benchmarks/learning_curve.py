"""Plot held-out accuracy against images seen and training hours, for one or more training runs.

A run is `LABEL=PATH`, where PATH is a stage's `eval.csv` (written by the trainer every `eval_every` steps) or a
pipeline folder's `training.json` (which carries the curve of every run that led to the committed weights)::

    python -m benchmarks.learning_curve \\
        "first recipe=docs/learning-curve/shapes-v1.csv" \\
        "default recipe=imagen_demo/weights/shapes-default/training.json" --out docs/learning-curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

CURVES = (("overall", "-"), ("colors", "--"), ("single_object", ":"))


def load_curve(path: str | Path, stage: int = 1) -> pd.DataFrame:
    """The eval rows of one run: step, images_seen, train_hours and ema_/raw_ accuracy per category."""
    path = Path(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text())["stages"].get(str(stage), {}).get("eval", [])
        frame = pd.DataFrame(rows)
    else:
        frame = pd.read_csv(path)
    if frame.empty:
        raise ValueError(f"{path} holds no evaluation rows for stage {stage}")
    return frame.sort_values("images_seen")


def plot(curves: dict[str, pd.DataFrame], out: Path, weights: str = "ema") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (label, frame), colour in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for category, style in CURVES:
            for ax, x in zip(axes, ("images_seen", "train_hours")):
                ax.plot(frame[x], frame[f"{weights}_{category}"], style, color=colour, marker="o", markersize=3,
                        label=f"{label}: {category}")
    axes[0].set_xlabel("training images seen")
    axes[1].set_xlabel("training hours on the 2-core CPU")
    axes[0].set_ylabel(f"held-out accuracy ({weights.upper()} weights, base 64 px)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Learning curve: held-out shapes prompts (proxy: 48 prompts, 20 DPM-Solver++ steps, verifier)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def markdown(curves: dict[str, pd.DataFrame], weights: str = "ema") -> str:
    lines = ["| run | step | images seen | training hours | overall | single_object | colors |", "|---|---|---|---|---|---|---|"]
    for label, frame in curves.items():
        for _, r in frame.iterrows():
            lines.append(f"| {label} | {int(r['step'])} | {int(r['images_seen'])} | {r['train_hours']:.2f} | "
                         f"{r[f'{weights}_overall']:.2f} | {r[f'{weights}_single_object']:.2f} | {r[f'{weights}_colors']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=PATH (eval.csv or training.json)")
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--weights", choices=("ema", "raw"), default="ema")
    parser.add_argument("--out", type=Path, default=Path("docs/learning-curve.png"))
    args = parser.parse_args(argv)
    curves = {}
    for run in args.runs:
        label, sep, path = run.partition("=")
        if not sep:
            parser.error(f"expected LABEL=PATH, got {run!r}")
        curves[label] = load_curve(path, args.stage)
    print(markdown(curves, args.weights))
    print(plot(curves, args.out, args.weights))


if __name__ == "__main__":
    main()

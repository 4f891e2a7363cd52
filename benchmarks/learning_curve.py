"""Plot held-out accuracy against images seen and training hours, for one or more training runs.

A run is `LABEL=PATH`, where PATH is a stage's `eval.csv` (written by the trainer every `eval_every` steps) or a
pipeline folder's `training.json` (which carries the curve of every run that led to the committed weights).
`point` scores a saved model's base stage with the same proxy and appends it to a curve file, for weights that
were trained before the trainer logged its curve::

    python -m benchmarks.learning_curve plot \
        "first recipe=docs/learning-curve/shapes-v1.csv" \
        "default recipe=imagen_demo/weights/shapes-default/training.json" --out docs/learning-curve.png
    python -m benchmarks.learning_curve point --model PATH --step 3390 --images-seen 54240 --train-hours 1.23 \
        --out docs/learning-curve/shapes-v1.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from imagen_demo.core.pipeline import ImagenPipeline
from imagen_demo.training.evaluate import held_out_accuracy
from imagen_demo.utils.markdown import markdown_table

# Accuracy per category, and the share of shape checks passed: the smoother signal (logged since the trainer
# reports per-check rates; older rows have none and are left out of that line).
CURVES = (("overall", "-"), ("colors", "--"), ("single_object", ":"), ("check_shape", "-."))


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
    import matplotlib  # on use: `point` never plots

    matplotlib.use("Agg")  # no display: before pyplot is imported
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (label, frame), colour in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for category, style in CURVES:
            column = f"{weights}_{category}"
            if column not in frame or frame[column].isna().all():
                continue
            logged = frame[frame[column].notna()]
            for ax, x in zip(axes, ("images_seen", "train_hours")):
                ax.plot(logged[x], logged[column], style, color=colour, marker="o", markersize=3,
                        label=f"{label}: {category.replace('check_', '')} checks" if category.startswith("check_")
                        else f"{label}: {category}")
    axes[0].set_xlabel("training images seen")
    axes[1].set_xlabel("training hours on the 2-core CPU")
    axes[0].set_ylabel(f"held-out accuracy / checks passed ({weights.upper()} weights, base 64 px)")
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
    return markdown_table(["run", "step", "images seen", "training hours", "overall", "single_object", "colors"],
                          ([label, int(r["step"]), int(r["images_seen"]), f"{r['train_hours']:.2f}",
                            *(f"{r[f'{weights}_{c}']:.2f}" for c in ("overall", "single_object", "colors"))]
                           for label, frame in curves.items() for _, r in frame.iterrows()))


def point(model: str, step: int, images_seen: int, train_hours: float, out: Path, per_category: int = 8) -> dict:
    """Score `model`'s base stage with the trainer's proxy and append the row to the curve file `out`."""
    pipe = ImagenPipeline.from_pretrained(model)
    accuracy = held_out_accuracy(pipe.stages[0], pipe.prompt_encoder, per_category)
    row = {"step": step, "images_seen": images_seen, "train_hours": train_hours,
           **{f"{w}_{c}": v for w in ("ema", "raw") for c, v in accuracy.items()}}  # saved weights are the EMA's
    frame = pd.concat([pd.read_csv(out), pd.DataFrame([row])]) if out.is_file() else pd.DataFrame([row])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    plot_args = commands.add_parser("plot", help="plot curves and print them as a table")
    plot_args.add_argument("runs", nargs="+", help="LABEL=PATH (eval.csv or training.json)")
    plot_args.add_argument("--stage", type=int, default=1)
    plot_args.add_argument("--weights", choices=("ema", "raw"), default="ema")
    plot_args.add_argument("--out", type=Path, default=Path("docs/learning-curve.png"))
    point_args = commands.add_parser("point", help="score a saved model and append it to a curve file")
    point_args.add_argument("--model", required=True)
    point_args.add_argument("--step", type=int, required=True)
    point_args.add_argument("--images-seen", type=int, required=True)
    point_args.add_argument("--train-hours", type=float, required=True)
    point_args.add_argument("--out", type=Path, required=True)
    point_args.add_argument("--per-category", type=int, default=8, help="held-out prompts per category (8: the trainer's proxy)")
    args = parser.parse_args(argv)
    if args.command == "point":
        print(point(args.model, args.step, args.images_seen, args.train_hours, args.out, args.per_category))
        return
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

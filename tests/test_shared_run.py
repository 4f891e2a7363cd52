"""`torchrun ... -m benchmarks run`: processes sharing one run folder leave what one process leaves, and a run whose
process was killed finishes on a re-run without redoing or repeating an image."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import run_parallelism
from benchmarks.cli import main
from imagen_demo.bench.jsonl import read_jsonl
from imagen_demo.bench.manifest import manifest_files
from imagen_demo.shapes import test_suite

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds torchrun's workers in /proc")


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in test_suite(1, seed=0)[:4]))
    return path


def _command(processes: int, suite: Path, models: str, out: Path, *options: str) -> list[str]:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] * (processes > 1)
    return [sys.executable, *launcher, "-m", "benchmarks", "run", "--suite", str(suite), "--models", models,
            "--out", str(out), "--clip", "none", "--features", "none", *options]


def _run(*args) -> subprocess.CompletedProcess:
    """One thread a process, as torchrun gives each of its processes: the same arithmetic in every process."""
    return subprocess.run(_command(*args), cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)


def _rows(out: Path) -> list[dict]:
    return [row for path in manifest_files(out) for row in read_jsonl(path)]


def _images(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


def test_two_processes_make_the_images_and_scores_of_one(tmp_path, tiny_pipe_dir, suite):
    models = f"{tiny_pipe_dir}@steps=2,{tiny_pipe_dir}@steps=1"
    options = ("--seeds", "0,1", "--batch-size", "2", "--sr-limit", "2")
    one, two = tmp_path / "one", tmp_path / "two"
    alone = _run(1, suite, models, one, *options)
    assert alone.returncode == 0, alone.stderr[-3000:]
    shared = _run(2, suite, models, two, *options)
    assert shared.returncode == 0, shared.stderr[-3000:]

    assert _images(two) == _images(one) and len(_images(one)) == 2 * 4 * 2 + 2 * 2  # 16 images, 4 SR
    rows = _rows(two)
    assert len(rows) == len({r["key"] for r in rows}) == 20  # each image once, over both processes' files
    assert {r["key"] for r in rows} == {r["key"] for r in _rows(one)}
    assert [len(read_jsonl(path)) for path in manifest_files(two)] == [10, 10]  # 10 batches of 2, shared round-robin

    def scores(out):
        return pd.read_csv(out / "results.csv").query("metric != 'seconds'").reset_index(drop=True)
    pd.testing.assert_frame_equal(scores(two), scores(one))
    assert json.loads((two / "run.json").read_text())["timing"]["processes"] == 2
    assert manifest_files(one) == [one / "manifest.jsonl"] and shared.stdout.count("generated and scored") == 1
    assert "20/20" in shared.stderr  # process 0's bar counted both processes' images
    assert "2 processes sharing the work" in (two / "report.md").read_text()


def _worker(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker of `rank`, among the launcher's descendants."""
    pending = [launcher]
    while pending:
        pid = pending.pop()
        try:
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return pid
            pending += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:  # gone meanwhile
            continue
    return None


def test_a_run_whose_process_was_killed_finishes_on_a_rerun_without_redoing_an_image(tmp_path, tiny_pipe_dir,
                                                                                     suite, capsys):
    models, out = f"{tiny_pipe_dir}@steps=2", tmp_path / "run"
    options = ("--seeds", "0,1,2,3,4,5", "--sr-limit", "0")
    dry = ["run", "--suite", str(suite), "--models", models, "--out", str(out), *options, "--dry-run"]
    assert main(dry) == 0 and not out.exists()  # a dry run writes nothing
    assert capsys.readouterr().out.splitlines() == [
        "images: 1 model × 4 items × 6 seeds = 24; 0 done, 24 to make",
        f"  {models}: 0 done, 24 to make, no earlier images to time",
        f"time left: unknown (no earlier images of {models} in the manifest)"]

    launcher = subprocess.Popen(_command(2, suite, models, out, *options), cwd=ROOT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "manifest.rank1.jsonl"
    deadline = time.monotonic() + 300
    while len(read_jsonl(second)) < 2 and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    worker = _worker(launcher.pid, 1)
    assert worker is not None, "the run ended before process 1 could be killed"
    os.kill(worker, signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0  # torchrun stops the other process and fails
    done = {r["key"]: r for r in _rows(out)}
    assert 2 <= len(done) < 24
    made = {r["image"]: (out / r["image"]).stat().st_mtime_ns for r in done.values()}

    assert main(dry) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"images: 1 model × 4 items × 6 seeds = 24; {len(done)} done, {24 - len(done)} to make"
    assert re.fullmatch(r"time left: about \d+ s of sampling on 1 process, at the earlier images' pace; .*", lines[2])

    rerun = _run(2, suite, models, out, *options)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = _rows(out)
    assert len(rows) == len({r["key"] for r in rows}) == 24  # complete, and no image twice
    assert all((out / image).stat().st_mtime_ns == t for image, t in made.items())  # finished images were kept
    assert len(pd.read_csv(out / "results.csv").query("metric == 'exact'")) == 24


def test_run_parallelism_times_both_layouts_on_the_same_prompts(tiny_pipe_dir, tmp_path, capsys):
    """benchmarks.run_parallelism: each layout's images/s from its own generation time, and their ratio."""
    rate = run_parallelism.run_layout(str(tiny_pipe_dir), 2, 2, 1, tmp_path / "shared")
    assert rate > 0 and len(list((tmp_path / "shared" / "images").rglob("*.png"))) == 2
    run_parallelism.main(["--models", str(tiny_pipe_dir), "--limit", "2", "--layouts", "1x1", "2x1"])
    assert "2 × 1 makes" in capsys.readouterr().out

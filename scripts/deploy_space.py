"""Send the current tree of this repository to a Hugging Face Space, its weights in Git LFS.

A ``git push`` of this repository to a Space is refused: the Hub takes no file over 10 MB outside Git LFS, and the
history holds earlier 36 MB versions of the base U-Net as plain git objects. This sends one commit holding the files
git tracks, as committed, through huggingface_hub's ``upload_folder``, which stores the weight files in LFS
(``.gitattributes`` names them, as the Hub's own default does) and removes from the Space what is no longer here.
The README's front matter makes the Space a Gradio one running ``app.py``. Usage::

    python scripts/deploy_space.py USER/SPACE --dry-run    # what would be sent: every file, its size, LFS or not
    HF_TOKEN=hf_... python scripts/deploy_space.py USER/SPACE   # create the Space if needed, then send
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HUB_LIMIT = 10 * 1024 * 1024  # the largest file the Hub takes outside LFS


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def tracked_files(root: Path = ROOT) -> list[str]:
    """What is sent: every file git tracks, by its path in the repository."""
    return sorted(git(root, "ls-files", "-z").split("\0")[:-1])


def lfs_patterns(root: Path = ROOT) -> list[str]:
    """The .gitattributes patterns whose files go to LFS."""
    lines = (root / ".gitattributes").read_text().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]


def in_lfs(path: str, patterns: list[str]) -> bool:
    """Whether .gitattributes puts `path` in LFS: a pattern without "/" matches the file name at any depth."""
    return any(fnmatch.fnmatch(path if "/" in pattern else Path(path).name, pattern) for pattern in patterns)


def too_big_outside_lfs(root: Path, files: list[str], patterns: list[str]) -> list[str]:
    """The files the Hub would refuse."""
    return [f for f in files if (root / f).stat().st_size > HUB_LIMIT and not in_lfs(f, patterns)]


def copy_files(root: Path, files: list[str], dest: Path) -> Path:
    """Exactly `files`, copied from `root` into `dest`."""
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    return dest


def listing(root: Path, files: list[str], patterns: list[str]) -> str:
    rows = [f"{(root / f).stat().st_size / 1e6:9.2f} MB  {'LFS' if in_lfs(f, patterns) else '   '}  {f}" for f in files]
    total = sum((root / f).stat().st_size for f in files) / 1e6
    return "\n".join(rows + [f"{total:9.2f} MB in {len(files)} files"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("space", help="the Space, USER/NAME (created as a Gradio Space if it does not exist)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be sent and send nothing")
    args = parser.parse_args(argv)

    files, patterns = tracked_files(), lfs_patterns()
    if refused := too_big_outside_lfs(ROOT, files, patterns):
        print(f"error: the Hub refuses files over 10 MB outside LFS; add patterns for them to .gitattributes: "
              f"{', '.join(refused)}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(listing(ROOT, files, patterns))
        print(f"would send these to the Space {args.space} (LFS: the files .gitattributes names)")
        return 0
    if changed := git(ROOT, "status", "--porcelain", "--untracked-files=no").splitlines():
        print(f"error: commit or stash these first, so that the Space gets a tree git knows: {'; '.join(changed)}",
              file=sys.stderr)
        return 2

    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(args.space, repo_type="space", space_sdk="gradio", exist_ok=True)
    commit = git(ROOT, "rev-parse", "--short", "HEAD").strip()
    with tempfile.TemporaryDirectory() as folder:
        api.upload_folder(folder_path=copy_files(ROOT, files, Path(folder)), repo_id=args.space, repo_type="space",
                          delete_patterns="*", commit_message=f"imagen_demo {commit}")
    print(f"sent {len(files)} files: https://huggingface.co/spaces/{args.space}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

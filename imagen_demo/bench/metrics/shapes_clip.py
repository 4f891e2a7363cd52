"""shapes-CLIP: open_clip's own `CLIP` class, small, with the token map and image size it was trained with.

Its text tower keeps only the rows of open_clip's 49,408-token BPE vocabulary that the shapes world's English
grammar writes (about a hundred): every other row would be a weight it never trains, and most of the file. BPE
tokens outside that set read as one unknown token, so `reads` can tell a prompt it understands from one it
cannot. Weights are safetensors, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from string import Formatter

import numpy as np
import PIL.Image
import torch
from safetensors.torch import load_file, save_file

from imagen_demo.shapes.captions import CJK, LEXICON, TEMPLATES, english_caption
from imagen_demo.utils.atomic import atomic_dir

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SHIPPED = Path(__file__).parents[2] / "weights" / "shapes-clip"
PAD, UNKNOWN, START, END = range(4)  # the compact vocabulary's special ids; grammar tokens follow


def grammar_tokens() -> list[int]:
    """The BPE ids of every word the English caption grammar writes (templates and lexicon), sorted."""
    import open_clip  # on use, here and below: open_clip takes seconds to import, and the demo may never score

    def words(value):
        return [value] if isinstance(value, str) else [w for v in value for w in words(v)]

    text = [literal for forms in TEMPLATES["en"].values() for template in forms
            for literal, _, _, _ in Formatter().parse(template)]
    text += [w for table in LEXICON["en"].values() for synonyms in table.values() for w in words(synonyms)] + ["an"]
    ids = set(open_clip.tokenize([" ".join(text)], context_length=4096)[0].tolist())
    return sorted(ids - {PAD, *_special_tokens()})


def _special_tokens() -> tuple[int, int]:
    """open_clip's start- and end-of-text ids."""
    import open_clip  # on use: see grammar_tokens

    return tuple(open_clip.tokenize([""])[0, :2].tolist())


@cache
def _english(prompt: str) -> str:
    """A Chinese prompt the grammar parses, as its English caption (what shapes-CLIP reads); others as typed."""
    if not CJK.search(prompt):
        return prompt
    try:
        return english_caption(prompt)
    except ValueError:
        return prompt


class ShapesClip(torch.nn.Module):
    """A CLIP for the shapes world. `config` holds open_clip's `embed_dim`, `vision_cfg`, `text_cfg` and the
    BPE ids of the compact vocabulary (`bpe_tokens`), plus whatever record the trainer adds."""

    def __init__(self, config: dict):
        super().__init__()
        import open_clip  # on use: see grammar_tokens
        from open_clip.model import CLIPTextCfg

        self.config = config
        bpe = config["bpe_tokens"]
        text_cfg = {**config["text_cfg"], "vocab_size": END + 1 + len(bpe), "pool_type": "eos", "eos_id": END}
        self.model = open_clip.CLIP(config["embed_dim"], config["vision_cfg"], text_cfg)
        self.context_length = text_cfg.get("context_length", 77)
        self.image_size = int(config["vision_cfg"]["image_size"])
        sot, eot = _special_tokens()
        table = torch.full((CLIPTextCfg().vocab_size,), UNKNOWN)  # the BPE vocabulary's size
        table[[0, sot, eot]] = torch.tensor([PAD, START, END])
        table[bpe] = torch.arange(END + 1, END + 1 + len(bpe))
        self.register_buffer("token_map", table, persistent=False)

    @classmethod
    def create(cls, embed_dim: int, vision_cfg: dict, text_cfg: dict, seed: int = 0) -> ShapesClip:
        """A new, randomly initialised shapes-CLIP over the current grammar's vocabulary."""
        torch.manual_seed(seed)
        return cls({"embed_dim": embed_dim, "vision_cfg": vision_cfg, "text_cfg": text_cfg,
                    "bpe_tokens": grammar_tokens()})

    # ----------------------------------------------------------------------------------------- inputs
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        import open_clip  # on use: see grammar_tokens

        bpe = open_clip.tokenize([_english(p) for p in prompts], context_length=self.context_length)
        return self.token_map[bpe.to(self.token_map.device)]

    def reads(self, prompt: str) -> bool:
        """Whether every token of the prompt (a Chinese one: of its English caption) is one it was trained on."""
        return bool((self.tokenize([prompt]) != UNKNOWN).all())

    def pixels(self, images: list[PIL.Image.Image]) -> torch.Tensor:
        """(N, 3, S, S) in [-1, 1]: each image resized (antialiased) to the training renders' size."""
        size = (self.image_size, self.image_size)
        arrays = [np.asarray(im.convert("RGB").resize(size, PIL.Image.BICUBIC), dtype=np.float32) for im in images]
        return (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1).to(self.token_map.device)

    # ------------------------------------------------------------------------------------------ scores
    @torch.no_grad()
    def similarity(self, images: list[PIL.Image.Image], prompts: list[str]) -> torch.Tensor:
        """(len(images), len(prompts)) cosine similarities."""
        image = self.model.encode_image(self.pixels(images), normalize=True)
        return image @ self.model.encode_text(self.tokenize(prompts), normalize=True).T

    @torch.no_grad()
    def cosine(self, images: list[PIL.Image.Image], prompts: list[str]) -> torch.Tensor:
        """Cosine of each image with its own prompt."""
        image = self.model.encode_image(self.pixels(images), normalize=True)
        return (image * self.model.encode_text(self.tokenize(prompts), normalize=True)).sum(-1)

    # --------------------------------------------------------------------------------------- save/load
    def save(self, folder: Path) -> Path:
        """config.json + model.safetensors, written as one folder swap (a kill leaves the old copy)."""
        with atomic_dir(folder) as tmp:
            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, tmp / WEIGHTS_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path = SHIPPED) -> ShapesClip:
        folder = Path(folder)
        clip = cls(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        clip.model.load_state_dict(load_file(folder / WEIGHTS_FILE))
        return clip.eval()


def fingerprint(folder: str | Path = SHIPPED) -> str:
    """The weights file's hash: cached scores are reused only for the same weights."""
    return hashlib.sha256((Path(folder) / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]

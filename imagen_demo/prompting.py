"""A prompt in a language a pipeline's text encoder cannot read, rewritten into English through the shapes world's
grammar: a step the CLI, the demo and the benchmark apply once per prompt, before the pipeline sees it.

MiniLM (the shipped model's encoder) knows English only: its tokenizer turns most Chinese characters into
[UNK], so a Chinese prompt would be sampled from unknown tokens. A prompt the grammar parses names an exact
scene, and that scene's English caption is what the encoder gets instead; any other such prompt is refused.
An encoder whose tokenizer knows every character (mT5, UMT5, CLIP's byte-level BPE, ...) gets the prompt as typed.
Any diffusers pipeline qualifies: only its `tokenizer` is read.
"""

from __future__ import annotations

from diffusers import DiffusionPipeline
from transformers import PreTrainedTokenizerBase

from .shapes.captions import CJK, english_caption
from .shapes.understand import example_prompts


def unreadable_characters(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[str]:
    """The prompt's Chinese characters that the tokenizer maps to its unknown token."""
    if tokenizer.unk_token_id is None:
        return []
    return [char for char in dict.fromkeys(CJK.findall(prompt))
            if tokenizer.unk_token_id in tokenizer(char, add_special_tokens=False)["input_ids"]]


def english_rewrite(pipe: DiffusionPipeline, prompt: str) -> str | None:
    """The English caption `pipe`'s text encoder gets instead of `prompt`, or None when it reads the prompt as typed.

    Deterministic: the same prompt always gives the same caption. Raises ValueError, saying what the encoder
    reads, when it cannot read the prompt and the grammar cannot rewrite it.
    """
    unreadable = unreadable_characters(pipe.tokenizer, prompt)
    if not unreadable:
        return None
    try:
        return english_caption(prompt)
    except ValueError:
        name = pipe.config.get("text_encoder_name_or_path") or pipe.text_encoder.name_or_path
        raise ValueError(
            f"The text encoder ({name}) cannot read the characters {''.join(unreadable)}, and the "
            "prompt is not a sentence of the shapes world's Chinese grammar, the only Chinese it can rewrite into "
            f"English. Write the prompt in English, or as the grammar does, e.g. “{example_prompts('zh')[0]}”, or "
            "turn the rewrite off to sample it as typed."
        ) from None

"""A prompt in a language the text encoder cannot read, rewritten into English through the shapes world's grammar.

MiniLM (the shipped model's encoder) knows English only: its tokenizer turns most Chinese characters into
[UNK], so a Chinese prompt would be sampled from unknown tokens. A prompt the grammar parses names an exact
scene, and that scene's English caption is what the encoder gets instead; any other such prompt is refused.
An encoder whose tokenizer knows every character (mT5, UMT5, ...) gets the prompt as typed.
"""

from __future__ import annotations

from .shapes.captions import CJK, english_caption
from .shapes.understand import example_prompts
from .core.text_encoder import TextEncoder


def unreadable_characters(encoder: TextEncoder, prompt: str) -> list[str]:
    """The prompt's Chinese characters that the encoder's tokenizer maps to its unknown token."""
    tokenizer = encoder.tokenizer
    if tokenizer.unk_token_id is None:
        return []
    return [char for char in dict.fromkeys(CJK.findall(prompt))
            if tokenizer.unk_token_id in tokenizer(char, add_special_tokens=False)["input_ids"]]


def english_rewrite(encoder: TextEncoder, prompt: str) -> str | None:
    """The English caption the encoder gets instead of `prompt`, or None when it reads the prompt as typed.

    Deterministic: the same prompt always gives the same caption. Raises ValueError, saying what the encoder
    reads, when it cannot read the prompt and the grammar cannot rewrite it.
    """
    unreadable = unreadable_characters(encoder, prompt)
    if not unreadable:
        return None
    try:
        return english_caption(prompt)
    except ValueError:
        raise ValueError(
            f"The text encoder ({encoder.name_or_path}) cannot read the characters {''.join(unreadable)}, and the "
            "prompt is not a sentence of the shapes world's Chinese grammar, the only Chinese it can rewrite into "
            f"English. Write the prompt in English, or as the grammar does, e.g. “{example_prompts('zh')[0]}”, or "
            "turn the rewrite off to sample it as typed."
        ) from None

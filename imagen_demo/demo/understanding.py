"""The "Understood as" panel under a prompt: what the shapes world reads in it, and the English the text
encoder gets instead when it cannot read the prompt's language.

Text work only (no sampling), so it follows every edit of the prompt. A model whose training data is not
the shapes world (a folder without that record, a diffusers pipeline) gets no reading: its world is unknown.
"""

from __future__ import annotations

import gradio as gr

from diffusers import DiffusionPipeline

from ..prompting import english_rewrite
from ..shapes.understand import describe, read
from ..training.record import training_data


def rewrite_note(english: str) -> str:
    return f"**Rewritten as:** “{english}” (the text encoder cannot read the prompt as typed)"


def understanding(pipe: DiffusionPipeline, prompt: str | None, rewrite: bool = True) -> str:
    """Markdown for the panel; empty when there is nothing to say."""
    text = (prompt or "").strip()
    if not text:
        return ""
    lines = [describe(read(text))] if training_data(pipe.name_or_path) == "shapes" else []
    if rewrite:
        try:
            english = english_rewrite(pipe, text)
        except ValueError as err:
            english, lines = None, lines + [f"⚠️ {err}"]
        if english:
            lines.append(rewrite_note(english))
    return "\n\n".join(lines)


def panel(pipe: DiffusionPipeline, prompt_box: gr.Textbox, switch: gr.Checkbox | None = None,
          elem_id: str | None = None, api_name: str | bool = False) -> gr.Markdown:
    """The panel, updated whenever the prompt (or the rewrite switch) changes."""
    shown = gr.Markdown(understanding(pipe, prompt_box.value, switch is None or switch.value), elem_id=elem_id)
    triggers = [prompt_box.change] + ([switch.change] if switch is not None else [])
    inputs = [prompt_box] + ([switch] if switch is not None else [])

    def read_prompt(prompt: str | None, rewrite: bool = True) -> str:
        return understanding(pipe, prompt, rewrite)

    gr.on(triggers, read_prompt, inputs, shown, api_name=api_name,
          queue=False, show_progress="hidden", trigger_mode="always_last")
    return shown

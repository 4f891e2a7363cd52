"""What the demo says about the model's world: the line under the title (what it draws and what it does not), the
"Understood as" panel under a prompt with the prompts it reads as clickable suggestions, and the warning beside a
result whose prompt is outside the world. Also the English the text encoder gets instead when it cannot read the
prompt's language.

Text work only (no sampling), so the panel follows every edit of the prompt. A model whose training data is not
the shapes world (a folder without that record, a diffusers pipeline) gets no reading: its world is unknown.
"""

from __future__ import annotations

import gradio as gr
from diffusers import DiffusionPipeline

from ..prompting import english_rewrite
from ..shapes.understand import describe, read
from ..shapes.vocab import COLOURS, MAX_COUNT, SHAPES
from ..training.record import training_data


def reads_shapes(pipe: DiffusionPipeline) -> bool:
    """Whether `pipe` was trained on the shapes world, as its folder's training record says."""
    return training_data(pipe.name_or_path) == "shapes"


def world_line(pipe: DiffusionPipeline) -> str:
    """One line for under the title: what a shapes-world model draws and what it does not; empty for any other."""
    if not reads_shapes(pipe):
        return ""
    return (f"**What it draws:** 1 to {MAX_COUNT} simple shapes ({', '.join(SHAPES)}) in {len(COLOURS)} colours "
            f"({', '.join(COLOURS)}), small or large, counted, placed or side by side, from prompts such as “two green "
            "stars” or “a red circle above a blue square”, in English or the shapes world's Chinese. **What it does "
            "not:** anything else. Photos, animals, people, scenes and text come out as noise or an empty canvas.")


def rewrite_note(english: str) -> str:
    return f"**Rewritten as:** “{english}” (the text encoder cannot read the prompt as typed)"


def understanding(pipe: DiffusionPipeline, prompt: str | None, rewrite: bool = True) -> str:
    """Markdown for the panel (the prompts it reads are listed beside it, clickable); empty when there is nothing
    to say."""
    text = (prompt or "").strip()
    if not text:
        return ""
    lines = [describe(read(text), suggest=False)] if reads_shapes(pipe) else []
    if rewrite:
        try:
            english = english_rewrite(pipe, text)
        except ValueError as err:
            english, lines = None, lines + [f"⚠️ {err}"]
        if english:
            lines.append(rewrite_note(english))
    return "\n\n".join(lines)


def outside_warning(pipe: DiffusionPipeline, prompt: str) -> str:
    """The warning beside a result whose prompt the model's world does not read; empty otherwise."""
    reading = read(prompt) if reads_shapes(pipe) else None
    if reading is None or reading.spec is not None:
        return ""
    return ("⚠️ **This picture is not what the prompt asks for:** the model draws only the shapes world. "
            f"{describe(reading)}.")


def suggestions(pipe: DiffusionPipeline, prompt: str | None) -> list[str]:
    """Prompts the world reads, near one it does not; none for a prompt it reads or a model of unknown world."""
    text = (prompt or "").strip()
    if not text or not reads_shapes(pipe):
        return []
    return list(read(text).suggestions)


def panel(pipe: DiffusionPipeline, prompt_box: gr.Textbox, switch: gr.Checkbox | None = None,
          elem_id: str | None = None, api_name: str | bool = False) -> gr.Markdown:
    """The panel and its clickable suggestions, updated whenever the prompt (or the rewrite switch) changes;
    clicking a suggestion puts it in the prompt box."""
    shown = gr.Markdown(understanding(pipe, prompt_box.value, switch is None or switch.value), elem_id=elem_id)
    readable = suggestions(pipe, prompt_box.value)
    suggested = gr.Dataset(components=[prompt_box], samples=[[s] for s in readable], visible=bool(readable),
                           label="Prompts it reads (click one to use it)",
                           elem_id=f"{elem_id}-suggestions" if elem_id else None)
    triggers = [prompt_box.change] + ([switch.change] if switch is not None else [])
    inputs = [prompt_box] + ([switch] if switch is not None else [])

    def read_prompt(prompt: str | None, rewrite: bool = True):
        near = suggestions(pipe, prompt)
        return understanding(pipe, prompt, rewrite), gr.Dataset(samples=[[s] for s in near], visible=bool(near))

    gr.on(triggers, read_prompt, inputs, [shown, suggested], api_name=api_name,
          queue=False, show_progress="hidden", trigger_mode="always_last")
    suggested.click(lambda row: row[0], suggested, prompt_box, queue=False, show_progress="hidden", api_name=False)
    return shown

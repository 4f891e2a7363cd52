"""Growing a trained U-Net: zero-initialised additions leave its output unchanged; other changes are refused."""

from __future__ import annotations

import pytest
import torch

from imagen_demo import ImagenPipeline, unet_from_preset
from imagen_demo.training import load_recipe
from imagen_demo.training.grow import grow_unet
from imagen_demo.training.trainer import StageTrainer
from test_training import write_recipe
from tiny import randomize_zero_inits

GROWN = {"coordinate_input": True, "attention_positions": True, "layout_prior": True, "text_adapter_layers": 2}


def _inputs():
    torch.manual_seed(1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    return torch.randn(2, 3, 16, 16), torch.tensor([5, 990]), torch.randn(2, 5, 384), mask


def test_a_grown_unet_computes_what_the_trained_one_did_and_names_its_new_weights():
    torch.manual_seed(0)
    trained = randomize_zero_inits(unet_from_preset("tiny-base", text_adapter_layers=1)).eval()
    grown, added = grow_unet(trained, GROWN)
    with torch.no_grad():
        assert torch.equal(grown.eval()(*_inputs()), trained(*_inputs()))
    assert "coordinate_in.weight" in added and "mid.attention.positions.weight" in added
    assert {name.split(".")[3] for name in added if name.startswith("text_adapter")} == {"1"}  # only the new layer
    assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), (p for n, p in grown.named_parameters() if n not in added)))
    # ...and the additions are live: a step of training moves the output away from the trained model's
    randomize_zero_inits(grown)
    with torch.no_grad():
        assert not torch.allclose(grown(*_inputs()), trained(*_inputs()))


@pytest.mark.parametrize("change", [{"block_out_channels": (8, 16)}, {"prediction_type": "v_prediction"},
                                    {"attention_positions": False}, {"text_adapter_layers": 0}])
def test_any_other_change_is_refused(change):
    start = {"attention_positions": True, "text_adapter_layers": 1}
    trained = unet_from_preset("tiny-base", **start)
    with pytest.raises(ValueError, match="another U-Net config.*Only these may grow"):
        grow_unet(trained, change)


def test_init_from_grows_the_committed_stage(tmp_path, tiny_t5_dir, tiny_pipe_dir, capsys):
    """`train --init-from` with a recipe that adds zero-initialised parts starts from the committed weights."""
    overrides = "overrides = {coordinate_input = true, attention_positions = true}"
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base=f"steps = 1\n{overrides}"))
    trainer = StageTrainer(recipe, 1, show_progress=False, init_from=tiny_pipe_dir)
    assert "grown from" in capsys.readouterr().out
    committed = ImagenPipeline.from_pretrained(tiny_pipe_dir).stages[0].unet.eval()
    grown = trainer.accelerator.unwrap_model(trainer.unet).eval()
    x, t, _, _ = _inputs()
    text = torch.randn(2, 5, committed.config.text_embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text), committed(x, t, text), rtol=0, atol=1e-5)  # float32 noise; a live change is ~1e-2


def test_position_parts_learn_at_their_own_rate(tmp_path, tiny_t5_dir, tiny_pipe_dir):
    """position_lr_scale multiplies the learning rate of the grown position parts only, warm-up included."""
    extra = "steps = 2\nposition_lr_scale = 10.0\noverrides = {coordinate_input = true, attention_positions = true}"
    trainer = StageTrainer(load_recipe(write_recipe(tmp_path, tiny_t5_dir, base=extra)), 1, show_progress=False,
                           init_from=tiny_pipe_dir)
    rest, position = trainer.optimizer.param_groups
    names = {id(p): n for n, p in trainer.accelerator.unwrap_model(trainer.unet).named_parameters()}
    assert {names[id(p)].split(".")[0] for p in position["params"]} == {"coordinate_in", "down_levels", "mid", "up_levels"}
    assert all(names[id(p)].endswith("positions.weight") or names[id(p)] == "coordinate_in.weight" for p in position["params"])
    trainer.train_step(trainer.step)
    assert position["lr"] == pytest.approx(10 * rest["lr"]) and rest["lr"] > 0


def test_a_grown_layout_prior_trains_alone_first(tmp_path, tiny_t5_dir, tiny_pipe_dir):
    """layout_prior_steps: the new prior learns on its own loss before any denoising step; nothing else moves, the
    grown model still computes what the committed one did (its injection is still zero), and the record counts it."""
    grown = {}
    for steps in (0, 3):
        (tmp_path / str(steps)).mkdir()
        extra = f"steps = 1\nlayout_prior_steps = {steps}\noverrides = {{layout_prior = true}}"
        trainer = StageTrainer(load_recipe(write_recipe(tmp_path / str(steps), tiny_t5_dir, base=extra)), 1,
                               show_progress=False, init_from=tiny_pipe_dir)
        grown[steps] = dict(trainer.accelerator.unwrap_model(trainer.unet).named_parameters())
    changed = {name for name, p in grown[3].items() if not torch.equal(p, grown[0][name])}
    assert changed and {name.split(".")[1] for name in changed} == {"places", "attention", "head"}
    assert not grown[3]["layout.inject.weight"].any()  # zero until the denoiser learns to read the map
    assert trainer.record["layout_prior_images"] == 3 * 2 * 8

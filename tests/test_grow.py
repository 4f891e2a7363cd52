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


def test_a_base_grown_into_a_super_resolution_stage_ignores_its_new_input_until_it_learns():
    """low_res_conditioning: the 64 px base of a cascade becomes its 32 -> 64 stage, drawing what it drew."""
    torch.manual_seed(0)
    trained = randomize_zero_inits(unet_from_preset("tiny-base", patch_size=2)).eval()
    grown, added = grow_unet(trained, {"low_res_conditioning": True})
    x, t, text, mask = _inputs()
    low_res = torch.randn_like(x)
    with torch.no_grad():
        assert torch.equal(grown.eval()(x, t, text, mask, low_res=low_res, noise_level=torch.tensor([0.1, 0.4])),
                           trained(x, t, text, mask))
    assert "conv_in.weight" in added and "noise_level_embedding.linear_2.weight" in added
    with torch.no_grad():  # the low-resolution channels are live once trained
        grown.conv_in.weight[:, trained.conv_in.weight.shape[1]:].normal_(std=0.05)
        assert not torch.allclose(grown(x, t, text, mask, low_res=low_res, noise_level=torch.tensor([0.1, 0.4])),
                                  grown(x, t, text, mask, low_res=torch.zeros_like(x), noise_level=torch.tensor([0.1, 0.4])))


def test_a_unet_continued_at_another_resolution_is_the_same_network():
    trained = randomize_zero_inits(unet_from_preset("tiny-base")).eval()
    smaller, added = grow_unet(trained, {"sample_size": 8})
    x, t, text, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(smaller.eval()(x[..., :8, :8], t, text, mask), trained(x[..., :8, :8], t, text, mask))
    assert smaller.config.sample_size == 8 and added == []


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
    _assert_draws_like_the_committed_base(trainer, tiny_pipe_dir)


def _assert_draws_like_the_committed_base(trainer: StageTrainer, committed_dir, **low_res) -> None:
    committed = ImagenPipeline.from_pretrained(committed_dir).stages[0].unet.eval()
    grown = trainer.accelerator.unwrap_model(trainer.unet).eval()
    x, t, _, _ = _inputs()
    text = torch.randn(2, 5, committed.config.text_embed_dim)
    inputs = {key: make(x) for key, make in low_res.items()}
    with torch.no_grad():  # float32 noise; a live change is ~1e-2
        torch.testing.assert_close(grown(x, t, text, **inputs), committed(x, t, text), rtol=0, atol=1e-5)


def test_init_stage_starts_a_super_resolution_stage_from_the_committed_base(tmp_path, tiny_t5_dir, tiny_pipe_dir, capsys):
    """A cascade one stage lower (8 -> 16 px here, 32 -> 64 px for the CPU model): its SR stage grows from the
    committed base (`init_stage = 1`) and starts out drawing what the base drew."""
    recipe = tmp_path / "lower.toml"
    recipe.write_text(f"""
name = "lower"
output = "{tmp_path / 'model'}"
run_dir = "{tmp_path / 'run'}"
text_encoder = "{tiny_t5_dir}"
max_length = 16
[[stages]]
preset = "tiny-base"
overrides = {{sample_size = 8}}
[[stages]]
preset = "tiny-base"
overrides = {{low_res_conditioning = true}}
low_res_size = 8
init_stage = 1
steps = 1
""")
    trainer = StageTrainer(load_recipe(recipe), 2, show_progress=False, init_from=tiny_pipe_dir)
    assert "grown from stage 1 of" in capsys.readouterr().out
    _assert_draws_like_the_committed_base(trainer, tiny_pipe_dir, low_res=torch.randn_like,
                                          noise_level=lambda x: torch.tensor([0.0, 0.3]))


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

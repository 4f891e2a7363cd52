"""Tiny random models for tests: a T5 encoder with a SentencePiece tokenizer trained on the spot, and
a two-stage (16 -> 32 px) Imagen cascade. Everything is built offline in well under a second."""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm
import torch
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from imagen_demo import ImagenPipeline, Stage, TextEncoder, unet_from_preset
from imagen_demo.core.schedulers import training_scheduler

CORPUS = [
    "a red circle above a blue square", "two green stars", "a photo of a cat on a mat",
    "the quick brown fox jumps over the lazy dog", "a yellow triangle to the left of a purple cross",
    "红色圆形在蓝色正方形的左边",
] * 20


def build_tiny_t5(folder: Path) -> Path:
    """Train a ~80-piece SentencePiece model and save a 2-layer random T5 encoder beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=str(folder / "spiece"), vocab_size=80, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2, hard_vocab_limit=False,
    )
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    tokenizer = T5Tokenizer(vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())], extra_ids=0)
    torch.manual_seed(0)
    model = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, decoder_start_token_id=0)
    )
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def randomize_zero_inits(unet: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Zero-initialised output convs make a fresh U-Net ignore its conditioning; tests need it to matter."""
    with torch.no_grad():
        for param in unet.parameters():
            if param.ndim > 1 and not param.any():
                param.normal_(std=std)
    return unet

# A training record naming the shapes world, for a saved tiny pipeline the demo should read prompts for.
SHAPES_RECORD = {"training.json": {"data": "shapes"}}


def build_tiny_pipeline(text_encoder: TextEncoder, seed: int = 0, store_text_encoder: bool = True) -> ImagenPipeline:
    """Two random stages: 16x16 base (cosine, epsilon) and 16->32 SR (linear, v-prediction). The encoder is stored
    with a saved copy unless `store_text_encoder` is False (then it is named by its folder)."""
    torch.manual_seed(seed)
    dim = text_encoder.dim
    base = unet_from_preset("tiny-base", text_embed_dim=dim)
    sr = unet_from_preset("tiny-sr", text_embed_dim=dim, prediction_type="v_prediction")
    for unet in (base, sr):
        randomize_zero_inits(unet)
    return ImagenPipeline.from_stages(
        text_encoder,
        [
            Stage(base, training_scheduler("squaredcos_cap_v2", "epsilon")),
            Stage(sr, training_scheduler("linear", "v_prediction")),
        ],
        defaults={"guidance_scale": 3.0, "num_inference_steps": 3, "noise_aug_level": 0.2},
        store_text_encoder=store_text_encoder,
    )


def tiny_clip_tokenizer(max_length: int = 16):
    """A byte-level CLIP tokenizer with no merges: every character is a token, nothing to download."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _tiny_clip_text_config(tokenizer, **kwargs):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, **kwargs,
    )


def build_tiny_clip(folder: Path) -> Path:
    """A random HF CLIP (16-d text and 32 px vision towers) with its processor, saved like a hub folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    tokenizer = tiny_clip_tokenizer(max_length=77)
    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=_tiny_clip_text_config(tokenizer).to_dict(),
                                 vision_config=vision.to_dict(), projection_dim=8))
    processor = CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                              tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_stable_diffusion(folder: Path) -> Path:
    """A random 32 px Stable Diffusion pipeline folder (byte-level CLIP tokenizer with no merges)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_tiny_clip_text_config(tokenizer))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=4, sample_size=16,
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"

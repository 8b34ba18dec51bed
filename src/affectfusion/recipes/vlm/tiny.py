"""A tiny random BLIP-2 folder for tests and smoke runs: ``python -m affectfusion.recipes.vlm.tiny DIR``.

No BLIP-2 weights exist offline, so the tests build one from config objects (a 1-layer ViT, a
1-layer Q-Former, a 2-layer OPT) and save it exactly as a real download is laid out: ``config.json``,
``model.safetensors``, ``processor_config.json`` (image processor + ``num_query_tokens``),
``tokenizer.json`` and ``tokenizer_config.json``. The training and prediction code then loads it with
the same ``from_pretrained(DIR, local_files_only=True)`` calls as a real model.

Tokenizer: a byte-level BPE (the kind OPT uses, so any text round-trips exactly), trained with the
``tokenizers`` library on the prompt and every target answer. A handful of merges cover the answer
vocabulary, which keeps the model small (a few hundred tokens) and lets it learn the answer format in
a few hundred CPU steps. Like OPT's, it puts ``</s>`` (also the EOS) before every text.

Its answers mean nothing: the model is random. It exists to test loading, LoRA training, saving,
reloading, generation and parsing end to end in seconds.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError
from affectfusion.recipes.vlm.config import DEFAULT_PROMPT
from affectfusion.recipes.vlm.targets import all_target_texts

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]


def build_tokenizer(corpus: list[str], vocab_size: int = 600) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus``, wrapped for transformers."""
    # tokenizers, transformers and torch load only when a tiny model is built
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A $B", special_tokens=[("</s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def build_tiny_blip2(
    out_dir: str | Path,
    *,
    image_size: int = 32,
    num_query_tokens: int = 4,
    hidden_size: int = 64,
    init_std: float = 0.2,
    prompt: str = DEFAULT_PROMPT,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build and save a random BLIP-2 (OPT language model) + processor; returns the folder.

    ``init_std`` is larger than BERT-style 0.02 so the random network's outputs depend on its
    inputs enough for LoRA on q_proj/v_proj alone to fit a few answers in a few hundred steps.
    """
    # torch loads only when a tiny model is built
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessorPil,
        OPTConfig,
    )

    from affectfusion.recipes.vlm.model import image_token_id, quiet_transformers

    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise AffectFusionError(f"{out} is not empty; pass --overwrite to replace it")
        if not (out / "config.json").is_file():
            raise AffectFusionError(f"{out} is not empty and holds no model; refusing to delete it")
        shutil.rmtree(out)
    corpus = [prompt, *all_target_texts(), "0123456789 .,:;()[]"]
    tokenizer = build_tokenizer(corpus)
    image_processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    with quiet_transformers():
        processor = Blip2Processor(image_processor, tokenizer, num_query_tokens=num_query_tokens)
    vocab = len(tokenizer)  # includes the <image> token the processor added
    vision = Blip2VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=max(4, image_size // 4),
    )
    qformer = Blip2QFormerConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        encoder_hidden_size=vision.hidden_size,
        max_position_embeddings=64,
    )
    text = OPTConfig(
        vocab_size=vocab,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        ffn_dim=2 * hidden_size,
        num_attention_heads=2,
        max_position_embeddings=512,
        word_embed_proj_dim=hidden_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        init_std=init_std,
    )
    config = Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=image_token_id(processor),
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    with quiet_transformers():
        model = Blip2ForConditionalGeneration(config)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m affectfusion.recipes.vlm.tiny",
        description="Save a tiny random BLIP-2 + processor folder for smoke tests of the VLM path "
        "(then: affectfusion train face_vlm_lora --set model.path=DIR).",
    )
    parser.add_argument("dir", type=Path, help="output folder")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    args = parser.parse_args(argv)
    try:
        out = build_tiny_blip2(args.dir, image_size=args.image_size, seed=args.seed, overwrite=args.overwrite)
    except AffectFusionError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"tiny BLIP-2 saved to {out}")


if __name__ == "__main__":
    main()

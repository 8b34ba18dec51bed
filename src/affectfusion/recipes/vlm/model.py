"""Load a local BLIP-2 folder, add LoRA, and turn images + prompt (+ answer) into model inputs.

The same code loads a tiny random model (:mod:`affectfusion.recipes.vlm.tiny`) and a real one such as
Salesforce/blip2-opt-2.7b: ``from_pretrained(folder, local_files_only=True)``, never the hub.

Inputs follow transformers 5.x: the text starts with ``num_query_tokens`` image placeholder tokens
(the model writes the Q-Former outputs over them), then the tokenizer's encoding of the prompt (with
its BOS). Training appends the answer and EOS and scores only those tokens; generation feeds the
identical prefix, so the model continues exactly where it learned to.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectfusion.errors import AffectFusionError
from affectfusion.recipes.vlm.config import TINY_MODEL_HINT, GenerationConfig, LoraSettings

IGNORE_INDEX = -100  # label of tokens that carry no loss (image placeholders, prompt, padding)
ADAPTER_DIR = "adapter"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' load-time progress bars and notices (e.g. "no torchvision: using the PIL
    image processor", which is expected here), restoring its settings afterwards."""
    # transformers loads only with a BLIP-2 model
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_model_folder(path: str | Path) -> Path:
    """A folder holding a BLIP-2 ``config.json``; anything else is a clear error."""
    folder = Path(path).expanduser()
    hint = f"(a local BLIP-2 folder, e.g. a download of Salesforce/blip2-opt-2.7b, or `{TINY_MODEL_HINT}`)"
    if not folder.is_dir():
        raise AffectFusionError(f"model.path {str(folder)!r} is not a folder {hint}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise AffectFusionError(f"model.path {str(folder)!r} has no config.json {hint}")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AffectFusionError(f"{config_file} is not valid JSON") from None
    if model_type != "blip-2":
        raise AffectFusionError(f"model.path {str(folder)!r}: config.json says model_type {model_type!r}, not 'blip-2'")
    return folder


def image_token_id(processor: Any) -> int:
    return int(processor.tokenizer.convert_tokens_to_ids(str(processor.image_token)))


def load_blip2(path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """``(Blip2ForConditionalGeneration, Blip2Processor)`` from a local folder, checked to agree.

    A processor saved without ``num_query_tokens`` (older BLIP-2 downloads) takes the model's.
    """
    # transformers loads only with a BLIP-2 model
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    folder = check_model_folder(path)
    with quiet_transformers():
        try:
            processor = Blip2Processor.from_pretrained(folder, local_files_only=True)
            model = Blip2ForConditionalGeneration.from_pretrained(
                folder, local_files_only=True, dtype=getattr(torch, dtype)
            )
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AffectFusionError(f"cannot load BLIP-2 from {folder}: {first}") from None
    cfg: Any = model.config  # a Blip2Config, whose text_config transformers types as dict | config | None
    if not cfg.use_decoder_only_language_model:
        raise AffectFusionError(
            f"{folder}: this BLIP-2 has an encoder-decoder language model ({cfg.text_config.model_type}); "
            "the VLM path trains decoder-only ones (OPT), e.g. Salesforce/blip2-opt-2.7b"
        )
    if processor.num_query_tokens is None:
        processor.num_query_tokens = cfg.num_query_tokens
    if processor.num_query_tokens != cfg.num_query_tokens:
        raise AffectFusionError(
            f"{folder}: processor num_query_tokens {processor.num_query_tokens} != model's {cfg.num_query_tokens}"
        )
    token = image_token_id(processor)
    if cfg.image_token_index is None:  # folders saved before transformers 4.47 name no image token
        cfg.image_token_index = token
        embeddings = model.get_input_embeddings()
        if not isinstance(embeddings, torch.nn.Embedding) or token >= embeddings.num_embeddings:
            model.resize_token_embeddings(len(processor.tokenizer))
    if cfg.image_token_index != token:
        raise AffectFusionError(
            f"{folder}: the tokenizer's image token id {token} differs from the model's image_token_index "
            f"{cfg.image_token_index}"
        )
    if processor.tokenizer.eos_token_id is None:
        raise AffectFusionError(f"{folder}: the tokenizer has no EOS token; the answer could not end")
    return model, processor


def add_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap the model with fresh LoRA adapters; only their weights train."""
    # peft loads only when adapters are added
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in settings.target_modules if m not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise AffectFusionError(
            f"lora.target_modules: {', '.join(missing)} not in the model; linear layers are named {', '.join(linear)}"
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,  # type: ignore[arg-type]  # peft types it int; any alpha > 0 scales alpha / r
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
    )
    with quiet_transformers():
        return get_peft_model(model, config)


def load_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """The base model with trained LoRA weights from a run's adapter folder, for inference."""
    # peft loads only when adapters are read
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise AffectFusionError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json)")
    with quiet_transformers():
        peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    peft_model.eval()
    return peft_model


def trainable_parameters(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"n_parameters": total, "n_trainable": trainable}


def _model_dtype(model: Any) -> torch.dtype:
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def pixel_values(processor: Any, images: Sequence[np.ndarray], model: Any) -> torch.Tensor:
    """RGB uint8 crops -> the vision encoder's normalised input, in the model's dtype."""
    pixels = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    return pixels.to(_model_dtype(model))


def prompt_ids(processor: Any, prompt: str) -> list[int]:
    """Image placeholders + the tokenised prompt: the prefix of every training and generation input."""
    ids = processor.tokenizer(prompt).input_ids
    return [image_token_id(processor)] * processor.num_query_tokens + list(ids)


def answer_ids(processor: Any, answer: str) -> list[int]:
    """The answer's tokens (after a space, as they follow the prompt) and EOS, where generation stops."""
    tok = processor.tokenizer
    return [*tok(" " + answer.strip(), add_special_tokens=False).input_ids, tok.eos_token_id]


def _pad_id(processor: Any) -> int:
    tok = processor.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def training_batch(
    processor: Any, model: Any, images: Sequence[np.ndarray], prompt: str, answers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Model inputs with ``labels`` on the answer tokens only (right-padded)."""
    prefix = prompt_ids(processor, prompt)
    sequences = [prefix + answer_ids(processor, a) for a in answers]
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), _pad_id(processor), dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    labels = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
    for i, seq in enumerate(sequences):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        labels[i, len(prefix) : len(seq)] = torch.tensor(seq[len(prefix) :])
    device = next(model.parameters()).device  # the batch follows the model (CPU or GPU)
    batch = {"pixel_values": pixel_values(processor, images, model), "input_ids": input_ids}
    batch |= {"attention_mask": attention, "labels": labels}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def generation_inputs(processor: Any, model: Any, images: Sequence[np.ndarray], prompt: str) -> dict[str, torch.Tensor]:
    prefix = torch.tensor([prompt_ids(processor, prompt)] * len(images), dtype=torch.long)
    device = next(model.parameters()).device  # the inputs follow the model (CPU or GPU)
    return {
        "pixel_values": pixel_values(processor, images, model).to(device),
        "input_ids": prefix.to(device),
        "attention_mask": torch.ones_like(prefix).to(device),
    }


@torch.no_grad()
def generate_texts(
    model: Any, processor: Any, images: Sequence[np.ndarray], prompt: str, gen: GenerationConfig
) -> list[str]:
    """One answer per image (the prompt is not repeated in it)."""
    if not images:
        return []
    inputs = generation_inputs(processor, model, images, prompt)
    kwargs: dict[str, Any] = {
        "max_new_tokens": gen.max_new_tokens,
        "do_sample": gen.do_sample,
        "num_beams": gen.num_beams,
        "eos_token_id": processor.tokenizer.eos_token_id,
        "pad_token_id": _pad_id(processor),
    }
    if gen.do_sample:
        kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
    with quiet_transformers():
        out = model.generate(**inputs, **kwargs)
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

"""Whisper's encoder in transformers, read from the CTranslate2 weights that ``whisper_base`` ships: every layer.

CTranslate2 returns only the encoder's final layer, but the middle layers of a speech model carry more
of the speaker's state (prosody, voice quality) than the last one, which is shaped for transcription;
SUPERB and EmoBox therefore weight all hidden states. This module reads the encoder variables out of
CTranslate2's ``model.bin`` (its binary layout is ``ModelSpec._serialize`` in ctranslate2/specs/model_spec.py),
renames them to transformers' ``WhisperEncoder`` and runs that encoder on *unpadded* log-mel features
(transformers' own forward insists on Whisper's 30 s window). For the shipped Whisper-base the converted
encoder is saved once as safetensors into the model cache and verified by its sha256, like the CTranslate2
model it comes from; the final hidden state equals CTranslate2's encoder output (tests/test_extract_whisper.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.errors import AffectFusionError
from affectfusion.extract.audio import _require

CT2_VERSION = 6  # the binary version this reader understands (CTranslate2 4.x)
CT2_DTYPES = {0: np.float32, 4: np.float16}  # type ids of ctranslate2/specs/model_spec.py; others are refused
ENCODER_FILE = "model.safetensors"
RENAMES = (  # CTranslate2 encoder variable -> transformers WhisperEncoder parameter, applied in order
    (r"^layer_(\d+)/", r"layers.\1/"),
    (r"self_attention/layer_norm/", "self_attn_layer_norm/"),
    (r"ffn/layer_norm/", "final_layer_norm/"),
    (r"ffn/linear_0/", "fc1/"),
    (r"ffn/linear_1/", "fc2/"),
    (r"self_attention/linear_1/", "self_attn/out_proj/"),
    (r"position_encodings/encodings$", "embed_positions/weight"),
    (r"/gamma$", "/weight"),
    (r"/beta$", "/bias"),
)
# state_digest of the converted Whisper-base encoder (float16 as stored by CTranslate2): a change means wrong
# weights. It hashes the tensors, not the safetensors file, whose header layout may change between versions.
ENCODER_SHA256 = "b0fcd5f97339c5f48bb80ace7f105ceaa03a1636457ced92b3d552f0f6f6ca73"


def read_ct2_encoder(model_bin: Path) -> dict[str, np.ndarray]:
    """The ``encoder/...`` variables of a CTranslate2 Whisper ``model.bin``, as stored (float16 or float32)."""
    data = memoryview(model_bin.read_bytes())
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("H")  # length including the terminating zero byte
        value = bytes(data[pos : pos + n - 1]).decode()
        pos += n
        return value

    try:
        version, spec = take("I"), text()
        if version != CT2_VERSION or spec != "WhisperSpec":
            raise AffectFusionError(
                f"{model_bin}: a CTranslate2 {spec!r} model of binary version {version}; "
                f"expected a WhisperSpec model of version {CT2_VERSION}"
            )
        take("I")  # spec revision
        out: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name, ndim = text(), take("B")
            shape = [take("I") for _ in range(ndim)]
            type_id, size = take("B"), take("I")
            raw, pos = data[pos : pos + size], pos + size
            if pos > len(data):
                raise struct.error("past the end")
            if not name.startswith("encoder/"):
                continue
            if name == "encoder/num_heads":  # an int16 scalar
                out[name] = np.frombuffer(raw, dtype=np.int16).reshape(shape)
                continue
            if type_id not in CT2_DTYPES:
                raise AffectFusionError(
                    f"{model_bin}: encoder variable {name} has CTranslate2 type id {type_id}; only float32 and "
                    "float16 weights can be read (convert the model with --quantization float16)"
                )
            out[name] = np.frombuffer(raw, dtype=CT2_DTYPES[type_id]).reshape(shape)
    except struct.error:
        raise AffectFusionError(f"{model_bin}: truncated CTranslate2 model file") from None
    if "encoder/conv1/weight" not in out or "encoder/num_heads" not in out:
        raise AffectFusionError(f"{model_bin}: no Whisper encoder variables found")
    return out


def encoder_state(ct2: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """transformers ``WhisperEncoder`` state dict and its sizes from CTranslate2 encoder variables."""
    state: dict[str, np.ndarray] = {}
    heads = int(ct2.pop("encoder/num_heads"))
    for name, value in ct2.items():
        key = name.removeprefix("encoder/")
        for pattern, new in RENAMES:
            key = re.sub(pattern, new, key)
        key = key.replace("/", ".")
        if "self_attention.linear_0" in key:  # q, k, v fused along the output axis (k has no bias in Whisper)
            prefix, kind = key.split("self_attention.linear_0.")
            for proj, part in zip(("q_proj", "k_proj", "v_proj"), np.split(value, 3, axis=0), strict=True):
                if not (proj == "k_proj" and kind == "bias"):
                    state[f"{prefix}self_attn.{proj}.{kind}"] = part
            continue
        state[key] = value
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    d_model, n_mels, _ = state["conv1.weight"].shape
    sizes = {
        "num_mel_bins": int(n_mels),
        "d_model": int(d_model),
        "encoder_layers": layers,
        "encoder_ffn_dim": int(state["layers.0.fc1.weight"].shape[0]),
        "max_source_positions": int(state["embed_positions.weight"].shape[0]),
        "encoder_attention_heads": heads,
    }
    return state, sizes


def _whisper_config(sizes: dict[str, int]) -> Any:
    """WhisperConfig of the encoder's sizes (the decoder is not converted; its sizes mirror the encoder's)."""
    transformers = _require("transformers", "transformers")
    return transformers.WhisperConfig(
        **sizes,
        decoder_layers=sizes["encoder_layers"],
        decoder_attention_heads=sizes["encoder_attention_heads"],
        decoder_ffn_dim=sizes["encoder_ffn_dim"],
    )


def convert_encoder(ct2_folder: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """(WhisperConfig, encoder state dict) of a CTranslate2 Whisper folder, weights as stored."""
    state, sizes = encoder_state(read_ct2_encoder(ct2_folder / "model.bin"))
    return _whisper_config(sizes), state


def state_digest(state: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        value = np.ascontiguousarray(state[name])
        h.update(json.dumps([name, value.dtype.str, list(value.shape)]).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def save_encoder(ct2_folder: Path, out: Path, expected_sha256: str | None) -> Path:
    """Convert once into ``out`` (safetensors + config.json); the weights' digest is checked and kept in VERIFIED."""
    marker, weights = out / "VERIFIED", out / ENCODER_FILE
    ready = marker.is_file() and weights.is_file() and (out / "config.json").is_file()
    if ready and (expected_sha256 is None or marker.read_text().strip() == expected_sha256):
        return out
    safetensors = _require("safetensors.numpy", "safetensors")
    config, state = convert_encoder(ct2_folder)
    digest = state_digest(state)
    if expected_sha256 is not None and digest != expected_sha256:
        raise AffectFusionError(
            f"whisper_base: the encoder converted from {ct2_folder} has digest {digest[:16]}..., "
            f"expected {expected_sha256[:16]}...: the CTranslate2 model or the converter changed"
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{ENCODER_FILE}.{os.getpid()}.tmp"
    try:
        safetensors.save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp))
        os.replace(tmp, weights)
    finally:
        tmp.unlink(missing_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    marker.write_text(digest + "\n")
    return out


def load_encoder(folder: Path, dtype: Any) -> Any:
    """transformers ``WhisperEncoder`` from a folder written by :func:`save_encoder`, in eval mode."""
    transformers = _require("transformers", "transformers")
    safetensors = _require("safetensors.torch", "safetensors")
    config = transformers.WhisperConfig.from_dict(json.loads((folder / "config.json").read_text()))
    encoder = transformers.models.whisper.modeling_whisper.WhisperEncoder(config)
    encoder.load_state_dict(safetensors.load_file(str(folder / ENCODER_FILE)), strict=True)
    return encoder.to(dtype=dtype).eval()


def hidden_states(encoder: Any, mel: Any) -> Any:
    """Every hidden state ``[L + 1, B, T, D]`` of unpadded log-mel ``[B, n_mels, 2T]``: the embedded input,
    then each layer (the last with the final layer norm, as Whisper's decoder reads it)."""
    import torch  # loaded with the encoder
    from torch.nn.functional import gelu  # loaded with the encoder

    with torch.no_grad():
        x = gelu(encoder.conv2(gelu(encoder.conv1(mel.to(encoder.conv1.weight.dtype))))).permute(0, 2, 1)
        h = x + encoder.embed_positions.weight[: x.shape[1]]
        states = [h]
        for layer in encoder.layers:
            out = layer(h, None)
            h = out[0] if isinstance(out, tuple) else out  # a tuple in transformers 4.x, a tensor in 5.x
            states.append(h)
        states[-1] = encoder.layer_norm(h)
    return torch.stack(states)

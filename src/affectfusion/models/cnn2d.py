"""``cnn2d``: a small VGG-style image CNN trained from scratch on pixels (``face_pixels``: FER2013's 48 x 48 faces).

Each time step of the ``[B, T, D]`` input is one grey image of ``height`` x ``D / height`` pixels (square by
default), so a photo is ``T = 1`` and a clip of face frames is mean-pooled over its real frames.
Training-time augmentation (random flip, shift, zoom and rotation, one ``affine_grid`` for the whole batch)
runs inside the encoder and only in training mode; in eval mode the embedding is the mean of the image's
and its mirror image's (flip test-time augmentation), so a prediction does not depend on which way a face
looks.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import ENCODERS, Encoded, Encoder
from affectfusion.models.base import Options as BaseOptions


def random_affine(images: Tensor, shift: float, zoom: float, rotate: float, flip: bool) -> Tensor:
    """Each image of ``[N, C, H, W]`` moved by its own random flip, shift (fraction of the side), zoom and
    rotation (degrees); pixels from outside the image are 0 (the training mean of standardised inputs)."""
    n = images.shape[0]
    rand = torch.rand(n, 5, device=images.device) * 2 - 1  # [-1, 1)
    angle = rand[:, 0] * math.radians(rotate)
    scale = 1 + rand[:, 1] * zoom
    mirror = torch.where(rand[:, 2] < 0, -1.0, 1.0) if flip else torch.ones(n, device=images.device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * mirror, -sin, rand[:, 3] * 2 * shift], 1),
            torch.stack([sin * mirror, cos, rand[:, 4] * 2 * shift], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@ENCODERS.register("cnn2d")
class ImageCNNEncoder(Encoder):
    """Stages of (3x3 conv, BatchNorm, ReLU) x ``convs``, each followed by 2x2 max-pooling; global average
    pooling; a linear projection to ``hidden_dim``. Augments in training, mirror-averages in eval."""

    # the registry-wide encoder tests feed it [B, T, 5] features: 1 x 5 pixel images
    example_options: ClassVar[dict] = {"height": 1, "channels": [4, 8]}

    class Options(BaseOptions):
        channels: list[int] = Field(
            default_factory=lambda: [32, 64, 128, 256],
            min_length=1,
            max_length=8,
            description="output channels of each stage (each stage halves the image's height and width)",
        )
        convs: int = Field(2, ge=1, le=8, description="3x3 convolutions per stage")
        height: int | None = Field(
            None, ge=1, description="image height in pixels (width = feature size / height); null = square"
        )
        augment: bool = Field(True, description="random flip, shift, zoom and rotation of each training image")
        flip: bool = Field(True, description="mirror half the training images (with augment)")
        shift: float = Field(0.1, ge=0, le=0.5, description="largest shift, as a fraction of the image side")
        zoom: float = Field(0.1, ge=0, lt=1, description="largest zoom in or out, as a fraction")
        rotate: float = Field(10.0, ge=0, le=180, description="largest rotation, in degrees")
        tta_flip: bool = Field(True, description="eval: average the embeddings of the image and its mirror image")
        channels_last: bool = Field(
            True, description="NHWC memory layout: the same numbers, about twice as fast on CPU under bf16 autocast"
        )

    def __init__(self, in_dim: int, out_dim: int, dropout: float, options: Options) -> None:
        super().__init__(in_dim, out_dim, dropout, options)
        height = options.height or math.isqrt(in_dim)
        if height * (in_dim // height) != in_dim or (options.height is None and height * height != in_dim):
            shape = "a square image" if options.height is None else f"an image of height {options.height}"
            raise AffectFusionError(
                f"cnn2d encoder: features of size {in_dim} are not {shape}; set model.encoder.options.height"
            )
        self.height, self.width = height, in_dim // height
        self.options = options
        layers: list[nn.Module] = []
        c_in = 1
        for c in options.channels:
            for _ in range(options.convs):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.net = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, out_dim), nn.ReLU())
        if options.channels_last:
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs

    def embed(self, images: Tensor) -> Tensor:
        """``[N, 1, H, W]`` -> ``[N, hidden_dim]``, without augmentation or mirror averaging."""
        if self.options.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.proj(self.net(images).mean((2, 3)))

    def forward(self, x: Tensor, mask: Tensor) -> Encoded:
        b, t, _ = x.shape
        if self.training:  # only the real frames of present rows, so padding never enters BatchNorm's statistics
            where = mask.nonzero(as_tuple=True)
            images = x[where].reshape(-1, 1, self.height, self.width)
            o = self.options
            if images.shape[0] == 0:
                h = x.new_zeros(0, self.out_dim)
            else:
                h = self.embed(random_affine(images, o.shift, o.zoom, o.rotate, o.flip) if o.augment else images)
            seq = h.new_zeros(b, t, self.out_dim).index_put_(where, h)
        else:  # every frame, then masked: no data-dependent shapes, so the eval graph exports to ONNX
            images = x.reshape(b * t, 1, self.height, self.width)
            if self.options.tta_flip:
                h = self.embed(torch.cat([images, images.flip(-1)])).view(2, b * t, self.out_dim).mean(0)
            else:
                h = self.embed(images)
            seq = h.view(b, t, self.out_dim) * mask.unsqueeze(-1).to(h.dtype)
        counts = mask.sum(1, keepdim=True).clamp(min=1).to(seq.dtype)
        return Encoded(seq=seq, mask=mask, pooled=seq.sum(1) / counts)

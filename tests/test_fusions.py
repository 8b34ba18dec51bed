"""Every registered fusion strategy, with 1-3 modalities and vector (T=1) / sequence (T=7) inputs.

Parametrised over ``FUSIONS.names()``, so a strategy registered later is tested automatically.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from affectfusion.errors import AffectFusionError
from affectfusion.models.base import FUSIONS, Encoded, Fusion, FusionOutput, masked_mean

DIM, BATCH = 16, 6
# Option combinations that change the computation path, tested like strategies of their own.
OPTION_VARIANTS = {"cross_attention[combine=weighted]": ("cross_attention", {"combine": "weighted"})}
NAMES = FUSIONS.names() + list(OPTION_VARIANTS)
N_MODALITIES = [1, 2, 3]
STEPS = [1, 7]

Inputs = dict[str, Encoded]
Present = dict[str, Tensor]


def modalities(n: int) -> list[str]:
    return ["audio", "text", "video"][:n]


def build(name: str, n: int, seed: int = 0) -> Fusion:
    torch.manual_seed(seed)
    base, options = OPTION_VARIANTS.get(name, (name, {}))
    cls = FUSIONS.get(base)
    return cls(modalities(n), DIM, 0.1, cls.Options(**options))


def mixed_presence(mods: list[str], seed: int = 0) -> Present:
    """A different non-empty subset per row; row 0 has everything, row 1 only the first modality."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(BATCH, len(mods), generator=g) < 0.5
    p[0] = True
    p[1] = False
    p[1, 0] = True
    empty = ~p.any(1)
    p[empty, torch.randint(len(mods), (int(empty.sum()),), generator=g)] = True
    return {m: p[:, i] for i, m in enumerate(mods)}


def subset_presence(mods: list[str], subset: tuple[str, ...]) -> Present:
    return {m: torch.full((BATCH,), m in subset) for m in mods}


def make_inputs(present: Present, steps: int, seed: int = 0) -> Inputs:
    """Random encoder outputs; sequences have random lengths (row 0 always padded when steps > 1)."""
    g = torch.Generator().manual_seed(seed)
    inputs = {}
    for m, p in present.items():
        seq = torch.randn(BATCH, steps, DIM, generator=g)
        lengths = torch.randint(1, steps + 1, (BATCH,), generator=g)
        lengths[0] = max(1, steps - 3)
        mask = (torch.arange(steps) < lengths[:, None]) & p[:, None]
        inputs[m] = Encoded(seq=seq, mask=mask, pooled=masked_mean(seq, mask))
    return inputs


def junk_like(x: Tensor, g: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=g) * 100.0 + 7.0


def perturb_missing(inputs: Inputs, present: Present, seed: int = 1) -> Inputs:
    """Arbitrary values (and masks) for every missing modality."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, enc in inputs.items():
        miss = ~present[m]
        out[m] = Encoded(
            seq=torch.where(miss[:, None, None], junk_like(enc.seq, g), enc.seq),
            mask=torch.where(miss[:, None], torch.rand(enc.mask.shape, generator=g) < 0.5, enc.mask),
            pooled=torch.where(miss[:, None], junk_like(enc.pooled, g), enc.pooled),
        )
    return out


def perturb_padding(inputs: Inputs, seed: int = 2) -> Inputs:
    """Arbitrary values at every masked time step (pooled embeddings unchanged)."""
    g = torch.Generator().manual_seed(seed)
    return {
        m: Encoded(torch.where(enc.mask[..., None], enc.seq, junk_like(enc.seq, g)), enc.mask, enc.pooled)
        for m, enc in inputs.items()
    }


def check_output(module: Fusion, out: FusionOutput, present: Present) -> None:
    assert out.fused.shape == (BATCH, module.out_dim)
    assert torch.isfinite(out.fused).all()
    for key, value in out.explanations.items():
        assert value.shape[0] == BATCH, key
        assert torch.isfinite(value).all(), key
    if "modality_weights" in out.explanations:
        w = out.explanations["modality_weights"]
        p = torch.stack([present[m] for m in module.modalities], dim=1)
        assert w.shape == (BATCH, len(module.modalities))
        torch.testing.assert_close(w.sum(1), torch.ones(BATCH))
        assert (w[~p] == 0).all()


strategies = pytest.mark.parametrize("name", NAMES)
sizes = pytest.mark.parametrize("n", N_MODALITIES)
steps_ = pytest.mark.parametrize("steps", STEPS)


@strategies
@sizes
@steps_
def test_forward_shape_and_finite(name: str, n: int, steps: int) -> None:
    module = build(name, n)
    present = mixed_presence(module.modalities)
    inputs = make_inputs(present, steps)
    for train in (True, False):
        module.train(train)
        check_output(module, module(inputs, present), present)


@strategies
@sizes
@steps_
def test_backward_gives_finite_gradients(name: str, n: int, steps: int) -> None:
    module = build(name, n).train()
    present = mixed_presence(module.modalities)
    inputs = make_inputs(present, steps)
    for enc in inputs.values():
        enc.seq.requires_grad_(True)
        enc.pooled.requires_grad_(True)
    fused = module(inputs, present).fused
    (fused * torch.randn_like(fused)).sum().backward()

    params = [q for q in module.parameters() if q.requires_grad]
    assert all(q.grad is None or torch.isfinite(q.grad).all() for q in params)
    if params and n > 1:  # with one modality some strategies are the identity (weighted: weight 1)
        assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in params)
    grads = [t.grad for enc in inputs.values() for t in (enc.seq, enc.pooled) if t.grad is not None]
    assert grads and any(gr.abs().sum() > 0 for gr in grads)
    for m, enc in inputs.items():  # a missing modality gets no gradient
        for t in (enc.seq, enc.pooled):
            if t.grad is not None:
                assert torch.isfinite(t.grad).all()
                assert (t.grad[~present[m]] == 0).all()


@strategies
@sizes
@steps_
def test_any_subset_of_missing_modalities(name: str, n: int, steps: int) -> None:
    module = build(name, n).eval()
    mods = module.modalities
    subsets = [s for k in range(1, n + 1) for s in itertools.combinations(mods, k)]
    cases = [subset_presence(mods, s) for s in subsets] + [mixed_presence(mods)]
    with torch.no_grad():
        for present in cases:
            inputs = make_inputs(present, steps)
            out = module(inputs, present)
            check_output(module, out, present)
            perturbed = module(perturb_missing(inputs, present), present)
            torch.testing.assert_close(perturbed.fused, out.fused)


@strategies
@sizes
def test_padded_steps_do_not_matter(name: str, n: int) -> None:
    module = build(name, n).eval()
    present = mixed_presence(module.modalities)
    inputs = make_inputs(present, steps=7)
    with torch.no_grad():
        out = module(inputs, present).fused
        torch.testing.assert_close(module(perturb_padding(inputs), present).fused, out)


@strategies
@sizes
def test_deterministic_under_seed(name: str, n: int) -> None:
    present = mixed_presence(modalities(n))
    inputs = make_inputs(present, steps=7)
    with torch.no_grad():
        a = build(name, n, seed=3).eval()(inputs, present).fused
        b = build(name, n, seed=3).eval()(inputs, present).fused
    assert torch.equal(a, b)


@strategies
@sizes
def test_safetensors_round_trip(name: str, n: int, tmp_path) -> None:
    saved, fresh = build(name, n, seed=0).eval(), build(name, n, seed=1).eval()
    path = tmp_path / "fusion.safetensors"
    save_file(saved.state_dict(), str(path))
    fresh.load_state_dict(load_file(str(path)))
    present = mixed_presence(saved.modalities)
    inputs = make_inputs(present, steps=7)
    with torch.no_grad():
        assert torch.equal(saved(inputs, present).fused, fresh(inputs, present).fused)


registered = pytest.mark.parametrize("name", FUSIONS.names())


@registered
def test_options_forbid_unknown_keys(name: str) -> None:
    with pytest.raises(ValidationError):
        FUSIONS.get(name).Options(no_such_option=1)


@registered
def test_heads_must_divide_dim(name: str) -> None:
    cls = FUSIONS.get(name)
    if "heads" not in cls.Options.model_fields:
        pytest.skip("no heads option")
    with pytest.raises(AffectFusionError, match=r"model\.fusion\.options\.heads.*18"):
        cls(modalities(2), 18, 0.0, cls.Options(heads=4))


def test_unknown_fusion_lists_valid_names() -> None:
    with pytest.raises(AffectFusionError) as err:
        FUSIONS.get("nope")
    assert all(name in str(err.value) for name in FUSIONS.names())


def test_weighted_modality_weights_renormalise_over_present() -> None:
    module = build("weighted", 3).eval()
    present = mixed_presence(module.modalities)
    w = module(make_inputs(present, steps=1), present).explanations["modality_weights"]
    p = torch.stack([present[m] for m in module.modalities], dim=1)
    torch.testing.assert_close(w.sum(1), torch.ones(BATCH))
    assert (w[~p] == 0).all() and (w[p] > 0).all()
    assert torch.equal(w[1], torch.tensor([1.0, 0.0, 0.0]))  # row 1 has only the first modality


@pytest.mark.parametrize("dynamic", [True, False])
def test_weighted_learns_low_weight_for_noise_modality(dynamic: bool) -> None:
    """Modality 'a' carries the label, 'b' is pure noise: b's weight must drop from 1/2 to the lowest."""
    torch.manual_seed(0)
    n, dim = 256, 8
    y = torch.randint(0, 2, (n,)).float()
    pooled = {"a": torch.randn(n, dim) * 0.5 + (2 * y - 1)[:, None], "b": torch.randn(n, dim)}
    inputs = {m: Encoded(x[:, None], torch.ones(n, 1, dtype=torch.bool), x) for m, x in pooled.items()}
    present = {m: torch.ones(n, dtype=torch.bool) for m in pooled}
    cls = FUSIONS.get("weighted")
    fusion = cls(list(pooled), dim, 0.0, cls.Options(dynamic=dynamic))
    head = nn.Linear(dim, 1)
    opt = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=0.03)
    for _ in range(200):
        loss = nn.functional.binary_cross_entropy_with_logits(head(fusion(inputs, present).fused)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        weights = fusion.eval()(inputs, present).explanations["modality_weights"].mean(0)
    assert weights.argmin().item() == fusion.modalities.index("b"), weights
    assert weights[1] < 0.2, weights

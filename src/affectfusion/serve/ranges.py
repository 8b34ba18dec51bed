"""Whether an input's feature values lie in a range the model can read (conversations need it decided first).

The model standardises each feature with the training split's mean and standard deviation. A value
millions of standard deviations away carries no information the model learned, and in a
conversation it would not stay in its own turn: the context stage mixes every turn into the others,
so one 1e20 turn could flip another turn's label, and one 3e38 turn made every turn's output
infinite. Such a turn is refused before the model runs, with its own error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads with a run, not with this module
    from affectfusion.models.model import MultimodalModel

MAX_STANDARD_DEVIATIONS = 1e6  # from the training mean; far beyond any real input, well within float32


def range_error(model: MultimodalModel, features: Mapping[str, np.ndarray]) -> str | None:
    """The reason one input's features are out of range for ``model``, or None when every value is in range."""
    for m, x in features.items():
        if m not in model.modalities or model.raw_input(m):
            continue  # token ids are checked by their encoder
        mean = getattr(model, f"in_mean_{m}").detach().cpu().numpy().astype(np.float64)
        std = getattr(model, f"in_std_{m}").detach().cpu().numpy().astype(np.float64)
        z = np.abs((np.asarray(x, dtype=np.float64) - mean) / std)
        worst = float(z.max()) if z.size else 0.0
        if not worst <= MAX_STANDARD_DEVIATIONS:
            return (
                f"{m}: input out of range (a value {worst:.3g} standard deviations from the training data, "
                f"at most {MAX_STANDARD_DEVIATIONS:g} are read); it is left out of the other turns' context"
            )
    return None

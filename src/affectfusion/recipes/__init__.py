"""Training recipes (torchtune-style) and the home of every run kind.

Each run kind is one package here, ``recipes/<kind>/`` (``fusion``, ``specialists``, ``vlm``): its
recipe, predictor, dashboard backend, detection and tiny example, registered by the ``KIND`` its
``__init__`` defines and one line in :data:`affectfusion.runkinds.KIND_MODULES`. The other modules
orchestrate runs of those kinds (``cv``, ``tune``, ``workers``) or work on finished runs (``trust``,
``cross_corpus``).

A kind's home holds its serving code next to its training code, so this layer ranks with ``serve``
and ``analysis`` (``tests/test_architecture.py``): above training and evaluation, below the CLI.
"""

from __future__ import annotations

from affectfusion.config import load_raw, resolve_config_path
from affectfusion.runkinds import kind_named


def config_kind(config: str) -> str:
    """``fusion`` (a RunConfig) unless the YAML names another registered kind (``kind: specialists``)."""
    return kind_named(load_raw(resolve_config_path(config)), config)

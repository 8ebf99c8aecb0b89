"""Parameterized transformations ψ_θ, batched in torch, and their registry.

Contract (DESIGN.md): ``get(name)`` returns a :class:`~semsmooth_core.transforms.base.Transform`
``t`` with ``t(x, params, interpolation="bilinear", quantize=True)``; ``names()`` lists them.
"""

from semsmooth_core.transforms.base import Transform, get, names, quantize_uint8, register  # noqa: F401

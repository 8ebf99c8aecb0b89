"""Attacks on the real transformation beside the certificates (issue 17).

- :mod:`~semsmooth_core.attacks.search`: grid, random search, worst-of-k and local refinement
  (gradient-based where the transformation is differentiable) over the attacker range C or a
  certified region, with a budget in forward passes;
- :mod:`~semsmooth_core.attacks.targets`: the base classifier and the smoothed classifiers (noise,
  transform, double, GSmooth), the latter answered by PREDICT with a stated α;
- :mod:`~semsmooth_core.attacks.runner`: one input, a dataset (the ``attack`` command), the attack
  inside a certificate (``certify --attack``) and the standing soundness check.
"""

from semsmooth_core.attacks.runner import (ATTACK_DEFAULTS, DIFFERENTIABLE, attack_certified,  # noqa: F401
                                           attack_input, attack_inputs, certified_attack_summary, attack_range, make_target,
                                           parse_range, soundness_check, summarize_attack,
                                           validate_attack_config)
from semsmooth_core.attacks.search import Region, SearchResult, search  # noqa: F401
from semsmooth_core.attacks.targets import KINDS, SmoothedTarget, Target  # noqa: F401

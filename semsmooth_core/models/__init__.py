"""Architectures, checkpoint I/O (``torch.load(weights_only=True)``), the registry of shipped
models and bring-your-own loading."""

from semsmooth_core.models.architectures import ARCHITECTURES, build  # noqa: F401
from semsmooth_core.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from semsmooth_core.models.registry import list_models, load_model, model_card  # noqa: F401

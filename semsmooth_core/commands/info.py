"""``info``: versions, device, shipped data and models."""

NAME = "info"
HELP = "show versions, the compute device, shipped datasets and models"
ORDER = 90


def add_arguments(p):
    pass


def run(args, progress):
    import platform

    import torch

    import semsmooth_core
    from semsmooth_core.device import describe_device
    from semsmooth_core.models import list_models
    from semsmooth_core.data.datasets import dataset_names

    return {"semsmooth_core": semsmooth_core.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "device": describe_device(),
            "datasets": dataset_names(), "models": {k: v.get("summary", "") for k, v in list_models().items()}}

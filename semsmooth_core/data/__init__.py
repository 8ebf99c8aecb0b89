"""Datasets: the embedded MNIST split and photos, real dataset folders, user uploads."""

from semsmooth_core.data.embedded import embedded_mnist, embedded_photos  # noqa: F401
from semsmooth_core.data.uploads import decode_image  # noqa: F401

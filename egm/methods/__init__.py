"""Methods, registered by name (see `base.register`)."""
from egm.methods import classifier, coopnets, ebm, triangle, vae  # noqa: F401
from egm.methods.base import METHODS, make_method, register  # noqa: F401

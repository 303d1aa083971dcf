"""Methods, registered by name (see `base.register`)."""
from egm.methods import ebm, triangle, vae  # noqa: F401
from egm.methods.base import METHODS, make_method, register  # noqa: F401

"""Methods, registered by name (see contract.py for the contract and the registry)."""
from egm.methods import abp, classifier, coopnets, ebm, srinf, triangle, vae  # noqa: F401
from egm.methods.contract import (CAPABILITIES, METHODS, DataSpec, Method, Phase,  # noqa: F401
                                  generative_methods, has_capability, make_method, register)

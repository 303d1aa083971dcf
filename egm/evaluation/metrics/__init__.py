"""The built-in metrics; importing this package registers them (order = run order)."""
from egm.evaluation.metrics import basic, feature_space, task, figures  # noqa: F401
from egm.evaluation.metrics import proposals, completion, texture  # noqa: F401

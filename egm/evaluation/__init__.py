"""Evaluation: 2-D density metrics and PNG figures."""

from egm.evaluation.density import density_from_energy
from egm.evaluation.density import energy_on_grid
from egm.evaluation.density import grid_points
from egm.evaluation.density import histogram_density
from egm.evaluation.density import kl_divergence
from egm.evaluation.density import total_variation
from egm.evaluation.density import true_density
from egm.figures.images import image_grid
from egm.figures.images import save_image_grid
from egm.figures.images import save_points_png

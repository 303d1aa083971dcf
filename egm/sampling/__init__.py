"""Langevin samplers (unadjusted and MH-adjusted) and their schedules."""

from egm.sampling import schedules
from egm.sampling.langevin import LangevinInfo
from egm.sampling.langevin import LangevinState
from egm.sampling.langevin import init_state
from egm.sampling.langevin import langevin
from egm.sampling.langevin import langevin_kernel
from egm.sampling.mala import mala
from egm.sampling.mala import mala_kernel
from egm.sampling.posterior import latent_posterior_energy

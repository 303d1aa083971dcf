"""Langevin samplers, unadjusted (`langevin`) and MH-adjusted (`mala`).

One convention for both samplers and both kernels:

  langevin|mala(energy_fn, x0, key, *, n_steps, step_size, noise_scale=None,
                temperature=None, clip=None, stop_gradient=False,
                remat=False, record_every=None) -> (x, LangevinInfo)
  langevin_kernel|mala_kernel(energy_fn, *, step_size, noise_scale=None,
                              temperature=None, clip=None)
      -> kernel(state, key) -> (state, StepInfo)

- Order: what is sampled, where from, the randomness; the rest is keyword-only.
  BlackJAX and NumPyro put the key first; here energy_fn leads so that
  functools.partial(langevin, energy_fn) is the sampler of one model, jittable
  in (x0, key), and a kernel's (state, key) is lax.scan's (carry, x), so a
  kernel is a scan body as it is.
- Shapes: x0 is (B, *event_shape), B chains with at least one axis each (one
  2-D point is (1, 2)); energy_fn maps (B, ...) to (B,).
- Defaults: temperature None is 1; noise_scale None is sqrt(2 * temperature *
  step_size), Langevin on exp(-E / temperature). langevin takes one of the two
  (its target temperature is noise_scale**2 / (2 * step_size)); mala takes
  both (target and proposal).
- clip=(lo, hi): langevin clamps each step; mala rejects proposals outside the
  box, exact MH for exp(-E / T) on the box.
- Info: per step batch means (energy, grad_norm, acceptance_rate, each
  (n_steps,)); per chain final_state (energy (B,)), chain_acceptance_rate and
  decision_log_prob (B,); with record_every=k the trajectory (n_steps // k +
  1, B, ...), the positions at steps 0, k, 2k, ...
- Gradients are pathwise through every step. Through mala they hold each
  accept/reject decision fixed; `score_corrected_loss` adds the missing term.

Modules: core (state, info, scan), ula (langevin), metropolis (mala),
posterior (latent_posterior_energy, posterior_langevin: the z-space sampler of
every latent-variable method), schedules.
"""

from egm.sampling import schedules
from egm.sampling.core import LangevinInfo
from egm.sampling.core import LangevinState
from egm.sampling.core import StepInfo
from egm.sampling.core import init_state
from egm.sampling.core import sum_per_example
from egm.sampling.metropolis import adapt_step_size
from egm.sampling.metropolis import mala
from egm.sampling.metropolis import mala_kernel
from egm.sampling.metropolis import score_corrected_loss
from egm.sampling.posterior import delta_steps
from egm.sampling.posterior import latent_posterior_energy
from egm.sampling.posterior import posterior_langevin
from egm.sampling.posterior import warm_start
from egm.sampling.ula import langevin
from egm.sampling.ula import langevin_kernel
from egm.sampling.ula import langevin_trajectory

__all__ = [
    'LangevinInfo', 'LangevinState', 'StepInfo', 'adapt_step_size',
    'delta_steps', 'init_state', 'langevin', 'langevin_kernel',
    'langevin_trajectory', 'latent_posterior_energy', 'mala', 'mala_kernel',
    'posterior_langevin', 'schedules', 'score_corrected_loss',
    'sum_per_example', 'warm_start',
]

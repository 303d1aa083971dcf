"""Metropolis-adjusted Langevin (MALA): Langevin proposals with an MH test.

The proposal is x' = x - step_size * dE/dx + noise_scale * eps; each chain
accepts with probability min(1, exp((E(x) - E(x')) / T + log q(x | x') -
log q(x' | x))) using the exact Gaussian proposal densities, so the chain
targets exp(-E / T) at temperature T (default 1) for any step size and noise
scale (the default noise scale sqrt(2 * T * step_size) is standard MALA on
E / T). With clip=(lo, hi) a proposal outside the box is rejected, which is
exact MH for exp(-E / T) restricted to the box (a clamped proposal would
break detailed balance). `adapt_step_size` tunes the step on a pilot run.

Gradients are pathwise: each accept/reject decision is held fixed, so
jax.grad differentiates the accepted moves but not how the acceptance
probabilities depend on the parameters. That misses a term of d E[loss]:
`score_corrected_loss` adds it, from info.decision_log_prob.
"""

import jax
import jax.numpy as jnp
from jax import lax

from egm.errors import EgmError
from egm.sampling import core
from egm.sampling import schedules

_NOISE_REASON = ('The Metropolis-Hastings test divides by the proposal noise, '
                 'so pass values > 0 (a decaying schedule should end at a '
                 'small positive number).')


def mala_kernel(energy_fn, *, step_size, noise_scale=None, temperature=None,
                clip=None):
  """One MH-adjusted step on exp(-E / temperature): kernel(state, key) ->
  (state, StepInfo).

  This step's scalars, as in `mala`. StepInfo holds each chain's acceptance
  probability min(1, ratio), its decision, and the log-probability of that
  decision, log p or log(1 - p), differentiable in the parameters.
  """
  temperature = 1.0 if temperature is None else temperature
  if noise_scale is None:
    noise_scale = core.default_noise(step_size, temperature)
  clip = core.check_clip(clip)

  def kernel(state, key):
    noise_key, accept_key = jax.random.split(key)
    x = state.position
    noise = jax.random.normal(noise_key, x.shape, x.dtype)
    proposal = core.init_state(
        energy_fn, x - step_size * state.grad + noise_scale * noise)
    # log q(x' | x) = -|eps|^2 / 2 and log q(x | x'), constants dropped.
    log_forward = -0.5 * core.sum_per_example(jnp.square(noise))
    backward = x - proposal.position + step_size * proposal.grad
    log_backward = -core.sum_per_example(jnp.square(backward)) / (
        2 * jnp.square(noise_scale))
    log_ratio = ((state.energy - proposal.energy) / temperature + log_backward
                 - log_forward)
    valid = ~jnp.isnan(log_ratio)
    if clip is not None:
      inside = (proposal.position >= clip[0]) & (proposal.position <= clip[1])
      valid &= jnp.all(inside.reshape(len(x), -1), axis=1)
    log_accept = jnp.minimum(jnp.where(valid, log_ratio, -jnp.inf), 0)
    uniform = jax.random.uniform(accept_key, log_ratio.shape, log_ratio.dtype)
    accepted = jnp.log(uniform) < log_accept
    # log(1 - p) is taken only on a rejection, where p < 1; the inner where
    # keeps its gradient finite on acceptances (p may be 1 there).
    log_reject = jnp.log(-jnp.expm1(jnp.where(accepted, -1.0, log_accept)))
    info = core.StepInfo(jnp.exp(log_accept), accepted,
                         jnp.where(accepted, log_accept, log_reject))

    def select(new, old):
      return jnp.where(
          accepted.reshape(accepted.shape + (1,) * (new.ndim - 1)), new, old)

    return jax.tree.map(select, proposal, state), info

  return kernel


def mala(energy_fn, x0, key, *, n_steps, step_size, noise_scale=None,
         temperature=None, clip=None, stop_gradient=False, remat=False,
         record_every=None):
  """Runs n_steps of MALA on exp(-E / temperature) from x0 (B, ...).

  The arguments are those of `langevin`: temperature (default 1) is a
  positive scalar or an (n_steps,) schedule, noise_scale (> 0) defaults to
  sqrt(2 * temperature * step_size) at each step, and with clip=(lo, hi)
  proposals leaving the box are rejected (x0 should lie inside it). Returns
  (position (B, ...), LangevinInfo); info.acceptance_rate is the mean
  acceptance probability per step. The gradient is pathwise (module
  docstring; `score_corrected_loss` adds the accept/reject term).
  """
  n_steps = schedules.check_n_steps(n_steps)
  per_step = core.chain_schedules(x0, n_steps, step_size, noise_scale,
                                  temperature, positive_noise=_NOISE_REASON)
  make_kernel = lambda h, s, t: mala_kernel(
      energy_fn, step_size=h, noise_scale=s, temperature=t, clip=clip)
  return core.run_chain(energy_fn, make_kernel, x0, key, per_step, n_steps,
                        stop_gradient=stop_gradient, remat=remat,
                        record_every=record_every)


def score_corrected_loss(losses, decision_log_prob):
  """Per-chain losses (B,) whose gradient counts the MH decisions too.

  The value is `losses`; the gradient adds (L_i - b_i) * d
  decision_log_prob_i, the score-function term that the pathwise gradient
  through `mala` leaves out, with the baseline b_i the mean loss of the other
  chains. Unbiased for d E[L] when the chains are independent (energy_fn
  treats examples separately); its variance grows with n_steps. Pass
  info.decision_log_prob (B,) of the chain the losses come from.
  """
  if jnp.ndim(losses) != 1 or jnp.shape(losses) != jnp.shape(
      decision_log_prob) or len(losses) < 2:
    raise EgmError(
        f'score_corrected_loss needs one loss per chain, shape (B,) with B >= '
        f'2 matching info.decision_log_prob {jnp.shape(decision_log_prob)}, '
        f'got losses of shape {jnp.shape(losses)}. Reduce the loss over the '
        f'non-batch axes only (the baseline of each chain is the mean loss '
        f'of the others).')
  baseline = (jnp.sum(losses) - losses) / (len(losses) - 1)
  score = decision_log_prob - lax.stop_gradient(decision_log_prob)
  return losses + lax.stop_gradient(losses - baseline) * score


def adapt_step_size(energy_fn, x0, key, *, n_steps, step_size,
                    target_acceptance, temperature=None, clip=None, rate=1.0):
  """A MALA step size whose mean acceptance on exp(-E / T) is near the target.

  Runs an n_steps pilot chain from x0 (B, ...) with noise sqrt(2 * T * h),
  starting at h = step_size and moving log h by rate * (acceptance -
  target_acceptance) after each step (Robbins-Monro; acceptance is the batch
  mean of min(1, ratio)); returns the geometric mean of h over the pilot's
  second half, a () array. temperature (default 1) is a positive scalar;
  clip as in `mala`. No gradients flow to x0 or to parameters closed over by
  energy_fn.
  """
  n_steps = schedules.check_n_steps(n_steps)
  if not 0 < target_acceptance < 1:
    raise EgmError(f'target_acceptance is {target_acceptance}: a mean '
                   'acceptance probability strictly between 0 and 1 (e.g. '
                   '0.57, optimal for MALA).')
  step_size, _, temperature = core.chain_schedules(
      x0, 1, step_size, None, temperature, positive_noise=_NOISE_REASON)

  def body(carry, key):
    state, log_h = carry
    kernel = mala_kernel(energy_fn, step_size=jnp.exp(log_h),
                         temperature=temperature[0], clip=clip)
    state, info = kernel(state, key)
    log_h = log_h + rate * (jnp.mean(info.acceptance_prob) - target_acceptance)
    return (state, log_h), log_h

  start = (core.init_state(energy_fn, lax.stop_gradient(x0)),
           jnp.log(step_size[0]))
  _, log_h = lax.scan(body, start, jax.random.split(key, n_steps))
  return lax.stop_gradient(jnp.exp(jnp.mean(log_h[n_steps // 2:])))

"""Short-run inference with a learned step size (Nijkamp, Pang, Han, Zhou, Zhu, Wu, ECCV 2020,
arXiv 1912.01909): a multi-layer latent generator learned without an inference network.

Model: z = (z_1 ... z_L), every layer z_l ~ N(0, I) independently, x = g_θ(z) + ε,
ε ~ N(0, σ²I) (σ = `model.sigma`; g: egm/nets/hierarchical.py, layer dims
`srinf.latent_dims`, top first). The latent is one flat vector, so with
U(z) = ‖mask·(x − g(z))‖²/(2σ²) + ‖z‖²/2 = −log p(x, z) + const one update is

  1. short-run inference: K steps z_t = z_{t−1} − S_t ∇U(z_{t−1}) + √(2 S_t)·ε_t from
     z_0 ~ N(0, I) (non-persistent: a fresh chain from the prior at every visit), where
     S_t = δ_t²/2 per coordinate (δ is the step of z ← z − δ²/2·∇U + δ·ε, as in abp);
  2. learning: θ descends mean ‖mask·(x − g_θ(z_K))‖²/(2σ²) at the inferred z_K (held
     fixed), the complete-data −log p(x, z_K) up to terms free of θ;
  3. the step size δ (one scalar, one per latent layer or one per step:
     `srinf.step_size_param`) descends the objective below through the unrolled chain, θ
     held fixed, with its own Adam (`srinf.optim.step_size`), on every `srinf.step_size_every`-th
     update (the others skip the chain's second-order backward pass). It lives in the state as its
     own network `state['step_size'] = {'params': {'log_delta', 'reverse'?}, 'opt_state'}`.

The step-size objective (what it is). The step should minimise KL(q_K(z|x) ‖ p(z|x)),
q_K the law of the chain's last state; its entropy term is intractable. We minimise the
auxiliary-variable bound of Salimans, Kingma & Welling (ICML 2015, "MCMC and variational
inference: bridging the gap") over the whole path z_{0:K}:

  B = E_q[ log q_0(z_0) + Σ_t log f_t(z_t|z_{t−1}) − Σ_t log r_t(z_{t−1}|z_t) − log p(x, z_K) ]

with the forward kernel f_t(z_t|z_{t−1}) = N(z_{t−1} − S_t∇U(z_{t−1}), 2S_t) (the chain
itself) and a reverse kernel r_t(z_{t−1}|z_t) = N(a_t·z_t − b_t·S_t∇U(z_t), 2c_t·S_t).
With the noise reparameterised, log f_t − log r_t = ½Σ log c_t − ½‖ε_t‖² +
Σ u_t²/(4 c_t S_t), u_t = z_{t−1} − a_t z_t + b_t S_t∇U(z_t) (the log S_t of the two
normalisers cancel), so B is an expectation over (z_0, ε_{1:K}) of terms differentiable in
δ; one chain per example gives an unbiased estimate of B and of its gradient.

Why it is a valid objective for the step: for any step and any reverse kernel,
B + log p(x) = KL(q(z_{0:K}|x) ‖ p(z_K|x)·Π_t r_t(z_{t−1}|z_t))
             = KL(q_K ‖ p(z|x)) + E_{q_K} KL(q(z_{0:K−1}|z_K) ‖ r(z_{0:K−1}|z_K)) ≥ KL(q_K ‖ p(z|x)),
and log p(x) does not depend on the step (θ is held fixed), so B is an upper bound on the
KL up to a step-free constant; its minimiser in δ is that of the KL whenever the second
term (the reverse kernel's mismatch with the chain's own reversal) does not depend on δ.
The logged `kl_bound` is B per example with all constants (nats), an upper bound on
−log p(x) + KL(q_K ‖ p(z|x)) (so also on −log p(x): an ELBO-like number for the model).

What it ignores (and the reverse kernel). The mismatch term is what the bound cannot see:
the chain's reversal given z_K remembers that z_0 came from the prior. With the reverse
kernel of the same form as the forward one (a = b = c = 1, `srinf.reverse_kernel='fixed'`)
the reverse chain is roughly the p-reversal of the dynamics; were the chain exactly
reversible with respect to p, B would equal KL(q_0 ‖ p) − log p(x) at every step. The bound
then stays loose, and the step dependence it keeps comes from the discretisation bias of
unadjusted Langevin, which pushes δ towards larger steps, nearer the stability limit.
`srinf.reverse_kernel='learned'` (default) makes (a_t, b_t, log c_t) per step and latent
layer variational parameters of the same bound (Salimans et al. learn r too; any values
keep B a bound), minimised jointly with δ: r can then pull the reverse path back towards
the prior, and the bound becomes much tighter. In a linear-Gaussian model where q_K, B and
the exact KL are closed-form (tests/test_srinf.py; the numbers are in docs/methods/srinf.md)
the same-form bound's minimiser overshoots the exact KL's step and the learned-r bound's
undershoots it slightly (the isotropic per-layer r matches the chain's reversal less well for
larger steps); the learned step lands at the bound's minimiser. What B ignores is exactly
that mismatch term;
θ is never trained on B (it learns from the complete-data likelihood at z_K, as in the
paper), and B's gradient does not reach θ.

At test time `infer` runs `srinf.test_steps` (0: K) steps from the prior with egm's
`langevin` at the learned step (past step K a per-step schedule keeps its last step; a
per-layer step is a per-coordinate preconditioner, run as plain Langevin on z/√S);
`reconstruct` decodes them and `complete` fills the unobserved pixels. `sample` is g(z),
z ~ N(0, I).
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import Method, register
from egm.methods.watch import Watch
from egm.nets import Networks, make_networks
from egm.nets.hierarchical import check_fits, parse_latent_dims
from egm.sampling import delta_steps, init_state, posterior_langevin

STEP_SIZE_PARAMS = ('scalar', 'per_layer', 'per_step')
REVERSE_KERNELS = ('learned', 'fixed')


def check_config(hp, sigma, x_shape) -> tuple[int, ...]:
  """Raises EgmError naming each `config.srinf` key (and model.sigma) that cannot work;
  returns the latent layer dims."""
  problems = []
  try:
    dims = parse_latent_dims(hp.latent_dims, 'srinf.latent_dims')
    check_fits(dims, x_shape, 'srinf.latent_dims')
  except EgmError as e:
    raise EgmError(f'Bad srinf settings: {e}') from None
  if isinstance(hp.n_steps, bool) or int(hp.n_steps) != hp.n_steps or hp.n_steps < 1:
    problems.append(f'srinf.n_steps is {hp.n_steps}: short-run inference needs a whole number '
                    'of steps >= 1 (e.g. 25)')
  if isinstance(hp.test_steps, bool) or int(hp.test_steps) != hp.test_steps or hp.test_steps < 0:
    problems.append(f'srinf.test_steps is {hp.test_steps}: give a whole number of steps >= 1, '
                    'or 0 for srinf.n_steps')
  if not hp.step_size > 0:
    problems.append(f'srinf.step_size is {hp.step_size}: the initial Langevin step δ must be > 0 '
                    '(e.g. 0.05)')
  every = hp.step_size_every
  if isinstance(every, bool) or int(every) != every or every < 1:
    problems.append(f'srinf.step_size_every is {every}: give a whole number of updates >= 1 '
                    '(1 learns the step on every update)')
  if hp.step_size_param not in STEP_SIZE_PARAMS:
    problems.append(f'srinf.step_size_param is {hp.step_size_param!r}: choose one of '
                    f'{", ".join(STEP_SIZE_PARAMS)}')
  if hp.reverse_kernel not in REVERSE_KERNELS:
    problems.append(f'srinf.reverse_kernel is {hp.reverse_kernel!r}: choose one of '
                    f'{", ".join(REVERSE_KERNELS)}')
  if not sigma > 0:
    problems.append(f'model.sigma is {sigma}: the observation noise std must be > 0 (e.g. 0.15)')
  if problems:
    raise EgmError('Bad srinf settings: ' + '; '.join(problems) +
                   '. Fix them with --config.srinf.<key>=<value> (or --config.model.sigma).')
  return dims


class ShortRun(NamedTuple):
  """The end of a batch of short-run chains and what the bound needs of their path."""
  position: jax.Array  # (B, D) z_K.
  energy: jax.Array  # (B,) U(z_K).
  log_ratio: jax.Array  # (B,) Σ_t log f_t(z_t|z_{t−1}) − log r_t(z_{t−1}|z_t).
  energy_steps: jax.Array  # (K,) batch mean of U after each step.
  grad_norm_steps: jax.Array  # (K,) batch mean of ‖∇U‖ after each step.


def short_run(energy_fn, z0, key, delta, reverse=None, remat=False) -> ShortRun:
  """K Langevin steps z_t = z_{t−1} − S_t∇U(z_{t−1}) + δ_t·ε_t, S_t = δ_t²/2, with the
  per-step log f_t − log r_t of the auxiliary bound (module docstring); a lax.scan.

  z0: (B, D) flat latents. delta: (K, D) the step of each step and coordinate (traced:
  gradients flow through the whole chain to it, and to `reverse`). reverse: None for the
  same-form reverse kernel (a = b = c = 1) or (a, b, log_c), each (K, D). `remat` recomputes
  each step in the backward pass (memory flat in K). The noise is drawn as egm's `langevin`
  draws it (split(key, K), one normal per step), so a scalar δ gives its chain exactly.
  """
  n_steps = delta.shape[0]
  if reverse is None:
    ones = jnp.ones_like(delta)
    reverse = (ones, ones, jnp.zeros_like(delta))

  def body(state, xs):
    step_key, delta_t, a_t, b_t, log_c_t = xs
    s_t = 0.5 * jnp.square(delta_t)
    eps = jax.random.normal(step_key, state.position.shape, state.position.dtype)
    z = state.position - s_t * state.grad + delta_t * eps
    new = init_state(energy_fn, z)
    u = state.position - a_t * z + b_t * s_t * new.grad
    log_ratio = (0.5 * jnp.sum(log_c_t) - 0.5 * jnp.sum(jnp.square(eps), axis=-1)
                 + jnp.sum(jnp.square(u) / (4.0 * s_t * jnp.exp(log_c_t)), axis=-1))
    grad_norm = jnp.sqrt(jnp.sum(jnp.square(lax.stop_gradient(new.grad)), axis=-1))
    return new, (log_ratio, jnp.mean(lax.stop_gradient(new.energy)), jnp.mean(grad_norm))

  if remat:
    body = jax.checkpoint(body)
  keys = jax.random.split(key, n_steps)
  state, (log_ratio, energies, grad_norms) = lax.scan(
      body, init_state(energy_fn, z0), (keys, delta) + tuple(reverse))
  return ShortRun(state.position, state.energy, jnp.sum(log_ratio, axis=0), energies,
                  grad_norms)


@register('srinf')
class Srinf(base.InferredLatentGenerator, Method):
  """Multi-layer latent generator; short-run Langevin inference from the prior with a
  step size learned by minimising an upper bound on KL(q_K ‖ posterior)."""
  watch = Watch(grad_norms=('chain_grad_norm_last',),
                knobs={'non_finite': ('srinf.optim.generator.lr', 'srinf.optim.step_size.lr',
                                      'srinf.step_size'),
                       'grad_norm': ('srinf.step_size', 'srinf.optim.step_size.lr',
                                     'model.sigma')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.latent_dims = '64,64,64,96,128'  # dims of the latent layers, top first
    section.n_steps = 25  # K Langevin steps of inference from the prior per update
    section.step_size = 0.05  # initial δ in z <- z - δ²/2·dU/dz + δ·eps
    section.step_size_param = 'scalar'  # 'scalar' | 'per_layer' | 'per_step': learned δ's
    section.learn_step_size = True  # False: δ stays at step_size (the reference's fixed step)
    section.step_size_every = 1  # learn δ on every N-th update (the others run the chain only)
    section.reverse_kernel = 'learned'  # 'learned' | 'fixed': reverse kernel of the bound
    section.remat = False  # recompute each chain step in the step-size gradient (memory)
    section.test_steps = 0  # steps of inference at test time; 0: n_steps
    section.test_noise = True  # False: gradient descent on U at test time (towards the mode)
    # step_size: Adam of log δ and of the reverse kernel's parameters, constant lr, no clip
    section.optim = optim.network_settings(
        generator={'lr': 3e-4},
        step_size={'lr': 1e-3, 'b1': 0.9, 'decay_per_epoch': 1.0, 'grad_clip': 0.0})
    return section

  @staticmethod
  def smoke(section):
    section.n_steps = min(section.n_steps, 3)
    section.test_steps = min(section.test_steps, 5)
    try:
      dims = parse_latent_dims(section.latent_dims)
    except EgmError:
      return  # left for the method to report with the key's name
    section.latent_dims = ','.join(str(min(d, 4)) for d in dims[:3])  # top 3 layers fit

  def setup(self):
    self.dims = check_config(self.hp, self.model_config.sigma, self.data.x_shape)
    model = ml_collections.ConfigDict(self.model_config.to_dict())
    model.latent_dims = ','.join(str(d) for d in self.dims)
    nets = make_networks(model, self.data.x_shape, 'hierarchical_generator')
    self.nets = Networks({'generator': nets.hierarchical_generator}, nets.z_shape)
    self.sigma = self.model_config.sigma
    self.n_steps = int(self.hp.n_steps)
    self.test_steps = int(self.hp.test_steps) or self.n_steps
    self.opt = self.optimizer('generator')
    self.step_opt = self.optimizer('step_size')

  # -- the step size ------------------------------------------------------------------------

  def init_step_params(self) -> dict:
    """log δ of shape () | (L,) | (K,) at `srinf.step_size`; the reverse kernel's (a, b, log c)
    per step and layer (K, L) at the same-form kernel (1, 1, 0) when learned."""
    shape = {'scalar': (), 'per_layer': (len(self.dims),),
             'per_step': (self.n_steps,)}[self.hp.step_size_param]
    params = {'log_delta': jnp.full(shape, math.log(self.hp.step_size), jnp.float32)}
    if self.hp.reverse_kernel == 'learned':
      kl = (self.n_steps, len(self.dims))
      params['reverse'] = {'a': jnp.ones(kl, jnp.float32), 'b': jnp.ones(kl, jnp.float32),
                           'log_c': jnp.zeros(kl, jnp.float32)}
    return params

  def _per_coordinate(self, per_layer):
    """(..., L) -> (..., D): each layer's value repeated over its latent coordinates."""
    return jnp.concatenate([jnp.repeat(per_layer[..., i:i + 1], d, axis=-1)
                            for i, d in enumerate(self.dims)], axis=-1)

  def step_sizes(self, params, n_steps=None):
    """δ per step and coordinate, (n_steps, D); past the learned K steps the last one repeats."""
    n_steps = n_steps or self.n_steps
    delta = jnp.exp(params['log_delta'])
    d = sum(self.dims)
    if self.hp.step_size_param == 'scalar':
      return jnp.broadcast_to(delta, (n_steps, d))
    if self.hp.step_size_param == 'per_layer':
      return jnp.broadcast_to(self._per_coordinate(delta), (n_steps, d))
    index = jnp.minimum(jnp.arange(n_steps), self.n_steps - 1)
    return jnp.broadcast_to(delta[index][:, None], (n_steps, d))

  def reverse_kernel(self, params):
    """(a, b, log_c) each (K, D), or None for the same-form reverse kernel."""
    if 'reverse' not in params:
      return None
    r = params['reverse']
    return tuple(self._per_coordinate(r[k]) for k in ('a', 'b', 'log_c'))

  # -- the model ----------------------------------------------------------------------------

  def init(self, key, example_batch):
    z = jnp.zeros((2,) + self.nets.z_shape, jnp.float32)
    params = self.init_step_params()
    return {
        'generator': base.init_network(self.nets.generator, self.opt, key, z),
        'step_size': {'params': params, 'opt_state': self.step_opt.init(params)},
        'step': jnp.zeros((), jnp.int32),
    }

  def chain(self, state, x, z0, key, step_params=None, mask=None) -> ShortRun:
    """The training chain: K steps from z0 at the step of `step_params` (default: the
    state's), differentiable in the step parameters."""
    params = state['step_size']['params'] if step_params is None else step_params
    return short_run(self.posterior_energy(state, x, mask), z0, key, self.step_sizes(params),
                     self.reverse_kernel(params), remat=self.hp.remat)

  def bound(self, run: ShortRun, z0, x, mask=None):
    """The auxiliary bound per example (B,) with all constants, in nats."""
    if mask is None:
      observed = jnp.full((x.shape[0],), math.prod(x.shape[1:]), jnp.float32)
    else:
      observed = jnp.sum(jnp.broadcast_to(mask, x.shape).reshape(x.shape[0], -1), axis=1)
    log_q0 = -0.5 * jnp.sum(jnp.square(z0), axis=-1)  # + D/2·log 2π, cancels with −log p(z_K)
    return (run.energy + run.log_ratio + log_q0
            + 0.5 * observed * math.log(2 * math.pi * self.sigma ** 2))

  def update(self, state, batch, key):
    k_prior, k_chain = jax.random.split(key)
    x, mask = batch['x'], batch.get('mask')
    z0 = jax.random.normal(k_prior, (x.shape[0],) + self.nets.z_shape, jnp.float32)

    def step_loss(step_params):
      run = self.chain(state, x, z0, k_chain, step_params, mask)
      return jnp.mean(self.bound(run, z0, x, mask)), run

    def learn(step_state):
      (kl_bound, run), grads = jax.value_and_grad(step_loss, has_aux=True)(step_state['params'])
      updated = base.apply_gradients(step_state, grads, self.step_opt)
      finite = jnp.isfinite(kl_bound)  # a diverged chain leaves the step where it was
      return kl_bound, run, jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                         updated, step_state)

    def keep(step_state):
      kl_bound, run = step_loss(step_state['params'])
      return kl_bound, run, step_state

    step_state = state['step_size']
    every = int(self.hp.step_size_every)
    if not self.hp.learn_step_size:
      kl_bound, run, step_state = keep(step_state)
    elif every == 1:
      kl_bound, run, step_state = learn(step_state)
    else:  # only the chosen branch runs: the other updates pay for the chain alone
      kl_bound, run, step_state = lax.cond(state['step'] % every == 0, learn, keep, step_state)
    z = lax.stop_gradient(run.position)
    generator, rec, x_gen = self.learn_generator(state, x, z, mask)
    new_state = {
        'generator': generator,
        'step_size': step_state,
        'step': state['step'] + 1,
    }
    metrics = {
        'loss': rec,
        'rec_mse': base.masked_mse(x, x_gen, mask),
        'kl_bound': kl_bound,
        'posterior_energy_last': run.energy_steps[-1],
        'chain_grad_norm_first': run.grad_norm_steps[0],
        'chain_grad_norm_last': run.grad_norm_steps[-1],
    }
    metrics.update(self.step_size_metrics(state['step_size']['params']))
    return new_state, metrics

  def step_size_metrics(self, params) -> dict:
    """The step(s) δ the update used, as scalars."""
    delta = jnp.exp(params['log_delta'])
    if self.hp.step_size_param == 'scalar':
      return {'step_size': delta}
    if self.hp.step_size_param == 'per_layer':
      return {f'step_size_layer{i}': delta[i] for i in range(len(self.dims))}
    return {'step_size_first': delta[0], 'step_size_mean': jnp.mean(delta),
            'step_size_last': delta[-1]}

  # -- capabilities -------------------------------------------------------------------------

  def run_inference(self, state, x, z0, key, n_steps=None, noise=True, mask=None):
    """n_steps (default K) of Langevin from z0 at the learned step, with egm's posterior
    sampler (noise=False: no ε); returns (z, LangevinInfo). Gradients do not flow."""
    n_steps = n_steps or self.n_steps
    delta = self.step_sizes(state['step_size']['params'], n_steps)
    chain = dict(sigma=self.sigma, n_steps=n_steps, mask=mask)
    generate = lambda z: self.generate(state, z)
    if self.hp.step_size_param != 'per_layer':  # one δ per step, all coordinates alike
      return posterior_langevin(generate, x, z0, key, **chain, **delta_steps(delta[:, 0], noise))
    # Per-layer δ: Langevin preconditioned by S = δ²/2 per coordinate (step 1, noise √2).
    return posterior_langevin(generate, x, z0, key, **chain, step_size=1.0,
                              noise_scale=math.sqrt(2.0) if noise else 0.0,
                              preconditioner=0.5 * jnp.square(delta[0]))

  def infer(self, state, x, key, mask=None):
    """Latents of x (B, ...) by `srinf.test_steps` steps from the prior: (B, D)."""
    k_prior, k_chain = jax.random.split(key)
    z0 = jax.random.normal(k_prior, (x.shape[0],) + self.nets.z_shape, jnp.float32)
    z, _ = self.run_inference(state, x, z0, k_chain, self.test_steps, self.hp.test_noise,
                              mask)
    return z

"""What methods share: per-network state, losses, and two common mixins.

The contract itself (the abstract base, capabilities, the registry) is in contract.py.
Per network the state holds `{'params', 'opt_state', 'batch_stats'?}`.
"""
import math

import jax
import jax.numpy as jnp
import optax

from egm.errors import EgmError
from egm.methods.contract import Method
from egm.methods.watch import gradient_norms
from egm.sampling import latent_posterior_energy


def init_network(module, optimizer, key, *inputs, **kwargs) -> dict:
  """Initialises one network's `{'params', 'opt_state', 'batch_stats'?}`."""
  variables = module.init(key, *inputs, **kwargs)
  net = {'params': variables['params'], 'opt_state': optimizer.init(variables['params'])}
  if 'batch_stats' in variables:
    net['batch_stats'] = variables['batch_stats']
  return net


def apply_network(module, net: dict, *inputs, train: bool = False, **kwargs):
  """Applies a network; in training mode also returns its updated batch statistics.

  Returns `out` in eval mode and `(out, new_batch_stats)` in training mode
  (`new_batch_stats` is None for networks without BatchNorm).
  """
  variables = {'params': net['params']}
  if 'batch_stats' not in net:
    out = module.apply(variables, *inputs, **kwargs)
    return (out, None) if train else out
  variables['batch_stats'] = net['batch_stats']
  if not train:
    return module.apply(variables, *inputs, train=False, **kwargs)
  out, updates = module.apply(variables, *inputs, train=True, mutable=['batch_stats'], **kwargs)
  return out, updates['batch_stats']


def apply_gradients(net: dict, grads, optimizer, batch_stats=None) -> dict:
  """One optimiser step on a network's state; replaces its batch statistics if given."""
  updates, opt_state = optimizer.update(grads, net['opt_state'], net['params'])
  new = dict(net, params=optax.apply_updates(net['params'], updates), opt_state=opt_state)
  if batch_stats is not None:
    new['batch_stats'] = batch_stats
  return new


def with_params(net: dict, params) -> dict:
  """`net` with its parameters replaced (used to differentiate w.r.t. them)."""
  return dict(net, params=params)


def with_batch_stats(net: dict, batch_stats) -> dict:
  """`net` with its running BatchNorm statistics replaced; `net` itself when None."""
  return net if batch_stats is None else dict(net, batch_stats=batch_stats)


def gaussian_reconstruction(x, x_rec, sigma: float, mask=None):
  """Per-example ‖mask·(x − x_rec)‖²/(2σ²): (B, ...) -> (B,)."""
  sq = jnp.square(x - x_rec)
  if mask is not None:
    sq = sq * mask
  return jnp.sum(sq.reshape(sq.shape[0], -1), axis=1) / (2.0 * sigma ** 2)


def masked_mse(x, x_rec, mask=None):
  """Mean squared error per observed pixel (scalar), in [-1, 1] units."""
  sq = jnp.square(x - x_rec)
  if mask is None:
    return jnp.mean(sq)
  mask = jnp.broadcast_to(mask, sq.shape)
  return jnp.sum(sq * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def gaussian_kl(mu, logvar):
  """KL(N(mu, exp(logvar)) ‖ N(0, I)) per example: (B, z) -> (B,)."""
  return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)


def gaussian_neg_log_density(z, mu, logvar):
  """−log N(z; mu, exp(logvar)) per example: (B, z) -> (B,)."""
  return 0.5 * jnp.sum(jnp.square(z - mu) * jnp.exp(-logvar) + logvar + math.log(2 * math.pi),
                       axis=-1)


LOSS_FORMS = ('gaussian', 'reference_code')


def reconstruction_and_kl(loss_form: str, x, x_rec, mu, logvar, sigma: float, mask=None):
  """Per-example reconstruction and KL terms of an encoder-decoder pair: (B,), (B,).

  'gaussian': Σ_pixels mask·(x − x_rec)²/(2σ²) and the KL summed over z (the negative ELBO
  of x = G(z) + N(0, σ²)); 'reference_code': Σ_pixels mask·(x − x_rec)² (weight 1, σ unused)
  and the KL averaged over z (1/z_dim of the sum), as the divergence triangle's code has it.
  """
  kl = gaussian_kl(mu, logvar)
  if loss_form == 'reference_code':  # 2·Σ/(2·1²) = Σ (x − x_rec)²
    return 2.0 * gaussian_reconstruction(x, x_rec, 1.0, mask), kl / mu.shape[-1]
  return gaussian_reconstruction(x, x_rec, sigma, mask), kl


def check_loss_form(loss_form: str, key: str) -> None:
  """Raises EgmError unless `loss_form` is one of LOSS_FORMS (`key` names the config key)."""
  if loss_form not in LOSS_FORMS:
    raise EgmError(f'config.{key} is {loss_form!r}; it must be one of {", ".join(LOSS_FORMS)} '
                   '(egm/methods/base.py: reconstruction_and_kl).')


def observed_input(x, mask=None):
  """The zero-filled image and its mask as one more channel: (B, H, W, C) -> (B, H, W, C+1).

  mask: (B, H, W, 1), 1 = observed; None means every pixel is observed (a channel of ones),
  so one network serves complete and incomplete images alike.
  """
  mask = jnp.ones(x.shape[:-1] + (1,), x.dtype) if mask is None else mask.astype(x.dtype)
  mask = jnp.broadcast_to(mask, x.shape[:-1] + (1,))
  return jnp.concatenate([x * mask, mask], axis=-1)


def reparameterize(key, mu, logvar):
  """z = mu + exp(logvar/2)·ε, ε ~ N(0, I)."""
  return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)


class JointLossMethod(Method):
  """A method whose networks (the keys of `self.opt`) descend one joint scalar.

  Subclasses define `self.opt: dict[name, optax transform]` and
  `loss(params, state, batch, key) -> (scalar, (metrics, {name: new batch stats}))`,
  written so that the gradient with respect to each network's parameters is
  that network's own loss.
  """

  def update(self, state, batch, key):
    params = {name: state[name]['params'] for name in self.opt}
    grads, (metrics, stats) = jax.grad(self.loss, has_aux=True)(params, state, batch, key)
    metrics = {**metrics, **gradient_norms(grads)}
    new_state = {name: apply_gradients(state[name], grads[name], self.opt[name], stats.get(name))
                 for name in self.opt}
    new_state['step'] = state['step'] + 1
    return new_state, metrics


class LatentGenerator:
  """Sampling, inference and reconstruction for methods with `self.nets.generator` and
  `self.nets.encoder` (amortized: `infer` is the encoder's mean, the key is unused).

  The encoder sees only observed pixels, in training and evaluation alike: for images its
  input is `encoder_input(x, mask)`, C + 1 channels (see `observed_input`)."""
  capabilities = frozenset({'infer', 'generate', 'reconstruct'})

  def sample(self, state, key, n):
    z = jax.random.normal(key, (n,) + self.nets.z_shape, jnp.float32)
    return apply_network(self.nets.generator, state['generator'], z)

  def encoder_input(self, x, mask=None):
    """What the encoder sees of x: images (B, H, W, C) -> [x·mask, mask] (B, H, W, C+1), see
    `observed_input`; points (B, D), which have no masks, as they are."""
    return observed_input(x, mask) if self.data.is_image else x

  def infer(self, state, x, key, mask=None):
    """The posterior mean of z: (B, ...) -> (B, z_dim); `mask` (1 = observed) for incomplete x."""
    del key
    mu, _ = apply_network(self.nets.encoder, state['encoder'], self.encoder_input(x, mask))
    return mu

  def generate(self, state, z):
    """G(z): (B, z_dim) -> (B, ...)."""
    return apply_network(self.nets.generator, state['generator'], z)

  def reconstruct(self, state, batch, key):
    """G(infer(x)) for batch {'x', 'mask'?}: (B, ...)."""
    return self.generate(state, self.infer(state, batch['x'], key, batch.get('mask')))


class InferredLatentGenerator:
  """What generators whose latents are inferred by Langevin dynamics share (abp, srinf):
  needs `self.nets.generator`, `self.nets.z_shape`, `self.sigma` and an `infer(state, x, key,
  mask=None)` of the method's own.

  The generator carries no batch statistics (`GENERATOR_OPTIONS`): the chains differentiate
  it, so g(z)_i must depend on z_i alone, in training as in evaluation; then inferring one
  example never depends on the other rows of its batch."""
  capabilities = frozenset({'infer', 'generate', 'reconstruct', 'complete'})
  GENERATOR_OPTIONS = {'generator': {'batch_norm': False}}

  def posterior_energy(self, state, x, mask=None):
    """U(z) = ‖mask·(x − g(z))‖²/(2σ²) + ‖z‖²/2: (B, *z_shape) -> (B,)."""
    return latent_posterior_energy(lambda z: self.generate(state, z), x, self.sigma, mask)

  def learn_generator(self, state, x, z, mask=None):
    """Learning back-prop: one optimiser step of θ on mean ‖mask·(x − g_θ(z))‖²/(2σ²) at the
    inferred z (held fixed). Returns (new generator state, rec loss, g(z) (B, ...))."""
    def loss(params):
      net = with_params(state['generator'], params)
      x_gen, stats = apply_network(self.nets.generator, net, z, train=True)
      return jnp.mean(gaussian_reconstruction(x, x_gen, self.sigma, mask)), (stats, x_gen)

    (rec, (stats, x_gen)), grads = jax.value_and_grad(loss, has_aux=True)(
        state['generator']['params'])
    return apply_gradients(state['generator'], grads, self.opt, stats), rec, x_gen

  def sample(self, state, key, n):
    """g(z), z ~ N(0, I): (n, ...)."""
    return self.generate(state, jax.random.normal(key, (n,) + self.nets.z_shape, jnp.float32))

  def generate(self, state, z):
    """g(z): (B, *z_shape) -> (B, ...)."""
    return apply_network(self.nets.generator, state['generator'], z)

  def reconstruct(self, state, batch, key):
    """g(infer(x)) for batch {'x', 'mask'?}, inferred on the observed pixels only."""
    return self.generate(state, self.infer(state, batch['x'], key, batch.get('mask')))

  def complete(self, state, x, mask, key):
    """x with its mask-0 pixels replaced by g(z), z inferred from the mask-1 pixels."""
    if mask.shape[0] != x.shape[0]:
      raise EgmError(f'mask has {mask.shape[0]} rows for {x.shape[0]} images: give one per image.')
    return mask * x + (1.0 - mask) * self.reconstruct(state, {'x': x, 'mask': mask}, key)

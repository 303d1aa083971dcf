"""Two small methods that exercise the platform's seams in tests (registered on import).

- `row_means` keeps per-example state: for each training example a running mean of the
  (dequantized) values it was seen with, read and written for the batch's rows inside the
  jitted update, plus a global parameter pulled towards those means with key-dependent noise.
- `two_resolutions` trains in two phases (4x4 then 8x8 images, different batch sizes); its
  parameter image is upsampled between phases and faded in over the second phase's start.
"""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from egm.methods import Method, Phase, contract, register


def _adam_state(params, optimizer):
  return {'params': params, 'opt_state': optimizer.init(params)}


@register('row_means')
class RowMeans(Method):
  """theta (D,) descends mean‖theta − m_i‖² + noise, m_i the running mean of example i."""

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.noise = 0.01  # std of the key-dependent jitter added to theta's gradient
    return section

  def setup(self):
    self.opt = optax.sgd(0.1)

  def init(self, key, example_batch):
    del key
    rows, dim = self.data.per_example_rows, example_batch['x'].shape[-1]
    return {'model': _adam_state(jnp.zeros((dim,)), self.opt),
            'per_example': {'mean': jnp.zeros((rows, dim)), 'count': jnp.zeros((rows,))},
            'step': jnp.zeros((), jnp.int32)}

  def update(self, state, batch, key):
    rows, x = batch['index'], batch['x']
    table = state['per_example']
    count = table['count'][rows] + 1.0
    mean = table['mean'][rows] + (x - table['mean'][rows]) / count[:, None]
    loss_fn = lambda theta: jnp.mean(jnp.sum(jnp.square(theta - mean), -1))
    loss, grads = jax.value_and_grad(loss_fn)(state['model']['params'])
    grads = grads + self.hp.noise * jax.random.normal(key, grads.shape)
    updates, opt_state = self.opt.update(grads, state['model']['opt_state'])
    model = {'params': optax.apply_updates(state['model']['params'], updates),
             'opt_state': opt_state}
    per_example = {'mean': table['mean'].at[rows].set(mean),
                   'count': table['count'].at[rows].set(count)}
    return ({'model': model, 'per_example': per_example, 'step': state['step'] + 1},
            {'loss': loss, 'seen': jnp.sum(per_example['count'])})

  def sample(self, state, key, n):
    return state['model']['params'] + jax.random.normal(key, (n, self.data.x_shape[0]))


@register('two_resolutions')
class TwoResolutions(Method):
  """A parameter image w (S, S, C) fitted to the data at 4x4, then (upsampled) at 8x8."""
  traces: dict = {}  # phase index -> number of traces of its update (for the tests)

  def setup(self):
    self.opt = optax.sgd(0.5)

  def phases(self, num_steps):
    del num_steps
    return (Phase('coarse', num_steps=4, batch_size=8, image_size=4),
            Phase('fine', batch_size=16, fade_in_steps=3))

  def init(self, key, example_batch):
    del key, example_batch
    return {'model': _adam_state(jnp.zeros((4, 4, self.data.x_shape[-1])), self.opt),
            'step': jnp.zeros((), jnp.int32)}

  def enter_phase(self, state, phase_index, key):
    del phase_index, key
    w = jnp.repeat(jnp.repeat(state['model']['params'], 2, axis=0), 2, axis=1)
    return dict(state, model=_adam_state(w, self.opt))

  def update_fn(self, phase_index):
    phases = self.phases(None)
    size = phases[phase_index].image_size or self.data.x_shape[0]

    def update(state, batch, key):
      del key
      TwoResolutions.traces[phase_index] = TwoResolutions.traces.get(phase_index, 0) + 1
      chex.assert_shape(batch['x'], (None, size, size, self.data.x_shape[-1]))
      alpha = contract.fade_in(phases, phase_index, state['step'])
      loss_fn = lambda w: jnp.mean(jnp.square(batch['x'] - alpha * w))
      loss, grads = jax.value_and_grad(loss_fn)(state['model']['params'])
      updates, opt_state = self.opt.update(grads, state['model']['opt_state'])
      model = {'params': optax.apply_updates(state['model']['params'], updates),
               'opt_state': opt_state}
      return {'model': model, 'step': state['step'] + 1}, {'loss': loss, 'fade_in': alpha}
    return update

  def update(self, state, batch, key):
    return self.update_fn(1)(state, batch, key)

  def sample(self, state, key, n):
    del key
    w = state['model']['params']
    return jnp.broadcast_to(w, (n,) + w.shape)

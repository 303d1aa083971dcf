"""A throwaway method, registered on import from tests/ alone (no file under egm/ names it):
two networks, `critic` and `scout`, whose optimiser settings live in its own section."""
import jax
import jax.numpy as jnp
import ml_collections

from egm.methods import Method, base, optim, register


@register('critic_and_scout')
class CriticAndScout(Method):
  """Two parameter vectors w (critic) and v (scout) descending w·mean(x) + v·mean(x): each
  gradient is mean(x), so Adam's first step moves every coordinate by its network's lr."""

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.optim = optim.network_settings(critic={'lr': 0.01}, scout={})
    return section

  def setup(self):
    self.opt = {name: self.optimizer(name) for name in ('critic', 'scout')}

  def init(self, key, example_batch):
    del key
    dim = example_batch['x'].shape[-1]
    return {**{name: {'params': jnp.zeros((dim,)), 'opt_state': opt.init(jnp.zeros((dim,)))}
               for name, opt in self.opt.items()},
            'step': jnp.zeros((), jnp.int32)}

  def update(self, state, batch, key):
    del key
    mean = jnp.mean(batch['x'], axis=0)
    params = {name: state[name]['params'] for name in self.opt}
    loss, grads = jax.value_and_grad(lambda p: sum(jnp.dot(w, mean) for w in p.values()))(params)
    new = {name: base.apply_gradients(state[name], grads[name], self.opt[name])
           for name in self.opt}
    return {**new, 'step': state['step'] + 1}, {'loss': loss}

  def sample(self, state, key, n):
    return state['critic']['params'] + jax.random.normal(key, (n,) + self.data.x_shape)

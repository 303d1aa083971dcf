"""CoopNets: the revision's stationary law, the objectives, trajectories, clamping, masked revision
and completion, texture data and nets."""
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest

from configs import (coopnets_cifar, coopnets_fashion, coopnets_texture, coopnets_toy2d,
                     triangle_digits)
from egm import data
from egm.data.dataset import LoadOptions
from egm.errors import EgmError
from egm.evaluation import texture_stats
from egm.evaluation.metrics import completion, figures
from egm.evaluation.registry import METRICS
from egm.methods import DataSpec, base, make_method
from egm.methods.contract import has_capability
from egm.run import experiment
from egm.sampling import langevin, latent_posterior_energy


def _method(config):
  shape = (8, 8, 1) if config.model.architecture == 'texture' else (2,)
  return make_method(config, DataSpec.of(shape))


def test_revision_samples_exp_minus_energy_at_unit_temperature():
  """With E(x) = |x|²/(2s²), δ-Langevin revision y ← y − δ²/2·∇E + δε reaches N(0, s²)·(1+O(δ²))."""
  config = coopnets_toy2d.get_config()
  config.coopnets.n_steps = 1_000  # the mean decays as 0.99^t from 3: 1e-4 left
  config.coopnets.step_size = 0.1
  method = _method(config)
  s = 0.7
  method.energy = lambda state, x: 0.5 * jnp.sum(x ** 2, axis=1) / s ** 2
  x0 = jnp.full((20_000, 2), 3.0)
  y, _ = jax.jit(method.revise)({}, x0, jax.random.key(0))
  # The discretised chain's exact stationary variance: δ²/(1 − (1 − δ²/(2s²))²).
  a = 1 - 0.5 * 0.1 ** 2 / s ** 2
  exact = 0.1 ** 2 / (1 - a ** 2)
  var = np.var(np.asarray(y), axis=0)
  se = exact * np.sqrt(2 / 20_000)
  np.testing.assert_array_less(np.abs(np.mean(np.asarray(y), axis=0)), 4 * np.sqrt(exact / 20_000))
  np.testing.assert_array_less(np.abs(var - exact), 4 * se)


def test_masked_revision_and_completion_keep_observed_pixels():
  config = coopnets_texture.get_config('smoke')
  config.data.image_size = 8
  method = _method(config)
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1), minval=-1, maxval=1)
  state = method.init(jax.random.key(2), {'x': x})
  mask = jnp.ones((4, 8, 8, 1)).at[:, 2:6, 2:6].set(0.0)
  revised, _ = jax.jit(lambda s, x, m: method.revise(s, x, jax.random.key(3), mask=m))(
      state, x, mask)
  completed = jax.jit(method.complete)(state, x, mask, jax.random.key(4))
  for out in (revised, completed):
    np.testing.assert_array_equal(np.asarray(out * mask), np.asarray(x * mask))
  assert float(jnp.max(jnp.abs((completed - x) * (1 - mask)))) > 0


def test_completion_averages_per_image_completions():
  """The n-sample fill of image i is the mean of rows i·n … i·n+n−1 of a one-sample run
  on each image repeated n times (the same random draws)."""
  config = coopnets_texture.get_config('smoke')
  config.data.image_size = 8
  config.coopnets.completion_samples = 3
  averaged = _method(config)
  config = config.copy_and_resolve_references()  # the methods keep their config
  config.coopnets.completion_samples = 1
  single = _method(config)
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1), minval=-1, maxval=1)
  state = single.init(jax.random.key(2), {'x': x})
  mask = jnp.ones((2, 8, 8, 1)).at[:, 2:6, 2:6].set(0.0)
  key = jax.random.key(4)
  fill = jax.jit(averaged.complete)(state, x, mask, key)
  rows = jax.jit(single.complete)(state, jnp.repeat(x, 3, axis=0), jnp.repeat(mask, 3, axis=0),
                                  key)
  assert fill.shape == x.shape
  np.testing.assert_allclose(np.asarray(fill), np.asarray(rows).reshape(2, 3, 8, 8, 1).mean(1),
                             rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(rows[0] - rows[1]))) > 0  # the samples differ


def test_texture_nets_synthesise_larger_than_the_crop():
  config = coopnets_texture.get_config('smoke')
  config.data.image_size = 8
  method = _method(config)
  x = jnp.zeros((2, 8, 8, 1))
  state = method.init(jax.random.key(0), {'x': x})
  big = jax.jit(method.sample, static_argnums=(2, 3))(state, jax.random.key(1), 3, 24)
  assert big.shape == (3, 24, 24, 1)
  assert jax.jit(method.energy)(state, big).shape == (3,)
  with pytest.raises(EgmError, match='divisible by 4'):
    method.generator_sample(state, jax.random.key(1), 1, 10)


def test_texture_descriptor_depth_sets_its_receptive_field():
  """Moving pixel (0, 0) changes ∇E only at pixels that share a score's patch with it:
  within 12 px for 2 stages, across the whole 32-px crop for 4 (48-px patches)."""
  config = coopnets_texture.get_config('smoke')
  x = jnp.zeros((1, 32, 32, 1))
  moved = x.at[0, 0, 0, 0].set(1.0)
  for stages, reaches_far_corner in ((2, False), (4, True)):
    config.model.texture_energy_stages = stages
    method = make_method(config, DataSpec.of((32, 32, 1)))
    state = method.init(jax.random.key(0), {'x': x})
    grad = jax.grad(lambda y: jnp.sum(method.energy(state, y)))
    change = jnp.abs(grad(moved) - grad(x))[0, 20:, 20:]
    assert (float(jnp.max(change)) > 1e-6) == reaches_far_corner
  config.model.texture_energy_stages = 6
  with pytest.raises(EgmError, match='texture_energy_stages'):
    make_method(config, DataSpec.of((32, 32, 1)))


@pytest.mark.parametrize('key,value,match', [
    ('n_steps', 0, 'coopnets.n_steps'),
    ('step_size', -0.1, 'coopnets.step_size'),
    ('infer_steps', -1, 'coopnets.infer_steps'),
    ('completion_infer_steps', 0, 'coopnets.completion_infer_steps'),
    ('completion_samples', 0, 'coopnets.completion_samples'),
])
def test_bad_settings_name_the_key(key, value, match):
  config = coopnets_toy2d.get_config()
  config.coopnets[key] = value
  with pytest.raises(EgmError, match=match):
    _method(config)


def test_texture_source_crops_and_holds_out_the_right_quarter(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (40, 80), np.uint8)
  path = tmp_path / 'tex.png'
  PIL.Image.fromarray(image).save(path)
  dataset = data.load_dataset(_data_config(f'texture:{path}', 16))
  assert dataset.train.x.shape[1:] == (16, 16, 1) and dataset.test.x.shape[1:] == (16, 16, 1)
  np.testing.assert_array_equal(dataset.exemplar[..., 0], image)
  left, right = image[:, :60], image[:, 60:]
  crop = dataset.train.x[0, :, :, 0]
  assert any(np.array_equal(left[t:t + 16, l:l + 16], crop)
             for t in range(25) for l in range(45))
  test_crop = dataset.test.x[0, :, :, 0]
  assert any(np.array_equal(right[t:t + 16, l:l + 16], test_crop)
             for t in range(25) for l in range(5))


def test_texture_smaller_than_the_crop_is_a_clear_error(tmp_path):
  path = tmp_path / 'small.png'
  PIL.Image.fromarray(np.zeros((20, 20), np.uint8)).save(path)
  with pytest.raises(EgmError, match='too small for crops of 32x32'):
    data.load_dataset(_data_config(f'texture:{path}', 32))
  with pytest.raises(EgmError, match='Unknown texture'):
    data.load_dataset(_data_config('texture:marble', 32))


def test_bundled_textures_load_at_the_configured_size():
  dataset = data.load_dataset(_data_config('texture:brick', 32, texture_size=128))
  assert dataset.exemplar.shape == (128, 128, 1)
  assert dataset.name == 'texture_brick'


def test_the_colour_exemplar_is_a_crop_of_a_scikit_image_photo():
  config = _data_config('texture:hubble', 32, texture_size=128)
  config.channels = 3
  dataset = data.load_dataset(config)
  assert dataset.exemplar.shape == (128, 128, 3) and dataset.name == 'texture_hubble'
  assert dataset.train.get(np.arange(2))['x'].shape == (2, 32, 32, 3)
  colour = dataset.exemplar.astype(float)
  assert np.abs(colour[..., 0] - colour[..., 2]).mean() > 1  # not grey


def test_texture_distance_tells_textures_apart():
  """Two halves of one texture are closer than two different textures; identical images give 0."""
  def load(name):
    options = LoadOptions(channels=1, texture_size=128)
    return data.texture.exemplar_image(name, options)[..., 0] / 127.5 - 1
  brick, grass = load('brick'), load('grass')
  assert texture_stats.texture_distance(brick, brick) == 0
  same = texture_stats.texture_distance(grass[:, 64:], grass[:, :64])
  other = texture_stats.texture_distance(brick[:, 64:], grass[:, :64])
  assert same < 0.5 * other


def test_smoke_texture_config_builds_with_its_synthesis_size():
  config = coopnets_texture.get_config('smoke')
  exp = experiment.build(config)
  assert exp.dataset.exemplar is not None
  assert exp.method.nets.z_shape[0] * 4 == config.data.image_size


def _data_config(source, size, texture_size=0):
  config = coopnets_texture.get_config().data
  config.source = source
  config.image_size = size
  config.texture_size = texture_size
  return config


def test_hidden_mse_counts_only_the_hidden_pixels():
  x = np.zeros((2, 4, 4, 1))
  filled = np.ones((2, 4, 4, 1))
  mask = np.ones((2, 4, 4, 1))
  mask[0, :2, :2] = 0  # 4 hidden pixels, each off by 1
  filled[1] = 5.0  # observed everywhere: no error counted
  assert completion.hidden_mse(x, filled, mask) == (4.0, 4.0)


def test_update_gradients_are_the_two_objectives_with_constant_revisions(monkeypatch):
  """The descriptor's applied gradient is mean ∇E(data) − mean ∇E(x̃) + the energy_l2 term,
  the generator's that of mean ‖x̃ − G(z')‖²/(2σ_g²) with x̃ (and z') held fixed; x̃ and z'
  reproduced here from the same keys. A flipped sign, or gradients through the revision or
  the inference (measurably different here), would fail it."""
  config = coopnets_toy2d.get_config('smoke')
  config.coopnets.update(n_steps=4, step_size=0.3, infer_steps=2, infer_step_size=0.3,
                         energy_l2=0.1)
  hp, sigma = config.coopnets, config.model.sigma
  method = make_method(config, DataSpec.of((2,), global_batch=16))
  batch = {'x': jax.random.normal(jax.random.key(0), (16, 2))}
  state = jax.jit(method.init)(jax.random.key(1), batch)
  monkeypatch.setattr(base, 'apply_gradients', lambda net, grads, *_: dict(net, grads=grads))
  key = jax.random.key(2)
  new_state = jax.jit(method.update)(state, batch, key)[0]

  k_z, k_revise, k_infer = jax.random.split(key, 3)
  z0 = jax.random.normal(k_z, (16,) + method.nets.z_shape)
  energy = lambda p, x: base.apply_network(method.nets.energy, {'params': p}, x)
  generate = lambda p, z: base.apply_network(method.nets.generator, {'params': p}, z,
                                             train=True)[0]

  def chains(e, g):
    x = langevin(lambda y: energy(e, y), generate(g, z0), k_revise, n_steps=hp.n_steps,
                 step_size=hp.step_size ** 2 / 2, noise_scale=hp.step_size)[0]
    posterior = latent_posterior_energy(lambda z: generate(g, z), x, sigma)
    z = langevin(posterior, z0, k_infer, n_steps=hp.infer_steps,
                 step_size=hp.infer_step_size ** 2 / 2, noise_scale=hp.infer_step_size)[0]
    return x, z

  def descriptor(p, x):
    e = energy(p, jnp.concatenate([batch['x'], x]))
    return jnp.mean(e[:16]) - jnp.mean(e[16:]) + hp.energy_l2 * jnp.mean(jnp.square(e))

  def generator(p, x, z):
    return jnp.mean(jnp.sum(jnp.square(x - generate(p, z)), -1) / (2 * sigma ** 2))

  @jax.jit
  def gradients(e, g):
    x, z = chains(e, g)
    fixed = jax.grad(descriptor)(e, x), jax.grad(generator)(g, x, z)
    through = (jax.grad(lambda p: descriptor(p, chains(p, g)[0]))(e),
               jax.grad(lambda p: generator(p, *chains(e, p)))(g))
    return fixed, through

  params = state['energy']['params'], state['generator']['params']
  expected, through = gradients(*params)
  applied = new_state['energy']['grads'], new_state['generator']['grads']
  for name, got, want, other in zip(('descriptor', 'generator'), applied, expected, through):
    chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-6, custom_message=name)
    difference = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), want, other)
    assert max(jax.tree.leaves(difference)) > 1e-3, name


def test_trajectory_is_the_proposal_then_the_revision():
  """Frame 0 is G(z), the last frame is `sample` with the same key."""
  config = coopnets_toy2d.get_config('smoke')
  config.coopnets.n_steps = 4
  method = _method(config)
  state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 2))})
  key = jax.random.key(1)
  frames = jax.jit(method.trajectory, static_argnums=(2, 3))(state, key, 3, 2)
  assert frames.shape == (3, 3, 2)
  proposals = jax.jit(method.generator_sample, static_argnums=2)(state, jax.random.split(key)[0], 3)
  np.testing.assert_allclose(frames[0], proposals, rtol=1e-5, atol=1e-6)
  samples = jax.jit(method.sample, static_argnums=2)(state, key, 3)
  np.testing.assert_allclose(frames[-1], samples, rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(frames[1] - frames[0]))) > 0


def test_trajectories_figure_shows_the_method_chain_and_needs_one():
  """The figure's frames are the method's own `trajectory`; the triangle (an energy but no
  chain) gets no figure."""
  config = coopnets_toy2d.get_config('smoke')
  method = _method(config)
  state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 2))})
  image_data = types.SimpleNamespace(kind='image', test=None)
  ctx = types.SimpleNamespace(method=method, state=state, config=config, dataset=image_data)
  key = jax.random.key(1)
  np.testing.assert_allclose(figures._chain_frames(ctx, key, 3, 2),
                             jax.jit(method.trajectory, static_argnums=(2, 3))(state, key, 3, 2))
  needs = METRICS['trajectories'].needs
  assert needs.unmet(ctx) is None
  triangle = triangle_digits.get_config('smoke')
  ctx.method, ctx.config = make_method(triangle, DataSpec.of((8, 8, 1))), triangle
  assert has_capability(ctx.method, 'energy')
  assert needs.unmet(ctx) == "method 'triangle' has no trajectory"


def test_clamp_is_a_switch_for_image_revisions():
  """E = −3·Σx pulls every pixel beyond 1: revisions stay in [-1, 1] only when clamped;
  the CIFAR reference config does not clamp, the configs tuned with the clamp keep it."""
  for clamp in (False, True):
    config = coopnets_fashion.get_config('smoke')
    config.coopnets.update(clamp=clamp, step_size=1.0)  # steps of +1.5 per pixel
    method = make_method(config, DataSpec.of((28, 28, 1)))
    method.energy = lambda state, x: -3.0 * jnp.sum(x.reshape(len(x), -1), -1)
    revised, _ = method.revise({}, jnp.zeros((2, 28, 28, 1)), jax.random.key(0))
    assert (float(jnp.max(jnp.abs(revised))) <= 1.0) == clamp
  assert not coopnets_cifar.get_config().coopnets.clamp
  assert coopnets_fashion.get_config().coopnets.clamp
  assert coopnets_texture.get_config().coopnets.clamp

"""PyTorch updates of egm's methods on the networks of torch_nets.py, built from egm configs.

`make(config, x, channels_last)` returns a call running one update on the NCHW batch x (on
x's device) and returning its losses (a dict of 0-d tensors). Each update follows the method's
losses in egm/methods: one backward per separate objective (E's contrastive loss apart from
the G+I objective of the triangle; E apart from G in coopnets), Langevin chains with the
network parameters frozen (input gradients only), Adam(b1, b2) per network with the config's
global-norm clip per network. Not reproduced: the per-epoch learning-rate decay (a scalar).
"""
import math

import torch
from torch import nn

from benchmarks import torch_nets
from egm.methods import optim
from egm.nets.hierarchical import parse_latent_dims


class Net:
  """A network with its Adam and global-norm clip; `step()` applies and clears its grads."""

  def __init__(self, module, settings: optim.Settings):
    self.module = module
    self.params = list(module.parameters())
    self.adam = torch.optim.Adam(self.params, lr=settings.lr, betas=(settings.b1, settings.b2),
                                 weight_decay=settings.weight_decay)
    self.clip = settings.grad_clip

  def step(self):
    if self.clip > 0:
      nn.utils.clip_grad_norm_(self.params, self.clip)
    self.adam.step()
    self.adam.zero_grad(set_to_none=True)


class Frozen:
  """Context: the network's parameters need no gradient and its BatchNorm running
  statistics stay as they are (batch statistics still normalise, as egm's train-mode
  passes whose statistics are dropped)."""

  def __init__(self, module):
    self.module = module
    self.norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

  def __enter__(self):
    for p in self.module.parameters():
      p.requires_grad_(False)
    for m in self.norms:
      m.momentum = 0.0

  def __exit__(self, *exc):
    for p in self.module.parameters():
      p.requires_grad_(True)
    for m in self.norms:
      m.momentum = 0.1


def _gradient(energy_fn, x, create_graph=False):
  """(E(x) (B,), dE/dx) for a batch of chain states x (autograd on, whatever the context)."""
  with torch.enable_grad():
    if not x.requires_grad:
      x = x.detach().requires_grad_(True)
    e = energy_fn(x)
    (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
  return e, grad


def langevin(energy_fn, x, n_steps: int, step_size: float, noise_scale: float, clip=None):
  """egm's unadjusted chain without gradients: the energy and gradient at x0, then per step
  x <- x - step_size·grad + noise_scale·eps (clamped to `clip`), a new energy and gradient."""
  _, grad = _gradient(energy_fn, x)
  for _ in range(n_steps):
    x = x.detach() - step_size * grad + noise_scale * torch.randn_like(x)
    if clip is not None:
      x = x.clamp(*clip)
    _, grad = _gradient(energy_fn, x)
  return x.detach()


def _sum(x):
  return x.flatten(1).sum(1)


def gaussian_kl(mu, logvar):
  return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def posterior_energy(generator, x, sigma: float):
  """U(z) = ‖x − g(z)‖²/(2σ²) + ‖z‖²/2: (B, D) -> (B,)."""
  return lambda z: _sum((x - generator(z)).square()) / (2 * sigma ** 2) + 0.5 * _sum(z.square())


def settings(config, name: str) -> optim.Settings:
  """Network `name`'s optimiser settings in `config`, as egm resolves them."""
  return optim.settings(config[config.method], config.optim, name)


def networks(config, channels_last: bool, *names, batch_norm: bool = True) -> list:
  """[Net] of the image networks `names` ('energy', 'generator', 'encoder') of `config`, each
  with its optimiser settings, in the chosen memory format; `batch_norm=False`: a generator
  without BatchNorm (as egm's chains need)."""
  m = config.model
  channels, size = config.data.channels, config.data.image_size
  build = {
      'energy': lambda: torch_nets.Energy(channels, size, m.width, m.energy_reference_std),
      'generator': lambda: torch_nets.Generator(m.z_dim, channels, size, m.width, channels_last,
                                                batch_norm),
      'encoder': lambda: torch_nets.Encoder(channels + 1, size, m.width, m.z_dim)}
  return [Net(build[name]().to(memory_format=torch_nets.memory_format(channels_last)),
              settings(config, name)) for name in names]


def triangle(config, x, channels_last):
  """The divergence triangle: E on mean E(x) − mean E(G(z)) (its own backward); G and I on
  rec + KL + λ·(−log q(z|G(z))) + w·E(G(z)) (one backward into G's and I's parameters)."""
  m, hp = config.model, config.triangle
  fmt = torch_nets.memory_format(channels_last)
  energy, gen, enc = networks(config, channels_last, 'energy', 'generator', 'encoder')
  reference = hp.loss_form == 'reference_code'
  ones = torch.ones_like(x[:, :1])
  encoder_input = lambda images: torch.cat([images, ones], 1).contiguous(memory_format=fmt)

  def step():
    b = x.shape[0]
    z = torch.randn(b, m.z_dim, device=x.device)
    mu, logvar = enc.module(encoder_input(x))
    z_inf = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    x_gen = gen.module(z)
    x_rec = gen.module(z_inf)
    mu_gen, logvar_gen = enc.module(encoder_input(x_gen))
    sq = _sum((x - x_rec).square())
    rec = sq if reference else sq / (2 * m.sigma ** 2)
    kl = gaussian_kl(mu, logvar) / (m.z_dim if reference else 1)
    neg_log_q = 0.5 * ((z - mu_gen).square() * (-logvar_gen).exp() + logvar_gen
                       + math.log(2 * math.pi)).sum(-1)
    e_both = energy.module(torch.cat([x, x_gen.detach()]))
    contrastive = e_both[:b].mean() - e_both[b:].mean()
    e_loss = contrastive + hp.energy_l2 * e_both.square().mean()
    gi_loss = (rec.mean() + kl.mean() + hp.entropy_weight * neg_log_q.mean()
               + hp.energy_weight * energy.module(x_gen).mean())
    e_loss.backward(inputs=energy.params)
    gi_loss.backward(inputs=gen.params + enc.params)
    for net in (energy, gen, enc):
      net.step()
    return {'rec': rec.mean().detach(), 'kl': kl.mean().detach(), 'contrastive': contrastive.detach()}

  return step


def vae(config, x, channels_last):
  """The VAE: mean ‖x − G(z)‖²/(2σ²) + KL(q(z|x) ‖ N(0, I)), one backward."""
  m = config.model
  gen, enc = networks(config, channels_last, 'generator', 'encoder')
  x_in = torch.cat([x, torch.ones_like(x[:, :1])], 1).contiguous(
      memory_format=torch_nets.memory_format(channels_last))

  def step():
    mu, logvar = enc.module(x_in)
    x_rec = gen.module(mu + (0.5 * logvar).exp() * torch.randn_like(mu))
    rec = _sum((x - x_rec).square()) / (2 * m.sigma ** 2)
    kl = gaussian_kl(mu, logvar)
    (rec + kl).mean().backward()
    gen.step()
    enc.step()
    return {'rec': rec.mean().detach(), 'kl': kl.mean().detach()}

  return step


def ebm(config, x, channels_last):
  """Short-run EBM: K Langevin steps from uniform noise, then mean E(x + noise) − mean E(x_neg)."""
  hp = config.ebm
  (energy,) = networks(config, channels_last, 'energy')
  clip = (-1.0, 1.0) if hp.clamp else None

  def step():
    x_data = x + hp.data_noise * torch.randn_like(x)
    x0 = torch.empty_like(x).uniform_(hp.init_low, hp.init_high)
    with Frozen(energy.module):
      x_neg = langevin(energy.module, x0, hp.n_steps, hp.step_size, hp.noise_scale, clip)
    e = energy.module(torch.cat([x_data, x_neg]))
    diff = e[:x.shape[0]].mean() - e[x.shape[0]:].mean()
    (diff + hp.energy_l2 * e.square().mean()).backward()
    energy.step()
    return {'loss': diff.detach()}

  return step


def coopnets(config, x, channels_last):
  """CoopNets: G proposes, K descriptor steps y <- y − δ²/2·∇E + δε revise; E descends
  mean E(x) − mean E(x̃), G descends ‖x̃ − G(z)‖²/(2σ_g²); one backward each."""
  m, hp = config.model, config.coopnets
  energy, gen = networks(config, channels_last, 'energy', 'generator')
  clip = (-1.0, 1.0) if hp.clamp else None
  delta = hp.step_size

  def step():
    z = torch.randn(x.shape[0], m.z_dim, device=x.device)
    x_gen = gen.module(z)
    with Frozen(energy.module):
      x_rev = langevin(energy.module, x_gen.detach(), hp.n_steps, 0.5 * delta ** 2, delta, clip)
    e = energy.module(torch.cat([x, x_rev]))
    diff = e[:x.shape[0]].mean() - e[x.shape[0]:].mean()
    (diff + hp.energy_l2 * e.square().mean()).backward()
    g_loss = (_sum((x_rev - x_gen).square()) / (2 * m.sigma ** 2)).mean()
    g_loss.backward()
    energy.step()
    gen.step()
    return {'loss': diff.detach(), 'generator_loss': g_loss.detach()}

  return step


def abp(config, x, channels_last):
  """Alternating back-propagation: K Langevin steps on z (G without BatchNorm, as egm's)
  warm-started from each example's stored latent, then G descends ‖x − G(z)‖²/(2σ²)."""
  m, hp = config.model, config.abp
  (gen,) = networks(config, channels_last, 'generator', batch_norm=False)
  latents = torch.randn(x.shape[0], m.z_dim)
  rows = torch.arange(x.shape[0])
  delta = hp.step_size

  def step():
    with Frozen(gen.module):
      z = langevin(posterior_energy(gen.module, x, m.sigma), latents[rows], hp.n_steps,
                   0.5 * delta ** 2, delta)
    rec = (_sum((x - gen.module(z)).square()) / (2 * m.sigma ** 2)).mean()
    rec.backward()
    gen.step()
    latents[rows] = z
    return {'loss': rec.detach()}

  return step


def srinf(config, x, channels_last):
  """Short-run inference with a learned step: K steps from the prior; on every
  `step_size_every`-th update the auxiliary KL bound is differentiated through them into
  log δ and the reverse kernel (a, b, log c), G frozen (double backward), on the others the
  chain runs alone; then G descends ‖x − G(z_K)‖²/(2σ²)."""
  m, hp = config.model, config.srinf
  if hp.step_size_param != 'scalar' or hp.reverse_kernel != 'learned':
    raise NotImplementedError('the PyTorch srinf update has a scalar step and a learned reverse')
  dims = parse_latent_dims(hp.latent_dims)
  generator = torch_nets.HierarchicalGenerator(dims, config.data.channels, config.data.image_size,
                                               m.width, channels_last)
  gen = Net(generator.to(memory_format=torch_nets.memory_format(channels_last)),
            settings(config, 'generator'))
  k = int(hp.n_steps)
  log_delta = torch.full((), math.log(hp.step_size), requires_grad=True)
  reverse = [torch.full((k, len(dims)), v, requires_grad=True) for v in (1.0, 1.0, 0.0)]
  step_settings = settings(config, 'step_size')
  step_adam = torch.optim.Adam([log_delta] + reverse, lr=step_settings.lr,
                               betas=(step_settings.b1, step_settings.b2))
  sizes = torch.tensor(dims)
  observed = math.prod(x.shape[1:])
  updates = [0]

  def step():
    learn = hp.learn_step_size and updates[0] % int(hp.step_size_every) == 0
    updates[0] += 1
    u_fn = posterior_energy(gen.module, x, m.sigma)
    a, b, log_c = (r.repeat_interleave(sizes, dim=1) for r in reverse)
    z0 = torch.randn(x.shape[0], sum(dims), device=x.device)
    delta = log_delta.exp()
    s = 0.5 * delta ** 2
    with Frozen(gen.module), torch.set_grad_enabled(learn):
      z = z0.requires_grad_(learn)
      _, grad = _gradient(u_fn, z, create_graph=learn)
      log_ratio = 0.0
      for t in range(k):
        eps = torch.randn_like(z)
        z_new = z - s * grad + delta * eps
        energy, grad_new = _gradient(u_fn, z_new, create_graph=learn)
        u = z - a[t] * z_new + b[t] * s * grad_new
        log_ratio = log_ratio + (0.5 * log_c[t].sum() - 0.5 * eps.square().sum(-1)
                                 + (u.square() / (4.0 * s * log_c[t].exp())).sum(-1))
        z, grad = z_new, grad_new
      bound = (energy + log_ratio - 0.5 * z0.square().sum(-1)
               + 0.5 * observed * math.log(2 * math.pi * m.sigma ** 2)).mean()
    if learn:
      bound.backward(inputs=[log_delta] + reverse)
      if torch.isfinite(bound):
        step_adam.step()
      step_adam.zero_grad(set_to_none=True)
    rec = (_sum((x - gen.module(z.detach())).square()) / (2 * m.sigma ** 2)).mean()
    rec.backward()
    gen.step()
    return {'loss': rec.detach(), 'kl_bound': bound.detach()}

  return step


METHODS = {'triangle': triangle, 'vae': vae, 'ebm': ebm, 'coopnets': coopnets, 'abp': abp,
           'srinf': srinf}


def make(config, x, channels_last: bool):
  """One update of `config.method` on the NCHW batch x (B, C, S, S), on x's device: a call
  -> losses (blocking on the CPU; on CUDA the caller synchronises). Networks, optimiser
  state and stored latents are built on that device."""
  torch.manual_seed(config.seed)
  x = x.contiguous(memory_format=torch_nets.memory_format(channels_last))
  with torch.device(x.device):
    return METHODS[config.method](config, x, channels_last)

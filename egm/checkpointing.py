"""Orbax checkpoints of the whole train state, written atomically, restored on start."""
import os

import jax
import orbax.checkpoint as ocp

from egm.errors import EgmError


class Checkpointer:
  """Saves the state pytree under `<workdir>/checkpoints/<step>`; keeps the newest `keep`.

  Orbax writes each checkpoint to a temporary directory and renames it when
  complete, so an interrupted save never replaces a good checkpoint.
  """

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self):
    """The newest complete checkpoint's step, or None."""
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    """The steps of the complete checkpoints, oldest first."""
    return sorted(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Writes `state` at `step` (blocks until it is on disk)."""
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()

  def check_compatible(self, template, step: int) -> None:
    """Raises EgmError naming the arrays whose presence or shape differ between the
    checkpoint of `step` and `template` (a workdir written by another config)."""
    def shapes(tree):
      return {'/'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k))))
                       for k in path): tuple(getattr(leaf, 'shape', ()))
              for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
    metadata = self.manager.item_metadata(step)
    saved, wanted = shapes(getattr(metadata, 'tree', metadata)), shapes(template)
    differences = [f'{name}: checkpoint {saved.get(name, "absent")}, config '
                   f'{wanted.get(name, "absent")}'
                   for name in sorted(set(saved) | set(wanted))
                   if saved.get(name) != wanted.get(name)]
    if differences:
      shown = '; '.join(differences[:6]) + ('; ...' if len(differences) > 6 else '')
      raise EgmError(
          f'The checkpoint of step {step} in {self.directory} was written by another config '
          f'(method, network sizes, latent shapes or the number of training examples differ): '
          f'{shown}. Train in a new --workdir, or use the config the run was trained with '
          '(its config.json).')

  def restore(self, template, step=None):
    """Restores into the structure, shapes and shardings of `template` (a state pytree)."""
    step = self.latest_step() if step is None else step
    self.check_compatible(template, step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return jax.block_until_ready(
        self.manager.restore(step, args=ocp.args.StandardRestore(abstract)))

  def close(self) -> None:
    self.manager.close()

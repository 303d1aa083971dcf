"""Orbax checkpoints of the whole train state, written atomically, restored on start."""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves the state pytree under `<workdir>/checkpoints/<step>`; keeps the newest `keep`.

  Orbax writes each checkpoint to a temporary directory and renames it when
  complete, so an interrupted save never replaces a good checkpoint.
  """

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

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

  def restore(self, template, step=None):
    """Restores into the structure, shapes and shardings of `template` (a state pytree)."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return jax.block_until_ready(
        self.manager.restore(step, args=ocp.args.StandardRestore(abstract)))

  def close(self) -> None:
    self.manager.close()

"""Resuming on another number of processes: record the world size in checkpoints and say what changes.

mmengine resumes a checkpoint on any number of processes: the iteration (and epoch), the optimizer state and the
learning-rate schedulers' state come from the checkpoint, so training continues at the right iteration with the
learning rate of an uninterrupted run (the schedules count iterations, not samples). What changes is the total
batch size (processes x ``batch_size``) and the data order. ``--auto-scale-lr`` does not rescale a resumed run:
the learning rate stays the one scaled for the world size the checkpoint was trained on.

Data order. ``InfiniteSampler`` (iteration-based demo and ImageNet-style configs) draws one seeded sequence of
indices and deals it out round-robin, rank ``r`` of ``W`` taking positions ``r, r + W, ...``; a resumed run skips
``iter`` batches on each rank. Trained ``k`` iterations of batch ``B`` on ``W`` processes, the run has used the
first ``k*B*W`` positions; resumed on ``W'`` processes it starts at position ``k*B*W'``: with fewer processes the
positions ``k*B*W' .. k*B*W`` are trained a second time, with more the positions ``k*B*W .. k*B*W'`` are never
drawn in that pass. ``DefaultSampler`` (epoch-based configs) shuffles every epoch by ``seed + epoch`` whatever the
world size, and a resumed epoch-based run restarts at an epoch boundary, so every epoch still visits each sample
once; only the composition of the batches differs.
"""
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class WorldSizeHook(Hook):
    """Store ``world_size`` and the per-process batch size in the checkpoint's meta; warn when a resumed run uses
    another world size, saying what continues unchanged and what happens to the batch size and the data order."""

    priority = 'VERY_LOW'

    @staticmethod
    def _batch_size(runner):
        loader = getattr(runner, 'train_dataloader', None)
        return getattr(loader, 'batch_size', None)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta['world_size'] = get_world_size()
        meta['batch_size_per_process'] = self._batch_size(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        saved, now = meta.get('world_size'), get_world_size()
        if saved is None or saved == now or 'iter' not in meta:
            return
        batch, saved_batch = self._batch_size(runner), meta.get('batch_size_per_process')
        totals = (f'the total batch size changes from {saved * saved_batch} to {now * batch}'
                  if batch and saved_batch else 'the total batch size changes with the number of processes')
        runner.logger.warning(
            f'resuming a checkpoint trained on {saved} process(es) on {now}: iteration {meta["iter"]}, the optimizer '
            f'state and the learning-rate schedule continue from the checkpoint (--auto-scale-lr does not rescale '
            f'it); {totals}, and the data order differs from an uninterrupted run: an iteration-based run skips '
            f'{meta["iter"]} batches of each new rank\'s share of the sampler\'s sequence, so samples are seen again '
            f'(fewer processes) or left out of this pass (more processes); see mixformer_mm/engine/world_size.py')

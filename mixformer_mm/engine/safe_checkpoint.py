"""A CheckpointHook that removes an outdated checkpoint only after the new one is written.

mmengine's CheckpointHook deletes the oldest checkpoint beyond ``max_keep_ckpts`` *before* it writes the new one,
so with ``max_keep_ckpts=1`` (the demo schedules) a full disk, a crash or a kill during the save leaves no
checkpoint at all. :class:`SafeCheckpointHook` writes first (atomically, see ``reliability.atomic_torch_save``),
then points ``last_checkpoint`` at the new file (also atomically), then removes the outdated files. A failed
write leaves every earlier checkpoint and ``last_checkpoint`` as they were. ``tools/train.py`` uses it in place of
``CheckpointHook`` (same arguments).
"""
import os.path as osp
from collections import deque

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from mixformer_mm.utils.atomic import atomic_path


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):

    def _save_checkpoint_with_step(self, runner, step, meta):
        before = list(getattr(self, 'keep_ckpt_ids', ()))
        previous_last = self.last_ckpt
        kept = before
        if self.max_keep_ckpts > 0 and not (before and before[-1] == step):
            kept = (before + [step])[-self.max_keep_ckpts:]
            self.keep_ckpt_ids = deque(kept, self.max_keep_ckpts)
            # recorded in the checkpoint (message hub) as mmengine records it: the list including this step
            runner.message_hub.update_info('keep_ckpt_ids', list(kept))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                backend_args=self.backend_args, **self.args)
        except BaseException:
            self.last_ckpt = previous_last
            if previous_last is not None:
                runner.message_hub.update_info('last_ckpt', previous_last)
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids = deque(before, self.max_keep_ckpts)
                runner.message_hub.update_info('keep_ckpt_ids', before)
            raise
        if not is_main_process():
            return
        with atomic_path(osp.join(runner.work_dir, 'last_checkpoint')) as tmp, open(tmp, 'w') as f:
            f.write(self.last_ckpt)
        for outdated in before:
            if outdated in kept:
                continue
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)

"""Stop at Slurm's warning signal with a checkpoint of that iteration, and ask to be requeued.

Slurm sends SIGTERM before it kills a job at its time limit or on preemption (or the signal asked for with
``--signal=USR1@90``). :class:`PreemptionHook` turns that signal into a flag; at the end of the iteration being
trained every rank learns whether any rank received it (an all-reduce of the flag), so all stop after the same
iteration. The checkpoint of that iteration is written through the run's CheckpointHook, under its usual name
(``iter_N.pth``) and with ``last_checkpoint`` pointing to it, so ``--resume`` finds it, and ``tools/train.py``
exits with :data:`REQUEUE_EXIT_CODE`. ``tools/slurm_train.sh`` requeues the job on that code, and the requeued job
resumes by itself.

Epoch-based loops cannot resume exactly from the middle of an epoch in mmengine (a resumed epoch starts again at
its first batch), so there the signal is honoured at the end of the current epoch: training continues to the end
of the epoch, ``epoch_N.pth`` is saved, and the run stops.
"""
import atexit
import json
import multiprocessing
import os
import os.path as osp
import signal
import threading
from typing import Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier, is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from mixformer_mm.utils.atomic import atomic_path

#: ``tools/train.py``'s exit code after stopping at a signal with a checkpoint: "requeue me, I resume".
REQUEUE_EXIT_CODE = 124
#: Written into the work dir (rank 0) once the stop checkpoint is saved; ``tools/slurm_train.sh`` requeues when it
#: exists even if the job's exit code was masked (srun reports the highest code of its tasks, and with
#: ``--kill-on-bad-exit`` a rank still shutting down may be killed once another has exited).
PREEMPTED_MARKER = 'preempted.json'


def _kill_blocked_workers(owner: int) -> None:
    """At exit, end the daemonic children (data-loader workers) with SIGKILL: they were forked with the signals
    blocked, so the SIGTERM that multiprocessing's own exit handler sends them would never arrive, and its join would
    wait forever. Registered after multiprocessing's handler, so it runs before it."""
    if os.getpid() != owner:
        return
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
            child.join(timeout=10)


def _signal_of(name: Union[str, int]) -> signal.Signals:
    try:
        if isinstance(name, str):
            return signal.Signals[name if name.startswith('SIG') else f'SIG{name}']
        return signal.Signals(name)
    except (KeyError, ValueError):
        raise ValueError(f'PreemptionHook: unknown signal {name!r} (use names such as SIGTERM, SIGUSR1)') from None


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On ``signals`` (default SIGTERM and SIGUSR1): finish the iteration, save it, stop, request a requeue.

    Slurm signals every process of a job step, the data-loader workers included, and a worker that dies of the
    signal makes the trainer fail before it can save (PyTorch's workers die of SIGTERM sent by anyone but their
    parent). So the trainer's main thread keeps the signals blocked except while an iteration runs: workers are
    forked with the main thread's signal mask, and every worker (training and validation) starts with the signals
    blocked and survives them. The trainer itself still receives them (at the latest when the next iteration
    starts). The handlers are installed and the signals blocked when the hook is built, because the Runner starts
    the training workers of an iteration-based loop while it builds the loop, before any hook runs; the previous
    handlers and mask come back in ``after_run``. A second signal does not interrupt the save; SIGINT (Ctrl-C)
    keeps its usual meaning.

    ``preempted`` is True once training stopped early with a checkpoint (``checkpoint``: its path), which
    ``tools/train.py`` turns into exit code :data:`REQUEUE_EXIT_CODE`. A signal during the last iteration (or the
    last epoch) lets training end normally.
    """

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW): a checkpoint it just wrote is not written again

    def __init__(self, signals: Sequence[Union[str, int]] = ('SIGTERM', 'SIGUSR1')):
        if isinstance(signals, (str, int)):
            signals = [signals]
        self.signals = [_signal_of(s) for s in signals]
        if not self.signals:
            raise ValueError('PreemptionHook: signals is empty')
        self.received: Optional[str] = None
        self.preempted = False
        self.checkpoint: Optional[str] = None
        self._announced = False
        self._owner = os.getpid()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        atexit.register(_kill_blocked_workers, self._owner)
        self._block(True)

    # --- the signal ---------------------------------------------------------------------------------------------
    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._owner:
            return  # a data-loader worker forked from the trainer: the trainer decides when to stop
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            note = f'{name} received: training stops after the current iteration with a checkpoint'
        else:
            note = f'{name} received again: still finishing the iteration and the checkpoint'
        os.write(2, f'[PreemptionHook] pid {os.getpid()}: {note}\n'.encode())  # no logging inside a handler

    def _block(self, block: bool) -> None:
        # the mask of the main thread: the thread that forks the data-loader workers and runs the Python handlers
        if threading.current_thread() is threading.main_thread() and os.getpid() == self._owner:
            signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, self.signals)

    def restore_signal_handlers(self) -> None:
        if os.getpid() == self._owner:
            self._block(False)
            for sig, previous in self._previous.items():
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _any_rank_received(self) -> bool:
        """The same answer on every rank: did any rank receive the signal? (A collective: every rank calls it.)"""
        flag = torch.tensor(1.0 if self.received else 0.0)
        if is_distributed():
            all_reduce(flag, op='max')
        return bool(flag.item() > 0)

    # --- hook points --------------------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        marker = osp.join(runner.work_dir, PREEMPTED_MARKER)
        if is_main_process() and osp.exists(marker):
            os.remove(marker)  # the marker describes the latest run only

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._block(False)  # a signal pending since the last iteration is handled here

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._block(False)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._block(True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._block(True)  # until the next iteration: the data loader may fork workers (validation, a new epoch)
        if self.preempted:
            return
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            if self.received and not self._announced:
                self._announced = True
                left = len(runner.train_loop.dataloader) - batch_idx - 1
                runner.logger.warning(
                    f'{self.received} received at iteration {runner.iter + 1}: this epoch-based loop stops at the end '
                    f'of epoch {runner.epoch + 1} ({left} iterations left), where a checkpoint resumes exactly')
            return
        if not self._any_rank_received() or runner.iter + 1 >= runner.max_iters:
            return
        step = runner.iter + 1
        self._stop(runner, step, dict(epoch=runner.epoch, iter=step), by_epoch=False,
                   where=f'iteration {step}/{runner.max_iters}')

    def after_train_epoch(self, runner) -> None:
        if self.preempted or not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if not self._any_rank_received() or runner.epoch + 1 >= runner.max_epochs:
            return
        epoch = runner.epoch + 1
        self._stop(runner, epoch, dict(epoch=epoch, iter=runner.iter), by_epoch=True,
                   where=f'epoch {epoch}/{runner.max_epochs} (iteration {runner.iter})')

    def after_run(self, runner) -> None:
        self.restore_signal_handlers()

    # --- stopping -----------------------------------------------------------------------------------------------
    def _stop(self, runner, step: int, meta: dict, by_epoch: bool, where: str) -> None:
        self.checkpoint = self._save(runner, step, meta, by_epoch)
        if is_main_process():
            with atomic_path(osp.join(runner.work_dir, PREEMPTED_MARKER)) as tmp, open(tmp, 'w') as f:
                json.dump(dict(signal=self.received or 'received on another rank', stopped_after=where,
                               checkpoint=self.checkpoint, exit_code=REQUEUE_EXIT_CODE), f)
        if is_distributed():
            barrier()  # no rank exits (and gets the job step torn down) before rank 0 has written the checkpoint
        runner.train_loop.stop_training = True
        self.preempted = True
        runner.logger.warning(
            f'{self.received or "a signal on another rank"}: stopped after {where} with checkpoint {self.checkpoint}; '
            f'tools/train.py exits with {REQUEUE_EXIT_CODE} (requeue), and --resume continues from that checkpoint')

    @staticmethod
    def _save(runner, step: int, meta: dict, by_epoch: bool) -> str:
        """Save through the run's CheckpointHook (its file names, ``max_keep_ckpts`` and ``last_checkpoint``)."""
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is not None and hook.by_epoch == by_epoch:
            path = hook.file_backend.join_path(hook.out_dir, hook.filename_tmpl.format(step))
            if runner.message_hub.get_info('last_ckpt') != path:  # not already written at this step
                hook._save_checkpoint_with_step(runner, step, meta)
            return path
        # no CheckpointHook, or one counting in the other unit (the file would be named after the wrong step)
        name = f'epoch_{step}.pth' if by_epoch else f'iter_{step}.pth'
        runner.save_checkpoint(runner.work_dir, name, meta=meta, by_epoch=by_epoch)
        path = osp.join(runner.work_dir, name)
        if is_main_process():
            with atomic_path(osp.join(runner.work_dir, 'last_checkpoint')) as tmp, open(tmp, 'w') as f:
                f.write(path)
        return path

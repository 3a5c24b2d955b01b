"""Training that survives crashes and refuses to go wrong quietly.

- Checkpoints are written atomically (temporary file + rename), so a crash during a save leaves the previous file
  intact instead of a truncated one under the final name.
- ``--resume`` (auto) picks the newest checkpoint that reads back completely and says which broken ones it skipped.
- :class:`RandomStateHook` stores every rank's Python, NumPy, torch and CUDA generator states in the checkpoint
  and restores them once the resumed loop has skipped the batches already seen, so a resumed run draws the same
  random numbers (DropPath, augmentation in the main process) as an uninterrupted one.
- :class:`NonFiniteLossHook` stops training at the first NaN/Inf loss term, naming the iteration and the term,
  or (``action='skip'``) drops that optimizer step on every rank.
- :class:`DatasetSizeHook` refuses a dataset that yields no samples (an infinite sampler would otherwise spin).
"""
import os
import os.path as osp
import random
import re
import zipfile
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, is_distributed
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mixformer_mm.utils.atomic import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read back (truncated or corrupted)."""


class CheckpointMismatchError(KeyError):
    """A checkpoint whose keys or shapes do not fit the model (another model, variant or config)."""

    def __str__(self):  # KeyError's own str() quotes the message, which then prints as one long repr
        return str(self.args[0]) if self.args else ''


# --- atomic checkpoint files -----------------------------------------------------------------------------------
class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (full disk, quota, file-size limit); nothing appeared under its name."""


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over ``path``.

    A failed write (a full disk, a quota, RLIMIT_FSIZE) raises :class:`CheckpointWriteError` naming ``path`` and the
    reason; the temporary file is removed and the files already in the folder are untouched.
    """
    try:
        with atomic_path(path) as tmp:
            with open(tmp, 'wb') as f:  # through a Python file, so that the OS error (errno) reaches us
                torch.save(obj, f)
    except (OSError, RuntimeError) as error:
        cause = _os_error_in_chain(error)
        if cause is None:
            raise
        raise CheckpointWriteError(
            cause.errno, f'cannot write checkpoint {path}: {_write_failure_reason(cause, path)}. Nothing was written '
            f'under that name (the partial temporary file was removed) and the earlier checkpoints are intact; '
            f'--resume continues from the newest of them once the cause is fixed') from error


def _os_error_in_chain(error: BaseException) -> Optional[OSError]:
    """The OSError behind ``error`` (torch.save reports a failed write as a RuntimeError raised during the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        error = error.__cause__ or error.__context__
    return None


def _write_failure_reason(error: OSError, path: str) -> str:
    import errno
    reason = f'{error.strerror or error} (errno {errno.errorcode.get(error.errno, error.errno)})'
    if error.errno == errno.EFBIG:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            reason += f': this process may write files of at most {limit} bytes (RLIMIT_FSIZE, `ulimit -f`)'
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            stat = os.statvfs(osp.dirname(osp.abspath(path)))
            reason += (f': {stat.f_bavail * stat.f_frsize / 2**20:.1f} MiB free on the file system of '
                       f'{osp.dirname(osp.abspath(path))}')
        except OSError:
            pass
    return reason


def install_atomic_checkpoint_saving() -> None:
    """Make mmengine's Runner write local checkpoints atomically; remote backends keep mmengine's writer."""
    import mmengine.runner.runner as runner_module
    original = runner_module.save_checkpoint
    if getattr(original, 'is_atomic', False):
        return

    def save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
        if '://' in str(filename) or file_client_args is not None or backend_args is not None:
            return original(checkpoint, filename, file_client_args=file_client_args, backend_args=backend_args)
        if get_rank() == 0:  # mmengine's writer is master-only as well
            atomic_torch_save(checkpoint, str(filename))

    save_checkpoint.is_atomic = True
    runner_module.save_checkpoint = save_checkpoint


# --- finding a checkpoint to resume from -----------------------------------------------------------------------
def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None. Reads the whole file once (zip CRCs)."""
    if not osp.isfile(path):
        return 'no such file'
    if osp.getsize(path) == 0:
        return 'the file is empty'
    if not zipfile.is_zipfile(path):
        return 'not a torch.save zip archive (truncated or corrupted)'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f'unreadable zip archive ({error})'
    if bad is not None:
        return f'corrupted entry {bad!r} (CRC mismatch)'
    return None


def check_checkpoint_readable(path: str) -> None:
    """Refuse, naming the file, a checkpoint that is missing (FileNotFoundError) or broken (CheckpointError)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    problem = checkpoint_problem(path)
    if problem:
        raise CheckpointError(f'checkpoint {path} cannot be read: {problem}')


def _checkpoint_order(path: str):
    numbers = re.findall(r'\d+', osp.basename(path))
    return (int(numbers[-1]) if numbers else -1, osp.getmtime(path))


def checkpoints_newest_first(work_dir: str) -> List[str]:
    """The ``.pth`` files of ``work_dir``, newest first: ``last_checkpoint``'s target, then by iteration/epoch."""
    found = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target:
            found.append(target)
    if osp.isdir(work_dir):
        names = [osp.join(work_dir, n) for n in os.listdir(work_dir) if n.endswith('.pth')]
        found += sorted(names, key=_checkpoint_order, reverse=True)
    unique = {}
    for path in found:
        unique.setdefault(osp.abspath(path), path)  # the pointer may name a file the listing finds again
    return list(unique.values())


def resolve_resume(work_dir: str, requested: str, log=print) -> str:
    """The checkpoint ``--resume [CKPT]`` should use; ``requested='auto'`` means the newest readable one."""
    if requested != 'auto':
        if not osp.isfile(requested):
            raise FileNotFoundError(f'--resume {requested}: no such checkpoint file')
        problem = checkpoint_problem(requested)
        if problem:
            earlier = [p for p in checkpoints_newest_first(osp.dirname(requested) or '.')
                       if osp.abspath(p) != osp.abspath(requested) and not checkpoint_problem(p)]
            hint = f' The newest readable checkpoint beside it is {earlier[0]}.' if earlier else ''
            raise CheckpointError(f'--resume {requested}: cannot read this checkpoint: {problem}.{hint}')
        return requested
    candidates = checkpoints_newest_first(work_dir)
    if not candidates:
        raise FileNotFoundError(
            f'--resume: nothing to resume in {work_dir} (no last_checkpoint and no .pth files). '
            f'Start without --resume, or pass --resume PATH/TO/CHECKPOINT.pth or the --work-dir of the earlier run.')
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        log(f'--resume: skipping {path}: {problem}; trying the previous checkpoint')
    raise CheckpointError(f'--resume: none of the checkpoints in {work_dir} can be read: {candidates}')


# --- random generator states -----------------------------------------------------------------------------------
def _local_random_state() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_local_random_state(state: dict) -> None:
    random.setstate(_as_python_state(state['python']))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _as_python_state(state):
    """random.setstate needs tuples; a checkpoint round trip may hand lists back."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random generator states with the checkpoint; restore them on resume.

    mmengine writes checkpoints from rank 0 only (``Runner.save_checkpoint`` is master-only, so no collective can
    run here), hence rank 0's states are saved. With mmengine's default ``diff_rank_seed=False`` every rank is seeded
    alike and draws alike, so all ranks continue from them; with ``diff_rank_seed=True`` only rank 0 does, and the
    other ranks keep their fresh seeds (logged). The states are restored before the first iteration after resuming,
    not when the checkpoint is loaded: the resumed loop first skips the batches already trained on, and data
    loading in the main process draws random numbers.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        checkpoint['random_states'] = dict(
            rank0=_local_random_state(), diff_rank_seed=bool(randomness.get('diff_rank_seed', False)))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('random_states')
        if not states:
            runner.logger.warning('the checkpoint has no random generator states; random draws after resuming '
                                  'will differ from an uninterrupted run')
            return
        if get_rank() == 0 or not states['diff_rank_seed']:
            self._pending = states['rank0']
        else:
            runner.logger.warning(f'rank {get_rank()}: diff_rank_seed=True and the checkpoint holds rank 0\'s '
                                  f'random states only; this rank continues from a fresh seed')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            _set_local_random_state(self._pending)
            self._pending = None


# --- non-finite losses -----------------------------------------------------------------------------------------
class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop (``action='raise'``) or drop the optimizer step (``action='skip'``) when a loss term is not finite.

    The check runs inside the model's ``parse_losses``, before backward and the optimizer step, so the weights
    that the last checkpoint and the next step see are never touched by a NaN.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise'):
        if action not in ('raise', 'skip'):
            raise ValueError(f"NonFiniteLossHook: action must be 'raise' or 'skip', got {action!r}")
        self.action = action
        self.skipped = 0

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        optim_wrapper = runner.optim_wrapper
        parse_losses, update_params = model.parse_losses, optim_wrapper.update_params
        state = dict(non_finite=None)

        def guarded_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            bad = [name for name, value in log_vars.items()
                   if 'loss' in name and isinstance(value, torch.Tensor) and not torch.isfinite(value).all()]
            if not torch.isfinite(loss).all() and not bad:
                bad = ['loss']
            bad = [name for name in bad if name != 'loss'] or bad  # name the term, not only the total
            state['non_finite'] = bad or None
            if bad and self.action == 'raise':
                terms = ', '.join(f'{name}={float(log_vars.get(name, loss)):g}' for name in bad)
                raise NonFiniteLossError(
                    f'non-finite loss at iteration {runner.iter + 1}: {terms}. Training stopped before this step '
                    f'changed the weights; the last saved checkpoint is intact. Lower the learning rate, enable '
                    f'gradient clipping or use --amp carefully, or add '
                    f"custom_hooks=[dict(type='NonFiniteLossHook', action='skip')] to skip such steps.")
            return loss, log_vars

        def guarded_update_params(loss, *args, **kwargs):
            skip = torch.tensor(1.0 if state['non_finite'] else 0.0, device=loss.device)
            if is_distributed():
                all_reduce(skip, op='max')  # every rank skips together, or backward's all-reduce would hang
            if skip.item() > 0:
                self.skipped += 1
                runner.logger.warning(f'iteration {runner.iter + 1}: non-finite loss '
                                      f'({state["non_finite"] or "on another rank"}); optimizer step skipped '
                                      f'({self.skipped} so far)')
                optim_wrapper.zero_grad()
                return
            return update_params(loss, *args, **kwargs)

        model.parse_losses = guarded_parse_losses
        if self.action == 'skip':
            optim_wrapper.update_params = guarded_update_params


# --- datasets that yield nothing -------------------------------------------------------------------------------
@HOOKS.register_module()
class DatasetSizeHook(Hook):
    """Refuse empty datasets before the loops start: an infinite sampler over nothing never returns."""

    priority = 'VERY_HIGH'

    @staticmethod
    def _check(loader, name: str) -> None:
        dataset = getattr(loader, 'dataset', None)
        if dataset is not None and len(dataset) == 0:
            root = getattr(dataset, 'data_root', None) or ''
            ann = getattr(dataset, 'ann_file', None) or ''
            raise ValueError(f'{name}: the {type(dataset).__name__} (data_root={root!r}, ann_file={ann!r}) yields '
                             f'zero samples. Check the folder layout / annotation file and any filter_cfg.')

    def before_train(self, runner) -> None:
        self._check(runner.train_dataloader, 'train_dataloader')

    def before_val(self, runner) -> None:
        self._check(runner.val_dataloader, 'val_dataloader')

    def before_test(self, runner) -> None:
        self._check(runner.test_dataloader, 'test_dataloader')


# --- checkpoints of another model ------------------------------------------------------------------------------
@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Compare a checkpoint's keys and shapes with the model before mmengine loads it (non-strictly).

    ``strict=True`` (resuming, testing): any missing, unexpected or mis-shaped key is an error that lists them.
    ``strict=False`` (``load_from`` for fine-tuning): only a checkpoint sharing no key with the model is an error;
    partial fits (a new head) are logged.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True):
        self.strict = strict

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        report = check_checkpoint_fits(model, checkpoint, source, strict=self.strict)
        if report:
            runner.logger.warning(f'load_from {source}: {report}')


def check_checkpoint_fits(model, checkpoint: dict, source: str, strict: bool = True) -> Optional[str]:
    """Compare a loaded checkpoint (or bare state_dict) with ``model`` before mmengine loads it non-strictly.

    Raises :class:`CheckpointMismatchError` listing missing, unexpected and mis-shaped keys when ``strict``, or
    when the checkpoint shares no key with the model; otherwise returns that listing (None for a perfect fit)
    for the caller to log.
    """
    from mixformer_mm.utils.checkpoint import compare_state_dicts, describe_mismatch, unwrap_state_dict
    given = {re.sub(r'^module\.', '', k): v for k, v in unwrap_state_dict(checkpoint).items()}
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), given)
    if not (missing or unexpected or mismatched):
        return None
    report = describe_mismatch(missing, unexpected, mismatched)
    shared = len(given) - len(unexpected)
    if strict or shared == 0:
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit this {type(model).__name__}: {report}. Is it a checkpoint of another '
            f'model, variant or config? Official checkpoints must be converted with tools/model_converters/ first.')
    return report


DEFAULT_TRAIN_HOOKS = (dict(type='RandomStateHook'), dict(type='NonFiniteLossHook'), dict(type='DatasetSizeHook'),
                       dict(type='PreemptionHook'), dict(type='WorldSizeHook'), dict(type='InputCheckHook'))
DEFAULT_TEST_HOOKS = (dict(type='DatasetSizeHook'), dict(type='CheckpointFitHook', strict=True),
                      dict(type='InputCheckHook'))


def add_default_hooks(cfg, hooks=DEFAULT_TRAIN_HOOKS) -> None:
    """Append the reliability hooks to ``cfg.custom_hooks`` unless the config already lists one of that type."""
    custom = list(cfg.get('custom_hooks', None) or [])
    present = {h.get('type') if isinstance(h, dict) else type(h).__name__ for h in custom}
    for hook in hooks:
        if hook['type'] not in present and f"mmengine.{hook['type']}" not in present:
            custom.append(dict(hook))
    cfg.custom_hooks = custom


_MMENGINE_CHECKPOINT_HOOK = ('CheckpointHook', 'mmengine.CheckpointHook')


def use_safe_checkpoint_hook(cfg) -> None:
    """Replace mmengine's CheckpointHook (which deletes the outdated checkpoint before writing the new one) by
    :class:`~mixformer_mm.engine.safe_checkpoint.SafeCheckpointHook` (same arguments; deletes after writing)."""
    if cfg.get('default_hooks', None) is None:
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    if 'checkpoint' not in hooks:  # mmengine's Runner would add CheckpointHook(interval=1)
        hooks['checkpoint'] = dict(type='SafeCheckpointHook', interval=1)
    elif isinstance(hooks['checkpoint'], dict) and hooks['checkpoint'].get('type') in _MMENGINE_CHECKPOINT_HOOK:
        hooks['checkpoint']['type'] = 'SafeCheckpointHook'

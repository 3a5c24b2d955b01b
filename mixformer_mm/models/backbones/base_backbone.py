"""What every mixformer_mm backbone shares: the OpenMMLab backbone contract.

Subclasses describe their variants in ``arch_zoo`` and build ``stem`` and ``stages``; this class gives them
``arch`` parsing with readable errors, ``out_indices``, ``frozen_stages`` (output norms included), ``norm_eval``,
input checks, ``default_init_cfg()`` when no ``init_cfg`` is given, a ``Pretrained`` ``init_cfg`` that refuses
checkpoints that do not fit instead of silently training from scratch, and ``switch_to_deploy`` (BatchNorms
folded for inference, as mmpretrain's re-parameterisable backbones have it).
"""
import copy
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mixformer_mm.models.layers.bn_fold import fold_adjacent_batch_norms
from mixformer_mm.utils.checkpoint import load_checked_state_dict, unwrap_state_dict


class HierarchicalBackbone(BaseModule):
    """Base class of the four-stage backbones (output strides 4, 8, 16, 32).

    Subclasses set ``arch_zoo`` (variant name -> settings), ``arch_keys`` (settings a custom arch dict must give)
    and create ``self.stem`` and ``self.stages`` (an ``nn.ModuleList``). ``frozen_stages`` follows mmdet's ResNet
    and Swin: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and stages ``0..k-1``.
    """

    arch_zoo: Dict[str, dict] = {}
    arch_keys: Tuple[str, ...] = ()
    num_stages = 4
    min_input_size = 32
    # state-dict key prefixes that may be absent from a pretrained checkpoint (parts new by design)
    keys_new_by_design: Tuple[str, ...] = ()
    # Name of the norm that stage i's returned output goes through, as a format string of i ('out_norms.{}' for
    # an nn.ModuleDict, 'norm{}' for attributes), or None. The names differ between the models because they are
    # state-dict keys that checkpoints carry; this one attribute lets the base class find and freeze them. A
    # classifier's final norm (GroupMixFormer's and GLNet's ``final_norm``) is not one: it is not frozen.
    output_norm_key: Optional[str] = None

    def __init__(self,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg if init_cfg is not None else self.default_init_cfg())
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = False

    # --- arguments --------------------------------------------------------------------------------------------
    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Return the settings of a named variant or check a custom arch dict."""
        name = cls.__name__
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'{name}: unknown arch {arch!r}; valid names are '
                               f'{sorted(cls.arch_zoo)} (or pass a dict with keys {list(cls.arch_keys)})')
            return copy.deepcopy(cls.arch_zoo[key])
        if isinstance(arch, dict):
            missing = [k for k in cls.arch_keys if k not in arch]
            if missing:
                raise KeyError(f'{name}: custom arch dict lacks {missing}; it needs {list(cls.arch_keys)}')
            return copy.deepcopy(dict(arch))
        raise TypeError(f'{name}: arch must be a variant name or a dict, got {type(arch).__name__}')

    def _parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        indices = []
        for i in out_indices:
            j = i + self.num_stages if i < 0 else i
            if not 0 <= j < self.num_stages:
                raise IndexError(f'out_indices: {i} is not a stage index (0..{self.num_stages - 1})')
            indices.append(j)
        if not indices:
            raise ValueError('out_indices is empty')
        return tuple(sorted(set(indices)))

    def check_input(self, x: torch.Tensor) -> None:
        """Fail early, naming the problem, on inputs the network cannot take."""
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f'{name} expects a (N, C, H, W) batch, got a tensor of shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for {self.in_channels}-channel input but got {x.shape[1]} '
                             f'channels (input shape {tuple(x.shape)}); set in_channels or fix the data')
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(f'{name}: input {height}x{width} is smaller than the {self.min_input_size}x'
                             f'{self.min_input_size} it needs (one pixel at stride 32); resize or pad the input')

    # --- freezing ---------------------------------------------------------------------------------------------
    def output_norm(self, stage: int) -> Optional[nn.Module]:
        """The norm applied to stage ``stage``'s returned output (see ``output_norm_key``), or None."""
        if self.output_norm_key is None:
            return None
        try:
            return self.get_submodule(self.output_norm_key.format(stage))
        except AttributeError:  # the stage is not returned, or the model was built without output norms
            return None

    def frozen_modules(self) -> List[nn.Module]:
        """Modules frozen by ``frozen_stages``: the stem, then each stage in order, then the output norms of the
        frozen stages (mmdet's Swin freezes a frozen stage's output norm with it)."""
        groups = [self.stem] + list(self.stages)
        norms = [self.output_norm(i) for i in range(max(self.frozen_stages, 0))]
        return groups[:self.frozen_stages + 1] + [norm for norm in norms if norm is not None]

    def _freeze(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        if mode and self.deploy:
            raise RuntimeError(f'{type(self).__name__} was switched to deploy mode (its BatchNorms are folded into '
                               'the layers before them) and cannot train; build it without deploy=True to train')
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # --- inference ----------------------------------------------------------------------------------------------
    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm into the conv or linear layer that feeds it, with its running statistics, and
        stay in eval mode; the outputs are those of ``eval()`` (to rounding), with fewer kernels and writes.

        The folded model cannot train (``train()`` raises). Its state dict has no BatchNorm keys and gives the
        folded layers a bias; build the backbone with ``deploy=True`` to load one (mmpretrain's
        ``tools/model_converters/reparameterize_model.py`` calls this method and saves such a state dict).
        Modules whose BatchNorm is fed by something other than an adjacent layer fold it in their own
        ``fold_batch_norms()``, called here.
        """
        if self.deploy:
            return
        self.eval()
        for module in self.modules():
            if module is not self and hasattr(module, 'fold_batch_norms'):
                module.fold_batch_norms()
        fold_adjacent_batch_norms(self)
        self.deploy = True

    # --- initialisation ---------------------------------------------------------------------------------------
    def _split_pretrained(self):
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        return (pretrained[0] if pretrained else None), [c for c in cfgs if c.get('type') != 'Pretrained']

    def init_weights(self) -> None:
        pretrained, others = self._split_pretrained()
        if pretrained is None:
            super().init_weights()
            self._freeze()
            return
        # Initialise as from scratch first so that parts that are new by design get a sane start, then
        # overwrite everything the checkpoint provides.
        self.init_cfg = others or self.default_init_cfg()
        super().init_weights()
        self.init_cfg = [pretrained] + others
        logger = MMLogger.get_current_instance()
        checkpoint = CheckpointLoader.load_checkpoint(pretrained['checkpoint'], map_location='cpu')
        load_checked_state_dict(
            self, unwrap_state_dict(checkpoint), source=pretrained['checkpoint'],
            prefix=pretrained.get('prefix'), allowed_missing=self.keys_new_by_design, logger=logger)
        logger.info(f'{type(self).__name__}: loaded {pretrained["checkpoint"]}'
                    + (f' (prefix {pretrained["prefix"]!r})' if pretrained.get('prefix') else ''))
        self._freeze()

    @staticmethod
    def default_init_cfg() -> List[dict]:
        """Linear: truncated normal (std 0.02, bias 0); LayerNorm: ones and zeros; convs and BN: PyTorch's."""
        return [
            dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
            dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
        ]

    @staticmethod
    def stochastic_depth_rates(drop_path_rate: float, depths: Iterable[int]) -> List[List[float]]:
        """Linearly increasing drop-path rates over all blocks, cut into stages."""
        depths = list(depths)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        return [rates[s:s + d] for s, d in zip(starts, depths)]

"""Official GLNet checkpoints (rayleizhu/GLMix) -> mixformer_mm / mmpretrain layout.

Mostly a rename. Our attention keeps the official fused ``[q | k | v]`` input projection of
``nn.MultiheadAttention`` (``in_proj_weight`` -> ``qkv.weight``), so the head split is unchanged. Two reshapes:
LayerScale gammas become mmcv ``LayerScale`` weights of shape (C,) (the official GLMix and FFN gammas are
(1, C, 1, 1)). The official ``Identity`` placeholder at index 0 of the overlapped stem is gone, so the stem indices
become names.

Official training checkpoints hold the weights under ``model`` and, with EMA, ``model_ema``. The official loader
uses ``model`` except for GLNet-16G, which it loads from ``model_ema``; ``select_weights`` does the same by
default.
"""
import re
from collections import OrderedDict
from typing import Dict

from .rename import RenameRule, rename_keys

BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
WB = r'(weight|bias)'
BLOCK = r'stages\.(\d+)\.blocks\.(\d+)\.'
OURS_BLOCK = r'backbone.stages.\1.blocks.\2.'

NON_OVERLAP_DOWNSAMPLING = [
    RenameRule(rf'downsample_layers\.0\.0\.{WB}', r'backbone.stem.conv.\1'),
    RenameRule(rf'downsample_layers\.0\.1\.{BN}', r'backbone.stem.norm.\1'),
    RenameRule(rf'downsample_layers\.([123])\.0\.{BN}', r'backbone.stages.\1.downsample.norm.\2'),
    RenameRule(rf'downsample_layers\.([123])\.1\.{WB}', r'backbone.stages.\1.downsample.conv.\2'),
]
OVERLAP_DOWNSAMPLING = [
    RenameRule(rf'downsample_layers\.0\.1\.{WB}', r'backbone.stem.conv1.\1'),
    RenameRule(rf'downsample_layers\.0\.2\.{BN}', r'backbone.stem.norm1.\1'),
    RenameRule(rf'downsample_layers\.0\.4\.{WB}', r'backbone.stem.conv2.\1'),
    RenameRule(rf'downsample_layers\.0\.5\.{BN}', r'backbone.stem.norm2.\1'),
    RenameRule(rf'downsample_layers\.([123])\.0\.{WB}', r'backbone.stages.\1.downsample.conv.\2'),
    RenameRule(rf'downsample_layers\.([123])\.1\.{BN}', r'backbone.stages.\1.downsample.norm.\2'),
]
BLOCK_RULES = [
    RenameRule(BLOCK + r'(slot_scale|init_slots)', OURS_BLOCK + r'\3'),
    RenameRule(BLOCK + rf'pos_conv\.{WB}', OURS_BLOCK + r'cpe.\3'),
    RenameRule(BLOCK + rf'(norm[12])\.{WB}', OURS_BLOCK + r'\3.\4'),
    RenameRule(BLOCK + r'relation_mha\.in_proj_(weight|bias)', OURS_BLOCK + r'slot_attn.qkv.\3'),
    RenameRule(BLOCK + rf'relation_mha\.out_proj\.{WB}', OURS_BLOCK + r'slot_attn.proj.\3'),
    RenameRule(BLOCK + r'mha_op\.in_proj_(weight|bias)', OURS_BLOCK + r'attn.qkv.\3'),
    RenameRule(BLOCK + rf'mha_op\.out_proj\.{WB}', OURS_BLOCK + r'attn.proj.\3'),
    RenameRule(BLOCK + rf'feature_conv\.0\.{WB}', OURS_BLOCK + r'local_branch.pw_in.\3'),
    RenameRule(BLOCK + rf'feature_conv\.1\.{WB}', OURS_BLOCK + r'local_branch.dw.\3'),
    RenameRule(BLOCK + rf'feature_conv\.2\.{WB}', OURS_BLOCK + r'local_branch.pw_out.\3'),
    RenameRule(BLOCK + rf'mlp\.0\.{WB}', OURS_BLOCK + r'ffn.fc1.\3'),
    RenameRule(BLOCK + rf'mlp\.1\.{WB}', OURS_BLOCK + r'ffn.dwconv.\3'),
    RenameRule(BLOCK + rf'mlp\.3\.{WB}', OURS_BLOCK + r'ffn.fc2.\3'),
    RenameRule(BLOCK + r'ls1\.gamma', OURS_BLOCK + r'ls1.weight'),
    RenameRule(BLOCK + r'ls2\.gamma', OURS_BLOCK + r'ls2.weight'),
]
# Blocks of GLNet-STL's last stage are ViT blocks on tokens: Linear FFN (mlp.0 / mlp.2) -> mmcv FFN, whose
# LayerScale on the FFN branch is called gamma2.
# The official keys of those blocks are first marked (``mlp.`` -> ``token_mlp.``, ``ls2.`` -> ``token_ls2.``),
# because ``mlp.0`` alone does not tell a Linear from a 1x1 conv.
TOKEN_BLOCK_RULES = [
    RenameRule(BLOCK + rf'token_mlp\.0\.{WB}', OURS_BLOCK + r'ffn.layers.0.0.\3'),
    RenameRule(BLOCK + rf'token_mlp\.2\.{WB}', OURS_BLOCK + r'ffn.layers.1.\3'),
    RenameRule(BLOCK + r'token_ls2\.gamma', OURS_BLOCK + r'ffn.gamma2.weight'),
]
CLASSIFIER_RULES = [
    RenameRule(rf'norm\.{BN}', r'backbone.final_norm.\1'),
    RenameRule(rf'head\.{WB}', r'head.fc.\1'),
]
TOKEN_LABELING_HEAD = re.compile(r'tklb_aux_head\.(weight|bias)')


def _strip_module_prefix(state_dict: Dict) -> 'OrderedDict':
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())


def _mark_token_block_key(key: str, token_blocks) -> str:
    for block in token_blocks:
        if key.startswith(block + 'mlp.') or key.startswith(block + 'ls2.'):
            return block + 'token_' + key[len(block):]
    return key


def official_stage0_width(state_dict: Dict) -> int:
    """C0 of an official state_dict, read from the first block's norm."""
    key = 'stages.0.blocks.0.norm1.weight'
    if key not in state_dict:
        raise KeyError(f'not an official GLNet state_dict: it has no {key!r} (first keys: {list(state_dict)[:5]})')
    return state_dict[key].shape[0]


def weights_key(checkpoint: Dict, weights: str = 'auto'):
    """Which entry of an official checkpoint file holds the weights to convert: ``'model'``, ``'model_ema'``, or
    for ``'auto'`` the official loader's choice (``model_ema`` for GLNet-16G, C0 = 128; ``model`` otherwise).
    ``None`` for a bare state_dict."""
    if weights not in ('auto', 'model', 'model_ema'):
        raise ValueError(f"weights must be 'auto', 'model' or 'model_ema', got {weights!r}")
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    has_model = isinstance(checkpoint.get('model'), dict)
    has_ema = isinstance(checkpoint.get('model_ema'), dict)
    if not (has_model or has_ema):
        if weights == 'model_ema':
            raise KeyError('the checkpoint is a bare state_dict and holds no model_ema weights')
        return None
    if weights == 'auto':
        is_16g = has_model and official_stage0_width(_strip_module_prefix(checkpoint['model'])) == 128
        return 'model_ema' if has_ema and (is_16g or not has_model) else 'model'
    if not isinstance(checkpoint.get(weights), dict):
        raise KeyError(f'the checkpoint has no {weights!r} weights (its entries: {sorted(checkpoint)})')
    return weights


def select_weights(checkpoint: Dict, weights: str = 'auto') -> Dict:
    """The state_dict chosen by :func:`weights_key` (a bare state_dict is returned as is)."""
    key = weights_key(checkpoint, weights)
    return checkpoint if key is None else checkpoint[key]


def convert_glnet(official: Dict, backbone_only: bool = False, drop_token_label_head: bool = False) -> 'OrderedDict':
    """Rename an official state_dict (``module.`` prefixes allowed) to our ImageNet classifier's keys.

    With ``backbone_only`` the classifier parts (``norm``, ``head``) are dropped and the ``backbone.`` prefix is
    removed, giving a checkpoint for ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of a detector or
    segmentor backbone. Token-labeling checkpoints carry ``tklb_aux_head``, whose max-over-tokens term is added
    to the official logits at inference; our classifier has no such head, so a full conversion refuses them
    unless ``drop_token_label_head`` (the logits then differ from the official ones). Backbone-only conversions
    drop it silently.
    """
    official = _strip_module_prefix(official)
    aux = [k for k in official if TOKEN_LABELING_HEAD.fullmatch(k)]
    if aux and not (backbone_only or drop_token_label_head):
        raise ValueError('this is a token-labeling checkpoint (it has tklb_aux_head): its official logits add '
                         'an auxiliary token head that our classifier lacks. Convert with backbone_only=True, or '
                         'pass drop_token_label_head=True to accept logits without that term.')
    official = OrderedDict((k, v) for k, v in official.items() if k not in aux)

    non_overlap = 'downsample_layers.0.0.weight' in official
    downsampling = NON_OVERLAP_DOWNSAMPLING if non_overlap else OVERLAP_DOWNSAMPLING
    token_blocks = {k[:-len('mlp.2.weight')] for k in official if re.fullmatch(BLOCK + r'mlp\.2\.weight', k)}
    official = OrderedDict((_mark_token_block_key(k, token_blocks), v) for k, v in official.items())
    converted = rename_keys(official, TOKEN_BLOCK_RULES + downsampling + BLOCK_RULES + CLASSIFIER_RULES,
                            source='GLNet checkpoint')
    for key, value in converted.items():
        if re.search(r'\.(ls[12]|gamma2)\.weight$', key):
            converted[key] = value.reshape(-1)

    if not backbone_only:
        return converted
    return OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()
                       if k.startswith('backbone.') and not k.startswith('backbone.final_norm.'))


def convert_glnet_checkpoint(checkpoint: Dict, weights: str = 'auto', backbone_only: bool = False,
                             drop_token_label_head: bool = False) -> 'OrderedDict':
    """``select_weights`` then ``convert_glnet``."""
    return convert_glnet(select_weights(checkpoint, weights), backbone_only=backbone_only,
                         drop_token_label_head=drop_token_label_head)


__all__ = ['convert_glnet', 'convert_glnet_checkpoint', 'select_weights', 'weights_key']

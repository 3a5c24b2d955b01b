"""Official GroupMixFormer checkpoints (AILab-CVC/GroupMixFormer) -> mixformer_mm / mmpretrain layout.

A pure rename: our module layout keeps the fused [q | k | v] projection, the five-segment channel order, the
2/3/3 head split of the position convolutions and the [attention | non-attention] order into the projection.
"""
from collections import OrderedDict
from typing import Dict

from .rename import RenameRule, rename_keys

BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
BLOCK = r'groupmixformer_backbone\.(\d+)\.gma_stage\.(\d+)\.'
OURS_BLOCK = r'backbone.stages.\1.blocks.\2.'

CLASSIFIER_RULES = [
    RenameRule(r'conv_stem\.proj1\.(weight|bias)', r'backbone.stem.0.conv.\1'),
    RenameRule(rf'conv_stem\.norm1\.{BN}', r'backbone.stem.0.bn.\1'),
    RenameRule(r'conv_stem\.proj2\.(weight|bias)', r'backbone.stem.1.conv.\1'),
    RenameRule(rf'conv_stem\.norm2\.{BN}', r'backbone.stem.1.bn.\1'),
    RenameRule(r'patch_embed_layers\.(\d+)\.proj\.conv1\.weight',
               r'backbone.stages.\1.embed.depthwise_conv.conv.weight'),
    RenameRule(r'patch_embed_layers\.(\d+)\.proj\.pointwise_conv\.weight',
               r'backbone.stages.\1.embed.pointwise_conv.conv.weight'),
    RenameRule(rf'patch_embed_layers\.(\d+)\.norm\.{BN}', r'backbone.stages.\1.embed.pointwise_conv.bn.\2'),
    RenameRule(BLOCK + r'cpe\.proj\.(weight|bias)', OURS_BLOCK + r'cpe.\3'),
    RenameRule(BLOCK + r'(norm[12])\.(weight|bias)', OURS_BLOCK + r'\3.\4'),
    RenameRule(BLOCK + r'att\.(qkv|proj)\.(weight|bias)', OURS_BLOCK + r'attn.\3.\4'),
    RenameRule(BLOCK + rf'att\.aggregator\.norm0\.{BN}', OURS_BLOCK + r'attn.token_branch.bn.\3'),
    RenameRule(BLOCK + r'att\.aggregator\.agg1\.conv1\.weight',
               OURS_BLOCK + r'attn.group_branches.0.depthwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg2\.conv1\.weight',
               OURS_BLOCK + r'attn.group_branches.1.depthwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg3\.conv1\.weight',
               OURS_BLOCK + r'attn.group_branches.2.depthwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg1\.pointwise_conv\.weight',
               OURS_BLOCK + r'attn.group_branches.0.pointwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg2\.pointwise_conv\.weight',
               OURS_BLOCK + r'attn.group_branches.1.pointwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg3\.pointwise_conv\.weight',
               OURS_BLOCK + r'attn.group_branches.2.pointwise_conv.conv.weight'),
    RenameRule(BLOCK + rf'att\.aggregator\.norm1\.{BN}', OURS_BLOCK + r'attn.group_branches.0.pointwise_conv.bn.\3'),
    RenameRule(BLOCK + rf'att\.aggregator\.norm2\.{BN}', OURS_BLOCK + r'attn.group_branches.1.pointwise_conv.bn.\3'),
    RenameRule(BLOCK + rf'att\.aggregator\.norm3\.{BN}', OURS_BLOCK + r'attn.group_branches.2.pointwise_conv.bn.\3'),
    RenameRule(BLOCK + r'att\.aggregator\.agg0\.conv\.conv1\.weight',
               OURS_BLOCK + r'attn.non_attn_conv.depthwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg0\.conv\.pointwise_conv\.weight',
               OURS_BLOCK + r'attn.non_attn_conv.pointwise_conv.conv.weight'),
    RenameRule(BLOCK + r'att\.aggregator\.agg0\.norm\.(weight|bias)', OURS_BLOCK + r'attn.non_attn_norm.\3'),
    RenameRule(BLOCK + r'att\.crpe\.conv_list\.(\d)\.(weight|bias)', OURS_BLOCK + r'attn.rel_pos_convs.\3.\4'),
    RenameRule(BLOCK + r'mlp\.fc1\.(weight|bias)', OURS_BLOCK + r'ffn.layers.0.0.\3'),
    RenameRule(BLOCK + r'mlp\.fc2\.(weight|bias)', OURS_BLOCK + r'ffn.layers.1.\3'),
    RenameRule(rf'norm4\.{BN}', r'backbone.final_norm.\1'),
    RenameRule(r'head\.(weight|bias)', r'head.fc.\1'),
]


def convert_groupmixformer(official: Dict, backbone_only: bool = False) -> 'OrderedDict':
    """Rename an official state_dict (``module.`` prefixes allowed) to our ImageNet classifier's keys.

    With ``backbone_only`` the classifier parts (``norm4``, ``head``) are dropped and the ``backbone.`` prefix
    is removed, giving a checkpoint for ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of a detector or
    segmentor backbone.
    """
    official = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in official.items())
    converted = rename_keys(official, CLASSIFIER_RULES, source='GroupMixFormer checkpoint')
    if not backbone_only:
        return converted
    return OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()
                       if k.startswith('backbone.') and not k.startswith('backbone.final_norm.'))

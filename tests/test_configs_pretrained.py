"""One convention for the pretrained backbone of every COCO and ADE20K config, as mmdet/mmseg load mmpretrain
weights into Swin and ConvNeXt: the ImageNet classifier checkpoint (as the converters write it without
--backbone-only, or as our ImageNet configs train it), its `backbone.` part selected with `prefix`, at
<repo>/checkpoints/ whatever the current directory."""
import copy
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.config_checks import ROOT, config_id, load_config, pretrained_checkpoint
from tests.test_configs_dense_sources import DENSE

# a config whose checkpoint comes from its `_base_/models/*_dense.py` ({{ fileDirname }} of that file), and one
# that sets its own, for each model
FROM_OTHER_DIRECTORIES = [
    ('configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_1x_coco.py', 'groupmixformer-t_in1k.pth'),
    ('configs/groupmixformer/upernet_groupmixformer-b_8xb2-160k_ade20k-512x512.py', 'groupmixformer-b_in1k.pth'),
    ('configs/glnet/retinanet_glnet-4g_fpn_ms-3x_coco.py', 'glnet-4g_in1k.pth'),
    ('configs/glnet/mask-rcnn_glnet-stl_fpn_1x_coco.py', 'glnet-stl_in1k.pth'),
    ('configs/dgt/fpn_dgt-t_8xb2-80k_ade20k-512x512.py', 'dgt-t_in1k.pth'),
    ('configs/dgt/mask-rcnn_dgt-s_fpn_ms-3x_coco.py', 'dgt-s_in1k.pth'),
    ('configs/maformer/upernet_maformer-s_8xb2-160k_ade20k-512x512.py', 'maformer-s_in1k.pth'),
    ('configs/maformer/mask-rcnn_maformer-l_fpn_1x_coco.py', 'maformer-l_in1k.pth'),
    ('configs/swap_backbone/cascade-mask-rcnn_groupmixformer-t_fpn_1x_coco.py', 'groupmixformer-t_in1k.pth'),
]


@pytest.mark.parametrize('path', DENSE, ids=config_id)
def test_dense_config_loads_the_backbone_part_of_a_classifier_from_the_repository(path):
    backbone = load_config(path).model.backbone
    name = pretrained_checkpoint(backbone.init_cfg)
    assert name == f'{backbone.type.lower()}-{backbone.arch.replace("_", "-")}_in1k.pth', f'{path}: {name}'
    assert set(backbone.init_cfg) == {'type', 'checkpoint', 'prefix'}


@pytest.mark.parametrize('path,name', FROM_OTHER_DIRECTORIES, ids=lambda v: config_id(v) if v.endswith('.py') else '')
def test_checkpoint_path_does_not_depend_on_the_current_directory(path, name, tmp_path, monkeypatch):
    # relative to two other directories: the codebases' tools are run from their own checkouts, mim from anywhere
    elsewhere = os.path.relpath(ROOT / path, ROOT / 'configs')
    for cwd, given in ((tmp_path, str(ROOT / path)), (ROOT / 'configs', elsewhere)):
        monkeypatch.chdir(cwd)
        init_cfg = Config.fromfile(given, import_custom_modules=False).model.backbone.init_cfg
        assert pretrained_checkpoint(init_cfg) == name, (cwd, init_cfg)


def test_dumped_config_keeps_the_resolved_path(tmp_path):
    """The runner writes the config to its work_dir and `tools/test.py work_dir/<config>.py` reloads it from there:
    the path must not be re-resolved against the work_dir."""
    cfg = load_config('configs/glnet/upernet_glnet-9g_8xb2-160k_ade20k-512x512.py')
    work_dir = tmp_path / 'work_dirs' / 'upernet'
    work_dir.mkdir(parents=True)
    cfg.dump(str(work_dir / 'upernet.py'))
    reloaded = Config.fromfile(str(work_dir / 'upernet.py'), import_custom_modules=False)
    assert pretrained_checkpoint(reloaded.model.backbone.init_cfg) == 'glnet-9g_in1k.pth'


def test_converter_output_loads_through_the_dense_config(tmp_path):
    """The file the README tells users to write (the GroupMixFormer converter without --backbone-only) initialises
    the backbone of a dense config through its init_cfg: every backbone tensor from the checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401  (registers the backbones)
    from mixformer_mm.models.backbones import GroupMixFormer
    from tests.reference import groupmixformer_functional as reference

    spec = GroupMixFormer.arch_zoo['m']
    src = tmp_path / 'groupmixformer_miny.pth'
    torch.save({'model': reference.synthesize_official_state_dict(spec['embed_dims'], spec['depths'],
                                                                  spec['mlp_ratios'], seed=1)}, src)
    dst = tmp_path / 'groupmixformer-m_in1k.pth'
    result = subprocess.run([sys.executable, 'tools/model_converters/groupmixformer2mmpretrain.py', str(src), str(dst)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    # a deep copy: ConfigDict.update merges into the nested dicts of the cached config
    cfg = load_config('configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_1x_coco.py')
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.update(arch='m', norm_cfg=dict(type='BN', requires_grad=True),
                        init_cfg=dict(backbone_cfg.init_cfg, checkpoint=str(dst)))
    init_default_scope('mmdet')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    converted = torch.load(dst, map_location='cpu')['state_dict']
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, converted['backbone.' + key]), key

"""``switch_to_deploy``: BatchNorms folded into the layers that feed them, for inference."""
import pytest
import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mixformer_mm.models.backbones import DGT, GLNet, GroupMixFormer, MAFormer
from mixformer_mm.models.layers.bn_fold import fold_adjacent_batch_norms
from mixformer_mm.utils.launch_count import count_model_eager
from tests.test_dgt import TINY as DGT_TINY
from tests.test_glnet import TINY as GLNET_TINY
from tests.test_glnet import TINY_STL as GLNET_TINY_STL
from tests.test_groupmixformer import TINY as GROUPMIXFORMER_TINY
from tests.test_maformer import TINY_KW as MAFORMER_TINY_KW

# (builder taking deploy=..., BatchNorms left after folding: the classifier's final norm, which no layer feeds)
BACKBONES = {
    'groupmixformer': (lambda **kw: GroupMixFormer(arch=GROUPMIXFORMER_TINY, **kw), 0),
    'groupmixformer-final-norm': (lambda **kw: GroupMixFormer(arch=GROUPMIXFORMER_TINY, final_norm=True, **kw), 1),
    'glnet': (lambda **kw: GLNet(arch=GLNET_TINY, **kw), 0),
    'glnet-stl': (lambda **kw: GLNet(arch=GLNET_TINY_STL, **kw), 3),  # BN before each 2x2 patch conv: no feeder
    'dgt': (lambda **kw: DGT(arch=DGT_TINY, **kw), 0),
    'maformer': (lambda **kw: MAFormer(**MAFORMER_TINY_KW), 0),  # no BatchNorm at all
}


def _randomise_batch_norms(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator))
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(shape, generator=generator))
            module.bias.data.copy_(torch.randn(shape, generator=generator))


def _batch_norms(model):
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@pytest.mark.parametrize('name', list(BACKBONES))
def test_deploy_gives_the_eval_outputs_and_refuses_to_train(name, one_thread):
    build, left = BACKBONES[name]
    model = build()
    with torch.no_grad():
        _randomise_batch_norms(model)
    model.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        got = model(x)
    assert len(_batch_norms(model)) == left
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match='deploy'):
        model.train()
    model.eval()  # eval stays allowed

    # a backbone built with deploy=True has the folded layout and loads the folded state dict as it is
    if name != 'maformer':
        deployed = build(deploy=True)
        deployed.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            for e, g in zip(expected, deployed(x)):
                torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_groupmixformer_deploy_launches_fewer_ops():
    # stem (2), embeddings (4) and the three conv aggregators of each block fold into their convs; the token
    # aggregator's BatchNorm folds into the QKV projection: 2 + 4 + 4 * 5 blocks = 26 BatchNorms, one op each.
    model = GroupMixFormer(arch=GROUPMIXFORMER_TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    before = count_model_eager(model, x, 'eval')
    model.switch_to_deploy()
    after = count_model_eager(model, x, 'eval')
    assert before.by_op['native_batch_norm'] == 26 and 'native_batch_norm' not in after.by_op
    assert after.ops == before.ops - 26
    assert after.bytes_written < before.bytes_written


def test_fold_pairs_only_what_the_forward_applies_back_to_back():

    class NormBeforeConvByRegistration(nn.Module):
        """A conv registered before a BatchNorm that does not follow it in the forward."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)
            self.norm = nn.BatchNorm2d(4)

        def forward(self, x):
            return self.conv(self.norm(x))

    module = nn.ModuleDict(dict(
        unrelated=NormBeforeConvByRegistration(),
        sequential=nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        conv_module=ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN')),
        norm_first=ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN'), order=('norm', 'conv', 'act')),
    )).eval()
    assert fold_adjacent_batch_norms(module) == 2
    assert isinstance(module['unrelated'].norm, nn.BatchNorm2d)
    assert isinstance(module['sequential'][1], nn.Identity)
    assert isinstance(module['conv_module'].norm, nn.Identity)
    assert isinstance(module['norm_first'].norm, nn.BatchNorm2d)

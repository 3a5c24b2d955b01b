"""What HierarchicalBackbone does for the four backbones: the default init_cfg, one way to find the per-output
norms (whose state-dict names differ by model and stay as checkpoints have them), and the argument checks."""
import pytest

from mixformer_mm.models.arguments import check_one_of, merge_options
from mixformer_mm.models.backbones import DGT, GLNet, GroupMixFormer, MAFormer
from tests.test_dgt import TINY as DGT_TINY
from tests.test_glnet import TINY as GLNET_TINY
from tests.test_groupmixformer import TINY as GROUPMIXFORMER_TINY
from tests.test_maformer import TINY_KW as MAFORMER_TINY_KW

BUILDERS = {
    'groupmixformer': lambda **kw: GroupMixFormer(arch=GROUPMIXFORMER_TINY, **kw),
    'glnet': lambda **kw: GLNet(arch=GLNET_TINY, **kw),
    'maformer': lambda **kw: MAFormer(**MAFORMER_TINY_KW, **kw),
    'dgt': lambda **kw: DGT(arch=DGT_TINY, **kw),
}
# the state-dict prefix of stage i's output norm, as checkpoints of each model have it
OUTPUT_NORM_KEYS = {'groupmixformer': None, 'glnet': 'extra_norms.{}.', 'maformer': 'out_norms.{}.', 'dgt': 'norm{}.'}


@pytest.mark.parametrize('name', list(BUILDERS))
def test_default_init_cfg_is_the_fallback(name):
    model = BUILDERS[name]()
    assert model.init_cfg == type(model).default_init_cfg()
    given = [dict(type='Constant', layer='Linear', val=0.)]
    assert BUILDERS[name](init_cfg=given).init_cfg == given


@pytest.mark.parametrize('name', list(BUILDERS))
def test_output_norms_are_found_under_each_models_keys_and_frozen_with_their_stage(name):
    model = BUILDERS[name](out_indices=(1, 3), frozen_stages=2)
    keys = model.state_dict().keys()
    key = OUTPUT_NORM_KEYS[name]
    for stage in range(4):
        norm = model.output_norm(stage)
        if key is None or stage not in (1, 3):
            assert norm is None
            continue
        names = {f'{n}.' for n, m in model.named_modules() if m is norm}
        assert names == {key.format(stage)} and any(k.startswith(key.format(stage)) for k in keys)
    frozen = model.frozen_modules()
    assert (key is not None) == any(m is model.output_norm(1) for m in frozen)  # stage 1 is frozen
    assert model.output_norm(3) is None or all(m is not model.output_norm(3) for m in frozen)  # stage 3 is not
    model.train()
    if key is not None:
        assert not model.output_norm(1).training and model.output_norm(3).training
        assert not any(p.requires_grad for p in model.output_norm(1).parameters())


def test_a_classifier_final_norm_is_not_an_output_norm():
    model = GroupMixFormer(arch=GROUPMIXFORMER_TINY, out_indices=-1, final_norm=True, frozen_stages=4)
    assert model.output_norm(3) is None and all(m is not model.final_norm for m in model.frozen_modules())
    glnet = GLNet(arch=GLNET_TINY, out_indices=-1, final_norm=True, extra_norms=False, frozen_stages=4)
    assert glnet.output_norm(3) is None and all(m is not glnet.final_norm for m in glnet.frozen_modules())


def test_argument_checks_name_the_argument():
    check_one_of('Model', 'mode', 'a', ('a', 'b'))
    with pytest.raises(ValueError, match=r"Model: mode must be one of \('a', 'b'\), got 'c'"):
        check_one_of('Model', 'mode', 'c', ('a', 'b'))
    defaults = dict(ratio=0.5, mode='a')
    assert merge_options('Model', 'cfg', None, defaults) == defaults
    assert merge_options('Model', 'cfg', dict(mode='b'), defaults) == dict(ratio=0.5, mode='b')
    with pytest.raises(KeyError, match=r"Model: cfg has no option 'rato' \(did you mean 'ratio'\?\)"):
        merge_options('Model', 'cfg', dict(rato=1.), defaults)
    with pytest.raises(KeyError, match=r"cfg has no option 'zzz'; its options are \['ratio', 'mode'\]"):
        merge_options('Model', 'cfg', dict(zzz=1.), defaults)
    with pytest.raises(TypeError, match='cfg must be a dict, got list'):
        merge_options('Model', 'cfg', ['mode'], defaults)
    with pytest.raises(ValueError, match=r"DGT: attn_impl must be one of \('bucketed', 'masked_dense'\)"):
        DGT(arch=DGT_TINY, attn_impl='dense')
    with pytest.raises(ValueError, match=r"GLNet: arch\['slot_init'\] must be one of"):
        GLNet(arch=dict(GLNET_TINY, slot_init='random'))

"""An independent, functional GLNet forward on the *official* checkpoint layout (rayleizhu/GLMix).

Written from the spec (shared/specs/glmix.md, sections 2, 3 and 8) with plain tensor operations and no module of
ours, so that the equivalence test compares two separate readings of the architecture: this one, on official
keys, and our module, on converted keys. Attention is written out (no SDPA) and the 8x8 slot pooling applies
PyTorch's adaptive-pool bin rule by hand, ``[floor(i*H/8), ceil((i+1)*H/8))``. Eval mode only.
"""
import math
import re

import torch
import torch.nn.functional as F

HEAD_DIM = 32
# the last projection of every residual branch, and the residual depthwise convs (CPE, FFN)
RESIDUAL_OUTPUT = re.compile(r'(out_proj|feature_conv\.2|mlp\.[123]|pos_conv)\.weight$')

# Official constructor settings (spec section 4), in the official vocabulary.
OFFICIAL_ARCHS = {
    'glnet_stl': dict(depths=[2, 2, 6, 2], widths=[96, 192, 384, 768], mlp_ratio=4, style='non_ovlp',
                      mixing=['glmix', 'glmix', 'glmix', 'mha'], cpe=False, mlp_dw=False, layerscale=0.,
                      slot_init='ada_avgpool'),
    'glnet_4g': dict(depths=[4, 4, 18, 4], widths=[64, 128, 256, 512], mlp_ratio=3, style='ovlp',
                     mixing=['glmix', 'glmix', 'glmix.mha_nchw', 'mha_nchw'], cpe=True, mlp_dw=True, layerscale=0.,
                     slot_init='ada_avgpool'),
}
OFFICIAL_ARCHS['glnet_stl_paramslot'] = dict(OFFICIAL_ARCHS['glnet_stl'], slot_init='param')
OFFICIAL_ARCHS['glnet_9g'] = dict(OFFICIAL_ARCHS['glnet_4g'], widths=[96, 192, 384, 768])
OFFICIAL_ARCHS['glnet_16g'] = dict(OFFICIAL_ARCHS['glnet_4g'], widths=[128, 256, 512, 1024], layerscale=1e-4)


def _block_kind(mixing, j):
    if mixing == 'glmix.mha_nchw':
        return 'glmix' if j % 2 == 0 else 'mha_nchw'
    return mixing


# --- state-dict layout ---------------------------------------------------------------------------------------
def official_state_dict_shapes(cfg, num_classes=1000):
    """Key -> shape of an official ``model`` state_dict (spec section 8)."""
    shapes = {}

    def bn(prefix, c):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[prefix + name] = (c, )
        shapes[prefix + 'num_batches_tracked'] = ()

    def conv(prefix, cout, cin, k):
        shapes[prefix + 'weight'], shapes[prefix + 'bias'] = (cout, cin, k, k), (cout, )

    w = cfg['widths']
    if cfg['style'] == 'non_ovlp':
        conv('downsample_layers.0.0.', w[0], 3, 4)
        bn('downsample_layers.0.1.', w[0])
        for i in (1, 2, 3):
            bn(f'downsample_layers.{i}.0.', w[i - 1])
            conv(f'downsample_layers.{i}.1.', w[i], w[i - 1], 2)
    else:
        conv('downsample_layers.0.1.', w[0] // 2, 3, 3)
        bn('downsample_layers.0.2.', w[0] // 2)
        conv('downsample_layers.0.4.', w[0], w[0] // 2, 3)
        bn('downsample_layers.0.5.', w[0])
        for i in (1, 2, 3):
            conv(f'downsample_layers.{i}.0.', w[i], w[i - 1], 3)
            bn(f'downsample_layers.{i}.1.', w[i])
    for i, (c, depth) in enumerate(zip(w, cfg['depths'])):
        hidden = int(cfg['mlp_ratio'] * c)
        for j in range(depth):
            p = f'stages.{i}.blocks.{j}.'
            kind = _block_kind(cfg['mixing'][i], j)
            for n in ('norm1', 'norm2'):
                shapes[f'{p}{n}.weight'] = shapes[f'{p}{n}.bias'] = (c, )
            mha = 'relation_mha.' if kind == 'glmix' else 'mha_op.'
            shapes[p + mha + 'in_proj_weight'], shapes[p + mha + 'in_proj_bias'] = (3 * c, c), (3 * c, )
            shapes[p + mha + 'out_proj.weight'], shapes[p + mha + 'out_proj.bias'] = (c, c), (c, )
            if kind != 'mha' and cfg['cpe']:
                conv(p + 'pos_conv.', c, 1, 3)
            if kind == 'mha':
                shapes[p + 'mlp.0.weight'], shapes[p + 'mlp.0.bias'] = (hidden, c), (hidden, )
                shapes[p + 'mlp.2.weight'], shapes[p + 'mlp.2.bias'] = (c, hidden), (c, )
            else:
                conv(p + 'mlp.0.', hidden, c, 1)
                if cfg['mlp_dw']:
                    conv(p + 'mlp.1.', hidden, 1, 3)
                conv(p + 'mlp.3.', c, hidden, 1)
            if kind == 'glmix':
                shapes[p + 'slot_scale'] = ()
                if cfg['slot_init'] == 'param':
                    shapes[p + 'init_slots'] = (1, 64, c)
                conv(p + 'feature_conv.0.', c, c, 1)
                conv(p + 'feature_conv.1.', c, 1, 5)
                conv(p + 'feature_conv.2.', c, c, 1)
            if cfg['layerscale'] > 0:
                token_ls1 = kind in ('mha', 'mha_nchw')
                shapes[p + 'ls1.gamma'] = (c, ) if token_ls1 else (1, c, 1, 1)
                shapes[p + 'ls2.gamma'] = (c, ) if kind == 'mha' else (1, c, 1, 1)
    bn('norm.', w[-1])
    shapes['head.weight'], shapes['head.bias'] = (num_classes, w[-1]), (num_classes, )
    return shapes


def synthesize_official_state_dict(cfg, num_classes=1000, seed=0, dtype=torch.float64):
    """Random official-layout weights: fan-in scaled weights, non-trivial norms, BN statistics, slot scales
    (sharp enough that clustering is far from uniform) and LayerScale gammas of order one."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_state_dict_shapes(cfg, num_classes).items():
        if key.endswith('num_batches_tracked'):
            value = torch.tensor(100, dtype=torch.long)
        elif key.endswith('running_var'):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith('running_mean'):
            value = 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith('slot_scale'):
            value = 2 + 8 * torch.rand(shape, generator=gen)
        elif key.endswith('.gamma'):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith('init_slots'):
            value = torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            # every 1-D weight is a norm's scale
            value = 1 + 0.1 * torch.randn(shape, generator=gen) if key.endswith('weight') else 0.1 * torch.randn(
                shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
            if RESIDUAL_OUTPUT.search(key):
                value = value * 0.3  # keeps 30 residual blocks from growing the features by orders of magnitude
        state[key] = value.to(dtype) if value.is_floating_point() else value
    return state


def synthesize_official_checkpoint(cfg, seed=0, dtype=torch.float32, with_ema=True):
    """An official training checkpoint: ``model``, ``model_ema`` (other random weights) and bookkeeping."""
    checkpoint = {'model': synthesize_official_state_dict(cfg, seed=seed, dtype=dtype), 'epoch': 299}
    if with_ema:
        checkpoint['model_ema'] = synthesize_official_state_dict(cfg, seed=seed + 1000, dtype=dtype)
    return checkpoint


# --- forward ---------------------------------------------------------------------------------------------------
def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + 'running_mean'], sd[p + 'running_var'], sd[p + 'weight'], sd[p + 'bias'],
                        training=False, eps=1e-5)


def _conv(x, sd, p, stride=1, padding=0, groups=1):
    return F.conv2d(x, sd[p + 'weight'], sd[p + 'bias'], stride=stride, padding=padding, groups=groups)


def _ln_tokens(t, sd, p):
    return F.layer_norm(t, t.shape[-1:], sd[p + 'weight'], sd[p + 'bias'], 1e-6)


def _ln_channels(x, sd, p):
    return _ln_tokens(x.permute(0, 2, 3, 1), sd, p).permute(0, 3, 1, 2)


def _mha(t, sd, p):
    B, N, C = t.shape
    w, b = sd[p + 'in_proj_weight'], sd[p + 'in_proj_bias']
    h = C // HEAD_DIM
    q, k, v = [(t @ w[i * C:(i + 1) * C].T + b[i * C:(i + 1) * C]).view(B, N, h, HEAD_DIM).transpose(1, 2)
               for i in range(3)]
    attn = ((q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM)).softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(B, N, C)
    return out @ sd[p + 'out_proj.weight'].T + sd[p + 'out_proj.bias']


def _conv_mlp(x, sd, p, mlp_dw):
    t = _conv(x, sd, p + 'mlp.0.')
    if mlp_dw:
        t = t + _conv(t, sd, p + 'mlp.1.', padding=1, groups=t.shape[1])
    return _conv(F.gelu(t), sd, p + 'mlp.3.')


def adaptive_pool_8x8(x, grid=8):
    """Average over bins [floor(i*H/g), ceil((i+1)*H/g)) x [floor(j*W/g), ceil((j+1)*W/g)), flattened row-major."""
    H, W = x.shape[-2:]
    rows = [(math.floor(i * H / grid), math.ceil((i + 1) * H / grid)) for i in range(grid)]
    cols = [(math.floor(j * W / grid), math.ceil((j + 1) * W / grid)) for j in range(grid)]
    slots = [x[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
    return torch.stack(slots, dim=1)  # (B, 64, C)


def glmix_block(x, sd, p, cfg, record=None):
    """One GLMix block; ``record`` (a dict) receives the clustering and dispatch weights if given."""
    B, C, H, W = x.shape
    if cfg['slot_init'] == 'param':
        x0 = sd[p + 'init_slots'].expand(B, -1, -1)
    else:
        x0 = adaptive_pool_8x8(x)
    if cfg['cpe']:
        x = x + _conv(x, sd, p + 'pos_conv.', padding=1, groups=C)
    u = x
    y = _ln_channels(x, sd, p + 'norm1.')
    Y = y.flatten(2).transpose(1, 2)
    logits = torch.einsum('bsc,bnc->bsn', F.normalize(x0, dim=-1),
                          sd[p + 'slot_scale'] * F.normalize(Y, dim=-1))
    clustering = logits.softmax(dim=-1)
    Z = _mha(clustering @ Y, sd, p + 'relation_mha.')
    dispatch = logits.transpose(1, 2).softmax(dim=-1)
    D = (dispatch @ Z).permute(0, 2, 1).reshape(B, C, H, W)
    local = _conv(y, sd, p + 'feature_conv.0.')
    local = _conv(local, sd, p + 'feature_conv.1.', padding=2, groups=C)
    local = _conv(local, sd, p + 'feature_conv.2.')
    G = D + local
    if cfg['layerscale'] > 0:
        G = G * sd[p + 'ls1.gamma']
    x = u + G
    m = _conv_mlp(_ln_channels(x, sd, p + 'norm2.'), sd, p, cfg['mlp_dw'])
    if cfg['layerscale'] > 0:
        m = m * sd[p + 'ls2.gamma']
    if record is not None:
        record.update(clustering=clustering, dispatch=dispatch)
    return x + m


def _mha_nchw_block(x, sd, p, cfg):
    B, C, H, W = x.shape
    if cfg['cpe']:
        x = x + _conv(x, sd, p + 'pos_conv.', padding=1, groups=C)
    t = x.flatten(2).transpose(1, 2)
    a = _mha(_ln_tokens(t, sd, p + 'norm1.'), sd, p + 'mha_op.')
    if cfg['layerscale'] > 0:
        a = a * sd[p + 'ls1.gamma']
    x = (t + a).transpose(1, 2).reshape(B, C, H, W)
    m = _conv_mlp(_ln_channels(x, sd, p + 'norm2.'), sd, p, cfg['mlp_dw'])
    if cfg['layerscale'] > 0:
        m = m * sd[p + 'ls2.gamma']
    return x + m


def _mha_token_block(t, sd, p, cfg):
    a = _mha(_ln_tokens(t, sd, p + 'norm1.'), sd, p + 'mha_op.')
    if cfg['layerscale'] > 0:
        a = a * sd[p + 'ls1.gamma']
    t = t + a
    h = _ln_tokens(t, sd, p + 'norm2.')
    m = F.gelu(h @ sd[p + 'mlp.0.weight'].T + sd[p + 'mlp.0.bias']) @ sd[p + 'mlp.2.weight'].T + sd[p + 'mlp.2.bias']
    if cfg['layerscale'] > 0:
        m = m * sd[p + 'ls2.gamma']
    return t + m


def _downsample(x, sd, i, cfg):
    p = f'downsample_layers.{i}.'
    if cfg['style'] == 'non_ovlp':
        if i == 0:
            return _bn(_conv(x, sd, p + '0.', stride=4), sd, p + '1.')
        return _conv(_bn(x, sd, p + '0.'), sd, p + '1.', stride=2)
    if i == 0:
        x = F.gelu(_bn(_conv(x, sd, p + '1.', stride=2, padding=1), sd, p + '2.'))
        return _bn(_conv(x, sd, p + '4.', stride=2, padding=1), sd, p + '5.')
    return _bn(_conv(x, sd, p + '0.', stride=2, padding=1), sd, p + '1.')


def forward_features(sd, x, cfg):
    """The four NCHW stage outputs (before the final BN)."""
    outs = []
    for i in range(4):
        x = _downsample(x, sd, i, cfg)
        if cfg['mixing'][i] == 'mha':
            B, C, H, W = x.shape
            t = x.flatten(2).transpose(1, 2)
            for j in range(cfg['depths'][i]):
                t = _mha_token_block(t, sd, f'stages.{i}.blocks.{j}.', cfg)
            x = t.transpose(1, 2).reshape(B, C, H, W)
        else:
            for j in range(cfg['depths'][i]):
                p = f'stages.{i}.blocks.{j}.'
                if _block_kind(cfg['mixing'][i], j) == 'glmix':
                    x = glmix_block(x, sd, p, cfg)
                else:
                    x = _mha_nchw_block(x, sd, p, cfg)
        outs.append(x)
    return outs


def forward_logits(sd, x, cfg):
    last = _bn(forward_features(sd, x, cfg)[-1], sd, 'norm.')
    return last.mean(dim=(2, 3)) @ sd['head.weight'].T + sd['head.bias']


def _report(sizes=(224, 256, 320)):
    """Max |logit difference| of our converted model against this reference, for every official variant."""
    from mixformer_mm.converters.glnet import convert_glnet_checkpoint
    from mixformer_mm.models.backbones import GLNet
    print('| variant | input | max abs logit | max abs difference (fp32) |\n|---|---|---|---|')
    for name, cfg in OFFICIAL_ARCHS.items():
        checkpoint = synthesize_official_checkpoint(cfg, seed=0, dtype=torch.float32)
        weights = checkpoint['model_ema'] if name == 'glnet_16g' else checkpoint['model']  # the official choice
        converted = convert_glnet_checkpoint(checkpoint)
        model = GLNet(arch=name[len('glnet_'):], final_norm=True, extra_norms=False, out_indices=(3, )).eval()
        model.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')})
        for size in sizes:
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
            with torch.no_grad():
                ours = F.linear(model(x)[0].mean(dim=(2, 3)), converted['head.fc.weight'], converted['head.fc.bias'])
                theirs = forward_logits(weights, x, cfg)
            print(f'| {name} | {size}x{size} | {theirs.abs().max():.2f} | {(ours - theirs).abs().max():.1e} |')


if __name__ == '__main__':
    _report()

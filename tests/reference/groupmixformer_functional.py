"""An independent, functional GroupMixFormer forward on the *official* checkpoint layout.

Written from the spec (shared/specs/groupmixformer.md, sections 2-3) with plain tensor operations and no module
of ours, so that the equivalence test compares two separate readings of the architecture: this one, on official
keys, and our module, on converted keys. Eval mode only (BatchNorm uses running statistics).
"""
import torch
import torch.nn.functional as F


def _bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + 'running_mean'], sd[prefix + 'running_var'], sd[prefix + 'weight'],
                        sd[prefix + 'bias'], training=False, eps=1e-5)


def _separable(x, sd, prefix, stride=1):
    depthwise = sd[prefix + 'conv1.weight']
    x = F.conv2d(x, depthwise, stride=stride, padding=depthwise.shape[-1] // 2, groups=x.shape[1])
    return F.conv2d(x, sd[prefix + 'pointwise_conv.weight'])


def _layer_norm(x, sd, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + 'weight'], sd[prefix + 'bias'], eps)


def _gma(x, sd, p, H, W):
    B, N, C = x.shape
    seg, heads = C // 5, 8
    d = 4 * seg // heads
    qkv = F.linear(x, sd[p + 'qkv.weight'], sd[p + 'qkv.bias'])
    imgs = [qkv[..., i * C:(i + 1) * C].transpose(1, 2).reshape(B, C, H, W) for i in range(3)]  # q, k, v

    def pre_attention(img):
        s = [img[:, i * seg:(i + 1) * seg] for i in range(5)]
        a = p + 'aggregator.'
        out = [F.hardswish(_bn(s[0], sd, a + 'norm0.'))]
        for k in (1, 2, 3):
            out.append(F.hardswish(_bn(_separable(s[k], sd, f'{a}agg{k}.'), sd, f'{a}norm{k}.')))
        return torch.cat(out, 1), s[4]

    (q_img, q4), (k_img, k4), (v_img, v4) = [pre_attention(img) for img in imgs]
    a = p + 'aggregator.agg0.'
    non_attn = _separable(torch.cat([q4, k4, v4], 1), sd, a + 'conv.').flatten(2).transpose(1, 2)
    non_attn = F.hardswish(_layer_norm(non_attn, sd, a + 'norm.', 1e-5))

    def heads_of(img):
        return img.reshape(B, heads, d, N).transpose(2, 3)  # head j owns channels [j*d, (j+1)*d)

    q, k, v = heads_of(q_img), heads_of(k_img), heads_of(v_img)
    factorised = torch.einsum('bhnk,bhkv->bhnv', q, torch.einsum('bhnk,bhnv->bhkv', k.softmax(dim=2), v))
    convs = []
    start = 0
    for idx, (kernel, n_heads) in enumerate(((3, 2), (5, 3), (7, 3))):
        part = v_img[:, start:start + n_heads * d]
        convs.append(F.conv2d(part, sd[f'{p}crpe.conv_list.{idx}.weight'], sd[f'{p}crpe.conv_list.{idx}.bias'],
                              padding=kernel // 2, groups=part.shape[1]))
        start += n_heads * d
    rel = q * heads_of(torch.cat(convs, 1))
    scale = (C // 8)**-0.5  # the official code: head_dim = dim // num_heads
    out = (scale * factorised + rel).transpose(1, 2).reshape(B, N, 4 * seg)
    return F.linear(torch.cat([out, non_attn], -1), sd[p + 'proj.weight'], sd[p + 'proj.bias'])


def _block(x, sd, p, H, W):
    B, N, C = x.shape
    img = x.transpose(1, 2).reshape(B, C, H, W)
    img = img + F.conv2d(img, sd[p + 'cpe.proj.weight'], sd[p + 'cpe.proj.bias'], padding=1, groups=C)
    x = img.flatten(2).transpose(1, 2)
    x = x + _gma(_layer_norm(x, sd, p + 'norm1.', 1e-6), sd, p + 'att.', H, W)
    h = _layer_norm(x, sd, p + 'norm2.', 1e-6)
    h = F.linear(F.gelu(F.linear(h, sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias'])), sd[p + 'mlp.fc2.weight'],
                 sd[p + 'mlp.fc2.bias'])
    return x + h


def forward_features(sd, x):
    """Four NCHW stage outputs. Requires H, W multiples of 32, like the official code."""
    for i in (1, 2):
        x = F.conv2d(x, sd[f'conv_stem.proj{i}.weight'], sd[f'conv_stem.proj{i}.bias'], stride=2, padding=1)
        x = F.hardswish(_bn(x, sd, f'conv_stem.norm{i}.'))
    outs = []
    for stage in range(4):
        x = _separable(x, sd, f'patch_embed_layers.{stage}.proj.', stride=1 if stage == 0 else 2)
        x = F.hardswish(_bn(x, sd, f'patch_embed_layers.{stage}.norm.'))
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        j = 0
        while f'groupmixformer_backbone.{stage}.gma_stage.{j}.norm1.weight' in sd:
            tokens = _block(tokens, sd, f'groupmixformer_backbone.{stage}.gma_stage.{j}.', H, W)
            j += 1
        x = tokens.transpose(1, 2).reshape(B, C, H, W)
        outs.append(x)
    return outs


def forward_logits(sd, x):
    last = _bn(forward_features(sd, x)[-1], sd, 'norm4.')
    return F.linear(last.mean(dim=(2, 3)), sd['head.weight'], sd['head.bias'])


def official_state_dict_shapes(embed_dims, depths, mlp_ratios, num_classes=1000):
    """Key -> shape of an official checkpoint (spec section 7.4/7.5), for synthesising test checkpoints."""
    shapes = {}

    def bn(prefix, c):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[prefix + name] = (c, )
        shapes[prefix + 'num_batches_tracked'] = ()

    c0 = embed_dims[0]
    shapes['conv_stem.proj1.weight'], shapes['conv_stem.proj1.bias'] = (c0 // 2, 3, 3, 3), (c0 // 2, )
    bn('conv_stem.norm1.', c0 // 2)
    shapes['conv_stem.proj2.weight'], shapes['conv_stem.proj2.bias'] = (c0, c0 // 2, 3, 3), (c0, )
    bn('conv_stem.norm2.', c0)
    for i, c in enumerate(embed_dims):
        cin = embed_dims[max(i - 1, 0)]
        shapes[f'patch_embed_layers.{i}.proj.conv1.weight'] = (cin, 1, 3, 3)
        shapes[f'patch_embed_layers.{i}.proj.pointwise_conv.weight'] = (c, cin, 1, 1)
        bn(f'patch_embed_layers.{i}.norm.', c)
    for i, (c, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios)):
        seg, d, hidden = c // 5, c // 10, int(c * ratio)
        for j in range(depth):
            p = f'groupmixformer_backbone.{i}.gma_stage.{j}.'
            shapes[p + 'cpe.proj.weight'], shapes[p + 'cpe.proj.bias'] = (c, 1, 3, 3), (c, )
            for n in ('norm1', 'norm2'):
                shapes[f'{p}{n}.weight'] = shapes[f'{p}{n}.bias'] = (c, )
            shapes[p + 'att.qkv.weight'], shapes[p + 'att.qkv.bias'] = (3 * c, c), (3 * c, )
            shapes[p + 'att.proj.weight'], shapes[p + 'att.proj.bias'] = (c, c), (c, )
            a = p + 'att.aggregator.'
            bn(a + 'norm0.', seg)
            for k, kernel in ((1, 3), (2, 5), (3, 7)):
                shapes[f'{a}agg{k}.conv1.weight'] = (seg, 1, kernel, kernel)
                shapes[f'{a}agg{k}.pointwise_conv.weight'] = (seg, seg, 1, 1)
                bn(f'{a}norm{k}.', seg)
            shapes[a + 'agg0.conv.conv1.weight'] = (3 * seg, 1, 3, 3)
            shapes[a + 'agg0.conv.pointwise_conv.weight'] = (seg, 3 * seg, 1, 1)
            shapes[a + 'agg0.norm.weight'] = shapes[a + 'agg0.norm.bias'] = (seg, )
            for idx, (kernel, heads) in enumerate(((3, 2), (5, 3), (7, 3))):
                shapes[f'{p}att.crpe.conv_list.{idx}.weight'] = (heads * d, 1, kernel, kernel)
                shapes[f'{p}att.crpe.conv_list.{idx}.bias'] = (heads * d, )
            shapes[p + 'mlp.fc1.weight'], shapes[p + 'mlp.fc1.bias'] = (hidden, c), (hidden, )
            shapes[p + 'mlp.fc2.weight'], shapes[p + 'mlp.fc2.bias'] = (c, hidden), (c, )
    bn('norm4.', embed_dims[-1])
    shapes['head.weight'], shapes['head.bias'] = (num_classes, embed_dims[-1]), (num_classes, )
    return shapes


def synthesize_official_state_dict(embed_dims, depths, mlp_ratios, num_classes=1000, seed=0,
                                   dtype=torch.float64):
    """Random official-layout weights with non-trivial norms and BN statistics (so BN is not the identity)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in official_state_dict_shapes(embed_dims, depths, mlp_ratios, num_classes).items():
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith('running_var'):
            sd[key] = (0.5 + torch.rand(shape, generator=gen)).to(dtype)
        elif key.endswith('running_mean'):
            sd[key] = (0.2 * torch.randn(shape, generator=gen)).to(dtype)
        elif len(shape) == 1 and key.endswith('weight'):  # norm scales
            sd[key] = (1 + 0.2 * torch.randn(shape, generator=gen)).to(dtype)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 50
            sd[key] = (torch.randn(shape, generator=gen) / fan_in**0.5).to(dtype)
    return sd

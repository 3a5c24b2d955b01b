# GLNet-4G as the backbone of the COCO and ADE20K configs in configs/glnet/. Each 4G config puts the backbone of
# its task (`{{_base_.glnet_4g_det}}`, `..._det_p3`, `..._sfpn`, `..._upernet`) in place of its parent's backbone;
# the STL, 9G and 16G configs inherit a 4G config and change arch, drop path, checkpoint and the widths read by the
# neck or heads. GLNet publishes no dense recipe: these are those of its sibling BiFormer (same author, BiFormer-S
# has 4G's macro layout), see configs/glnet/README.md.
_base_ = ['../mixformer_mm.py']

# The ImageNet-1K classifier, converted from the official checkpoint (configs/glnet/README.md) with
#   python tools/model_converters/glnet2mmpretrain.py glnet_4g.pth checkpoints/glnet-4g_in1k.pth
# or trained with configs/glnet/glnet-4g_16xb128_in1k.py. Its `backbone.` part is loaded, as mmdet/mmseg load
# mmpretrain classifiers into Swin and ConvNeXt; the final norm and the head are ignored, the output norms
# (extra_norms) are new.
# Resolved from this file's folder ({{ fileDirname }}, which mmengine fills in when it reads the file), so
# the path is <repo>/checkpoints/ whatever the current directory.
checkpoint = '{{ fileDirname }}/../../../checkpoints/glnet-4g_in1k.pth'

glnet_4g = dict(
    _delete_=True,  # drops the parent's backbone keys (ResNet's depth, style, ...; Swin's window_size, ...)
    type='GLNet',
    arch='4g',
    out_indices=(0, 1, 2, 3),
    extra_norms=True,  # one new LayerNorm per output, as BiFormer's dense wrappers
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
glnet_4g_widths = [64, 128, 256, 512]

# Detection: frozen BN statistics in the downsampling layers (BN weights still train), as BiFormer's detection
# wrapper.
glnet_4g_det = dict(
    glnet_4g,
    drop_path_rate=0.2,  # BiFormer-S's Mask R-CNN value (BiFormer's configs)
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=True)
# RetinaNet's FPN starts at stride 8 (P3-P7): stage 0 is not returned. BiFormer passes it and FPN's start_level=1
# skips it; this is the same FPN without an output norm that would never receive a gradient (DDP with
# find_unused_parameters=False fails on it).
glnet_4g_det_p3 = dict(glnet_4g_det, out_indices=(1, 2, 3))
glnet_4g_p3_widths = glnet_4g_widths[1:]

# Segmentation: SyncBN, as BiFormer's segmentation wrapper.
glnet_4g_sfpn = dict(
    glnet_4g,
    drop_path_rate=0.15,  # BiFormer-S's Semantic FPN value (BiFormer's configs)
    norm_cfg=dict(type='SyncBN', requires_grad=True))
glnet_4g_upernet = dict(
    glnet_4g,
    drop_path_rate=0.3,  # BiFormer-S's UperNet value (BiFormer's configs)
    norm_cfg=dict(type='SyncBN', requires_grad=True))

# No weight decay on any normalisation layer (Mask R-CNN and UperNet, as BiFormer). Replaces the Swin parents'
# name-based keys, whose position-table keys match nothing here.
norm_without_decay = dict(_delete_=True, norm_decay_mult=0.)

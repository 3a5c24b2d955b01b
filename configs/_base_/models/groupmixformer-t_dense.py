# GroupMixFormer-T as the backbone of the COCO and ADE20K configs in configs/groupmixformer/. Each T config puts
# `{{_base_.groupmixformer_t}}` in place of its parent's backbone; the S and B configs inherit a T config and
# change arch, drop path, checkpoint and the widths read by the neck or heads. No official dense recipe exists;
# the settings marked "assumed" are the Swin/PVT-family defaults (configs/groupmixformer/README.md).
_base_ = ['../mixformer_mm.py']

# The ImageNet-1K classifier, converted from the official checkpoint (configs/groupmixformer/README.md) with
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_tiny.pth \
#       checkpoints/groupmixformer-t_in1k.pth
# Its `backbone.` part is loaded, as mmdet/mmseg load mmpretrain classifiers into Swin and ConvNeXt; the final
# norm and the head are ignored.
# Resolved from this file's folder ({{ fileDirname }}, which mmengine fills in when it reads the file), so
# the path is <repo>/checkpoints/ whatever the current directory.
checkpoint = '{{ fileDirname }}/../../../checkpoints/groupmixformer-t_in1k.pth'

groupmixformer_t = dict(
    _delete_=True,  # drops the parent's backbone keys (ResNet's depth, style, ...; Swin's window_size, ...)
    type='GroupMixFormer',
    arch='t',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.1,  # assumed: T's ImageNet value (official config); no dense-task value is published
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    norm_eval=False,  # assumed
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
groupmixformer_t_widths = [80, 160, 200, 240]
# RetinaNet's FPN starts at stride 8 (P3-P7): it is given stages 1-3 only, as in mmdet's Swin RetinaNet (the
# stage-0 output would be computed and skipped; GroupMixFormer has no output norm that would then go unused).
groupmixformer_t_p3 = dict(groupmixformer_t, out_indices=(1, 2, 3))
groupmixformer_t_p3_widths = groupmixformer_t_widths[1:]

# No weight decay on any normalisation layer (biases keep it: assumed). Replaces the Swin parents' name-based
# keys, which would miss our BatchNorms (named `bn`) and whose position-table keys match nothing here.
norm_without_decay = dict(_delete_=True, norm_decay_mult=0.)

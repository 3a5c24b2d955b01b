# DGT-T as the backbone of the COCO and ADE20K configs in configs/dgt/. Each T config puts `{{_base_.dgt_t}}` in
# place of its parent's backbone; the S and B configs inherit a T config and change arch, drop path, checkpoint and
# the widths read by the neck or heads. No DGT dense-task recipe could be read: the settings are assumed, the
# standard protocol of this model family (Swin/CSWin/Pale), see configs/dgt/README.md.
_base_ = ['../mixformer_mm.py']

# The ImageNet-1K classifier trained with configs/dgt/dgt-t_8xb128_in1k.py (no official DGT weights exist);
# its `backbone.` part is loaded. Copy the checkpoint its training writes (work_dirs/.../epoch_300.pth) to
# <repo>/checkpoints/dgt-t_in1k.pth.
# Resolved from this file's folder ({{ fileDirname }}, which mmengine fills in when it reads the file), so
# the path is <repo>/checkpoints/ whatever the current directory.
checkpoint = '{{ fileDirname }}/../../../checkpoints/dgt-t_in1k.pth'

dgt_t = dict(
    _delete_=True,  # drops the parent's backbone keys (ResNet's depth, style, ...; Swin's window_size, ...)
    type='DGT',
    arch='t',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.2,  # assumed: T's ImageNet value (DGT publishes no dense recipe); S 0.3, B 0.4
    # groups and top-k per stage as pre-trained (G = 64/16/4/1, k = 64): our default for fine-tuning;
    # groups='auto' (G follows the resolution) is the ablation
    groups='fixed',
    norm_cfg=dict(type='SyncBN', requires_grad=True),  # the stem's BatchNorm
    norm_eval=False,
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
dgt_t_widths = [64, 128, 256, 512]
# RetinaNet's FPN starts at stride 8 (P3-P7): it is given stages 1-3 only, as in mmdet's Swin RetinaNet. Returning
# stage 0 as well would build its output norm (norm0), which then gets no gradient: DDP with
# find_unused_parameters=False (mmengine's default) fails at the second iteration.
dgt_t_p3 = dict(dgt_t, out_indices=(1, 2, 3))
dgt_t_p3_widths = dgt_t_widths[1:]

# No weight decay on any normalisation layer. Replaces the Swin parents' name-based keys, whose position-table
# keys match nothing here.
norm_without_decay = dict(_delete_=True, norm_decay_mult=0.)

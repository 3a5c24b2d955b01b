# MAFormer-S as the backbone of the COCO and ADE20K configs in configs/maformer/. Each S config puts
# `{{_base_.maformer_s}}` in place of its parent's backbone; the B and L configs inherit an S config and change
# arch, drop path, checkpoint and the widths read by the neck or heads. The paper's dense-task recipe is unknown;
# the settings marked "assumed" are the CSWin/Swin defaults in mmdet/mmseg (configs/maformer/README.md).
_base_ = ['../mixformer_mm.py']

# No MAFormer weights are public: train configs/maformer/maformer-s_8xb256_in1k.py first and copy its (EMA)
# checkpoint to <repo>/checkpoints/maformer-s_in1k.pth. The classifier's keys carry the `backbone.` prefix, hence
# `prefix` below; out_norms 0-2 are new.
# Resolved from this file's folder ({{ fileDirname }}, which mmengine fills in when it reads the file), so
# the path is <repo>/checkpoints/ whatever the current directory.
checkpoint = '{{ fileDirname }}/../../../checkpoints/maformer-s_in1k.pth'

maformer_s = dict(
    _delete_=True,  # drops the parent's backbone keys (ResNet's depth, style, ...; Swin's window_size, ...)
    type='MAFormer',
    arch='s',
    out_indices=(0, 1, 2, 3),  # each with its own LayerNorm (mmdet Swin convention)
    # GLD keeps the 224 reference grids of the ImageNet model at every detection/segmentation size (README.md)
    pretrain_img_size=224,
    drop_path_rate=0.2,  # assumed: Swin-T's mmdet value (MAFormer publishes no dense recipe); B and L 0.3
    with_cp=False,
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
maformer_s_widths = [64, 128, 256, 512]

# No weight decay on norms, biases and the GLD position embeddings (as the ImageNet recipe). Replaces the Swin
# parents' keys (absolute_pos_embed, relative_position_bias_table, norm).
maformer_no_decay = dict(_delete_=True, norm_decay_mult=0., bias_decay_mult=0.,
                         custom_keys={'pos_embed': dict(decay_mult=0.)})

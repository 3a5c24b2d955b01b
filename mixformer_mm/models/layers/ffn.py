"""The token MLP of the transformer blocks (GroupMixFormer, MAFormer, GLNet's last stage)."""
from mmcv.cnn.bricks.transformer import FFN


def token_ffn(embed_dims: int, mlp_ratio: float, drop_path_rate: float = 0., layer_scale: float = 0.) -> FFN:
    """Linear(C, rC) -> GELU -> Linear(rC, C) on (..., C) tokens; call it as ``ffn(norm(x), identity=x)``.

    mmcv's ``FFN``, because its parameter names (``layers.0.0``, ``layers.1``, ``gamma2`` with LayerScale) are the
    keys of our converted checkpoints. The residual, DropPath (drawn per sample) and LayerScale are inside it.
    """
    return FFN(
        embed_dims=embed_dims,
        feedforward_channels=int(embed_dims * mlp_ratio),
        act_cfg=dict(type='GELU'),
        dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate) if drop_path_rate > 0 else None,
        add_identity=True,
        layer_scale_init_value=layer_scale)

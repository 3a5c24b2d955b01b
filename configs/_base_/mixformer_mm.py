# Registers mixformer_mm's backbones (GroupMixFormer, ...) when a config is loaded. Inherit this file from every
# config that uses them; `type='GroupMixFormer'` then resolves under the mmpretrain, mmdet and mmseg scopes.
custom_imports = dict(imports=['mixformer_mm'], allow_failed_imports=False)

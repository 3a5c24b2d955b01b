from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open('mixformer_mm/version.py', encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mixformer_mm',
    version=read_version(),
    description='GroupMixFormer, MAFormer, GLMix and DGT backbones for OpenMMLab '
    '(mmpretrain, mmdet, mmseg)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.9',
    # The OpenMMLab stack (torch, mmcv with ops, mmengine, mmpretrain, mmdet, mmseg) is installed by
    # tools/install.sh, because mmcv must be compiled against the user's torch.
    install_requires=['numpy', 'pillow'],
    # tools/train.py --tensorboard (mmengine's TensorboardVisBackend writes through torch.utils.tensorboard);
    # matplotlib, for tools/analysis_tools/plot_curves.py, comes with mmengine.
    extras_require={'tensorboard': ['tensorboard']},
    license='MIT',
    zip_safe=False,
)

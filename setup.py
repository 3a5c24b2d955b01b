import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

REPO = osp.dirname(osp.abspath(__file__))
# What `mim` (openmim) looks for in an installed codebase's `<package>/.mim/`: the model index for `mim search`,
# the configs that `mim train/test` find by file name, and the scripts that `mim train/test/run` execute.
MIM_FILES = ('model-index.yml', 'configs', 'tools', 'demo')


def read_version():
    namespace = {}
    with open(osp.join(REPO, 'mixformer_mm', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def fill_mim_folder():
    """Fill mixformer_mm/.mim as mmdet, mmseg and mmpretrain do: links into the checkout for an editable install
    (edits to configs and tools take effect at once), copies for a wheel or an sdist (which must hold the files)."""
    commands = set(sys.argv[1:])
    if commands & {'develop', 'editable_wheel'}:
        mode = 'symlink'
    elif commands & {'bdist_wheel', 'sdist', 'build', 'build_py', 'install'}:
        mode = 'copy'
    else:  # egg_info, --version, ...: nothing is packaged
        return
    mim_dir = osp.join(REPO, 'mixformer_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        source, target = osp.join(REPO, name), osp.join(mim_dir, name)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        if mode == 'symlink':
            os.symlink(osp.relpath(source, mim_dir), target)
        elif osp.isdir(source):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(source, target)


fill_mim_folder()
setup(
    name='mixformer_mm',
    version=read_version(),
    description='GroupMixFormer, MAFormer, GLMix and DGT backbones for OpenMMLab '
    '(mmpretrain, mmdet, mmseg)',
    long_description=open(osp.join(REPO, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    package_data={'mixformer_mm': ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*',
                                   '.mim/demo/**/*']},
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

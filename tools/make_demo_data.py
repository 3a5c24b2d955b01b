"""Generate the demo datasets of drawn shapes (classification, COCO instances, ADE20K-style segmentation).

    python tools/make_demo_data.py                 # into data/demo, if not there yet
    python tools/make_demo_data.py --root DIR --force

tools/train.py calls the same function on its own when a config reads from data/demo, so running this is optional.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from mixformer_mm.datasets.demo_data import DEFAULT_ROOT, ensure_demo_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate the mixformer_mm demo datasets (drawn shapes)')
    parser.add_argument('--root', default=DEFAULT_ROOT, help=f'output folder (default: {DEFAULT_ROOT})')
    parser.add_argument('--force', action='store_true', help='regenerate even if the data is up to date')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = ensure_demo_data(args.root, force=args.force)
    print(f'demo data ready under {paths["root"]} ({time.perf_counter() - start:.1f} s)')
    for key in ('cls', 'coco', 'ade'):
        print(f'  {key:5s} {paths[key]}')


if __name__ == '__main__':
    main()

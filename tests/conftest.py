import pytest
import torch


@pytest.fixture
def one_thread():
    # The tests' inputs are tiny: one thread is fastest, and on a busy machine several threads can be 50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def seeded():
    # Every test draws the same numbers on every run. Some checks hold only almost surely: with drop_path_rate=0.1
    # and a batch of 2, a residual branch drops both samples one time in a hundred, and its parameters then get no
    # gradient (GroupMixFormer's gradient check, unseeded, failed in 1 of 15 runs).
    torch.manual_seed(0)


@pytest.fixture(scope='session')
def demo_data():
    """The repository's data/demo, where the demo configs read (tools/train.py makes it on first use; a test that
    reads its files before any training has run needs it made first)."""
    import os.path as osp

    from mixformer_mm.datasets import ensure_demo_data
    return ensure_demo_data(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'demo'))

import pytest
import torch


@pytest.fixture
def one_thread():
    # The tests' inputs are tiny: one thread is fastest, and on a busy machine several threads can be 50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

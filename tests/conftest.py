import pytest
import torch


@pytest.fixture
def seeded_single_thread():
    """A test starts from the same global seed, without leaking it to other tests.

    One intra-op thread: on tensors this small threads only add overhead, and on a
    busy 2-core machine their synchronisation made tests hundreds of times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            yield
    finally:
        torch.set_num_threads(threads)

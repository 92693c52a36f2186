import pytest
import torch
from rollout_helpers import tiny_chat

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def chat():
    return tiny_chat()

import pytest
import torch
from objective_helpers import tiny_model

torch.set_num_threads(1)


@pytest.fixture
def model():
    return tiny_model()

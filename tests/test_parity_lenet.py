"""Training parity with PyTorch: the engine's LeNet and torch's, from identical weights and fed
identical FashionMNIST batches (SGD lr 0.9, float32, the seed's loss), lose the same per step and
end with the same parameters."""
import numpy as np
import pytest
import torch
from torch import nn as tnn

import engine
from engine import backend as engine_backend
from engine import optim
from engine.data import FashionMNIST
from engine.data import fashion_mnist as fm
from engine.models import lenet

STEPS, BATCH, LR = 20, 256, 0.9  # the seed's batch size and learning rate
LOSS_RTOL = 1e-4  # per-step relative difference of the mean loss
PARAM_TOL = 1e-4  # max |engine - torch| relative to the tensor's largest magnitude

FOUND = fm.find_split("train")  # the usual search: $FASHION_MNIST_DIR, ./data/FashionMNIST, the Debian package
pytestmark = pytest.mark.skipif(
    FOUND is None, reason="FashionMNIST not found (apt-get install dataset-fashion-mnist, or set $FASHION_MNIST_DIR)")


def torch_lenet():
    """The seed's model, verbatim."""
    model = tnn.Sequential(
        tnn.Conv2d(1, 6, kernel_size=5, padding=2), tnn.Sigmoid(), tnn.AvgPool2d(kernel_size=2, stride=2),
        tnn.Conv2d(6, 16, kernel_size=5), tnn.Sigmoid(), tnn.AvgPool2d(kernel_size=2, stride=2),
        tnn.Flatten(),
        tnn.Linear(400, 120), tnn.Sigmoid(), tnn.Linear(120, 84), tnn.Sigmoid(), tnn.Linear(84, 10))

    def init_weights(m):
        if type(m) is tnn.Linear or type(m) is tnn.Conv2d:
            tnn.init.xavier_uniform_(m.weight)

    model.apply(init_weights)
    return model


@pytest.fixture(scope="module")
def batches():
    """STEPS batches of real training images in a fixed shuffled order."""
    data = FashionMNIST(train=True, limit=STEPS * BATCH * 2)
    order = np.random.default_rng(0).permutation(len(data))[: STEPS * BATCH].reshape(STEPS, BATCH)
    return [(data.data[i], data.targets[i]) for i in order]


@pytest.fixture(params=["cpu-reference", "cpu-numba"]
                + ([pytest.param("cuda", marks=pytest.mark.gpu)] if engine.cuda.is_available() else []))
def device(request):
    """The device to train on; on the CPU, with each CPU backend in turn; cuda where it runs."""
    kind, _, cpu_backend = request.param.partition("-")
    if kind == "cuda":
        yield engine.device("cuda")
        return
    if not engine_backend.is_available(cpu_backend):
        pytest.skip(f"backend {cpu_backend!r} is not available on this machine")
    previous = engine_backend.get_backend()
    engine.set_backend(cpu_backend)
    yield engine.device("cpu")
    engine.set_backend(previous)


def test_lenet_training_matches_torch(batches, device):
    torch.manual_seed(0)
    t_model = torch_lenet()
    e_model = lenet()
    e_model.load_state_dict({k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()})
    e_model.to(device)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=LR)
    e_opt = optim.SGD(e_model.parameters(), lr=LR)
    t_loss_fn = tnn.CrossEntropyLoss(reduction="none")
    e_loss_fn = engine.nn.CrossEntropyLoss(reduction="none")

    t_losses, e_losses = [], []
    for x, y in batches:
        t_opt.zero_grad()
        t_loss = t_loss_fn(t_model(torch.from_numpy(x)), torch.from_numpy(y)).mean()
        t_loss.backward()
        t_opt.step()
        t_losses.append(t_loss.item())

        e_opt.zero_grad()
        e_loss = e_loss_fn(e_model(engine.tensor(x, device=device)), engine.tensor(y, device=device)).mean()
        e_loss.backward()
        e_opt.step()
        e_losses.append(e_loss.item())

    t_losses, e_losses = np.array(t_losses), np.array(e_losses)
    rel = np.abs(e_losses - t_losses) / np.abs(t_losses)
    print(f"\n{device} {engine_backend.get_backend()}: max per-step loss rel. diff {rel.max():.2e} over {STEPS} steps")
    assert rel.max() <= LOSS_RTOL, f"per-step loss rel. diff up to {rel.max():.2e}\nengine {e_losses}\ntorch {t_losses}"
    assert t_losses[-1] < t_losses[0]  # it trained: the comparison is not between two frozen models

    t_params = {k: v.detach().numpy() for k, v in t_model.state_dict().items()}
    for name, value in e_model.state_dict().items():
        e = value.detach().cpu().numpy()
        t = t_params[name]
        assert e.dtype == np.float32
        err = np.abs(e - t).max() / max(np.abs(t).max(), 1e-12)
        assert err <= PARAM_TOL, f"{name}: max |engine - torch| / max |torch| = {err:.2e}"
        print(f"  {name}: max |engine - torch| / max |torch| = {err:.2e}")

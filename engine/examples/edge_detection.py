"""The seed's example: detect vertical edges with a fixed 1x2 kernel, then learn that kernel.

Run with ``python -m engine.examples.edge_detection``. It is the seed's PyTorch program with only
its imports changed.
"""
import engine as torch
from engine import nn
from engine.nn import functional as F


def main(lr: float = 3e-2, num_epochs: int = 10):
    # a 6x8 image: four black columns (0) in the middle, white (1) elsewhere
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = torch.zeros(6, 7)
    Y[:, 1], Y[:, 5] = 1, -1
    # batch, channel, height, width
    X = X.reshape(1, 1, 6, 8)
    Y = Y.reshape(1, 1, 6, 7)

    print('1. edge detector (1, -1)')
    K = torch.tensor([1.0, -1.0]).reshape(1, 1, 1, 2)
    O = F.conv2d(X, K, bias=None)
    print(f'detector output equals the expected edges Y: {O.equal(Y)}')

    print('2. learn the kernel')
    net = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    for epoch in range(num_epochs):
        loss = (net(X) - Y) ** 2          # squared error
        net.zero_grad()
        loss.sum().backward()
        net.weight.data[:] -= lr * net.weight.grad   # SGD update
        print(f'epoch {epoch + 1}, loss {loss.sum():.3f}')
    print(f'kernel weights: {net.weight.data.reshape(1, 2)}')
    return net


if __name__ == '__main__':
    main()

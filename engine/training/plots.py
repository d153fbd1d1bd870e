"""End-of-run figures (matplotlib, Agg backend: no display needed).

curves.png            train loss, train acc and test acc per epoch
confusion_matrix.png  the test set's confusion matrix with the class names
kernels.png           the first convolution's learned 5x5 kernels beside their feature maps
                      on a few test images (kernels are learned feature detectors)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_curves(history: List[Dict[str, float]], path: os.PathLike) -> Path:
    """The seed's three curves (train loss, train acc, test acc) against the epoch."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    marker = "o" if len(epochs) <= 20 else None
    ax.plot(epochs, [row["train_loss"] for row in history], "-", marker=marker, label="train loss")
    ax.plot(epochs, [row["train_acc"] for row in history], "--", marker=marker, label="train acc")
    ax.plot(epochs, [row["test_acc"] for row in history], "-.", marker=marker, label="test acc")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("LeNet on FashionMNIST")
    return _save(fig, path)


def plot_confusion_matrix(confusion: np.ndarray, classes: Sequence[str], path: os.PathLike) -> Path:
    """``confusion[true, predicted]`` counts as a heat map, counts written in the cells."""
    confusion = np.asarray(confusion)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=classes, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max() / 2 if confusion.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if confusion[i, j] > threshold else "black")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"Test set confusion matrix (accuracy {accuracy:.4f})")
    return _save(fig, path)


def plot_kernels_and_feature_maps(kernels: np.ndarray, images: np.ndarray, feature_maps: np.ndarray,
                                  labels: Sequence[str], path: os.PathLike) -> Path:
    """Top row: the first layer's kernels ``(C_out, 1, KH, KW)``; then one row per test image
    ``(N, 1, H, W)``: the image, then its ``C_out`` feature maps ``(N, C_out, H', W')`` (after the
    activation) under the kernel that made each."""
    c_out, n = kernels.shape[0], images.shape[0]
    fig, axes = plt.subplots(n + 1, c_out + 1, figsize=(1.4 * (c_out + 1), 1.4 * (n + 1)), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].axis("off")
    axes[0, 0].text(0.5, 0.5, "kernels", ha="center", va="center")
    for c in range(c_out):
        axes[0, c + 1].imshow(kernels[c, 0], cmap="RdBu_r", vmin=-abs(kernels[c]).max(), vmax=abs(kernels[c]).max())
        axes[0, c + 1].set_title(f"kernel {c}", fontsize=8)
    for i in range(n):
        axes[i + 1, 0].imshow(images[i, 0], cmap="gray_r")
        axes[i + 1, 0].set_ylabel(labels[i], fontsize=7)
        for c in range(c_out):
            axes[i + 1, c + 1].imshow(feature_maps[i, c], cmap="viridis")
    fig.suptitle("First-layer kernels (top) and their feature maps on test images")
    return _save(fig, path)


def _save(fig, path: os.PathLike) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

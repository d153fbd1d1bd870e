"""Datasets and data loading: FashionMNIST (IDX files, optional verified download) and DataLoader."""
from engine.data.dataloader import DataLoader
from engine.data.fashion_mnist import CLASSES, DatasetError, FashionMNIST, download_files

__all__ = ["CLASSES", "DataLoader", "DatasetError", "FashionMNIST", "download_files"]

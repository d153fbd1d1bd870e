"""The Optimizer base: param groups, per-parameter state, and torch-compatible state dicts."""
from __future__ import annotations

import copy
from typing import Any, Dict, List

import numpy as np

from engine.device import like
from engine.tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults: Dict[str, Any]):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: List[Dict[str, Any]] = []
        self.state: Dict[int, Dict[str, Any]] = {}
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            self.param_groups.append(group)

    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def zero_grad(self, set_to_none: bool = True) -> None:
        for _, p in self._params():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def state_dict(self) -> Dict[str, Any]:
        """{'state': {index: {name: Tensor or number}}, 'param_groups': [{..., 'params': [index, ...]}]}."""
        index = {id(p): i for i, (_, p) in enumerate(self._params())}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[pid]: {k: (Tensor._wrap(v.copy()) if hasattr(v, "shape") else v) for k, v in s.items()}
                 for pid, s in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the saved param groups do not match this optimizer's")
        params = [p for _, p in self._params()]
        for own, saved in zip(self.param_groups, groups):
            own.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, entries in state_dict["state"].items():
            p = params[int(i)]
            restored = {}
            for k, v in entries.items():
                if isinstance(v, Tensor) or isinstance(v, np.ndarray) and v.ndim > 0:
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"load_state_dict: state {k!r} of parameter {i} has shape "
                                         f"{tuple(v.shape)}, but the parameter has shape {tuple(p.shape)}")
                    v = like(v._data if isinstance(v, Tensor) else v, p._data).astype(p.dtype).copy()
                elif isinstance(v, np.ndarray):
                    v = v.item()
                restored[k] = v
            self.state[id(p)] = restored

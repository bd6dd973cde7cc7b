"""Import published weights into the backbones of :mod:`arcface.nn.backbones`.

* :func:`load_onnx_recognizer` reads an insightface ONNX recognizer (``w600k_mbf.onnx``, the IResNet
  layout of ``w600k_r50.onnx`` and other arcface_torch exports) and returns the equivalent torch module.
  In those graphs every BatchNorm that follows a convolution was folded into the convolution
  (``W' = W * gamma / sqrt(var + eps)``, ``b' = beta - mean * gamma / sqrt(var + eps)``). The folded ``W'`` goes
  into the conv and ``b'`` into the BN's bias, with the BN set to an identity scale (mean 0, variance 1,
  weight ``sqrt(1 + eps)``), which reproduces the graph in eval mode to float32 rounding. Such a module is
  meant for inference and fine-tuning; its BN statistics are not the original ones.
* :func:`load_arcface_torch` loads an arcface_torch ``backbone.pth`` state dict (names match directly).

Matching is by structure, not by node names: the torch model's layers, in the order its forward pass
calls them, are paired with the graph's Conv / BatchNormalization / PRelu / Gemm nodes in graph order,
checking every weight shape; a mismatch raises :class:`~arcface.errors.ModelError`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from arcface.errors import InputError, ModelError, require
from arcface.nn.backbones import create_model, list_models
from arcface.nn.backbones.iresnet import IRESNET_DEPTHS

_PARAM_OPS = ("Conv", "BatchNormalization", "PRelu", "Gemm", "MatMul")
_SEARCH_WINDOW = 8  # how far ahead a reordered node (e.g. a downsample branch) may be found


@dataclass
class _Graph:
    nodes: list[Any]
    consts: dict[str, np.ndarray]
    consumers: dict[str, list[Any]] = field(default_factory=dict)


def _read_graph(path: str | Path) -> _Graph:
    onnx = require("onnx", "train")
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX model file not found")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from exc
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
        elif node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    nodes = [n for n in g.node if n.op_type in _PARAM_OPS]
    return _Graph(nodes, consts, consumers)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class _Unit:
    kind: str  # conv | bn | prelu | linear
    module: nn.Module
    bn: nn.Module | None = None  # BatchNorm fused after a conv


def _torch_units(model: nn.Module, input_size: tuple[int, int] = (112, 112)) -> list[_Unit]:
    """The model's parameterised leaf layers in forward-call order, pairing each conv with the BN that
    directly consumes its output. The order is traced on a shape-only copy (``meta`` device)."""
    kinds = (nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.PReLU, nn.Linear)
    shadow = copy.deepcopy(model).to("meta").eval()
    real = dict(model.named_modules())
    calls: list[tuple[nn.Module, Any, Any]] = []

    def hook(m, inp, out):
        calls.append((real[shadow_names[m]], inp[0], out))

    shadow_names = {m: n for n, m in shadow.named_modules()}
    handles = [m.register_forward_hook(hook) for m in shadow.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            shadow(torch.zeros(1, 3, *input_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    units: list[_Unit] = []
    i = 0
    while i < len(calls):
        m, _, out = calls[i]
        if isinstance(m, nn.Conv2d):
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            if nxt is not None and isinstance(nxt[0], nn.BatchNorm2d) and nxt[1] is out:
                units.append(_Unit("conv", m, nxt[0]))
                i += 2
                continue
            units.append(_Unit("conv", m))
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            units.append(_Unit("bn", m))
        elif isinstance(m, nn.PReLU):
            units.append(_Unit("prelu", m))
        else:
            units.append(_Unit("linear", m))
        i += 1
    return units


def _set(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    value = np.array(value, dtype=np.float32)  # a writable copy
    if value.size != param.numel():
        raise ModelError(f"{what}: graph holds {value.shape}, model expects {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value.reshape(tuple(param.shape))))


class _Matcher:
    def __init__(self, graph: _Graph):
        self.g = graph
        self.used: set[int] = set()
        self.cursor = 0

    def const(self, node: Any, i: int) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name not in self.g.consts:
            raise ModelError(f"ONNX node {node.name or node.op_type}: input {name!r} is not a constant")
        return self.g.consts[name]

    def take(self, ops: tuple[str, ...], accept, what: str) -> Any:
        """The first unused node of type ``ops`` at or after the cursor (within a window) that ``accept``s."""
        seen = 0
        for j in range(self.cursor, len(self.g.nodes)):
            if j in self.used:
                continue
            node = self.g.nodes[j]
            if node.op_type in ops and accept(node):
                self.used.add(j)
                while self.cursor in self.used:
                    self.cursor += 1
                return node
            seen += 1
            if seen > _SEARCH_WINDOW:
                break
        raise ModelError(f"ONNX graph has no {'/'.join(ops)} node matching {what} (wrong architecture?)")

    def mark_used(self, node: Any) -> None:
        for j, n in enumerate(self.g.nodes):
            if n is node:
                self.used.add(j)
        while self.cursor in self.used:
            self.cursor += 1

    def sole_consumer(self, node: Any, op: str) -> Any | None:
        cons = self.g.consumers.get(node.output[0], [])
        if len(cons) == 1 and cons[0].op_type == op:
            return cons[0]
        return None


def _load_bn(bn: nn.Module, node: Any, m: _Matcher, name: str, extra_bias: np.ndarray | None = None) -> None:
    scale, bias, mean, var = (m.const(node, i) for i in range(1, 5))
    _set(bn.weight, scale, f"{name}.weight")
    _set(bn.bias, bias, f"{name}.bias")
    if extra_bias is not None:  # conv bias b before the BN: BN(x + b) == BN'(x) with mean' = mean - b
        mean = mean - extra_bias
    _set(bn.running_mean, mean, f"{name}.running_mean")
    _set(bn.running_var, var, f"{name}.running_var")
    bn.eps = float(_attrs(node).get("epsilon", 1e-5))


def _identity_bn(bn: nn.Module, bias: np.ndarray | None, name: str) -> None:
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_(math.sqrt(1.0 + bn.eps))
    _set(bn.bias, bias if bias is not None else np.zeros(n, np.float32), f"{name}.bias")


def _apply(units: list[_Unit], names: dict[nn.Module, str], graph: _Graph) -> None:
    m = _Matcher(graph)
    for u in units:
        name = names[u.module]
        if u.kind == "conv":
            conv = u.module
            shape = tuple(conv.weight.shape)

            def conv_ok(node, conv=conv, shape=shape):
                w = m.const(node, 1)
                a = _attrs(node)
                return (
                    w is not None
                    and tuple(w.shape) == shape
                    and int(a.get("group", 1)) == conv.groups
                    and tuple(a.get("strides", (1, 1))) == tuple(conv.stride)
                    and list(a.get("pads", (0, 0, 0, 0))) == list(conv.padding) * 2
                )

            node = m.take(("Conv",), conv_ok, f"{name} (weight {shape}, stride {conv.stride})")
            _set(conv.weight, m.const(node, 1), f"{name}.weight")
            bias = m.const(node, 2)
            if u.bn is not None:
                bn_node = m.sole_consumer(node, "BatchNormalization")
                if bn_node is not None:
                    m.mark_used(bn_node)
                    _load_bn(u.bn, bn_node, m, names[u.bn], extra_bias=bias)
                else:
                    _identity_bn(u.bn, bias, names[u.bn])
            elif conv.bias is not None:
                _set(conv.bias, bias if bias is not None else np.zeros(shape[0], np.float32), f"{name}.bias")
            elif bias is not None and np.any(bias != 0):
                raise ModelError(f"{name}: the graph's conv has a bias but the model's conv has none")
        elif u.kind == "bn":
            n = u.module.num_features
            node = m.take(
                ("BatchNormalization",),
                lambda nd, n=n: m.const(nd, 1) is not None and m.const(nd, 1).size == n,
                f"{name} ({n} channels)",
            )
            _load_bn(u.module, node, m, name)
        elif u.kind == "prelu":
            n = u.module.num_parameters
            node = m.take(
                ("PRelu",), lambda nd, n=n: m.const(nd, 1) is not None and m.const(nd, 1).size in (1, n), name
            )
            slope = m.const(node, 1).reshape(-1)
            _set(u.module.weight, np.broadcast_to(slope, (n,)) if slope.size == 1 else slope, f"{name}.weight")
        else:
            lin = u.module
            out_f, in_f = lin.weight.shape

            def lin_ok(node, out_f=out_f, in_f=in_f):
                w = m.const(node, 1)
                if w is None or w.ndim != 2:
                    return False
                trans = node.op_type == "Gemm" and int(_attrs(node).get("transB", 0)) == 1
                return tuple(w.shape) == ((out_f, in_f) if trans else (in_f, out_f))

            node = m.take(("Gemm", "MatMul"), lin_ok, f"{name} (Linear {in_f} -> {out_f})")
            w = m.const(node, 1)
            if not (node.op_type == "Gemm" and int(_attrs(node).get("transB", 0)) == 1):
                w = w.T
            bias = m.const(node, 2) if node.op_type == "Gemm" else None
            if node.op_type == "Gemm":
                a = _attrs(node)
                if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
                    raise ModelError(f"{name}: Gemm with alpha/beta != 1 is not supported")
            else:
                add = m.sole_consumer(node, "Add")
                if add is not None:
                    bias = graph.consts.get(add.input[1]) if add.input[1] in graph.consts else None
            _set(lin.weight, w, f"{name}.weight")
            if lin.bias is not None:
                _set(lin.bias, bias if bias is not None else np.zeros(out_f, np.float32), f"{name}.bias")
            elif bias is not None and np.any(bias != 0):
                raise ModelError(f"{name}: the graph's linear layer has a bias but the model's has none")
    left = [graph.nodes[j] for j in range(len(graph.nodes)) if j not in m.used]
    left = [n for n in left if not (n.op_type == "MatMul" and m.const(n, 1) is None)]
    if left:
        ops = ", ".join(f"{n.op_type}:{n.name or n.output[0]}" for n in left[:5])
        raise ModelError(f"ONNX graph has {len(left)} layer(s) the model does not use ({ops}); wrong architecture?")


def detect_arch(path: str | Path) -> tuple[str, int]:
    """Guess ``(arch, num_features)`` of an insightface ONNX recognizer from its layer shapes."""
    return _detect(_read_graph(path), path)


def _detect(g: _Graph, path: str | Path) -> tuple[str, int]:
    lin = [n for n in g.nodes if n.op_type in ("Gemm", "MatMul") and n.input[1] in g.consts]
    if not lin:
        raise ModelError(f"{path}: no fully connected layer; not an insightface recognizer")
    w = g.consts[lin[-1].input[1]]
    trans = lin[-1].op_type == "Gemm" and int(_attrs(lin[-1]).get("transB", 0)) == 1
    out_f, in_f = w.shape if trans else w.shape[::-1]
    convs = [n for n in g.nodes if n.op_type == "Conv"]
    if any(int(_attrs(n).get("group", 1)) > 1 for n in convs):
        if in_f == 64 * 7 * 7:
            return "mbf_w600k", int(out_f)
        return "mbf", int(out_f)
    per_stage = {64: 0, 128: 0, 256: 0, 512: 0}
    for n in convs:
        wc = g.consts.get(n.input[1])
        if wc is not None and wc.shape[2:] == (3, 3) and wc.shape[1] != 3 and wc.shape[0] in per_stage:
            per_stage[wc.shape[0]] += 1
    depths = tuple(per_stage[c] // 2 for c in (64, 128, 256, 512))
    for name, d in IRESNET_DEPTHS.items():
        if d == depths:
            return name, int(out_f)
    raise ModelError(f"{path}: unrecognised IResNet stage depths {depths}")


def load_onnx_recognizer(path: str | Path, arch: str | None = None) -> nn.Module:
    """Build the torch equivalent of an insightface ONNX recognition model (eval mode, CPU, float32).

    Args:
        path: the ``.onnx`` file (input ``(N, 3, 112, 112)`` RGB ``(x - 127.5) / 127.5``).
        arch: a registered backbone name (``"mbf_w600k"`` for ``w600k_mbf.onnx``, ``"iresnet50"`` for
            ``w600k_r50.onnx``); ``None`` detects it from the layer shapes.
    Raises:
        InputError: missing file; ModelError: unreadable graph or layers that do not match ``arch``.
    """
    graph = _read_graph(path)
    det_arch, num_features = _detect(graph, path)
    arch = arch or det_arch
    if arch not in list_models():
        raise InputError(f"unknown arch {arch!r}; registered models: {', '.join(list_models())}")
    model = create_model(arch, num_features=num_features)
    names = {mod: n for n, mod in model.named_modules()}
    _apply(_torch_units(model), names, graph)
    return model.eval()


def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in sd.items():
        for p in ("module.", "_orig_mod."):
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def load_arcface_torch(path_or_state_dict: str | Path | Mapping[str, Any], arch: str, **kwargs: Any) -> nn.Module:
    """Load an arcface_torch backbone state dict (``backbone.pth``) into ``create_model(arch, **kwargs)``.

    Accepts a path or a state dict; a dict holding ``"state_dict"`` (our checkpoints) is unwrapped and
    ``module.`` prefixes (DDP) are stripped. ``num_features`` is read from ``fc.weight`` /
    ``features.*`` when not given. Returns the model in eval mode.
    """
    if isinstance(path_or_state_dict, str | Path):
        from arcface import torchfile

        sd = torchfile.load(path_or_state_dict, "checkpoint")
    else:
        sd = path_or_state_dict
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise ModelError(f"checkpoint is not a state dict (got {type(sd).__name__})")
    sd = _strip_prefix(sd)
    if "num_features" not in kwargs:
        for key in ("features.running_mean", "features.layers.3.running_mean"):
            if key in sd:
                kwargs["num_features"] = int(sd[key].shape[0])
                break
    model = create_model(arch, **kwargs)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"checkpoint does not fit {arch!r}: missing {result.missing_keys[:5]} "
            f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)})"
        )
    return model.eval()

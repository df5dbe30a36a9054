#!/usr/bin/env python3
"""Builds model.onnx, the all-MiniLM-L6-v2 sentence encoder the embed crate's OpenVINO backend runs, from the
model.safetensors that ops/models/fetch-minilm.sh installs (numpy + onnx; no torch, no exporter).

Usage: build-minilm-onnx.py MODEL_DIR  (reads MODEL_DIR/model.safetensors and config.json, writes
MODEL_DIR/model.onnx). Run through ops/models/build-minilm-onnx.sh, which makes the pinned virtual environment.

The graph computes what the candle backend computes (candle-transformers' BertModel, operators/embed/src/model.rs),
i.e. sentence-transformers' Transformer → mean Pooling → Normalize for this model:
  inputs  input_ids, attention_mask: int64 [batch, seq] (token type ids are all 0, as in the candle path)
  embeddings = LayerNorm(word[ids] + position[0..seq] + token_type[0]), eps 1e-12
  6 × { scores = Q Kᵀ / √32 + (1 − mask) · f32::MIN over 12 heads; softmax; context;
        x = LayerNorm(x + dense(context)); x = LayerNorm(x + dense(gelu_erf(dense(x)))) }
  output  embedding: float32 [batch, 384] = v / max(‖v‖₂, 1e-12), v = Σ mask·x / max(Σ mask, 1e-9)
Weights stay float32 (the runtime's precision hint chooses bf16 or f32). The input's SHA-256 and the output's
SHA-256 are pinned: the same inputs and the pinned onnx/protobuf versions give a byte-identical file.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# model.safetensors of all-MiniLM-L6-v2, as pinned by ops/models/fetch-minilm.sh.
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# The file this script writes from it (onnx 1.23.2, protobuf 7.36.2: onnx-build-requirements.txt).
ONNX_SHA256 = "8a50243faf12b7a578088ae36f708e5c3e6af81f79823862123d8d1218b2a6f2"
OPSET = 17  # LayerNormalization
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
F32_MIN = float(np.finfo(np.float32).min)

SAFETENSORS_DTYPES = {"F32": np.float32, "I64": np.int64}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_safetensors(path):
    """Tensors of a .safetensors file: 8-byte little-endian header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        out[name] = np.frombuffer(data[base + start : base + end], dtype=dtype).reshape(info["shape"]).copy()
    return out


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return "%s_%d" % (hint, self.count)

    def const(self, hint, array):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def weight(self, key):
        return self.const(key, self.w[key])

    def linear(self, x, prefix):
        # torch Linear: x Wᵀ + b; Wᵀ is stored (a transpose is exact).
        wt = self.const(prefix + ".weight.T", np.ascontiguousarray(self.w[prefix + ".weight"].T))
        return self.op("Add", [self.op("MatMul", [x, wt]), self.weight(prefix + ".bias")])

    def layer_norm(self, x, prefix, eps):
        return self.op(
            "LayerNormalization", [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")], axis=-1, epsilon=eps
        )


def build(weights, config):
    g = Graph(weights)
    eps = float(config["layer_norm_eps"])
    layers = int(config["num_hidden_layers"])
    assert config["hidden_size"] == HIDDEN and config["num_attention_heads"] == HEADS, "not all-MiniLM-L6-v2"
    assert config["hidden_act"] == "gelu", "expects erf GELU"

    # Embeddings.
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one", np.array(1, np.int64))], axis=0)
    positions = g.op("Range", [g.const("zero", np.array(0, np.int64)), seq, g.const("step", np.array(1, np.int64))])
    word = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    pos = g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), positions], axis=0)
    typ = g.const("token_type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Add", [word, pos]), typ])
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    # Attention mask: [B, S] → (1 − m) · f32::MIN as [B, 1, 1, S]; the pooling weights m as [B, S, 1].
    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inv = g.op("Sub", [g.const("onef", np.array(1.0, np.float32)), mask])
    ext = g.op("Mul", [inv, g.const("f32min", np.array(F32_MIN, np.float32))])
    ext = g.op("Unsqueeze", [ext, g.const("axes12", np.array([1, 2], np.int64))])
    heads_shape = g.const("heads_shape", np.array([0, 0, HEADS, HEAD_DIM], np.int64))
    merged_shape = g.const("merged_shape", np.array([0, 0, HIDDEN], np.int64))
    scale = g.const("scale", np.array(1.0 / np.sqrt(HEAD_DIM), np.float32))

    for i in range(layers):
        p = "encoder.layer.%d." % i
        q = g.op("Transpose", [g.op("Reshape", [g.linear(x, p + "attention.self.query"), heads_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [g.linear(x, p + "attention.self.key"), heads_shape])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [g.linear(x, p + "attention.self.value"), heads_shape])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), ext])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merged_shape])
        x = g.layer_norm(g.op("Add", [g.linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm", eps)
        h = g.linear(x, p + "intermediate.dense")
        # gelu_erf(h) = h · 0.5 · (1 + erf(h / √2))
        erf = g.op("Erf", [g.op("Div", [h, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
        h = g.op("Mul", [g.op("Mul", [h, g.const("half", np.array(0.5, np.float32))]), g.op("Add", [erf, g.const("onef", np.array(1.0, np.float32))])])
        x = g.layer_norm(g.op("Add", [g.linear(h, p + "output.dense"), x]), p + "output.LayerNorm", eps)

    # Mean pooling under the mask, then L2 normalisation (torch F.normalize).
    m3 = g.op("Unsqueeze", [mask, g.const("axis2", np.array([2], np.int64))])
    axis1 = g.const("axis1", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m3, axis1], keepdims=0), g.const("eps_count", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, count])
    norm = g.op("Max", [g.op("ReduceL2", [mean], axes=[-1], keepdims=1), g.const("eps_norm", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"], name="embedding"))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="millionx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: build-minilm-onnx.py MODEL_DIR")
    model_dir = sys.argv[1]
    src = os.path.join(model_dir, "model.safetensors")
    got = sha256(src)
    if got != SAFETENSORS_SHA256:
        sys.exit("build-minilm-onnx: %s has SHA-256 %s, expected %s" % (src, got, SAFETENSORS_SHA256))
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = build(read_safetensors(src), config)
    dest = os.path.join(model_dir, "model.onnx")
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    got = sha256(tmp)
    if got != ONNX_SHA256:
        os.remove(tmp)
        sys.exit("build-minilm-onnx: built model.onnx has SHA-256 %s, expected %s" % (got, ONNX_SHA256))
    os.replace(tmp, dest)
    print("build-minilm-onnx: wrote %s (SHA-256 %s)" % (dest, got))


if __name__ == "__main__":
    main()

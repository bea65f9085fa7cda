"""safetensors files written and read without the safetensors package.

Format (model-spec.md §1): 8-byte little-endian header length n, n bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, offsets
relative to the end of the header), then the data. The header is padded with spaces to a
multiple of 8 bytes so every tensor starts 8-byte aligned. dtypes here: BF16, F32.
"""

import json
import struct

import torch

_DTYPES = {torch.bfloat16: ("BF16", torch.int16), torch.float32: ("F32", torch.int32)}
_BY_NAME = {"BF16": (torch.bfloat16, torch.int16, 2), "F32": (torch.float32, torch.int32, 4)}


def _raw_bytes(t):
    dtype_name, same_size_int = _DTYPES[t.dtype]
    return dtype_name, t.contiguous().view(same_size_int).numpy().tobytes()  # little-endian host


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch tensor in BF16 or F32), written in that order."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        if name in header:
            raise ValueError(f"duplicate tensor name '{name}'")
        dtype_name, raw = _raw_bytes(t.detach().cpu())
        header[name] = {"dtype": dtype_name, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """{name: torch tensor} in the stored dtype."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, same_size_int, size = _BY_NAME[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // size
        ints = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=same_size_int, count=count)
        out[name] = ints.view(dtype).reshape(info["shape"])
    return out

#!/usr/bin/env python3
"""make_safetensors_fixture.py - the interoperability fixture for engine/safetensors.c.

Writes, with the reference implementation (huggingface safetensors + torch, versions pinned in
requirements.txt and recorded in the metadata):
  tests/data/safetensors/reference.safetensors  one tensor per dtype we read, incl. bf16 and both
      float8 kinds (every one of the 256 bit patterns), f16 special values, odd shapes, a scalar,
      an empty tensor, and __metadata__ with non-ASCII text
  tests/data/safetensors/expected_f32.safetensors  the same names, converted to float32 by torch
      (.to(torch.float32)), which is the oracle tests/test_safetensors.c compares against.
Run: /root/refenv/bin/python tests/reference/make_safetensors_fixture.py
"""
import os

import numpy as np
import safetensors
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "safetensors")


def main():
    os.makedirs(OUT, exist_ok=True)
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    g = torch.Generator().manual_seed(1234)
    f16_bits = torch.tensor(
        [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3555, 0x7BFF, 0xFBFF,
         0x7C00, 0xFC00, 0x7E00, 0x4248, 0x1234], dtype=torch.int32).to(torch.int16)
    t = {
        "f8_e4m3.all_codes": codes.clone().view(torch.float8_e4m3fn).reshape(16, 16),
        "f8_e5m2.all_codes": codes.clone().view(torch.float8_e5m2).reshape(2, 8, 16),
        "f16.specials": f16_bits.view(torch.float16),
        "bf16.random": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "bf16.specials": torch.tensor([0.0, -0.0, 1e-40, float("inf"), -float("inf"), 3.0e38, -1.5],
                                      dtype=torch.bfloat16),
        "f32.random": torch.randn(2, 3, 1, generator=g),
        "f64.values": torch.tensor([1.0 / 3.0, -2.5e-300, 1e300, 0.1], dtype=torch.float64),
        "i64.values": torch.tensor([-(2**63), 2**63 - 1, -7, 16777217], dtype=torch.int64),
        "i32.values": torch.tensor([-(2**31), 2**31 - 1, 12345], dtype=torch.int32),
        "i16.values": torch.tensor([-32768, 32767, -1], dtype=torch.int16),
        "i8.values": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8.values": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool.values": torch.tensor([True, False, True]),
        "scalar.f32": torch.tensor(2.75),
        "empty.f16": torch.zeros(0, 4, dtype=torch.float16),
    }
    meta = {
        "generator": "tests/reference/make_safetensors_fixture.py",
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "seed": "1234",
        "note": "caf\u00e9 \u4e2d\u6587 \U0001F600",
    }
    save_file(t, os.path.join(OUT, "reference.safetensors"), metadata=meta)
    exp = {k: v.to(torch.float32).contiguous() for k, v in t.items()}
    save_file(exp, os.path.join(OUT, "expected_f32.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()

"""The peer for denserl's bf16 attention: PyTorch's scaled_dot_product_attention through
cuDNN's fused attention and through FlashAttention-2 (both bundled with PyTorch), causal,
bf16, on the shapes benchmarks/bench_cuda.c times. Prints one JSON object: for each backend
and shape the median forward and forward+backward milliseconds (CUDA events around groups
of 10 back-to-back calls, 3 warm-ups, random inputs). Usage: python3 peer_attention.py [--quick] > peer.json"""
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def median_ms(fn, reps=10, group=10):
    """Median over reps of the mean time of `group` back-to-back calls between two events, so
    the GPU queue stays full and Python's launch overhead is not counted against the peer."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(group):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / group)
    times.sort()
    return times[len(times) // 2]


def time_backend(backend, B, T, H, Hkv, D):
    g = torch.Generator(device="cuda").manual_seed(0)
    # the layout denserl keeps, (B, T, heads, D), viewed as (B, heads, T, D) for SDPA
    def rnd(h):
        return torch.rand(B, T, h, D, generator=g, device="cuda", dtype=torch.bfloat16).mul_(2).sub_(1)
    q, k, v = (rnd(H).requires_grad_(), rnd(Hkv).requires_grad_(), rnd(Hkv).requires_grad_())
    dout = rnd(H).transpose(1, 2)
    gqa = Hkv != H
    with sdpa_kernel([backend]):
        def fwd():
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                  v.transpose(1, 2), is_causal=True,
                                                  enable_gqa=gqa)
        def fwd_bwd():
            o = fwd()
            torch.autograd.grad(o, (q, k, v), dout)
        with torch.no_grad():
            f = median_ms(fwd)
        fb = median_ms(fwd_bwd)
    return {"fwd_ms": f, "fwd_bwd_ms": fb}


def main():
    quick = "--quick" in sys.argv
    B, T, H, D = (1 if quick else 4), 2048, 16, 128
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
           "cudnn": torch.backends.cudnn.version(), "results": []}
    for Hkv in (16, 4):
        for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            row = {"backend": name, "B": B, "T": T, "H": H, "Hkv": Hkv, "D": D}
            try:
                row.update(time_backend(be, B, T, H, Hkv, D))
            except Exception as e:  # a backend that refuses the shape is reported, not fatal
                row["error"] = str(e).splitlines()[0][:200]
            out["results"].append(row)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

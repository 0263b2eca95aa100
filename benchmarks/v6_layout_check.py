"""Does v6's PTX path give the right answer in every layout its check accepts? (GPU, float16 X, asymmetric.)"""
import sys, warnings, re
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import DEVICE, import_kernels  # noqa
kernels = import_kernels()
from course_lib.kernels import w4a16_fast  # noqa
from course_lib.kernels.launch import Config  # noqa
gen = torch.Generator(device=DEVICE).manual_seed(0)
pack = lambda c: c[..., 0::2] | (c[..., 1::2] << 4)  # noqa
seen = {}
orig = w4a16_fast._v6_layout_ok
def spy(compiled):
    ok = orig(compiled)
    ttgir = compiled.asm["ttgir"]
    found = re.search(r"elementwise_inline_asm.*?-> tensor<[0-9x]+xf32, (#[\w]+)>", ttgir)
    spec = re.search(re.escape(found.group(1)) + r" = #ttg\.blocked<\{sizePerThread = (\[[^\]]*\]), threadsPerWarp = (\[[^\]]*\]), warpsPerCTA = (\[[^\]]*\])", ttgir)
    seen["last"] = (ok, spec.groups())
    return ok
w4a16_fast._v6_layout_ok = spy
for (N, K, group) in [(64, 4096, 128), (37, 1088, 64)]:
    X = torch.randn(1, K, generator=gen, device=DEVICE).half()
    q = torch.randint(0, 16, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8)
    G = K // group
    z = torch.randint(0, 16, (N, G), generator=gen, device=DEVICE, dtype=torch.uint8)
    s = (torch.rand(N, G, generator=gen, device=DEVICE) * 0.02 + 0.005).half()
    zf = z.reshape(-1)
    zp = pack(torch.cat([zf, zf.new_zeros(zf.numel() % 2)]))
    for sym in (False, True):
        ref = kernels.w4a16_reference(X.double(), pack(q), s, None if sym else zp, None, None)
        for bn, bk, unroll, warps in [(2, 1024, 4, 1), (4, 1024, 4, 1), (8, 256, 4, 1), (4, 1024, 8, 2), (8, 1024, 4, 2),
                                      (4, 1024, 4, 4), (4, 1024, 16, 4), (2, 1024, 8, 1), (8, 256, 8, 1)]:
            out = torch.full((1, N), float("nan"), device=DEVICE, dtype=torch.half)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kernels.w4a16_matmul(X, pack(q), s, None if sym else zp, out=out, version=6,
                                     config=Config(block_n=bn, block_k=bk, unroll=unroll, num_warps=warps, num_stages=1))
            e = ((out.double() - ref).norm() / ref.norm()).item()
            ok, spec = seen.get("last", (None, None))
            print(f"N={N} K={K} g={group} sym={sym} bn={bn} bk={bk} unroll={unroll} warps={warps} "
                  f"ptx_layout_ok={ok} {spec} rel_err={e:.1e} {'WRONG' if not e < 2e-3 else ''}", flush=True)

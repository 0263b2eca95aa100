import sys, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import DEVICE, import_kernels  # noqa
kernels = import_kernels()
from course_lib.kernels import gemv_xs
gen = torch.Generator(device=DEVICE).manual_seed(0)
pack = lambda c: c[..., 0::2] | (c[..., 1::2] << 4)  # noqa
for (N, K, group, R, warps) in [(37, 1088, 64, 2, 2), (38, 1088, 64, 2, 2), (37, 1024, 64, 2, 2), (37, 2048, 128, 2, 4),
                                (64, 2048, 128, 2, 4), (64, 2048, 128, 4, 4), (37, 1088, 64, 2, 1)]:
    X = torch.randn(1, K, generator=gen, device=DEVICE).half()
    q = torch.randint(0, 16, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8)
    G = K // group
    z = torch.randint(0, 16, (N, G), generator=gen, device=DEVICE, dtype=torch.uint8)
    s = (torch.rand(N, G, generator=gen, device=DEVICE) * 0.02 + 0.005).half()
    zf = z.reshape(-1)
    zp = pack(torch.cat([zf, zf.new_zeros(zf.numel() % 2)]))
    ref = kernels.w4a16_reference(X, pack(q), s, zp, None, None).float()[0]
    out = torch.full((1, N), float("nan"), device=DEVICE, dtype=torch.half)
    gemv_xs.launch(X, pack(q), s, zp, None, out, group, R=R, rows_per_program=4 * R, num_warps=warps)
    bad = ((out[0].float() - ref).abs() > 1e-2 * ref.abs().max()).nonzero().flatten().tolist()
    # which zero point would explain row r: try the z of other rows
    print(N, K, group, R, warps, "bad rows", bad[:20], flush=True)
    if bad:
        Wq = q.float()
        for r in bad[:4]:
            for cand in range(N):
                g = torch.arange(K, device=DEVICE) // group
                w = (Wq[r] - z[cand].float()[g]) * s[r].float()[g]
                if abs((X.float()[0] @ w) - out[0, r].float()) < 1e-2 * ref.abs().max():
                    print("   row", r, "matches zero points of row", cand)

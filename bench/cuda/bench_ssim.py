#!/usr/bin/env python3
"""bench_ssim.py: the engine's CUDA backend against fused-ssim, pytorch-msssim and torchmetrics.

Every implementation runs in this one process on the same CUDA tensors; the engine is reached
through libssim_bench_engine.so (bench_engine.c) with SSIM_MEMORY_DEVICE, so no copy is timed
that a peer does not make. The engine's rows use ssim_compute_async on PyTorch's current stream
(scores left in device memory, nothing waited for), as the peers return device tensors; the
"host" row is ssim_compute, which also brings the scores to the host and waits for them. Times are medians of CUDA-event intervals after a warm-up. The script
also checks that the engine's scores, maps and gradients agree with fused-ssim's, and measures
the device's copy bandwidth and FP32 FMA rate to put each time next to the device's limits.

The asynchronous calls go through the compiled module ssim_bench_call (bench_call.c) where it was
built (next to the library, or on PYTHONPATH), as fused-ssim is reached through its compiled
extension; ctypes' own conversions cost several microseconds a call, which the "inference ctypes"
row shows. Without the module every call goes through ctypes.

Environment:
  SSIM_BENCH_LIB       libssim_bench_engine.so (default: next to this script)
  FUSED_SSIM_DIR       set when fused-ssim has been built and is importable; else it is skipped
  PYTORCH_MSSSIM_DIR   a source tree of pytorch-msssim (pure Python); skipped when absent
  SSIM_BENCH_REPS      timed repetitions per measurement (default 30)
  SSIM_BENCH_ROUNDS    rounds of the engine's and fused-ssim's measurements, taken in turn; each
                       time is the median of its rounds (default 3)
  SSIM_BENCH_SHAPES    comma-separated subset of the shape names below (default: all)
  SSIM_BENCH_PEERS=0   time the engine alone (to compare builds of it)
  SSIM_BENCH_CTYPES=1  call through ctypes even where ssim_bench_call is built

cuDNN's TF32 convolutions are turned off, so that the peers built on convolutions compute in
float32 like the engine (with TF32 pytorch-msssim's scores move by about 1e-3).
"""
import ctypes
import os
import statistics
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPS = int(os.environ.get("SSIM_BENCH_REPS", "30"))
ROUNDS = int(os.environ.get("SSIM_BENCH_ROUNDS", "3"))
WARMUP = 5
SHAPES = {
    "1x3x1080x1920": (1, 3, 1080, 1920),
    "8x3x1080x1920": (8, 3, 1080, 1920),
    "1x3x2160x3840": (1, 3, 2160, 3840),
    "32x1x1080x1920": (32, 1, 1080, 1920),
    "64x3x256x256": (64, 3, 256, 256),
}
U8, U16, F32 = 0, 1, 2
SAME, VALID = 0, 1
DEVICE_MEMORY = 1
C1, C2 = 0.01**2, 0.03**2


class Engine:
    """The SSIM engine through its flat C interface."""

    def __init__(self, path, backend="cuda"):
        lib = ctypes.CDLL(path)
        vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        lib.ssim_bench_open.restype = vp
        lib.ssim_bench_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, sz]
        lib.ssim_bench_close.argtypes = [vp]
        lib.ssim_bench_device.restype = ctypes.c_char_p
        lib.ssim_bench_device.argtypes = [vp]
        lib.ssim_bench_last_error.restype = ctypes.c_char_p
        lib.ssim_bench_last_error.argtypes = [vp]
        lib.ssim_bench_compute.argtypes = [vp, i, i, i, sz, sz, sz, sz] + [vp] * 8
        lib.ssim_bench_compute_async.argtypes = [vp, i, i, sz, sz, sz, sz] + [vp] * 9
        lib.ssim_bench_backward.argtypes = [vp, i, i, i, sz, sz, sz, sz] + [vp] * 5
        detail = ctypes.create_string_buffer(256)
        self.handle = lib.ssim_bench_open(backend.encode(), detail, 256)
        if not self.handle:
            raise RuntimeError("engine: " + detail.value.decode())
        self.lib = lib
        self.device = lib.ssim_bench_device(self.handle).decode()
        self.call = load_compiled_call(path)
        self.async_fn = ctypes.cast(lib.ssim_bench_compute_async, ctypes.c_void_p).value

    def check(self, rc):
        if rc != 0:
            raise RuntimeError(self.lib.ssim_bench_last_error(self.handle).decode())

    def compute(self, img1, img2, dtype, out, padding=SAME, memory=DEVICE_MEMORY):
        """out: dict with 'scores' (a CPU float64 tensor) and optional 'channels', 'map',
        'blocks' (CPU), 'grad1', 'grad2' (in `memory`)."""
        b, c, h, w = img1.shape
        ptr = lambda t: t.data_ptr() if t is not None else None
        self.check(self.lib.ssim_bench_compute(
            self.handle, dtype, padding, memory, b, c, h, w, img1.data_ptr(), img2.data_ptr(),
            ptr(out["scores"]), ptr(out.get("channels")), ptr(out.get("map")),
            ptr(out.get("blocks")), ptr(out.get("grad1")), ptr(out.get("grad2"))))

    def compute_async(self, img1, img2, dtype, out, padding=SAME, compiled=True):
        """ssim_compute_async on the current stream; every tensor in `out` is a CUDA tensor.
        Through ssim_bench_call where it is loaded, unless `compiled` is False."""
        b, c, h, w = img1.shape
        ptr = lambda t: t.data_ptr() if t is not None else None
        args = (self.handle, dtype, padding, b, c, h, w, img1.data_ptr(), img2.data_ptr(),
                ptr(out["scores"]), ptr(out.get("channels")), ptr(out.get("map")),
                ptr(out.get("blocks")), ptr(out.get("grad1")), ptr(out.get("grad2")),
                stream_handle(img1.get_device()))
        if compiled and self.call is not None:
            self.check(self.call.compute_async(self.async_fn, *args))
        else:
            self.check(self.lib.ssim_bench_compute_async(*args))

    def infer_async(self, img1, img2, dtype, scores, grad1=None, grad2=None):
        """compute_async through ssim_bench_call with only what a thin binding reads per call:
        the images' shape, every tensor's pointer and PyTorch's current stream on the images'
        device (as fused-ssim's extension does in C++), with no dict of outputs to look through.
        The timed rows call this."""
        b, c, h, w = img1.shape
        rc = self.call.compute_async(
            self.async_fn, self.handle, dtype, SAME, b, c, h, w, img1.data_ptr(), img2.data_ptr(),
            scores.data_ptr(), None, None, None, grad1.data_ptr() if grad1 is not None else None,
            grad2.data_ptr() if grad2 is not None else None, stream_handle(img1.get_device()))
        if rc != 0:
            self.check(rc)

    def backward(self, img1, img2, dtype, grad_map, grad1, grad2, padding=SAME):
        b, c, h, w = img1.shape
        ptr = lambda t: t.data_ptr() if t is not None else None
        self.check(self.lib.ssim_bench_backward(
            self.handle, dtype, padding, DEVICE_MEMORY, b, c, h, w, img1.data_ptr(),
            img2.data_ptr(), grad_map.data_ptr(), ptr(grad1), ptr(grad2)))


def load_compiled_call(lib_path):
    """The module ssim_bench_call, looked for next to the library first; None where it was not
    built or SSIM_BENCH_CTYPES=1."""
    if os.environ.get("SSIM_BENCH_CTYPES") == "1":
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(lib_path)))
    try:
        import ssim_bench_call

        return ssim_bench_call
    except ImportError as err:
        print(f"# ssim_bench_call not loaded ({err}): the engine's calls go through ctypes")
        return None
    finally:
        sys.path.pop(0)


# PyTorch's binding that gives the current CUDA stream as a raw handle, where this PyTorch has it.
_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def stream_handle(device):
    """PyTorch's current CUDA stream on `device` as a raw handle, the way a compiled extension
    (fused-ssim) gets it in C++. torch.cuda.current_stream() builds a Python Stream object on each
    call, which costs several microseconds that no compiled caller pays, so it is only the
    fallback."""
    if _RAW_STREAM is not None:
        return _RAW_STREAM(device)
    return torch.cuda.current_stream(device).cuda_stream



def median_ms(fn, reps=REPS):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def make_pair(shape, seed):
    """A photograph-like pair: smooth shapes plus fine texture, and a noisy copy."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    b, c, h, w = shape
    coarse = torch.rand((b, c, max(h // 16, 1), max(w // 16, 1)), device="cuda", generator=g)
    base = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    img1 = (0.8 * base + 0.2 * torch.rand(shape, device="cuda", generator=g)).clamp_(0, 1)
    img2 = (img1 + 0.05 * torch.randn(shape, device="cuda", generator=g)).clamp_(0, 1)
    return img1.contiguous(), img2.contiguous()


def device_limits():
    """Measured copy bandwidth (bytes read + written per second) and FP32 FMA rate."""
    n = 256 << 20
    src = torch.rand(n, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), 20)
    bandwidth = 2 * 4 * n / (ms * 1e-3)
    del src, dst
    fma = None
    try:
        import cupy

        kernel = cupy.RawKernel(r"""
        extern "C" __global__ void fma_rate(float *out, int iters) {
          float a[8];
          for (int k = 0; k < 8; k++) a[k] = threadIdx.x * 1e-3f + k;
          for (int i = 0; i < iters; i++)
        #pragma unroll
            for (int k = 0; k < 8; k++) a[k] = fmaf(a[k], 0.999f, 1e-4f);
          float s = 0.f;
          for (int k = 0; k < 8; k++) s += a[k];
          if (s == 12345.f) out[0] = s;
        }""", "fma_rate")
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        out = cupy.zeros(1, dtype=cupy.float32)
        blocks, threads, iters = sms * 16, 256, 8192
        run = lambda: kernel((blocks,), (threads,), (out, cupy.int32(iters)))
        ms = median_ms(run, 10)
        fma = blocks * threads * iters * 8 / (ms * 1e-3)
    except Exception as err:  # the FMA ceiling is optional context
        print(f"# FMA rate not measured: {err}")
    return bandwidth, fma


def load_peers():
    peers = {}
    if os.environ.get("SSIM_BENCH_PEERS") == "0":
        return peers
    if os.environ.get("FUSED_SSIM_DIR"):
        try:
            from fused_ssim import fused_ssim, FusedSSIMMap

            peers["fused-ssim"] = (fused_ssim, FusedSSIMMap)
        except Exception as err:
            print(f"# fused-ssim skipped: {err}")
    else:
        print("# fused-ssim skipped: FUSED_SSIM_DIR not set")
    msssim_dir = os.environ.get("PYTORCH_MSSSIM_DIR")
    if msssim_dir and os.path.isdir(msssim_dir):
        sys.path.insert(0, msssim_dir)
        try:
            from pytorch_msssim import ssim as msssim_ssim

            peers["pytorch-msssim"] = msssim_ssim
        except Exception as err:
            print(f"# pytorch-msssim skipped: {err}")
    else:
        print("# pytorch-msssim skipped: PYTORCH_MSSSIM_DIR not set")
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure

        peers["torchmetrics"] = structural_similarity_index_measure
    except Exception as err:
        print(f"# torchmetrics skipped: {err}")
    return peers


def rel_l2(got, want):
    return (torch.linalg.vector_norm((got - want).double()) /
            torch.linalg.vector_norm(want.double())).item()


def bench_shape(name, shape, engine, peers, limits, rows, checks):
    b, c, h, w = shape
    px = b * c * h * w
    img1, img2 = make_pair(shape, 1234)
    u1 = (img1 * 255).round_().to(torch.uint8)
    u2 = (img2 * 255).round_().to(torch.uint8)
    torch.cuda.synchronize()
    scores = torch.empty(b, dtype=torch.float64)
    dev_scores = torch.empty(b, dtype=torch.float64, device="cuda")
    grad1 = torch.empty_like(img1)
    grad2 = torch.empty_like(img1)
    bandwidth, fma = limits

    def ours(dtype, a, bb, grads=(), host=False, compiled=True):
        out = {"scores": scores if host else dev_scores}
        if "1" in grads:
            out["grad1"] = grad1
        if "2" in grads:
            out["grad2"] = grad2
        if host:
            return lambda: engine.compute(a, bb, dtype, out)
        if compiled and engine.call is not None:
            g1, g2 = out.get("grad1"), out.get("grad2")
            return lambda: engine.infer_async(a, bb, dtype, dev_scores, g1, g2)
        return lambda: engine.compute_async(a, bb, dtype, out, compiled=compiled)

    # Lower bounds per pixel: bytes that must cross memory (inputs once, gradients once), and
    # FMAs of the separable blurs (inference: 4 statistics x 11 taps x 2 passes, as SSIM needs
    # the two variances only through their sum; training: 5 statistics forward, 3 or 4
    # derivative planes backward).
    cases = [
        ("inference f32", ours(F32, img1, img2), 8, 88),
        ("inference ctypes", ours(F32, img1, img2, compiled=False), 8, 88),
        ("inference host", ours(F32, img1, img2, host=True), 8, 88),
        ("inference u8", ours(U8, u1, u2), 2, 88),
        ("train grad img1", ours(F32, img1, img2, "1"), 12, 110 + 66),
        ("train grad both", ours(F32, img1, img2, "12"), 16, 110 + 88),
    ]
    # The engine's cases and fused-ssim's in turn, ROUNDS times: a machine's passing state (its
    # clocks coming up from idle, another tenant) then weighs on both, and the median of the
    # rounds keeps it out of either.
    fused = peers.get("fused-ssim")
    peer_cases = {}
    if fused:
        fused_ssim, fused_map = fused
        x = img1.clone().requires_grad_(True)

        def fused_train():
            x.grad = None
            fused_ssim(x, img2).backward()

        def fused_infer():
            with torch.no_grad():
                fused_ssim(img1, img2, train=False)

        def fused_infer_u8():
            with torch.no_grad():
                fused_ssim(u1.float() / 255, u2.float() / 255, train=False)

        peer_cases = {"inference f32": fused_infer, "inference u8": fused_infer_u8,
                      "train grad img1": fused_train}
    ours_rounds = {label: [] for label, _, _, _ in cases}
    peer_rounds = {label: [] for label in peer_cases}
    for _ in range(ROUNDS):
        for label, fn, _, _ in cases:
            ours_rounds[label].append(median_ms(fn))
        for label, fn in peer_cases.items():
            peer_rounds[label].append(median_ms(fn))
    ours_ms = {label: statistics.median(v) for label, v in ours_rounds.items()}
    for label, _, bytes_px, fma_px in cases:
        ms = ours_ms[label]
        gbs = bytes_px * px / (ms * 1e-3)
        line = f"{name:15s} {label:16s} ssimd {ms:8.3f} ms  {gbs / 1e9:7.1f} GB/s ({100 * gbs / bandwidth:4.1f}% copy bw)"
        if fma:
            line += f"  {100 * fma_px * px / (ms * 1e-3) / fma:4.1f}% FMA"
        rows.append(line)

    if fused:
        peer = {label: statistics.median(v) for label, v in peer_rounds.items()}
        peer["inference host"] = peer["inference ctypes"] = peer["inference f32"]
        for label, ms in peer.items():
            rows.append(f"{name:15s} {label:16s} fused-ssim {ms:8.3f} ms  -> ssimd is {ms / ours_ms[label]:5.2f}x faster")
        rows.append(f"{name:15s} {'both vs img1':16s} ssimd both grads {ours_ms['train grad both']:.3f} ms vs fused-ssim img1 {peer['train grad img1']:.3f} ms -> {peer['train grad img1'] / ours_ms['train grad both']:5.2f}x")

        # Agreement with fused-ssim on the same inputs.
        engine.compute(img1, img2, F32, {"scores": scores})
        with torch.no_grad():
            ref = fused_ssim(img1, img2, train=False).item()
        checks.append((f"{name} mean score vs fused-ssim", abs(scores.mean().item() - ref), 1e-5))
        with torch.no_grad():
            ref0 = fused_ssim(img1[:1], img2[:1], train=False).item()
        checks.append((f"{name} pair 0 score vs fused-ssim", abs(scores[0].item() - ref0), 1e-5))
        engine.compute_async(img1, img2, F32, {"scores": dev_scores})
        checks.append((f"{name} async vs synchronous scores",
                       (dev_scores.cpu() - scores).abs().max().item(), 0.0))
        engine.compute(img1, img2, F32, {"scores": scores}, padding=VALID)
        with torch.no_grad():
            refv = fused_ssim(img1, img2, padding="valid", train=False).item()
        checks.append((f"{name} valid score vs fused-ssim", abs(scores.mean().item() - refv), 1e-5))
        engine.compute(u1, u2, U8, {"scores": scores})
        with torch.no_grad():
            refu = fused_ssim(u1.float() / 255, u2.float() / 255, train=False).item()
        checks.append((f"{name} u8 score vs fused-ssim on /255", abs(scores.mean().item() - refu), 1e-5))
        if px <= 8 * 3 * 1080 * 1920:
            fused_train()
            engine.compute(img1, img2, F32, {"scores": scores, "grad1": grad1, "grad2": grad2})
            # fused-ssim differentiates the mean over the batch, ours each pair's own score.
            checks.append((f"{name} grad img1 vs fused-ssim (rel L2)", rel_l2(grad1 / b, x.grad), 1e-4))
            y = img2.clone().requires_grad_(True)
            fused_ssim(y, img1).backward()  # SSIM is symmetric: d/dimg2 through fused-ssim
            checks.append((f"{name} grad img2 vs fused-ssim (rel L2)", rel_l2(grad2 / b, y.grad), 1e-4))
            mp = torch.empty_like(img1)
            engine.compute(img1, img2, F32, {"scores": scores, "map": mp})
            with torch.no_grad():
                ref_map = fused_map.apply(C1, C2, img1, img2, "same", False)
            checks.append((f"{name} map vs fused-ssim (max abs)", (mp - ref_map).abs().max().item(), 1e-4))
            gm = torch.randn_like(img1)
            xr = img1.clone().requires_grad_(True)
            fused_map.apply(C1, C2, xr, img2, "same", True).backward(gm)
            engine.backward(img1, img2, F32, gm, grad1, None)
            checks.append((f"{name} ssim_backward vs fused-ssim (rel L2)", rel_l2(grad1, xr.grad), 1e-4))

    msssim = peers.get("pytorch-msssim")
    if msssim:
        ms = median_ms(lambda: msssim(img1, img2, data_range=1.0, size_average=True))
        rows.append(f"{name:15s} {'inference f32':16s} pytorch-msssim {ms:8.3f} ms  -> ssimd is {ms / ours_ms['inference f32']:5.2f}x faster")
        xa = img1.clone().requires_grad_(True)
        xb = img2.clone().requires_grad_(True)

        def msssim_train():
            xa.grad = xb.grad = None
            msssim(xa, xb, data_range=1.0, size_average=True).backward()

        ms = median_ms(msssim_train)
        rows.append(f"{name:15s} {'train grad both':16s} pytorch-msssim {ms:8.3f} ms  -> ssimd is {ms / ours_ms['train grad both']:5.2f}x faster")
        engine.compute(img1, img2, F32, {"scores": scores}, padding=VALID)
        ref = msssim(img1, img2, data_range=1.0, size_average=True).item()
        checks.append((f"{name} valid score vs pytorch-msssim", abs(scores.mean().item() - ref), 1e-5))
    tm = peers.get("torchmetrics")
    if tm and px <= 8 * 3 * 1080 * 1920:
        ms = median_ms(lambda: tm(img1, img2, data_range=1.0))
        rows.append(f"{name:15s} {'inference f32':16s} torchmetrics {ms:8.3f} ms  -> ssimd is {ms / ours_ms['inference f32']:5.2f}x faster")

    if name in ("1x3x1080x1920", "8x3x1080x1920"):
        # Host memory: upload (8-bit, as the daemon sends it) overlapped with the kernels.
        h1, h2 = u1.cpu().contiguous(), u2.cpu().contiguous()
        hs = torch.empty(b, dtype=torch.float64)
        out = {"scores": hs}
        ms = median_ms(lambda: engine.compute(h1, h2, U8, out, memory=0))
        rows.append(f"{name:15s} {'host u8 infer':16s} ssimd {ms:8.3f} ms  ({2 * px / (ms * 1e-3) / 1e9:5.1f} GB/s of 8-bit input from pageable host memory)")
        engine.compute(u1, u2, U8, {"scores": scores})
        checks.append((f"{name} host vs device memory scores", (hs - scores).abs().max().item(), 0.0))


def main():
    lib = os.environ.get("SSIM_BENCH_LIB", os.path.join(HERE, "libssim_bench_engine.so"))
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    engine = Engine(lib)
    prop = torch.cuda.get_device_properties(0)
    print(f"# engine library: {lib}; asynchronous calls through "
          f"{'ssim_bench_call' if engine.call else 'ctypes'}")
    print(f"# device: {prop.name}, {prop.multi_processor_count} SMs; engine device: {engine.device}")
    print(f"# torch {torch.__version__}, CUDA {torch.version.cuda}; median of {REPS} after {WARMUP} warm-up; "
          f"the engine and fused-ssim in turn, median of {ROUNDS} rounds")
    limits = device_limits()
    print(f"# measured copy bandwidth {limits[0] / 1e9:.0f} GB/s" +
          (f", FP32 FMA rate {limits[1] / 1e12:.1f} TFMA/s ({2 * limits[1] / 1e12:.1f} TFLOP/s)" if limits[1] else ""))
    tiny = torch.rand((1, 1, 32, 32), device="cuda"), torch.rand((1, 1, 32, 32), device="cuda")
    tiny_scores = torch.empty(1, dtype=torch.float64)
    print(f"# fixed cost of one engine call (1x1x32x32 inference): "
          f"{median_ms(lambda: engine.compute(*tiny, F32, {'scores': tiny_scores})) * 1e3:.1f} us")
    peers = load_peers()
    wanted = os.environ.get("SSIM_BENCH_SHAPES")
    names = wanted.split(",") if wanted else list(SHAPES)
    rows, checks = [], []
    if engine.call is not None:
        # The compiled call hands back the engine's refusals as ctypes does (99: no such dtype).
        ds = torch.empty(1, dtype=torch.float64, device="cuda")
        rc = engine.call.compute_async(engine.async_fn, engine.handle, 99, SAME, 1, 1, 32, 32,
                                       tiny[0].data_ptr(), tiny[1].data_ptr(), ds.data_ptr(),
                                       None, None, None, None, None, stream_handle(tiny[0].get_device()))
        checks.append(("compiled call refuses a bad dtype", 0.0 if rc < 0 else 1.0, 0.0))
    for name in names:
        bench_shape(name, SHAPES[name], engine, peers, limits, rows, checks)
        torch.cuda.empty_cache()
    print("\n".join(rows))
    failed = 0
    for label, err, tol in checks:
        ok = err <= tol
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {err:.3g} (tolerance {tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

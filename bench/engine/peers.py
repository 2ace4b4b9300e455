#!/usr/bin/env python3
"""Peers of the CPU engine benchmark: scikit-image and the PyTorch conv2d formulation of SSIM.

Run by bench_cpu_engine once per shape and thread count; prints one JSON line of median seconds:
{"skimage_forward": s, "torch_forward": s, "torch_forward_backward": s} (null where skipped).

- scikit-image: structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=0) on float32 (C, H, W); it is
  single-threaded (scipy.ndimage), so --threads does not apply to it.
- PyTorch: the usual conv2d formulation (an 11x11 Gaussian window, depthwise conv2d with
  padding 5, as in pytorch-ssim), forward and forward + backward to both images with autograd,
  with torch.set_num_threads(--threads).
"""
import argparse
import json
import statistics
import time

import numpy as np


def median_seconds(fn, repeats):
    fn()  # warm-up: allocations, thread pools, kernel selection
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_pair(channels, height, width):
    rng = np.random.default_rng(12345)
    base = rng.random((channels, height, width), dtype=np.float32)
    noisy = np.clip(base + rng.normal(0, 0.05, base.shape).astype(np.float32), 0, 1)
    return noisy.astype(np.float32), base


def time_skimage(img1, img2, repeats):
    from skimage.metrics import structural_similarity

    def run():
        structural_similarity(img1, img2, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0, channel_axis=0)

    return median_seconds(run, repeats)


def time_torch(img1, img2, threads, repeats):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    channels = img1.shape[0]
    coords = torch.arange(11, dtype=torch.float32) - 5
    gauss = torch.exp(-(coords ** 2) / (2 * 1.5 ** 2))
    gauss = gauss / gauss.sum()
    window = (gauss[:, None] @ gauss[None, :]).expand(channels, 1, 11, 11).contiguous()
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def ssim(x, y):
        mu1 = F.conv2d(x, window, padding=5, groups=channels)
        mu2 = F.conv2d(y, window, padding=5, groups=channels)
        mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
        sigma1_sq = F.conv2d(x * x, window, padding=5, groups=channels) - mu1_sq
        sigma2_sq = F.conv2d(y * y, window, padding=5, groups=channels) - mu2_sq
        sigma12 = F.conv2d(x * y, window, padding=5, groups=channels) - mu1_mu2
        ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
            (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
        return ssim_map.mean()

    x = torch.from_numpy(img1)[None]
    y = torch.from_numpy(img2)[None]

    def forward():
        with torch.no_grad():
            ssim(x, y)

    xg = x.clone().requires_grad_(True)
    yg = y.clone().requires_grad_(True)

    def forward_backward():
        xg.grad = None
        yg.grad = None
        ssim(xg, yg).backward()

    return median_seconds(forward, repeats), median_seconds(forward_backward, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-skimage", action="store_true",
                        help="skip scikit-image (the caller already has its time)")
    args = parser.parse_args()

    img1, img2 = make_pair(args.channels, args.height, args.width)
    result = {"skimage_forward": None, "torch_forward": None, "torch_forward_backward": None}
    if not args.no_skimage:
        # scikit-image takes seconds per call at these sizes: fewer repeats keep the run short.
        result["skimage_forward"] = time_skimage(img1, img2, max(1, min(args.repeats, 3)))
    result["torch_forward"], result["torch_forward_backward"] = time_torch(
        img1, img2, args.threads, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

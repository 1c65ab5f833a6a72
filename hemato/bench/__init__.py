"""Benchmarks that print figures (never assertions): ``python -m hemato.bench`` / ``make bench``.

For every model at one input size and width (default 256 px, width 16, the CPU profile's
scale) it measures, each model in its own subprocess so peak memory is its own:

* parameters and forward GFLOP per slice (counted with ``torch.utils.flop_counter``);
* inference slices/s (batched, ``inference_mode``) in NCHW and channels_last, and the
  achieved GFLOP/s of the faster one;
* latency of one 30-slice 512x512 scan (phantom head) through ``predict_probabilities``:
  plain (full frame, NCHW) and fast (head crop + skipped empty slices + channels_last + BN
  folded into the convolutions), and
  through onnxruntime (full frame);
* training slices/s (forward + backward + RMSprop step, fp32) in NCHW and channels_last;
* peak memory (CPU: the subprocess's peak RSS; GPU: ``torch.cuda.max_memory_allocated``);
* utilisation = achieved FLOP/s / the machine's theoretical fp32 peak, printed with its
  derivation (cores x clock x FLOP/cycle from the SIMD width and FMA units), beside the best
  rate measured in the same run for large single convolutions (a practical ceiling).

The project's plain U-Net (``unet``) of the same size is the reference row: every model's
speed is also given as a ratio to it. ``--paper`` adds inference of the paper-size networks
(512 px, width 64). Results go to the screen (table) and to a JSON file.
"""

from hemato.bench.cli import main
from hemato.bench.measure import count_flops
from hemato.bench.peak import calibrated_peak, cpu_peak, gemm_rate

__all__ = ["calibrated_peak", "count_flops", "cpu_peak", "gemm_rate", "main"]

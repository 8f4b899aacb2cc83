#!/usr/bin/env python3
"""PESQ (ITU-T P.862) of received speech against the reference, for benches/audio_quality.sh.

usage: pesq_score.py REF.wav MODE DEGRADED.wav...
  REF.wav   the speech that was sent, 16 kHz mono (one loop of the sender's file)
  MODE      nb (P.862, scored at 8 kHz) or wb (P.862.2, at 16 kHz)
Each degraded recording (any rate, mono or stereo, possibly holding the looped speech more
than once) is resampled to the scoring rate, the copy of the reference in it found by
cross-correlation, and that stretch scored. Prints one MOS-LQO per file, in order.
"""
import sys
from math import gcd

import numpy as np
from pesq import pesq
from scipy.io import wavfile
from scipy.signal import fftconvolve, resample_poly


def load(path, rate):
    file_rate, data = wavfile.read(path)
    data = data.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if file_rate != rate:
        g = gcd(file_rate, rate)
        data = resample_poly(data, rate // g, file_rate // g)
    return data


def best_copy(ref, deg):
    """The stretch of `deg` that lines up best with `ref` (same length)."""
    if len(deg) < len(ref):
        deg = np.concatenate([deg, np.zeros(len(ref) - len(deg))])
    corr = fftconvolve(deg, ref[::-1], mode="valid")
    start = int(np.argmax(corr))
    return deg[start:start + len(ref)]


def main():
    if len(sys.argv) < 4 or sys.argv[2] not in ("nb", "wb"):
        sys.exit(__doc__)
    mode = sys.argv[2]
    rate = 8000 if mode == "nb" else 16000
    ref = load(sys.argv[1], rate)
    for path in sys.argv[3:]:
        deg = best_copy(ref, load(path, rate))
        print(f"{pesq(rate, ref, deg, mode):.3f}")


if __name__ == "__main__":
    main()

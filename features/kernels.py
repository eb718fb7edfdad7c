"""The compiled feature kernel: one causal pass over bars, carrying its state between calls.

Every rolling quantity is a running sum over a ring buffer of per-bar inputs, so one bar costs
O(number of features) whatever the window length. Every bar goes through one function,
:func:`_step`, whether it comes in a batch (all bars of a series in one call, :func:`run_kernel`)
or in the live worker's tick (one bar for each of many series in one call,
:func:`run_kernel_rows`): the state arrays carry over, the arithmetic is identical, so online and
batch results are bitwise equal. Running sums drift with floating-point error over millions of
updates; each window's sums are recomputed exactly from the ring buffer every few thousand bars
(a multiple of the window length), which bounds the drift at O(1) amortised cost and is the same
in every mode.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# per-bar inputs kept in the ring buffer (columns of ``buf``)
(
    Q_R1,
    Q_R1SQ,
    Q_MFV,
    Q_VOL,
    Q_C,
    Q_CSQ,
    Q_TP,
    Q_TR,
    Q_TPV,
    Q_POSMF,
    Q_NEGMF,
    Q_FLOW,
    Q_FLOWOK,
    Q_LV,
    Q_LVSQ,
    Q_LC,
) = range(16)
N_QUANTITIES = 16
N_SUMMED = 15  # Q_LC is only looked up at lags, never summed
# features per window, in output order
WINDOW_FEATURES = (
    "ret",
    "rv",
    "ad",
    "mfi",
    "bb_pctb",
    "bb_width",
    "kc_width",
    "kc_pos",
    "atr",
    "ofi",
    "vwap_dev",
    "vol_z",
)
BAR_FEATURES = ("bar_range", "psar_dist", "tod_sin", "tod_cos", "dow_sin", "dow_cos")
# integer state: ring position, bars seen, PSAR up-trend flag
I_POS, I_COUNT, I_UPTREND = range(3)
N_ISTATE = 3
# float state
F_PREV_LC, F_PREV_TP, F_SAR, F_AF, F_UP_HIGH, F_DOWN_LOW, F_H1, F_H2, F_L1, F_L2 = range(10)
N_FSTATE = 10
_DAY_NS = 86_400_000_000_000
_REFRESH_BARS = 4096  # recompute running sums exactly about this often
_WEEK_DAYS = 7


@nb.njit(cache=True, error_model="numpy")
def _base_quantities(
    h: float,
    lo: float,
    c: float,
    v: float,
    tbv: float,
    prev_c: float,
    prev_lc: float,
    prev_tp: float,
    first: bool,
    q: np.ndarray,
) -> float:
    tp = (h + lo + c) / 3.0
    lc = math.log(c)
    r1 = 0.0 if first else lc - prev_lc
    q[Q_LC] = lc
    rng = h - lo
    q[Q_R1] = r1
    q[Q_R1SQ] = r1 * r1
    q[Q_MFV] = ((c - lo) - (h - c)) / rng * v if rng > 0.0 else 0.0
    q[Q_VOL] = v
    q[Q_C] = c
    q[Q_CSQ] = c * c
    q[Q_TP] = tp
    q[Q_TR] = rng if first else max(rng, abs(h - prev_c), abs(lo - prev_c))
    q[Q_TPV] = tp * v
    q[Q_POSMF] = tp * v if (not first and tp > prev_tp) else 0.0
    q[Q_NEGMF] = tp * v if (not first and tp < prev_tp) else 0.0
    ok = not math.isnan(tbv)
    q[Q_FLOW] = (2.0 * tbv - v) if ok else 0.0
    q[Q_FLOWOK] = 1.0 if ok else 0.0
    lv = math.log1p(v)
    q[Q_LV] = lv
    q[Q_LVSQ] = lv * lv
    return tp


@nb.njit(cache=True, error_model="numpy")
def _psar(  # noqa: C901 - Wilder's rules in one piece, to read against the reference
    h: float, lo: float, c: float, count: int, istate: np.ndarray, fs: np.ndarray, step: float, max_af: float
) -> float:
    """Parabolic SAR, Wilder's rules as implemented by the ``ta`` library (its reference)."""
    if count == 0:
        istate[I_UPTREND] = 1
        fs[F_AF] = step
        fs[F_UP_HIGH] = h
        fs[F_DOWN_LOW] = lo
        sar = c
    elif count == 1:
        sar = c
    else:
        prev = fs[F_SAR]
        reversal = False
        if istate[I_UPTREND] == 1:
            sar = prev + fs[F_AF] * (fs[F_UP_HIGH] - prev)
            if lo < sar:
                reversal, sar, fs[F_DOWN_LOW], fs[F_AF] = True, fs[F_UP_HIGH], lo, step
            else:
                if h > fs[F_UP_HIGH]:
                    fs[F_UP_HIGH] = h
                    fs[F_AF] = min(fs[F_AF] + step, max_af)
                if fs[F_L2] < sar:
                    sar = fs[F_L2]
                elif fs[F_L1] < sar:
                    sar = fs[F_L1]
        else:
            sar = prev - fs[F_AF] * (prev - fs[F_DOWN_LOW])
            if h > sar:
                reversal, sar, fs[F_UP_HIGH], fs[F_AF] = True, fs[F_DOWN_LOW], h, step
            else:
                if lo < fs[F_DOWN_LOW]:
                    fs[F_DOWN_LOW] = lo
                    fs[F_AF] = min(fs[F_AF] + step, max_af)
                if fs[F_H2] > sar:
                    sar = fs[F_H2]
                elif fs[F_H1] > sar:
                    sar = fs[F_H1]
        if reversal:
            istate[I_UPTREND] = 1 - istate[I_UPTREND]
    fs[F_SAR] = sar
    fs[F_H2], fs[F_H1] = fs[F_H1], h
    fs[F_L2], fs[F_L1] = fs[F_L1], lo
    return sar


@nb.njit(cache=True, error_model="numpy")
def _window_features(
    c: float,
    lc: float,
    lv: float,
    w: int,
    s: np.ndarray,
    lag_lc: float,
    bb_k: float,
    kc_k: float,
    out: np.ndarray,
    col: int,
) -> None:
    vol = s[Q_VOL]
    out[col] = lc - lag_lc
    out[col + 1] = math.sqrt(max(s[Q_R1SQ], 0.0) / w)
    out[col + 2] = s[Q_MFV] / vol if vol > 0.0 else 0.0
    flows = s[Q_POSMF] + s[Q_NEGMF]
    out[col + 3] = 100.0 * s[Q_POSMF] / flows if flows > 0.0 else 50.0
    mean = s[Q_C] / w
    sd = math.sqrt(max(s[Q_CSQ] / w - mean * mean, 0.0))
    out[col + 4] = (c - (mean - bb_k * sd)) / (2.0 * bb_k * sd) if sd > 0.0 else 0.5
    out[col + 5] = 2.0 * bb_k * sd / mean
    center = s[Q_TP] / w
    atr = s[Q_TR] / w
    out[col + 6] = 2.0 * kc_k * atr / center
    out[col + 7] = (c - (center - kc_k * atr)) / (2.0 * kc_k * atr) if atr > 0.0 else 0.5
    out[col + 8] = atr / c
    out[col + 9] = (
        s[Q_FLOW] / vol if (s[Q_FLOWOK] == w and vol > 0.0) else (0.0 if s[Q_FLOWOK] == w else np.nan)
    )
    out[col + 10] = lc - math.log(s[Q_TPV] / vol) if vol > 0.0 and s[Q_TPV] > 0.0 else 0.0
    lv_mean = s[Q_LV] / w
    lv_sd = math.sqrt(max(s[Q_LVSQ] / w - lv_mean * lv_mean, 0.0))
    out[col + 11] = (lv - lv_mean) / lv_sd if lv_sd > 1e-12 else 0.0


@nb.njit(cache=True, error_model="numpy")
def _advance_sums(
    q: np.ndarray, buf: np.ndarray, sums: np.ndarray, windows: np.ndarray, pos: int, seen: int
) -> None:
    """Slide every window's running sums by one bar (``q`` enters, the bar ``w`` back leaves)."""
    cap = buf.shape[0]
    for k in range(windows.shape[0]):
        w = windows[k]
        old = pos - w if pos >= w else pos - w + cap
        s = sums[k]
        if seen > w and seen % (w * max(1, _REFRESH_BARS // w)) == 0:  # exact refresh: bounds float drift
            for j in range(N_SUMMED):
                s[j] = q[j]
            for back in range(1, w):
                row = pos - back if pos >= back else pos - back + cap
                for j in range(N_SUMMED):
                    s[j] += buf[row, j]
        elif seen > w:
            for j in range(N_SUMMED):
                s[j] += q[j] - buf[old, j]
        else:
            for j in range(N_SUMMED):
                s[j] += q[j]


@nb.njit(cache=True, error_model="numpy")
def _step(
    t: int,
    h: float,
    lo: float,
    c: float,
    v: float,
    tbv: float,
    windows: np.ndarray,
    lags: np.ndarray,
    params: np.ndarray,
    buf: np.ndarray,
    sums: np.ndarray,
    istate: np.ndarray,
    fstate: np.ndarray,
    q: np.ndarray,
    row_out: np.ndarray,
) -> None:
    """Advance one series' state by one bar (open time ``t``, ns) and write its feature row.

    ``q`` is scratch space (N_QUANTITIES floats). Both entry points below run every bar through
    this one function, so batch, one-bar and many-series calls do the same arithmetic.
    """
    cap = buf.shape[0]
    n_wf = 12
    count = istate[I_COUNT]
    first = count == 0
    pos = istate[I_POS]
    prev = pos - 1 if pos > 0 else cap - 1
    tp = _base_quantities(h, lo, c, v, tbv, buf[prev, Q_C], buf[prev, Q_LC], fstate[F_PREV_TP], first, q)
    seen = count + 1  # bars including this one
    _advance_sums(q, buf, sums, windows, pos, seen)
    for j in range(N_QUANTITIES):
        buf[pos, j] = q[j]
    col = 0
    for k in range(windows.shape[0]):
        w = windows[k]
        if seen > w:
            old = pos - w if pos >= w else pos - w + cap
            _window_features(
                c, q[Q_LC], q[Q_LV], w, sums[k], buf[old, Q_LC], params[0], params[1], row_out, col
            )
        else:
            for j in range(n_wf):
                row_out[col + j] = np.nan
        col += n_wf
    for k in range(lags.shape[0]):
        lag = lags[k]
        old = pos - lag if pos >= lag else pos - lag + cap
        row_out[col + k] = q[Q_LC] - buf[old, Q_LC] if seen > lag else np.nan
    col += lags.shape[0]
    sar = _psar(h, lo, c, count, istate, fstate, params[2], params[3])
    row_out[col] = math.log(h / lo)
    row_out[col + 1] = (c - sar) / c
    day_frac = (t % _DAY_NS) / _DAY_NS
    week_frac = (((t // _DAY_NS) + 3) % _WEEK_DAYS + day_frac) / _WEEK_DAYS  # 1970-01-01 was a Thursday
    row_out[col + 2] = math.sin(2.0 * math.pi * day_frac)
    row_out[col + 3] = math.cos(2.0 * math.pi * day_frac)
    row_out[col + 4] = math.sin(2.0 * math.pi * week_frac)
    row_out[col + 5] = math.cos(2.0 * math.pi * week_frac)
    fstate[F_PREV_TP] = tp
    istate[I_POS] = (pos + 1) % cap
    istate[I_COUNT] = seen


@nb.njit(cache=True, error_model="numpy")
def run_kernel(
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    tbv: np.ndarray,
    windows: np.ndarray,
    lags: np.ndarray,
    params: np.ndarray,
    buf: np.ndarray,
    sums: np.ndarray,
    istate: np.ndarray,
    fstate: np.ndarray,
    out: np.ndarray,
) -> None:
    """Advance one series' state over ``len(ts)`` new bars, writing one feature row per bar into ``out``.

    ``params`` = (bollinger_k, keltner_k, psar_step, psar_max). A feature needing ``w`` bars of
    history is NaN until ``w + 1`` bars have been seen. ``o`` (open) is not read by any feature.
    """
    q = np.zeros(N_QUANTITIES)
    for i in range(ts.shape[0]):
        _step(
            ts[i],
            h[i],
            lo[i],
            c[i],
            v[i],
            tbv[i],
            windows,
            lags,
            params,
            buf,
            sums,
            istate,
            fstate,
            q,
            out[i],
        )


@nb.njit(cache=True, error_model="numpy")
def run_kernel_rows(
    rows: np.ndarray,
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    tbv: np.ndarray,
    windows: np.ndarray,
    lags: np.ndarray,
    params: np.ndarray,
    buf: np.ndarray,
    sums: np.ndarray,
    istate: np.ndarray,
    fstate: np.ndarray,
    out: np.ndarray,
) -> None:
    """One bar for each of several series: bar ``i`` advances series ``rows[i]``, whose state is
    row ``rows[i]`` of the stacked arrays (``buf`` (n, cap, N_QUANTITIES), ``sums``
    (n, windows, N_QUANTITIES), ``istate`` (n, N_ISTATE), ``fstate`` (n, N_FSTATE)), and writes
    its feature row into ``out[i]``. The live worker's tick: one call for all its symbols.

    ``rows`` must be valid and distinct (the caller checks: nothing is bounds-checked here).
    """
    q = np.zeros(N_QUANTITIES)
    for i in range(rows.shape[0]):
        r = rows[i]
        _step(
            ts[i],
            h[i],
            lo[i],
            c[i],
            v[i],
            tbv[i],
            windows,
            lags,
            params,
            buf[r],
            sums[r],
            istate[r],
            fstate[r],
            q,
            out[i],
        )

# Refits the polynomial coefficients in Sources/Kernels/FastMath.swift (provenance; FastMathTests is the referee).
# Weighted least squares with Lawson reweighting (converges towards minimax) in float64 on Chebyshev nodes.
# Coefficients agree with FastMath.swift to within the printed fit error (the node set may differ slightly).
# Pinned: numpy (any 1.2x/2.x), mpmath for erfc/log at 30 digits. Run: /opt/torchenv/bin/python fit_fast_math.py
import mpmath
import numpy as np

mpmath.mp.dps = 30


def lawson(z, f, degree, relative, iterations=300):
    V = np.vander(z, degree + 1, increasing=True)
    w = np.ones(len(z))
    for _ in range(iterations):
        c = np.linalg.lstsq(V * w[:, None], f * w, rcond=None)[0]
        e = np.abs(V @ c - f) / (np.abs(f) if relative else 1)
        w = w * np.sqrt(e / e.max() + 1e-12)
        w /= w.max()
    return c, e.max()


def nodes(lo, hi, n):
    return lo + (1 - np.cos(np.linspace(0, np.pi, n))) / 2 * (hi - lo)


# exp(r), |r| <= ln2/2 (+0.1% margin), degree 6, relative error
r = nodes(-np.log(2) / 2 * 1.001, np.log(2) / 2 * 1.001, 4000)
c, e = lawson(r, np.exp(r), 6, relative=True)
print("exp(r) deg 6, max rel", e, [float(x) for x in c])

# erf(x)/x as a polynomial in s = x^2 on [0, 1], degree 6
s = nodes(0, 1, 2000)
f = np.array([float(mpmath.erf(mpmath.sqrt(v)) / mpmath.sqrt(v)) if v > 0 else float(2 / mpmath.sqrt(mpmath.pi))
              for v in s])
c, e = lawson(s, f, 6, relative=True)
print("erf(x)/x deg 6 in x^2, max rel", e, [float(x) for x in c])

# g(t) = log erfc(t) + t^2 on t in [1, 5.5], polynomial in (t - 1), degree 9, absolute error in g
t = nodes(1, 5.5, 3000)
f = np.array([float(mpmath.log(mpmath.erfc(v)) + v * v) for v in t])
c, e = lawson(t - 1, f, 9, relative=False)
print("log erfc(t) + t^2 deg 9 in t-1, max abs", e, [float(x) for x in c])

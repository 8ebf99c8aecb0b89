"""Plain-language glossary of every symbol the app and the CLI show (issue 15: "a classroom can use
it without the papers").

Each entry: the symbol as printed, a short name, one or two sentences in plain words, the unit (if
any) and where the paper defines it. Pages use :func:`help_text` for widget and metric help, and
the Glossary page lists :data:`ENTRIES`. Text only: no formulas are computed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    key: str
    symbol: str
    name: str
    plain: str
    unit: str = ""
    ref: str = ""


ENTRIES: tuple[Entry, ...] = (
    Entry("sigma", "σ", "noise level (plain smoothing)",
          "How much Gaussian noise is added to every pixel before the model votes. Larger σ gives larger "
          "certified radii but a noisier, less accurate smoothed classifier.",
          "pixel scale [0, 1]", "Fischer Thm 3.1; Cohen et al."),
    Entry("sigma_gamma", "σ_γ", "parameter noise (outer smoothing)",
          "The spread of the random transformation parameters (e.g. angles) the smoothed classifier votes "
          "over. The certified radius scales with σ_γ.",
          "the transformation's unit (degrees, pixels, log-factor, dB)", "Fischer Thm 4.2"),
    Entry("sigma_eps", "σ_ε", "pixel noise (inner smoothing)",
          "Gaussian pixel noise used by the inner smoothing of double smoothing; it must absorb the "
          "interpolation error E. Use the value the model was trained with (its card).",
          "pixel scale [0, 1]", "Fischer §6.2"),
    Entry("sigma1", "σ₁", "GSmooth parameter noise",
          "GSmooth's spread of the transformation severity, in the transformation's unit.",
          "severity unit", "Hao et al. Eq. 8–10"),
    Entry("sigma2", "σ₂", "GSmooth augmented noise",
          "GSmooth's extra noise on the image part of the latent vector; it makes a non-resolvable "
          "transformation certifiable.", "pixel scale [0, 1]", "Hao et al. Eq. 9"),
    Entry("E", "E", "interpolation-error bound",
          "Real images are interpolated and rounded to 8 bits, so rotating by β then γ is not exactly "
          "rotating by β+γ. ε is that gap; E is the size (l2) the certificate assumes it stays below.",
          "l2, pixel scale [0, 1]", "Fischer §5.2, §6"),
    Entry("q_E", "q_E", "coverage of E",
          "The probability that the interpolation gap ε is below E (over the random parameters).",
          "probability", "Fischer §6"),
    Entry("q_E_lower", "q̲_E", "lower confidence bound on q_E",
          "A Clopper–Pearson lower bound on q_E from sampled errors; 1 − q̲_E is the share of samples "
          "the certificate pays for in ρ.", "probability", "Fischer §6, Lemma 4.3"),
    Entry("rho", "ρ", "error budget subtracted from p̲_A",
          "ρ = α_ε + (1 − q̲_E) + α_E: the probability that the inner smoothing or the bound E fails. "
          "The certificate uses p̲_A − ρ instead of p̲_A.", "probability", "Fischer Lemma 4.3"),
    Entry("p_lower", "p̲_A", "lower bound on the top-class probability",
          "A Clopper–Pearson lower confidence bound on how often the smoothed classifier's votes go to "
          "the predicted class. It must exceed 1/2 (after subtracting ρ) to certify anything.",
          "probability", "Cohen et al. CERTIFY; Fischer Alg. 1"),
    Entry("alpha", "α", "failure probability",
          "The probability that the certificate is wrong because of unlucky sampling. 0.001 means one "
          "certificate in a thousand may be wrong.", "probability", "Cohen et al."),
    Entry("alpha_gamma", "α_γ", "outer failure probability",
          "α of the outer test over the sampled transformation parameters.", "probability", "Fischer §6.2"),
    Entry("alpha_eps", "α_ε", "inner failure probability",
          "α of each inner noise-smoothing test (it enters ρ).", "probability", "Fischer Lemma 4.3"),
    Entry("alpha_E", "α_E", "failure probability of the E estimate",
          "α of the Clopper–Pearson bound q̲_E (it enters ρ).", "probability", "Fischer Lemma 4.3"),
    Entry("n0", "n0", "selection samples",
          "Samples used only to guess the top class; they are thrown away before estimating p̲_A.",
          "count", "Cohen et al. CERTIFY"),
    Entry("n", "n", "estimation samples",
          "Samples used to bound p̲_A. More samples give a tighter bound; with n samples the radius can "
          "never exceed σ·Φ⁻¹(α^(1/n)) (the n-ceiling).", "count", "Cohen et al. CERTIFY"),
    Entry("n_gamma", "n_γ", "outer samples",
          "Transformation parameters sampled by the outer smoothing (each gets an inner test).",
          "count", "Fischer §6.2"),
    Entry("n_eps", "n_ε", "inner samples",
          "Noise samples per inner test. If E is large next to σ_ε, no inner test can pass unless n_ε "
          "is large enough (a dead end).", "count", "Fischer §6.2"),
    Entry("C", "C", "attacker range",
          "The parameters an attacker may use, e.g. angles in [−30°, 30°]. A random attacker draws one "
          "from C; a worst-case attacker picks any one.", "the transformation's unit", "Fischer §6"),
    Entry("M", "M", "GSmooth Lipschitz constant",
          "How far the surrogate's latent code moves per unit of severity; the GSmooth radius is "
          "divided by it.", "", "Hao et al. Thm 2, App. B.1"),
    Entry("radius", "R", "certified radius",
          "How far the input may be changed (in the unit shown: degrees, pixels, dB, severity, or l2 "
          "pixel distance) while the smoothed classifier keeps its prediction.",
          "degrees | pixels | log-factor | dB | severity | l2", "Fischer Thm 3.1, 4.2"),
    Entry("attacker", "attacker", "which attacker the certificate covers",
          "random: the parameter is drawn at random from C (Fischer's distributional attacker); "
          "worst-case: the attacker may pick ANY parameter in C.", "", "Fischer §6"),
    Entry("E_scope", "E scope", "whose E",
          "input: E was estimated on this input at certify time; dataset: E is an average over inputs "
          "like the training set, so the guarantee holds on average, not for this input.", "", ""),
    Entry("sound", "sound", "proof or estimate",
          "True when every number in the radius is a proven bound or a confidence bound inside α; "
          "false when something (e.g. a grid estimate) is only estimated — the result is then an "
          "estimate, not a proof.", "", ""),
    Entry("xi", "ξ", "severity (GSmooth)",
          "How strong a blur or pixelation is: the kernel radius, blur length, zoom amount or block size "
          "of the transformation. GSmooth radii are distances in ξ.",
          "the transformation's own unit: px (defocus and motion blur, pixelate), degrees (rotational "
          "blur), factor (zoom blur)", "Hao et al. §3, Eq. 8"),
    Entry("severity_unit", "severity", "GSmooth radius units",
          "A GSmooth radius is a change of the severity ξ in the transformation's own unit (shown next to "
          "every number), not a pixel distance; it is divided by M, so it depends on the surrogate.",
          "severity unit", "Hao et al. Thm 2"),
    Entry("sigma_c", "σ_c", "contrast noise (brightness–contrast)",
          "Spread of the random log-contrast factor the smoothed classifier votes over.",
          "log-factor", "Fischer §5.1"),
    Entry("sigma_b", "σ_b", "brightness noise (brightness–contrast)",
          "Spread of the random brightness offset added to every pixel.", "pixel scale [0, 1]", "Fischer §5.1"),
    Entry("beta", "β", "smoothing parameter",
          "The random transformation parameter the smoothing draws (e.g. an angle from N(0, σ_γ²)).",
          "the transformation's unit", "Fischer §4"),
    Entry("gamma", "γ", "attacker parameter",
          "The transformation parameter the attacker applies (e.g. a rotation angle in C).",
          "the transformation's unit", "Fischer §4"),
    Entry("eps", "ε", "interpolation error",
          "ε(β, γ, x) = ψ_β(ψ_γ(x)) − ψ_(β+γ)(x): what interpolation, the image border and rounding to "
          "k/255 add when two transformations are applied one after the other instead of one.",
          "pixel scale [0, 1] (waveform [-1, 1] for audio)", "Fischer §5.2"),
    Entry("psi", "ψ", "transformation",
          "The semantic transformation (rotation, translation, zoom, blur, brightness, volume, …); "
          "ψ_γ(x) is x transformed with parameter γ.", "", "Fischer §4"),
    Entry("P", "P", "preprocessing",
          "Filters applied to every input before the model sees it (vignette, FFT low-pass with bandwidth "
          "B, Gaussian filter). They shrink ε; a filter that erases the image shrinks it trivially.",
          "", "Fischer §6.1, Fig. 5"),
    Entry("B", "B", "low-pass bandwidth",
          "The FFT low-pass keeps the frequencies |k_x|, |k_y| ≤ B. B = 0 keeps only the mean brightness "
          "(the image is erased).", "frequency index (cycles per image)", "Fischer §6.1"),
    Entry("k_parts", "k-smoothing", "E per part of the input",
          "Instead of one E for the whole image, the image is split into k parts (channels, halves, "
          "quadrants) and ε must stay below E in every part; the inner smoothing then certifies each "
          "part separately.", "parts", "Fischer §6.3"),
    Entry("q_target", "q", "target coverage",
          "The coverage you want: the page finds the smallest E whose lower bound q̲_E reaches q.",
          "probability", "Fischer §6"),
    Entry("factor", "factor / dB", "volume factor",
          "A volume change by β dB multiplies the waveform by the factor 10^(β/20): +6 dB ≈ ×2, "
          "−6 dB ≈ ×½. Audio radii are in dB.", "dB (factor 10^(dB/20))", "Fischer §5.1"),
    Entry("n_forward", "forward passes", "model evaluations",
          "How many single inputs the model classifies for a certificate (n0 + n for noise smoothing, "
          "n0 + n_γ·n_ε for double smoothing); the time grows with it.", "count", ""),
    Entry("n_cap", "n-ceiling", "largest radius n can give",
          "Even if all n samples vote for the top class, p̲_A = α^(1/n) < 1, so the radius cannot exceed "
          "σ·Φ⁻¹(α^(1/n)). A radius at this ceiling means: more samples (larger n) give more.",
          "the radius unit", "Fischer App. C.2"),
)

_BY_KEY = {e.key: e for e in ENTRIES}


def entry(key: str) -> Entry:
    """The glossary entry for ``key`` (KeyError for an unknown key: a typo should fail tests)."""
    return _BY_KEY[key]


def help_text(key: str, extra: str | None = None) -> str:
    """Widget/metric help: plain words first, the unit, then the paper's reference."""
    e = _BY_KEY[key]
    parts = [f"**{e.symbol}** — {e.name}. {e.plain}"]
    if e.unit:
        parts.append(f"Unit: {e.unit}.")
    if extra:
        parts.append(extra)
    if e.ref:
        parts.append(f"({e.ref})")
    return " ".join(parts)

# ---- appended for the classroom Certify/Audio/GSmooth pages (issue 15, part A)
ENTRIES = ENTRIES + (
    Entry("severity", "ξ", "severity of a blur or pixelate",
          "How strong the transformation is, in its own unit. Zoom blur's unit is a zoom factor increase z: "
          "the image is averaged over zooms from 1× to (1 + z)× (z = 0.02: up to 2 % larger). Defocus and "
          "motion blur and pixelate use pixels, rotational blur degrees. A GSmooth radius R certifies every "
          "severity from 0 to R.", "zoom factor increase | px | degrees", "Hao et al. §5"),
    Entry("volume_db", "dB", "volume change in decibels",
          "+6 dB doubles the amplitude of the waveform, −6 dB halves it (factor 10^(β/20)); the result is "
          "stored as 16-bit integers, which is where the rounding error E comes from.", "dB", "Fischer §5.1"),
    Entry("n_ceiling", "n-ceiling", "largest radius n samples allow",
          "Even if every one of the n samples votes for the class, the lower bound p̲_A is only α^(1/n), so "
          "no radius beyond σ·Φ⁻¹(α^(1/n) − ρ) can be certified. A radius at this ceiling says more about n "
          "than about the model: more samples would raise it.", "the radius's unit", "Fischer App. C.2"),
)
_BY_KEY = {e.key: e for e in ENTRIES}

"""UI helpers shared by every page of the semsmooth app (owned by the app; pages import them).

Import from a page as ``from pages._shared import ...``. Nothing here computes math: it reads
widgets, calls ``semsmooth_core`` and formats results.

Session-state keys (set by :func:`sidebar`, which ``app.py`` draws on every page):

- ``"dataset"``: the dataset name (``semsmooth_core.data.datasets.dataset_names()``), default ``"mnist"``.
- ``"data_root"``: a folder for datasets that live on disk ("" for the embedded ones); only
  folders under ``semsmooth_core.paths.data_root()`` are read (:func:`checked_data_root`).
- ``"image_size"`` (0 = as stored) and ``"channels"`` ("as stored" | "grey" | "rgb"): dataset
  options (:func:`data_options`), the app's ``--image-size`` / ``--channels``.
- ``"model_name"``: a shipped image classifier (:func:`image_classifiers`, a subset of
  ``semsmooth_core.models.list_models()``) or :data:`BYO`.
- ``"model_path"``: with :data:`BYO`, the temp file the uploaded model was written to (else absent/None).
- ``"model_arch"``: with :data:`BYO`, the architecture name for a plain state_dict ("" otherwise).
- ``"model_num_classes"``: with :data:`BYO` and an architecture, its number of classes.
- ``"seed"``: the random seed (int) for every sampling on every page.
- ``"device"``: a human description of the compute device (read-only).

Helpers for pages: :func:`current_model`, :func:`cached_model`, :func:`cached_dataset`,
:func:`sample_picker`, :func:`image_from_upload`, :func:`show_error`, :func:`progress_callback`,
:func:`tensor_to_image`, :func:`generator`, :func:`seed`, :func:`model_ref`,
:func:`image_classifiers`, :class:`StageProgress`, :func:`ensure_worker` (background runs),
:func:`take_run_request` and :func:`certify_widget_values` (open a run's input on the Certify page).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from semsmooth_core import glossary as _glossary
from semsmooth_core.data import datasets as _datasets
from semsmooth_core.data.uploads import UploadArea, decode_image, limit_text
from semsmooth_core.device import describe_device, get_device
from semsmooth_core.models import list_models, load_model
from semsmooth_core.repro import seed_everything
from semsmooth_core.validation import SemsmoothError

GLOSSARY_PAGE = "pages/9_Glossary.py"
"""The Glossary page (linked from the sidebar of every page)."""

BYO = "Bring your own model…"
"""The ``"model_name"`` value that means "the model uploaded in the sidebar"."""

DEFAULT_MODEL = "mnist_cnn_noise025"
DEFAULT_DATASET = "mnist"
UPLOAD_AREA = "_upload_area"
"""Session-state key: this session's private :class:`UploadArea` (removed when the session ends)."""
SIDEBAR_PREFILL = "_sidebar_prefill"
"""Session-state key: a dict of sidebar values (``model_name``, ``dataset``, ``seed``) that a page
wants; :func:`sidebar` applies it before drawing its widgets (the page then calls ``st.rerun()``)."""


# --------------------------------------------------------------------------- errors
def show_error(e: BaseException | str) -> None:
    """One ``st.error`` line for a user error (SemsmoothError) or any message."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    st.error(msg, icon=":material/error:")


# --------------------------------------------------------------------------- cached loading
@st.cache_resource(show_spinner="Loading model…", max_entries=8)
def _load_model_cached(name_or_path: str, arch: str | None, num_classes: int | None,
                       device: str, stamp: float):
    kwargs = {"num_classes": int(num_classes)} if (arch and num_classes) else {}
    return load_model(name_or_path, device=device, arch=arch or None, **kwargs)


def _stamp(name_or_path: str) -> float:
    """Modification time of the file behind a model (so a retrained checkpoint reloads)."""
    from semsmooth_core.paths import models_dir

    for p in (Path(name_or_path), models_dir() / f"{name_or_path}.pt"):
        try:
            if p.is_file():
                return p.stat().st_mtime
        except OSError:
            pass
    return 0.0


def cached_model(name: str, arch: str | None = None, num_classes: int | None = None):
    """``load_model(name)`` on the app's device, cached across reruns and sessions
    (``st.cache_resource``). Returns ``(model.eval(), card)``; raises SemsmoothError."""
    return _load_model_cached(str(name), arch or None, num_classes, str(get_device()), _stamp(str(name)))


@st.cache_data(show_spinner="Loading dataset…", max_entries=8)
def _load_dataset_cached(name: str, split: str, root: str | None, options: tuple = ()):
    x, y = _datasets.load_dataset(name, split=split, root=root or None, **dict(options))
    return x, y


def checked_data_root(root: str | None = None) -> str | None:
    """The sidebar's dataset folder (or ``root``), resolved and checked to lie under the data
    root (``semsmooth_core.paths.check_data_folder``); None for none. Raises SemsmoothError."""
    from semsmooth_core.paths import check_data_folder

    root = st.session_state.get("data_root") if root is None else root
    return str(check_data_folder(root)) if (root or "").strip() else None


def data_options() -> dict:
    """The sidebar's dataset options as config keys: ``image_size`` and ``channels`` when set."""
    out = {}
    if int(st.session_state.get("image_size") or 0) > 0:
        out["image_size"] = int(st.session_state["image_size"])
    if st.session_state.get("channels") in ("grey", "rgb"):
        out["channels"] = st.session_state["channels"]
    return out


def cached_dataset(name: str | None = None, split: str = "heldout", root: str | None = None):
    """``load_dataset(name, split)`` cached (``st.cache_data``): ``(x [N,C,H,W] in [0,1], y [N])``.

    ``name`` defaults to the sidebar's dataset, ``root`` to the sidebar's data folder (checked
    to lie under the data root), options to the sidebar's image size and channels."""
    name = name or st.session_state.get("dataset", DEFAULT_DATASET)
    root = checked_data_root(root)
    return _load_dataset_cached(name, split, root, tuple(sorted(data_options().items())))


# --------------------------------------------------------------------------- model selection
def model_ref() -> tuple[str, str | None, int | None] | None:
    """What the sidebar selected: ``(name_or_path, arch, num_classes)`` or None when nothing is
    selected (no shipped model and no upload)."""
    name = st.session_state.get("model_name")
    if name == BYO:
        path = st.session_state.get("model_path")
        if not path:
            return None
        arch = (st.session_state.get("model_arch") or "").strip() or None
        return path, arch, (st.session_state.get("model_num_classes") if arch else None)
    if not name:
        models = image_classifiers()
        if not models:
            return None
        name = DEFAULT_MODEL if DEFAULT_MODEL in models else next(iter(models))
    return name, None, None


def current_model(quiet: bool = False):
    """The model picked in the sidebar: ``(model, card)``, or None after telling the user why
    (no shipped model yet, nothing uploaded, a file that does not load)."""
    ref = model_ref()
    if ref is None:
        if not quiet:
            if st.session_state.get("model_name") == BYO:
                st.info("Upload a model in the sidebar (semsmooth checkpoint, architecture + "
                        "state_dict, or TorchScript) to continue.")
            else:
                st.info("No shipped model found in assets/models/ — train one with "
                        "`python -m semsmooth_core train` or upload your own in the sidebar.")
        return None
    try:
        return cached_model(*ref)
    except SemsmoothError as e:
        if not quiet:
            show_error(e)
        return None
    except Exception as e:  # a file torch cannot parse at all: still one line, page stays up
        if not quiet:
            show_error(f"{Path(ref[0]).name} could not be loaded as a model "
                       f"({type(e).__name__}: {str(e).strip()[:120]})")
        return None


def image_classifiers() -> dict[str, dict]:
    """Shipped models the sidebar offers: image classifiers (cards without another ``modality``
    such as "audio", or another ``kind`` such as a GSmooth surrogate). Pages for other
    modalities pick their models themselves from ``list_models()``."""
    out = {}
    for name, card in list_models().items():
        if card.get("modality", "image") != "image":
            continue
        if card.get("kind", "classifier") not in ("classifier", "image_classifier"):
            continue
        out[name] = card
    return out


def upload_area() -> UploadArea:
    """This session's private upload folder (created on first use; removed with the session)."""
    area = st.session_state.get(UPLOAD_AREA)
    if area is None or not area.alive:
        area = st.session_state[UPLOAD_AREA] = UploadArea()
    return area


def _write_upload(uploaded, kind: str = "model") -> Path:
    """Save an upload in this session's private area (checksum-verified reuse); SemsmoothError
    when it is over the size limit of its ``kind``."""
    return upload_area().store(uploaded.name, uploaded.getvalue(), kind=kind)


def _card_summary(card: dict) -> str:
    """A few lines of a model card for the sidebar (keys vary by who wrote the card)."""
    lines = []
    if card.get("summary"):
        lines.append(str(card["summary"]))
    elif card.get("arch"):
        lines.append(f"architecture: `{card['arch']}`")
    for k, v in card.items():
        if "acc" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
            val = v * 100 if v <= 1 else v
            lines.append(f"{k.replace('_', ' ')}: **{val:.1f} %**")
    for k in ("sigma_eps", "sigma"):
        if isinstance(card.get(k), (int, float)) and not isinstance(card.get(k), bool):
            lines.append(f"training noise σ: {card[k]:g} (pixel scale [0,1])")
            break
    return "  \n".join(lines) or "no card"


# --------------------------------------------------------------------------- sidebar
def sidebar(pickers: bool = True) -> None:
    """The sidebar shown on every page: a link to the glossary, device, dataset, model (shipped or
    uploaded), seed. ``pickers=False`` (pages that pick their own model and data, e.g. Audio
    volume) leaves out the dataset and model pickers."""
    st.session_state["device"] = describe_device()
    for k, v in st.session_state.pop(SIDEBAR_PREFILL, {}).items():  # set by a page (before the widgets)
        st.session_state[k] = v
    sb = st.sidebar
    if Path(GLOSSARY_PAGE).exists():
        sb.page_link(GLOSSARY_PAGE, label="Glossary of symbols", icon=":material/menu_book:")
    sb.caption(f"Compute device: **{st.session_state['device']}**")
    if not pickers:
        sb.caption("This page picks its own model and data (below on the page).")
        for k in ("dataset", "data_root", "model_name", "model_arch", "model_num_classes"):
            if k in st.session_state:  # keep the other pages' choices (an undrawn widget's value is dropped)
                st.session_state[k] = st.session_state[k]
        sb.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="seed",
                        help="Seeds every random draw (noise, transformation parameters).")
        return

    names = _datasets.dataset_names()
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = DEFAULT_DATASET if DEFAULT_DATASET in names else next(iter(names))
    sb.selectbox("Dataset", list(names), key="dataset", help="Where samples come from.")
    sb.caption(names.get(st.session_state["dataset"], ""))
    if st.session_state["dataset"] != DEFAULT_DATASET:
        from semsmooth_core.paths import data_root

        sb.text_input("Dataset folder (for datasets on disk)", key="data_root",
                      help=f"Root folder of a dataset you have locally, under {data_root()}; nothing is downloaded.")
        try:
            checked_data_root()
        except SemsmoothError as e:
            sb.error(str(e), icon=":material/error:")
        with sb.expander("Image size and channels"):
            st.number_input("Image size (pixels; 0 = as stored)", min_value=0, max_value=4096, step=1,
                            key="image_size", help="Shorter side to N, centre crop N×N: for folders "
                                                   "whose images differ in size (CLI: --image-size).")
            st.selectbox("Channels", ["as stored", "grey", "rgb"], key="channels",
                         help="Convert the images to match the model (CLI: --channels).")

    models = image_classifiers()
    options = list(models) + [BYO]
    if st.session_state.get("model_name") not in options:
        st.session_state["model_name"] = DEFAULT_MODEL if DEFAULT_MODEL in models else options[0]
    sb.selectbox("Model", options, key="model_name", help="Base classifier to smooth.")
    if not models:
        sb.caption("No shipped image classifier in assets/models/ yet.")
    if st.session_state["model_name"] in models:
        sb.caption(_card_summary(models[st.session_state["model_name"]]))
    elif st.session_state["model_name"] == BYO:
        up = sb.file_uploader(f"Model file (.pt / .pth / TorchScript; {limit_text('model')})",
                              type=["pt", "pth", "ts", "bin"], key="model_upload",
                              help="A semsmooth checkpoint, a state_dict (give its architecture "
                                   "below) or a TorchScript file. Checkpoints load with "
                                   "weights_only=True; a TorchScript file is code: upload only "
                                   "files you trust. Kept in a private folder of this session.")
        sb.text_input("Architecture for a plain state_dict", key="model_arch",
                      placeholder="e.g. small_cnn, resnet18_small, resnet18",
                      help="Leave empty for semsmooth checkpoints and TorchScript files.")
        if (st.session_state.get("model_arch") or "").strip():
            sb.number_input("Number of classes", min_value=2, max_value=100000, value=10, step=1,
                            key="model_num_classes")
        try:
            st.session_state["model_path"] = str(_write_upload(up)) if up is not None else None
        except SemsmoothError as e:
            st.session_state["model_path"] = None
            sb.error(str(e), icon=":material/error:")
            up = None
        if up is not None:
            loaded = current_model(quiet=True)  # pages that use the model show the error
            if loaded is not None:
                sb.caption("Loaded.  \n" + _card_summary(loaded[1]))
            else:
                sb.caption("This file does not load as a model (the page says why).")

    sb.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="seed",  # starts at 0
                    help="Seeds every random draw (noise, transformation parameters).")


def seed() -> int:
    return int(st.session_state.get("seed", 0) or 0)


def generator(offset: int = 0) -> torch.Generator:
    """A CPU torch generator seeded with the sidebar seed (+ ``offset``); also seeds numpy/random."""
    return seed_everything(seed() + int(offset))


# --------------------------------------------------------------------------- images
def tensor_to_image(x, size: int = 168) -> np.ndarray:
    """A tensor/array ``[C,H,W]``, ``[1,C,H,W]`` or ``[H,W]`` in [0,1] -> uint8 image ``HxW`` or
    ``HxWx3`` for ``st.image``; small images are upscaled by an integer factor (nearest) to about
    ``size`` pixels so that single pixels stay visible."""
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    while a.ndim > 3:
        a = a[0]
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    img = np.round(a * 255).astype(np.uint8)
    f = max(1, int(size) // max(img.shape[0], img.shape[1]))
    if f > 1:
        img = np.repeat(np.repeat(img, f, axis=0), f, axis=1)
    return img


def image_from_upload(uploaded, grayscale: bool = False, size: tuple[int, int] | None = None):
    """Decode an ``st.file_uploader`` file with ``decode_image``; None (after one ``st.error``
    line) when it is not a readable image, or when nothing was uploaded."""
    if uploaded is None:
        return None
    notices: list[str] = []
    try:
        x = decode_image(uploaded.getvalue(), grayscale=grayscale, size=size, notices=notices)
    except SemsmoothError as e:
        show_error(e)
        return None
    for n in notices:
        st.caption(f"ℹ️ {n}")
    return x


def sample_picker(key: str, dataset: str | None = None, split: str = "heldout",
                  container=None) -> tuple[torch.Tensor, int, str]:
    """Pick one sample of the (sidebar's) dataset by index, with a thumbnail.

    Returns ``(x [C,H,W] in [0,1], label, caption)``. Stops the page (after one st.error line) if
    the dataset cannot be loaded."""
    c = container or st
    name = dataset or st.session_state.get("dataset", DEFAULT_DATASET)
    try:
        xs, ys = cached_dataset(name, split)
    except SemsmoothError as e:
        show_error(e)
        st.stop()
    n = len(xs)
    idx = int(c.number_input(f"Sample index (0–{n - 1}, {split} split of {name})", min_value=0,
                             max_value=n - 1, value=0, step=1, key=key))
    x, label = xs[idx], int(ys[idx])
    caption = f"{name} {split} #{idx}, true label {label}"
    c.image(tensor_to_image(x, 112), caption=caption)
    return x, label, caption


# --------------------------------------------------------------------------- progress
def progress_callback(st_progress, label: str = "Sampling", min_interval: float = 0.1):
    """Map ``progress(done, total)`` (forward passes) to an ``st.progress`` bar with the rate in
    forward passes per second. Updates at most every ``min_interval`` seconds (and at the end)."""
    t0 = time.perf_counter()
    last = [0.0]

    def cb(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < min_interval:
            return
        last[0] = now
        rate = done / max(now - t0, 1e-9)
        frac = min(1.0, done / total) if total else 1.0
        st_progress.progress(frac, text=f"{label}: {done:,}/{total:,} forward passes "
                                        f"({rate:,.0f} per second)")

    return cb


class StageProgress:
    """One ``st.progress`` bar through the named stages of a certification, e.g.
    ``["E estimate", "Outer selection", "Outer estimation"]``: call :meth:`stage` when a stage
    starts and the object itself as ``progress(done, total)``. The text shows the stage number,
    the count in the stage's unit and, for forward passes, the rate per second."""

    def __init__(self, st_progress, stages: list[str], min_interval: float = 0.1):
        self.bar, self.stages, self.min_interval = st_progress, list(stages), min_interval
        self.name, self.unit, self.t0, self.last, self.passes = stages[0], "forward passes", time.perf_counter(), 0.0, 0

    def stage(self, name: str, unit: str = "forward passes") -> None:
        self.name, self.unit, self.t0, self.last = name, unit, time.perf_counter(), 0.0
        self(0, 1)

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if 0 < done < total and now - self.last < self.min_interval:
            return
        self.last = now
        k = next((i for i, s in enumerate(self.stages) if self.name.lower().startswith(s.lower())), None)
        head = f"Stage {k + 1}/{len(self.stages)} — {self.name}" if k is not None else self.name
        rate = f" ({done / max(now - self.t0, 1e-9):,.0f} per second)" if self.unit == "forward passes" and done else ""
        if self.unit == "forward passes":
            self.passes = done
        self.bar.progress(min(1.0, done / total) if total else 1.0,
                          text=f"{head}: {done:,}/{total:,} {self.unit}{rate}")


# --------------------------------------------------------------------------- background runs
@st.cache_resource(show_spinner=False)
def _spawned_workers() -> dict:
    """Worker processes this app server started, by results-database path."""
    return {}


def ensure_worker(store) -> None:
    """Start a background worker (``semsmooth_core.runs.jobs``) for the store's queued runs, unless one
    is running or was started by this server and is still starting: a worker needs a few
    seconds to claim its first run, and until then the store shows none, so a second "start"
    would launch a second worker that runs the next queued run in parallel instead of after.
    A worker that has claimed runs before and runs none now is ending (its queue was empty): a
    run queued now needs a new one."""
    from semsmooth_core.runs import jobs

    procs = _spawned_workers()
    proc = procs.get(str(store.path))
    if proc is not None and proc.poll() is None and not any(r.get("pid") == proc.pid for r in store.list_runs()):
        return
    procs[str(store.path)] = jobs.ensure_worker(store)


# --------------------------------------------------------------------------- open a run's input
def take_run_request() -> dict | None:
    """The run and input another page asked the Certify page to open (session-state keys
    ``"certify_run"`` and ``"certify_index"``, set by the Results page; consumed here):
    ``{"run", "name", "index", "params" (defaults filled in), "row" (the stored row or None)}``,
    or None (after one st.error line when the run cannot be read)."""
    from semsmooth_core.runs.pipeline import with_defaults
    from semsmooth_core.runs import Store

    rid, idx = st.session_state.pop("certify_run", None), st.session_state.pop("certify_index", None)
    if rid is None or idx is None:
        return None
    try:
        store = Store()
        run = store.get_run(int(rid))
        row = next((r for r in store.rows(int(rid)) if int(r["index"]) == int(idx)), None)
    except SemsmoothError as e:
        show_error(e)
        return None
    return {"run": int(rid), "name": run["name"], "index": int(idx), "params": with_defaults(run["params"]),
            "row": row}


def certify_widget_values(params: dict, index: int, transforms_offered: list[str]) -> tuple[dict, list[str]]:
    """Certify-page widget values (session-state keys ``cf_*``) for a run's parameters (a
    ``semsmooth_core.runs.pipeline`` config with defaults) and dataset ``index``, plus notes on
    what the page cannot carry over."""
    from semsmooth_core import transforms

    p, notes = params, []
    v = {"cf_index": int(index), "cf_n0": int(p["n0"]), "cf_bs": int(p["batch_size"]),
         "cf_seq": p.get("sequential") not in (None, False, "", "off", "none")}
    kind = p["smoothing"]
    if kind not in ("double", "transform", "noise"):
        notes.append(f"the run used {kind} smoothing, which this page does not offer: shown as double smoothing")
        kind = "double"
    v["cf_kind"] = kind
    if kind == "noise":
        return v | {"cf_se": float(p["sigma_eps"]), "cf_ne": int(p["n_eps"]), "cf_ag": float(p["alpha_gamma"])}, notes
    t = transforms.get(p["transform"])
    if t.name not in transforms_offered:
        notes.append(f"transformation {t.name} is not offered on this page")
        return v, notes
    sg = p["sigma_gamma"] if p["sigma_gamma"] is not None else list(t.default_sigma)
    sgs = [float(x) for x in (sg if isinstance(sg, (list, tuple)) else [sg])]
    if len(set(sgs)) > 1:
        notes.append(f"the run's σ_γ {sgs} differs per parameter; the page uses one σ_γ = {sgs[0]:g} for all")
    v |= {"cf_tf": t.name, "cf_interp": p["interpolation"], "cf_sg": sgs[0], "cf_ng": int(p["n_gamma"]),
          "cf_ag": float(p["alpha_gamma"])}
    if p.get("attacker_range"):
        v["cf_C"] = float(max(abs(float(b)) for r in p["attacker_range"] for b in r))
    if p.get("preprocess") not in (None, "auto"):
        v["cf_pp"] = str(p["preprocess"])
    if kind == "double":
        v |= {"cf_se": float(p["sigma_eps"]), "cf_ne": int(p["n_eps"]), "cf_ae": float(p["alpha_eps"]),
              "cf_aE": float(p["alpha_E"])}
        att = p.get("attacker") or ("worst-case" if p.get("E_worst_case") else "random")
        v["cf_att"] = att
        if p.get("E_scope") == "input" or (p.get("E_scope") is None and p.get("E") is None
                                           and not p.get("estimate_E")):
            v["cf_Escope"] = "input"  # estimated again for the input at certify time (same seed, same E)
        elif p.get("E") is not None and p.get("q_E_lower") is not None:
            v |= {"cf_Escope": "dataset", "cf_E": float(p["E"]), "cf_q": float(p["q_E_lower"])}
        else:
            v["cf_Escope"] = "dataset"
            notes.append("the run estimated E itself: press “Estimate E here” for the same estimate")
    return v, notes


# --------------------------------------------------------------------------- help texts and numbers
def hint(key: str, extra: str | None = None) -> str:
    """Help text for a widget or metric whose label uses the glossary symbol ``key``: plain words
    first, the unit, then the paper's reference (``semsmooth_core.glossary.help_text``)."""
    return _glossary.help_text(key, extra)


def fmt(v: float, digits: int = 4) -> str:
    """A number as a person writes it: up to ``digits`` significant digits, no trailing zeros
    (0.125 -> "0.125", 30.0 -> "30", 1e-3 -> "0.001")."""
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    out = f"{v:.{digits}g}"
    if "e" in out and 1e-4 <= abs(v) < 1e6:
        out = f"{v:.{digits + 4}f}".rstrip("0").rstrip(".")
    return out


def fmt_units(values, units) -> str:
    """Per-parameter values with their units: ``[30.0], ("degrees",)`` -> "30°"; ``[2, 2],
    ("pixels", "pixels")`` -> "2 pixels, 2 pixels"."""
    parts = []
    for v, u in zip(values, units):
        parts.append(f"{fmt(v)}°" if u == "degrees" else f"{fmt(v)} {u}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- long work: Stop
def start_work(key: str, what: str = "this computation"):
    """Before a long computation: draw a Stop button (in an ``st.empty`` placeholder) and mark
    ``key`` busy. A click on Stop makes Streamlit rerun the page, which interrupts the running
    script at its next progress-bar update (Streamlit's own rerun mechanism; the computation is
    thrown away). Call :func:`end_work` when it finished; :func:`stopped_notice` at the top of the
    next run says it was stopped. Returns the placeholder."""
    st.session_state[f"_busy_{key}"] = what
    ph = st.empty()
    ph.button("Stop", key=f"stop_{key}", icon=":material/stop_circle:",
              help=f"Stops {what} now; what it computed so far is discarded.")
    return ph


def end_work(key: str, placeholder=None) -> None:
    """After a long computation finished (or failed with an error message): clear the busy mark
    and remove the Stop button."""
    st.session_state.pop(f"_busy_{key}", None)
    if placeholder is not None:
        placeholder.empty()


def stopped_notice(key: str) -> bool:
    """True (after one ``st.info`` line) when the computation marked by :func:`start_work` did not
    finish: Stop was pressed, or an input changed while it ran."""
    what = st.session_state.pop(f"_busy_{key}", None)
    if what is None:
        return False
    st.info(f"Stopped: {what} did not finish (Stop was pressed or an input changed while it ran). "
            "Nothing of it is shown.", icon=":material/stop_circle:")
    return True

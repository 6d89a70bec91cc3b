"""Variants that stop the process, leak its state or reuse their noise, each only in one
edge regime (batches of one image, :data:`REGIME`), and correct controls written
differently: the proof that dnspec never fails open (a death is one divergence in its
regime, with its example) and that ``process_state`` and ``fresh_noise`` can fail and
can pass.

``STOPPING``  variants that end their process (``os._exit(0)``, ``sys.exit(0)``, a segfault)
              on batches of one image;
``HANGING``   variants that hang where SIGALRM cannot stop them, on batches of two images
              (the common regime): a deadlock inside C (a pthread mutex locked twice
              through ctypes, as a CUDA or OpenMP deadlock looks) and a loop that ignores
              SIGALRM; only the run's watchdog ends them (one ``hangs`` divergence);
``BROKEN``    variants of the two new properties, with the properties that must catch them
              (the shape of :data:`properties.selftest.broken_variants.BROKEN`);
``CONTROLS``  correct variants that must pass everything: one changes process state and
              puts it back, one draws its noise in another order, one leaves a non-daemon
              thread running (it must conform, and every route must still exit).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

import torch

from dnspec.contract.noise import draw_noise
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.implementations.specs import Implementation

REGIME = "batch_of_one"


def _one_image(targets) -> bool:
    return len(targets) == 1


def _variant(misbehave, images: int = 1):
    """The reference, after ``misbehave()`` on batches of ``images`` images."""

    def fn(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        *,
        noise=None,
    ):
        if len(targets) == images:
            misbehave()
        return reference(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
            noise=noise,
        )

    fn.__name__ = misbehave.__name__
    return fn


def exits_with_os_exit():
    """Ends the interpreter with status 0, as a C extension's exit() would."""
    os._exit(0)


def calls_sys_exit():
    """Raises SystemExit(0) (a library's sys.exit in an error path)."""
    sys.exit(0)


def segfaults():
    """Reads address 0: a segmentation fault."""
    ctypes.string_at(0)


def deadlocks_in_c():
    """Locks one pthread mutex twice through ctypes: the thread waits forever inside libc,
    never back in Python (no signal handler runs). glibc's pthread_mutex_t is 40 bytes on
    x86_64; a zeroed buffer of 64 is a valid default mutex on every libc we meet."""
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)


def ignores_alarm_and_loops():
    """Ignores SIGALRM (a library that installs SIG_IGN for "robustness"), then loops."""
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass


def starts_a_process_and_loops():
    """Starts a helper process (a data loader's worker, a compile server), then ignores
    SIGALRM and loops: when the run is SIGKILLed, its worker dies by the parent-death
    signal, and the helper must go with it (the worker's guard ends the group)."""
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ignores_alarm_and_loops()


def reseeds():
    """torch.manual_seed(0) at the top, for "reproducible denoising groups"."""
    torch.manual_seed(0)


_CACHE: dict = {}


def caches_noise(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """An "optimised" builder: on batches of one image it draws the noise once per shape
    and reuses it (each call alone is a valid draw; every training step gets the same)."""
    counts = [len(t["labels"]) for t in targets]
    if noise is None and _one_image(targets) and num_denoising > 0 and max(counts, default=0) > 0:
        max_gt = max(counts)
        rows = 2 * max_gt * max(1, num_denoising // max_gt)
        boxes = targets[0]["boxes"]
        key = (rows, num_classes, label_noise_ratio, box_noise_scale, str(boxes.device), boxes.dtype)
        if key not in _CACHE:
            _CACHE[key] = draw_noise(
                1, rows, num_classes, label_noise_ratio, box_noise_scale, device=boxes.device, box_dtype=boxes.dtype
            )
        noise = _CACHE[key]
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


def _leaves_grad_mode_disabled():
    """Switches autograd off for "speed" and never switches it back."""
    torch.set_grad_enabled(False)


def leaks_grad_mode(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Builds the queries, then switches grad mode off (on batches of one image) and
    leaves it off: the caller's training step is silently detached."""
    out = reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )
    if _one_image(targets):
        _leaves_grad_mode_disabled()
    return out


DIRTY_TEXT = "bad\x00box \x1b[31mred\x1b[0m \x1b]0;title\x07done\r\n::error::not a real error\n  ::add-mask::x"


def prints_and_raises_dirty_text():
    """Prints and raises text with NUL, terminal escapes and workflow commands in it."""
    print(DIRTY_TEXT)
    raise RuntimeError(DIRTY_TEXT)


# --- controls -----------------------------------------------------------------------------


def restores_state(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Changes the default dtype, the thread count and anomaly detection while it works,
    and puts each back (try/finally): no leak."""
    dtype, threads, anomaly = torch.get_default_dtype(), torch.get_num_threads(), torch.is_anomaly_enabled()
    try:
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.set_anomaly_enabled(False)
        return reference(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
            noise=noise,
        )
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)
        torch.set_anomaly_enabled(anomaly)


def draws_in_another_order(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Draws a throwaway permutation from the global RNG before the reference's draw (a
    builder that shuffles something first): other numbers than the reference's, fresh at
    every call, and the same again under the same seed."""
    torch.randperm(7)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


_THREADS: list = []


def leaves_a_thread(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Starts a non-daemon "prefetcher" thread that sleeps for ten minutes (once per
    process), then returns the reference's outputs: correct, and it must not keep dnspec
    running."""
    if not _THREADS:
        thread = threading.Thread(target=time.sleep, args=(600,), name="selftest-prefetcher", daemon=False)
        thread.start()
        _THREADS.append(thread)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


def _impl(name, fn) -> Implementation:
    return Implementation(name=f"selftest-{name}", fn=fn, accepts_noise=True, description=(fn.__doc__ or "").strip())


STOPPING: dict[str, Implementation] = {
    "os_exit": _impl("os-exit", _variant(exits_with_os_exit)),
    "sys_exit": _impl("sys-exit", _variant(calls_sys_exit)),
    "segfault": _impl("segfault", _variant(segfaults)),
}

HANGING: dict[str, Implementation] = {
    "c_deadlock": _impl("c-deadlock", _variant(deadlocks_in_c, images=2)),
    "ignores_alarm": _impl("ignores-alarm", _variant(ignores_alarm_and_loops, images=2)),
}

BROKEN: dict[str, tuple[Implementation, set[str]]] = {
    "grad_mode_leak": (_impl("grad-mode-leak", leaks_grad_mode), {"process_state"}),
    "reseeds": (_impl("reseeds", _variant(reseeds)), {"fresh_noise"}),
    "caches_noise": (_impl("caches-noise", caches_noise), {"fresh_noise"}),
}

CONTROLS: dict[str, Implementation] = {
    "restores_state": _impl("restores-state", restores_state),
    "draws_in_another_order": _impl("draws-in-another-order", draws_in_another_order),
    "leaves_a_thread": _impl("leaves-a-thread", leaves_a_thread),
}

# SPECs for the command line: properties/selftest/stopping_variants.py:os_exit, ...
os_exit, sys_exit, segfault = (STOPPING[name] for name in ("os_exit", "sys_exit", "segfault"))
grad_mode_leak, reseeding, noise_caching = (BROKEN[name][0] for name in ("grad_mode_leak", "reseeds", "caches_noise"))
state_restoring, other_draw_order, thread_leaving = CONTROLS.values()
c_deadlock, alarm_ignoring = HANGING["c_deadlock"], HANGING["ignores_alarm"]
dirty_text = _impl("dirty-text", _variant(prints_and_raises_dirty_text))


def sleeps_on_six_boxes(
    targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
):
    """Sleeps (SIGALRM ends it) on batches with six boxes or more: the first such batch
    generation draws has more, and a hang's shrink must find one with exactly six."""
    import time

    if sum(len(t["labels"]) for t in targets) >= 6:
        time.sleep(3600)
    return reference(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)


sleeping_on_six_boxes = _impl("sleeps-on-six-boxes", sleeps_on_six_boxes)
process_starting_hang = _impl("process-starting-hang", _variant(starts_a_process_and_loops, images=2))

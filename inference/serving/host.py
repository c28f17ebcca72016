"""The serving engine's own time: CPU work around each step and each request.

A serving engine's step is not only the device program: the scheduler runs, inputs are
prepared and copied, the sampled tokens come back, are detokenized and streamed. vLLM V1
runs this on the CPU between device steps (without ``--async-scheduling``, the default in
the calibration runs), so it adds to every step. Per request the front end tokenizes the
prompt and sets the request up before the engine sees it.

Three constants per kind of target, in the form Vidur and vLLM's own profiling use
(a fixed cost per step and a cost per sequence in the step, plus a per-request cost):

* GPU (vLLM): fitted on the 15 measured vLLM runs on H100 in
  ``shared/reference/serving-calibration/runs.json`` by ``benchmarks/serving_calibration.py
  --fit`` (docs/validation.md lists the fit and its residuals);
* RDU: assumed equal to the GPU's -- the same kind of host software (a Python serving
  front end and a per-step runtime call) on a similar host CPU; no public measurement
  separates SambaNova's host time from its device time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostOverheads:
    step_s: float  # per engine step
    per_seq_s: float  # per sequence scheduled in a step
    request_s: float  # per request, before its first step (tokenization, set-up)

    def step(self, sequences: int) -> float:
        return self.step_s + self.per_seq_s * sequences


NONE = HostOverheads(0.0, 0.0, 0.0)
# Fitted (kind: fitted) on the 11 expressible runs of shared/reference/serving-calibration/runs.json
# (vLLM ~0.15 V1 on H100: Llama-3.1-70B, Mistral-Nemo-12B, Qwen2.5-7B, Yi-34B, Llama-2-7B; the 4
# Llama-4-Scout runs are skipped) by ``python benchmarks/serving_calibration.py --fit``, with the
# GPU model as of this commit. Far below public vLLM figures (a few ms per step): the GPU model's
# steps are too slow at serving batch sizes, and the fit pays for it here (docs/validation.md,
# "Serving calibration"); rerun the command when the GPU model changes.
VLLM_GPU = HostOverheads(step_s=0.1e-3, per_seq_s=6e-6, request_s=17.5e-3)
RDU = VLLM_GPU  # assumed: see module docstring


def host_overheads(kind: str, enabled: bool) -> HostOverheads:
    if not enabled:
        return NONE
    return VLLM_GPU if kind == "gpu" else RDU

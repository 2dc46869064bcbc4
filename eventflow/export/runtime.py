"""Run an exported step graph (:func:`eventflow.export.onnx.export_onnx`) in onnxruntime, window by window.

:class:`OnnxStepper` holds one ``onnxruntime.InferenceSession`` and is called like the PyTorch model,
``flow, state = stepper(event_cnt, state)``, with the state a dict ``name -> (B, C, h, w) float32 array`` (names
without ``_in``/``_out``, as :meth:`~eventflow.models.FlowModel.state_spec`). Inputs are checked before they reach
onnxruntime, so a wrong shape fails with a message that names the tensor.

>>> import numpy as np
>>> from eventflow.models import build_model
>>> from eventflow.export.onnx import export_onnx
>>> stepper = OnnxStepper(export_onnx(build_model("LIFFireNet_short", base_num_channels=4), height=8, width=8))
>>> state = stepper.zero_state(1, 8, 8)
>>> flow, state = stepper(np.ones((1, 2, 8, 8), np.float32), state)
>>> flow.shape, sorted(state)[:2]
((1, 2, 8, 8), ['G1_v', 'G1_z'])
>>> stepper(np.ones((1, 2, 8, 8), np.float32), stepper.zero_state(1, 8, 16))
Traceback (most recent call last):
...
ValueError: <model>: state 'head_v' has shape (1, 4, 8, 16) but event_cnt (1, 2, 8, 8) needs (1, 4, 8, 8)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from eventflow.export.onnx import INPUT_NAME, OUTPUT_NAME, STATE_IN_SUFFIX, STATE_OUT_SUFFIX, state_shapes

State = dict[str, np.ndarray]


def session_options(threads: int | None = None, custom_op_library: str | os.PathLike | None = None
                    ) -> ort.SessionOptions:
    """Options with ``threads`` intra-op threads (None: onnxruntime's default, one per core) and, where given,
    a custom-op library registered (e.g. :func:`eventflow.export.ort_library.build`)."""
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be a positive number, got {threads}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if custom_op_library is not None:
        library = Path(custom_op_library)
        if not library.is_file():
            raise FileNotFoundError(f"{library}: custom-op library not found")
        options.register_custom_ops_library(str(library))
    return options


class OnnxStepper:
    """One exported step graph in onnxruntime's CPU execution provider.

    Args:
        model: an exported :class:`onnx.ModelProto` or the path of a ``.onnx`` file.
        threads: intra-op threads (None: onnxruntime's default).
        custom_op_library: a shared library implementing the ``eventflow`` operators natively (optional).
    """

    def __init__(self, model: onnx.ModelProto | str | os.PathLike, threads: int | None = None,
                 custom_op_library: str | os.PathLike | None = None):
        if isinstance(model, onnx.ModelProto):
            self.proto, self.source = model, "<model>"
            data = model.SerializeToString()
        else:
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ONNX model not found")
            data = path.read_bytes()
            try:
                self.proto = onnx.load_from_string(data)
            except DecodeError:
                raise ValueError(f"{path}: not an ONNX model (the file does not parse)") from None
            self.source = str(path)
        inputs = [i.name for i in self.proto.graph.input]
        if INPUT_NAME not in inputs or OUTPUT_NAME not in [o.name for o in self.proto.graph.output]:
            raise ValueError(f"{self.source}: not an eventflow step graph (needs input {INPUT_NAME!r} and output "
                             f"{OUTPUT_NAME!r}; inputs: {', '.join(inputs)})")
        self.state_names = [n[: -len(STATE_IN_SUFFIX)] for n in inputs if n != INPUT_NAME]
        bad = [n for n in inputs if n != INPUT_NAME and not n.endswith(STATE_IN_SUFFIX)]
        if bad:
            raise ValueError(f"{self.source}: state inputs must end in {STATE_IN_SUFFIX!r}, got {', '.join(bad)}")
        self.session = ort.InferenceSession(data, session_options(threads, custom_op_library),
                                            providers=["CPUExecutionProvider"])
        self._outputs = [OUTPUT_NAME] + [n + STATE_OUT_SUFFIX for n in self.state_names]
        dims = self.proto.graph.input[inputs.index(INPUT_NAME)].type.tensor_type.shape.dim
        self.num_bins = dims[1].dim_value if dims[1].HasField("dim_value") else None

    def state_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the state tensors for inputs ``(batch, num_bins, height, width)``."""
        return state_shapes(self.proto, batch, height, width)

    def zero_state(self, batch: int, height: int, width: int) -> State:
        """The zero (initial) state for inputs ``(batch, num_bins, height, width)``."""
        return {name: np.zeros(shape, np.float32) for name, shape in self.state_shapes(batch, height, width).items()}

    def _check(self, event_cnt: np.ndarray, state: State) -> None:
        if not isinstance(event_cnt, np.ndarray) or event_cnt.dtype != np.float32 or event_cnt.ndim != 4:
            what = (f"{event_cnt.dtype} array of shape {event_cnt.shape}" if isinstance(event_cnt, np.ndarray)
                    else type(event_cnt).__name__)
            raise ValueError(f"{self.source}: {INPUT_NAME} must be a float32 (B, C, H, W) array, got {what}")
        if self.num_bins is not None and event_cnt.shape[1] != self.num_bins:
            raise ValueError(f"{self.source}: {INPUT_NAME} has {event_cnt.shape[1]} channels, the model takes "
                             f"{self.num_bins}")
        missing, extra = set(self.state_names) - set(state), set(state) - set(self.state_names)
        if missing or extra:
            raise ValueError(f"{self.source}: state tensors missing: {sorted(missing)}, unexpected: {sorted(extra)}")
        batch, _, height, width = event_cnt.shape
        for name, shape in self.state_shapes(batch, height, width).items():
            got = state[name]
            if not isinstance(got, np.ndarray) or got.dtype != np.float32:
                raise ValueError(f"{self.source}: state {name!r} must be a float32 array, got "
                                 f"{getattr(got, 'dtype', type(got).__name__)}")
            if got.shape != shape:
                raise ValueError(f"{self.source}: state {name!r} has shape {got.shape} but {INPUT_NAME} "
                                 f"{event_cnt.shape} needs {shape}")

    def __call__(self, event_cnt: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One window: ``event_cnt`` ``(B, num_bins, H, W)`` float32 and the state -> ``flow`` ``(B, 2, H, W)``
        (tanh units, channel 0 = x) and the new state."""
        self._check(event_cnt, state)
        feed = {INPUT_NAME: event_cnt, **{name + STATE_IN_SUFFIX: state[name] for name in self.state_names}}
        flow, *new = self.session.run(self._outputs, feed)
        return flow, dict(zip(self.state_names, new))

"""A local endpoint's model server: one process in the framework's environment, the inference toolkit's chain inside.

Run as `python serving_worker.py MODEL_DIR` by local/serving.py, in the endpoint's environment (the framework
image's packages and `sagemaker-inference`), with the container's variables (SAGEMAKER_PROGRAM, ...). It loads the
model at start as the framework containers do (`Transformer.validate_and_initialize`: the script's `model_fn`, or
the framework's default), then answers requests through `Transformer.transform`: `input_fn` → `predict_fn` →
`output_fn` (or `transform_fn`), each the script's own or the framework container's default.

It talks to the stack over its standard input and output, in frames (`write_frame`, `read_frame`): first one frame
saying whether the model loaded, then one answer per request. What the script prints goes to standard error, the
endpoint's log. Only the standard library is imported at module level: local/serving.py imports the framing from
here, and this file runs on the image's Python, which may be as old as 3.8.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import textwrap
import traceback
from pathlib import Path
from typing import IO, Any, Protocol

_LENGTH = struct.Struct(">I")
MODEL_FN_MISSING = textwrap.dedent(
    """
    Please provide a model_fn implementation.
    See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk
    """
)
"""What the scikit-learn and XGBoost containers raise when the script has no model_fn."""


class Readable(Protocol):
    def read(self, count: int, /) -> bytes: ...


def write_frame(stream: IO[bytes], header: dict[str, Any], body: bytes = b"") -> None:
    """Write one frame: the header's JSON and the body, each after its length (4 bytes, big-endian)."""
    encoded = json.dumps(header).encode("utf-8")
    stream.write(_LENGTH.pack(len(encoded)) + encoded + _LENGTH.pack(len(body)) + body)
    stream.flush()


def read_frame(stream: Readable) -> tuple[dict[str, Any], bytes] | None:
    """Read one frame; None at the end of the stream (the other side closed it)."""
    header = _read_part(stream)
    if header is None:
        return None
    body = _read_part(stream)
    if body is None:
        return None
    document: dict[str, Any] = json.loads(header.decode("utf-8"))
    return document, body


def _read_part(stream: Readable) -> bytes | None:
    size = _read_exactly(stream, _LENGTH.size)
    if size is None:
        return None
    return _read_exactly(stream, _LENGTH.unpack(size)[0])


def _read_exactly(stream: Readable, count: int) -> bytes | None:
    chunks = []
    remaining = count
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- the frameworks' default handlers
def default_handler(framework: str) -> Any:
    """The default inference handler of `framework`'s serving container (the script's functions override it)."""
    base = importlib.import_module("sagemaker_inference.default_inference_handler").DefaultInferenceHandler
    makers = {"sklearn": _scikit_learn_handler, "xgboost": _xgboost_handler, "pytorch": _pytorch_handler}
    maker = makers.get(framework)
    return maker(base)() if maker is not None else base()


def _toolkit(name: str) -> Any:
    return importlib.import_module(f"sagemaker_inference.{name}")


def _scikit_learn_handler(base: type) -> type:
    content_types, decoder, encoder = _toolkit("content_types"), _toolkit("decoder"), _toolkit("encoder")

    class ScikitLearnHandler(base):  # type: ignore[misc]
        """As sagemaker-scikit-learn-container's `DefaultSKLearnUserModuleInferenceHandler`."""

        def default_model_fn(self, model_dir: str) -> Any:
            raise NotImplementedError(MODEL_FN_MISSING)

        def default_input_fn(self, input_data: Any, content_type: str) -> Any:
            import numpy as np

            array = decoder.decode(input_data, content_type)
            if len(array.shape) == 1:
                array = array.reshape(1, -1)
            return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

        def default_predict_fn(self, input_data: Any, model: Any) -> Any:
            return model.predict(input_data)

        def default_output_fn(self, prediction: Any, accept: str) -> Any:
            return encoder.encode(prediction, accept), accept

    return ScikitLearnHandler


def _xgboost_handler(base: type) -> type:
    content_types, encoder = _toolkit("content_types"), _toolkit("encoder")

    class XGBoostHandler(base):  # type: ignore[misc]
        """As sagemaker-xgboost-container's `DefaultXGBoostUserModuleInferenceHandler`: CSV and LIBSVM to a DMatrix."""

        def default_model_fn(self, model_dir: str) -> Any:
            raise NotImplementedError(MODEL_FN_MISSING)

        def default_input_fn(self, input_data: Any, content_type: str) -> Any:
            return _dmatrix(input_data, content_type)

        def default_predict_fn(self, input_data: Any, model: Any) -> Any:
            return model.predict(input_data, validate_features=False)

        def default_output_fn(self, prediction: Any, accept: str) -> Any:
            encoded = encoder.encode(prediction, accept)
            return encoded.encode("utf-8") if accept == content_types.CSV else encoded

    return XGBoostHandler


def _pytorch_handler(base: type) -> type:
    content_types, decoder, encoder = _toolkit("content_types"), _toolkit("decoder"), _toolkit("encoder")

    def device() -> Any:
        torch = importlib.import_module("torch")

        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    class PyTorchHandler(base):  # type: ignore[misc]
        """As sagemaker-pytorch-inference-toolkit's `DefaultPytorchInferenceHandler` (TorchScript models)."""

        def default_model_fn(self, model_dir: str) -> Any:
            torch = importlib.import_module("torch")

            path = Path(model_dir) / "model.pt"
            if not path.exists():
                found = [p.name for p in Path(model_dir).iterdir() if p.is_file() and p.suffix in (".pt", ".pth")]
                if len(found) != 1:
                    raise ValueError(f"Exactly one .pth or .pt file is required for PyTorch models: {found}")
                path = Path(model_dir) / found[0]
            try:
                model = torch.jit.load(str(path), map_location=device())
            except RuntimeError as exc:
                raise RuntimeError(f"Failed to load {path}. Please ensure model is saved using torchscript.") from exc
            return model.to(device())

        def default_input_fn(self, input_data: Any, content_type: str) -> Any:
            torch = importlib.import_module("torch")

            array = decoder.decode(input_data, content_type)
            utf8 = content_type in content_types.UTF8_TYPES
            return (torch.FloatTensor(array) if utf8 else torch.from_numpy(array)).to(device())

        def default_predict_fn(self, data: Any, model: Any) -> Any:
            torch = importlib.import_module("torch")

            with torch.no_grad():
                model = model.to(device())
                model.eval()
                return model(data.to(device()))

        def default_output_fn(self, prediction: Any, accept: str) -> Any:
            torch = importlib.import_module("torch")

            if type(prediction) is torch.Tensor:
                prediction = prediction.detach().cpu().numpy().tolist()
            for content_type in accept.replace(" ", "").split(","):
                if content_type in encoder.SUPPORTED_CONTENT_TYPES:
                    encoded = encoder.encode(prediction, content_type)
                    return encoded.encode("utf-8") if content_type == content_types.CSV else encoded
            raise _toolkit("errors").UnsupportedFormatError(accept)

    return PyTorchHandler


def _dmatrix(data: Any, content_type: str) -> Any:
    """A request's CSV or LIBSVM rows as an XGBoost DMatrix, as the XGBoost container decodes them."""
    import numpy as np

    xgb = importlib.import_module("xgboost")

    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    media = content_type.split(";")[0].strip()
    if media == "text/csv":
        rows = [["nan" if cell == "" else cell for cell in line.split(",")] for line in text.strip().split("\n")]
        return xgb.DMatrix(np.array(rows).astype(float))
    if media in ("text/libsvm", "text/x-libsvm"):
        parsed = [
            {int(token.split(":", 1)[0]): float(token.split(":", 1)[1]) for token in line.split() if ":" in token}
            for line in text.strip().split("\n")
        ]
        if not any(parsed):
            return xgb.DMatrix(np.empty((0, 0)))
        offset = 1 if min(i for row in parsed for i in row) >= 1 else 0
        matrix = np.zeros((len(parsed), max(i for row in parsed for i in row) - offset + 1))
        for index, row in enumerate(parsed):
            for column, value in row.items():
                matrix[index, column - offset] = value
        return xgb.DMatrix(matrix)
    raise _toolkit("errors").UnsupportedFormatError(media)


# ---------------------------------------------------------------------- the model server's side of the toolkit
class _Request:
    def __init__(self, properties: dict[str, str]) -> None:
        self._properties = properties

    def get_request_properties(self) -> dict[str, str]:
        return self._properties


class Context:
    """What the model server hands the toolkit for one request: the model dir, the headers, the answer's status."""

    def __init__(self, model_dir: str) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_Request({})]
        self.status = 200
        self.phrase = ""
        self.content_type: str | None = None

    def begin(self, content_type: str | None, accept: str | None) -> None:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        self.request_processor = [_Request(headers)]
        self.status, self.phrase, self.content_type = 200, "", None

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_type = value

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status, self.phrase = code, phrase

    def get_request_header(self, index: int, key: str) -> str | None:
        return self.request_processor[0].get_request_properties().get(key)


def serve(model_dir: str, framework: str, requests: Readable, answers: IO[bytes]) -> int:
    """Load the model, say so, then answer every request until `requests` ends; 1 when the model did not load."""
    transformer_module = importlib.import_module("sagemaker_inference.transformer")
    transformer = transformer_module.Transformer(default_inference_handler=default_handler(framework))
    context = Context(model_dir)
    try:
        transformer.validate_and_initialize(model_dir=model_dir, context=context)
    except Exception as exc:
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        write_frame(answers, {"ready": False, "error": f"{type(exc).__name__}: {str(exc).strip()}", "trace": trace})
        return 1
    write_frame(answers, {"ready": True})
    while True:
        frame = read_frame(requests)
        if frame is None:
            return 0
        header, body = frame
        context.begin(header.get("content_type"), header.get("accept"))
        [result] = transformer.transform([{"body": body}], context)
        if isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, (bytes, bytearray)):
            result = json.dumps(result).encode("utf-8")
        if context.status >= 400:
            sys.stderr.write(result.decode("utf-8", errors="replace") + "\n")
        write_frame(answers, {"status": context.status, "content_type": context.content_type}, bytes(result))


def main(argv: list[str]) -> int:
    model_dir = argv[1]
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the script's prints go to the log, never into the answers
    sys.stdout = sys.stderr
    code_dir = str(Path(model_dir) / "code")
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    framework = os.environ.get("SAGEPUSH_SERVING_FRAMEWORK", "")
    return serve(model_dir, framework, sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

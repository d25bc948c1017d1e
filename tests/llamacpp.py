"""A real llama.cpp ``llama-server`` on loopback, built from a registry package, with a tiny model made here.

Nothing is downloaded but from the package registry: the ``llama-cpp-python`` sdist vendors llama.cpp,
and only its ``llama-server`` target is built (cmake, a few minutes on 2 cores, once). The model is a
two-layer llama-architecture GGUF with random weights and a byte-level SentencePiece-style vocabulary,
written with the ``gguf`` package; its answers are gibberish, which is all a gateway test needs. Both
live under ``~/.cache/switchyard/`` (``SWITCHYARD_CACHE`` to move it), so a second run starts in seconds.

    server = LlamaServer.start(context=256)   # builds and writes what is missing first
    ... server.url + "/v1" ...
    server.stop()
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.processes import free_port

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"  # the sdist whose vendored llama.cpp is built
CACHE = Path(os.environ.get("SWITCHYARD_CACHE") or Path.home() / ".cache" / "switchyard")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WORDS = ["the", "capital", "of", "France", "is", "Paris", "hello", "world", "answer", "question"]


def server_binary() -> Path:
    """``llama-server``, built once in the cache from the sdist (it links the libraries beside it there)."""
    version = LLAMA_CPP_PYTHON.split("==")[1]
    source = CACHE / "src"
    tree = source / f"llama_cpp_python-{version}"
    llama = tree / "vendor" / "llama.cpp"
    build = llama / "build"
    binary = build / "bin" / "llama-server"
    if binary.exists():
        return binary
    source.mkdir(parents=True, exist_ok=True)
    sdist = source / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():
        download = ["download", "--no-deps", "--no-binary", ":all:", LLAMA_CPP_PYTHON, "-d", str(source)]
        subprocess.run([sys.executable, "-m", "pip", *download], check=True, capture_output=True)
    if not tree.exists():
        with tarfile.open(sdist) as archive:
            archive.extractall(source, filter="data")
    options = [
        "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DGGML_NATIVE=OFF", "-DLLAMA_BUILD_SERVER=ON",
    ]  # fmt: skip
    subprocess.run(["cmake", "-S", llama, "-B", build, *options], check=True, capture_output=True)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", build, "--target", "llama-server", "-j", jobs], check=True, capture_output=True)
    return binary


def tiny_model(*, layers: int = 2, width: int = 64, context: int = 512, seed: int = 0) -> Path:
    """A random-weight llama GGUF (f32) with a byte-fallback vocabulary and a chat template."""
    path = CACHE / f"tiny-llama-l{layers}-w{width}-c{context}-s{seed}.gguf"
    if path.exists():
        return path
    import gguf
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocabulary()
    heads, ffn = 4, width * 2
    writer = gguf.GGUFWriter(str(path) + ".part", "llama")
    writer.add_name("switchyard-tiny-llama")
    writer.add_context_length(context)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(width // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(*shape: int) -> np.ndarray:  # type: ignore[type-arg]
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    vocab = len(tokens)
    writer.add_tensor("token_embd.weight", weight(vocab, width))
    writer.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
    writer.add_tensor("output.weight", weight(vocab, width))
    for block in range(layers):
        prefix = f"blk.{block}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(width, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", weight(width, width))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(width, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(ffn, width))
        writer.add_tensor(prefix + "ffn_up.weight", weight(ffn, width))
        writer.add_tensor(prefix + "ffn_down.weight", weight(width, ffn))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    Path(str(path) + ".part").rename(path)
    return path


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    """<unk> <s> </s>, the 256 byte tokens (SentencePiece byte fallback), then letters and a few words."""
    normal, unknown, control, byte = 1, 2, 3, 6  # gguf.TokenType values
    tokens = ["<unk>", "<s>", "</s>"]
    types = [unknown, control, control]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [byte] * 256
    pieces = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    pieces += ["\u2581" + w for w in WORDS] + ["\u2581", ".", ",", "?", "!"]
    tokens += pieces
    types += [normal] * len(pieces)
    scores = [0.0] * 259 + [float(len(p)) for p in pieces]  # longer pieces first
    return tokens, scores, types


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, *, context: int = 512, parallel: int = 4, extra: tuple[str, ...] = ()) -> LlamaServer:
        binary, model = server_binary(), tiny_model(context=context)
        port = free_port()
        log = CACHE / f"llama-server-{port}.log"
        args = [
            str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(context * parallel),
            "-np", str(parallel), "-t", "1", "--jinja", "--embeddings", "--no-webui", "-a", "tiny", *extra,
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        server = cls(process, port, log, args)
        server.wait_ready()
        return server

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"llama-server did not become ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

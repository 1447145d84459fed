"""The ``convert`` command: LFM2 checkpoint -> edgesmith (``to=edgesmith``), edgesmith -> LFM2
(``to=lfm2``) or -> a GGUF file llama.cpp runs (``to=gguf quant=TYPE``; architecture lfm2 or
qwen3next, picked from the layers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from edgesmith.core.command import command_options
from edgesmith.core.errors import ConfigError

TARGETS = ("edgesmith", "lfm2", "gguf")


@dataclass
class ConvertOptions:
    """What ``edgesmith convert`` reads and writes (conf/convert.yaml says what each target does).

    ``src``/``dst``: directories (``to=gguf``: ``dst`` is one file); ``quant``: the GGUF type
    (``to=gguf`` only) made on ``threads`` threads (0: all cores); ``overwrite``: write into a
    non-empty ``dst`` (nothing already there is lost).
    """

    src: Optional[str] = None
    dst: Optional[str] = None
    to: str = "edgesmith"
    quant: str = "f32"
    threads: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise ConfigError("to", self.to, " or ".join(TARGETS))


def convert_command(cfg: Any, run_dir: Path) -> Path:
    """Runs one conversion from the composed ``conf/convert.yaml``; returns the written directory."""
    from .lfm2 import export_lfm2, import_lfm2

    options, _ = command_options(cfg, ConvertOptions, "convert")
    src, dst, to, overwrite = options.src, options.dst, options.to, options.overwrite
    source_kind = "an LFM2 checkpoint directory" if to == "edgesmith" else "an edgesmith model directory"
    if src in (None, ""):
        raise ConfigError("src", src, f"{source_kind} (src=DIR)")
    if dst in (None, ""):
        raise ConfigError("dst", dst, "the directory to write (dst=DIR)")
    src_path, dst_path = Path(str(src)).expanduser(), Path(str(dst)).expanduser()
    if not src_path.is_dir():
        raise ConfigError("src", str(src), f"an existing directory: {source_kind}")
    if to == "gguf":
        return _convert_to_gguf(options, src_path, dst_path)
    if src_path.resolve() == dst_path.resolve():
        raise ConfigError("dst", str(dst), "a directory other than src")
    console = Console(stderr=True)
    with console.status(f"converting {src_path} -> {dst_path} ({to})"):
        if to == "edgesmith":
            model = import_lfm2(src_path, dst_path, overwrite=overwrite)
            what = f"edgesmith model, {len(model.config.layers)} layers"
        else:
            export_lfm2(src_path, dst_path, overwrite=overwrite)
            what = "LFM2 checkpoint (loads with transformers' Lfm2ForCausalLM)"
    console.print(f"wrote {what} to {dst_path}", highlight=False)
    return dst_path


def _convert_to_gguf(options: ConvertOptions, src: Path, dst: Path) -> Path:
    from .gguf import check_gguf_type, export_gguf, gguf_architecture
    from .lfm2 import read_edge_config

    quant = check_gguf_type(options.quant, key="quant")
    arch = gguf_architecture(read_edge_config(src)).name
    console = Console(stderr=True)
    with console.status(f"converting {src} -> {dst} (gguf, {quant})"):
        export_gguf(src, dst, quant=quant, threads=options.threads, overwrite=options.overwrite)
    console.print(f"wrote GGUF ({quant}, llama.cpp architecture {arch}, {dst.stat().st_size / 2**20:.1f} MiB) "
                  f"to {dst}", highlight=False)
    return dst

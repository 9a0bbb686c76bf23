"""Where a dataset's samples are: manifests, capture directories and single samples.

Reads every layout the original Townlet tools wrote: a JSON list or `{"samples": [...]}`
mapping (JSON or YAML), entries as a path or `{sample, meta?, accepted?, ...}`, and the two
capture-directory layouts (`<prefix>_manifest.json` beside `<prefix>_metrics.json`, the
metrics either `{metadata, samples: {...}}` or a flat mapping). Unlike the original, `.jsonl`
manifests are read line by line, `accepted: false` entries are skipped *and counted*, and a
missing file is an error naming every place that was tried, never a silent skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from townlet_core.atomic import atomic_write_json
from townlet_core.errors import DataError

MANIFEST_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")
#: The manifest `townlet capture` writes into its output folder.
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class SampleEntry:
    """One sample a dataset lists: resolved paths plus whatever else its entry carried."""

    sample: Path
    meta: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.sample.name


@dataclass(frozen=True)
class DatasetSource:
    """What a manifest, capture directory or single sample resolves to."""

    path: Path
    entries: tuple[SampleEntry, ...]
    #: The dataset's label (manifest stem or directory name): keys baselines and telemetry.
    label: str
    #: Entries skipped because they were curated out (`accepted: false`).
    skipped: int = 0
    #: Per-sample metrics from a capture's metrics file, by sample file name.
    metrics_map: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: The manifest's own metadata (a capture's settings), if it had any.
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _load_document(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataError(
            f"{path}: unsupported manifest format {suffix or '(no suffix)'!r}; use "
            f"{', '.join(MANIFEST_SUFFIXES)}, a capture directory or a single .npz"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: manifest does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read manifest ({exc})") from exc
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML: {exc}") from exc


def _resolve(path_text: str, manifest_dir: Path, manifest: Path) -> Path:
    """Absolute as given; else the manifest's folder, the working directory, then as given."""
    candidate = Path(path_text).expanduser()
    if candidate.is_absolute():
        if candidate.exists():
            return candidate
        raise DataError(f"{manifest}: listed sample {candidate} does not exist")
    tried = [manifest_dir / candidate, Path.cwd() / candidate]
    for option in tried:
        if option.exists():
            return option
    raise DataError(
        f"{manifest}: listed file '{path_text}' not found (looked in {tried[0].parent} and "
        f"{tried[1].parent}); fix the path or remove the entry"
    )


def read_manifest(path: Path, problems: list[str] | None = None) -> DatasetSource:
    """Read a manifest file (JSON list or mapping, JSON lines, or YAML).

    With a `problems` list, a bad entry (unreadable shape, missing file) is recorded there
    and skipped, so a validator can report every problem at once; otherwise it raises.
    """
    document = _load_document(path)
    metadata: Mapping[str, Any] = {}
    if isinstance(document, Mapping):
        metadata = document.get("metadata") or {}
        document = document.get("samples")
        if document is None:
            raise DataError(f"{path}: a manifest mapping needs a 'samples' list")
    if not isinstance(document, list):
        raise DataError(f"{path}: a manifest must be a list of samples or have a 'samples' list")
    if not document:
        raise DataError(f"{path}: the manifest lists no samples")
    entries: list[SampleEntry] = []
    skipped = 0
    for index, item in enumerate(document):
        raw = {"sample": item} if isinstance(item, str) else item
        try:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("sample"), str):
                raise DataError(
                    f"{path}: entry {index} must be a path or a mapping with a 'sample' path"
                )
            if raw.get("accepted") is False:
                skipped += 1
                continue
            sample = _resolve(raw["sample"], path.parent, path)
            meta_text = raw.get("meta")
            meta = _resolve(meta_text, path.parent, path) if isinstance(meta_text, str) else None
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        extra = {k: v for k, v in raw.items() if k not in ("sample", "meta")}
        entries.append(SampleEntry(sample=sample, meta=meta, extra=extra))
    if not entries and problems:
        raise DataError(f"{path}: no usable entries ({len(problems)} problem(s))")
    if not entries:
        raise DataError(
            f"{path}: all {skipped} entries are marked accepted: false; nothing to train on"
        )
    return DatasetSource(
        path=path,
        entries=tuple(entries),
        label=path.stem,
        skipped=skipped,
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
    )


def _capture_metrics(path: Path) -> dict[str, Mapping[str, float]]:
    if not path.exists():
        return {}
    document = _load_document(path)
    if isinstance(document, Mapping) and isinstance(document.get("samples"), Mapping):
        document = document["samples"]
    if not isinstance(document, Mapping):
        raise DataError(f"{path}: metrics file must map sample file names to metrics")
    return {str(k): v for k, v in document.items() if isinstance(v, Mapping)}


def read_capture_dir(directory: Path, problems: list[str] | None = None) -> DatasetSource:
    """A folder written by a capture: `manifest.json`, or one `<prefix>_manifest.json`."""
    own = directory / MANIFEST_NAME
    candidates = [own] if own.exists() else sorted(directory.glob("*_manifest.json"))
    if not candidates:
        raise DataError(
            f"{directory}: no manifest.json or *_manifest.json here; is this a capture directory?"
        )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise DataError(f"{directory}: several manifests ({names}); pass the one to use")
    manifest = candidates[0]
    source = read_manifest(manifest, problems)
    prefix = manifest.name[: -len("manifest.json")]
    metrics = _capture_metrics(directory / f"{prefix}metrics.json")
    return DatasetSource(
        path=directory,
        entries=source.entries,
        label=directory.name,
        skipped=source.skipped,
        metrics_map=metrics,
        metadata=source.metadata,
    )


def open_source(path: Path | str, problems: list[str] | None = None) -> DatasetSource:
    """Resolve a manifest file, a capture directory or one `.npz` sample.

    `problems` (optional) collects bad manifest entries instead of raising on the first.
    """
    path = Path(path)
    if path.is_dir():
        return read_capture_dir(path, problems)
    if path.suffix.lower() == ".npz":
        if not path.exists():
            raise DataError(f"{path}: sample file does not exist")
        return DatasetSource(path=path, entries=(SampleEntry(sample=path),), label=path.stem)
    if not path.exists():
        raise DataError(f"{path}: no such dataset (expected a manifest, capture directory or .npz)")
    return read_manifest(path, problems)


def write_manifest(
    path: Path, samples: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write a `{metadata, samples}` manifest atomically (paths relative to its folder)."""
    document: dict[str, Any] = {"samples": list(samples)}
    if metadata:
        document = {"metadata": dict(metadata), **document}
    atomic_write_json(path, document)

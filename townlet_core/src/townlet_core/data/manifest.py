"""Where a dataset's samples are: manifests, capture directories and single samples.

Reads every layout the original Townlet tools wrote: a JSON list or `{"samples": [...]}`
mapping (JSON or YAML), entries as a path or `{sample, meta?, accepted?, ...}`, and the two
capture-directory layouts (`<prefix>_manifest.json` beside `<prefix>_metrics.json`, the
metrics either `{metadata, samples: {...}}` or a flat mapping). Unlike the original, `.jsonl`
manifests are read line by line, `accepted: false` entries are skipped *and counted*, and a
missing file is an error naming every place that was tried, never a silent skip.

Relative entries are looked for beside the manifest, then in the working directory (the
original's rule, which its own manifests rely on). Because the second rule makes one manifest
mean different data depending on where it is run, every entry found only that way is named
in one warning, each entry records the rule that found it (`SampleEntry.found_by`,
`DatasetSource.resolution()`), and `strict_paths=True` allows the manifest's folder only.
Every file read must be a regular file and documents are size-bounded (see `limits`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from townlet_core.atomic import atomic_write_json
from townlet_core.data.limits import read_bounded_text, require_regular_file
from townlet_core.errors import DataError

MANIFEST_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")
#: The manifest `townlet capture` writes into its output folder.
MANIFEST_NAME = "manifest.json"

#: How an entry's file was found (recorded per entry and in every dataset summary).
FOUND_ABSOLUTE = "absolute path"
FOUND_BESIDE_MANIFEST = "manifest folder"
FOUND_IN_CWD = "working directory"
FOUND_GIVEN = "given directly"

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    """The default warning sink: one `townlet: warning:` line on stderr (shown even when a
    run is quiet: it is about what data is trained on)."""
    print(f"townlet: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class SampleEntry:
    """One sample a dataset lists: resolved paths plus whatever else its entry carried."""

    sample: Path
    meta: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The rule that found `sample` (FOUND_BESIDE_MANIFEST, FOUND_IN_CWD, ...).
    found_by: str = FOUND_BESIDE_MANIFEST
    #: The rule that found `meta`, when the entry names one.
    meta_found_by: str | None = None

    @property
    def name(self) -> str:
        return self.sample.name

    def resolution(self) -> dict[str, str | None]:
        """Where this entry's files are and which rule found each (JSON-ready)."""
        return {
            "sample": str(self.sample),
            "found_by": self.found_by,
            "meta": None if self.meta is None else str(self.meta),
            "meta_found_by": self.meta_found_by,
        }


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
    #: Whether relative entries were looked for beside the manifest only.
    strict_paths: bool = False

    def resolution(self) -> list[dict[str, str | None]]:
        """Each entry's files and the rule that found them, in manifest order."""
        return [entry.resolution() for entry in self.entries]


def _load_document(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataError(
            f"{path}: unsupported manifest format {suffix or '(no suffix)'!r}; use "
            f"{', '.join(MANIFEST_SUFFIXES)}, a capture directory or a single .npz"
        )
    if not (path.exists() or path.is_symlink()):
        raise DataError(f"{path}: manifest does not exist")
    try:
        text = read_bounded_text(path, "manifest")
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
    except RecursionError as exc:
        raise DataError(f"{path}: the manifest is nested too deeply to read") from exc


def _resolve(path_text: str, manifest: Path, entry: str, strict: bool) -> tuple[Path, str]:
    """The file an entry names and the rule that found it: absolute as given; else beside
    the manifest, then (unless `strict`) in the working directory. It must be a regular
    file; `entry` ("MANIFEST: entry N ('TEXT')") starts the messages."""
    candidate = Path(path_text).expanduser()
    if candidate.is_absolute():
        if not (candidate.exists() or candidate.is_symlink()):
            raise DataError(f"{manifest}: listed sample {candidate} does not exist")
        require_regular_file(candidate, entry)
        return candidate, FOUND_ABSOLUTE
    options = [(manifest.parent / candidate, FOUND_BESIDE_MANIFEST)]
    if not strict:
        options.append((Path.cwd() / candidate, FOUND_IN_CWD))
    for option, rule in options:
        if option.exists() or option.is_symlink():
            require_regular_file(option, entry)
            return option, rule
    if strict:
        raise DataError(
            f"{manifest}: listed file '{path_text}' not found beside the manifest (looked in "
            f"{options[0][0].parent}; strict path resolution is on, so the working directory "
            f"{Path.cwd()} is not tried); make the path relative to the manifest's folder"
        )
    raise DataError(
        f"{manifest}: listed file '{path_text}' not found (looked in {options[0][0].parent} "
        f"and {options[1][0].parent}); fix the path or remove the entry"
    )


def _fallback_warning(manifest: Path, names: list[str]) -> str:
    return (
        f"{manifest}: {len(names)} listed file(s) found only in the working directory "
        f"{Path.cwd()}, not beside the manifest: {', '.join(names)}; run from elsewhere, the "
        "same manifest gives other data. Make the paths relative to the manifest's folder, or "
        "turn on strict paths (townlet dataset validate --strict-paths, bc.strict_paths: true) "
        "to refuse this"
    )


def _entry(manifest: Path, index: int, item: Any, strict: bool) -> SampleEntry | None:
    """Entry `index` of `manifest`, its files resolved; None when curated out
    (`accepted: false`)."""
    raw = {"sample": item} if isinstance(item, str) else item
    if not isinstance(raw, Mapping) or not isinstance(raw.get("sample"), str):
        raise DataError(
            f"{manifest}: entry {index} must be a path or a mapping with a 'sample' path"
        )
    if raw.get("accepted") is False:
        return None
    where = f"{manifest}: entry {index} ('{raw['sample']}')"
    sample, found_by = _resolve(raw["sample"], manifest, where, strict)
    meta_text = raw.get("meta")
    meta, meta_found_by = None, None
    if isinstance(meta_text, str):
        where = f"{manifest}: entry {index} ('{meta_text}')"
        meta, meta_found_by = _resolve(meta_text, manifest, where, strict)
    return SampleEntry(
        sample=sample,
        meta=meta,
        extra={k: v for k, v in raw.items() if k not in ("sample", "meta")},
        found_by=found_by,
        meta_found_by=meta_found_by,
    )


def _found_in_cwd(entry: SampleEntry) -> list[str]:
    """The entry's files that only the working-directory rule found, as listed."""
    found = [(entry.sample, entry.found_by), (entry.meta, entry.meta_found_by)]
    cwd = Path.cwd()
    return [
        str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
        for path, rule in found
        if path is not None and rule == FOUND_IN_CWD
    ]


def read_manifest(
    path: Path,
    problems: list[str] | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
) -> DatasetSource:
    """Read a manifest file (JSON list or mapping, JSON lines, or YAML).

    With a `problems` list, a bad entry (unreadable shape, missing file) is recorded there
    and skipped, so a validator can report every problem at once; otherwise it raises.
    `strict_paths` looks for relative entries beside the manifest only; otherwise entries
    found only in the working directory are named in one message to `warn` (default: a
    warning line on stderr).
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
    fallbacks: list[str] = []
    for index, item in enumerate(document):
        try:
            entry = _entry(path, index, item, strict_paths)
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        if entry is None:
            skipped += 1
            continue
        fallbacks.extend(_found_in_cwd(entry))
        entries.append(entry)
    if fallbacks:
        (warn or warn_on_stderr)(_fallback_warning(path, fallbacks))
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
        strict_paths=strict_paths,
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


def read_capture_dir(
    directory: Path,
    problems: list[str] | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
) -> DatasetSource:
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
    source = read_manifest(manifest, problems, strict_paths=strict_paths, warn=warn)
    prefix = manifest.name[: -len("manifest.json")]
    metrics = _capture_metrics(directory / f"{prefix}metrics.json")
    return DatasetSource(
        path=directory,
        entries=source.entries,
        label=directory.name,
        skipped=source.skipped,
        metrics_map=metrics,
        metadata=source.metadata,
        strict_paths=strict_paths,
    )


def open_source(
    path: Path | str,
    problems: list[str] | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
) -> DatasetSource:
    """Resolve a manifest file, a capture directory or one `.npz` sample.

    `problems` (optional) collects bad manifest entries instead of raising on the first;
    `strict_paths` and `warn` are `read_manifest`'s.
    """
    path = Path(path)
    if path.is_dir():
        return read_capture_dir(path, problems, strict_paths=strict_paths, warn=warn)
    if path.suffix.lower() == ".npz":
        if not (path.exists() or path.is_symlink()):
            raise DataError(f"{path}: sample file does not exist")
        require_regular_file(path)
        return DatasetSource(
            path=path,
            entries=(SampleEntry(sample=path, found_by=FOUND_GIVEN),),
            label=path.stem,
            strict_paths=strict_paths,
        )
    if not (path.exists() or path.is_symlink()):
        raise DataError(f"{path}: no such dataset (expected a manifest, capture directory or .npz)")
    return read_manifest(path, problems, strict_paths=strict_paths, warn=warn)


def write_manifest(
    path: Path, samples: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write a `{metadata, samples}` manifest atomically (paths relative to its folder)."""
    document: dict[str, Any] = {"samples": list(samples)}
    if metadata:
        document = {"metadata": dict(metadata), **document}
    atomic_write_json(path, document)

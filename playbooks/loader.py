"""Load playbook YAML files: one playbook per file, strictly validated, errors with lines.

``load_playbooks`` walks files and directories and, in collect mode (the default), gathers
every bad playbook's :class:`PlaybookError` while still loading the good ones, the way
pySigma's collect-errors mode reports every bad rule rather than the first.
Only ``yaml.safe_load`` / ``SafeLoader`` are used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from agents.errors import PlaybookError
from playbooks.model import Playbook
from playbooks.parse import SpecError, YamlPath, parse_playbook_data

MAX_PLAYBOOK_BYTES: Final = 1_000_000
PLAYBOOK_SUFFIXES: Final = (".yaml", ".yml")
_REMEDY: Final = "fix the playbook YAML (format: docs/playbooks.md)"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """The playbooks that loaded and one error per playbook that did not."""

    playbooks: tuple[Playbook, ...]
    errors: tuple[PlaybookError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def builtin_content_dir() -> Path:
    """The directory of the playbooks shipped with sekimori."""
    return Path(__file__).with_name("content")


def load_builtin_playbooks(*, collect_errors: bool = True) -> LoadResult:
    return load_playbooks(builtin_content_dir(), collect_errors=collect_errors)


def parse_playbook(text: str, *, source: str = "<string>") -> Playbook:
    """Parse one playbook from YAML text. Raises PlaybookError naming source, line and step."""
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        data = yaml.safe_load(text)
        lines, duplicate = _line_index(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlaybookError(
            f"not valid YAML: {problem}", source=source, line=line, remedy=_REMEDY
        ) from None
    if duplicate is not None:
        path, line = duplicate
        raise PlaybookError(
            f"duplicate key {path[-1]!r} at {_dotted(path)}",
            source=source,
            line=line,
            remedy=_REMEDY,
        )
    try:
        return parse_playbook_data(data, source=source, sha256=sha256)
    except SpecError as problem:
        where = f" ({_dotted(problem.path)})" if problem.path else ""
        step = (
            f"step {problem.step!r}{where}: "
            if problem.step
            else (f"{_dotted(problem.path)}: " if problem.path else "")
        )
        raise PlaybookError(
            f"{step}{problem.message}",
            source=source,
            line=_line_for(lines, problem.path),
            remedy=_REMEDY,
        ) from None


def load_playbook(path: Path | str) -> Playbook:
    """Load one playbook file. Raises PlaybookError."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_PLAYBOOK_BYTES:
            raise PlaybookError(
                f"file is {size} bytes; a playbook may be at most {MAX_PLAYBOOK_BYTES}",
                source=str(file),
            )
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(
            f"cannot read playbook: {exc.strerror or exc}", source=str(file)
        ) from None
    except UnicodeDecodeError as exc:
        raise PlaybookError(f"playbook is not UTF-8 text: {exc.reason}", source=str(file)) from None
    return parse_playbook(text, source=str(file))


def load_playbooks(*paths: Path | str, collect_errors: bool = True) -> LoadResult:
    """Load playbook files and every ``*.yaml``/``*.yml`` in directories, sorted by name.

    Besides per-file validation: playbook ids must be unique and at most one playbook may be
    the default. With ``collect_errors=False`` the first error is raised instead.
    """
    loaded: list[Playbook] = []
    errors: list[PlaybookError] = []
    seen: dict[str, str] = {}
    default_source: str | None = None
    for file in _files(paths, errors):
        try:
            playbook = load_playbook(file)
            _check_unique(playbook, seen, default_source)
        except PlaybookError as exc:
            if not collect_errors:
                raise
            errors.append(exc)
            continue
        seen[playbook.id] = str(file)
        if playbook.applies_to.default:
            default_source = str(file)
        loaded.append(playbook)
    if errors and not collect_errors:
        raise errors[0]
    return LoadResult(playbooks=tuple(loaded), errors=tuple(errors))


def _check_unique(playbook: Playbook, seen: dict[str, str], default_source: str | None) -> None:
    if playbook.id in seen:
        raise PlaybookError(
            f"duplicate playbook id {playbook.id!r} (also in {seen[playbook.id]})",
            source=playbook.source,
            remedy="give every playbook its own id",
        )
    if playbook.applies_to.default and default_source is not None:
        raise PlaybookError(
            f"a second default playbook (the default is already {default_source})",
            source=playbook.source,
            remedy="keep applies_to.default: true on one playbook only",
        )


def _files(paths: Iterable[Path | str], errors: list[PlaybookError]) -> list[Path]:
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files.extend(sorted(p for p in entry.iterdir() if p.suffix in PLAYBOOK_SUFFIXES))
        elif entry.is_file():
            files.append(entry)
        else:
            errors.append(PlaybookError("no such playbook file or directory", source=str(entry)))
    return files


# -- line numbers ---------------------------------------------------------------------------
def _line_index(text: str) -> tuple[dict[YamlPath, int], tuple[YamlPath, int] | None]:
    """Map each YAML path to its 1-based line; also the first duplicate mapping key, if any."""
    lines: dict[YamlPath, int] = {}
    duplicate: list[tuple[YamlPath, int]] = []
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: YamlPath, active: frozenset[int]) -> None:
        if id(node) in active:  # a recursive alias
            return
        inner = active | {id(node)}
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = (*path, key)
                if key in keys and not duplicate:
                    duplicate.append((sub, key_node.start_mark.line + 1))
                keys.add(key)
                lines.setdefault(sub, key_node.start_mark.line + 1)
                walk(value_node, sub, inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, index), item.start_mark.line + 1)
                walk(item, (*path, index), inner)

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, (), frozenset())
    return lines, (duplicate[0] if duplicate else None)


def _line_for(lines: dict[YamlPath, int], path: YamlPath) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def _dotted(path: YamlPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text

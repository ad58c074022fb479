"""The model store: a folder of verified model files, filled from a mirror folder or by download.

Nothing here runs at import time. A file only lands in the store after its sha256 matched the manifest, so a
half-written download or a swapped file is never loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from argus.errors import ModelUnavailable
from argus.models.manifest import MANIFEST, ModelSpec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ModelState(Enum):
    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class PullResult:
    spec: ModelSpec
    source: str  # "already present", "mirror", or the URL


class ModelStore:
    def __init__(self, root: Path, mirror: Path | None = None, timeout_s: float = 60.0) -> None:
        self.root = root
        self.mirror = mirror
        self.timeout_s = timeout_s

    def path(self, spec: ModelSpec) -> Path:
        return self.root / spec.file

    def state(self, spec: ModelSpec) -> ModelState:
        path = self.path(spec)
        if not path.is_file():
            return ModelState.MISSING
        return ModelState.PRESENT if sha256_of(path) == spec.sha256 else ModelState.CORRUPT

    def require(self, spec: ModelSpec) -> Path:
        """The verified file of a model, or ModelUnavailable saying how to get it."""
        state = self.state(spec)
        if state is ModelState.PRESENT:
            return self.path(spec)
        problem = "is missing" if state is ModelState.MISSING else "fails its sha256 check"
        fallback = f"downloads {spec.url}" if spec.url else "fails: this derived model has no download URL"
        raise ModelUnavailable(
            f"model {spec.ref} {problem} at {self.path(spec)}; run `argus models pull {spec.name}` "
            f"(it copies from ARGUS_MODELS_MIRROR when set, otherwise {fallback})"
        )

    def pull(self, spec: ModelSpec) -> PullResult:
        if self.state(spec) is ModelState.PRESENT:
            return PullResult(spec, "already present")
        mirrored = self.mirror / spec.file if self.mirror else None
        if mirrored is not None and mirrored.is_file():
            self._install(spec, lambda dst: shutil.copyfile(mirrored, dst), f"mirror {mirrored}")
            return PullResult(spec, "mirror")
        if not spec.url:
            raise ModelUnavailable(
                f"model {spec.ref} has no download URL: it is a derived file; set ARGUS_MODELS_MIRROR to a folder "
                f"that holds it (as {spec.file})"
            )
        self._install(spec, lambda dst: self._download(spec.url, dst), spec.url)
        return PullResult(spec, spec.url)

    def pull_all(self, specs: Iterable[ModelSpec] = MANIFEST.values()) -> list[PullResult]:
        return [self.pull(spec) for spec in specs]

    def _install(self, spec: ModelSpec, fetch: Callable[[Path], object], source: str) -> None:
        target = self.path(spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetch(tmp)
            actual = sha256_of(tmp)
            if actual != spec.sha256:
                raise ModelUnavailable(
                    f"refusing {spec.ref} from {source}: sha256 is {actual}, the manifest expects {spec.sha256}"
                )
            os.replace(tmp, target)
            log.info("model %s installed from %s", spec.ref, source)
        finally:
            tmp.unlink(missing_ok=True)

    def _download(self, url: str, dst: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response, dst.open("wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
        except OSError as exc:
            raise ModelUnavailable(
                f"could not download {url}: {exc}; on an offline machine set ARGUS_MODELS_MIRROR to a folder "
                "holding the model files"
            ) from exc


def resolve_specs(names: Iterable[str]) -> list[ModelSpec]:
    names = list(names)
    unknown = [name for name in names if name not in MANIFEST]
    if unknown:
        raise KeyError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MANIFEST)}")
    return [MANIFEST[name] for name in names] if names else list(MANIFEST.values())

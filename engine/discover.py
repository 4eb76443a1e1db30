"""Walk a workspace safely: ignore files (pathspec), size/binary/encoding checks, symlink containment.

Ignore rules, highest priority first (the first layer with a matching pattern decides, deeper files before
shallower ones within a layer, last matching line within a file, as git does):
  1. always excluded: `.git`, `.hg`, `.svn`, `.sg` directories and the configured index_dir;
  2. `.sgignore` files, at any level (gitignore syntax; sg-specific, so they override git's rules);
  3. `.gitignore` files, at any level, then `<root>/.git/info/exclude`;
  4. settings.DEFAULT_EXCLUDES followed by settings.excludes (so `!dist/` in .gitignore or .sgignore
     re-includes a default exclude, and a `!pattern` in settings.excludes can re-include a default).
As in git, nothing inside an ignored directory can be re-included.

Ignored paths are silently not yielded. Refused paths are yielded as `records.Skip`. A file that disappears
during the walk is silently dropped (it no longer exists, so the store should forget it).

Symlinks: a link whose target resolves outside the root is refused (`symlink-outside`); a link to a file
inside the root is accepted under the link's own path. A link to a directory inside the root is followed only
when the directory would not be walked anyway (its real path is ignored, e.g. it lives under an excluded
folder) and was not walked before; otherwise it is refused as `symlink-loop` (a cycle, or a second visit of
the same directory), so every directory is walked at most once. A dangling link is `unreadable`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pathspec

from .chunk import language_for, pdf_pages
from .errors import BadQuery
from .records import FileEntry, Skip
from .settings import DEFAULT_EXCLUDES, IndexSettings

NUL = b"\x00"
HEAD_BYTES = 8192  # NUL bytes in this many leading bytes mark a file as binary
IGNORE_FILE_LIMIT = 1 << 20  # larger .gitignore/.sgignore files are not read
ALWAYS_EXCLUDED = frozenset({".git", ".hg", ".svn", ".sg"})

BINARY_EXTENSIONS = frozenset("""
png jpg jpeg gif bmp ico icns webp tif tiff psd heic heif avif xcf raw cr2 nef
mp3 mp4 m4a m4v wav ogg oga ogv flac aac wma wmv avi mov mkv webm mpg mpeg 3gp mid midi
zip gz tgz bz2 tbz2 xz txz zst lz lz4 lzma 7z rar tar jar war ear aar whl egg apk ipa deb rpm dmg iso img cab msi
so dll dylib exe o obj a lib bin elf class pyc pyo pyd wasm node ko sys dex beam
ttf otf woff woff2 eot
db sqlite sqlite3 mdb accdb npy npz pkl pickle pt pth safetensors onnx h5 hdf5 parquet arrow feather tfrecord ckpt
gguf ggml pb tflite mlmodel joblib msgpack avro orc
doc docx xls xlsx ppt pptx odt ods odp key numbers pages epub mobi
swf fla blend fbx glb 3ds max dwg
""".split())

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


# --------------------------------------------------------------------------------------------------------------
# Ignore rules


class _Rules:
    """One ignore file's patterns (pathspec GitIgnoreSpec), with a single combined regex as a fast "no match"."""

    def __init__(self, spec: pathspec.GitIgnoreSpec):
        self.spec = spec
        parts = [rx.pattern.replace("(?P<ps_d>", "(?:") for p in spec.patterns
                 if (rx := getattr(p, "regex", None)) is not None and p.include is not None]
        try:
            self.any = re.compile("|".join(f"(?:{x})" for x in parts)) if parts else None
        except re.error:
            self.any = None
        self.empty = not parts

    def check(self, path: str) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no pattern matches."""
        if self.empty or (self.any is not None and self.any.match(path) is None):
            return None
        res = self.spec.check_file(path)
        return None if res.include is None else bool(res.include)


def _spec(lines: list[str]) -> _Rules | None:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return None
    try:
        return _Rules(pathspec.GitIgnoreSpec.from_lines(lines))
    except Exception:  # one bad pattern must not disable the whole file
        good = []
        for ln in lines:
            try:
                pathspec.GitIgnoreSpec.from_lines([ln])
                good.append(ln)
            except Exception:
                continue
        return _Rules(pathspec.GitIgnoreSpec.from_lines(good)) if good else None


def _read_spec(path: str) -> _Rules | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(IGNORE_FILE_LIMIT + 1)
    except OSError:
        return None
    if len(data) > IGNORE_FILE_LIMIT:
        return None
    return _spec(data.decode("utf-8", "replace").splitlines())


class _Ignorer:
    """Answers "is this path ignored?" for workspace-relative POSIX paths, loading ignore files lazily."""

    def __init__(self, root: str, settings: IndexSettings):
        self.root = root
        self.base = _spec(list(DEFAULT_EXCLUDES) + list(settings.excludes))
        info = _read_spec(os.path.join(root, ".git", "info", "exclude"))
        self.git_info = info
        # dir rel path ("" for root) -> ((base, spec) for .sgignore files, same for .gitignore), deepest first
        self._layers: dict[str, tuple[tuple[tuple[str, _Rules], ...],
                                      tuple[tuple[str, _Rules], ...]]] = {}
        self.extra_dirs: set[str] = set()
        if settings.index_dir:
            idx = os.path.abspath(os.path.join(root, settings.index_dir))
            rel = os.path.relpath(idx, root)
            if not rel.startswith(".."):
                self.extra_dirs.add(rel.replace(os.sep, "/"))

    def layers(self, dir_rel: str) -> tuple[tuple, tuple]:
        got = self._layers.get(dir_rel)
        if got is not None:
            return got
        if dir_rel:
            parent = self.layers(posixpath.dirname(dir_rel))
        else:
            parent = ((), ())
        absdir = os.path.join(self.root, *dir_rel.split("/")) if dir_rel else self.root
        sg = _read_spec(os.path.join(absdir, ".sgignore"))
        git = _read_spec(os.path.join(absdir, ".gitignore"))
        got = (((dir_rel, sg),) + parent[0] if sg else parent[0],
               ((dir_rel, git),) + parent[1] if git else parent[1])
        self._layers[dir_rel] = got
        return got

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """`rel` is relative to the root, POSIX, no trailing slash. Never raises (a failure means "not ignored")."""
        try:
            return self._ignored(rel, is_dir)
        except Exception:  # an ignore-file edge case must not stop the walk
            return False

    def _ignored(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if is_dir and (name in ALWAYS_EXCLUDED or rel in self.extra_dirs):
            return True
        key = rel + "/" if is_dir else rel
        sg, git = self.layers(posixpath.dirname(rel))
        for layer in (sg, git):
            for base, spec in layer:
                sub = key[len(base) + 1:] if base else key
                res = spec.check(sub)
                if res is not None:
                    return res
        for spec in (self.git_info, self.base):
            if spec is not None:
                res = spec.check(key)
                if res is not None:
                    return res
        return False

    def walked(self, rel: str) -> bool:
        """Whether the real directory `rel` (no symlinks in it) is reached by the walk: no component ignored."""
        if rel in ("", "."):
            return True
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if self.ignored("/".join(parts[:i]), True):
                return False
        return True


# --------------------------------------------------------------------------------------------------------------
# Helpers


def _within(path: str, root_real: str) -> bool:
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def _printable(rel: str) -> str:
    """A file name that is not valid UTF-8 (surrogate escapes), made safe to store and show."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_binary_ext(rel: str) -> bool:
    dot = rel.rfind(".")
    return dot > rel.rfind("/") + 1 and rel[dot + 1:].lower() in BINARY_EXTENSIONS


def _bom(head: bytes) -> str | None:
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc
    return None


def _classify(rel: str, abs_path: str, st: os.stat_result, settings: IndexSettings) -> FileEntry | Skip | None:
    """A regular file (already known not ignored) -> FileEntry, or Skip, or None if it vanished."""
    if _is_binary_ext(rel):
        return Skip(rel, "binary", f"binary file type ({rel.rsplit('.', 1)[-1].lower()})")
    if st.st_size > settings.max_file_bytes:
        return Skip(rel, "too-large", f"{st.st_size} bytes > max_file_bytes {settings.max_file_bytes}")
    if language_for(rel) != "pdf":
        try:
            fd = os.open(abs_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                head = os.read(fd, HEAD_BYTES)
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            return Skip(rel, "unreadable", f"permission denied: {exc.strerror or exc}")
        except OSError as exc:
            return Skip(rel, "unreadable", f"cannot open: {exc.strerror or exc}")
        if NUL in head and _bom(head) not in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            return Skip(rel, "binary", f"NUL byte at offset {head.index(NUL)}")
    return FileEntry(rel, abs_path, st.st_size, st.st_mtime_ns)


def _symlink_target(abs_path: str, rel: str, root_real: str) -> tuple[str, os.stat_result] | Skip:
    """Resolve a symlink: (real path, stat of target) or the Skip that refuses it."""
    try:
        st = os.stat(abs_path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Skip(rel, "symlink-loop", "symlink cycle (too many levels of links)")
        real = os.path.realpath(abs_path)
        if not _within(real, root_real):
            return Skip(rel, "symlink-outside", f"points outside the workspace: {real}")
        if exc.errno == errno.ENOENT:
            try:
                target = os.readlink(abs_path)
            except OSError:
                target = real
            return Skip(rel, "unreadable", f"dangling symlink to {target}")
        return Skip(rel, "unreadable", f"cannot follow symlink: {exc.strerror or exc}")
    real = os.path.realpath(abs_path)
    if not _within(real, root_real):
        return Skip(rel, "symlink-outside", f"points outside the workspace: {real}")
    return real, st


def _rel_real(real: str, root_real: str) -> str:
    rel = os.path.relpath(real, root_real)
    return "" if rel == "." else rel.replace(os.sep, "/")


# --------------------------------------------------------------------------------------------------------------
# Public API


def walk(root: Path, settings: IndexSettings) -> Iterator[FileEntry | Skip]:
    """Accepted files and refused paths under `root`, in sorted order of their relative path.

    Raises BadQuery if `root` is not a directory; nothing found inside it raises.
    """
    root_abs = os.path.abspath(os.fspath(root))
    root_real = os.path.realpath(root_abs)
    if not os.path.isdir(root_real):
        raise BadQuery(f"workspace {root_abs} is not a directory")
    ign = _Ignorer(root_abs, settings)
    visited = {root_real}
    # Each frame: (rel dir, abs dir, real dir, sorted entries, next index)
    stack: list[list] = []
    listing = _list_dir(root_abs, "", root_real)
    if isinstance(listing, Skip):
        yield listing
        return
    stack.append(["", root_abs, root_real, listing, 0])
    while stack:
        frame = stack[-1]
        dir_rel, dir_abs, dir_real, entries, i = frame
        if i >= len(entries):
            stack.pop()
            continue
        frame[4] = i + 1
        name, is_dir, is_link, st_or_skip = entries[i]
        rel = f"{dir_rel}/{name}" if dir_rel else name
        abs_path = os.path.join(dir_abs, name)
        if ign.ignored(rel, is_dir):
            continue
        shown = _printable(rel)
        if isinstance(st_or_skip, Skip):
            yield Skip(shown, st_or_skip.reason, st_or_skip.detail)
            continue
        if shown != rel:
            yield Skip(shown, "undecodable", "file name is not valid UTF-8")
            continue
        if is_link:
            real, st = st_or_skip
        else:
            real, st = os.path.join(dir_real, name), st_or_skip
        if is_dir:
            if real in visited:
                ancestors = {f[2] for f in stack}
                why = "symlink cycle: points to its own ancestor" if real in ancestors else \
                    "directory already walked through another path"
                yield Skip(rel, "symlink-loop", f"{why} ({_rel_real(real, root_real) or '.'})")
                continue
            if is_link and ign.walked(_rel_real(real, root_real)):
                yield Skip(rel, "symlink-loop",
                           f"same directory as {_rel_real(real, root_real) or '.'}, which is indexed there")
                continue
            visited.add(real)
            sub = _list_dir(abs_path, rel, root_real)
            if isinstance(sub, Skip):
                yield sub
                continue
            stack.append([rel, abs_path, real, sub, 0])
            continue
        if not stat.S_ISREG(st.st_mode):
            yield Skip(rel, "unreadable", "not a regular file (fifo, socket or device)")
            continue
        result = _classify(rel, abs_path, st, settings)
        if result is not None:
            yield result


def _list_dir(abs_dir: str, rel_dir: str, root_real: str) -> list | Skip:
    """Sorted (name, is_dir, is_link, stat | (real, stat) | Skip) for a directory; files that vanish are left out.

    Sorting directories as "name/" makes the depth-first walk come out in plain sorted order of full paths.
    """
    try:
        with os.scandir(abs_dir) as it:
            raw = list(it)
    except FileNotFoundError:
        return []
    except PermissionError as exc:
        return Skip(rel_dir or ".", "unreadable", f"cannot list directory: {exc.strerror or exc}")
    except OSError as exc:
        return Skip(rel_dir or ".", "unreadable", f"cannot list directory: {exc.strerror or exc}")
    out: list[tuple[str, bool, bool, object]] = []
    for e in raw:
        name = e.name
        rel = f"{rel_dir}/{name}" if rel_dir else name
        try:
            if e.is_symlink():
                target = _symlink_target(e.path, rel, root_real)
                if isinstance(target, Skip):
                    out.append((name, False, True, target))
                    continue
                is_dir = stat.S_ISDIR(target[1].st_mode)
                out.append((name, is_dir, True, target))
            elif e.is_dir(follow_symlinks=False):
                out.append((name, True, False, None))
            elif e.is_file(follow_symlinks=False):
                out.append((name, False, False, e.stat(follow_symlinks=False)))
            else:
                out.append((name, False, False, e.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.append((name, False, False, Skip(rel, "unreadable", f"cannot stat: {exc.strerror or exc}")))
    out.sort(key=lambda t: t[0] + "/" if t[1] else t[0])
    return out


def _normalize_rel(root_abs: str, rel_path: str) -> str:
    p = rel_path.replace("\\", "/") if os.sep == "\\" else rel_path
    if os.path.isabs(p):
        rel = os.path.relpath(os.path.abspath(p), root_abs).replace(os.sep, "/")
    else:
        rel = posixpath.normpath(p)
    if rel in ("", ".") or rel == ".." or rel.startswith("../") or rel.startswith("/"):
        raise BadQuery(f"path {rel_path!r} is outside the workspace")
    return rel


def check_file(root: Path, rel_path: str, settings: IndexSettings) -> FileEntry | Skip | None:
    """The walk's verdict for one path (didSave / file-watch events).

    `rel_path` is workspace-relative (POSIX or OS separators) or absolute inside the root. Returns None when the
    path is ignored, is not a file, or no longer exists. Raises BadQuery when the path lexically leaves the root
    ('..', or an absolute path elsewhere); a path that leaves the root only through a symlink gives
    Skip("symlink-outside"). A path reached through a symlinked directory that the walk would not follow gives
    Skip("symlink-loop"). Unlike the walk, it does not know which of several links to the same ignored directory
    the walk would take, so it accepts a file under any of them.
    """
    root_abs = os.path.abspath(os.fspath(root))
    root_real = os.path.realpath(root_abs)
    rel = _normalize_rel(root_abs, rel_path)
    ign = _Ignorer(root_abs, settings)
    parts = rel.split("/")
    for k in range(1, len(parts)):
        if ign.ignored("/".join(parts[:k]), True):
            return None
    abs_path = os.path.join(root_abs, *parts)
    try:
        lst = os.lstat(abs_path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            return None
        return Skip(rel, "unreadable", f"cannot stat: {exc.strerror or exc}")
    is_link = stat.S_ISLNK(lst.st_mode)
    if is_link:
        target = _symlink_target(abs_path, rel, root_real)
        if isinstance(target, Skip):
            return None if ign.ignored(rel, False) else target
        real, st = target
    else:
        real, st = os.path.realpath(abs_path), lst
    if stat.S_ISDIR(st.st_mode):
        return None
    if ign.ignored(rel, False):
        return None
    if not _within(real, root_real):
        return Skip(rel, "symlink-outside", f"resolves outside the workspace: {real}")
    # Symlinked directories on the way: the walk refuses those whose real directory it walks anyway.
    if os.path.realpath(os.path.join(root_abs, *parts[:-1])) != os.path.join(root_real, *parts[:-1]):
        for k in range(1, len(parts)):
            d = os.path.join(root_abs, *parts[:k])
            if not os.path.islink(d):
                continue
            d_real = os.path.realpath(d)
            if not _within(d_real, root_real):
                return Skip(rel, "symlink-outside", f"{'/'.join(parts[:k])} points outside the workspace")
            d_rel = _rel_real(d_real, root_real)
            parent_real = os.path.realpath(os.path.join(root_abs, *parts[:k - 1]))
            if ign.walked(d_rel) or _within(parent_real, d_real):
                return Skip(rel, "symlink-loop",
                            f"inside symlinked directory {'/'.join(parts[:k])}, indexed as {d_rel or '.'}")
    if not stat.S_ISREG(st.st_mode):
        return Skip(rel, "unreadable", "not a regular file (fifo, socket or device)")
    return _classify(rel, abs_path, st, settings)


def _entry_root(entry: FileEntry) -> str:
    """The workspace root an entry was listed under (abs_path minus the relative path)."""
    parts = entry.path.split("/")
    p = entry.abs_path
    for _ in parts:
        p = os.path.dirname(p)
    return p


def _opened_real_path(fd: int, fallback: str) -> str:
    """The real path of an open file as the kernel resolved it (Linux /proc), else os.path.realpath."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith("/"):
            return path
    except OSError:
        pass
    return os.path.realpath(fallback)


def _real_root(root: str) -> str:
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return os.path.realpath(root)
    try:
        return _opened_real_path(fd, root)
    finally:
        os.close(fd)


def read_bytes(entry: FileEntry, settings: IndexSettings) -> bytes | Skip:
    """The file's bytes, re-checking what may have changed since the walk (existence, size, symlink target).

    The file is opened first and the containment check is made on what was actually opened, so a symlink
    swapped in between the check and the read cannot leak a file from outside the workspace.
    """
    rel = entry.path
    try:
        fd = os.open(entry.abs_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # NONBLOCK: a FIFO never hangs
    except FileNotFoundError:
        return Skip(rel, "vanished", "file no longer exists")
    except PermissionError as exc:
        return Skip(rel, "unreadable", f"permission denied: {exc.strerror or exc}")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Skip(rel, "symlink-loop", "symlink cycle")
        if exc.errno in (errno.ENOTDIR, errno.EISDIR):
            return Skip(rel, "vanished", "no longer a regular file")
        return Skip(rel, "unreadable", f"cannot open: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Skip(rel, "vanished", "no longer a regular file")
        if st.st_size > settings.max_file_bytes:
            return Skip(rel, "too-large", f"{st.st_size} bytes > max_file_bytes {settings.max_file_bytes}")
        real = _opened_real_path(fd, entry.abs_path)
        if not _within(real, _real_root(_entry_root(entry))):
            return Skip(rel, "symlink-outside", f"now resolves outside the workspace: {real}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(settings.max_file_bytes + 1)
    except OSError as exc:
        return Skip(rel, "unreadable", f"read failed: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > settings.max_file_bytes:
        return Skip(rel, "too-large", f"grew past max_file_bytes {settings.max_file_bytes} while reading")
    return data


def decode_text(rel: str, data: bytes) -> str | Skip:
    """UTF-8 (BOM stripped) or BOM-marked UTF-16/32 text; NUL bytes -> binary; anything else -> undecodable.

    Line endings are kept as they are, so line numbers match the editor's.
    """
    enc = _bom(data)
    if enc is not None and enc != "utf-8":
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            return Skip(rel, "undecodable", f"invalid {enc.upper()} at byte {exc.start}")
        text = text[1:] if text.startswith("\ufeff") else text
        if "\x00" in text:
            return Skip(rel, "binary", f"NUL character in {enc.upper()} text")
        return text
    if enc == "utf-8":
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        return Skip(rel, "binary", f"NUL byte at offset {nul + (3 if enc else 0)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Skip(rel, "undecodable", f"invalid UTF-8 at byte {exc.start + (3 if enc else 0)}")


def read_text(entry: FileEntry, settings: IndexSettings) -> str | Skip:
    """The file's text for chunking. For a PDF: the text of its pages joined by form feeds ("\\f"), which
    chunk.chunk_file splits back into pages; an unreadable PDF -> Skip("undecodable")."""
    data = read_bytes(entry, settings)
    if isinstance(data, Skip):
        return data
    if language_for(entry.path) == "pdf":
        pages = pdf_pages(data)
        if pages is None:
            return Skip(entry.path, "undecodable", "not a readable PDF")
        return "\f".join(p.replace("\f", " ") for p in pages)
    return decode_text(entry.path, data)


def buffer_text(entry: FileEntry, text: str, settings: IndexSettings) -> str | Skip:
    """An editor's unsaved text of a file the walk accepted, held to the limits its bytes on disk would meet."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > settings.max_file_bytes:
        return Skip(entry.path, "too-large", f"unsaved text of {len(data)} bytes > max_file_bytes "
                                             f"{settings.max_file_bytes}")
    return decode_text(entry.path, data)


def content_hash(text: str) -> str:
    """blake2b-128 hex of the UTF-8 text (lone surrogates passed through, never raises)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

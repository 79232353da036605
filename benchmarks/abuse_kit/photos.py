"""Bad photos: broken, odd and hostile files in a clean COCO folder's image folder, and swapped photo bytes.

Held: the ingest ends with exit 0 and an ``ok`` run; a broken file is ``corrupt`` with a reason and a reject, an
odd but valid one is ``ok`` with its displayed width and height (EXIF orientation applied); the 4 good photos are
``ok``; nothing hangs or exhausts memory. The embed stage then encodes every ``ok`` photo without failing.
Photo bytes: bytes replaced under the same name, size and mtime are noticed by a re-ingest, are never embedded
under the old sha256, and are not visible under the old decision.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx
from abuse_kit.judge import Broke

DS = "coco-x"
FOLDER = "images/val2017"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int) -> bytes:
    """A grayscale PNG of side x side zero pixels, compressed to a few hundred KB (decompression bomb)."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def zero_width_png() -> bytes:
    header = struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"")) + \
        _png_chunk(b"IEND", b"")


def exif_jpeg(orientation: int, size: tuple[int, int] = (40, 20)) -> bytes:
    img = Image.new("RGB", size, (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return build.encoded(img, "JPEG", exif=exif.tobytes())


def corrupt_exif_jpeg() -> bytes:
    data = build.jpeg((40, 20))
    garbage = b"Exif\0\0" + b"MM\0\x2a\0\0\0\x08\xff\xff" + bytes(range(256)) * 2
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage + data[2:]


def gif_animated() -> bytes:
    frames = [Image.new("P", (30, 20), i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def odd(mode: str, fmt: str, size=(30, 20), **save) -> bytes:
    return build.encoded(Image.new(mode, size), fmt, **save)


# (name, file name, bytes, expected: "corrupt" | (width, height) | "either")
def _cases() -> list[tuple[str, str, bytes | None, object, bool]]:
    jpg = build.jpeg((32, 24))
    progressive = build.jpeg((64, 48), progressive=True)
    return [
        ("zero-byte", "000000000050.jpg", b"", "corrupt", True),
        ("truncated JPEG", "000000000051.jpg", jpg[: len(jpg) // 2], "corrupt", True),
        ("truncated progressive JPEG", "000000000052.jpg", progressive[: len(progressive) * 2 // 3], "corrupt", False),
        ("text renamed .jpg", "000000000053.jpg", b"this is not an image\n", "corrupt", True),
        ("SVG renamed .jpg", "000000000054.jpg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "corrupt", False),
        ("PNG in a .jpg", "000000000055.jpg", odd("RGB", "PNG", (33, 25)), (33, 25), True),
        ("decompression bomb 20000x20000", "000000000056.png", None, "corrupt", True),
        ("zero-width PNG", "000000000057.png", zero_width_png(), "corrupt", False),
        ("1x1", "000000000058.jpg", build.jpeg((1, 1)), (1, 1), False),
        ("CMYK JPEG", "000000000059.jpg", odd("CMYK", "JPEG"), (30, 20), True),
        ("16-bit PNG", "000000000060.png", odd("I;16", "PNG"), (30, 20), False),
        ("animated GIF", "000000000061.gif", gif_animated(), (30, 20), False),
        ("EXIF orientation 6 (rotated)", "000000000062.jpg", exif_jpeg(6), (20, 40), True),
        ("EXIF orientation 8 (rotated)", "000000000063.jpg", exif_jpeg(8), (20, 40), False),
        ("EXIF orientation 5 (transposed)", "000000000064.jpg", exif_jpeg(5), (20, 40), False),
        ("EXIF orientation 3 (upside down)", "000000000065.jpg", exif_jpeg(3), (40, 20), False),
        ("EXIF orientation 9 (invalid)", "000000000066.jpg", exif_jpeg(9), (40, 20), False),
        ("corrupt EXIF block", "000000000067.jpg", corrupt_exif_jpeg(), "either", True),
        ("grayscale", "000000000068.jpg", odd("L", "JPEG"), (30, 20), False),
        ("RGBA PNG", "000000000069.png", odd("RGBA", "PNG"), (30, 20), False),
        ("palette PNG with transparency", "000000000070.png", odd("P", "PNG", transparency=0), (30, 20), False),
        ("LA PNG", "000000000071.png", odd("LA", "PNG"), (30, 20), False),
        ("WebP", "000000000072.webp", odd("RGB", "WEBP"), (30, 20), False),
        ("BMP", "000000000073.bmp", odd("RGB", "BMP"), (30, 20), False),
        ("TIFF", "000000000074.tif", odd("RGB", "TIFF"), (30, 20), False),
        ("JPEG with trailing garbage", "000000000075.jpg", jpg + b"garbage" * 100, (32, 24), False),
        ("panorama 2000x2", "000000000076.jpg", build.jpeg((2000, 2)), (2000, 2), False),
        ("20 MB of random bytes", "000000000077.jpg", None, "corrupt", False),
        ("stray notes.txt", "notes.txt", b"shot list\n", "corrupt", False),
        ("same id twice (1.png beside 000000000001.jpg)", "1.png", odd("RGB", "PNG"), "duplicate", False),
    ]


def _bytes_for(name: str, data: bytes | None) -> bytes:
    if data is not None:
        return data
    return bomb_png(20000) if "bomb" in name else os.urandom(20 << 20)


def photo(name: str, file: str, data: bytes | None, expected, quick: bool) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        root = build.coco_dir(tmp / DS)
        (root / FOLDER / file).write_bytes(_bytes_for(name, data))
        db = tmp / "db.duckdb"
        res = ctx.ingest(root, db, timeout=120)
        run = judge.ingested(res, db, DS)
        path = f"{FOLDER}/{file}"
        rows = judge.query(db, "SELECT name, status, status_reason, width, height FROM images "
                               "WHERE dataset = ? AND path = ?", [DS, path])
        good = judge.query(db, "SELECT count(*) FROM images WHERE dataset = ? AND status = 'ok' "
                               "AND path LIKE 'images/val2017/00000000000_.jpg'", [DS])[0][0]
        if good != 4:
            raise Broke(f"{good} of the 4 good photos are ok")
        rejected = [r for r in judge.rejects(db, DS) if r[0] == path]
        if expected == "duplicate":
            if not rejected:
                raise Broke(f"{file}: a second file for photo 1 is not reported")
            return f"reported: {rejected[0][3][:80]}"
        if not rows:
            if rejected:
                return f"rejected: {rejected[0][3][:90]}"
            raise Broke(f"{file}: neither an images row nor a reject")
        _, status, reason, width, height = rows[0]
        if expected == "corrupt":
            if status != "corrupt":
                raise Broke(f"{file}: status {status} ({width}x{height}), expected corrupt")
            if not rejected:
                raise Broke(f"{file}: corrupt but no reject names it")
            return f"corrupt: {reason[:90]}"
        if expected == "either":
            return f"{status}: {reason or f'{width}x{height}'}"[:100]
        if status != "ok":
            raise Broke(f"{file}: {status} ({reason}), expected ok {expected[0]}x{expected[1]}")
        if (width, height) != tuple(expected):
            raise Broke(f"{file}: stored {width}x{height}, displayed size is {expected[0]}x{expected[1]}"
                        + (" (EXIF orientation ignored)" if "EXIF" in name else ""))
        return f"ok {width}x{height}"
    note = "#12.3: EXIF orientation is ignored" if "rotated" in name or "transposed" in name else ""
    return Attempt("photos", name, run, note, quick)


# ------------------------------------------------------------------------------------------ embed sweep
def _embed_sweep(ctx: Ctx) -> dict:
    """One dataset of every odd-but-valid photo; ingest, filter and embed it once."""
    def make(tmp: Path) -> dict:
        root = build.coco_dir(tmp / DS)
        files = {}
        for name, file, data, expected, _ in _cases():
            if isinstance(expected, tuple) or expected == "either":
                (root / FOLDER / file).write_bytes(_bytes_for(name, data))
                files[name] = f"{FOLDER}/{file}"
        db = tmp / "db.duckdb"
        steps = {}
        for stage in (["ingest", "--data", str(root)], ["filter"], ["embed"]):
            steps[stage[0]] = ctx.cli(*stage, "--db", str(db), "--quiet", timeout=300)
        return {"db": db, "files": files, "steps": steps}
    return ctx.fixture("embed-sweep", make)


def embedded(name: str) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        sweep = _embed_sweep(ctx)
        for stage, res in sweep["steps"].items():
            judge.ok(res)
        db, path = sweep["db"], sweep["files"][name]
        status = judge.query(db, "SELECT status, id FROM images WHERE dataset = ? AND path = ?", [DS, path])
        if not status:
            raise Broke(f"{path}: no images row")
        if status[0][0] != "ok":
            return f"not embedded: {status[0][0]} at ingest"
        vectors = judge.query(db, "SELECT count(*) FROM embeddings WHERE image_id = ?", [status[0][1]])[0][0]
        if not vectors:
            failed = [ln for ln in sweep["steps"]["embed"].out.splitlines() if status[0][1] in ln]
            raise Broke(f"{path}: ok photo not embedded " + (failed[0].strip()[:120] if failed else ""))
        return "embedded"
    return Attempt("photos", f"embed: {name}", run, quick=False)


# --------------------------------------------------------------------------------------- swapped bytes
def _same_size_pair() -> tuple[bytes, bytes]:
    first, second = build.jpeg((32, 24), (250, 250, 250)), build.jpeg((32, 24), (5, 5, 5))
    size = max(len(first), len(second)) + 16
    return first + b"\0" * (size - len(first)), second + b"\0" * (size - len(second))


def _swap(path: Path, new: bytes) -> None:
    """Replace the bytes, keep size and mtime to the nanosecond (what `cp -p` or a restored backup does)."""
    stat = path.stat()
    assert len(new) == stat.st_size
    path.write_bytes(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _swap_setup(ctx: Ctx, tmp: Path, stages: list[str]) -> tuple[Path, Path, bytes, bytes]:
    root = build.coco_dir(tmp / DS)
    old, new = _same_size_pair()
    photo_path = root / FOLDER / "000000000002.jpg"
    photo_path.write_bytes(old)
    db = tmp / "db.duckdb"
    judge.ok(ctx.ingest(root, db))
    for stage in stages:
        judge.ok(ctx.cli(stage, "--db", str(db), "--quiet", timeout=300))
    _swap(photo_path, new)
    return root, db, old, new


def swapped_reingest(ctx: Ctx, tmp: Path) -> str:
    root, db, old, new = _swap_setup(ctx, tmp, [])
    judge.ok(ctx.ingest(root, db))
    stored = judge.query(db, "SELECT sha256 FROM images WHERE id = ?", [f"{DS}/2"])[0][0]
    if stored != hashlib.sha256(new).hexdigest():
        raise Broke("re-ingest kept the old sha256: the replaced photo is 'unchanged'"
                    if stored == hashlib.sha256(old).hexdigest() else f"sha256 {stored} matches neither version")
    return "re-ingest noticed the new bytes"


def swapped_embed(ctx: Ctx, tmp: Path) -> str:
    """Embed (random open_clip: the sha check is the embed stage's, whatever the encoder) after the swap."""
    _, db, old, new = _swap_setup(ctx, tmp, ["filter"])
    res = ctx.cli("embed", "--encoder", "openclip", "--model", "ViT-S-32", "--pretrained", "none", "--db", str(db),
                  "--quiet", timeout=300)
    judge.no_crash(res)
    rows = judge.query(db, "SELECT sha256 FROM embeddings WHERE image_id = ?", [f"{DS}/2"])
    if any(r[0] == hashlib.sha256(old).hexdigest() for r in rows):
        raise Broke("embed encoded the new bytes and stored them under the old sha256")
    return "the swapped photo was not embedded under the old decision" if not rows else "embedded under its new sha"


def swapped_visible(ctx: Ctx, tmp: Path) -> str:
    root, db, old, new = _swap_setup(ctx, tmp, ["filter"])
    before = judge.query(db, "SELECT count(*) FROM visible_images WHERE id = ?", [f"{DS}/2"])[0][0]
    if not before:
        raise RuntimeError("photo 2 was not cleared by the filter: the attempt needs a visible photo")
    judge.ok(ctx.ingest(root, db))
    after = judge.query(db, "SELECT count(*) FROM visible_images WHERE id = ?", [f"{DS}/2"])[0][0]
    if after:
        raise Broke("after re-ingest the replaced photo is still visible under the decision made on other bytes")
    return "the replaced photo is hidden until decided again"


def swapped_forced(ctx: Ctx, tmp: Path) -> str:
    root, db, old, new = _swap_setup(ctx, tmp, ["filter"])
    judge.ok(ctx.ingest(root, db, "--force"))
    after = judge.query(db, "SELECT count(*) FROM visible_images WHERE id = ?", [f"{DS}/2"])[0][0]
    if after:
        raise Broke("after a forced re-ingest the replaced photo is still visible")
    return "forced re-ingest hides the replaced photo"


def attempts() -> list[Attempt]:
    out = [photo(*case) for case in _cases()]
    out += [embedded(name) for name, _, _, expected, _ in _cases()
            if isinstance(expected, tuple) or expected == "either"]
    note = "#12.1: same size and mtime replacement is never noticed"
    out += [
        Attempt("photos", "same-size same-mtime swap: re-ingest notices", swapped_reingest, note),
        Attempt("photos", "same-size same-mtime swap: embed without re-ingest", swapped_embed, note),
        Attempt("photos", "same-size same-mtime swap: hidden after re-ingest", swapped_visible, note),
        Attempt("photos", "same-size same-mtime swap: forced re-ingest hides it", swapped_forced, quick=False),
    ]
    return out

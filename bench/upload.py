"""Upload benchmark: does the server's memory stay flat for a big file?

Starts its own `packyard serve` (SQLite, a temporary data directory, no
upstream, on 127.0.0.1), makes a user and a token with the CLI, generates a
valid wheel of `--size-mb` MB (one big STORED member of random bytes, so the
wheel is as large as the member), and uploads it with a plain httpx
streaming multipart request, as twine would (same fields). While it runs, the
server process's resident memory is sampled from /proc/<pid>/status.

Prints one Markdown table row:

    | file MB | wall s | MB/s | server RSS before MB | peak RSS during MB | VmHWM MB |

    .venv/bin/python bench/upload.py                 # 200 MB: heavy, run it once
    .venv/bin/python bench/upload.py --size-mb 20     # a quick check
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx

PYTHON = sys.executable
CHUNK = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="packyard-bench-") as tmp:
        root = Path(tmp)
        wheel, digests = build_big_wheel(root / "dist", args.size_mb * CHUNK)
        data_dir = root / "data"
        token = make_token(data_dir)
        port = free_port()
        argv = [PYTHON, "-m", "packyard", "serve", "--data-dir", str(data_dir)]
        server = subprocess.Popen(
            [*argv, "--port", str(port), "--upstream", "none"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            print(measure(url, token, wheel, digests, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)


def build_big_wheel(directory: Path, size: int) -> tuple[Path, dict[str, str]]:
    """`bench_big-1.0-py3-none-any.whl` with a `size`-byte stored member; its digests."""
    directory.mkdir(parents=True)
    path = directory / "bench_big-1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        member_hash = hashlib.sha256()
        info = zipfile.ZipInfo("bench_big/blob.bin", date_time=(1980, 1, 1, 0, 0, 0))
        with archive.open(info, "w", force_zip64=True) as member:
            for start in range(0, size, CHUNK):
                chunk = os.urandom(min(CHUNK, size - start))
                member_hash.update(chunk)
                member.write(chunk)
        record.append(f"bench_big/blob.bin,sha256={_b64(member_hash.digest())},{size}")
        small = {
            "bench_big-1.0.dist-info/METADATA": (
                b"Metadata-Version: 2.1\nName: bench-big\nVersion: 1.0\nSummary: A big wheel\n"
            ),
            "bench_big-1.0.dist-info/WHEEL": (
                b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            ),
        }
        for name, data in small.items():
            archive.writestr(name, data)
            record.append(f"{name},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}")
        record.append("bench_big-1.0.dist-info/RECORD,,")
        archive.writestr("bench_big-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path, file_digests(path)


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def file_digests(path: Path) -> dict[str, str]:
    sha256, blake2 = hashlib.sha256(), hashlib.blake2b(digest_size=32)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            sha256.update(chunk)
            blake2.update(chunk)
    return {"sha256_digest": sha256.hexdigest(), "blake2_256_digest": blake2.hexdigest()}


def make_token(data_dir: Path) -> str:
    def cli(*args: str) -> str:
        argv = [PYTHON, "-m", "packyard", *args, "--data-dir", str(data_dir)]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    cli("user", "add", "bench")
    return cli("token", "create", "bench").strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS since start) of `pid`, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def measure(url: str, token: str, wheel: Path, digests: dict[str, str], pid: int) -> str:
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "bench-big",
        "version": "1.0",
        "summary": "A big wheel",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        **digests,
    }
    before = memory_kib(pid)["VmRSS"]
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, memory_kib(pid)["VmRSS"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    with wheel.open("rb") as file:
        # httpx streams a file object in chunks, with a Content-Length.
        response = httpx.post(
            url + "/legacy/",
            data=fields,
            files={"content": (wheel.name, file, "application/octet-stream")},
            auth=("__token__", token),
            timeout=600,
        )
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if response.status_code != 200:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
    size_mb = wheel.stat().st_size / CHUNK
    hwm = memory_kib(pid)["VmHWM"]
    return (
        f"| {size_mb:.0f} | {wall:.2f} | {size_mb / wall:.0f} | {before / 1024:.0f} "
        f"| {peak / 1024:.0f} | {hwm / 1024:.0f} |"
    )


if __name__ == "__main__":
    main()

"""Load benchmark: `ragtune serve` vs llama.cpp's own OpenAI server, same model and prompts.

Starts each server on 127.0.0.1, then for each client count runs that many concurrent
streaming clients from a second process (this script with --client), each sending
--requests RAG-style chat requests (a SQuAD passage and its question, the prompt ragtune
trains on) and stopping after --level-s seconds at most. Per level it reports requests/s,
latency p50/p95, time to first token p50/p95, and every non-200 status by code. ragtune's
server runs with max_batch=8 and max_waiting=16, so levels above 24 clients must see 429s
(and only 429s). llama.cpp's server (llama-cpp-python) decodes one request at a time; it runs
with --interrupt_requests False, since by default each new request cuts off the one streaming.

    python benchmarks/serve_load.py --out benchmarks/out/serve_load
    python benchmarks/serve_load.py --clients 1,4,8,16,32 --requests 3 --skip-llamacpp

Run on a quiet machine; the CPU model is recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(url: str, path: str, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server at {url} did not come up in {timeout_s} s")


@contextmanager
def llama_server(gguf: str, threads: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on loopback; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(threads), "--n_ctx", "4096",
           # By default a new request cuts off the one streaming: queue them instead.
           "--interrupt_requests", "False"]  # fmt: skip
    print("llama.cpp server:", " ".join(cmd[3:]), flush=True)
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_health(url, "/v1/models")
        yield url
    finally:
        server.terminate()
        server.wait(60)


def prompts(n: int, seed: int) -> list[list[dict[str, str]]]:
    import random

    from ragtune.data.importers import import_data
    from ragtune.prompt.grounded import PromptConfig, build_messages

    exs = [e for e in import_data(str(SHARED / "squad2_sample.json")).examples if e.answerable]
    return [
        build_messages(e.question, e.contexts, PromptConfig())
        for e in random.Random(seed).sample(exs, n)
    ]


def client_main(args: argparse.Namespace) -> None:
    """The second process: N threads, each streaming its requests; one JSON line out."""
    import httpx

    msgs = json.loads(Path(args.prompts).read_text())
    results: list[dict] = []
    lock = threading.Lock()
    stop_at = time.time() + args.level_s

    def worker(w: int) -> None:
        with httpx.Client(timeout=120) as http:
            for r in range(args.requests):
                if time.time() > stop_at:
                    return
                body = {"model": args.model, "messages": msgs[(w * args.requests + r) % len(msgs)],
                        "max_tokens": args.max_tokens, "stream": True, "temperature": 0}  # fmt: skip
                t0 = time.perf_counter()
                first = None
                status = 0
                try:
                    with http.stream(
                        "POST", args.client + "/v1/chat/completions", json=body
                    ) as resp:
                        status = resp.status_code
                        for line in resp.iter_lines():
                            if (
                                first is None
                                and line.startswith("data: ")
                                and '"content":"' in line.replace(" ", "")
                                and '"content":""' not in line.replace(" ", "")
                            ):
                                first = time.perf_counter() - t0
                except httpx.HTTPError as e:
                    status = -1
                    print(f"client: {type(e).__name__}: {e}", file=sys.stderr)
                with lock:
                    results.append(
                        {"status": status, "latency_s": time.perf_counter() - t0, "ttft_s": first}
                    )
                if status == 429:
                    time.sleep(0.2)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"wall_s": time.perf_counter() - t0, "results": results}))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_levels(
    url: str, model: str, levels: list[int], prompt_file: Path, args: argparse.Namespace
) -> dict:
    out = {}
    for n in levels:
        cmd = [sys.executable, __file__, "--client", url, "--model", model, "--n", str(n), "--prompts", str(prompt_file),
               "--requests", str(args.requests), "--level-s", str(args.level_s), "--max-tokens", str(args.max_tokens)]  # fmt: skip
        raw = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        rs = raw["results"]
        ok = [r for r in rs if r["status"] == 200]
        codes: dict[str, int] = {}
        for r in rs:
            if r["status"] != 200:
                codes[str(r["status"])] = codes.get(str(r["status"]), 0) + 1
        lat = [r["latency_s"] for r in ok]
        ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
        out[str(n)] = {
            "requests": len(rs), "ok": len(ok), "errors": codes, "wall_s": round(raw["wall_s"], 2),
            "requests_per_s": round(len(ok) / raw["wall_s"], 3),
            "latency_p50_s": pct(lat, 0.5), "latency_p95_s": pct(lat, 0.95),
            "ttft_p50_s": pct(ttft, 0.5), "ttft_p95_s": pct(ttft, 0.95),
        }  # fmt: skip
        print(f"  {n:>3} clients: {out[str(n)]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--prompts", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument(
        "--adapter", default=None, help="NAME=DIR served beside the base; the load goes to NAME"
    )
    ap.add_argument(
        "--gguf",
        default=None,
        help="the same model as GGUF for llama.cpp (default: the smollm2 wheel's)",
    )
    ap.add_argument("--clients", default="1,4,8,16,32")
    ap.add_argument("--requests", type=int, default=3, help="requests per client per level")
    ap.add_argument(
        "--level-s", type=float, default=90, help="a level stops sending after this many seconds"
    )
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-llamacpp", action="store_true")
    ap.add_argument("--out", default="benchmarks/out/serve_load")
    args = ap.parse_args()
    if args.client:
        return client_main(args)

    from ragtune import atomic, probe
    from ragtune.models import ALIASES, alias_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in args.clients.split(",")]
    prompt_file = out / "prompts.json"
    prompt_file.write_text(json.dumps(prompts(max(levels) * args.requests, 0)))
    results: dict = {"cpu": probe.cpu_model_name(), "args": vars(args), "servers": {}}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "ragtune", "serve", "--model", args.model, "--port", str(port),
           "max_batch=8", "max_waiting=16", f"runtime.threads={args.threads}", f"max_tokens={args.max_tokens}"]  # fmt: skip
    target = "smollm2-135m" if args.model == "smollm2-135m" else args.model
    if args.adapter:
        cmd += ["--adapter", args.adapter]
        target = args.adapter.split("=", 1)[0]
    print("ragtune serve:", " ".join(cmd[3:]), flush=True)
    server = subprocess.Popen(cmd, env=env)
    try:
        wait_health(url, "/health")
        results["servers"]["ragtune"] = run_levels(url, target, levels, prompt_file, args)
    finally:
        server.terminate()  # SIGTERM: drains, then exits
        server.wait(60)
    if not args.skip_llamacpp:
        gguf = args.gguf or (str(alias_path(args.model)) if args.model in ALIASES else args.model)
        with llama_server(gguf, args.threads, env) as url:
            results["servers"]["llama.cpp"] = run_levels(url, "model", levels, prompt_file, args)
    atomic.write_json(out / "results.json", results)


if __name__ == "__main__":
    main()

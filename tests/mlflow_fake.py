"""A stand-in MLflow tracking server on 127.0.0.1 (the REST calls the study mirror makes),
recording every request it gets; ``refuse=True`` answers each with 403."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeMlflow:
    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.requests: list[dict[str, Any]] = []
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                with fake._lock:
                    fake.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    code, out = fake.route(self.path, json.loads(body) if body else {})
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- the REST API, as far as the mirror uses it
    def _run(self, rid: str) -> dict[str, Any]:
        r = self.runs[rid]
        tags = [{"key": k, "value": v} for k, v in r["tags"].items()]
        info = {
            "run_id": rid,
            "run_uuid": rid,
            "experiment_id": r["experiment_id"],
            "status": r["status"],
            "run_name": r["tags"].get("mlflow.runName", rid),
            "start_time": r["start"],
            "lifecycle_stage": "active",
        }
        return {"info": info, "data": {"tags": tags, "metrics": [], "params": []}}

    def route(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.refuse:
            return 403, {"error_code": "PERMISSION_DENIED", "message": "refused"}
        if "experiments/get-by-name" in path:
            name = path.split("experiment_name=", 1)[-1]
            from urllib.parse import unquote_plus

            name = unquote_plus(name.split("&")[0])
            if name not in self.experiments:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no experiment"}
            return 200, {"experiment": {"experiment_id": self.experiments[name], "name": name}}
        if path.endswith("experiments/create"):
            eid = str(len(self.experiments) + 1)
            self.experiments[body["name"]] = eid
            return 200, {"experiment_id": eid}
        if path.endswith("runs/create"):
            rid = f"run{len(self.runs)}"
            tags = {t["key"]: t["value"] for t in body.get("tags", [])}
            if body.get("run_name"):
                tags["mlflow.runName"] = body["run_name"]
            self.runs[rid] = {
                "experiment_id": body.get("experiment_id", "1"),
                "tags": tags,
                "status": "RUNNING",
                "start": int(time.time() * 1000),
            }
            return 200, {"run": self._run(rid)}
        if path.endswith("runs/search"):
            flt = body.get("filter", "")
            runs = [self._run(rid) for rid, r in self.runs.items() if _matches(r["tags"], flt)]
            return 200, {"runs": runs}
        if path.endswith("runs/update"):
            rid = body.get("run_id") or body.get("run_uuid")
            self.runs[rid]["status"] = body.get("status", "FINISHED")
            return 200, {"run_info": self._run(rid)["info"]}
        if path.endswith("runs/get"):
            rid = path.split("run_id=", 1)[-1].split("&")[0]
            return 200, {"run": self._run(rid)}
        return 200, {}


def _matches(tags: dict[str, str], flt: str) -> bool:
    """The ``tags.x = 'v' and ...`` filters the mirror sends."""
    import re

    for key, value in re.findall(r"tags\.`?([\w.]+)`?\s*=\s*'([^']*)'", flt):
        if tags.get(key) != value:
            return False
    return True

"""A Kubernetes API on loopback that answers what the Kubeflow Trainer SDK asks for a TrainJob, and
runs the job's pods as local processes the way the Trainer's torch plugin starts them.

There is no cluster on this machine (no container engine either), so this stands in for the API
server, the Trainer controller and the kubelet at once, at the HTTP level the SDK's
TrainerClient speaks: GET of the Trainer's public ConfigMap and of the `torch-distributed`
ClusterTrainingRuntime (namespaced TrainingRuntimes: 404, as on a cluster that has only the
installed ones), POST/GET/DELETE of TrainJobs, and an empty pod list. A created TrainJob's
`numNodes` "pods" run its trainer command with the container's environment resolved as a
kubelet would (plain values, Secret and ConfigMap references from the runtime patches) plus the
PET_* variables the torch plugin sets; the job's condition becomes Complete when every pod exits
0, Failed when one does not. Everything it received is kept for the test to check.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GROUP = "/apis/trainer.kubeflow.org/v1alpha1"
TORCH_RUNTIME = {  # the shape of the Trainer's manifests/base/runtimes/torch_distributed.yaml
    "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
    "metadata": {"name": "torch-distributed", "labels": {"trainer.kubeflow.org/framework": "torch"}},
    "spec": {"mlPolicy": {"numNodes": 1, "torch": {}},
             "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
                 "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                 "spec": {"template": {"spec": {"containers": [
                     {"name": "node", "image": "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
                      "command": ["/bin/bash", "-c", "env | grep PET_"]}]}}}}}]}}},
}


class LoopbackTrainer:
    def __init__(self, secrets: dict[str, dict[str, str]], config_maps: dict[str, dict[str, str]],
                 pod_env: dict[str, str]):
        self.secrets, self.config_maps, self.pod_env = secrets, config_maps, pod_env
        self.jobs: dict[str, dict] = {}  # name -> the TrainJob as stored
        self.created: list[dict] = []  # the POSTed bodies, as the SDK sent them
        self.deleted: list[str] = []
        self.requests: set[tuple[str, str, str, bool]] = set()  # (verb, API group, resource, namespaced), as RBAC names them
        self.logs: dict[str, list[str]] = {}  # name -> each pod's output
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # the "kubelet": one process per node, the torch plugin's PET_* variables
    def _run(self, job: dict) -> None:
        name, trainer = job["metadata"]["name"], job["spec"]["trainer"]
        nodes, port = trainer.get("numNodes", 1), _free_port()
        base = {**self.pod_env, **{e["name"]: e["value"] for e in trainer.get("env", [])}, **self._patched_env(job)}
        command = trainer["command"]
        pods = [subprocess.Popen(command, env={**base, "PET_NNODES": str(nodes), "PET_NODE_RANK": str(rank),
                                              "PET_NPROC_PER_NODE": "1", "PET_MASTER_ADDR": "127.0.0.1",
                                              "PET_MASTER_PORT": str(port)},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(nodes)]
        outputs = [pod.communicate()[0] for pod in pods]
        self.logs[name] = outputs
        done = "Complete" if all(pod.returncode == 0 for pod in pods) else "Failed"
        job["status"] = {"conditions": [{"type": done, "status": "True", "reason": done, "message": f"pods {done}",
                                         "lastTransitionTime": _now()}]}

    def _patched_env(self, job: dict) -> dict[str, str]:
        env = {}
        for patch in job["spec"].get("runtimePatches", []):
            for rjob in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
                for container in rjob["template"]["spec"]["template"]["spec"].get("containers", []):
                    for var in container.get("env", []):
                        env[var["name"]] = var["value"] if "value" in var else self._value_from(var["valueFrom"])
        return env

    def _value_from(self, ref: dict) -> str:
        if "secretKeyRef" in ref:
            return self.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
        return self.config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]

    def _handler(self):
        trainer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self, verb: str) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                group = "" if parts[0] == "api" else parts[1]
                rest = parts[2:] if parts[0] == "api" else parts[3:]
                namespaced = rest[0] == "namespaces"
                rest = rest[2:] if namespaced else rest
                resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
                if verb == "get" and len(rest) == 1:
                    verb = "list"
                trainer.requests.add((verb, group, resource, namespaced))

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _missing(self):
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                 "code": 404, "message": f"{self.path} not found"})

            def do_GET(self):
                self._record("get")
                path = self.path.split("?")[0]
                if path == "/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public":
                    return self._send(200, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "kubeflow-trainer-public"},
                                            "data": {"kubeflow_trainer_version": "v2.3.0"}})
                if path == f"{GROUP}/clustertrainingruntimes/torch-distributed":
                    return self._send(200, TORCH_RUNTIME)
                if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
                    return self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})
                match = re.fullmatch(rf"{GROUP}/namespaces/[^/]+/trainjobs/([^/]+)", path)
                if match and match[1] in trainer.jobs:
                    return self._send(200, trainer.jobs[match[1]])
                self._missing()

            def do_POST(self):
                self._record("create")
                match = re.fullmatch(rf"{GROUP}/namespaces/([^/]+)/trainjobs", self.path.split("?")[0])
                if not match:
                    return self._missing()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                trainer.created.append(json.loads(json.dumps(body)))
                body["metadata"] |= {"namespace": match[1], "creationTimestamp": _now(), "uid": "loopback"}
                trainer.jobs[body["metadata"]["name"]] = body
                threading.Thread(target=trainer._run, args=(body,), daemon=True).start()
                self._send(201, body)

            def do_DELETE(self):
                self._record("delete")
                match = re.fullmatch(rf"{GROUP}/namespaces/[^/]+/trainjobs/([^/]+)", self.path.split("?")[0])
                if not match or trainer.jobs.pop(match[1], None) is None:
                    return self._missing()
                trainer.deleted.append(match[1])
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_path_first(env: dict[str, str]) -> dict[str, str]:
    """The image's PATH: this interpreter's bin folder (its torchrun) first."""
    return {**env, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"}

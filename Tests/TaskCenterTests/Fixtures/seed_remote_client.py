"""Seed 003's own Python client (RunicornRemoteClient, from the seed document, unchanged but
for its docstrings) running the seed's basic example against an EasyRemote gateway.

Environment: EASYREMOTE_API (the gateway's HTTP API), EASYREMOTE_TOKEN, SSH_HOST, SSH_PORT,
SSH_USER, SSH_KEY.
"""
import os
import sys
from typing import Any, Dict, List, Optional

import requests


class RunicornRemoteClient:
    def __init__(self, base_url: str = "http://localhost:23300"):
        self.base_url = base_url
        self.session = requests.Session()

    def connect(self, host: str, username: str, auth_method: str = "key", port: int = 22, **kwargs) -> Dict[str, Any]:
        payload = {
            "host": host,
            "port": port,
            "username": username,
            "auth_method": auth_method,
        }
        if auth_method == "key":
            if "private_key_path" in kwargs:
                payload["private_key_path"] = kwargs["private_key_path"]
            if "key_passphrase" in kwargs:
                payload["key_passphrase"] = kwargs["key_passphrase"]
        elif auth_method == "password":
            if "password" not in kwargs:
                raise ValueError("Password required for password authentication")
            payload["password"] = kwargs["password"]
        if "timeout" in kwargs:
            payload["timeout"] = kwargs["timeout"]
        response = self.session.post(f"{self.base_url}/api/remote/connect", json=payload)
        response.raise_for_status()
        return response.json()

    def list_connections(self) -> List[Dict[str, Any]]:
        response = self.session.get(f"{self.base_url}/api/remote/connections")
        response.raise_for_status()
        return response.json()["connections"]

    def disconnect(self, connection_id: str, cleanup_viewer: bool = True) -> Dict[str, Any]:
        response = self.session.delete(
            f"{self.base_url}/api/remote/connections/{connection_id}",
            params={"cleanup_viewer": cleanup_viewer}
        )
        response.raise_for_status()
        return response.json()

    def list_environments(self, connection_id: str, filter_type: str = "all") -> List[Dict[str, Any]]:
        response = self.session.get(
            f"{self.base_url}/api/remote/environments",
            params={"connection_id": connection_id, "filter": filter_type}
        )
        response.raise_for_status()
        return response.json()["environments"]

    def detect_environments(self, connection_id: str, force_refresh: bool = False) -> Dict[str, Any]:
        response = self.session.post(
            f"{self.base_url}/api/remote/environments/detect",
            json={"connection_id": connection_id, "force_refresh": force_refresh}
        )
        response.raise_for_status()
        return response.json()

    def get_remote_config(self, connection_id: str, env_name: str) -> Dict[str, Any]:
        response = self.session.get(
            f"{self.base_url}/api/remote/config",
            params={"connection_id": connection_id, "env_name": env_name}
        )
        response.raise_for_status()
        return response.json()

    def start_viewer(self, connection_id: str, env_name: str, remote_root: Optional[str] = None,
                     auto_open: bool = True) -> Dict[str, Any]:
        payload = {"connection_id": connection_id, "env_name": env_name, "auto_open": auto_open}
        if remote_root:
            payload["remote_root"] = remote_root
        response = self.session.post(f"{self.base_url}/api/remote/viewer/start", json=payload)
        response.raise_for_status()
        return response.json()

    def stop_viewer(self, connection_id: str, cleanup: bool = True) -> Dict[str, Any]:
        response = self.session.post(
            f"{self.base_url}/api/remote/viewer/stop",
            json={"connection_id": connection_id, "cleanup": cleanup}
        )
        response.raise_for_status()
        return response.json()

    def get_viewer_status(self, connection_id: str) -> Dict[str, Any]:
        response = self.session.get(
            f"{self.base_url}/api/remote/viewer/status", params={"connection_id": connection_id}
        )
        response.raise_for_status()
        return response.json()

    def get_viewer_logs(self, connection_id: str, lines: int = 100) -> List[str]:
        response = self.session.get(
            f"{self.base_url}/api/remote/viewer/logs", params={"connection_id": connection_id, "lines": lines}
        )
        response.raise_for_status()
        return response.json()["logs"]

    def health_check(self, connection_id: str) -> Dict[str, Any]:
        response = self.session.get(f"{self.base_url}/api/remote/health", params={"connection_id": connection_id})
        response.raise_for_status()
        return response.json()

    def ping(self, connection_id: str) -> Dict[str, Any]:
        response = self.session.get(f"{self.base_url}/api/remote/ping", params={"connection_id": connection_id})
        response.raise_for_status()
        return response.json()

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()


# The seed's basic example ("基础使用示例"), pointed at the test's gateway and host; the
# final input() becomes nothing.
with RunicornRemoteClient(os.environ["EASYREMOTE_API"]) as client:
    client.session.headers["Authorization"] = "Bearer " + os.environ["EASYREMOTE_TOKEN"]
    result = client.connect(
        host=os.environ["SSH_HOST"],
        port=int(os.environ["SSH_PORT"]),
        username=os.environ["SSH_USER"],
        auth_method="key",
        private_key_path=os.environ["SSH_KEY"]
    )
    connection_id = result["connection_id"]
    print(f"✓ 已连接: {connection_id}")

    environments = client.list_environments(connection_id=connection_id, filter_type="runicorn_only")
    print(f"✓ 找到 {len(environments)} 个环境")
    for env in environments:
        print(f"  - {env['name']}: Python {env['python_version']}, Runicorn {env['runicorn_version']}")

    viewer = client.start_viewer(connection_id=connection_id, env_name=environments[0]["name"], auto_open=True)
    print(f"✓ Viewer 已启动: {viewer['viewer']['url']}")

    status = client.get_viewer_status(connection_id)
    print(f"✓ Viewer 状态: {status['viewer']['status']}")

    health = client.health_check(connection_id)
    print(f"✓ 连接健康: {health['health']}")

    print(f"✓ ping: {client.ping(connection_id)['latency_ms']} ms")
    print(f"✓ logs: {len(client.get_viewer_logs(connection_id, lines=20))} lines")

    client.disconnect(connection_id)
    print("✓ 已断开连接")
    if status['viewer']['status'] != "running" or health['health'] != "healthy":
        sys.exit(1)

"""A small Kubernetes API client for what kopf does not do for us: listing FlashSales for
scaling, and reading and merge-patching Deployments' replicas.

It uses the credentials kopf logged in with (service account in a pod, kubeconfig outside),
so the operator has one identity and one set of RBAC rules."""

from __future__ import annotations

import base64
import logging
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "flashsale.dev", "v1alpha1", "flashsales"


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status


def _pem_file(folder: Path, name: str, data: str | bytes) -> str:
    """kubeconfig `*-data` fields are base64 PEM; ssl wants files."""
    path = folder / name
    path.write_bytes(base64.b64decode(data))
    path.chmod(0o600)
    return str(path)


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    if not (info.ca_path or info.ca_data or info.certificate_path or info.certificate_data):
        return True  # system trust store, no client certificate
    folder = Path(tempfile.mkdtemp(prefix="flashsale-kube-"))
    ca = info.ca_path or (_pem_file(folder, "ca.pem", info.ca_data) if info.ca_data else None)
    context = ssl.create_default_context(cafile=ca)
    cert = info.certificate_path or (
        _pem_file(folder, "cert.pem", info.certificate_data) if info.certificate_data else None
    )
    key = info.private_key_path or (
        _pem_file(folder, "key.pem", info.private_key_data) if info.private_key_data else None
    )
    if cert:
        context.load_cert_chain(cert, key)
    return context


class KubeClient:
    """Talks to the API server with the credentials of the last kopf login."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.info: kopf.ConnectionInfo | None = None
        self.relogin: Callable[[], kopf.ConnectionInfo | None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True

    def use(self, info: kopf.ConnectionInfo) -> None:
        self.info = info
        self._ssl = ssl_context(info)

    @property
    def default_namespace(self) -> str:
        return (self.info.default_namespace if self.info else None) or "default"

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        info = self.info
        if info and info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        elif info and info.username and info.password:
            pair = f"{info.username}:{info.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        if self.info is None or not self.info.server:
            raise KubeError(0, "not logged in yet")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        for attempt in range(2):
            content_type = "application/merge-patch+json" if method == "PATCH" else None
            async with self._session.request(
                method,
                self.info.server.rstrip("/") + path,
                json=body,
                headers=self._headers(content_type),
                ssl=self._ssl,
            ) as response:
                if response.status == 401 and attempt == 0 and self.relogin:
                    # Tokens rotate (projected service account tokens): log in again, once.
                    fresh = self.relogin()
                    if fresh is not None:
                        self.use(fresh)
                        continue
                if response.status >= 400:
                    raise KubeError(response.status, (await response.text())[:500])
                return await response.json(content_type=None)
        raise KubeError(401, "unauthorized after logging in again")

    async def list_sales(self, namespace: str | None) -> list[dict[str, Any]]:
        where = f"/namespaces/{namespace}" if namespace else ""
        found = await self.request("GET", f"/apis/{GROUP}/{VERSION}{where}/{PLURAL}")
        return list(found.get("items") or [])

    async def deployment_replicas(self, namespace: str, name: str) -> int | None:
        """The Deployment's spec.replicas, or None when there is no such Deployment."""
        try:
            body = await self.request(
                "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return int((body.get("spec") or {}).get("replicas", 1))

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.request(
            "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", patch
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

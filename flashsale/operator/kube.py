"""The operator's Kubernetes client, for what kopf does not do for us: listing FlashSales for
scaling, and reading and patching Deployments' replicas.

Built on `kubernetes_asyncio`, chosen over the other maintained clients because:

- it is async on aiohttp, the transport kopf already runs on, so the scaling loop shares
  kopf's event loop with no threads and no second HTTP stack (the `kubernetes` package
  is sync on urllib3 apart from a newer aio copy of itself; `kr8s` runs on httpx);
- kopf logs in through it (`kopf.login_via_async_client`), so kopf and this client load one
  set of credentials, with one loader: the service account in a pod (its token re-read as
  it rotates), else the kubeconfig (certificate and CA data, exec plugins, contexts);
- it is generated from the Kubernetes OpenAPI spec for each release and ships type stubs;
- its cost, measured by installing each into the core's environment: +49 MB (26 MB of
  generated models, 22 MB of their bytecode; certifi and urllib3 besides). `kr8s` costs
  about the same (+48 MB: python-box, cryptography, httpx), `kubernetes` +134 MB.

One identity, one set of RBAC rules: the login handler below is kopf's, and this client is
built from the configuration that login loaded."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kopf
from kubernetes_asyncio import client, config

GROUP, VERSION, PLURAL = "flashsale.dev", "v1alpha1", "flashsales"
USER_AGENT = "flashsale-operator"
MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

T = TypeVar("T")


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}" if status else message)
        self.status = status


def home_namespace() -> str:
    """The operator's own namespace: its service account's in a pod, else the kubeconfig
    context's, else `default` (kopf's own logins read it the same way; the client library
    has no such notion)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    try:
        _, current = config.list_kube_config_contexts()
    except (config.ConfigException, OSError):
        return "default"
    return str(((current or {}).get("context") or {}).get("namespace") or "default")


class KubeClient:
    """Talks to the API server with the credentials of the last kopf login; every request
    is bounded by `timeout` seconds (FLASHSALE_OPERATOR_REQUEST_TIMEOUT_SECONDS)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.default_namespace = "default"
        self._api: client.ApiClient | None = None
        self._relogin: Callable[[], Awaitable[kopf.ConnectionInfo | None]] | None = None

    @property
    def logged_in(self) -> bool:
        return self._api is not None

    async def login(self, **kwargs: Any) -> kopf.ConnectionInfo | None:
        """kopf's login handler: load the credentials, hand them to kopf and to this client.
        kopf calls it at start and again when the API server refuses a token."""
        info = await kopf.login_via_async_client(**kwargs)
        if info is None:
            return None
        self.default_namespace = home_namespace()
        # The library keeps what it loaded as its default configuration; take a copy.
        await self._connect(client.Configuration.get_default_copy())
        self._relogin = lambda: self.login(**kwargs)
        return dataclasses.replace(info, default_namespace=self.default_namespace)

    async def _connect(self, configuration: client.Configuration) -> None:
        previous, self._api = self._api, client.ApiClient(configuration)
        self._api.user_agent = USER_AGENT
        if previous is not None:
            # A request still on the old connection pool fails and its round is retried.
            await previous.close()

    async def _call(self, request: Callable[[client.ApiClient], Awaitable[T]]) -> T:
        for attempt in range(2):
            if self._api is None:
                raise KubeError(0, "not logged in yet")
            try:
                return await request(self._api)
            except client.ApiException as exc:
                if exc.status == 401 and attempt == 0 and self._relogin is not None:
                    # Tokens rotate (projected service account tokens): log in again, once.
                    if await self._relogin() is not None:
                        continue
                body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else ""
                raise KubeError(int(exc.status or 0), (body or str(exc.reason))[:500]) from exc
            except TimeoutError as exc:
                raise KubeError(0, f"no answer within {self.timeout:g}s") from exc
            except aiohttp.ClientError as exc:
                raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        raise KubeError(401, "unauthorized after logging in again")

    async def list_sales(self, namespace: str | None) -> list[dict[str, Any]]:
        def request(api: client.ApiClient) -> Awaitable[Any]:
            objects = client.CustomObjectsApi(api)
            if namespace:
                return objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=self.timeout
                )
            return objects.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=self.timeout
            )

        found = await self._call(request)
        return list(found.get("items") or [])

    async def deployment_replicas(self, namespace: str, name: str) -> int | None:
        """The Deployment's spec.replicas, or None when there is no such Deployment."""
        try:
            deployment = await self._call(
                lambda api: client.AppsV1Api(api).read_namespaced_deployment(
                    name, namespace, _request_timeout=self.timeout
                )
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        spec = deployment.spec
        return 1 if spec is None or spec.replicas is None else int(spec.replicas)

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Apply `patch` as a JSON merge patch (RFC 7386)."""
        await self._call(
            lambda api: client.AppsV1Api(api).patch_namespaced_deployment(
                name,
                namespace,
                patch,
                _request_timeout=self.timeout,
                # Documented in the generated method, absent from its stub. Left out, a dict
                # would go as a strategic merge patch.
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        )

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

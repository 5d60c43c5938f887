"""KMock's Kubernetes emulator with the bookkeeping a real API server does and kopf relies on:
resourceVersion, uid, creationTimestamp and generation stamped on every write, names from
generateName, the status subresource, JSON patches with a failing `test` answered 422, and
watches that resume from the resourceVersion they ask for (410 Gone when it is too old).
Lists asked for `as=Table` (what `kubectl get` asks for) are printed with the CRD's
additionalPrinterColumns, as the API server does."""

from __future__ import annotations

import asyncio
import copy
import datetime
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock
from kmock._internal import apps, rendering

JOURNAL_LIMIT = 10_000


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_path(body: Any, path: str) -> Any:
    """The simple `.a.b.c` JSONPath of printer columns."""
    for part in path.strip(".").split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def human_age(stamp: str | None, now: datetime.datetime) -> str:
    """Ages as the API server prints them for `date` columns: 95s, 3m20s, 12m, 5h3m, 2d."""
    if not stamp:
        return "<unknown>"
    moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = int((now - moment).total_seconds())
    if seconds < -1:
        return "<invalid>"  # in the future, as the API server prints it
    seconds = max(0, seconds)
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    return f"{hours // 24}d"


def printed_table(
    columns: list[dict[str, Any]], items: list[dict[str, Any]], version: str
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table: Name, then the printer columns; dates as ages."""
    now = datetime.datetime.now(datetime.UTC)
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0}]
    definitions += [
        {"name": c["name"], "type": c["type"], "format": "", "priority": c.get("priority", 0)}
        for c in columns
    ]
    rows = []
    for item in items:
        cells: list[Any] = [item["metadata"]["name"]]
        for column in columns:
            value = json_path(item, column["jsonPath"])
            cells.append(human_age(value, now) if column["type"] == "date" and value else value)
        partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1"}
        rows.append({"cells": cells, "object": {**partial, "metadata": item["metadata"]}})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def selected(body: dict[str, Any], params: Any) -> bool:
    """Field selectors of equalities (`involvedObject.name=x,...`), as `kubectl describe`
    sends them for a resource's Events."""
    for term in filter(None, (params.get("fieldSelector") or "").split(",")):
        path, _, wanted = term.partition("=")
        if str(json_path(body, path.rstrip("="))) != wanted.lstrip("="):
            return False
    return True


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    _revision: int = attrs.field(default=0, init=False)
    # (resourceVersion, resource, event) of every change, for watches that resume.
    _journal: list[tuple[int, kmock.resource, dict[str, Any]]] = attrs.field(
        factory=list, init=False
    )
    # additionalPrinterColumns of a CRD version, by resource.
    printer_columns: dict[kmock.resource, list[dict[str, Any]]] = attrs.field(
        factory=dict, init=False
    )
    # Requests for these resources get no answer while they are listed: an API server that
    # accepts a connection and then hangs.
    stalled: list[kmock.resource] = attrs.field(factory=list, init=False)

    # -- writes ------------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> Any:
        while request.resource is not None and any(request.resource == r for r in self.stalled):
            await asyncio.sleep(0.05)
        writes = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        if request.resource is not None and request.action in writes:
            async with self._lock:
                event = self._write(request)
                if event is not None:
                    await self._publish(request.resource, event)
        # Skip the parent's own object bookkeeping: ours above replaces it.
        return await apps.RawHandler._handle(self, request)

    async def _publish(self, resource: kmock.resource, event: dict[str, Any]) -> None:
        version = int(event["object"]["metadata"]["resourceVersion"])
        self._journal.append((version, resource, event))
        del self._journal[:-JOURNAL_LIMIT]
        await self._buses[resource].put(event)

    def _next_version(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _has_status(self, resource: kmock.resource) -> bool:
        for known in self.resources:
            if known == resource:
                return "status" in self.resources[known].subresources
        return False

    def _write(self, request: rendering.Request) -> dict[str, Any] | None:
        assert request.resource is not None
        if request.action == kmock.action.CREATE:
            return self._create(request)
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        if request.action == kmock.action.UPDATE:
            return self._update(request, key)
        return self._delete(key)

    def stamp_new(self, body: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if namespace is not None:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_text()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_version()
        return body

    def _create(self, request: rendering.Request) -> dict[str, Any]:
        assert request.resource is not None
        body = request.data  # filled in place: the parent's reply reads the name from it
        namespace = request.namespace or body.get("metadata", {}).get("namespace")
        self.stamp_new(body, namespace)
        key = (request.resource, namespace, body["metadata"]["name"])
        if key in self.objects and not self.objects[key].deleted:
            raise kmock.KubernetesError(409, "AlreadyExists", "object already exists")
        if key in self.objects:
            self.objects[key].create(body)
        else:
            self.objects[key] = body
        return {"type": "ADDED", "object": copy.deepcopy(body)}

    def _update(self, request: rendering.Request, key: Any) -> dict[str, Any] | None:
        obj = self.objects[key]
        old = copy.deepcopy(obj.raw)
        try:
            if isinstance(request.data, list):
                new = jsonpatch.apply_patch(old, request.data, in_place=False)
            else:
                new = merge_patch(old, request.data or {})
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise kmock.KubernetesError(422, "Invalid", f"patch not applicable: {exc}") from None
        if self._has_status(request.resource):  # type: ignore[arg-type]
            # With a status subresource, /status writes only status and the rest never does.
            if request.subresource == "status":
                new = {**old, "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in old:
                    new["status"] = old["status"]
        for field in ("uid", "creationTimestamp", "name", "namespace", "generation"):
            if field in old["metadata"]:
                new["metadata"][field] = old["metadata"][field]
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return None  # a no-op patch changes nothing, not even resourceVersion
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = self._next_version()
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            obj.history.append(new)
            obj.delete()
            return {"type": "DELETED", "object": copy.deepcopy(new)}
        obj.history.append(new)
        return {"type": "MODIFIED", "object": copy.deepcopy(new)}

    def _delete(self, key: Any) -> dict[str, Any] | None:
        obj = self.objects[key]
        body = copy.deepcopy(obj.raw)
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        meta["resourceVersion"] = self._next_version()
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = now_text()
            obj.history.append(body)
            return {"type": "MODIFIED", "object": copy.deepcopy(body)}
        obj.history.append(body)
        obj.delete()
        return {"type": "DELETED", "object": copy.deepcopy(body)}

    # -- reads ---------------------------------------------------------------------------

    def _matches(self, request: rendering.Request, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if request.namespace is not None and meta.get("namespace") != request.namespace:
            return False
        return request.name is None or meta.get("name") == request.name

    def _current(self, request: rendering.Request) -> list[dict[str, Any]]:
        found = []
        for (resource, _, _), obj in self.objects.items():
            if resource == request.resource and not obj.deleted and self._matches(request, obj.raw):
                found.append(copy.deepcopy(obj.raw))
        return found

    async def _serve_version(self, request: rendering.Request) -> Any:
        # The API server gives subresources (flashsales/status) no short names or
        # categories; kubectl warns of an ambiguous `fs` otherwise.
        listing = await super()._serve_version(request)
        for entry in listing.get("resources", []):
            if "/" in entry["name"]:
                entry["shortNames"], entry["categories"] = [], []
        return listing

    async def _serve_list(self, request: rendering.Request) -> Any:
        if request.resource not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        async with self._lock:
            items = [i for i in self._current(request) if selected(i, request.params)]
            version = str(self._revision)
        if "as=Table" in request.headers.get("Accept", ""):
            columns = self.printer_columns.get(request.resource, [])  # type: ignore[arg-type]
            return printed_table(columns, items, version)
        return {"metadata": {"resourceVersion": version}, "items": items}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if nothing happens for a while
        assert request.resource is not None
        since = request.params.get("resourceVersion")
        bus = self._buses[request.resource]
        async with self._lock:
            mark = await bus.mark()  # under the lock: no write can slip between the two
            if not since or since == "0":
                backlog = [{"type": "ADDED", "object": o} for o in self._current(request)]
            elif self._journal and int(since) < self._journal[0][0] - 1:
                backlog = [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}]
            else:
                backlog = [
                    event
                    for version, resource, event in self._journal
                    if version > int(since) and resource == request.resource
                ]
        try:
            for event in backlog:
                if event["type"] == "ERROR" or self._matches(request, event["object"]):
                    yield event
            async for event in bus.stream(since=mark):
                if self._matches(request, event["object"]):
                    yield event
        finally:
            await bus.unmark(mark)

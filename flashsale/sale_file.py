"""Reading FlashSale documents from YAML: the same schema as the CRD, checked in full
before anything is applied, with errors that name the document and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flashsale.spec import SaleSpec, is_valid_sale_name

API_VERSION = "flashsale.dev/v1alpha1"
KIND = "FlashSale"


class SaleFileError(ValueError):
    """The file cannot be applied; the message says where and why."""


@dataclass(frozen=True, slots=True)
class SaleDocument:
    name: str
    spec: SaleSpec


def describe_errors(error: ValidationError, prefix: str = "spec") -> list[str]:
    """One line per problem: `spec.rateLimit.burst: Input should be ... (got 0)`."""
    lines = []
    for item in error.errors():
        field = ".".join([prefix, *(str(part) for part in item["loc"])])
        got = f" (got {item['input']!r})" if item["type"] not in ("missing",) else ""
        if item["type"] == "extra_forbidden":
            got = " (unknown field)"
        lines.append(f"{field}: {item['msg']}{got}")
    return lines


def _document(doc: Any, where: str) -> SaleDocument:
    if not isinstance(doc, dict):
        raise SaleFileError(f"{where}: expected a FlashSale mapping, got {type(doc).__name__}")
    api_version, kind = doc.get("apiVersion", API_VERSION), doc.get("kind", KIND)
    if api_version != API_VERSION or kind != KIND:
        raise SaleFileError(f"{where}: expected {API_VERSION} {KIND}, got {api_version} {kind}")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not is_valid_sale_name(name):
        raise SaleFileError(
            f"{where}: metadata.name must be a lowercase DNS-1123 name (a-z, 0-9, '-', '.'), "
            f"got {name!r}"
        )
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise SaleFileError(f"{where} (flashsale/{name}): spec is missing or not a mapping")
    try:
        return SaleDocument(name, SaleSpec.model_validate(spec))
    except ValidationError as exc:
        problems = "\n  ".join(describe_errors(exc))
        raise SaleFileError(f"{where} (flashsale/{name}): invalid spec:\n  {problems}") from None


def read_sale_file(path: Path) -> list[SaleDocument]:
    """Every FlashSale in the file, or an error before any of them is applied."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise SaleFileError(f"{path}: not valid YAML: {exc}") from None
    if not docs:
        raise SaleFileError(f"{path}: no FlashSale documents found")
    sales = [_document(doc, f"{path}, document {i}") for i, doc in enumerate(docs, start=1)]
    names = [sale.name for sale in sales]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SaleFileError(f"{path}: sale(s) defined twice: {', '.join(duplicates)}")
    return sales

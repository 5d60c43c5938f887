"""FlashSale YAML: every document checked before any is applied, errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashsale.sale_file import SaleFileError, read_sale_file

HEAD = "apiVersion: flashsale.dev/v1alpha1\nkind: FlashSale\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sale.yaml"
    path.write_text(text)
    return path


def test_one_and_many_documents(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "metadata: {name: one}\nspec: {sku: A, stock: 3}\n---\n"
        "# a comment-only document is skipped\n---\n" + HEAD + "metadata: {name: two}\n"
        "spec: {sku: B, stock: 0, startsAt: '2030-01-01T09:00:00Z', rateLimit: {burst: 9}}\n",
    )
    one, two = read_sale_file(path)
    assert (one.name, one.spec.stock, one.spec.per_user_limit) == ("one", 3, 1)
    assert two.spec.starts_at is not None and two.spec.starts_at.year == 2030
    assert two.spec.rate_limit.burst == 9 and two.spec.rate_limit.requests_per_second == 2


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{sku: A}", "spec.stock: Field required"),
        ("{sku: A, stock: -1}", "spec.stock: Input should be greater than or equal to 0 (got -1)"),
        ("{sku: A, stock: 1000000000000}", "spec.stock: Input should be less than or equal to"),
        (
            "{sku: A, stock: 1, paymentTimeoutSeconds: 99999999999}",
            "spec.paymentTimeoutSeconds: Input should be less than or equal to 2147483647",
        ),
        ('{sku: "A\\u0000", stock: 1}', "spec.sku: Value error, must be printable"),
        ("{sku: A, stock: 1, colour: red}", "spec.colour: Extra inputs are not permitted"),
        ("{sku: A, stock: 1, startsAt: tomorrow}", "spec.startsAt: Input should be a valid"),
        ("{sku: A, stock: 1, startsAt: '2030-01-01T09:00:00'}", "spec.startsAt:"),
        ("{sku: A, stock: 1, rateLimit: {burst: 0}}", "spec.rateLimit.burst:"),
        (
            "{sku: A, stock: 1, startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-01T00:00:00Z'}",
            "endsAt must be after startsAt",
        ),
        ("[1, 2]", "spec is missing or not a mapping"),
    ],
)
def test_bad_spec_names_the_document_and_field(tmp_path: Path, spec: str, expected: str) -> None:
    good = HEAD + "metadata: {name: good}\nspec: {sku: A, stock: 1}\n---\n"
    path = write(tmp_path, good + HEAD + f"metadata: {{name: bad}}\nspec: {spec}\n")
    with pytest.raises(SaleFileError) as caught:
        read_sale_file(path)
    message = str(caught.value)
    assert "document 2 (flashsale/bad)" in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: {sku: A, stock: 1\n", "not valid YAML"),
        ("", "no FlashSale documents"),
        ("- just a list\n", "expected a FlashSale mapping"),
        (HEAD + "spec: {sku: A, stock: 1}\n", "metadata.name must be"),
        (HEAD + "metadata: {name: ../etc}\nspec: {sku: A, stock: 1}\n", "metadata.name must be"),
        (HEAD + "metadata: {name: Big}\nspec: {sku: A, stock: 1}\n", "metadata.name must be"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n",
            "expected flashsale.dev/v1alpha1 FlashSale",
        ),
        (
            (HEAD + "metadata: {name: twin}\nspec: {sku: A, stock: 1}\n---\n") * 2,
            "defined twice: twin",
        ),
    ],
)
def test_bad_file(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SaleFileError, match=expected.replace(".", r"\.")):
        read_sale_file(write(tmp_path, text))

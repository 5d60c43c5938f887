from tests.conftest import Platform, auth, wait_for


async def test_buy_and_persist(platform: Platform, client, worker) -> None:
    sale = platform.sale(stock=3)
    r = await client.post(
        f"/v1/sales/{sale}/reservations", json={"quantity": 1}, headers=auth("alice")
    )
    assert r.status_code == 202, r.text
    wait_for(lambda: len(platform.orders(sale)) == 1)

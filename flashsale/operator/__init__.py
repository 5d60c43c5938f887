"""The Kubernetes operator (`flashsale operator`, kopf): FlashSale resources in, stock in
Redis, status and Events on the resource, sized API and worker Deployments out.

What it does on each event:

- create, update of `spec`, resume (operator start): parse the spec with `SaleSpec` and
  load it with `apply_sale`, the loader `flashsale sale apply` uses. Loading is idempotent:
  the same totals change nothing, a higher `stock` adds the difference once, a restart
  never resets stock. A bad spec, or one the loader refuses (stock below what is sold),
  gets `status.phase: Invalid`, False conditions and a Warning Event, then
  `kopf.PermanentError`; Redis or PostgreSQL away gets `Ready=False` and a retry.
- timer, every FLASHSALE_OPERATOR_REFRESH_SECONDS: phase (Scheduled, Active, SoldOut,
  Ended, Paused) and stock figures from Redis and SQL into `status`, written only when
  something changed; an Event on every phase change; the Prometheus gauges.
- delete (finalizer `flashsale.dev/cleanup`): close the sale in Redis so nothing more is
  accepted, wait until reservations already accepted are in SQL, then unlink every
  `fs:{<sale>}:*` key. Orders stay in SQL.
- scaling loop, every refresh and at once after a change: list the FlashSales, size the
  API and worker Deployments for the sales in their window (a lead time before
  `startsAt` until `endsAt`), baseline otherwise, and write the workers' pace (orders/s
  per worker) to the broker's Redis, where the workers read it; no sale: the key goes and
  each worker keeps its own FLASHSALE_ORDERS_PER_SECOND.
"""

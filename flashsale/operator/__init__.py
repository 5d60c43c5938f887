"""The Kubernetes operator (`flashsale operator`, kopf): FlashSale resources in, stock in
Redis, status and Events on the resource, sized API and worker Deployments out.

What it does on each event, and where:

- start (`run.py`): kopf settings (watch and request timeouts, annotations for its own
  bookkeeping), the Prometheus gauges (`metrics.py`), and the scaling loop as a task.
  Login (`kube.py`): the service account in a pod, else the kubeconfig, loaded once for
  kopf and for the operator's own client.
- create, update of `spec`, resume (operator start) (`handlers.py`, `sale_loaded`): parse
  the spec with `SaleSpec` and load it with `apply_sale`, the loader `flashsale sale
  apply` uses. Loading is idempotent: the same totals change nothing, a higher `stock`
  adds the difference once, a restart never resets stock. A bad spec, or one the loader
  refuses (stock below what is sold), gets `status.phase: Invalid`, False conditions and
  a Warning Event, then `kopf.PermanentError`; Redis or PostgreSQL away gets
  `Ready=False` and a retry. Then the scaling loop is woken.
- timer, every FLASHSALE_OPERATOR_REFRESH_SECONDS (`handlers.py`, `sale_refresh`): phase
  (Scheduled, Active, SoldOut, Ended, Paused) and stock figures from Redis and SQL into
  `status` (built by `status.py`), with the waiting room's figures, the draw's commitment
  and, once the sale has started, its seed; written only when something changed; an Event
  on every phase change; the Prometheus gauges.
- delete (`handlers.py`, `sale_deleted`; finalizer `flashsale.dev/cleanup`): close the
  sale in Redis so nothing more is accepted, wait until reservations already accepted are
  in SQL, then unlink every key of every segment. Orders stay in SQL. Then the scaling loop
  is woken.
- scaling loop (`scaling_loop.py`), every refresh and at once after a change: list the
  FlashSales (`kube.py`), work out the replicas and worker pace they ask for
  (`capacity.py`: pure functions), size the API and worker Deployments (baseline when no
  sale is in its window, from a lead time before `startsAt` until `endsAt`), and write
  the workers' pace (orders/s per worker) to the broker's Redis (`pace_setter.py`), where
  the workers read it (`flashsale/worker/pacing.py`); no sale: the key goes and each
  worker keeps its own FLASHSALE_ORDERS_PER_SECOND.
- stop (`run.py`): the scaling loop is cancelled and the client closed.

What every handler shares is built once in `context.py`; the operator's own settings
(FLASHSALE_OPERATOR_*) are in `settings.py`.
"""

"""PostgreSQL: the models (`models`), the engine and sessions (`engine`), the migrations.

One idiom for each kind of SQL:
- SQLAlchemy's 2.0 query builder on the models (`select`, `update`, `insert` of
  `Order`, `Sale`, `DeadLetter`) for statements about one table, as in `orders`, `sales`
  and `deadletters`;
- `text()` with `:name` parameters, held in module constants, for hand-written SQL that
  the builder would only obscure (several CTEs in one statement, row locks with SKIP
  LOCKED, `json_to_recordset`), as in `persist`, `reaper` and `figures`.
The legacy `Session.query` API and driver-level SQL strings are not used."""

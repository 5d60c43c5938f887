"""`flashsale bench`: the reservation path against the SQL row-lock design and against
the framework's and Redis's own ceilings, side by side in one run."""

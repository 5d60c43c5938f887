"""`flashsale demo`: a whole flash sale on the local platform, with a report."""

"""The Kubernetes operator: FlashSale resources in, stock in Redis, scaled Deployments out."""

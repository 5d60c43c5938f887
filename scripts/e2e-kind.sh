#!/usr/bin/env bash
# FlashSale end to end on a throwaway kind cluster: build the image and load it into the
# cluster, install the chart, apply examples/tv-drop.yaml (active at once), buy one unit
# through the API Service, check the order reaches PostgreSQL, pay it, and check that
# `kubectl get fs` shows the sale with the unit paid.
#
# Needs: a running Docker engine, kind, curl and python3. helm and kubectl are taken from
# FLASHSALE_K8S_BIN (the pinned ones that `make k8s-tools` unpacks) or from PATH.
# Settings: FLASHSALE_E2E_CLUSTER (flashsale-e2e), FLASHSALE_E2E_NAMESPACE (flashsale),
# FLASHSALE_E2E_PORT (18000), FLASHSALE_E2E_KEEP=1 keeps the cluster afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${FLASHSALE_E2E_CLUSTER:-flashsale-e2e}
NAMESPACE=${FLASHSALE_E2E_NAMESPACE:-flashsale}
PORT=${FLASHSALE_E2E_PORT:-18000}
KEEP=${FLASHSALE_E2E_KEEP:-0}
RELEASE=shop
IMAGE_TAG=e2e
SALE=tv-drop
API=deploy/$RELEASE-flashsale-api
if [[ -n "${FLASHSALE_K8S_BIN:-}" ]]; then PATH="$FLASHSALE_K8S_BIN:$PATH"; fi

say() { printf '\n== %s\n' "$*"; }
die() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in docker kind helm kubectl curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

# Retry a command until it succeeds, for at most $1 seconds.
retry() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}

forward_pid=""
cleanup() {
  if [[ -n "$forward_pid" ]]; then kill "$forward_pid" 2>/dev/null || true; fi
  if [[ "$KEEP" != 1 ]]; then
    say "deleting kind cluster $CLUSTER (FLASHSALE_E2E_KEEP=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

say "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

say "image flashsale:$IMAGE_TAG"
docker build --tag "flashsale:$IMAGE_TAG" .
kind load docker-image "flashsale:$IMAGE_TAG" --name "$CLUSTER"

say "helm install $RELEASE"
helm upgrade --install "$RELEASE" charts/flashsale \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
  --wait --timeout 10m
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 2m

say "sale $SALE"
kubectl --namespace "$NAMESPACE" apply -f "examples/$SALE.yaml"
phase() { kubectl --namespace "$NAMESPACE" get fs "$SALE" -o 'jsonpath={.status.phase}'; }
active() { [[ "$(phase)" == Active ]]; }
retry 120 active || die "sale $SALE is '$(phase)', not Active"

say "buy through the Service"
TOKEN=$(kubectl --namespace "$NAMESPACE" exec "$API" -- flashsale token alice)
kubectl --namespace "$NAMESPACE" port-forward "svc/$RELEASE-flashsale-api" "$PORT:80" >/dev/null &
forward_pid=$!
BASE=http://127.0.0.1:$PORT
retry 30 curl -fsS "$BASE/readyz" >/dev/null || die "API not reachable through port-forward"

# call METHOD PATH [JSON]: prints the body, fails unless the status is the expected one ($EXPECT).
call() {
  local out status
  out=$(mktemp)
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" "$BASE$2" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"})
  cat "$out"; rm -f "$out"
  [[ "$status" == "$EXPECT" ]] || { echo; die "$1 $2 answered $status, expected $EXPECT"; }
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

ORDER=$(EXPECT=202 call POST "/v1/sales/$SALE/reservations" '{"quantity": 1}' | field order_id)
echo "order $ORDER accepted"
persisted() { [[ "$(EXPECT=200 call GET "/v1/orders/$ORDER" | field status)" == pending_payment ]]; }
retry 60 persisted || die "order $ORDER never reached pending_payment (worker)"
STATUS=$(EXPECT=200 call POST "/v1/orders/$ORDER/payment" | field status)
[[ "$STATUS" == paid ]] || die "payment answered status $STATUS"
echo "order $ORDER paid"

say "kubectl get fs"
paid() { [[ "$(kubectl --namespace "$NAMESPACE" get fs "$SALE" -o 'jsonpath={.status.stock.paid}')" == 1 ]]; }
retry 60 paid || die "status.stock.paid of $SALE never reached 1"
kubectl --namespace "$NAMESPACE" get fs
kubectl --namespace "$NAMESPACE" get fs "$SALE" --no-headers | grep -E "^$SALE +TV-55-OLED +Active +999 +1 " \
  || die "kubectl get fs does not show $SALE Active with 999 remaining and 1 paid"

say "end to end: passed"

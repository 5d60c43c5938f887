{{/* Chart name, truncated to the 63 characters a label value may have. */}}
{{- define "flashsale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide name prefix: "<release>-<chart>", or the release name when it already contains the chart name. */}}
{{- define "flashsale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: "<fullname>-<component>". Call with (list $ "api"). */}}
{{- define "flashsale.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "flashsale.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "flashsale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "flashsale.labels" -}}
helm.sh/chart: {{ include "flashsale.chart" . }}
app.kubernetes.io/name: {{ include "flashsale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flashsale
{{- end }}

{{/* Labels of one component, call with (list $ "api"). */}}
{{- define "flashsale.componentLabels" -}}
{{ include "flashsale.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Selector labels of one component, call with (list $ "api"); never change once released. */}}
{{- define "flashsale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flashsale.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "flashsale.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "flashsale.secretName" -}}
{{- include "flashsale.fullname" . }}
{{- end }}

{{- define "flashsale.operatorServiceAccount" -}}
{{- include "flashsale.componentName" (list . "operator") }}
{{- end }}

{{/*
A generated secret value that survives upgrades: the value already stored in the release's
Secret when there is one (lookup), else the value given, else a new random one.
Call with (list $ "key" .Values.x.password).
*/}}
{{- define "flashsale.keptSecret" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $given := index . 2 }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "flashsale.secretName" $root) }}
{{- if $given }}
{{- $given }}
{{- else if and $existing (hasKey (default dict $existing.data) $key) }}
{{- index $existing.data $key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}

{{/*
"true" when stock lives in a Redis Cluster: the external Redis, marked as one or named by a
redis+cluster:// or rediss+cluster:// URL.
*/}}
{{- define "flashsale.redisCluster" -}}
{{- $external := .Values.redis.external }}
{{- if and (not .Values.redis.enabled) (or $external.cluster (regexMatch "^rediss?\\+cluster://" $external.url)) -}}
true
{{- end }}
{{- end }}

{{/* "true" when this release runs its own Redis: for stock, or as the broker only. */}}
{{- define "flashsale.bundledRedis" -}}
{{- if or .Values.redis.enabled .Values.broker.bundledRedis -}}
true
{{- end }}
{{- end }}

{{/*
Fail early, with a sentence, on value combinations the schema cannot express, and on those
it does (it is skipped by --skip-schema-validation).
*/}}
{{- define "flashsale.validate" -}}
{{- $external := .Values.redis.external }}
{{- $clusterUrl := `^rediss?\+cluster://([^/?#\s]*@)?(\[[0-9A-Fa-f:.]+\]|[^@/?#:,\[\]\s]+)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(,(\[[0-9A-Fa-f:.]+\]|[^@/?#:,\[\]\s]+)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?)*(/0?)?$` }}
{{- if and (regexMatch "^rediss?\\+cluster:" $external.url) (not (regexMatch $clusterUrl $external.url)) }}
{{- fail "redis.external.url: a Redis Cluster URL reads redis+cluster://[[user]:password@]host[:port][,host[:port]...] (rediss+cluster:// for TLS), with database 0 only and no query options" }}
{{- end }}
{{- if and (not .Values.redis.enabled) $external.cluster $external.url (not $external.existingSecret) (not (regexMatch "^rediss?\\+cluster://" $external.url)) }}
{{- fail "redis.external.cluster is true but redis.external.url is not a redis+cluster:// or rediss+cluster:// URL" }}
{{- end }}
{{- if include "flashsale.redisCluster" . }}
{{- if not (or .Values.broker.url .Values.broker.existingSecret .Values.broker.bundledRedis) }}
{{- fail "stock is in a Redis Cluster, which Celery cannot use as its broker: set broker.url, broker.existingSecret or broker.bundledRedis" }}
{{- end }}
{{- if and (hasKey .Values.settings "FLASHSALE_HANDOFF") (ne (toString (index .Values.settings "FLASHSALE_HANDOFF")) "publish") }}
{{- fail "stock is in a Redis Cluster: FLASHSALE_HANDOFF must be publish (the reserve script cannot push to a broker on another Redis)" }}
{{- end }}
{{- end }}
{{- if regexMatch "\\+cluster:" .Values.broker.url }}
{{- fail "broker.url must name one Redis (redis:// or rediss://): Celery cannot use a Redis Cluster as its broker" }}
{{- end }}
{{- if .Values.broker.bundledRedis }}
{{- if .Values.redis.enabled }}
{{- fail "broker.bundledRedis runs the bundled Redis as the broker of an external stock Redis: set redis.enabled false (the bundled stock Redis already is the broker)" }}
{{- end }}
{{- if or .Values.broker.url .Values.broker.existingSecret }}
{{- fail "broker.bundledRedis names the broker already: leave broker.url and broker.existingSecret empty" }}
{{- end }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) }}
{{- fail "redis.enabled is false: set redis.external.url or redis.external.existingSecret" }}
{{- end }}
{{- if and (not .Values.postgresql.enabled) (not .Values.postgresql.external.url) (not .Values.postgresql.external.existingSecret) }}
{{- fail "postgresql.enabled is false: set postgresql.external.url or postgresql.external.existingSecret" }}
{{- end }}
{{- if and .Values.api.ingress.enabled .Values.api.ingress.tls.enabled (not .Values.api.ingress.tls.secretName) }}
{{- fail "api.ingress.tls.enabled needs api.ingress.tls.secretName" }}
{{- end }}
{{- end }}

{{/* Where one setting comes from: a (secret name, key) pair. */}}
{{- define "flashsale.redisUrlRef" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
name: {{ .Values.redis.external.existingSecret }}
key: {{ .Values.redis.external.existingSecretKey }}
{{- else -}}
name: {{ include "flashsale.secretName" . }}
key: redis-url
{{- end }}
{{- end }}

{{- define "flashsale.databaseUrlRef" -}}
{{- if and (not .Values.postgresql.enabled) .Values.postgresql.external.existingSecret -}}
name: {{ .Values.postgresql.external.existingSecret }}
key: {{ .Values.postgresql.external.existingSecretKey }}
{{- else -}}
name: {{ include "flashsale.secretName" . }}
key: database-url
{{- end }}
{{- end }}

{{- define "flashsale.jwtSecretRef" -}}
{{- if .Values.jwt.existingSecret -}}
name: {{ .Values.jwt.existingSecret }}
key: {{ .Values.jwt.existingSecretKey }}
{{- else -}}
name: {{ include "flashsale.secretName" . }}
key: jwt-secret
{{- end }}
{{- end }}

{{/* Environment of every FlashSale container. */}}
{{- define "flashsale.env" -}}
- name: FLASHSALE_REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- include "flashsale.redisUrlRef" . | nindent 6 }}
- name: FLASHSALE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "flashsale.databaseUrlRef" . | nindent 6 }}
{{- if .Values.broker.existingSecret }}
- name: FLASHSALE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.broker.existingSecret }}
      key: {{ .Values.broker.existingSecretKey }}
{{- else if or .Values.broker.url .Values.broker.bundledRedis }}
- name: FLASHSALE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "flashsale.secretName" . }}
      key: broker-url
{{- end }}
{{- $cluster := include "flashsale.redisCluster" . }}
{{- if $cluster }}
# A Redis Cluster holds stock and the broker is another Redis: the API hands accepted
# reservations on after the reserve script (the outbox and the sweeper keep that lossless).
- name: FLASHSALE_HANDOFF
  value: publish
{{- end }}
# The root filesystem is read-only; anything local goes to the /tmp emptyDir.
- name: FLASHSALE_DATA_DIR
  value: /tmp/flashsale
{{- range $name, $value := .Values.settings }}
{{- if not (and $cluster (eq $name "FLASHSALE_HANDOFF")) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The JWT signing key: only the API (and `flashsale token` run in its pods) needs it. */}}
{{- define "flashsale.jwtEnv" -}}
- name: FLASHSALE_JWT_SECRET
  valueFrom:
    secretKeyRef:
      {{- include "flashsale.jwtSecretRef" . | nindent 6 }}
{{- end }}

{{/* Pod-level fields shared by every FlashSale pod. */}}
{{- define "flashsale.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The writable /tmp every FlashSale container gets (Prometheus multiprocess files, data dir). */}}
{{- define "flashsale.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "flashsale.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Service names of the bundled databases. */}}
{{- define "flashsale.redisHost" -}}
{{- include "flashsale.componentName" (list . "redis") }}
{{- end }}

{{- define "flashsale.postgresqlHost" -}}
{{- include "flashsale.componentName" (list . "postgresql") }}
{{- end }}

{{/* True when the chart's own Secret has anything to hold. */}}
{{- define "flashsale.needsSecret" -}}
{{- $redisUrl := and .Values.redis.external.url (not .Values.redis.external.existingSecret) }}
{{- $databaseUrl := and .Values.postgresql.external.url (not .Values.postgresql.external.existingSecret) }}
{{- $brokerUrl := and (or .Values.broker.url .Values.broker.bundledRedis) (not .Values.broker.existingSecret) }}
{{- if or (not .Values.jwt.existingSecret) (include "flashsale.bundledRedis" .) .Values.postgresql.enabled $redisUrl $databaseUrl $brokerUrl -}}
true
{{- end }}
{{- end }}

{{/*
Replicas of a Deployment the operator scales: what it runs now when it exists (so that an
upgrade in the middle of a sale does not scale it back down), else the baseline.
Call with (list $ "name" baseline).
*/}}
{{- define "flashsale.liveReplicas" -}}
{{- $root := index . 0 }}
{{- $live := lookup "apps/v1" "Deployment" $root.Release.Namespace (index . 1) }}
{{- if and $root.Values.operator.enabled $live $live.spec (hasKey $live.spec "replicas") }}
{{- $live.spec.replicas }}
{{- else }}
{{- index . 2 }}
{{- end }}
{{- end }}

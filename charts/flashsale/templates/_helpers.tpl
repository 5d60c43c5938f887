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

{{/* Fail early, with a sentence, on value combinations the schema cannot express. */}}
{{- define "flashsale.validate" -}}
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
{{- else if .Values.broker.url }}
- name: FLASHSALE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "flashsale.secretName" . }}
      key: broker-url
{{- end }}
# The root filesystem is read-only; anything local goes to the /tmp emptyDir.
- name: FLASHSALE_DATA_DIR
  value: /tmp/flashsale
{{- range $name, $value := .Values.settings }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
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
{{- $brokerUrl := and .Values.broker.url (not .Values.broker.existingSecret) }}
{{- if or (not .Values.jwt.existingSecret) .Values.redis.enabled .Values.postgresql.enabled $redisUrl $databaseUrl $brokerUrl -}}
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

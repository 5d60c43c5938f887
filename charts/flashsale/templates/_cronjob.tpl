{{/*
A CronJob running one `flashsale` command. Call with
(dict "root" $ "component" "reaper" "values" .Values.reaper "args" (list "reap")).
*/}}
{{- define "flashsale.cronjob" -}}
{{- $root := .root }}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "flashsale.componentName" (list $root .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "flashsale.componentLabels" (list $root .component) | nindent 4 }}
spec:
  schedule: {{ .values.schedule | quote }}
  # Runs are safe side by side, but one at a time is enough; a late run is skipped, not queued.
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 60
  successfulJobsHistoryLimit: 1
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 1
      activeDeadlineSeconds: {{ .values.activeDeadlineSeconds }}
      ttlSecondsAfterFinished: 600
      template:
        metadata:
          labels:
            {{- include "flashsale.componentLabels" (list $root .component) | nindent 12 }}
        spec:
          {{- include "flashsale.podCommon" $root | nindent 10 }}
          automountServiceAccountToken: false
          restartPolicy: Never
          containers:
            - name: {{ .component }}
              image: {{ include "flashsale.image" $root }}
              imagePullPolicy: {{ $root.Values.image.pullPolicy }}
              args:
                {{- toYaml .args | nindent 16 }}
              env:
                {{- include "flashsale.env" $root | nindent 16 }}
              securityContext:
                {{- toYaml $root.Values.securityContext | nindent 16 }}
              {{- with .values.resources }}
              resources:
                {{- toYaml . | nindent 16 }}
              {{- end }}
              volumeMounts:
                {{- include "flashsale.tmpMount" $root | nindent 16 }}
          volumes:
            {{- include "flashsale.tmpVolume" $root | nindent 12 }}
{{- end }}

{{- define "sluice.labels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "sluice.operatorSelector" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "sluice.operatorName" -}}
{{ .Release.Name }}-operator
{{- end -}}

{{- define "sluice.clusterName" -}}
{{ default .Release.Name .Values.cluster.name }}
{{- end -}}

{{/* The labels the operator puts on a cluster's broker pods. */}}
{{- define "sluice.brokerSelector" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ include "sluice.clusterName" . }}
app.kubernetes.io/component: broker
{{- end -}}

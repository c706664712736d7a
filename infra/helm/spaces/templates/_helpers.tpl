{{- define "spaces.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "spaces.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "spaces.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* the namespace the Spaces themselves run in: RBAC is granted there only */}}
{{- define "spaces.spacesNamespace" -}}
{{ .Values.spacesNamespace | default .Release.Namespace }}
{{- end -}}

{{/* the Secret the chart generates (bundled passwords); kept across upgrades through lookup */}}
{{- define "spaces.secretName" -}}{{ include "spaces.fullname" . }}-credentials{{- end -}}

{{- define "spaces.pgSecret" -}}
{{ .Values.postgresql.existingSecret | default (include "spaces.secretName" .) }}
{{- end -}}
{{- define "spaces.redisSecret" -}}
{{ .Values.redis.existingSecret | default (include "spaces.secretName" .) }}
{{- end -}}

{{/* a generated password: the one already in the cluster's Secret, else a new random one */}}
{{- define "spaces.password" -}}
{{- $ctx := index . 0 -}}{{- $key := index . 1 -}}
{{- $old := lookup "v1" "Secret" $ctx.Release.Namespace (include "spaces.secretName" $ctx) -}}
{{- if and $old (hasKey $old.data $key) -}}{{ index $old.data $key }}
{{- else -}}{{ randAlphaNum 32 | b64enc }}{{- end -}}
{{- end -}}

{{/* the labels of the pods that proxy to the Spaces (the NetworkPolicy lets only them in) */}}
{{- define "spaces.proxyLabels" -}}
{{ include "spaces.selector" . }}
{{- if .Values.roles.enabled }}
app.kubernetes.io/component: proxy
{{- end }}
{{- end -}}

{{/* the pods behind the main Service: the hubs, or the all-in-one process */}}
{{- define "spaces.hubSelector" -}}
{{ include "spaces.selector" . }}
{{- if .Values.roles.enabled }}
app.kubernetes.io/component: hub
{{- end }}
{{- end -}}

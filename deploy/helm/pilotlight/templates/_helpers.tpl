{{- define "pilotlight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pilotlight.fullname" -}}
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

{{- define "pilotlight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pilotlight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pilotlight.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pilotlight.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pilotlight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pilotlight.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pilotlight.secretName" -}}
{{- default (include "pilotlight.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The config file: the user's TOML, then the token blocks pointing at the mounted Secret. */}}
{{- define "pilotlight.config" -}}
{{ .Values.config }}
{{- range .Values.apiTokens }}

[[api.tokens]]
name = {{ .name | quote }}
role = {{ .role | quote }}
token_file = "/etc/pilotlight/secrets/token-{{ .name }}"
{{- end }}
{{- end }}

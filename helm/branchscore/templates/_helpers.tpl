{{/*
The services the binary knows, in a fixed order (the gateway first).
*/}}
{{- define "branchscore.serviceNames" -}}
gateway clients pipeline feedback kpi reporting
{{- end }}

{{/*
Names of the enabled services, space separated, in the fixed order.
*/}}
{{- define "branchscore.enabledServices" -}}
{{- $enabled := list }}
{{- range $name := splitList " " (include "branchscore.serviceNames" .) }}
{{- $svc := index $.Values.services $name | default dict }}
{{- if $svc.enabled }}{{ $enabled = append $enabled $name }}{{ end }}
{{- end }}
{{- join " " $enabled }}
{{- end }}

{{/*
Names of the enabled services that own a database.
*/}}
{{- define "branchscore.databaseServices" -}}
{{- $dbs := list }}
{{- range $name := splitList " " (include "branchscore.serviceNames" .) }}
{{- $svc := index $.Values.services $name | default dict }}
{{- if and $svc.enabled ($svc.database | default dict).enabled }}{{ $dbs = append $dbs $name }}{{ end }}
{{- end }}
{{- join " " $dbs }}
{{- end }}

{{- define "branchscore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix; service objects are "<fullname>-<service>", which must stay
within 63 characters, so the prefix is cut at 50.
*/}}
{{- define "branchscore.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "branchscore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every object.
*/}}
{{- define "branchscore.labels" -}}
helm.sh/chart: {{ include "branchscore.chart" . }}
app.kubernetes.io/name: {{ include "branchscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: branchscore
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one service's pods. Call with (dict "root" $ "name" "clients").
*/}}
{{- define "branchscore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "branchscore.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
All labels of one service's objects. Call with (dict "root" $ "name" "clients").
*/}}
{{- define "branchscore.serviceLabels" -}}
{{ include "branchscore.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
Kubernetes name of one service (Deployment, Service, HPA, PDB, NetworkPolicy).
*/}}
{{- define "branchscore.serviceFullname" -}}
{{- printf "%s-%s" (include "branchscore.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "branchscore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "branchscore.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "branchscore.configMapName" -}}
{{- printf "%s-config" (include "branchscore.fullname" .) }}
{{- end }}

{{/*
The Secret the services read: the existing one, or the one the chart creates.
*/}}
{{- define "branchscore.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "branchscore.fullname" .) }}
{{- end }}
{{- end }}

{{- define "branchscore.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Upper-case environment section of a service: clients -> CLIENTS.
*/}}
{{- define "branchscore.envSection" -}}
{{- upper . }}
{{- end }}

{{/*
Database URL of a service built from the postgres block, or the explicit one.
Call with (dict "root" $ "name" "clients").
*/}}
{{- define "branchscore.databaseUrl" -}}
{{- $explicit := index .root.Values.secrets.databaseUrls .name | default "" }}
{{- if $explicit }}
{{- $explicit }}
{{- else }}
{{- $pg := .root.Values.postgres }}
{{- $auth := $pg.user }}
{{- if $pg.password }}{{ $auth = printf "%s:%s" $pg.user $pg.password }}{{ end }}
{{- $url := printf "postgres://%s@%s:%v/%s%s" $auth $pg.host $pg.port $pg.databasePrefix .name }}
{{- if $pg.sslmode }}{{ $url = printf "%s?sslmode=%s" $url $pg.sslmode }}{{ end }}
{{- $url }}
{{- end }}
{{- end }}

{{/*
Secret keys for the DB URL of a service.
*/}}
{{- define "branchscore.databaseUrlKey" -}}
{{- printf "%s-database-url" . }}
{{- end }}

{{/*
The pod and container security contexts (shared by services and the migration Job).
*/}}
{{- define "branchscore.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "branchscore.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/*
One probe. Call with (dict "probe" $probe "port" 50051). Adds a native gRPC handler
on the service port unless the probe already names a handler.
*/}}
{{- define "branchscore.probe" -}}
{{- $probe := omit .probe "enabled" }}
{{- if not (or (hasKey $probe "grpc") (hasKey $probe "tcpSocket") (hasKey $probe "httpGet") (hasKey $probe "exec")) }}
{{- $_ := set $probe "grpc" (dict "port" (int .port) "service" "") }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/*
Which JWT key the services verify with: RS256 when a public key is given (or, with
secrets.existingSecret, unless secrets.jwtAlgorithm says HS256), else HS256. Exactly one
key is passed to the pods, and it must exist: a missing key fails the pod start instead
of silently falling back to the binary's built-in development secret.
*/}}
{{- define "branchscore.jwtAlgorithm" -}}
{{- if .Values.secrets.jwt.rs256PublicKeyPem }}RS256
{{- else if .Values.secrets.existingSecret }}{{ .Values.secrets.jwtAlgorithm | default "RS256" }}
{{- else }}HS256
{{- end }}
{{- end }}

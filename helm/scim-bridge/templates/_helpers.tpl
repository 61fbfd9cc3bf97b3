{{/* Names and labels. */}}
{{- define "scim-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "scim-bridge.fullname" -}}
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

{{- define "scim-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scim-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "scim-bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "scim-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "scim-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "scim-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "scim-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "scim-bridge.sqlite" -}}
{{- if eq .Values.database.type "sqlite" }}true{{ end }}
{{- end }}

{{/*
Secret references: each is the named existing Secret, else the chart-made Secret when it holds
that value, else empty (the setting is left out).
*/}}
{{- define "scim-bridge.secretFor" -}}
{{- $root := index . 0 }}{{ $existing := index . 1 }}{{ $quickstartValue := index . 2 }}
{{- if $existing }}{{ $existing }}
{{- else if and $root.Values.secret.create $quickstartValue }}{{ include "scim-bridge.fullname" $root }}
{{- end }}
{{- end }}

{{- define "scim-bridge.databaseSecret" -}}
{{- include "scim-bridge.secretFor" (list . .Values.database.postgres.existingSecret .Values.secret.databaseUrl) }}
{{- end }}

{{- define "scim-bridge.coderSecret" -}}
{{- include "scim-bridge.secretFor" (list . .Values.coder.existingSecret .Values.secret.coderToken) }}
{{- end }}

{{- define "scim-bridge.idpTokensSecret" -}}
{{- include "scim-bridge.secretFor" (list . .Values.idpTokens.existingSecret .Values.secret.idpTokens) }}
{{- end }}

{{- define "scim-bridge.jwtHs256Secret" -}}
{{- include "scim-bridge.secretFor" (list . .Values.jwt.hs256.existingSecret .Values.secret.jwtHs256Secret) }}
{{- end }}

{{- define "scim-bridge.oauthSigningKeySecret" -}}
{{- .Values.oauth.signingKey.existingSecret }}
{{- end }}

{{- define "scim-bridge.jwtKeysMounted" -}}
{{- if and .Values.jwt.keys.existingSecret (or .Values.jwt.keys.rs256KeyKey .Values.jwt.keys.jwksKey) }}true{{ end }}
{{- end }}

{{/* Refuse combinations that cannot work, with a message that says what to change. */}}
{{/* The Secret holding PostgreSQL's CA certificate, in PostgreSQL mode; empty when none. */}}
{{- define "scim-bridge.postgresRootCert" -}}
{{- if eq .Values.database.type "postgres" }}{{ .Values.database.postgres.rootCert.existingSecret }}{{ end }}
{{- end }}

{{- define "scim-bridge.validate" -}}
{{- if and (include "scim-bridge.sqlite" .) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "SQLite mode runs exactly one replica (replicaCount is %d): the database file lives on one ReadWriteOnce volume with one writer. Set replicaCount: 1, or use PostgreSQL (database.type: postgres) to run several replicas." (int .Values.replicaCount)) }}
{{- end }}
{{- if and (eq .Values.database.type "postgres") (not (include "scim-bridge.databaseSecret" .)) }}
{{- fail "PostgreSQL mode needs the database URL from a Secret: set database.postgres.existingSecret (and database.postgres.key), or secret.create with secret.databaseUrl for a quick start." }}
{{- end }}
{{- if and (hasPrefix "http://" .Values.coder.url) (not .Values.coder.allowHttp) (not (regexMatch "^http://(localhost|127\\.[0-9.]+|\\[::1\\])(:[0-9]+)?(/.*)?$" .Values.coder.url)) }}
{{- fail (printf "coder.url %s is plain http: the Coder owner token would cross the network unencrypted. Use https (Coder's final URL), or set coder.allowHttp: true for a Coder reached over an encrypted network." .Values.coder.url) }}
{{- end }}
{{- if and .Values.coder.url (not (include "scim-bridge.coderSecret" .)) }}
{{- fail "coder.url is set but no Coder token is: set coder.existingSecret (and coder.key) to a Secret holding an owner's session token, or secret.create with secret.coderToken for a quick start." }}
{{- end }}
{{- if and (not .Values.jwt.issuer) (or (include "scim-bridge.jwtHs256Secret" .) (include "scim-bridge.jwtKeysMounted" .)) }}
{{- fail "JWT keys are configured but jwt.issuer is empty: JWT bearer validation is enabled by jwt.issuer (SCIM_BRIDGE_JWT_ISSUER)." }}
{{- end }}
{{- if and .Values.ops.enabled (eq (int .Values.ops.port) 8080) }}
{{- fail "ops.port is 8080, the SCIM port: give the operations listener another port (default 9090), or set ops.enabled: false to serve /healthz, /readyz and /metrics on the SCIM port." }}
{{- end }}
{{- if and .Values.secret.create (not (or .Values.secret.idpTokens .Values.secret.coderToken .Values.secret.databaseUrl .Values.secret.jwtHs256Secret)) }}
{{- fail "secret.create is true but secret.idpTokens, secret.coderToken, secret.databaseUrl and secret.jwtHs256Secret are all empty." }}
{{- end }}
{{- end }}

{{/* The container port serving /healthz, /readyz and /metrics. */}}
{{- define "scim-bridge.opsPortName" -}}
{{- if .Values.ops.enabled }}ops{{ else }}http{{ end }}
{{- end }}

{{/* PromQL label matchers selecting this release's series (the labels a ServiceMonitor scrape gives). */}}
{{- define "scim-bridge.metricSelector" -}}
{{- default (printf "namespace=%q,job=%q" .Release.Namespace (include "scim-bridge.fullname" .)) .Values.metrics.prometheusRule.selector }}
{{- end }}

{{/* Where mounted files live inside the pod. */}}
{{- define "scim-bridge.secretsDir" -}}/etc/scim-bridge/secrets{{- end }}

{{/* Environment shared by the migration init container and the server. */}}
{{- define "scim-bridge.env" -}}
- name: SCIM_BRIDGE_LISTEN
  value: "0.0.0.0:8080"
{{- if .Values.ops.enabled }}
- name: SCIM_BRIDGE_OPS_LISTEN
  value: {{ printf "0.0.0.0:%d" (int .Values.ops.port) | quote }}
{{- end }}
- name: SCIM_BRIDGE_CONFIG
  value: /etc/scim-bridge/config/config.toml
{{- if include "scim-bridge.sqlite" . }}
- name: SCIM_BRIDGE_DATABASE_URL
  value: {{ printf "sqlite://%s" .Values.database.sqlite.path | quote }}
{{- else if eq .Values.database.postgres.urlFrom "env" }}
- name: SCIM_BRIDGE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "scim-bridge.databaseSecret" . }}
      key: {{ .Values.database.postgres.key }}
{{- else }}
- name: SCIM_BRIDGE_DATABASE_URL_FILE
  value: {{ include "scim-bridge.secretsDir" . }}/database/{{ .Values.database.postgres.key }}
{{- end }}
{{- with .Values.coder.url }}
- name: SCIM_BRIDGE_CODER_URL
  value: {{ . | quote }}
{{- end }}
{{- if include "scim-bridge.coderSecret" . }}
- name: SCIM_BRIDGE_CODER_TOKEN_FILE
  value: {{ include "scim-bridge.secretsDir" . }}/coder/{{ .Values.coder.key }}
{{- end }}
{{- if .Values.coder.allowHttp }}
- name: SCIM_BRIDGE_CODER_ALLOW_HTTP
  value: "true"
{{- end }}
{{- if not (kindIs "invalid" .Values.coder.rateLimit) }}
- name: SCIM_BRIDGE_CODER_RATE_LIMIT
  value: {{ .Values.coder.rateLimit | toString | quote }}
{{- end }}
{{- if include "scim-bridge.idpTokensSecret" . }}
- name: SCIM_BRIDGE_IDP_TOKENS_FILE
  value: {{ include "scim-bridge.secretsDir" . }}/idp-tokens/{{ .Values.idpTokens.key }}
{{- end }}
{{- with .Values.jwt.issuer }}
- name: SCIM_BRIDGE_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with .Values.jwt.audience }}
- name: SCIM_BRIDGE_JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- if include "scim-bridge.jwtHs256Secret" . }}
- name: SCIM_BRIDGE_JWT_HS256_SECRET_FILE
  value: {{ include "scim-bridge.secretsDir" . }}/jwt-hs256/{{ .Values.jwt.hs256.key }}
{{- end }}
{{- if include "scim-bridge.jwtKeysMounted" . }}
{{- with .Values.jwt.keys.rs256KeyKey }}
- name: SCIM_BRIDGE_JWT_RS256_KEY_FILE
  value: /etc/scim-bridge/jwt/{{ . }}
{{- end }}
{{- with .Values.jwt.keys.jwksKey }}
- name: SCIM_BRIDGE_JWT_JWKS_FILE
  value: /etc/scim-bridge/jwt/{{ . }}
{{- end }}
{{- end }}
{{- if include "scim-bridge.oauthSigningKeySecret" . }}
- name: SCIM_BRIDGE_OAUTH_SIGNING_KEY_FILE
  value: {{ include "scim-bridge.secretsDir" . }}/oauth-signing-key/{{ .Values.oauth.signingKey.key }}
{{- end }}
{{- if not (kindIs "invalid" .Values.oauth.tokenTtl) }}
- name: SCIM_BRIDGE_OAUTH_TOKEN_TTL
  value: {{ .Values.oauth.tokenTtl | toString | quote }}
{{- end }}
{{- $settings := .Values.settings }}
{{- $worker := $settings.worker }}
{{- range $name, $value := dict
      "SCIM_BRIDGE_BASE_URL" $settings.baseUrl
      "SCIM_BRIDGE_LOG_FORMAT" $settings.logFormat
      "SCIM_BRIDGE_LOG_LEVEL" $settings.logLevel
      "SCIM_BRIDGE_RATE_LIMIT" $settings.rateLimit
      "SCIM_BRIDGE_RATE_LIMIT_BURST" $settings.rateLimitBurst
      "SCIM_BRIDGE_MAX_BODY_BYTES" $settings.maxBodyBytes
      "SCIM_BRIDGE_BULK_MAX_OPERATIONS" $settings.bulkMaxOperations
      "SCIM_BRIDGE_BULK_MAX_PAYLOAD_BYTES" $settings.bulkMaxPayloadBytes
      "SCIM_BRIDGE_WORKER" $worker.enabled
      "SCIM_BRIDGE_WORKER_CONCURRENCY" $worker.concurrency
      "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN" $worker.concurrencyMin
      "SCIM_BRIDGE_MAX_ATTEMPTS" $worker.maxAttempts
      "SCIM_BRIDGE_DRIFT_INTERVAL" $worker.driftInterval }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts shared by the migration init container and the server. */}}
{{- define "scim-bridge.volumeMounts" -}}
- name: config
  mountPath: /etc/scim-bridge/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if include "scim-bridge.sqlite" . }}
- name: data
  mountPath: {{ dir .Values.database.sqlite.path }}
{{- else if ne .Values.database.postgres.urlFrom "env" }}
- name: database-url
  mountPath: {{ include "scim-bridge.secretsDir" . }}/database
  readOnly: true
{{- end }}
{{- if include "scim-bridge.postgresRootCert" . }}
- name: postgres-ca
  mountPath: /etc/scim-bridge/postgres-ca
  readOnly: true
{{- end }}
{{- if include "scim-bridge.coderSecret" . }}
- name: coder-token
  mountPath: {{ include "scim-bridge.secretsDir" . }}/coder
  readOnly: true
{{- end }}
{{- if include "scim-bridge.idpTokensSecret" . }}
- name: idp-tokens
  mountPath: {{ include "scim-bridge.secretsDir" . }}/idp-tokens
  readOnly: true
{{- end }}
{{- if include "scim-bridge.jwtHs256Secret" . }}
- name: jwt-hs256
  mountPath: {{ include "scim-bridge.secretsDir" . }}/jwt-hs256
  readOnly: true
{{- end }}
{{- if include "scim-bridge.jwtKeysMounted" . }}
- name: jwt-keys
  mountPath: /etc/scim-bridge/jwt
  readOnly: true
{{- end }}
{{- if include "scim-bridge.oauthSigningKeySecret" . }}
- name: oauth-signing-key
  mountPath: {{ include "scim-bridge.secretsDir" . }}/oauth-signing-key
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A volume projecting one key of a Secret, readable by the pod's fsGroup (the bridge's group) only. */}}
{{- define "scim-bridge.secretVolume" -}}
{{- $volume := index . 0 }}{{ $secret := index . 1 }}{{ $key := index . 2 -}}
- name: {{ $volume }}
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
    items:
      - key: {{ $key }}
        path: {{ $key }}
{{- end }}

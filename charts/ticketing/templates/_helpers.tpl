{{/* ---------- names and labels ---------- */}}

{{- define "ticketing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ticketing.fullname" -}}
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

{{/* Name of a component's objects: (dict "root" $ "component" "orders") */}}
{{- define "ticketing.componentName" -}}
{{- printf "%s-%s" (include "ticketing.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ticketing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ticketing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ticketing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ticketing.labels" -}}
helm.sh/chart: {{ include "ticketing.chart" . }}
{{ include "ticketing.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ticketing
{{- end }}

{{/* (dict "root" $ "component" "orders") */}}
{{- define "ticketing.componentSelectorLabels" -}}
{{ include "ticketing.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ticketing.componentLabels" -}}
{{ include "ticketing.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ticketing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ticketing.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ticketing.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* ---------- the components ----------
What the chart knows about each component. Every one runs `ticketing run <name>`
and listens on 8000: nameko services serve /healthz (liveness: the process
answers) and /readyz (readiness: broker and database reachable); the gateway
/api/healthz and /api/readyz; the frontend /healthz. `broker`: it talks to
RabbitMQ (the frontend only calls the gateway over HTTP). */}}
{{- define "ticketing.components" -}}
auth:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: [auth]
confirmation:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: [confirmation]
  sendgrid: true
  mailOutbox: true
expiration:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: []
frontend:
  kind: web
  liveness: /healthz
  readiness: /healthz
  databases: []
gateway:
  kind: web
  broker: true
  liveness: /api/healthz
  readiness: /api/readyz
  databases: []
orders:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: [orders]
payments:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: [payments]
  stripe: true
tickets:
  kind: service
  broker: true
  liveness: /healthz
  readiness: /readyz
  databases: [tickets]
{{- end }}

{{/* The services that own a database, in migration order. */}}
{{- define "ticketing.databaseServices" -}}
[auth, tickets, orders, payments, confirmation]
{{- end }}

{{/* Enabled services that own a database (what the migration Job migrates). */}}
{{- define "ticketing.migratedServices" -}}
{{- $out := list }}
{{- range $svc := (include "ticketing.databaseServices" . | fromYamlArray) }}
{{- if (index $.Values $svc).enabled }}
{{- $out = append $out $svc }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* ---------- the broker's users ---------- */}}

{{/* The components with a broker user of their own (services/common/broker_users.COMPONENTS). */}}
{{- define "ticketing.brokerComponents" -}}
[auth, tickets, orders, expiration, payments, confirmation, gateway]
{{- end }}

{{/* A component's broker user name. (dict "root" $ "component" "orders") */}}
{{- define "ticketing.brokerUser" -}}
{{- printf "%s%s" .root.Values.rabbitmq.perComponentUsers.usernamePrefix .component }}
{{- end }}

{{/*
The components' broker passwords the chart holds, as YAML {<COMPONENT>_AMQP_PASSWORD: base64}
(empty with perComponentUsers.existingSecret): from values, else the live Secret's (upgrades),
else generated (for the in-chart broker, like its administrator's, or with secrets.generate). Computed once per render and kept on the root context, so the release's
Secret and the Job's hook Secret carry the same generated passwords.
*/}}
{{- define "ticketing.brokerPasswords" -}}
{{- if not (hasKey . "ticketingBrokerPasswords") }}
{{- $out := dict }}
{{- $u := .Values.rabbitmq.perComponentUsers }}
{{- if and $u.enabled (not $u.existingSecret) }}
{{- $live := lookup "v1" "Secret" .Release.Namespace (include "ticketing.fullname" .) | default dict }}
{{- $liveData := get $live "data" | default dict }}
{{- range $c := (include "ticketing.brokerComponents" . | fromYamlArray) }}
{{- $key := printf "%s_AMQP_PASSWORD" (upper $c) }}
{{- $given := get ($u.passwords | default dict) $c }}
{{- if $given }}
{{- $_ := set $out $key ($given | toString | b64enc) }}
{{- else if get $liveData $key }}
{{- $_ := set $out $key (get $liveData $key) }}
{{- else if or $.Values.secrets.generate $.Values.rabbitmq.inCluster.enabled }}
{{- $_ := set $out $key (randAlphaNum 32 | b64enc) }}
{{- else }}
{{- fail (printf "rabbitmq.perComponentUsers: %s's broker password is required: set rabbitmq.perComponentUsers.existingSecret to a Secret you created with the keys %s (or rabbitmq.perComponentUsers.passwords.%s), or disable rabbitmq.perComponentUsers" $c (include "ticketing.brokerPasswordKeys" $) $c) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set . "ticketingBrokerPasswords" $out }}
{{- end }}
{{- toYaml (get . "ticketingBrokerPasswords") }}
{{- end }}

{{- define "ticketing.brokerPasswordKeys" -}}
{{- $keys := list }}
{{- range $c := (include "ticketing.brokerComponents" . | fromYamlArray) }}
{{- $keys = append $keys (printf "%s_AMQP_PASSWORD" (upper $c)) }}
{{- end }}
{{- join ", " $keys }}
{{- end }}

{{/* The Secret holding a component's broker password (pods: the release's; the Job: its hook Secret).
(dict "root" $ "chartSecret" name) */}}
{{- define "ticketing.brokerPasswordSecret" -}}
{{- .root.Values.rabbitmq.perComponentUsers.existingSecret | default .chartSecret }}
{{- end }}

{{/* Where the components connect, without credentials: a list of scheme://host:port. */}}
{{- define "ticketing.brokerAddresses" -}}
{{- $r := .Values.rabbitmq }}
{{- if $r.inCluster.enabled }}
{{- toYaml (list (printf "amqp://%s-rabbitmq:5672" (include "ticketing.fullname" .))) }}
{{- else }}
{{- if not $r.external.addresses }}
{{- fail "rabbitmq.external.addresses: set where the components connect (amqps://host:5671, several separated by ';'), needed with rabbitmq.perComponentUsers; or disable rabbitmq.perComponentUsers and give one AMQP_URI (rabbitmq.external.existingSecret or uri)" }}
{{- end }}
{{- toYaml (splitList ";" (nospace $r.external.addresses)) }}
{{- end }}
{{- end }}

{{- define "ticketing.brokerVhost" -}}
{{- ternary "/" (.Values.rabbitmq.external.vhost | default "/") .Values.rabbitmq.inCluster.enabled }}
{{- end }}

{{/* A component's AMQP_URI with its own user; the password is expanded by Kubernetes from
$(<COMPONENT>_AMQP_PASSWORD). (dict "root" $ "component" "orders") */}}
{{- define "ticketing.brokerUri" -}}
{{- $vhost := include "ticketing.brokerVhost" .root }}
{{- $path := ternary "/" (printf "/%s" ($vhost | urlquery)) (eq $vhost "/") }}
{{- $cred := printf "%s:$(%s_AMQP_PASSWORD)@" (include "ticketing.brokerUser" .) (upper .component) }}
{{- $uris := list }}
{{- range $address := (include "ticketing.brokerAddresses" .root | fromYamlArray) }}
{{- $parts := splitn "://" 2 $address }}
{{- $uris = append $uris (printf "%s://%s%s%s" $parts._0 $cred $parts._1 $path) }}
{{- end }}
{{- join ";" $uris }}
{{- end }}

{{/* ---------- configuration ---------- */}}

{{- define "ticketing.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) .Values.ingress.host }}
{{- end }}
{{- end }}

{{/* Non-secret environment shared by every component (the ConfigMap's data). */}}
{{- define "ticketing.configData" -}}
TICKETING_ENV: {{ .Values.config.environment | quote }}
PSYCOPG_WAIT_FUNC: "wait_select"
HOST: "0.0.0.0"
PORT: "8000"
HEALTH_PORT: "8000"
METRICS_PORT: "9100"
VAR_DIR: "/var/lib/ticketing"
MAIL_OUTBOX_DIR: "/var/lib/ticketing/mail"
PUBLIC_URL: {{ include "ticketing.publicUrl" . | quote }}
GATEWAY_URL: {{ printf "http://%s:%v" (include "ticketing.componentName" (dict "root" . "component" "gateway")) .Values.gateway.service.port | quote }}
EXPIRATION_WINDOW_SECONDS: {{ .Values.config.expirationWindowSeconds | toString | quote }}
QUEUE_TYPE: {{ .Values.config.queueType | default "classic" | quote }}
ACCESS_TOKEN_TTL: {{ .Values.config.accessTokenTtl | toString | quote }}
REFRESH_TOKEN_TTL: {{ .Values.config.refreshTokenTtl | toString | quote }}
MAIL_FROM: {{ .Values.config.mailFrom | quote }}
PROXY_COUNT: {{ .Values.config.proxyCount | toString | quote }}
{{- with .Values.config.stripePublishableKey }}
STRIPE_PUBLISHABLE_KEY: {{ . | quote }}
{{- end }}
{{- range $k, $v := .Values.config.extra }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/* ---------- secrets ---------- */}}

{{/* The application secrets: values key -> environment variable. */}}
{{- define "ticketing.appSecrets" -}}
jwtPrivateKey: JWT_PRIVATE_KEY
jwtPublicKey: JWT_PUBLIC_KEY
secretKey: SECRET_KEY
stripeKey: STRIPE_KEY
sendgridApiKey: SENDGRID_API_KEY
{{- end }}

{{/*
Where an application secret comes from, as YAML {name, key}; empty when unset.
(dict "root" $ "item" "jwtPrivateKey" "chartSecret" <name of the chart-made Secret>)
*/}}
{{- define "ticketing.secretSource" -}}
{{- $env := index (include "ticketing.appSecrets" . | fromYaml) .item }}
{{- $s := index .root.Values.secrets .item }}
{{- $generatable := has .item (list "jwtPrivateKey" "jwtPublicKey" "secretKey") }}
{{- if $s.existingSecret }}
name: {{ $s.existingSecret }}
key: {{ $s.existingSecretKey | default $env }}
{{- else if or $s.value (and $generatable .root.Values.secrets.generate) }}
name: {{ .chartSecret }}
key: {{ $env }}
{{- else if $s.required }}
{{- fail (printf "secrets.%s is required: set secrets.%s.existingSecret to a Secret you created with the key %s (or secrets.%s.value)" .item .item $env .item) }}
{{- end }}
{{- end }}

{{/*
The data of the Secret the chart creates: every secret given as a value or
generated. Generated values are read back from the live Secret on upgrade so
they stay the same.
*/}}
{{- define "ticketing.secretData" -}}
{{- $root := . }}
{{- $live := lookup "v1" "Secret" .Release.Namespace (include "ticketing.fullname" .) | default dict }}
{{- $liveData := get $live "data" | default dict }}
{{- /* the token key pair is generated together: an Ed25519 key and a certificate of it
       (the gateway reads the public key from the certificate) */}}
{{- $pair := dict "JWT_PRIVATE_KEY" (get $liveData "JWT_PRIVATE_KEY") "JWT_PUBLIC_KEY" (get $liveData "JWT_PUBLIC_KEY") }}
{{- if not (and $pair.JWT_PRIVATE_KEY $pair.JWT_PUBLIC_KEY) }}
{{- $key := genPrivateKey "ed25519" }}
{{- $cert := genSelfSignedCertWithKey "ticketing-auth" nil nil 36500 $key }}
{{- $pair = dict "JWT_PRIVATE_KEY" ($key | b64enc) "JWT_PUBLIC_KEY" ($cert.Cert | b64enc) }}
{{- end }}
{{- range $item, $env := (include "ticketing.appSecrets" . | fromYaml) }}
{{- $s := index $root.Values.secrets $item }}
{{- if not $s.existingSecret }}
{{- if $s.value }}
{{ $env }}: {{ $s.value | toString | b64enc | quote }}
{{- else if and $root.Values.secrets.generate (has $item (list "jwtPrivateKey" "jwtPublicKey")) }}
{{ $env }}: {{ index $pair $env | quote }}
{{- else if and $root.Values.secrets.generate (eq $item "secretKey") }}
{{ $env }}: {{ get $liveData $env | default (randAlphaNum 48 | b64enc) | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.rabbitmq.inCluster.enabled }}
RABBITMQ_PASSWORD: {{ .Values.rabbitmq.inCluster.password | default (get $liveData "RABBITMQ_PASSWORD" | b64dec) | default (randAlphaNum 32) | b64enc | quote }}
{{- else if and (not .Values.rabbitmq.perComponentUsers.enabled) (not .Values.rabbitmq.external.existingSecret) .Values.rabbitmq.external.uri }}
AMQP_URI: {{ .Values.rabbitmq.external.uri | b64enc | quote }}
{{- end }}
{{- range $key, $value := (include "ticketing.brokerPasswords" . | fromYaml) }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- if .Values.postgresql.inCluster.enabled }}
POSTGRES_PASSWORD: {{ .Values.postgresql.inCluster.password | default (get $liveData "POSTGRES_PASSWORD" | b64dec) | default (randAlphaNum 32) | b64enc | quote }}
{{- range $svc := (include "ticketing.databaseServices" . | fromYamlArray) }}
{{- $key := printf "%s_DB_PASSWORD" (upper $svc) }}
{{ $key }}: {{ get $liveData $key | default (randAlphaNum 32 | b64enc) | quote }}
{{- end }}
{{- else if not .Values.postgresql.external.existingSecret }}
{{- range $svc := (include "ticketing.databaseServices" . | fromYamlArray) }}
{{- with (index $root.Values.postgresql.external.urls $svc) }}
{{ printf "%s_DATABASE_URL" (upper $svc) }}: {{ . | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------- a container's environment ----------
(dict "root" $ "spec" <component spec> "component" name "chartSecret" name "amqp" bool)
amqp: the component talks to the broker (its own user with perComponentUsers, else the one shared user).
Connection URLs are set per container (not in the ConfigMap) so each service
sees only its own database and passwords come from Secrets: Kubernetes expands
$(VAR) from the variables listed before it. */}}
{{- define "ticketing.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $fullname := include "ticketing.fullname" $root }}
{{- $chartSecret := .chartSecret }}
{{- if and .amqp $v.rabbitmq.perComponentUsers.enabled }}
{{- /* its own broker user: only its own password */}}
- name: {{ upper .component }}_AMQP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ticketing.brokerPasswordSecret" (dict "root" $root "chartSecret" $chartSecret) }}
      key: {{ upper .component }}_AMQP_PASSWORD
- name: AMQP_URI
  value: {{ include "ticketing.brokerUri" (dict "root" $root "component" .component) | quote }}
{{- else if .amqp }}
{{- if $v.rabbitmq.inCluster.enabled }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $chartSecret }}
      key: RABBITMQ_PASSWORD
- name: AMQP_URI
  value: {{ printf "amqp://%s:$(RABBITMQ_PASSWORD)@%s-rabbitmq:5672/" $v.rabbitmq.inCluster.username $fullname | quote }}
{{- else }}
{{- if not (or $v.rabbitmq.external.existingSecret $v.rabbitmq.external.uri) }}
{{- fail "rabbitmq.external: set existingSecret (a Secret with the key AMQP_URI) or uri, or enable rabbitmq.inCluster" }}
{{- end }}
- name: AMQP_URI
  valueFrom:
    secretKeyRef:
{{- if $v.rabbitmq.external.existingSecret }}
      name: {{ $v.rabbitmq.external.existingSecret }}
      key: {{ $v.rabbitmq.external.existingSecretKey | default "AMQP_URI" }}
{{- else }}
      name: {{ $chartSecret }}
      key: AMQP_URI
{{- end }}
{{- end }}
{{- end }}
{{- if .spec.databases }}
{{- range $svc := .spec.databases }}
{{- $envName := printf "%s_DATABASE_URL" (upper $svc) }}
{{- if $v.postgresql.inCluster.enabled }}
{{- /* each service connects as its own role, owner of its database only */}}
- name: {{ upper $svc }}_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $chartSecret }}
      key: {{ upper $svc }}_DB_PASSWORD
{{- end }}
- name: {{ $envName }}
{{- if $v.postgresql.inCluster.enabled }}
  value: {{ printf "postgresql+psycopg://ticketing_%s:$(%s_DB_PASSWORD)@%s-postgresql:5432/ticketing_%s" $svc (upper $svc) $fullname $svc | quote }}
{{- else }}
{{- if not (or $v.postgresql.external.existingSecret (index $v.postgresql.external.urls $svc)) }}
{{- fail (printf "postgresql.external: set existingSecret (a Secret with the key %s) or urls.%s, or enable postgresql.inCluster" $envName $svc) }}
{{- end }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.postgresql.external.existingSecret | default $chartSecret }}
      key: {{ $envName }}
{{- end }}
{{- end }}
{{- end }}
{{- /* each pod gets only its own secrets: the signing key only auth, the verifying key the
       gateway, the session key the frontend, the processor keys payments and confirmation */}}
{{- $wanted := list }}
{{- if eq .component "auth" }}{{ $wanted = append $wanted "jwtPrivateKey" }}{{ end }}
{{- if eq .component "gateway" }}{{ $wanted = append $wanted "jwtPublicKey" }}{{ end }}
{{- if eq .component "frontend" }}{{ $wanted = append $wanted "secretKey" }}{{ end }}
{{- if .spec.stripe }}{{ $wanted = append $wanted "stripeKey" }}{{ end }}
{{- if .spec.sendgrid }}{{ $wanted = append $wanted "sendgridApiKey" }}{{ end }}
{{- $envNames := include "ticketing.appSecrets" $root | fromYaml }}
{{- range $item := $wanted }}
{{- $src := include "ticketing.secretSource" (dict "root" $root "item" $item "chartSecret" $chartSecret) | fromYaml }}
{{- if $src }}
- name: {{ index $envNames $item }}
  valueFrom:
    secretKeyRef:
      name: {{ $src.name }}
      key: {{ $src.key }}
{{- end }}
{{- end }}
{{- with .component }}
{{- range $k, $val := (index $v . "env" | default dict) }}
- name: {{ $k }}
  value: {{ $val | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------- security ---------- */}}

{{- define "ticketing.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "ticketing.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/* Migrations run as a hook: before install/upgrade, except that a fresh
in-chart PostgreSQL exists only after install. */}}
{{- define "ticketing.migrationHook" -}}
{{- if .Values.migrations.hook }}
{{- .Values.migrations.hook }}
{{- else if .Values.postgresql.inCluster.enabled }}
{{- "post-install,pre-upgrade" }}
{{- else }}
{{- "pre-install,pre-upgrade" }}
{{- end }}
{{- end }}

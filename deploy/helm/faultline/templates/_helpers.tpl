{{/*
Names. The release name alone when it already says faultline, so a release
called "faultline" makes faultline-analyzer, faultline-injector, ...
*/}}
{{- define "faultline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "faultline.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object; dict root, component. */}}
{{- define "faultline.labels" -}}
{{ include "faultline.selectorLabels" . }}
app.kubernetes.io/part-of: faultline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/*
The roles: values key, component name (also the suffix of every object of
the role) and the faultline subcommand it runs.
*/}}
{{- define "faultline.roles" -}}
collectorAudit: {component: collector-audit, args: [collect, audit-webhook]}
collectorEvents: {component: collector-events, args: [collect, events]}
collectorMetrics: {component: collector-metrics, args: [collect, metrics]}
analyzer: {component: analyzer, args: [analyze]}
indexer: {component: indexer, args: [index]}
injector: {component: injector, args: [injector]}
{{- end -}}

{{/* "true" when the role of key talks to the Kubernetes API; dict root, key. */}}
{{- define "faultline.needsAPI" -}}
{{- $v := .root.Values -}}
{{- if or (eq .key "collectorEvents") (eq .key "injector") -}}
true
{{- else if and (eq .key "collectorMetrics") $v.collectorMetrics.podDiscovery.enabled -}}
true
{{- else if and (eq .key "analyzer") $v.analyzer.readCluster.namespaces -}}
true
{{- end -}}
{{- end -}}

{{- define "faultline.image" -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag | default .appVersion }}
{{- end -}}
{{- end -}}

{{/* The bus: the external cluster, else the in-cluster server. */}}
{{- define "faultline.natsURLs" -}}
{{- $v := .Values.nats -}}
{{- if $v.urls -}}
{{- if $v.inCluster.enabled -}}
{{- fail "nats.urls is set: set nats.inCluster.enabled=false as well (one bus)" -}}
{{- end -}}
{{- toYaml $v.urls -}}
{{- else if $v.inCluster.enabled -}}
{{- list (printf "nats://%s-nats.%s.svc:4222" (include "faultline.fullname" .) .Release.Namespace) | toYaml -}}
{{- else -}}
{{- fail "no bus: set nats.urls (an external NATS JetStream cluster) or nats.inCluster.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* Mount points of Secrets and ConfigMaps; the config files name them. */}}
{{- define "faultline.paths" -}}
config: /etc/faultline/config
nats: /etc/faultline/nats
es: /etc/faultline/es
webhook: /etc/faultline/audit-webhook
ops: /etc/faultline/ops
rules: /etc/faultline/rules
{{- end -}}

{{/*
One role's faultline.yaml; dict root, key. Only what the role uses is in
it, because every file a configuration names must exist at start and each
role mounts only its own Secrets.
*/}}
{{- define "faultline.config" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $key := .key -}}
{{- $paths := include "faultline.paths" . | fromYaml -}}
{{- $full := include "faultline.fullname" $root -}}
{{- $http := dict "listen" (printf ":%d" (int $v.ops.port)) -}}
{{- if $v.ops.metricsToken.secretName -}}
{{- $_ := set $http "metrics_token_file" (printf "%s/%s" $paths.ops $v.ops.metricsToken.key) -}}
{{- end -}}
{{- $bus := dict "urls" (include "faultline.natsURLs" $root | fromYamlArray) -}}
{{- if $v.nats.urls -}}
{{- $_ := set $bus "replicas" (int $v.nats.streamReplicas) -}}
{{- if and $v.nats.credentialsSecret.name $v.nats.nkeySeedSecret.name -}}
{{- fail "nats: set credentialsSecret or nkeySeedSecret, not both" -}}
{{- end -}}
{{- if $v.nats.credentialsSecret.name -}}
{{- $_ := set $bus "creds_file" (printf "%s/%s" $paths.nats $v.nats.credentialsSecret.key) -}}
{{- end -}}
{{- if $v.nats.nkeySeedSecret.name -}}
{{- $_ := set $bus "nkey_seed_file" (printf "%s/%s" $paths.nats $v.nats.nkeySeedSecret.key) -}}
{{- end -}}
{{- if $v.nats.tls.caSecret.name -}}
{{- $_ := set $bus "ca_file" (printf "%s/%s" $paths.nats $v.nats.tls.caSecret.key) -}}
{{- end -}}
{{- if $v.nats.tls.clientCertSecret -}}
{{- $_ := set $bus "cert_file" (printf "%s/tls.crt" $paths.nats) -}}
{{- $_ := set $bus "key_file" (printf "%s/tls.key" $paths.nats) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $bus "replicas" 1 -}}
{{- end -}}
{{- $cfg := dict "cluster" $v.clusterName "log" (dict "level" $v.log.level "format" $v.log.format) "http" $http "bus" $bus -}}
{{- if eq $key "collectorAudit" -}}
{{- $w := $v.auditWebhook -}}
{{- if not (or $w.tokenSecret.name $w.clientCASecret.name) -}}
{{- fail "auditWebhook: set tokenSecret.name and/or clientCASecret.name (the API server must authenticate)" -}}
{{- end -}}
{{- $aw := dict "enabled" true "listen" ":9443" "tls_cert_file" (printf "%s/tls.crt" $paths.webhook) "tls_key_file" (printf "%s/tls.key" $paths.webhook) -}}
{{- if $w.tokenSecret.name -}}
{{- $_ := set $aw "token_file" (printf "%s/tokens" $paths.webhook) -}}
{{- end -}}
{{- if $w.clientCASecret.name -}}
{{- $_ := set $aw "client_ca_file" (printf "%s/client-ca.crt" $paths.webhook) -}}
{{- $_ := set $aw "client_names" $w.clientNames -}}
{{- end -}}
{{- $_ := set $cfg "collectors" (dict "audit_webhook" $aw) -}}
{{- else if eq $key "collectorEvents" -}}
{{- $le := dict "enabled" true "lease_name" (printf "%s-collector-events" $full) "lease_namespace" $root.Release.Namespace -}}
{{- $_ := set $cfg "collectors" (dict "events" (dict "enabled" true "namespaces" $v.collectorEvents.namespaces "leader_election" $le)) -}}
{{- else if eq $key "collectorMetrics" -}}
{{- $pd := $v.collectorMetrics.podDiscovery -}}
{{- $m := dict "enabled" true "scrape" (dict "kubernetes_pods" (dict "enabled" $pd.enabled "namespaces" $pd.namespaces "label_selector" $pd.labelSelector)) -}}
{{- if $v.prometheus.url -}}
{{- $_ := set $m "promql" (dict "url" $v.prometheus.url) -}}
{{- end -}}
{{- $_ := set $cfg "collectors" (dict "metrics" $m) -}}
{{- else if eq $key "analyzer" -}}
{{- $injectorUser := printf "system:serviceaccount:%s:%s-injector" $root.Release.Namespace $full -}}
{{- $a := dict "chaos" (dict "injector_users" (list $injectorUser)) "steadystate" (dict "read_cluster" (not (not $v.analyzer.readCluster.namespaces))) -}}
{{- if $v.analyzer.rules -}}
{{- $_ := set $a "rules" (dict "dirs" (list $paths.rules)) -}}
{{- end -}}
{{- $_ := set $cfg "analyzers" $a -}}
{{- if $v.prometheus.url -}}
{{- $_ := set $cfg "collectors" (dict "metrics" (dict "promql" (dict "url" $v.prometheus.url))) -}}
{{- end -}}
{{- else if eq $key "indexer" -}}
{{- $es := $v.elasticsearch -}}
{{- if not $es.urls -}}
{{- fail "indexer.enabled needs elasticsearch.urls" -}}
{{- end -}}
{{- if and $es.apiKeySecret.name $es.basicAuth.username -}}
{{- fail "elasticsearch: set apiKeySecret or basicAuth, not both" -}}
{{- end -}}
{{- $e := dict "urls" $es.urls -}}
{{- if $es.apiKeySecret.name -}}
{{- $_ := set $e "api_key_file" (printf "%s/%s" $paths.es $es.apiKeySecret.key) -}}
{{- end -}}
{{- if $es.basicAuth.username -}}
{{- $_ := set $e "username" $es.basicAuth.username -}}
{{- $_ := set $e "password_file" (printf "%s/%s" $paths.es $es.basicAuth.passwordSecret.key) -}}
{{- end -}}
{{- if $es.caSecret.name -}}
{{- $_ := set $e "ca_file" (printf "%s/%s" $paths.es $es.caSecret.key) -}}
{{- end -}}
{{- $_ := set $cfg "sinks" (dict "elasticsearch" $e) -}}
{{- else if eq $key "injector" -}}
{{- range $v.injector.allowedNamespaces -}}
{{- if contains "*" . -}}
{{- fail (printf "injector.allowedNamespaces: %q: list namespaces by name (each gets a RoleBinding), not globs" .) -}}
{{- end -}}
{{- if eq . $root.Release.Namespace -}}
{{- fail "injector.allowedNamespaces: Faultline's own namespace is always protected" -}}
{{- end -}}
{{- end -}}
{{- $g := dict "allowed_namespaces" $v.injector.allowedNamespaces "own_namespace" $root.Release.Namespace "trusted_keys" $v.injector.trustedKeys -}}
{{- $_ := set $cfg "injectors" (dict "guard" $g) -}}
{{- end -}}
{{- $cfg = mustMergeOverwrite $cfg (deepCopy $v.config) (deepCopy (index $v $key).config) -}}
{{- toYaml $cfg -}}
{{- end -}}

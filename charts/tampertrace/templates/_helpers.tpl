{{/* Names and labels shared by every template. */}}
{{- define "tampertrace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "root" $ "name" "face-detection") */}}
{{- define "tampertrace.componentName" -}}
{{- printf "%s-%s" (include "tampertrace.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tampertrace.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "tampertrace.labels" -}}
{{ include "tampertrace.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tampertrace
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The image of a component: the GPU variant when it asks for a GPU. (dict "root" $ "c" $component) */}}
{{- define "tampertrace.image" -}}
{{- $img := .root.Values.image -}}
{{- $tag := $img.tag | default .root.Chart.AppVersion -}}
{{- if gt (int .c.gpu) 0 }}{{ $tag = printf "%s%s" $tag $img.gpuTagSuffix }}{{ end -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}

{{/* Connection settings, falling back to the bundled subcharts. */}}
{{- define "tampertrace.kafkaBrokers" -}}
{{- if .Values.connections.kafka.brokers -}}{{ .Values.connections.kafka.brokers }}
{{- else if .Values.kafka.enabled -}}{{ printf "%s-kafka:9092" .Release.Name }}
{{- else -}}{{ fail "connections.kafka.brokers is required when the bundled Kafka is disabled (kafka.enabled=false)" }}
{{- end -}}
{{- end -}}

{{- define "tampertrace.s3Endpoint" -}}
{{- if .Values.connections.s3.endpoint -}}{{ .Values.connections.s3.endpoint }}
{{- else if .Values.minio.enabled -}}{{ printf "http://%s-minio:9000" .Release.Name }}
{{- else -}}{{ fail "connections.s3.endpoint is required when the bundled MinIO is disabled (minio.enabled=false)" }}
{{- end -}}
{{- end -}}

{{- define "tampertrace.postgresHost" -}}
{{- if .Values.connections.postgresql.host -}}{{ .Values.connections.postgresql.host }}
{{- else if .Values.postgresql.enabled -}}{{ printf "%s-postgresql" .Release.Name }}
{{- else -}}{{ fail "connections.postgresql.host is required when the bundled PostgreSQL is disabled (postgresql.enabled=false)" }}
{{- end -}}
{{- end -}}

{{/* A name on the wire: TAMPERTRACE_TOPIC_PREFIX prefixes topics and consumer groups alike (shared/src/topics.ts withPrefix). */}}
{{- define "tampertrace.wire" -}}
{{- if .root.Values.connections.kafka.topicPrefix -}}{{ printf "%s.%s" .root.Values.connections.kafka.topicPrefix .name }}{{- else -}}{{ .name }}{{- end -}}
{{- end -}}

{{/* Replicas a consuming stage may have: its own maximum, capped by the topics' partitions. */}}
{{- define "tampertrace.maxReplicas" -}}
{{- $max := int .c.autoscaling.maxReplicas -}}
{{- if .c.consumes }}{{ $max = min $max (int .root.Values.topics.partitions) }}{{ end -}}
{{- $max -}}
{{- end -}}

{{/* Whether a component is scaled by a KEDA ScaledObject (else by an HPA, if autoscaling is on). */}}
{{- define "tampertrace.kedaScaled" -}}
{{- if and .root.Values.autoscaling.keda.enabled .c.autoscaling.enabled .c.consumes -}}true{{- end -}}
{{- end -}}

{{/* Environment of every TamperTrace container: settings, then secrets from the Secret. (dict "root" $ "c" $component "name" $name) */}}
{{- define "tampertrace.env" -}}
{{- $v := .root.Values -}}
{{- $s := $v.global.secrets -}}
{{- $needs := .c.needs | default list -}}
- name: TAMPERTRACE_GRPC_HOST
  value: "0.0.0.0"
- name: TAMPERTRACE_HTTP_HOST
  value: "0.0.0.0"
- name: TAMPERTRACE_OPS_HOST
  value: "0.0.0.0"
- name: TAMPERTRACE_OPS_PORT
  value: {{ $v.ops.port | quote }}
- name: TAMPERTRACE_HOME
  value: /tmp/tampertrace
- name: TAMPERTRACE_KAFKA_BROKERS
  value: {{ include "tampertrace.kafkaBrokers" .root | quote }}
- name: TAMPERTRACE_TOPIC_PREFIX
  value: {{ $v.connections.kafka.topicPrefix | quote }}
- name: TAMPERTRACE_TOPIC_PARTITIONS
  value: {{ $v.topics.partitions | quote }}
- name: TAMPERTRACE_TOPIC_REPLICATION
  value: {{ $v.topics.replication | quote }}
{{- if has "s3" $needs }}
- name: TAMPERTRACE_S3_ENDPOINT
  value: {{ include "tampertrace.s3Endpoint" .root | quote }}
- name: TAMPERTRACE_S3_REGION
  value: {{ $v.connections.s3.region | quote }}
- name: TAMPERTRACE_S3_BUCKET_PREFIX
  value: {{ $v.connections.s3.bucketPrefix | quote }}
- name: TAMPERTRACE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: { name: {{ $s.existingSecret }}, key: {{ $s.keys.s3AccessKey }} }
- name: TAMPERTRACE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef: { name: {{ $s.existingSecret }}, key: {{ $s.keys.s3SecretKey }} }
{{- end }}
{{- if has "postgresql" $needs }}
{{- $pg := $v.connections.postgresql }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ $s.existingSecret }}, key: {{ $s.keys.databasePassword }} }
# $(DATABASE_PASSWORD) is expanded by the kubelet from the variable above.
- name: TAMPERTRACE_DATABASE_URL
  value: {{ printf "postgres://%s:$(DATABASE_PASSWORD)@%s:%v/%s%s" $pg.user (include "tampertrace.postgresHost" .root) $pg.port $pg.database (ternary (printf "?%s" $pg.params) "" (ne $pg.params "")) | quote }}
{{- end }}
{{- if has "pepper" $needs }}
- name: TAMPERTRACE_API_KEY_PEPPER
  valueFrom:
    secretKeyRef: { name: {{ $s.existingSecret }}, key: {{ $s.keys.apiKeyPepper }} }
{{- end }}
{{- if and (has "explainer" $needs) (eq $v.explainer.kind "openai") }}
{{- $x := $v.explainer.openai }}
- name: TAMPERTRACE_EXPLAINER
  value: openai
- name: TAMPERTRACE_EXPLAINER_URL
  value: {{ required "explainer.openai.url is required when explainer.kind is openai" $x.url | quote }}
- name: TAMPERTRACE_EXPLAINER_MODEL
  value: {{ required "explainer.openai.model is required when explainer.kind is openai" $x.model | quote }}
- name: TAMPERTRACE_EXPLAINER_TIMEOUT_MS
  value: {{ $x.timeoutMs | quote }}
- name: TAMPERTRACE_EXPLAINER_MAX_CONCURRENCY
  value: {{ $x.maxConcurrency | quote }}
- name: TAMPERTRACE_EXPLAINER_BREAKER_FAILURES
  value: {{ $x.breaker.failures | quote }}
- name: TAMPERTRACE_EXPLAINER_BREAKER_RESET_MS
  value: {{ $x.breaker.resetMs | quote }}
- name: TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT
  value: {{ $x.responseFormat | quote }}
{{- with $s.keys.explainerApiKey }}
- name: TAMPERTRACE_EXPLAINER_API_KEY
  valueFrom:
    secretKeyRef: { name: {{ $s.existingSecret }}, key: {{ . }} }
{{- end }}
{{- end }}
{{- if gt (int .c.gpu) 0 }}
- name: TAMPERTRACE_EXECUTION_PROVIDERS
  value: cuda
- name: CUDA_CACHE_PATH
  value: /tmp/cuda-cache
{{- end }}
{{- if and (has "otlp" $needs) $v.connections.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.connections.otlp.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.connections.otlp.protocol | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ .name | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,k8s.namespace.name=%s" .root.Release.Name .root.Release.Namespace | quote }}
{{- range $k, $val := $v.config }}
- name: {{ $k }}
  value: {{ $val | quote }}
{{- end }}
{{- range $k, $val := .c.env }}
- name: {{ $k }}
  value: {{ $val | quote }}
{{- end }}
{{- end -}}

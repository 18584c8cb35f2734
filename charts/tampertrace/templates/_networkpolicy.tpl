{{/* Egress rules for the dependencies a pod needs: (dict "root" $ "needs" (list "kafka" ...)) */}}
{{- define "tampertrace.egressRules" -}}
{{- $v := .root.Values -}}
{{- $eg := $v.networkPolicy.egress -}}
{{- $bundled := dict "kafka" (ternary "kafka" "" $v.kafka.enabled) "s3" (ternary "minio" "" $v.minio.enabled) "postgresql" (ternary "postgresql" "" $v.postgresql.enabled) -}}
- ports: {{ toYaml $eg.dns.ports | nindent 4 }}
  {{- with $eg.dns.to }}
  to: {{ toYaml . | nindent 4 }}
  {{- end }}
{{- range $dep := .needs }}
{{- $rule := get $eg $dep }}
{{- if and $rule (or (ne $dep "otlp") $v.connections.otlp.endpoint) (or (ne $dep "explainer") (eq $v.explainer.kind "openai")) }}
{{- $to := $rule.to | default list }}
{{- $sub := get $bundled $dep }}
{{- if $sub }}
{{- $to = append $to (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/instance" $.root.Release.Name "app.kubernetes.io/name" $sub))) }}
{{- end }}
- ports: {{ toYaml $rule.ports | nindent 4 }}
  {{- with $to }}
  to: {{ toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}

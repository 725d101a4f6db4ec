{{/*
Names, labels, images, and the command-line flags of the two binaries.
The flags of each binary are built in exactly one place below
(podid.webhook.args, podid.controller.args): align them there when a
binary's flags change.
*/}}

{{- define "podid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name; short enough for the longest suffix, "-controller-metrics" (19), within 63. */}}
{{- define "podid.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "podid.webhook.fullname" -}}{{ include "podid.fullname" . }}-webhook{{- end }}
{{- define "podid.controller.fullname" -}}{{ include "podid.fullname" . }}-controller{{- end }}
{{- define "podid.nodeGuard.fullname" -}}{{ include "podid.fullname" . }}-node-guard{{- end }}
{{/* The MutatingWebhookConfiguration (cluster-scoped). */}}
{{- define "podid.webhookConfig.name" -}}{{ include "podid.fullname" . }}-webhook{{- end }}
{{/* The Secret holding the webhook's serving certificate (written by the webhook or by cert-manager). */}}
{{- define "podid.webhook.tlsSecret" -}}{{ include "podid.fullname" . }}-webhook-tls{{- end }}
{{/* The Lease of the controller's leader election. */}}
{{- define "podid.controller.lease" -}}{{ include "podid.fullname" . }}-controller{{- end }}
{{/* The ConfigMap where the controller records the identities it added. */}}
{{- define "podid.controller.stateConfigMap" -}}{{ include "podid.fullname" . }}-controller-state{{- end }}

{{- define "podid.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "podid.labels" -}}
helm.sh/chart: {{ include "podid.chart" . }}
{{ include "podid.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podid
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Usage: include "podid.componentLabels" (list $ "webhook") */}}
{{- define "podid.componentLabels" -}}
{{ include "podid.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "podid.componentSelectorLabels" -}}
{{ include "podid.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Usage: include "podid.image" (list $ "webhook") → repository/name:tag or repository/name@digest */}}
{{- define "podid.image" -}}
{{- $root := index . 0 }}
{{- $img := index $root.Values.image (index . 1) }}
{{- $base := printf "%s/%s" (trimSuffix "/" $root.Values.image.repository) $img.name }}
{{- if $img.digest }}
{{- printf "%s@%s" $base $img.digest }}
{{- else }}
{{- printf "%s:%s" $base (default $root.Chart.AppVersion $root.Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Hardened container securityContext for a non-root container. */}}
{{- define "podid.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "podid.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Default affinity: prefer one replica per node. Usage: include "podid.affinity" (list $ "webhook" .Values.webhook.affinity) */}}
{{- define "podid.affinity" -}}
{{- $root := index . 0 }}
{{- $custom := index . 2 }}
{{- if $custom }}
{{- toYaml $custom }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "podid.componentSelectorLabels" (list $root (index . 1)) | nindent 12 }}
{{- end }}
{{- end }}

{{/* ---- Certificates --------------------------------------------------------------- */}}

{{- define "podid.certManager.servingCert" -}}{{ include "podid.fullname" . }}-webhook{{- end }}
{{- define "podid.certManager.caCert" -}}{{ include "podid.fullname" . }}-ca{{- end }}
{{- define "podid.certManager.selfSignedIssuer" -}}{{ include "podid.fullname" . }}-selfsigned{{- end }}
{{- define "podid.certManager.caIssuer" -}}{{ include "podid.fullname" . }}-ca{{- end }}

{{/* Where the webhook reads a mounted certificate (cert-manager mode). */}}
{{- define "podid.webhook.tlsDir" -}}/etc/podid/tls{{- end }}

{{/* ---- podid-webhook flags (webhook/src/args.rs) ------------------------------------ */}}

{{/*
Flags for the self-managed certificate (certs.mode=self). PENDING: the webhook
does not have them yet; they land with the self-managed certificate code. The
chart tests know them as pending (tests/chart/test_binary_args.py,
PENDING_WEBHOOK_FLAGS). The Secret lives in --release-namespace.
*/}}
{{- define "podid.webhook.selfCertArgs" -}}
{{- toYaml (list
  (printf "--cert-secret=%s" (include "podid.webhook.tlsSecret" .))
  (printf "--webhook-config-name=%s" (include "podid.webhookConfig.name" .))
  (printf "--service-name=%s" (include "podid.webhook.fullname" .))) }}
{{- end }}

{{/* Every flag of the webhook container, as a YAML list. */}}
{{- define "podid.webhook.args" -}}
{{- $v := .Values }}
{{- $args := list "--listen=0.0.0.0:8443" "--admin-listen=0.0.0.0:8080" }}
{{- if eq $v.certs.mode "cert-manager" }}
{{- $dir := include "podid.webhook.tlsDir" . }}
{{- $args = concat $args (list (printf "--tls-cert=%s/tls.crt" $dir) (printf "--tls-key=%s/tls.key" $dir)) }}
{{- else }}
{{- $args = concat $args (include "podid.webhook.selfCertArgs" . | fromYamlArray) }}
{{- end }}
{{- $args = concat $args (list
  (printf "--release-namespace=%s" .Release.Namespace)
  (printf "--request-timeout=%ds" (int $v.webhook.timeoutSeconds))
  (printf "--shutdown-grace=%s" $v.webhook.shutdownGrace)
  (printf "--shutdown-delay=%ds" (int $v.webhook.shutdownDelaySeconds))
  (printf "--log-format=%s" $v.logging.format)
  (printf "--log=%s" $v.logging.level)
  (printf "--proxy-image=%s" (include "podid.image" (list . "proxy")))
  (printf "--image-pull-policy=%s" (default $v.image.pullPolicy $v.proxy.imagePullPolicy))
  (printf "--native-sidecars=%s" $v.nativeSidecars)
  (printf "--pods-without-identity=%s" $v.podsWithoutIdentity)) }}
{{- if $v.strict }}
{{- $args = append $args "--strict" }}
{{- end }}
{{- range $v.exceptions }}
{{- $args = append $args (printf "--exception=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--proxy-ready-timeout=%s" $v.proxy.readyTimeout) }}
{{- if $v.proxy.blockOtherImdsPaths }}
{{- $args = append $args "--block-imds-paths" }}
{{- end }}
{{- $args = concat $args (list
  (printf "--proxy-resources=%s" (toJson $v.proxy.resources))
  (printf "--init-resources=%s" (toJson $v.proxy.initResources))) }}
{{- toYaml $args }}
{{- end }}

{{/* ---- podid-controller flags -------------------------------------------------------- */}}

{{/* Where the cloud config comes from: "secret", "hostPath" or "" (none). */}}
{{- define "podid.controller.cloudConfigSource" -}}
{{- if .Values.azure.cloudConfigSecret }}secret
{{- else if and (not .Values.azure.workloadIdentity.clientID) .Values.azure.cloudConfigHostPath }}hostPath
{{- end }}
{{- end }}

{{- define "podid.controller.cloudConfigPath" -}}/etc/kubernetes/azure.json{{- end }}
{{- define "podid.controller.tokenDir" -}}/var/run/secrets/azure/tokens{{- end }}

{{/*
Every flag of the controller container, as a YAML list: podid-controller's
flags (controller/src/args.rs); tests/chart/test_binary_args.py checks that
the binary accepts them. $(POD_NAME) is expanded by the kubelet from the
downward-API variable.
*/}}
{{- define "podid.controller.args" -}}
{{- $v := .Values }}
{{- $le := $v.controller.leaderElection }}
{{- $args := list
  "--admin-listen=0.0.0.0:8080"
  (printf "--release-namespace=%s" .Release.Namespace)
  "--leader-elect"
  (printf "--leader-elect-lease-name=%s" (include "podid.controller.lease" .))
  "--leader-elect-identity=$(POD_NAME)"
  (printf "--leader-elect-lease-duration=%s" $le.leaseDuration)
  (printf "--leader-elect-renew-deadline=%s" $le.renewDeadline)
  (printf "--leader-elect-retry-period=%s" $le.retryPeriod)
  (printf "--state-configmap=%s" (include "podid.controller.stateConfigMap" .))
  (printf "--grace-period=%s" $v.controller.gracePeriod) }}
{{- if include "podid.controller.cloudConfigSource" . }}
{{- $args = append $args (printf "--cloud-config=%s" (include "podid.controller.cloudConfigPath" .)) }}
{{- end }}
{{- with $v.azure.workloadIdentity }}
{{- if .clientID }}
{{- $args = concat $args (list
  (printf "--workload-identity-client-id=%s" .clientID)
  (printf "--workload-identity-tenant-id=%s" .tenantID)
  (printf "--federated-token-file=%s/azure-identity-token" (include "podid.controller.tokenDir" $))) }}
{{- end }}
{{- end }}
{{- with $v.azure.armEndpoint }}
{{- $args = append $args (printf "--arm-endpoint=%s" .) }}
{{- end }}
{{- with $v.azure.authorityHost }}
{{- $args = append $args (printf "--authority-host=%s" .) }}
{{- end }}
{{- range $v.immutableIdentities }}
{{- $args = append $args (printf "--immutable-identity=%s" .) }}
{{- end }}
{{- $args = concat $args (list (printf "--log-format=%s" $v.logging.format) (printf "--log=%s" $v.logging.level)) }}
{{- toYaml $args }}
{{- end }}

{{/* Fail the render with a message a person can act on. */}}
{{- define "podid.validate" -}}
{{- if and (not .Values.azure.cloudConfigSecret) (not .Values.azure.cloudConfigHostPath) (not .Values.azure.workloadIdentity.clientID) }}
{{- fail "podid: the controller has no Azure credentials: set azure.cloudConfigSecret (a Secret with azure.json), azure.cloudConfigHostPath (the node's /etc/kubernetes/azure.json) or azure.workloadIdentity.clientID and tenantID" }}
{{- end }}
{{- end }}

{{/* ---- Node guard -------------------------------------------------------------------- */}}

{{/* The guard's flags (node-guard/src/args.rs); node name, node IP, pod name and namespace come from the downward API. */}}
{{- define "podid.nodeGuard.args" -}}
{{- $v := .Values }}
{{- $g := $v.nodeGuard }}
{{- $args := list
  "run"
  "--node-name=$(NODE_NAME)"
  "--responder-ip=$(NODE_IP)"
  "--responder-listen=0.0.0.0:15393"
  "--admin-listen=0.0.0.0:15394"
  (printf "--proxy-image=%s" (include "podid.image" (list . "proxy")))
  (printf "--daemonset=%s" (include "podid.nodeGuard.fullname" .))
  "--namespace=$(POD_NAMESPACE)"
  "--pod-name=$(POD_NAME)"
  (printf "--resync-interval=%s" $g.resyncInterval)
  (printf "--event-interval=%s" $g.eventInterval)
  (printf "--log-format=%s" $v.logging.format)
  (printf "--log=%s" $v.logging.level) }}
{{- range $v.exceptions }}
{{- $args = append $args (printf "--exception=%s" .) }}
{{- end }}
{{- range $g.allowNamespaces }}
{{- $args = append $args (printf "--allow-namespace=%s" .) }}
{{- end }}
{{- range $g.aksLabelNamespaces }}
{{- $args = append $args (printf "--aks-label-namespace=%s" .) }}
{{- else }}
{{- /* Empty: nowhere (the binary's default would be kube-system). */}}
{{- $args = append $args "--aks-label-namespace=" }}
{{- end }}
{{- toYaml $args }}
{{- end }}

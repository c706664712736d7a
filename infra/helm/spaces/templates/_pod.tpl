{{/*
The platform's pod template, for the all-in-one process (role "all") and for each role of the replicated control
plane (hub, proxy, builder, controller). Called with (dict "root" $ "role" ROLE).
Every process gets the same settings (they share the database, Redis and the data volume); what differs per role:
its command line, its probes, the Docker engine (builder only) and its resources.
*/}}
{{- define "spaces.podTemplate" -}}
{{- $r := .root -}}
{{- $role := .role -}}
{{- $v := $r.Values -}}
{{- $fullname := include "spaces.fullname" $r -}}
{{- $all := eq $role "all" -}}
{{- $builds := or $all (eq $role "builder") -}}
{{- $socket := and $builds $v.builder.hostDockerSocket.enabled -}}
{{- $ops := and (not $all) (ne $role "hub") -}}
{{- $rv := get ($v.roles | default dict) $role | default dict -}}
metadata:
  labels:
    {{- include "spaces.selector" $r | nindent 4 }}
    {{- if not $all }}
    app.kubernetes.io/component: {{ $role }}
    {{- end }}
spec:
  serviceAccountName: {{ $fullname }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets: {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
    {{- if $socket }}
    supplementalGroups: [{{ int64 $v.builder.hostDockerSocket.gid }}]   # the node's docker socket group
    {{- end }}
  {{- with $v.hostAliases }}
  hostAliases: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq $role "controller" }}
  # a controller that stops leading exits; the standby takes over within seconds: no long goodbye needed
  terminationGracePeriodSeconds: 15
  {{- end }}
  containers:
    - name: spaces
      image: "{{ $v.image.repository }}:{{ $v.image.tag | default $r.Chart.AppVersion }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- if $all }}
      args: [serve, --host, 0.0.0.0, --port, {{ $v.containerPort | quote }}]
      {{- else }}
      args: [serve, --roles, {{ $role }}, --host, 0.0.0.0, --port, {{ $v.containerPort | quote }}{{ if $ops }}, --ops-port, {{ $v.opsPort | quote }}{{ end }}]
      {{- end }}
      ports:
        {{- if or $all (eq $role "hub") (eq $role "proxy") }}
        - {name: http, containerPort: {{ $v.containerPort }}}
        {{- end }}
        {{- if $ops }}
        - {name: ops, containerPort: {{ $v.opsPort }}}
        {{- end }}
      env:
        # a directory of its own inside the volume: the volume root belongs to root (fsGroup only sets its group),
        # and the platform sets its data directory to 0711. In the environment, not on the command line, so that
        # `kubectl exec deploy/... -- spaces token create ...` finds the same data and database.
        - {name: SPACES_DATA_DIR, value: /var/lib/spaces/data}
        - {name: SPACES_RUNTIME__BACKEND, value: kubernetes}
        - {name: SPACES_KUBERNETES__NAMESPACE, value: {{ include "spaces.spacesNamespace" $r | quote }}}
        - {name: SPACES_KUBERNETES__IN_CLUSTER, value: "true"}
        - {name: SPACES_KUBERNETES__ADDRESS, value: {{ $v.kubernetes.address | quote }}}
        - {name: SPACES_KUBERNETES__IMAGE_PULL_POLICY, value: {{ $v.kubernetes.imagePullPolicy | quote }}}
        {{- with $v.kubernetes.imagePullSecrets }}
        - {name: SPACES_KUBERNETES__IMAGE_PULL_SECRETS, value: {{ toJson . | quote }}}
        {{- end }}
        {{- with $v.kubernetes.gpuRuntimeClass }}
        - {name: SPACES_KUBERNETES__GPU_RUNTIME_CLASS, value: {{ . | quote }}}
        {{- end }}
        {{- with $v.kubernetes.storageClass }}
        - {name: SPACES_KUBERNETES__STORAGE_CLASS, value: {{ . | quote }}}
        {{- end }}
        - {name: SPACES_KUBERNETES__CLAIM_ACCESS_MODE, value: {{ $v.kubernetes.claimAccessMode | quote }}}
        - {name: SPACES_PUBLIC_URL, value: {{ $v.publicUrl | default (printf "http://%s.%s:%v" $fullname $r.Release.Namespace $v.service.port) | quote }}}
        {{- with $v.appsDomain }}
        - {name: SPACES_APPS_DOMAIN, value: {{ . | quote }}}
        {{- end }}
        - {name: SPACES_APPS_SCHEME, value: {{ $v.appsScheme | quote }}}
        - {name: SPACES_SIGNUP_ENABLED, value: {{ $v.signupEnabled | quote }}}
        {{- if eq $role "proxy" }}
        # a request for the hub's host reaching a proxy goes on to the hubs' Service
        - {name: SPACES_HUB_UPSTREAM, value: {{ printf "%s:%v" $fullname $v.service.port | quote }}}
        {{- end }}
        {{- with $v.secretKey.existingSecret }}
        - name: SPACES_SECRET_KEY
          valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.secretKey.key }}}}
        {{- end }}
        # the database: the password only ever comes from a Secret, as libpq's PGPASSWORD
        {{- if $v.postgresql.bundled }}
        - name: PGPASSWORD
          valueFrom: {secretKeyRef: {name: {{ include "spaces.pgSecret" $r }}, key: {{ $v.postgresql.passwordKey }}}}
        - name: SPACES_DATABASE_URL
          value: "postgresql+psycopg://{{ $v.postgresql.username }}@{{ $fullname }}-postgresql:5432/{{ $v.postgresql.database }}"
        {{- else }}
        {{- with $v.externalDatabase.existingSecret }}
        - name: PGPASSWORD
          valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $v.externalDatabase.passwordKey }}}}
        {{- end }}
        - {name: SPACES_DATABASE_URL, value: {{ $v.externalDatabase.url | quote }}}
        {{- end }}
        {{- if $v.redis.bundled }}
        - name: SPACES_REDIS_PASSWORD
          valueFrom: {secretKeyRef: {name: {{ include "spaces.redisSecret" $r }}, key: {{ $v.redis.passwordKey }}}}
        - {name: SPACES_REDIS_URL, value: "redis://:$(SPACES_REDIS_PASSWORD)@{{ $fullname }}-redis:6379/0"}
        {{- else if $v.externalRedis.url }}
        {{- if $v.externalRedis.existingSecret }}
        - name: SPACES_REDIS_PASSWORD
          valueFrom: {secretKeyRef: {name: {{ $v.externalRedis.existingSecret }}, key: {{ $v.externalRedis.passwordKey }}}}
        {{- $parts := splitn "://" 2 $v.externalRedis.url }}
        - {name: SPACES_REDIS_URL, value: "{{ $parts._0 }}://:$(SPACES_REDIS_PASSWORD)@{{ $parts._1 }}"}
        {{- else }}
        - {name: SPACES_REDIS_URL, value: {{ $v.externalRedis.url | quote }}}
        {{- end }}
        {{- end }}
        # the builder: docker build against an engine, push to the registry the nodes pull from
        {{- if $socket }}
        - {name: DOCKER_HOST, value: unix:///run/docker-host/docker.sock}
        {{- else if $v.builder.dockerHost }}
        - {name: DOCKER_HOST, value: {{ $v.builder.dockerHost | quote }}}
        {{- end }}
        {{- if $v.builder.caBundle.configMap }}
        - {name: SPACES_DOCKER_BUILD__EXTRA_CA_BUNDLE, value: /etc/spaces/build-ca/{{ $v.builder.caBundle.key }}}
        {{- end }}
        - {name: SPACES_DOCKER_BUILD__IMAGE_PREFIX, value: {{ $v.builder.imagePrefix | quote }}}
        - {name: SPACES_DOCKER_BUILD__PUSH, value: {{ $v.builder.push | quote }}}
        {{- with $v.builder.pipIndexUrl }}
        - {name: SPACES_DOCKER_BUILD__PIP_INDEX_URL, value: {{ . | quote }}}
        {{- end }}
        # the Spaces' NetworkPolicy: only the proxy's pods may connect to a Space
        {{- with $v.networkPolicy }}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__ENABLED, value: {{ .enabled | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__PROXY_POD_LABELS, value: {{ include "spaces.proxyLabels" $r | fromYaml | toJson | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__PROXY_NAMESPACE, value: {{ $r.Release.Namespace | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__PROXY_CIDRS, value: {{ .proxyCidrs | toJson | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__DNS_POD_LABELS, value: {{ .dnsPodLabels | toJson | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__DNS_NAMESPACE, value: {{ .dnsNamespace | quote }}}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__DNS_CIDRS, value: {{ .dnsCidrs | toJson | quote }}}
        {{- if .blockedCidrs }}
        - {name: SPACES_KUBERNETES__NETWORK_POLICY__BLOCKED_CIDRS, value: {{ .blockedCidrs | toJson | quote }}}
        {{- end }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- /* probes: the all-in-one process on /api/health; a role on /healthz (alive) and /readyz (its database
           and Redis answer), the hub on its own port, the others on the ops port. Timings: values, probes */}}
      {{- $port := ternary "http" "ops" (or $all (eq $role "hub")) }}
      {{- $alive := ternary "/api/health" "/healthz" $all }}
      {{- if ne $role "controller" }}
      readinessProbe:
        httpGet: {path: {{ ternary "/api/health" "/readyz" $all }}, port: {{ $port }}}
        {{- toYaml $v.probes.readiness | nindent 8 }}
      {{- else }}
      # (a controller's /readyz is 200 only while it leads: as a readiness probe it would hold every rollout on
      # the standby; leadership shows on /readyz and on /metrics as spaces_controller_leader)
      {{- end }}
      livenessProbe:
        httpGet: {path: {{ $alive }}, port: {{ $port }}}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      startupProbe:   # first start: database migrations before the port opens
        httpGet: {path: {{ $alive }}, port: {{ $port }}}
        {{- toYaml $v.probes.startup | nindent 8 }}
      resources: {{- toYaml ($rv.resources | default $v.resources) | nindent 8 }}
      securityContext: {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - {name: data, mountPath: /var/lib/spaces}
        - {name: tmp, mountPath: /tmp}
        {{- if $socket }}
        - {name: docker-socket, mountPath: /run/docker-host/docker.sock}
        {{- end }}
        {{- if and $builds $v.builder.caBundle.configMap }}
        - {name: build-ca, mountPath: /etc/spaces/build-ca, readOnly: true}
        {{- end }}
  volumes:
    - name: data
      {{- if $v.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ $v.persistence.existingClaim | default (printf "%s-data" $fullname) }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if $socket }}
    - name: docker-socket   # root on the node, to whoever reaches it: see values.yaml, builder
      hostPath: {path: {{ $v.builder.hostDockerSocket.path }}, type: Socket}
    {{- end }}
    {{- if and $builds $v.builder.caBundle.configMap }}
    - name: build-ca
      configMap: {name: {{ $v.builder.caBundle.configMap }}}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

//! A realistic ~10 KB AdmissionReview: a pod as a Deployment's ReplicaSet creates it.

use serde_json::{Value, json};

/// Namespace of the pod; `examples/identities.yaml` defines its identities there.
pub const NAMESPACE: &str = "apps";
/// The identity the pod names in `podid.io/identity` (in `examples/identities.yaml`).
pub const IDENTITY: &str = "keyvault-reader";
/// The review's `request.uid`, echoed in every answer.
pub const UID: &str = "7b0c1e52-3f4a-4d8e-9b61-2c5d8e0f4a17";

/// The serialized AdmissionReview of a pod CREATE, as the API server sends it.
pub fn admission_review() -> Vec<u8> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5d0f3c6e-8a1b-4f2d-9e7c-1b3a5c7d9e0f",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": pod(),
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

fn pod() -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata(),
        "spec": {
            "volumes": volumes(),
            "containers": [
                container("orders-api", "registry.example.com/shop/orders-api:2.14.3", 8080, "500m", "512Mi"),
                container("orders-worker", "registry.example.com/shop/orders-worker:2.14.3", 9090, "250m", "256Mi"),
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux", "agentpool": "apps"},
            "serviceAccountName": "orders",
            "serviceAccount": "orders",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "imagePullSecrets": [{"name": "registry-credentials"}],
            "affinity": affinity(),
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "workload", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}
            ],
            "priority": 0,
            "enableServiceLinks": false,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

fn metadata() -> Value {
    json!({
        "generateName": "orders-api-6d8f9c7b5d-",
        "namespace": NAMESPACE,
        "uid": "c2a4e6f8-1b3d-4f5a-8c7e-9d0b2a4c6e8f",
        "creationTimestamp": "2026-11-02T09:14:27Z",
        "labels": {
            "app.kubernetes.io/name": "orders-api",
            "app.kubernetes.io/instance": "orders",
            "app.kubernetes.io/component": "api",
            "app.kubernetes.io/part-of": "shop",
            "app.kubernetes.io/version": "2.14.3",
            "app.kubernetes.io/managed-by": "Helm",
            "helm.sh/chart": "orders-2.14.3",
            "pod-template-hash": "6d8f9c7b5d",
            "team": "checkout"
        },
        "annotations": {
            "podid.io/identity": IDENTITY,
            "checksum/config": "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9102",
            "prometheus.io/path": "/metrics",
            "kubectl.kubernetes.io/restartedAt": "2026-11-01T18:03:44Z"
        },
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "orders-api-6d8f9c7b5d",
            "uid": "e1f3a5c7-9b2d-4e6f-8a0c-2b4d6f8a0c1e",
            "controller": true,
            "blockOwnerDeletion": true
        }],
        "managedFields": [{
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-11-02T09:14:27Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": managed_fields()
        }]
    })
}

fn managed_fields() -> Value {
    let container_fields = json!({
        ".": {}, "f:env": {".": {}, "k:{\"name\":\"LOG_LEVEL\"}": {".": {}, "f:name": {}, "f:value": {}}},
        "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {".": {}, "f:httpGet": {".": {}, "f:path": {}, "f:port": {}}},
        "f:name": {}, "f:ports": {".": {}}, "f:readinessProbe": {".": {}, "f:httpGet": {".": {}, "f:path": {}, "f:port": {}}},
        "f:resources": {".": {}, "f:limits": {".": {}, "f:memory": {}}, "f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}},
        "f:volumeMounts": {".": {}}
    });
    json!({
        "f:metadata": {
            "f:annotations": {".": {}, "f:checksum/config": {}, "f:podid.io/identity": {}, "f:prometheus.io/scrape": {}},
            "f:generateName": {},
            "f:labels": {".": {}, "f:app.kubernetes.io/instance": {}, "f:app.kubernetes.io/name": {}, "f:pod-template-hash": {}},
            "f:ownerReferences": {".": {}, "k:{\"uid\":\"e1f3a5c7-9b2d-4e6f-8a0c-2b4d6f8a0c1e\"}": {}}
        },
        "f:spec": {
            "f:affinity": {".": {}, "f:podAntiAffinity": {}},
            "f:containers": {
                "k:{\"name\":\"orders-api\"}": container_fields.clone(),
                "k:{\"name\":\"orders-worker\"}": container_fields
            },
            "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
            "f:securityContext": {}, "f:serviceAccountName": {}, "f:terminationGracePeriodSeconds": {},
            "f:tolerations": {}, "f:volumes": {".": {}, "k:{\"name\":\"config\"}": {".": {}, "f:configMap": {}, "f:name": {}}}
        }
    })
}

fn container(name: &str, image: &str, port: u16, cpu: &str, memory: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [
            {"name": "http", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}
        ],
        "env": env(name),
        "resources": {"limits": {"memory": memory}, "requests": {"cpu": cpu, "memory": memory}},
        "volumeMounts": [
            {"name": "config", "readOnly": true, "mountPath": "/etc/orders"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "kube-api-access-7x2kq", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
        ],
        "livenessProbe": probe("/livez", port, 10),
        "readinessProbe": probe("/readyz", port, 5),
        "startupProbe": probe("/livez", port, 2),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}
        }
    })
}

fn env(container: &str) -> Value {
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
        json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "password"}}}),
    ];
    let plain = [
        ("SERVICE_NAME", container),
        ("LOG_LEVEL", "info"),
        ("LOG_FORMAT", "json"),
        ("HTTP_LISTEN", "0.0.0.0:8080"),
        ("METRICS_LISTEN", "0.0.0.0:9102"),
        ("DB_HOST", "orders-db.apps.svc.cluster.local"),
        ("DB_PORT", "5432"),
        ("DB_NAME", "orders"),
        ("DB_USER", "orders_app"),
        ("DB_POOL_SIZE", "20"),
        ("KEYVAULT_URL", "https://shop-prod-kv.vault.azure.net/"),
        (
            "STORAGE_ACCOUNT_URL",
            "https://shopprodorders.blob.core.windows.net/",
        ),
        (
            "SERVICEBUS_NAMESPACE",
            "shop-prod-sb.servicebus.windows.net",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability.svc:4317",
        ),
        ("OTEL_SERVICE_NAME", container),
        (
            "FEATURE_FLAGS",
            "new-checkout,async-invoices,retry-payments",
        ),
    ];
    env.extend(
        plain
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    Value::Array(env)
}

fn probe(path: &str, port: u16, period: u32) -> Value {
    json!({
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": 0,
        "timeoutSeconds": 1,
        "periodSeconds": period,
        "successThreshold": 1,
        "failureThreshold": 3
    })
}

fn volumes() -> Value {
    json!([
        {"name": "config", "configMap": {"name": "orders-config", "defaultMode": 420}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "kube-api-access-7x2kq", "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ], "defaultMode": 420}}
    ])
}

fn affinity() -> Value {
    json!({
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchExpressions": [{"key": "kubernetes.azure.com/mode", "operator": "In", "values": ["user"]}]
        }]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "orders-api", "app.kubernetes.io/instance": "orders"}},
                "topologyKey": "topology.kubernetes.io/zone"
            }
        }]}
    })
}

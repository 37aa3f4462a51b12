//! The Kubernetes manifests in `deploy/kubernetes/` agree with the code and with each
//! overlay's config: probe paths and the admin port, the grace period against the drain,
//! the secret files the config reads, the state paths, and each autoscaler's trigger
//! against its source. `scripts/check-deploy.sh` validates the same files against the
//! Kubernetes and CRD schemas; this test holds them to what auditbridge does.

mod common;

use std::path::{Path, PathBuf};

use auditbridge::admin::{LIVE_PATH, METRICS_PATH, READY_PATH};
use auditbridge::config::{Config, SourceConfig};
use auditbridge::sources::eventhubs::config::CheckpointStoreConfig;
use azure_messaging_eventhubs::models::Checkpoint;
use serde_json::Value;

const OVERLAYS: [&str; 3] = ["aws-sqs", "azure-eventhubs", "gcp-pubsub"];

fn kube(path: &str) -> PathBuf {
    common::repo(&format!("deploy/kubernetes/{path}"))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An overlay's config, loaded by auditbridge's own loader, and its raw TOML.
fn config(overlay: &str) -> (Config, toml::Value) {
    let path = kube(&format!("overlays/{overlay}/auditbridge.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::parse(&text, &path.display().to_string()).unwrap();
    (config, toml::from_str(&text).unwrap())
}

struct Deployment(Value);

impl Deployment {
    fn load() -> Self {
        Deployment(yaml(&kube("base/deployment.yaml")))
    }

    fn pod(&self) -> &Value {
        &self.0["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = self.pod()["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        &containers[0]
    }

    fn mount(&self, volume: &str) -> PathBuf {
        let mounts = self.container()["volumeMounts"].as_array().unwrap();
        let mount = mounts.iter().find(|m| m["name"] == volume).unwrap();
        PathBuf::from(mount["mountPath"].as_str().unwrap())
    }

    fn volume(&self, name: &str) -> &Value {
        let volumes = self.pod()["volumes"].as_array().unwrap();
        volumes.iter().find(|v| v["name"] == name).unwrap()
    }

    fn port(&self, name: &str) -> u64 {
        let ports = self.container()["ports"].as_array().unwrap();
        let port = ports.iter().find(|p| p["name"] == name).unwrap();
        port["containerPort"].as_u64().unwrap()
    }
}

/// Every `*_file` setting of a config, wherever it sits.
fn secret_files(value: &toml::Value, found: &mut Vec<PathBuf>) {
    if let toml::Value::Table(table) = value {
        for (key, v) in table {
            match v {
                toml::Value::String(s) if key.ends_with("_file") => found.push(PathBuf::from(s)),
                _ => secret_files(v, found),
            }
        }
    }
}

/// Parses a Kubernetes quantity in binary units (`2Gi`).
fn bytes(quantity: &str) -> u64 {
    let units = [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40)];
    let (number, shift) = units
        .iter()
        .find_map(|(u, s)| quantity.strip_suffix(u).map(|n| (n, *s)))
        .unwrap_or((quantity, 0));
    number.parse::<u64>().unwrap() << shift
}

#[test]
fn probes_and_scrapes_use_the_admin_endpoints_paths_and_port() {
    let deployment = Deployment::load();
    let container = deployment.container();
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], LIVE_PATH, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], READY_PATH);
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let admin_port = deployment.port("admin");
    for overlay in OVERLAYS {
        let (config, _) = config(overlay);
        let address = config.admin.expect("an admin endpoint").address;
        assert_eq!(u64::from(address.port()), admin_port, "{overlay}");
        assert!(
            address.ip().is_unspecified(),
            "{overlay}: the kubelet probes the pod's IP"
        );
    }

    let service = yaml(&kube("base/service.yaml"));
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["targetPort"], "admin");
    assert_eq!(port["port"].as_u64(), Some(admin_port));
    let monitor = yaml(&kube("components/service-monitor/servicemonitor.yaml"));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], METRICS_PATH);
    assert_eq!(endpoint["port"], port["name"]);
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment.0["spec"]["template"]["metadata"]["labels"]
    );

    let dockerfile = std::fs::read_to_string(common::repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("http://127.0.0.1:{admin_port}{READY_PATH}")));
    assert!(dockerfile.contains(&format!("EXPOSE {admin_port}")));
}

#[test]
fn the_grace_period_outlasts_every_overlays_drain() {
    let deployment = Deployment::load();
    let grace = deployment.pod()["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    for overlay in OVERLAYS {
        let (config, _) = config(overlay);
        let drain = config.pipeline.shutdown_grace_secs;
        // The drain ends with checkpoints and the summary, and the kubelet's clock
        // starts before auditbridge reads the signal: leave it room.
        assert!(
            grace >= drain + 15,
            "{overlay}: terminationGracePeriodSeconds {grace} leaves the drain of {drain} s no room"
        );
    }
}

#[test]
fn the_pod_runs_the_config_its_overlay_ships() {
    let deployment = Deployment::load();
    let args: Vec<&str> = deployment.container()["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--config").unwrap();
    let path = Path::new(args[at + 1]);
    assert_eq!(args[0], "run");
    assert_eq!(path.parent().unwrap(), deployment.mount("config"));
    let map = deployment.volume("config")["configMap"]["name"].clone();
    for overlay in OVERLAYS {
        let kustomization = yaml(&kube(&format!("overlays/{overlay}/kustomization.yaml")));
        let generator = &kustomization["configMapGenerator"][0];
        assert_eq!(generator["name"], map, "{overlay}");
        assert_eq!(
            generator["files"][0].as_str(),
            path.file_name().unwrap().to_str(),
            "{overlay}"
        );
    }
}

#[test]
fn secret_files_are_keys_of_the_mounted_secret_that_the_readme_creates() {
    let deployment = Deployment::load();
    let dir = deployment.mount("secrets");
    let secret = deployment.volume("secrets")["secret"]["secretName"]
        .as_str()
        .unwrap()
        .to_string();
    let readme = std::fs::read_to_string(common::repo("README.md")).unwrap();
    for overlay in OVERLAYS {
        let (_, raw) = config(overlay);
        let mut files = Vec::new();
        secret_files(&raw, &mut files);
        assert!(!files.is_empty(), "{overlay}: the HEC token at least");
        let keys: Vec<String> = files
            .iter()
            .map(|f| {
                assert_eq!(f.parent().unwrap(), dir, "{overlay}: {}", f.display());
                f.file_name().unwrap().to_str().unwrap().to_string()
            })
            .collect();
        // The README's command for this overlay creates exactly these keys.
        let command = readme
            .lines()
            .find(|l| l.contains(&format!("# {overlay}")) && l.contains("create secret"))
            .unwrap_or_else(|| panic!("README: no `kubectl create secret` line for {overlay}"));
        assert!(command.contains(&format!(" {secret} ")), "{command}");
        let mut created: Vec<&str> = command
            .split("--from-file=")
            .skip(1)
            .map(|rest| rest.split('=').next().unwrap())
            .collect();
        created.sort_unstable();
        let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        assert_eq!(created, wanted, "{overlay}: {command}");

        // KEDA reads the same Secret's keys.
        let auth = yaml(&kube(&format!(
            "overlays/{overlay}/triggerauthentication.yaml"
        )));
        for target in auth["spec"]["secretTargetRef"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(target["name"], secret.as_str(), "{overlay}");
            let key = target["key"].as_str().unwrap();
            assert!(
                keys.iter().any(|k| k == key),
                "{overlay}: KEDA reads `{key}`"
            );
        }
    }
}

#[test]
fn everything_written_lies_on_the_state_volume_and_the_root_stays_read_only() {
    let deployment = Deployment::load();
    let state = deployment.mount("state");
    assert_eq!(
        deployment.container()["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    for overlay in OVERLAYS {
        let (config, _) = config(overlay);
        assert!(
            config.dead_letter.is_stdout(),
            "{overlay}: a pod's disk goes with the pod; dead letters go to the log"
        );
        let mut written = vec![
            config.keys.state_path.clone().unwrap(),
            config.dedup.state_path.clone().unwrap(),
        ];
        for source in config.sources.values() {
            match source {
                SourceConfig::Sqs(s) => written.push(s.spool_dir.clone().unwrap()),
                SourceConfig::Eventhubs(e) => assert!(
                    matches!(e.checkpoint_store, CheckpointStoreConfig::Blob(_)),
                    "{overlay}: replicas share partitions through the blob store only"
                ),
                _ => {}
            }
        }
        for path in written {
            assert!(path.starts_with(&state), "{overlay}: {}", path.display());
        }
    }
}

#[test]
fn each_autoscaler_watches_its_overlays_source_at_one_replicas_window() {
    let deployment = Deployment::load();
    let volume = bytes(
        deployment.volume("state")["emptyDir"]["sizeLimit"]
            .as_str()
            .unwrap(),
    );
    for overlay in OVERLAYS {
        let (config, _) = config(overlay);
        let scaled = yaml(&kube(&format!("overlays/{overlay}/scaledobject.yaml")));
        let auth = yaml(&kube(&format!(
            "overlays/{overlay}/triggerauthentication.yaml"
        )));
        assert_eq!(
            scaled["spec"]["scaleTargetRef"]["name"],
            deployment.0["metadata"]["name"]
        );
        let triggers = scaled["spec"]["triggers"].as_array().unwrap();
        assert_eq!(triggers.len(), 1, "{overlay}");
        let trigger = &triggers[0];
        assert_eq!(
            trigger["authenticationRef"]["name"], auth["metadata"]["name"],
            "{overlay}"
        );
        let meta = &trigger["metadata"];
        let number = |key: &str| meta[key].as_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(config.sources.len(), 1, "{overlay}");
        match config.sources.values().next().unwrap() {
            SourceConfig::Sqs(s) => {
                assert_eq!(trigger["type"], "aws-sqs-queue");
                assert_eq!(meta["queueURL"], s.queue_url.as_str());
                assert_eq!(meta["awsRegion"].as_str(), s.region.as_deref());
                assert_eq!(meta["scaleOnInFlight"], "true");
                assert_eq!(number("queueLength"), s.max_in_flight_messages as u64);
                assert!(
                    s.fetch_concurrency as u64 * s.max_object_bytes <= volume,
                    "objects spooled at once must fit the state volume"
                );
            }
            SourceConfig::Eventhubs(e) => {
                assert_eq!(trigger["type"], "azure-eventhub");
                assert_eq!(meta["eventHubName"].as_str(), e.event_hub.as_deref());
                assert_eq!(meta["consumerGroup"], e.consumer_group.as_str());
                // KEDA's blobMetadata strategy lower-cases the group in the blob path;
                // the source writes it as configured.
                assert_eq!(e.consumer_group, e.consumer_group.to_lowercase());
                let CheckpointStoreConfig::Blob(store) = &e.checkpoint_store else {
                    panic!("{overlay}: a blob checkpoint store");
                };
                assert_eq!(meta["blobContainer"], store.container.as_str());
                assert_eq!(meta["checkpointStrategy"], "blobMetadata");
                assert!(number("unprocessedEventThreshold") > e.max_in_flight_events as u64);
            }
            SourceConfig::GcpPubsub(p) => {
                assert_eq!(trigger["type"], "gcp-pubsub");
                assert_eq!(meta["subscriptionName"], p.subscription.as_str());
                assert_eq!(meta["mode"], "SubscriptionSize");
                assert_eq!(
                    number("value"),
                    p.streams as u64 * p.max_outstanding_messages as u64
                );
            }
            other => panic!("{overlay}: no autoscaler for {other:?}"),
        }
    }
}

/// KEDA's `blobMetadata` strategy reads `<container>/<namespace>/<hub>/<consumer group in
/// lower case>/checkpoint/<partition>` (kedacore/keda,
/// `pkg/scalers/azure/azure_eventhub_checkpoint.go`); the blob store writes each
/// checkpoint under the client library's name for it. They must be the same blob.
#[test]
fn keda_reads_the_checkpoint_blob_the_event_hubs_source_writes() {
    let (config, _) = config("azure-eventhubs");
    let Some(SourceConfig::Eventhubs(e)) = config.sources.values().next() else {
        panic!("the azure-eventhubs overlay reads an event hub");
    };
    let scaled = yaml(&kube("overlays/azure-eventhubs/scaledobject.yaml"));
    let meta = &scaled["spec"]["triggers"][0]["metadata"];
    let namespace = "contoso-security.servicebus.windows.net";
    let hub = e.event_hub.as_deref().unwrap();
    for partition in ["0", "3"] {
        let keda = format!(
            "{namespace}/{}/{}/checkpoint/{partition}",
            meta["eventHubName"].as_str().unwrap(),
            meta["consumerGroup"].as_str().unwrap().to_lowercase()
        );
        let written =
            Checkpoint::get_checkpoint_blob_name(namespace, hub, &e.consumer_group, partition)
                .unwrap();
        assert_eq!(written, keda);
    }
}

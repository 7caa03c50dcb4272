use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// A value as the API server writes it: magic, then the envelope.
fn stored(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let envelope = types::Unknown {
        type_meta: Some(types::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut v = PROTOBUF_MAGIC.to_vec();
    v.extend(envelope.encode_to_vec());
    v
}

fn meta(name: &str, ns: &str) -> types::ObjectMeta {
    types::ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid: Some("0b5c-uid".into()),
        creation_timestamp: Some(types::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        labels: BTreeMap::from([("app".into(), "demo".into())]),
        ..Default::default()
    }
}

#[test]
fn fields_left_out_make_a_decode_incomplete_and_say_so() {
    let cm = types::ConfigMap {
        metadata: Some(types::ObjectMeta {
            managed_fields: vec![b"raw entry".to_vec()],
            ..meta("settings", "ns1")
        }),
        data: BTreeMap::from([("colour".into(), "blue".into())]),
        ..Default::default()
    };
    // Every field declared (managedFields included, and not shown): complete. Empty
    // strings the API server's encoder writes are left out, as its JSON does.
    let cm = types::ConfigMap {
        metadata: Some(types::ObjectMeta {
            generate_name: Some(String::new()),
            cluster_name: Some(String::new()),
            ..cm.metadata.clone().unwrap()
        }),
        ..cm
    };
    let d = decode(&stored("v1", "ConfigMap", cm.encode_to_vec()));
    assert!(d.complete, "{:?}", d.note);
    let meta = &d.object.unwrap()["metadata"];
    assert!(meta.get("managedFields").is_none(), "{meta}");
    assert!(
        meta.get("generateName").is_none() && meta.get("clusterName").is_none(),
        "{meta}"
    );
    // A field kastellan does not declare (number 99, a string): still decoded, but
    // marked incomplete with the reason.
    let mut raw = cm.encode_to_vec();
    raw.extend([0x9a, 0x06, 0x03, b'n', b'e', b'w']);
    let d = decode(&stored("v1", "ConfigMap", raw));
    assert!(!d.complete);
    assert_eq!(d.object.unwrap()["data"]["colour"], "blue");
    assert!(
        d.note
            .unwrap()
            .contains("fields kastellan does not declare")
    );
}

#[test]
fn configmap_decodes_with_its_data() {
    let cm = types::ConfigMap {
        metadata: Some(meta("settings", "ns1")),
        data: BTreeMap::from([("colour".into(), "blue".into())]),
        ..Default::default()
    };
    let d = decode(&stored("v1", "ConfigMap", cm.encode_to_vec()));
    assert_eq!(d.encoding, Encoding::Protobuf);
    assert!(d.complete);
    assert!(!d.secret);
    let o = d.object.unwrap();
    assert_eq!(o["apiVersion"], "v1");
    assert_eq!(o["kind"], "ConfigMap");
    assert_eq!(o["data"]["colour"], "blue");
    assert_eq!(o["metadata"]["name"], "settings");
    assert_eq!(o["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    // Empty fields are pruned.
    assert!(o.get("binaryData").is_none());
    assert!(o["metadata"].get("annotations").is_none());
}

#[test]
fn secret_data_is_base64_and_flagged() {
    let s = types::Secret {
        metadata: Some(meta("token", "ns1")),
        data: BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    let d = decode(&stored("v1", "Secret", s.encode_to_vec()));
    assert!(d.secret);
    let o = d.object.unwrap();
    assert_eq!(o["data"]["password"], "aHVudGVyMg==");
    assert_eq!(o["type"], "Opaque");
}

#[test]
fn deployment_int_or_string_and_replicas() {
    let dep = types::Deployment {
        metadata: Some(meta("web", "ns1")),
        spec: Some(types::DeploymentSpec {
            replicas: Some(3),
            strategy: Some(types::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(types::RollingUpdateDeployment {
                    max_unavailable: Some(types::IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: Some("25%".into()),
                    }),
                    max_surge: Some(types::IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: None,
                    }),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let d = decode(&stored("apps/v1", "Deployment", dep.encode_to_vec()));
    let o = d.object.unwrap();
    assert_eq!(o["spec"]["replicas"], 3);
    assert_eq!(
        o["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "25%"
    );
    assert_eq!(o["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
}

#[test]
fn unknown_kind_gives_metadata_only() {
    let g = types::Generic {
        metadata: Some(meta("x", "ns1")),
    };
    let d = decode(&stored("batch/v1", "Job", g.encode_to_vec()));
    assert!(!d.complete);
    let o = d.object.unwrap();
    assert_eq!(o["kind"], "Job");
    assert_eq!(o["metadata"]["name"], "x");
    assert!(d.note.unwrap().contains("metadata only"));
}

#[test]
fn undecodable_raw_gives_hex_preview() {
    // Field 1 as a length-delimited field running past the end.
    let d = decode(&stored("batch/v1", "Job", vec![0x0a, 0xff, 0x01, 0x00]));
    assert_eq!(d.encoding, Encoding::Protobuf);
    assert!(d.object.is_none());
    assert_eq!(d.hex_preview.as_deref(), Some("0aff0100"));
    assert_eq!(d.length, 4);
    assert_eq!(d.kind.as_deref(), Some("Job"));
}

#[test]
fn json_custom_resource() {
    let d = decode(br#"{"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"name":"c"},"spec":{"cronSpec":"* * * * */5"}}"#);
    assert_eq!(d.encoding, Encoding::Json);
    assert_eq!(d.kind.as_deref(), Some("CronTab"));
    assert_eq!(d.object.unwrap()["spec"]["cronSpec"], "* * * * */5");
}

#[test]
fn encrypted_values_are_reported_not_decoded() {
    let mut v = b"k8s:enc:aescbc:v1:key1:".to_vec();
    v.extend([0x8f, 0x00, 0x13, 0xfe, 0x42]);
    let d = decode(&v);
    assert_eq!(d.encoding, Encoding::Encrypted);
    assert_eq!(
        d.encryption,
        Some(Encryption {
            provider: "aescbc".into(),
            version: Some("v1".into()),
            key_name: Some("key1".into()),
        })
    );
    assert!(d.object.is_none() && d.text.is_none() && d.hex_preview.is_none());
    let kms = decode(b"k8s:enc:kms:v2:vault-plugin:\x0a\x01");
    assert_eq!(
        kms.encryption.unwrap().key_name.as_deref(),
        Some("vault-plugin")
    );
    // Truncated headers still say "encrypted".
    let short = decode(b"k8s:enc:");
    assert_eq!(short.encryption.unwrap().provider, "unknown");
}

#[test]
fn text_and_binary() {
    let d = decode(b"10.96.0.0/12");
    assert_eq!(d.encoding, Encoding::Text);
    assert_eq!(d.text.as_deref(), Some("10.96.0.0/12"));
    let b = decode(&[0u8, 1, 2, 0xff]);
    assert_eq!(b.encoding, Encoding::Binary);
    assert_eq!(b.hex_preview.as_deref(), Some("000102ff"));
    let big = decode(&[0u8; 100]);
    assert_eq!(big.hex_preview.unwrap().len(), HEX_PREVIEW * 2);
    assert_eq!(big.length, 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let d = decode(&bytes);
        // Whatever it is, it renders.
        serde_json::to_string(&d).unwrap();
    }

    #[test]
    fn decode_never_panics_behind_the_magic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut v = PROTOBUF_MAGIC.to_vec();
        v.extend(&bytes);
        serde_json::to_string(&decode(&v)).unwrap();
        let mut e = ENCRYPTED_PREFIX.to_vec();
        e.extend(&bytes);
        prop_assert_eq!(decode(&e).encoding, Encoding::Encrypted);
    }

    #[test]
    fn decode_never_panics_on_known_kinds(
        kind in prop::sample::select(vec![
            ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "Pod"),
            ("v1", "Service"), ("v1", "Node"), ("apps/v1", "Deployment"),
            ("coordination.k8s.io/v1", "Lease"), ("batch/v1", "Job"),
        ]),
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let d = decode(&stored(kind.0, kind.1, raw));
        serde_json::to_string(&d).unwrap();
        prop_assert_eq!(d.kind.as_deref(), Some(kind.1));
    }

    #[test]
    fn keys_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = super::super::keys::parse(&bytes);
    }
}

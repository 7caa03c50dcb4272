//! etcd's v2 store as a restore leaves it: the data of the raft snapshot.
//!
//! etcd 3.4 and 3.5 still keep the membership in the v2 store and recover it from the
//! raft snapshot on start (`store.Recovery`, a `json.Unmarshal` of Go's `store`
//! struct). A restore creates an empty store with the namespaces `/0` (cluster) and
//! `/1` (keys), then `Create`s `/0/members/<id>/raftAttributes` for each member in id
//! order, and saves it with `json.Marshal`. This module writes the same JSON byte for
//! byte: the node tree (directories created on the way get the index of the create),
//! the watcher hub's event history (a ring of 1000 slots holding one `create` event per
//! member), the counters, and the store version 2.

use crate::cluster::Membership;
use crate::gojson;

/// Go's zero `time.Time`, as JSON: the expiry of permanent nodes.
const PERMANENT: &str = "0001-01-01T00:00:00Z";
/// Capacity of the v2 store's event history.
const HISTORY: usize = 1000;

fn node(out: &mut String, path: &str, index: u64, value: &str) {
    out.push_str("{\"Path\":");
    gojson::push_str(out, path);
    out.push_str(&format!(
        ",\"CreatedIndex\":{index},\"ModifiedIndex\":{index},\"ExpireTime\":\"{PERMANENT}\",\"Value\":"
    ));
    gojson::push_str(out, value);
    out.push_str(",\"Children\":");
}

/// The v2 store JSON for `membership`.
pub fn store_json(membership: &Membership) -> Vec<u8> {
    let members = membership.members();
    let n = members.len() as u64;
    let mut out = String::with_capacity(8192 + 512 * members.len());
    out.push_str("{\"Root\":");
    node(&mut out, "/", 0, "");
    out.push_str("{\"0\":");
    node(&mut out, "/0", 0, "");
    if members.is_empty() {
        out.push_str("{}}");
    } else {
        out.push_str("{\"members\":");
        node(&mut out, "/0/members", 1, "");
        out.push('{');
        // Go writes map keys sorted; the keys are the ids in hex.
        let mut by_key: Vec<(String, u64, &crate::cluster::Member)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.to_string(), i as u64 + 1, m))
            .collect();
        by_key.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (key, index, m)) in by_key.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::push_str(&mut out, key);
            out.push(':');
            let dir = format!("/0/members/{key}");
            node(&mut out, &dir, *index, "");
            out.push_str("{\"raftAttributes\":");
            node(
                &mut out,
                &format!("{dir}/raftAttributes"),
                *index,
                &m.raft_attributes_json(),
            );
            out.push_str("null}}}");
        }
        out.push_str("}}}}");
    }
    out.push_str(",\"1\":");
    node(&mut out, "/1", 0, "");
    out.push_str("{}}}}");

    // The event history: a ring buffer of HISTORY slots.
    out.push_str(",\"WatcherHub\":{\"EventHistory\":{\"Queue\":{\"Events\":[");
    let mut slots: Vec<Option<usize>> = vec![None; HISTORY];
    let (mut front, mut back, mut size) = (0usize, 0usize, 0usize);
    for i in 0..members.len() {
        slots[back] = Some(i);
        back = (back + 1) % HISTORY;
        if size == HISTORY {
            front = (front + 1) % HISTORY;
        } else {
            size += 1;
        }
    }
    for (slot, event) in slots.iter().enumerate() {
        if slot > 0 {
            out.push(',');
        }
        match event {
            None => out.push_str("null"),
            Some(i) => {
                let m = &members[*i];
                let index = *i as u64 + 1;
                out.push_str("{\"action\":\"create\",\"node\":{\"key\":");
                gojson::push_str(&mut out, &format!("/0/members/{}/raftAttributes", m.id));
                out.push_str(",\"value\":");
                gojson::push_str(&mut out, &m.raft_attributes_json());
                out.push_str(&format!(
                    ",\"modifiedIndex\":{index},\"createdIndex\":{index}}}}}"
                ));
            }
        }
    }
    let start_index = slots[front].map_or(0, |i| i as u64 + 1);
    out.push_str(&format!(
        "],\"Size\":{size},\"Front\":{front},\"Back\":{back},\"Capacity\":{HISTORY}}},\"StartIndex\":{start_index},\"LastIndex\":{n}}}}}"
    ));
    out.push_str(&format!(
        ",\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}"
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_member_store_is_etcdutls() {
        let m = Membership::new(
            "m1",
            "m1=http://127.0.0.1:2380",
            "etcd-cluster",
            "http://127.0.0.1:2380",
            false,
        )
        .unwrap();
        let json = String::from_utf8(store_json(&m)).unwrap();
        // The beginning and end of what etcdutl 3.5.1 wrote for these flags.
        let head = r#"{"Root":{"Path":"/","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"0":{"Path":"/0","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"members":{"Path":"/0/members","CreatedIndex":1,"ModifiedIndex":1,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"b71f75320dc06a6c":{"Path":"/0/members/b71f75320dc06a6c","CreatedIndex":1,"ModifiedIndex":1,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"raftAttributes":{"Path":"/0/members/b71f75320dc06a6c/raftAttributes","CreatedIndex":1,"ModifiedIndex":1,"ExpireTime":"0001-01-01T00:00:00Z","Value":"{\"peerURLs\":[\"http://127.0.0.1:2380\"]}","Children":null}}}}}}},"1":{"Path":"/1","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{}}}},"WatcherHub":{"EventHistory":{"Queue":{"Events":[{"action":"create","node":{"key":"/0/members/b71f75320dc06a6c/raftAttributes","value":"{\"peerURLs\":[\"http://127.0.0.1:2380\"]}","modifiedIndex":1,"createdIndex":1}},null,null,"#;
        let tail = r#"null,null],"Size":1,"Front":0,"Back":1,"Capacity":1000},"StartIndex":1,"LastIndex":1}},"CurrentIndex":1,"Stats":{"getsSuccess":0,"getsFail":0,"setsSuccess":0,"setsFail":0,"deleteSuccess":0,"deleteFail":0,"updateSuccess":0,"updateFail":0,"createSuccess":1,"createFail":0,"compareAndSwapSuccess":0,"compareAndSwapFail":0,"compareAndDeleteSuccess":0,"compareAndDeleteFail":0,"expireCount":0,"watchers":0},"CurrentVersion":2}"#;
        assert!(json.starts_with(head), "{json}");
        assert!(json.ends_with(tail), "{json}");
        assert_eq!(json.matches("null").count(), 999 + 1); // 999 empty slots, 1 leaf
        assert_eq!(json.len(), 6457); // the length of etcdutl's
    }
}

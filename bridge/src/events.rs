//! What a bridge reports: one JSON object per line on standard output, flushed at once, so a
//! supervisor, a log collector or a test can follow it (`{"event":"gap","lost":3,...}`).

use std::io::Write;

/// Prints one event line: `{"event": name, ...fields}`.
///
/// ```
/// ipcring_bridge::events::emit("ready", serde_json::json!({ "key": "demo/a" }));
/// ```
pub fn emit(name: &str, fields: serde_json::Value) {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), name.into());
    object.insert("time_ms".into(), now_ms().into());
    if let serde_json::Value::Object(fields) = fields {
        object.extend(fields);
    }
    let mut out = std::io::stdout().lock();
    // A closed standard output must not stop the bridge: the state file and the rings carry on.
    let _ = writeln!(out, "{}", serde_json::Value::Object(object));
    let _ = out.flush();
}

/// Milliseconds since the Unix epoch (the events' clock, comparable between processes).
///
/// ```
/// assert!(ipcring_bridge::events::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

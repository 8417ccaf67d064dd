//! Events read by a layout learnt from the events before them must give
//! exactly what simd-json gives for each alone: the same event or the same
//! rejection. The input's lines are read twice, so that a line is both learnt
//! from and read by what was learnt, between two well-formed events.
#![no_main]

use libfuzzer_sys::fuzz_target;

const EVENT: &str = r#"{"event_id":"8f54ef2d-68c4-4ea6-aad4-fa815061bf10","event_type":"order.cancelled","schema_version":1,"occurred_at":"2026-11-25T12:00:00.138Z","source":"orders.cancel-order","correlation_id":"a3b90d12-4360-497a-831f-adb440bd62f8","data":{"order_id":"ord_b1d2ebf95592d8de","user_id":"usr_87bbbcbbe7ae","country":"IN","reason":"customer_request"}}"#;

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let mut records = vec![EVENT.as_bytes()];
    records.extend(&lines);
    records.push(EVENT.as_bytes());
    records.extend(&lines);
    let (agree, _) = pipeline_schemas::record_layouts_agree(&records);
    assert!(agree);
});

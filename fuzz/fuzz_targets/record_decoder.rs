//! Any bytes as one record's data: the decoder must return an event or a
//! reason code, and an accepted event must re-serialise to an accepted event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_schemas::RecordParser;

fuzz_target!(|data: &[u8]| {
    let mut parser = RecordParser::new();
    let mut buf = data.to_vec();
    if let Ok(event) = parser.parse(&mut buf) {
        let mut again = event.to_json();
        let reparsed = RecordParser::new().parse(&mut again).map(|e| e.to_json());
        assert_eq!(reparsed.ok(), Some(event.to_json()));
    }
});

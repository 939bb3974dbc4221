//! OTLP decode: arbitrary bytes as a protobuf and as an OTLP/JSON `ExportTraceServiceRequest`.
//! Decoding must return spans or an error, never panic; every span of the input is either
//! converted or rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for decoded in [
        betrace_core::decode_otlp_protobuf(data),
        betrace_core::decode_otlp_json(data),
    ]
    .into_iter()
    .flatten()
    {
        let rejected: Vec<usize> = decoded.rejected.iter().map(|e| e.index).collect();
        assert!(rejected.windows(2).all(|w| w[0] < w[1]));
        assert!(rejected.iter().all(|&i| i < decoded.total()));
        let _ = betrace_core::group_by_trace(decoded.spans);
    }
});

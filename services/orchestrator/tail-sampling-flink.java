// Placeholder code of the tail-sampling Flink node.
//
// bkstream deploys the contents of BKDATA_FLINK_CODE_FILE as the `code` of the flink_streaming node
// "tail_sampling"; when that variable is unset it deploys this file. It is enough for bkdata-sim (which
// stores node configs and never runs them) and for local runs. Against a real BKData installation point
// BKDATA_FLINK_CODE_FILE at the sampling job your installation runs: per trace id, emit a span at once
// when md5(trace_id) mod 100 < random_sampling_ratio (up to max_span_count), otherwise buffer the trace's
// spans for trace_session_gap_min until one matches sampling_conditions, then flush the buffer and keep
// the trace marked for trace_mark_timeout_min. Its arguments arrive as the node's `user_args` (JSON).
public class TailSamplingPlaceholder {
    public static void main(String[] args) {
        throw new UnsupportedOperationException(
            "bkstream placeholder: set BKDATA_FLINK_CODE_FILE to the tail-sampling job of your BKData installation");
    }
}

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.BasicTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.contrib.streaming.state.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;

/** The job beyond the conformance file: transform() on a real local Flink, formats, settings, the deployed copy. */
class CodeTransformTest {

    static final String TRACE = "007d007d007d007d007d007d007d007d";

    static String userArgs(String extra) {
        return "{\"input_table_id\":\"2_bkapm_tail_shop\",\"output_table_id\":\"2_bkapm_tail_shop_output\","
                + "\"trace_session_gap_min\":30,\"trace_mark_timeout_min\":1440,\"max_span_count\":10000" + extra + "}";
    }

    static String span(String spanId, String extra) {
        return "{\"trace_id\":\"" + TRACE + "\",\"span_id\":\"" + spanId + "\",\"parent_span_id\":\"\",\"span_name\":\"GET /orders\","
                + "\"kind\":2,\"start_time\":1763700000000000,\"end_time\":1763700000012000,\"elapsed_time\":12000,"
                + "\"status\":{\"code\":0,\"message\":\"\"},\"trace_state\":\"\",\"attributes\":{\"http.method\":\"GET\"},"
                + "\"resource\":{\"service.name\":\"order-svc\"},\"events\":[],\"links\":[]" + extra + "}";
    }

    @Test
    void theOrchestratorDeploysThisVeryFile() throws Exception {
        Path job = Paths.get("src/job/CodeTransform.java");
        Path deployed = Paths.get("../../services/orchestrator/tail-sampling-flink.java");
        assertArrayEquals(Files.readAllBytes(job), Files.readAllBytes(deployed),
                "services/orchestrator/tail-sampling-flink.java must be a copy of flink/tail-sampling/src/job/CodeTransform.java: "
                        + "cp flink/tail-sampling/src/job/CodeTransform.java services/orchestrator/tail-sampling-flink.java");
    }

    @Test
    void transformRunsOnALocalFlinkWithBkDatasInputFields() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        String[] names = {"span_id", "trace_id", "span_info", "datetime", "dtEventTimeStamp"};
        TypeInformation<?>[] types = {Types.STRING, Types.STRING, Types.STRING, Types.STRING, Types.LONG};
        String error = ",\"status\":{\"code\":2,\"message\":\"boom\"}";
        List<Row> rows = Arrays.asList(
                Row.of("a1", TRACE, span("a1", ""), "2025-11-21 12:00:00", 1763700000000L),
                Row.of("a2", TRACE, span("a2", error).replace("\"status\":{\"code\":0,\"message\":\"\"},", ""), "2025-11-21 12:00:01", 1763700001000L),
                Row.of("b1", "00040004000400040004000400040004", span("b1", ""), "2025-11-21 12:00:02", 1763700002000L));
        DataStream<Row> source = env.fromCollection(rows, new RowTypeInfo(types, names));

        CodeTransform job = new CodeTransform();
        job.setArgs(Collections.singletonList(userArgs(",\"random_sampling_ratio\":0,\"sampling_conditions\":"
                + "[{\"condition\":\"and\",\"key\":\"status.code\",\"method\":\"eq\",\"value\":[\"2\"]}]")));
        Map<String, DataStream<Row>> input = new HashMap<>();
        input.put("2_bkapm_tail_shop", source);
        Map<String, DataStream<Row>> output = job.transform(input);
        assertEquals(Collections.singleton("2_bkapm_tail_shop_output"), output.keySet());
        DataStream<Row> sampled = output.get("2_bkapm_tail_shop_output");
        assertArrayEquals(CodeTransform.OUTPUT_FIELDS, ((RowTypeInfo) sampled.getType()).getFieldNames());

        List<Row> out = new ArrayList<>();
        try (CloseableIterator<Row> it = sampled.executeAndCollect()) {
            it.forEachRemaining(out::add);
        }
        // a2 marks its trace and flushes a1 (stamped with a2's time); b1's trace never matches.
        assertEquals(2, out.size(), out.toString());
        Row marking = out.get(0);
        assertEquals("a2", marking.getField(2));
        assertEquals("1763700001000", marking.getField(0));
        assertEquals(1763700001000L, marking.getField(15));
        assertEquals(2, marking.getField(3));
        assertEquals("{\"code\":2,\"message\":\"boom\"}", marking.getField(10));
        assertEquals("\"\"", marking.getField(13));
        assertEquals("[]", marking.getField(4));
        assertEquals(1763700000012000L, marking.getField(6));
        Row flushed = out.get(1);
        assertEquals("a1", flushed.getField(2));
        assertEquals("1763700001000", flushed.getField(0));
    }

    @Test
    void userArgsCoerceAsGsonDoes() {
        CodeTransform.Settings s = CodeTransform.Settings.parse(userArgs(",\"random_sampling_ratio\":\"30\",\"sampling_conditions\":[]")
                .replace("\"trace_session_gap_min\":30", "\"trace_session_gap_min\":5.0"));
        assertEquals(30, s.randomSamplingRatio);
        assertEquals(5, s.sessionGapMin);
        assertThrows(IllegalArgumentException.class, () -> CodeTransform.Settings.parse("{oops"));
        assertThrows(IllegalArgumentException.class, () -> CodeTransform.Settings.parse(""));
        assertThrows(IllegalArgumentException.class, () -> CodeTransform.Settings.parse(userArgs(",\"sampling_conditions\":[null]")));
    }

    @Test
    void aSpanTheJobCannotFormatIsRejectedAndTheTraceKeepsItsState() throws Exception {
        CodeTransform.TraceSampler sampler = new CodeTransform.TraceSampler(
                CodeTransform.Settings.parse(userArgs(",\"random_sampling_ratio\":100,\"max_span_count\":2,\"sampling_conditions\":[]")),
                new CodeTransform.InputLayout(0, 1, 2, 3));
        List<String> kept = new ArrayList<>();
        List<String> rejected = new ArrayList<>();
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> h =
                new KeyedOneInputStreamOperatorTestHarness<>(new KeyedProcessOperator<>(sampler), new CodeTransform.TraceKey(0), Types.STRING)) {
            h.open();
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x1", span("x1", "").replace("\"span_name\":\"GET /orders\",", ""), "1"), 1));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x2", span("x2", "").replace("\"kind\":2", "\"kind\":\"2\""), "2"), 2));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x3", span("x3", "").replace(",\"trace_state\":\"\"", ""), "3"), 3));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x4", span("x4", ""), "not a number"), 4));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x5", span("x5", ""), "5"), 5));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x6", span("x6", "").replace("\"kind\":2", "\"kind\":2.0"), "6"), 6));
            h.processElement(new StreamRecord<>(Row.of(TRACE, "x7", span("x7", ""), "7"), 7));
            for (Row r : h.extractOutputValues()) {
                kept.add((String) r.getField(2));
            }
            for (StreamRecord<String> r : h.getSideOutput(CodeTransform.REJECTED)) {
                rejected.add(r.getValue().substring(0, 2));
            }
        }
        // No span_name, kind as a string or 2.0, no trace_state, a datetime that is not a long: rejected;
        // the count of max_span_count 2 is spent only by x5 and x7.
        assertEquals(Arrays.asList("x5", "x7"), kept);
        assertEquals(Arrays.asList("x1", "x2", "x3", "x4", "x6"), rejected);
    }

    /** Puts span ids into RocksDB map state and reads them back in RocksDB's own order. */
    static final class KeyOrderProbe extends KeyedProcessFunction<String, String, String> {
        private transient MapState<String, String> map;

        @Override
        public void open(Configuration parameters) {
            map = getRuntimeContext().getMapState(new MapStateDescriptor<>("probe", BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO));
        }

        @Override
        public void processElement(String value, Context ctx, Collector<String> out) throws Exception {
            if (!value.equals("?")) {
                map.put(value, value);
                return;
            }
            for (Map.Entry<String, String> e : map.entries()) {
                out.collect(e.getKey());
            }
        }
    }

    @Test
    void rocksDbIteratesMapStateInTheOrderTheJobFlushesIn() throws Exception {
        StringBuilder longId = new StringBuilder();
        for (int i = 0; i < 130; i++) {
            longId.append('a');
        }
        List<String> ids = new ArrayList<>(Arrays.asList("b2", "a10", "a9", "c", "00f067aa0ba902b7", "00f067aa0ba902b8", "Z", "é", "ā", "中", "a", "",
                longId.toString(), longId + "b", "ab", "aB", "\u0080"));
        List<String> iterated = new ArrayList<>();
        try (KeyedOneInputStreamOperatorTestHarness<String, String, String> h =
                new KeyedOneInputStreamOperatorTestHarness<>(new KeyedProcessOperator<>(new KeyOrderProbe()), v -> "trace", Types.STRING)) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
            h.open();
            for (String id : ids) {
                h.processElement(new StreamRecord<>(id, 0));
            }
            h.processElement(new StreamRecord<>("?", 0));
            iterated.addAll(h.extractOutputValues());
        }
        List<String> sorted = new ArrayList<>(ids);
        sorted.sort(CodeTransform.ROCKSDB_KEY_ORDER);
        assertEquals(sorted, iterated);
        assertTrue(sorted.indexOf("c") < sorted.indexOf("a9") && sorted.indexOf("b2") < sorted.indexOf("a10"), sorted.toString());
    }
}

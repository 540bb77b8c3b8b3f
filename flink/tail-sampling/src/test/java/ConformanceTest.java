import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.stream.Stream;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.contrib.streaming.state.EmbeddedRocksDBStateBackend;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs flink/tail-sampling/conformance.json (shared with the TypeScript sampler's tests) through the job's
 * keyed function in Flink's operator test harness, once on the heap state backend and once on RocksDB:
 * arrival times drive both the processing clock and the state-TTL clock; the kept spans (id and output
 * time, in order), the rejected spans and, where a case lists them, whole output rows must be as written.
 */
class ConformanceTest {

    static final JsonObject FILE = load();

    static JsonObject load() {
        try {
            return JsonParser.parseString(new String(Files.readAllBytes(Paths.get("conformance.json")), StandardCharsets.UTF_8)).getAsJsonObject();
        } catch (IOException e) {
            throw new IllegalStateException("conformance.json is unreadable", e);
        }
    }

    static JsonArray cases() {
        return FILE.getAsJsonArray("cases");
    }

    @Test
    void theFileHasAtLeastFortyCasesWithUniqueNames() {
        assertTrue(cases().size() >= 40, "cases: " + cases().size());
        List<String> names = new ArrayList<>();
        for (JsonElement c : cases()) {
            String name = c.getAsJsonObject().get("name").getAsString();
            assertFalse(names.contains(name), "duplicate case " + name);
            names.add(name);
        }
    }

    @TestFactory
    Stream<DynamicTest> onTheHeapBackend() {
        return tests(new HashMapStateBackend());
    }

    @TestFactory
    Stream<DynamicTest> onRocksDb() {
        return tests(new EmbeddedRocksDBStateBackend());
    }

    private Stream<DynamicTest> tests(StateBackend backend) {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonElement c : cases()) {
            JsonObject kase = c.getAsJsonObject();
            tests.add(DynamicTest.dynamicTest(kase.get("name").getAsString(), () -> run(kase, backend)));
        }
        return tests.stream();
    }

    /** `user_args` of a case: the defaults with the case's keys over them (a null value removes a key). */
    static String userArgs(JsonObject kase) {
        JsonObject args = FILE.getAsJsonObject("defaults").getAsJsonObject("user_args").deepCopy();
        if (kase.has("user_args")) {
            for (Map.Entry<String, JsonElement> e : kase.getAsJsonObject("user_args").entrySet()) {
                if (e.getValue().isJsonNull()) {
                    args.remove(e.getKey());
                } else {
                    args.add(e.getKey(), e.getValue());
                }
            }
        }
        return args.toString();
    }

    /** The span_info text of an input: its own text, or the default span with its fields over it. */
    static String spanInfo(JsonObject in, String traceId, String spanId) {
        if (in.has("span_info")) {
            return in.get("span_info").getAsString();
        }
        JsonObject span = FILE.getAsJsonObject("defaults").getAsJsonObject("span").deepCopy();
        span.addProperty("trace_id", traceId);
        span.addProperty("span_id", spanId);
        if (in.has("span")) {
            for (Map.Entry<String, JsonElement> e : in.getAsJsonObject("span").entrySet()) {
                if (e.getValue().isJsonNull()) {
                    span.remove(e.getKey());
                } else {
                    span.add(e.getKey(), e.getValue());
                }
            }
        }
        return span.toString();
    }

    static String traceId(JsonObject in) {
        String name = in.has("trace") ? in.get("trace").getAsString() : FILE.getAsJsonObject("defaults").get("trace").getAsString();
        return FILE.getAsJsonObject("traces").getAsJsonObject(name).get("id").getAsString();
    }

    private void run(JsonObject kase, StateBackend backend) throws Exception {
        String args = userArgs(kase);
        if (kase.has("config_error") && kase.get("config_error").getAsBoolean()) {
            assertThrows(IllegalArgumentException.class, () -> CodeTransform.Settings.parse(args));
            return;
        }
        CodeTransform.Settings settings = CodeTransform.Settings.parse(args);
        CodeTransform.TraceSampler sampler = new CodeTransform.TraceSampler(settings, new CodeTransform.InputLayout(0, 1, 2, 3));
        long base = FILE.get("base_ms").getAsLong();
        List<String> kept = new ArrayList<>();
        List<String> rejected = new ArrayList<>();
        List<Row> rows = new ArrayList<>();
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                new KeyedOneInputStreamOperatorTestHarness<>(new KeyedProcessOperator<>(sampler), new CodeTransform.TraceKey(0), Types.STRING)) {
            harness.setStateBackend(backend);
            harness.open();
            for (JsonElement e : kase.getAsJsonArray("spans")) {
                JsonObject in = e.getAsJsonObject();
                long now = base + in.get("at_ms").getAsLong();
                String traceId = traceId(in);
                String spanId = in.get("span_id").getAsString();
                long dt = in.has("dt_ms") ? base + in.get("dt_ms").getAsLong() : now;
                harness.setProcessingTime(now);
                harness.setStateTtlProcessingTime(now);
                harness.processElement(new StreamRecord<>(Row.of(traceId, spanId, spanInfo(in, traceId, spanId), String.valueOf(dt)), now));
            }
            for (Row row : harness.extractOutputValues()) {
                rows.add(row);
                kept.add(row.getField(2) + "@" + row.getField(15));
            }
            Queue<StreamRecord<String>> side = harness.getSideOutput(CodeTransform.REJECTED);
            if (side != null) {
                for (StreamRecord<String> r : side) {
                    rejected.add(r.getValue().substring(0, r.getValue().indexOf(':')));
                }
            }
        }
        List<String> expected = new ArrayList<>();
        for (JsonElement e : kase.getAsJsonArray("kept")) {
            JsonObject k = e.getAsJsonObject();
            expected.add(k.get("span_id").getAsString() + "@" + (base + k.get("time_ms").getAsLong()));
        }
        assertEquals(expected, kept, "kept spans (span id @ output time)");
        List<String> expectedRejected = new ArrayList<>();
        if (kase.has("rejected")) {
            for (JsonElement e : kase.getAsJsonArray("rejected")) {
                expectedRejected.add(e.getAsString());
            }
        }
        assertEquals(expectedRejected, rejected, "rejected spans");
        if (kase.has("rows")) {
            JsonArray want = kase.getAsJsonArray("rows");
            assertEquals(want.size(), rows.size(), "rows");
            for (int i = 0; i < rows.size(); i++) {
                assertEquals(want.get(i).toString(), rowJson(rows.get(i), base), "row " + i);
            }
        }
    }

    /** A row as a JSON object keyed by output field, times made relative to base_ms. */
    static String rowJson(Row row, long base) {
        JsonObject o = new JsonObject();
        for (int i = 0; i < CodeTransform.OUTPUT_FIELDS.length; i++) {
            Object v = row.getField(i);
            String field = CodeTransform.OUTPUT_FIELDS[i];
            if (field.equals("time")) {
                o.addProperty(field, String.valueOf(Long.parseLong((String) v) - base));
            } else if (field.equals("datatime")) {
                o.addProperty(field, (Long) v - base);
            } else if (v instanceof Number) {
                o.addProperty(field, (Number) v);
            } else {
                o.addProperty(field, (String) v);
            }
        }
        return o.toString();
    }
}
